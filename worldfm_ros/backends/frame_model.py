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

Requests come in batches: each frame is prepared, encoded and finished on its own (its own
generator), the network runs once per step on the stacked batch. Stage timings (ms) of the batch,
returned with each frame: preprocess, encode_render, encode_reference, step_0, step_1, ...,
decode, postprocess, total; on CUDA the device is synchronised at each boundary.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from worldfm_ros.backends.base import FrameRequest, Generated
from worldfm_ros.backends.canvas import CanvasBackend
from worldfm_ros.backends.config import BackendConfig, ModelProfile, model_profile
from worldfm_ros.errors import CheckpointError, ConfigError
from worldfm_ros.model.config import RESIDUAL_BASES
from worldfm_ros.model.codec import Codec, make_codec, uint8_to_unit, unit_to_uint8
from worldfm_ros.model.sampler import NoiseSource, Sampler, draw_noise, make_sampler
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


class FixedBatchDenoiser:
    """A denoiser whose network takes inputs of fixed shapes (an exported graph, a built engine):
    ``_inputs`` maps each input name to a tuple that starts with its shape."""

    _inputs: dict[str, tuple]

    @property
    def batch(self) -> int:
        """The batch size the network was exported or built for; the pipeline runs chunks of it."""
        return int(self._inputs["x_t"][0][0])


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
                  sample_posterior: bool, profile: ModelProfile) -> Codec:
    """``model.codec.make_codec`` for a backend: the ``release`` profile samples the VAE posterior."""
    return make_codec(latent_channels, vae_path, device, dtype, sample_posterior or profile.sample_posterior)


