"""The neural frame backends' core: a ``FrameRequest`` at the model's size -> encode, sample, decode.

The network itself sits behind a ``Denoiser`` (one call = one DiT forward on the target slot),
so the same pipeline serves the PyTorch, ONNX Runtime and TensorRT backends. Per frame:

1. render and reference uint8 (H, W, 3) -> [-1, 1], resized to the model's square resolution
   R = latent_size * codec.downsample when (H, W) differs (bicubic; the output is resized back,
   so pixels keep matching the request's intrinsics);
2. one CPU generator per frame (``NoiseSource``) draws the sampler noise first, then any VAE
   posterior noise, so the same seed gives the same frame on every device and backend (the
   ``release`` profile draws in the release's order instead: render posterior, reference
   posterior, initial noise, re-noising noise);
3. render -> latent; reference -> latent through the cache keyed by keyframe id and content
   (re-encoded every frame under the ``release`` profile);
4. sampler (1-2 DiT calls for distilled checkpoints) -> x0 -> decode -> uint8.

Residual models (``DiTConfig.residual == "filled_render"``) generate the difference to the
push-pull-filled render (``render.fill.residual_base``): the filled render's latent is added
to x0 before decoding, and when a bare request is larger than the model the upsampled
correction is added to the fill at the request's own resolution. ``PipelineBackend`` (a
``backends.canvas.CanvasBackend``) gives the pipeline canvas-size requests in the simulator.

Stage timings (ms) of the last frame: preprocess, encode_render, encode_reference, step_0,
step_1, ..., decode, postprocess, total; on CUDA the device is synchronised at each boundary.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from worldfm_ros.backends.base import FrameRequest
from worldfm_ros.backends.canvas import CanvasBackend
from worldfm_ros.backends.config import BackendConfig
from worldfm_ros.errors import CheckpointError, ConfigError
from worldfm_ros.model.config import RESIDUAL_BASES
from worldfm_ros.model.codec import Codec, make_codec, uint8_to_unit, unit_to_uint8
from worldfm_ros.model.sampler import NoiseSource, Sampler, draw_noise, make_sampler
from worldfm_ros.profiles import Profile, get_profile
from worldfm_ros.render.fill import residual_base

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def parse_dtype(name: str) -> torch.dtype:
    """'fp32' | 'fp16' | 'bf16' -> torch dtype; ConfigError otherwise."""
    if name not in DTYPES:
        raise ConfigError(f"dtype: expected one of {sorted(DTYPES)}, got {name!r}")
    return DTYPES[name]


class Denoiser(Protocol):
    """One network call on the target slot.

    x_t, render, reference: (B, C, h, w) float32 latents on the pipeline device; t: integer
    timestep; mask: (B, 1, h, w) float32 render coverage in [0, 1] or None; cameras: the
    slots' ``CameraInputs`` (CPU tensors) for camera-encoded models, else None. Returns
    (B, >= C, h, w) whose first C channels are the v-prediction.
    """

    def __call__(self, x_t: torch.Tensor, t: int, render: torch.Tensor, reference: torch.Tensor,
                 mask: torch.Tensor | None, cameras: Any = None) -> torch.Tensor: ...


def resized_intrinsics(K: np.ndarray, size_hw: tuple[int, int], new_size: int) -> np.ndarray:
    """(3, 3) intrinsics of an (H, W) image after resizing it to new_size x new_size.

    Pixel centres sit at integer coordinates, so c' = (c + 0.5) * s - 0.5 and f' = f * s.
    """
    sx, sy = new_size / size_hw[1], new_size / size_hw[0]
    out = np.asarray(K, dtype=np.float64).copy()
    out[0, 0], out[0, 1], out[0, 2] = out[0, 0] * sx, out[0, 1] * sx, (out[0, 2] + 0.5) * sx - 0.5
    out[1, 1], out[1, 2] = out[1, 1] * sy, (out[1, 2] + 0.5) * sy - 0.5
    return out


def load_frame_model(model_path: str | Path, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """Load a frame model: ``.safetensors`` (our format, config embedded) or an official ``.pth``.

    Every user path (node ``backend.model``, each backend's ``model_path``, ONNX export,
    ``worldfm bench-model --model``) comes through here. Official checkpoints
    (worldfm_1-step.pth / worldfm_2-step.pth) carry no config: the network shape is read from
    the weights (PixArt-Σ XL/2 for the released files, ``checkpoint.infer_config``).
    """
    path = Path(model_path)
    if not path.is_file():
        raise CheckpointError(f"{path}: model file not found")
    from worldfm_ros.model.checkpoint import load_model, load_official_model

    if path.suffix == ".safetensors":
        return load_model(path, device, dtype)
    if path.suffix in (".pth", ".pt"):
        return load_official_model(path, device, dtype)
    raise CheckpointError(f"{path}: expected a .safetensors model or an official .pth checkpoint")


def backend_codec(latent_channels: int, vae_path: str | Path | None, device: torch.device, dtype: torch.dtype,
                  sample_posterior: bool, profile: str) -> Codec:
    """``model.codec.make_codec`` for a backend: the ``release`` profile samples the VAE posterior."""
    return make_codec(latent_channels, vae_path, device, dtype, sample_posterior or get_profile(profile).sample_posterior)


class FrameModelPipeline:
    """FrameRequest -> (H, W, 3) uint8 through codec, sampler and a denoiser.

    latent_size: latent side per view the network was built for (square views).
    use_mask: pass the render-coverage mask to the denoiser (models with a mask channel).
    use_cameras: pass the slots' cameras (models with PRoPE or Plücker encoding); the
        intrinsics are rescaled to the model's R x R input.
    device: where latents live; the codec and denoiser take and return tensors there.
    residual, residual_scale: ``DiTConfig.residual`` ("none" or "filled_render") and
        ``DiTConfig.residual_scale`` of the model.
    profile: ``profiles.Profile``; its cache_reference and posterior_first apply here.
    """

    def __init__(self, denoiser: Denoiser, codec: Codec, sampler: Sampler, latent_size: int,
                 noise: NoiseSource | None = None, device: torch.device | str = "cpu",
                 use_mask: bool = False, use_cameras: bool = False, residual: str = "none",
                 residual_scale: float = 1.0, profile: Profile | None = None) -> None:
        self.denoiser = denoiser
        self.codec = codec
        self.sampler = sampler
        self.latent_size = int(latent_size)
        self.resolution = self.latent_size * codec.downsample
        self.noise = noise or NoiseSource()
        self.device = torch.device(device)
        self.use_mask = use_mask
        self.use_cameras = use_cameras
        if residual not in RESIDUAL_BASES:
            raise ConfigError(f"residual: expected one of {list(RESIDUAL_BASES)}, got {residual!r}")
        self.residual = residual
        self.residual_scale = float(residual_scale)
        self.profile = profile or get_profile("default")
        self.last_reference_cached = False
        self._timings: dict[str, float] = {}

    def _clock(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _to_model_size(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] == (self.resolution, self.resolution):
            return images
        size = (self.resolution, self.resolution)
        return F.interpolate(images, size, mode="bicubic", antialias=True, align_corners=False).clamp(-1, 1)

    @torch.inference_mode()
    def generate(self, request: FrameRequest) -> np.ndarray:
        """The generated frame, (H, W, 3) uint8, at the size of ``request.render_rgb``."""
        timings: dict[str, float] = {}
        start = tick = self._clock()

        def lap(name: str) -> None:
            nonlocal tick
            now = self._clock()
            timings[name] = (now - tick) * 1e3
            tick = now

        height, width = request.render_rgb.shape[:2]
        render = self._to_model_size(uint8_to_unit(request.render_rgb, self.device))  # (1, 3, R, R)
        # The released model always sees a reference; without one the render stands in for it.
        has_reference = request.reference_rgb is not None
        if has_reference and request.reference_rgb.shape[:2] != (height, width):
            raise ConfigError(f"reference_rgb: expected shape {(height, width, 3)} like render_rgb, "
                              f"got {request.reference_rgb.shape}")
        reference = (self._to_model_size(uint8_to_unit(request.reference_rgb, self.device))
                     if has_reference else render)
        mask = None
        if self.use_mask:
            valid = torch.from_numpy(np.ascontiguousarray(request.render_valid)).to(self.device)
            mask = F.adaptive_avg_pool2d(valid[None, None].float(), self.latent_size)  # (1, 1, h, w)
        cameras = self._cameras(request) if self.use_cameras else None
        filled = base = None
        if self.residual == "filled_render":
            fill = request.render_filled
            if fill is None:
                fill = residual_base(request.render_rgb, request.render_valid)
            filled = uint8_to_unit(fill, self.device)
            base = self._to_model_size(filled)  # (1, 3, R, R)
        generator = self.noise.frame(request.seed)
        shape = (1, self.codec.latent_channels, self.latent_size, self.latent_size)

        def sampler_noise() -> list[torch.Tensor]:
            return [n.to(self.device) for n in draw_noise(generator, shape, self.sampler.num_noises)]

        posterior_first = self.profile.posterior_first
        noises = None if posterior_first else sampler_noise()
        lap("preprocess")

        z_render = self.codec.encode(render, generator)  # (1, C, h, w)
        z_base = None if base is None else self.codec.encode(base, generator)
        lap("encode_render")
        if has_reference and request.reference_id >= 0 and self.profile.cache_reference:
            # The content digest keeps a reloaded scene whose keyframe ids repeat from reusing stale latents.
            digest = hashlib.sha1(np.ascontiguousarray(request.reference_rgb), usedforsecurity=False).hexdigest()
            z_reference = self.codec.encode_reference(reference, (request.reference_id, digest), generator)
            self.last_reference_cached = self.codec.last_reference_cached
        else:
            z_reference = self.codec.encode(reference, generator)
            self.last_reference_cached = False
        if posterior_first:
            noises = sampler_noise()
        lap("encode_reference")

        step = 0

        def denoise(x_t: torch.Tensor, t: int) -> torch.Tensor:
            nonlocal step
            out = self.denoiser(x_t, t, z_render, z_reference, mask, cameras)
            lap(f"step_{step}")
            step += 1
            return out

        x0 = self.sampler.sample(denoise, noises)  # (1, C, h, w)
        if z_base is not None:
            x0 = x0 / self.residual_scale + z_base
        image = self.codec.decode(x0)  # (1, 3, R, R)
        lap("decode")

        if image.shape[-2:] != (height, width):
            if base is None:
                image = F.interpolate(image.float(), (height, width), mode="bicubic", antialias=True,
                                      align_corners=False)
            else:  # only the model's correction is upsampled; the fill keeps the render's detail
                image = filled + F.interpolate(image.float() - base, (height, width), mode="bilinear",
                                               align_corners=False)
        frame = unit_to_uint8(image)[0]  # (H, W, 3)
        lap("postprocess")
        timings["total"] = (tick - start) * 1e3
        self._timings = timings
        return frame

    def stage_timings_ms(self) -> dict[str, float]:
        """Milliseconds per stage of the last ``generate`` call."""
        return dict(self._timings)

    def _cameras(self, request: FrameRequest) -> Any:
        from worldfm_ros.model.dit import CameraInputs

        size_hw = request.render_rgb.shape[:2]
        if request.reference_c2w is None or request.reference_K is None:
            if request.reference_rgb is not None:
                raise ConfigError("reference_c2w / reference_K: this model encodes cameras and needs the "
                                  "reference pose and intrinsics with the reference image")
            ref_c2w, ref_K = request.c2w, request.K  # the render stands in for the reference
        else:
            ref_c2w, ref_K = request.reference_c2w, request.reference_K
        R = self.resolution
        return CameraInputs.from_c2w(torch.from_numpy(np.asarray(request.c2w, np.float64)),
                                     torch.from_numpy(np.asarray(ref_c2w, np.float64)),
                                     torch.from_numpy(resized_intrinsics(request.K, size_hw, R)),
                                     torch.from_numpy(resized_intrinsics(ref_K, size_hw, R)), (R, R))


class PipelineBackend(CanvasBackend):
    """Base of the neural backends: a ``CanvasBackend`` whose model is ``self.pipeline``."""

    pipeline: FrameModelPipeline

    @classmethod
    def config_options(cls, config: BackendConfig) -> dict[str, Any]:
        device = config.torch_device()
        options = {**cls.weights_options(config, device), "vae_path": config.vae or None, "device": device,
                   "steps": config.steps, "seed": config.noise_seed(), "reuse_noise": config.reuse_noise,
                   "profile": config.profile, "correction": config.correction}
        return {k: v for k, v in options.items() if v is not None}

    @classmethod
    def weights_options(cls, config: BackendConfig, device: str) -> dict[str, Any]:
        """The constructor options naming the weights and their precision on ``device``."""
        return {"model_path": config.model_file(), "dtype": config.torch_dtype(device)}

    @property
    def profile(self) -> Profile:
        """The compatibility profile the backend runs (``profiles``)."""
        return self.pipeline.profile

    @property
    def canvas_size(self) -> int:
        """The model's square resolution in pixels."""
        return self.pipeline.resolution

    @property
    def corrects_fill(self) -> bool:
        """True for residual models (``DiTConfig.residual == "filled_render"``)."""
        return self.pipeline.residual == "filled_render"

    def generate_canvas(self, request: FrameRequest) -> np.ndarray:
        return self.pipeline.generate(request)

    def stage_timings_ms(self) -> dict[str, float]:
        return {**self.canvas_timings_ms(), **self.pipeline.stage_timings_ms()}

    @property
    def last_reference_cached(self) -> bool:
        """Whether the last frame's reference latent came from the cache."""
        return self.pipeline.last_reference_cached

    def close(self) -> None:
        self.pipeline.codec.clear_cache()


