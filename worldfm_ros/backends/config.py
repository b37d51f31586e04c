"""Configuration of the frame backend (the node's ``backend.*`` parameters), and the values it
resolves to on this machine. Each backend maps it onto its constructor (``FrameBackend.config_options``)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from worldfm_ros.errors import ConfigError

#: the compatibility profiles; ``worldfm_ros.frame.profiles`` tabulates what each one chooses
PROFILES = ("default", "release")

#: where a residual model's correction is added to the filled render (``backend.correction``):
#: only the render's holes (covered pixels stay the anchor's: on real captures the model's
#: correction there loses a little and flickers; benchmarks/RESULTS.md), or every pixel
CORRECTION_REGIONS = ("holes", "everywhere")


def check_correction(correction: str) -> str:
    """``correction`` if it is one of ``CORRECTION_REGIONS``, else ConfigError."""
    if correction not in CORRECTION_REGIONS:
        raise ConfigError(f"backend.correction: expected one of {CORRECTION_REGIONS}, got {correction!r}")
    return correction


@dataclass(frozen=True)
class ModelProfile:
    """A compatibility profile's choices inside a neural backend (``worldfm_ros.frame.profiles``
    holds the whole profile: these, and the render and reference-selection choices of the frame).

    sample_posterior: VAE posterior samples instead of the mode. fresh_noise: new noise every
    frame whatever ``reuse_noise`` says. cache_reference: reuse reference latents per keyframe.
    posterior_first: draw the posterior noise before the sampler noise (the release's order).
    """

    name: str
    sample_posterior: bool = False
    fresh_noise: bool = False
    cache_reference: bool = True
    posterior_first: bool = False


def model_profile(name: str) -> ModelProfile:
    """The backend's share of the profile called ``name`` ('default' or 'release'); ConfigError otherwise."""
    if name == "default":
        return ModelProfile("default")
    if name == "release":
        return ModelProfile("release", sample_posterior=True, fresh_noise=True, cache_reference=False,
                            posterior_first=True)
    raise ConfigError(f"profile: expected one of {list(PROFILES)}, got {name!r}")


@dataclass
class BackendConfig:
    """name: frame backend ('anchor', 'torch', 'onnxruntime', 'tensorrt'; default 'torch' with the
    bundled model, which fills the render's holes better than 'anchor' on held-out rooms);
    model: checkpoint path ('' = the bundled default model, models/worldfm_res128.safetensors);
    vae: VAE folder for latent models; steps: 1 or 2 denoising steps (1 suits the bundled model
    and worldfm_1-step.pth, 2 worldfm_2-step.pth); device: 'auto', 'cpu' or 'cuda'; dtype:
    'auto', 'fp32', 'fp16', 'bf16'; fill: anchor hole filling; seed: noise seed (< 0 = random);
    reuse_noise: same noise every frame (less flicker); profile: 'default' (ours) or 'release'
    (the released WorldFM pipeline's render, reference selection, posterior samples and fresh
    noise every frame, overriding reuse_noise; see worldfm_ros/frame/profiles.py and models/README.md);
    correction: where a residual model (the bundled one) corrects the filled render: 'holes'
    (covered pixels stay the anchor's) or 'everywhere' (``CORRECTION_REGIONS``)."""

    name: str = "torch"
    model: str = ""
    vae: str = ""
    steps: int = 1
    device: str = "auto"
    dtype: str = "auto"
    fill: str = "push_pull"
    seed: int = 0
    reuse_noise: bool = True
    profile: str = "default"
    correction: str = "holes"

    def __post_init__(self) -> None:
        check_correction(self.correction)
        if self.profile not in PROFILES:
            raise ConfigError(f"backend.profile: expected one of {list(PROFILES)}, got {self.profile!r}")

    def torch_device(self) -> str:
        """'cuda' when device is 'auto' and torch sees a GPU, 'cpu' for 'auto' without one, else device."""
        from worldfm_ros.devices import resolve_device

        return resolve_device(self.device)

    def torch_dtype(self, device: str) -> str:
        """dtype, with 'auto' = fp16 on a CUDA ``device`` and fp32 elsewhere."""
        if self.dtype != "auto":
            return self.dtype
        return "fp16" if device.startswith("cuda") else "fp32"

    def model_file(self) -> str:
        """The checkpoint path: model, or the bundled default model when it is ''."""
        from worldfm_ros.resources import default_model_path

        return self.model or str(default_model_path())

    def noise_seed(self) -> int:
        """seed, or a fresh random base seed when it is negative."""
        return self.seed if self.seed >= 0 else int.from_bytes(os.urandom(4), "little")