class FrameModelPipeline:
    """FrameRequest -> (H, W, 3) uint8 through codec, sampler and a denoiser.

    latent_size: latent side per view the network was built for (square views).
    use_mask: pass the render-coverage mask to the denoiser (models with a mask channel).
    use_cameras: pass the slots' cameras (models with PRoPE or Plücker encoding); the
        intrinsics are rescaled to the model's R x R input.
    device: where latents live; the codec and denoiser take and return tensors there.
    residual, residual_scale: ``DiTConfig.residual`` ("none" or "filled_render") and
        ``DiTConfig.residual_scale`` of the model.
    profile: ``ModelProfile``; its cache_reference and posterior_first apply here.
    """

    def __init__(self, denoiser: Denoiser, codec: Codec, sampler: Sampler, latent_size: int,
                 noise: NoiseSource | None = None, device: torch.device | str = "cpu",
                 use_mask: bool = False, use_cameras: bool = False, residual: str = "none",
                 residual_scale: float = 1.0, profile: ModelProfile | None = None) -> None:
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
        self.profile = profile or model_profile("default")

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
    def generate(self, requests: Sequence[FrameRequest]) -> list[Generated]:
        """The generated frames, (H, W, 3) uint8 each at the size of its ``render_rgb``, the network
        run once per step for the whole batch (in chunks of the denoiser's fixed ``batch``, if any).
        Every frame carries the batch's stage timings."""
        timings: dict[str, float] = {}
        start = tick = self._clock()

        def lap(name: str) -> None:
            nonlocal tick
            now = self._clock()
            timings[name] = (now - tick) * 1e3
            tick = now

        frames = [self._prepare(request) for request in requests]
        lap("preprocess")
        for frame in frames:
            frame.encode_render(self.codec)
        lap("encode_render")
        for frame in frames:
            frame.encode_reference(self.codec, self.profile.cache_reference)
            if frame.noises is None:  # the release's order: posteriors first, then the sampler's noise
                frame.noises = self._sampler_noise(frame.generator)
        lap("encode_reference")

        z_render = _stack([f.z_render for f in frames])  # (B, C, h, w)
        z_reference = _stack([f.z_reference for f in frames])
        mask = _stack([f.mask for f in frames]) if self.use_mask else None
        cameras = self._batch_cameras([f.cameras for f in frames]) if self.use_cameras else None
        noises = [_stack(list(draws)) for draws in zip(*(f.noises for f in frames))]
        step = 0

        def denoise(x_t: torch.Tensor, t: int) -> torch.Tensor:
            nonlocal step
            out = self._denoise_chunked(x_t, t, z_render, z_reference, mask, cameras)
            lap(f"step_{step}")
            step += 1
            return out

        x0 = self.sampler.sample(denoise, noises)  # (B, C, h, w)
        if self.residual == "filled_render":
            x0 = x0 / self.residual_scale + _stack([f.z_base for f in frames])
        images = self.codec.decode(x0)  # (B, 3, R, R)
        lap("decode")

        out = [self._finish(frame, images[i:i + 1]) for i, frame in enumerate(frames)]
        lap("postprocess")
        timings["total"] = (tick - start) * 1e3
        return [Generated(rgb, dict(timings), frame.reference_cached) for rgb, frame in zip(out, frames)]

    def _prepare(self, request: FrameRequest) -> "_Frame":
        """One request's model inputs at the model's size, and its noise (drawn in the profile's order)."""
        height, width = request.render_rgb.shape[:2]
        render = self._to_model_size(uint8_to_unit(request.render_rgb, self.device))  # (1, 3, R, R)
        # The released model always sees a reference; without one the render stands in for it.
        has_reference = request.reference_rgb is not None
        if has_reference and request.reference_rgb.shape[:2] != (height, width):
            raise ConfigError(f"reference_rgb: expected shape {(height, width, 3)} like render_rgb, "
                              f"got {request.reference_rgb.shape}")
        reference = (self._to_model_size(uint8_to_unit(request.reference_rgb, self.device))
                     if has_reference else render)
        frame = _Frame(request, render, reference, self.noise.frame(request.seed))
        if self.use_mask:
            valid = torch.from_numpy(np.ascontiguousarray(request.render_valid)).to(self.device)
            frame.mask = F.adaptive_avg_pool2d(valid[None, None].float(), self.latent_size)  # (1, 1, h, w)
        if self.use_cameras:
            frame.cameras = self._cameras(request)
        if self.residual == "filled_render":
            fill = request.render_filled
            if fill is None:
                fill = residual_base(request.render_rgb, request.render_valid)
            frame.filled = uint8_to_unit(fill, self.device)
            frame.base = self._to_model_size(frame.filled)  # (1, 3, R, R)
        if not self.profile.posterior_first:
            frame.noises = self._sampler_noise(frame.generator)
        return frame

    def _sampler_noise(self, generator: torch.Generator) -> list[torch.Tensor]:
        """The sampler's noise tensors (1, C, h, w) of one frame, drawn from its generator."""
        shape = (1, self.codec.latent_channels, self.latent_size, self.latent_size)
        return [n.to(self.device) for n in draw_noise(generator, shape, self.sampler.num_noises)]

    def _denoise_chunked(self, x_t: torch.Tensor, t: int, z_render: torch.Tensor, z_reference: torch.Tensor,
                         mask: torch.Tensor | None, cameras: Any) -> torch.Tensor:
        """The denoiser on the whole batch, or in chunks of its fixed ``batch`` (the last one padded)."""
        fixed = getattr(self.denoiser, "batch", None)
        total = x_t.shape[0]
        if fixed is None or fixed == total:
            return self.denoiser(x_t, t, z_render, z_reference, mask, cameras)
        if cameras is not None:
            raise ConfigError("a fixed-batch denoiser takes no camera inputs")
        outs = []
        for lo in range(0, total, fixed):
            index = torch.arange(lo, lo + fixed).clamp_(max=total - 1)  # pads the last chunk with its last frame
            part = self.denoiser(x_t[index], t, z_render[index], z_reference[index],
                                 None if mask is None else mask[index], None)
            outs.append(part[:min(fixed, total - lo)])
        return torch.cat(outs)

    def _finish(self, frame: "_Frame", image: torch.Tensor) -> np.ndarray:
        """(H, W, 3) uint8 of one decoded (1, 3, R, R) image at its request's size."""
        height, width = frame.request.render_rgb.shape[:2]
        if image.shape[-2:] != (height, width):
            if frame.base is None:
                image = F.interpolate(image.float(), (height, width), mode="bicubic", antialias=True,
                                      align_corners=False)
            else:  # only the model's correction is upsampled; the fill keeps the render's detail
                image = frame.filled + F.interpolate(image.float() - frame.base, (height, width), mode="bilinear",
                                                     align_corners=False)
        return unit_to_uint8(image)[0]  # (H, W, 3)

    @staticmethod
    def _batch_cameras(cameras: list[Any]) -> Any:
        from worldfm_ros.model.dit import CameraInputs

        if len(cameras) == 1:
            return cameras[0]
        return CameraInputs(torch.cat([c.viewmats for c in cameras]), torch.cat([c.Ks for c in cameras]),
                            cameras[0].image_size)

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


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """(B, ...) of B (1, ...) tensors; a batch of one without a copy."""
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors)


