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

from worldfm_ros.backends.config import PROFILES, ModelProfile, model_profile
from worldfm_ros.frame.reference import SelectionRules

__all__ = ["PROFILES", "Profile", "get_profile"]


@dataclass(frozen=True)
class Profile:
    """The per-frame choices of one profile (see the module table).

    release_renderer: anchor renders through ``render.release.ReleaseRenderer``.
    close_canvas: neural backends render their canvas with the radius that closes the cloud
        (else one pixel per point). selection: reference-selection rules.
    model: the choices a neural backend makes itself (``backends.config.ModelProfile``: VAE
        posterior, noise, reference-latent cache, draw order); the backend resolves them from the
        same name (``backend.profile``).
    """

    name: str
    release_renderer: bool = False
    close_canvas: bool = True
    selection: SelectionRules = field(default_factory=SelectionRules)
    model: ModelProfile = field(default_factory=lambda: ModelProfile("default"))


def get_profile(name: str) -> Profile:
    """The Profile called ``name`` ('default' or 'release'); ConfigError otherwise."""
    model = model_profile(name)
    if name == "release":
        return Profile("release", release_renderer=True, close_canvas=False, selection=SelectionRules.release(),
                       model=model)
    return Profile(name, model=model)