def model_pipeline(denoiser: Denoiser, codec: Codec, sampler: Sampler, noise: NoiseSource, device: torch.device,
                   cfg: dict[str, Any], use_cameras: bool = False, profile: str = "default") -> FrameModelPipeline:
    """The FrameModelPipeline of a model described by ``cfg``: its DiTConfig as a dict
    (``DiTConfig.to_dict()``, or the metadata of an exported graph, whose missing keys take the
    released model's values: no mask channel, no residual); profile: 'default' | 'release'."""
    return FrameModelPipeline(denoiser, codec, sampler, cfg["input_size"], noise, device,
                              bool(cfg.get("use_mask_channel", False)), use_cameras,
                              cfg.get("residual", "none"), float(cfg.get("residual_scale", 1.0)),
                              get_profile(profile))


def build_sampler_and_noise(sampler: str, steps: int, timesteps: list[int] | None, seed: int,
                            reuse_noise: bool, profile: str = "default") -> tuple[Sampler, NoiseSource]:
    """The sampler and noise source from the backend options shared by every neural backend
    (the ``release`` profile draws fresh noise every frame whatever ``reuse_noise`` says)."""
    reuse = reuse_noise and not get_profile(profile).fresh_noise
    return make_sampler(sampler, steps, timesteps), NoiseSource(seed, reuse)
