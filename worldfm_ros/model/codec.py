"""Codecs between images and the latents the frame model works on, plus uint8 conversions.

Images are (B, 3, H, W) float tensors in [-1, 1], RGB. Latents are (B, C, H / f, W / f) with
C = ``latent_channels`` and f = ``downsample``.

* ``VAECodec``: a diffusers ``AutoencoderKL`` (the released model uses an SDXL-type VAE,
  scaling 0.13025). Latents are (posterior - shift_factor) * scaling_factor.
* ``PixelCodec``: no autoencoder; the image itself, optionally space-to-depth by a factor f
  (3 channels -> 3 f^2 channels at H / f), for small models trained from scratch.

Both cache reference latents per key (``encode_reference``, keyed by keyframe id and content),
because the chosen reference changes far less often than the target pose.
"""

from __future__ import annotations

import abc
import math
from collections import OrderedDict
from pathlib import Path
from typing import Any, Hashable

import numpy as np
import torch
import torch.nn.functional as F

from worldfm_ros.errors import CheckpointError, ConfigError


def uint8_to_unit(images: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """(H, W, 3) or (B, H, W, 3) uint8 RGB -> (B, 3, H, W) float32 in [-1, 1] (x / 127.5 - 1)."""
    if images.dtype != np.uint8 or images.shape[-1] != 3 or images.ndim not in (3, 4):
        raise ConfigError(f"images: expected (H, W, 3) or (B, H, W, 3) uint8, got {images.shape} {images.dtype}")
    t = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    t = t[None] if t.ndim == 3 else t
    return t.permute(0, 3, 1, 2).float() / 127.5 - 1.0


def unit_to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8 as released: trunc(clamp(127.5 x + 128, 0, 255))."""
    q = (127.5 * images.float() + 128.0).clamp(0.0, 255.0).to(torch.uint8)  # the cast truncates
    return q.permute(0, 2, 3, 1).contiguous().cpu().numpy()


class Codec(abc.ABC):
    """Image <-> latent mapping with a small per-keyframe cache of reference latents."""

    latent_channels: int
    downsample: int
    cache_size: int = 64  # the released scene format has 42 reference views

    def __init__(self) -> None:
        self._cache: OrderedDict[tuple, torch.Tensor] = OrderedDict()

    @abc.abstractmethod
    def encode(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, C, H / f, W / f) float32 latents.

        generator: CPU generator for codecs that sample a posterior; ignored otherwise.
        """

    @abc.abstractmethod
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) latents -> (B, 3, h f, w f) float32 images, approximately in [-1, 1]."""

    def encode_reference(self, images: torch.Tensor, key: Hashable,
                         generator: torch.Generator | None = None) -> tuple[torch.Tensor, bool]:
        """``encode`` with an LRU cache keyed by ``key`` and the image shape: (latents, whether
        they came from the cache).

        key: identifies the image content, e.g. (keyframe id, content digest); a caller that
        reuses a key for different pixels gets the stale latent.
        """
        full_key = (key, tuple(images.shape))
        hit = self._cache.get(full_key)
        if hit is not None:
            self._cache.move_to_end(full_key)
            return hit, True
        latents = self.encode(images, generator)
        self._cache[full_key] = latents
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return latents, False

    def clear_cache(self) -> None:
        """Forget every cached reference latent."""
        self._cache.clear()


class PixelCodec(Codec):
    """Pixel space with space-to-depth by ``factor``: 3 channels at H x W -> 3 f^2 at H / f x W / f."""

    def __init__(self, factor: int = 1) -> None:
        super().__init__()
        if factor < 1:
            raise ConfigError(f"PixelCodec factor: expected >= 1, got {factor}")
        self.downsample = int(factor)
        self.latent_channels = 3 * factor * factor

    def encode(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_images(images, self.downsample)
        return F.pixel_unshuffle(images.float(), self.downsample)  # (B, 3 f^2, H / f, W / f)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(latents.float(), self.downsample)  # (B, 3, h f, w f)


def sdxl_vae_config() -> dict[str, Any]:
    """AutoencoderKL config of the SDXL VAE architecture (the released model's VAE family)."""
    return {
        "in_channels": 3, "out_channels": 3, "latent_channels": 4,
        "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2,
        "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
        "act_fn": "silu", "norm_num_groups": 32, "sample_size": 1024, "scaling_factor": 0.13025,
    }


class VAECodec(Codec):
    """diffusers AutoencoderKL codec.

    vae: an ``AutoencoderKL`` already on its device and dtype. sample_posterior: False (the
    default here) encodes to the posterior mode, deterministic and flicker-free; True draws a
    posterior sample with the given generator, as the released pipeline does.
    """

    def __init__(self, vae: torch.nn.Module, sample_posterior: bool = False) -> None:
        super().__init__()
        self.vae = vae.eval().requires_grad_(False)
        cfg = vae.config
        self.scaling_factor = float(cfg.scaling_factor)
        self.shift_factor = float(getattr(cfg, "shift_factor", None) or 0.0)
        self.latent_channels = int(cfg.latent_channels)
        self.downsample = 2 ** (len(cfg.block_out_channels) - 1)
        self.sample_posterior = bool(sample_posterior)
        param = next(vae.parameters())
        self.device, self.dtype = param.device, param.dtype

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32, sample_posterior: bool = False) -> VAECodec:
        """Load a folder with config.json + diffusion_pytorch_model.safetensors (e.g. the release's vae/)."""
        path = Path(path)
        if not (path / "config.json").is_file():
            raise CheckpointError(f"{path}: expected a VAE folder with config.json "
                                  "and diffusion_pytorch_model.safetensors")
        if not (path / "diffusion_pytorch_model.safetensors").is_file():
            raise CheckpointError(f"{path}: diffusion_pytorch_model.safetensors missing "
                                  "(only safetensors VAE weights are loaded)")
        from diffusers import AutoencoderKL

        try:
            vae = AutoencoderKL.from_pretrained(path, torch_dtype=dtype, use_safetensors=True)
        except Exception as exc:  # diffusers raises many types for a bad config or weights file
            reason = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise CheckpointError(f"{path}: not a loadable AutoencoderKL ({type(exc).__name__}: {reason})") from None
        return cls(vae.to(device), sample_posterior)

    @classmethod
    def from_config(cls, config: dict[str, Any], device: str | torch.device = "cpu",
                    dtype: torch.dtype = torch.float32, sample_posterior: bool = False,
                    seed: int = 0) -> VAECodec:
        """A VAE with random weights built from an AutoencoderKL config (benchmarks, tests)."""
        from diffusers import AutoencoderKL

        torch.manual_seed(seed)
        return cls(AutoencoderKL(**config).to(device=device, dtype=dtype), sample_posterior)

    @torch.no_grad()
    def encode(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_images(images, self.downsample)
        dist = self.vae.encode(images.to(self.device, self.dtype)).latent_dist
        z = dist.sample(generator=generator) if self.sample_posterior else dist.mode()
        return ((z.float() - self.shift_factor) * self.scaling_factor)  # (B, C, H / f, W / f)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        z = latents.float() / self.scaling_factor + self.shift_factor
        return self.vae.decode(z.to(self.device, self.dtype)).sample.float()  # (B, 3, H, W)


def _check_images(images: torch.Tensor, factor: int) -> None:
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] % factor or images.shape[3] % factor:
        raise ConfigError(f"codec images: expected (B, 3, H, W) with H, W divisible by {factor}, "
                          f"got {tuple(images.shape)}")


def make_codec(latent_channels: int, vae_path: str | Path | None = None, device: torch.device | str = "cpu",
               dtype: torch.dtype = torch.float32, sample_posterior: bool = False) -> Codec:
    """The codec a model with ``latent_channels`` inputs needs.

    With ``vae_path``: a VAECodec from that folder (its latent channels must match), sampling
    the posterior when ``sample_posterior``. Without: a PixelCodec
    whose space-to-depth factor f satisfies 3 f^2 = latent_channels.
    """
    if vae_path is not None:
        codec = VAECodec.from_pretrained(vae_path, device, dtype, sample_posterior)
        if codec.latent_channels != latent_channels:
            raise CheckpointError(f"{vae_path}: VAE has {codec.latent_channels} latent channels, "
                                  f"the model expects {latent_channels}")
        return codec
    factor = math.isqrt(latent_channels // 3)
    if latent_channels % 3 or 3 * factor * factor != latent_channels:
        raise ConfigError(f"vae_path: the model takes {latent_channels}-channel latents, which is not a "
                          "pixel space-to-depth layout (3 f^2); give the VAE folder")
    return PixelCodec(factor)
