"""Configuration of the frame model (``WorldFMDiT``): one frozen dataclass plus named sizes.

``DiTConfig.xl_2()`` is the shape of the released InSpatio-WorldFM checkpoints (PixArt-Σ XL/2:
28 blocks x 1152 wide, 16 heads of 72, patch 2, 64x64 latents per 512x512 view). ``tiny()`` runs
in milliseconds on a CPU and is what the tests use; ``small()`` is a size worth training from
scratch on one GPU. The config travels with the weights as JSON (``to_dict`` / ``from_dict``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from worldfm_ros.errors import ConfigError

CAMERA_ENCODINGS = ("none", "prope", "plucker")
RESIDUAL_BASES = ("none", "filled_render")


@dataclass(frozen=True)
class DiTConfig:
    """Hyper-parameters of the tri-slot DiT ``[noisy target | anchor render | reference]``.

    hidden_size, depth, num_heads: transformer width, number of blocks, attention heads.
    latent_channels: channels of each slot's latent (4 for the SD/SDXL VAE).
    patch_size: side of the square latent patch turned into one token.
    mlp_ratio: MLP hidden width / hidden_size.
    learn_sigma: the network also outputs a variance head, so out_channels = 2 * latent_channels
        (the released checkpoints do; the sampler uses only the first latent_channels).
    input_size: latent side of one view (64 for 512x512 images and a VAE of factor 8).
    pe_interpolation: divisor of the sin-cos positions; the release uses image_size / 512.
    use_mask_channel: append a 5th input channel carrying the render-validity mask (render slot
        only; zeros on the target and reference slots). The released model has none.
    camera_encoding: "none" (the release), "prope" (projective relative encoding inside
        attention) or "plucker" (per-token ray features added to the tokens).
    num_views: width slots of the canvas; the layout is fixed at 3 (target, render, reference).
    residual: what the generated latent is added to. "none" (the release): it is the frame.
        "filled_render": it is the difference between the frame and the push-pull-filled anchor
        render (``render.fill.residual_base``), both encoded; a zero output reproduces the
        anchor-only backend, so the network only learns what the classical fill gets wrong.
    residual_scale: the network's latent is the residual times this factor (like a VAE's
        scaling factor: a residual of unit spread keeps the re-noised second step informative).
    """

    hidden_size: int
    depth: int
    num_heads: int
    latent_channels: int = 4
    patch_size: int = 2
    mlp_ratio: float = 4.0
    learn_sigma: bool = True
    input_size: int = 64
    pe_interpolation: float = 1.0
    use_mask_channel: bool = False
    camera_encoding: str = "none"
    num_views: int = 3
    residual: str = "none"
    residual_scale: float = 1.0

    def __post_init__(self) -> None:
        for name in ("hidden_size", "depth", "num_heads", "latent_channels", "patch_size", "input_size",
                     "num_views"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"DiTConfig.{name}: expected a positive integer, got {value!r}")
        for name in ("mlp_ratio", "pe_interpolation", "residual_scale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value <= 0:
                raise ConfigError(f"DiTConfig.{name}: expected a positive finite number, got {value!r}")
        for name in ("learn_sigma", "use_mask_channel"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"DiTConfig.{name}: expected true or false, got {getattr(self, name)!r}")
        if self.camera_encoding not in CAMERA_ENCODINGS:
            raise ConfigError(f"DiTConfig.camera_encoding: expected one of {list(CAMERA_ENCODINGS)}, "
                              f"got {self.camera_encoding!r}")
        if self.residual not in RESIDUAL_BASES:
            raise ConfigError(f"DiTConfig.residual: expected one of {list(RESIDUAL_BASES)}, got {self.residual!r}")
        if self.num_views != 3:
            raise ConfigError(f"DiTConfig.num_views: only the 3-slot layout [target | render | reference] "
                              f"exists, got {self.num_views}")
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"DiTConfig.hidden_size: {self.hidden_size} is not divisible by "
                              f"num_heads {self.num_heads}")
        if self.hidden_size % 4:
            raise ConfigError(f"DiTConfig.hidden_size: the 2-D sin-cos embedding needs a multiple of 4, "
                              f"got {self.hidden_size}")
        if self.input_size % self.patch_size:
            raise ConfigError(f"DiTConfig.input_size: {self.input_size} is not a multiple of patch_size "
                              f"{self.patch_size}")
        if self.camera_encoding == "prope" and self.head_dim % 4:
            raise ConfigError(f"DiTConfig.camera_encoding: 'prope' needs a head dimension divisible by 4, "
                              f"got {self.head_dim} ({self.hidden_size} / {self.num_heads} heads)")

    @property
    def in_channels(self) -> int:
        """Channels per slot entering the patch embedding (latent, plus the mask channel if any)."""
        return self.latent_channels + int(self.use_mask_channel)

    @property
    def out_channels(self) -> int:
        """Channels of the network output: 2 * latent_channels with learn_sigma, else latent_channels."""
        return self.latent_channels * (2 if self.learn_sigma else 1)

    @property
    def head_dim(self) -> int:
        """Channels per attention head."""
        return self.hidden_size // self.num_heads

    @property
    def base_size(self) -> int:
        """Tokens per view side at the training resolution (input_size // patch_size), the unit of
        the PixArt-MS position scaling. Derived, so ``dataclasses.replace(input_size=...)`` keeps
        it consistent."""
        return self.input_size // self.patch_size

    @property
    def tokens_per_view(self) -> int:
        """Tokens of one view at input_size: base_size ** 2."""
        return self.base_size ** 2

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DiTConfig":
        """Inverse of ``to_dict``; unknown keys or invalid values raise ConfigError."""
        if not isinstance(data, dict):
            raise ConfigError(f"DiTConfig: expected a mapping, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"DiTConfig: unknown key(s) {unknown}; known: {sorted(names)}")
        required = {"hidden_size", "depth", "num_heads"}
        missing = sorted(required - set(data))
        if missing:
            raise ConfigError(f"DiTConfig: missing key(s) {missing}")
        values = dict(data)
        for name in ("mlp_ratio", "pe_interpolation", "residual_scale"):
            # JSON has one number type: 4 and 4.0 are the same config.
            if isinstance(values.get(name), int) and not isinstance(values.get(name), bool):
                values[name] = float(values[name])
        return cls(**values)

    @classmethod
    def xl_2(cls, **overrides: Any) -> "DiTConfig":
        """The released WorldFM network: 28 blocks x 1152, 16 heads, patch 2, 64x64 latents (512 px)."""
        return dataclasses.replace(cls(hidden_size=1152, depth=28, num_heads=16), **overrides)

    @classmethod
    def small(cls, **overrides: Any) -> "DiTConfig":
        """12 blocks x 384, 6 heads of 64, patch 2, 32x32 latents (256 px with a factor-8 VAE)."""
        return dataclasses.replace(cls(hidden_size=384, depth=12, num_heads=6, input_size=32), **overrides)

    @classmethod
    def tiny(cls, **overrides: Any) -> "DiTConfig":
        """2 blocks x 64, 4 heads of 16, patch 2, 8x8 latents: milliseconds on a CPU, for tests."""
        return dataclasses.replace(cls(hidden_size=64, depth=2, num_heads=4, input_size=8), **overrides)

    @classmethod
    def named(cls, name: str, **overrides: Any) -> "DiTConfig":
        """One of ``CONFIG_NAMES`` ('xl_2', 'small', 'tiny'), with optional field overrides."""
        if name not in CONFIG_NAMES:
            raise ConfigError(f"model config: expected one of {list(CONFIG_NAMES)}, got {name!r}")
        return getattr(cls, name)(**overrides)


CONFIG_NAMES = ("xl_2", "small", "tiny")
