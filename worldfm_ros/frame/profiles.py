"""Compatibility profiles: our defaults, or the released WorldFM online pipeline's choices.

One switch (``backend.profile`` of the node, ``profile=`` of every neural backend) sets every
per-frame choice at once; the scene builder's ``--profile release`` sets the offline ones
(42 reference views at 504 px resized to 512, one point per pixel of a 4096 x 2048 panorama).

=====================  ======================================  ===========================================
choice                 ``default`` (ours)                      ``release`` (spec §3.4-§3.5, §6.6, §9.16)
=====================  ======================================  ===========================================
anchor render          exact float32, nearest point wins        float16 points and transform, 1e-4 m tie
                                                                band (last write wins), float16 colours
model-canvas splat     radius that closes the cloud             one pixel per point
                       (``render.density``)
reference selection    cell-centre grid, <=, 1 cm absolute      linspace grid with edges, strict <, no
                       tolerance, no distance weight            absolute tolerance, 1-20 m distance ramp
VAE encoding           posterior mode                           posterior sample
noise                  ``reuse_noise`` (same noise each frame)  fresh noise every frame
reference latent       cached per keyframe                      re-encoded every frame
draw order per frame   sampler noise, then posteriors           render posterior, reference posterior,
                                                                initial noise, re-noising noise
=====================  ======================================  ===========================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

from worldfm_ros.errors import ConfigError
from worldfm_ros.frame.reference import SelectionRules

PROFILES = ("default", "release")


@dataclass(frozen=True)
class Profile:
    """The per-frame choices of one profile (see the module table).

    release_renderer: anchor renders through ``render.release.ReleaseRenderer``.
    close_canvas: neural backends render their canvas with the radius that closes the cloud
        (else one pixel per point). selection: reference-selection rules.
    sample_posterior: VAE posterior samples instead of the mode. fresh_noise: new noise every
    frame whatever ``reuse_noise`` says. cache_reference: reuse reference latents per keyframe.
    posterior_first: draw the posterior noise before the sampler noise (the release's order).
    """

    name: str
    release_renderer: bool = False
    close_canvas: bool = True
    selection: SelectionRules = field(default_factory=SelectionRules)
    sample_posterior: bool = False
    fresh_noise: bool = False
    cache_reference: bool = True
    posterior_first: bool = False


def get_profile(name: str) -> Profile:
    """The Profile called ``name`` ('default' or 'release'); ConfigError otherwise."""
    if name == "default":
        return Profile("default")
    if name == "release":
        return Profile("release", release_renderer=True, close_canvas=False, selection=SelectionRules.release(),
                       sample_posterior=True, fresh_noise=True, cache_reference=False, posterior_first=True)
    raise ConfigError(f"profile: expected one of {list(PROFILES)}, got {name!r}")