class _Frame:
    """One request on its way through ``FrameModelPipeline.generate``: its tensors, noise and latents."""

    def __init__(self, request: FrameRequest, render: torch.Tensor, reference: torch.Tensor,
                 generator: torch.Generator) -> None:
        self.request, self.render, self.reference, self.generator = request, render, reference, generator
        self.mask: torch.Tensor | None = None
        self.cameras: Any = None
        self.filled: torch.Tensor | None = None  # (1, 3, H, W) the fill at the request's size, [-1, 1]
        self.base: torch.Tensor | None = None  # (1, 3, R, R) the fill at the model's size
        self.noises: list[torch.Tensor] | None = None
        self.z_render = self.z_base = self.z_reference = None
        self.reference_cached = False

    def encode_render(self, codec: Codec) -> None:
        self.z_render = codec.encode(self.render, self.generator)  # (1, C, h, w)
        if self.base is not None:
            self.z_base = codec.encode(self.base, self.generator)

    def encode_reference(self, codec: Codec, cache: bool) -> None:
        request = self.request
        if request.reference_rgb is not None and request.reference_id >= 0 and cache:
            # The content digest keeps a reloaded scene whose keyframe ids repeat from reusing stale latents.
            digest = hashlib.sha1(np.ascontiguousarray(request.reference_rgb), usedforsecurity=False).hexdigest()
            self.z_reference, self.reference_cached = codec.encode_reference(
                self.reference, (request.reference_id, digest), self.generator)
        else:
            self.z_reference = codec.encode(self.reference, self.generator)


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
    def profile(self) -> ModelProfile:
        """The backend's share of the compatibility profile it runs (``worldfm_ros.frame.profiles``)."""
        return self.pipeline.profile

    @property
    def canvas_size(self) -> int:
        """The model's square resolution in pixels."""
        return self.pipeline.resolution

    @property
    def corrects_fill(self) -> bool:
        """True for residual models (``DiTConfig.residual == "filled_render"``)."""
        return self.pipeline.residual == "filled_render"

    def generate_canvas(self, requests: Sequence[FrameRequest]) -> list[Generated]:
        return self.pipeline.generate(requests)

    def close(self) -> None:
        self.pipeline.codec.clear_cache()


def model_pipeline(denoiser: Denoiser, codec: Codec, sampler: Sampler, noise: NoiseSource, device: torch.device,
                   cfg: dict[str, Any], use_cameras: bool, profile: ModelProfile) -> FrameModelPipeline:
    """The FrameModelPipeline of a model described by ``cfg``: its DiTConfig as a dict
    (``DiTConfig.to_dict()``, or the metadata of an exported graph, whose missing keys take the
    released model's values: no mask channel, no residual)."""
    return FrameModelPipeline(denoiser, codec, sampler, cfg["input_size"], noise, device,
                              bool(cfg.get("use_mask_channel", False)), use_cameras,
                              cfg.get("residual", "none"), float(cfg.get("residual_scale", 1.0)),
                              profile)


def build_sampler_and_noise(sampler: str, steps: int, timesteps: list[int] | None, seed: int,
                            reuse_noise: bool, profile: ModelProfile) -> tuple[Sampler, NoiseSource]:
    """The sampler and noise source from the backend options shared by every neural backend
    (the ``release`` profile draws fresh noise every frame whatever ``reuse_noise`` says)."""
    reuse = reuse_noise and not profile.fresh_noise
    return make_sampler(sampler, steps, timesteps), NoiseSource(seed, reuse)
