"""The frame model: a PixArt-Σ-style diffusion transformer over [noisy target | render | reference].

Structure and parameter names follow the InSpatio-WorldFM release (PixArt-Σ XL/2 with
cross-attention disabled), so its state dicts load without renaming:

* the three (C, h, w) latents are concatenated along the width and patch-embedded by one shared
  Conv2d (``x_embedder.proj``); no slot embedding, the slots differ only by position and content;
* a fixed 2-D sin-cos position embedding over the whole wide grid, PixArt-MS scaled:
  p_x = j / (w_grid / base_size) / pe_interpolation, p_y likewise, laid out
  [sin(p_x w) | cos(p_x w) | sin(p_y w) | cos(p_y w)] (x first), computed in float64;
* adaLN-single: timestep -> 256 frequency features [cos | sin] -> ``t_embedder`` MLP -> t;
  ``t_block`` (SiLU, Linear D -> 6D) -> t0, plus each block's learned ``scale_shift_table``;
* blocks of non-affine LayerNorm, self-attention over all 3 x h x w tokens, GELU(tanh) MLP;
* final layer modulated by t itself (not t0), applied to the target tokens only, unpatchified.

Tokens are kept camera-major (target grid, then render grid, then reference grid, each
row-major) instead of the release's merged-width row-major order: attention without a mask is
permutation-equivariant and every token keeps the position of its merged-grid cell, so outputs
agree, and the target tokens are simply the first third. PRoPE needs that order anyway.

Shapes below: B batch, C latent channels, (h, w) latent size of one view, (gh, gw) = (h, w) / p
token grid of one view, V = 3 views, N = V gh gw tokens, D hidden size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from worldfm_ros.errors import CameraError, ConfigError
from worldfm_ros.model.config import DiTConfig
from worldfm_ros.model.plucker import plucker_projection, plucker_rays
from worldfm_ros.model.prope import PRoPETransforms, prope_attention

TIMESTEP_FREQUENCIES = 256


@dataclass
class CameraInputs:
    """Cameras of the three slots, for PRoPE or Plücker models.

    viewmats: (B, 3, 4, 4) world-to-camera transforms (OpenCV axes, metres) of the slots
        (target, render, reference); the render is seen from the target camera, so slots 0 and 1
        are normally the same (``from_c2w`` builds it that way).
    Ks: (B, 3, 3, 3) pixel intrinsics of the slots, or None (PRoPE then uses P = viewmat;
        Plücker needs them).
    image_size: (H, W) pixels that the Ks refer to.
    """

    viewmats: torch.Tensor
    Ks: torch.Tensor | None
    image_size: tuple[int, int]

    def __post_init__(self) -> None:
        if self.viewmats.ndim != 4 or self.viewmats.shape[1:] != (3, 4, 4):
            raise CameraError(f"cameras.viewmats: expected (B, 3, 4, 4), got {tuple(self.viewmats.shape)}")
        if self.Ks is not None and self.Ks.shape != (self.viewmats.shape[0], 3, 3, 3):
            raise CameraError(f"cameras.Ks: expected ({self.viewmats.shape[0]}, 3, 3, 3), "
                              f"got {tuple(self.Ks.shape)}")
        if len(self.image_size) != 2 or min(self.image_size) <= 0:
            raise CameraError(f"cameras.image_size: expected (H, W) > 0, got {self.image_size}")

    @classmethod
    def from_c2w(cls, target_c2w: torch.Tensor, reference_c2w: torch.Tensor, target_K: torch.Tensor,
                 reference_K: torch.Tensor, image_size: tuple[int, int]) -> "CameraInputs":
        """Slots (target, target, reference) from camera-to-world poses.

        target_c2w, reference_c2w: (B, 4, 4) or (4, 4) camera-to-world, OpenCV axes, metres;
        target_K, reference_K: (B, 3, 3) or (3, 3) pixel intrinsics; image_size: (H, W).
        """
        c2w = [torch.as_tensor(m, dtype=torch.float64) for m in (target_c2w, target_c2w, reference_c2w)]
        ks = [torch.as_tensor(k, dtype=torch.float32) for k in (target_K, target_K, reference_K)]
        batch = max(m.shape[0] if m.ndim == 3 else 1 for m in c2w)
        c2w = torch.stack([m.expand(batch, 4, 4) for m in c2w], dim=1)  # (B, 3, 4, 4)
        ks = torch.stack([k.expand(batch, 3, 3) for k in ks], dim=1)  # (B, 3, 3, 3)
        return cls(torch.linalg.inv(c2w).float(), ks, (int(image_size[0]), int(image_size[1])))


def timestep_embedding(t: torch.Tensor, dim: int = TIMESTEP_FREQUENCIES, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal timestep features, (B, dim) float32, laid out [cos(t nu) | sin(t nu)] (cos first).

    t: (B,) timesteps (0 .. 999, may be fractional); nu_k = max_period^(-k / (dim / 2)).
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]  # (B, dim / 2)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (B, dim)


def sincos_pos_embed_2d(dim: int, grid_hw: tuple[int, int], base_size: int,
                        pe_interpolation: float = 1.0) -> np.ndarray:
    """Fixed 2-D sin-cos embedding of a (rows, cols) token grid, (rows * cols, dim) float64, row-major.

    Token (i, j) sits at p_x = j / (cols / base_size) / pe_interpolation and
    p_y = i / (rows / base_size) / pe_interpolation; its embedding is
    [sin(p_x w) | cos(p_x w) | sin(p_y w) | cos(p_y w)] with w_k = 10000^(-k / (dim / 4)).
    """
    rows, cols = grid_hw
    p_y = np.arange(rows, dtype=np.float64) / (rows / base_size) / pe_interpolation
    p_x = np.arange(cols, dtype=np.float64) / (cols / base_size) / pe_interpolation
    omega = np.arange(dim // 4, dtype=np.float64) / (dim / 4.0)
    omega = 1.0 / 10000.0 ** omega
    ex = np.outer(p_x, omega)  # (cols, dim / 4)
    ey = np.outer(p_y, omega)  # (rows, dim / 4)
    emb_x = np.concatenate([np.sin(ex), np.cos(ex)], axis=1)  # (cols, dim / 2)
    emb_y = np.concatenate([np.sin(ey), np.cos(ey)], axis=1)  # (rows, dim / 2)
    emb_x = np.broadcast_to(emb_x[None], (rows, cols, dim // 2))
    emb_y = np.broadcast_to(emb_y[:, None], (rows, cols, dim // 2))
    return np.concatenate([emb_x, emb_y], axis=-1).reshape(rows * cols, dim)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN modulation x (1 + scale) + shift; x (B, N, D), shift/scale (B, 1, D)."""
    return x * (1 + scale) + shift


class PatchEmbed(nn.Module):
    """Non-overlapping p x p patches of the wide latent canvas to D-dim tokens (``x_embedder.proj``)."""

    def __init__(self, in_channels: int, hidden_size: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, hidden_size, kernel_size=patch_size, stride=patch_size, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)  # (B, D, gh, V gw)


class TimestepEmbedder(nn.Module):
    """Timestep -> 256 sinusoidal features -> MLP (Linear, SiLU, Linear) -> (B, D)."""

    def __init__(self, hidden_size: int, frequency_size: int = TIMESTEP_FREQUENCIES) -> None:
        super().__init__()
        self.frequency_size = frequency_size
        self.mlp = nn.Sequential(nn.Linear(frequency_size, hidden_size), nn.SiLU(),
                                 nn.Linear(hidden_size, hidden_size))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        # The release rounds t through the model dtype first; float32 keeps fractional timesteps
        # exact and agrees with it for every integer t <= 2048 in fp16.
        freq = timestep_embedding(t, self.frequency_size).to(self.mlp[0].weight.dtype)  # (B, 256)
        return self.mlp(freq)  # (B, D)


class Attention(nn.Module):
    """Multi-head self-attention: one qkv Linear (q, k, v consecutive, heads consecutive), SDPA, proj."""

    def __init__(self, hidden_size: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size, bias=True)
        self.proj = nn.Linear(hidden_size, hidden_size, bias=True)

    def forward(self, x: torch.Tensor, prope: PRoPETransforms | None = None) -> torch.Tensor:
        B, N, D = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, D // self.num_heads)  # (B, N, 3, H, hd)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, N, hd) each
        if prope is None:
            out = F.scaled_dot_product_attention(q, k, v)  # (B, H, N, hd)
        else:
            out = prope_attention(q, k, v, prope)  # (B, H, N, hd)
        out = out.transpose(1, 2).reshape(B, N, D)  # (B, N, D)
        return self.proj(out)  # (B, N, D)


class Mlp(nn.Module):
    """fc1, GELU (tanh approximation), fc2."""

    def __init__(self, hidden_size: int, mlp_hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(hidden_size, mlp_hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(mlp_hidden, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))  # (B, N, D)


class DiTBlock(nn.Module):
    """Self-attention + MLP, each pre-normed, modulated and gated by adaLN-single."""

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden_size, num_heads)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(hidden_size, int(hidden_size * mlp_ratio))
        # Rows: shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp.
        self.scale_shift_table = nn.Parameter(torch.zeros(6, hidden_size))

    def forward(self, x: torch.Tensor, t0: torch.Tensor, prope: PRoPETransforms | None = None) -> torch.Tensor:
        B = x.shape[0]
        mod = self.scale_shift_table[None] + t0.reshape(B, 6, -1)  # (B, 6, D)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod.chunk(6, dim=1)  # (B, 1, D) each
        x = x + gate_msa * self.attn(modulate(self.norm1(x), shift_msa, scale_msa), prope)  # (B, N, D)
        x = x + gate_mlp * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))  # (B, N, D)
        return x


class FinalLayer(nn.Module):
    """LayerNorm, modulation by (table + t), Linear to p * p * out_channels per token."""

    def __init__(self, hidden_size: int, patch_size: int, out_channels: int) -> None:
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels, bias=True)
        # Rows: shift, scale.
        self.scale_shift_table = nn.Parameter(torch.zeros(2, hidden_size))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        shift, scale = (self.scale_shift_table[None] + t[:, None]).chunk(2, dim=1)  # (B, 1, D) each
        x = modulate(self.norm_final(x), shift, scale)  # (B, n, D)
        return self.linear(x)  # (B, n, p p out)


class WorldFMDiT(nn.Module):
    """Tri-slot diffusion transformer predicting the target view from its render and a reference.

    ``forward(x_t, t, render, reference, mask=None, cameras=None)``:
    x_t: (B, C, h, w) noisy target latent; t: (B,) timesteps in [0, 999] (int or float);
    render: (B, C, h, w) latent of the point-cloud render at the target pose;
    reference: (B, C, h, w) latent of the reference keyframe;
    mask: (B, 1, h, w) render validity in [0, 1] (1 = covered), required iff cfg.use_mask_channel;
    cameras: CameraInputs, required iff cfg.camera_encoding is "prope" or "plucker".
    Returns (B, cfg.out_channels, h, w) for the target slot; with learn_sigma the first C channels
    are the prediction (v for the released checkpoints) and the rest the unused variance head.
    h and w may differ from cfg.input_size (multiples of the patch size); positions follow
    the PixArt-MS rule relative to cfg.base_size.
    """

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        D = cfg.hidden_size
        self.x_embedder = PatchEmbed(cfg.in_channels, D, cfg.patch_size)
        self.t_embedder = TimestepEmbedder(D)
        self.t_block = nn.Sequential(nn.SiLU(), nn.Linear(D, 6 * D, bias=True))
        self.blocks = nn.ModuleList([DiTBlock(D, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth)])
        self.final_layer = FinalLayer(D, cfg.patch_size, cfg.out_channels)
        if cfg.camera_encoding == "plucker":
            self.plucker_proj = plucker_projection(D)
        self._default_grid = (cfg.base_size, cfg.num_views * cfg.base_size)
        # Not persistent: official checkpoints carry a stale copy that is dropped and recomputed.
        self.register_buffer("pos_embed", torch.empty(1, self._default_grid[0] * self._default_grid[1], D),
                             persistent=False)
        self._pos_cache: dict[tuple, torch.Tensor] = {}
        self.reset_buffers()
        self.initialize_weights()

    def reset_buffers(self) -> None:
        """Recompute the fixed position embedding (also needed after ``to_empty``).

        The float64 table is stored in the buffer's dtype; ``.to(fp16)`` later rounds it through
        float32, which for the XL 32 x 96 grid gives the same fp16/bf16 values as a direct cast.
        """
        self._pos_cache.clear()
        if self.pos_embed.device.type == "meta":  # shape-only model: nothing to compute
            return
        table = sincos_pos_embed_2d(self.cfg.hidden_size, self._default_grid, self.cfg.base_size,
                                    self.cfg.pe_interpolation)
        self.pos_embed = torch.from_numpy(table).to(device=self.pos_embed.device, dtype=self.pos_embed.dtype)[None]

    def initialize_weights(self) -> None:
        """From-scratch initialisation, adaLN-Zero style (official weights overwrite all of it).

        Linear and patch weights: Xavier-uniform, biases zero; timestep MLP: N(0, 0.02).
        Zeroed so that training starts from a well-behaved function: ``t_block`` (the modulation
        starts at each table's value), the gate rows of every block table (every block starts as
        the identity), ``final_layer.linear`` (the prediction starts at 0) and the second
        ``plucker_proj`` layer (turning Plücker on does not perturb a pretrained model).
        Shift/scale rows of the tables: N(0, 1/D), as in PixArt.
        """
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        w = self.x_embedder.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.x_embedder.proj.bias)
        for layer in (self.t_embedder.mlp[0], self.t_embedder.mlp[2]):
            nn.init.normal_(layer.weight, std=0.02)
        nn.init.zeros_(self.t_block[1].weight)
        nn.init.zeros_(self.t_block[1].bias)
        D = self.cfg.hidden_size
        with torch.no_grad():
            for block in self.blocks:
                block.scale_shift_table.normal_(std=D ** -0.5)
                block.scale_shift_table[2].zero_()
                block.scale_shift_table[5].zero_()
            self.final_layer.scale_shift_table.normal_(std=D ** -0.5)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)
        if self.cfg.camera_encoding == "plucker":
            nn.init.zeros_(self.plucker_proj[2].weight)
            nn.init.zeros_(self.plucker_proj[2].bias)

    def _positions(self, grid_hw: tuple[int, int], like: torch.Tensor) -> torch.Tensor:
        """(1, rows * cols, D) position embedding of the merged grid, in ``like``'s device and dtype."""
        if grid_hw == self._default_grid and self.pos_embed.dtype == like.dtype:
            return self.pos_embed
        key = (grid_hw, like.device, like.dtype)
        if key not in self._pos_cache:
            table = sincos_pos_embed_2d(self.cfg.hidden_size, grid_hw, self.cfg.base_size,
                                        self.cfg.pe_interpolation)
            self._pos_cache[key] = torch.from_numpy(table).to(device=like.device, dtype=like.dtype)[None]
        return self._pos_cache[key]

    def _check_inputs(self, x_t: torch.Tensor, t: torch.Tensor, render: torch.Tensor, reference: torch.Tensor,
                      mask: torch.Tensor | None, cameras: CameraInputs | None) -> None:
        cfg = self.cfg
        if x_t.ndim != 4 or x_t.shape[1] != cfg.latent_channels:
            raise ConfigError(f"x_t: expected (B, {cfg.latent_channels}, h, w), got {tuple(x_t.shape)}")
        if x_t.shape[2] % cfg.patch_size or x_t.shape[3] % cfg.patch_size:
            raise ConfigError(f"x_t: latent size {tuple(x_t.shape[2:])} is not a multiple of the patch "
                              f"size {cfg.patch_size}")
        if t.numel() not in (1, x_t.shape[0]):
            raise ConfigError(f"t: expected {x_t.shape[0]} timesteps (one per sample) or one, got {t.numel()}")
        for name, value in (("render", render), ("reference", reference)):
            if value.shape != x_t.shape:
                raise ConfigError(f"{name}: expected {tuple(x_t.shape)} like x_t, got {tuple(value.shape)}")
        if cfg.use_mask_channel:
            expected = (x_t.shape[0], 1, *x_t.shape[2:])
            if mask is None or tuple(mask.shape) != expected:
                got = None if mask is None else tuple(mask.shape)
                raise ConfigError(f"mask: this model has a mask channel and needs a {expected} mask, got {got}")
        if cfg.camera_encoding != "none":
            if cameras is None:
                raise ConfigError(f"cameras: required by camera_encoding {cfg.camera_encoding!r}")
            if cameras.viewmats.shape[0] != x_t.shape[0]:
                raise CameraError(f"cameras.viewmats: batch {cameras.viewmats.shape[0]} does not match "
                                  f"x_t batch {x_t.shape[0]}")
            if cfg.camera_encoding == "plucker" and cameras.Ks is None:
                raise CameraError("cameras.Ks: Plücker rays need pixel intrinsics")

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, render: torch.Tensor, reference: torch.Tensor,
                mask: torch.Tensor | None = None, cameras: CameraInputs | None = None) -> torch.Tensor:
        self._check_inputs(x_t, t, render, reference, mask, cameras)
        cfg = self.cfg
        B, _, h, w = x_t.shape
        p, V, D = cfg.patch_size, cfg.num_views, cfg.hidden_size
        gh, gw = h // p, w // p
        slots = [x_t, render, reference]
        if cfg.use_mask_channel:
            mask = mask.to(x_t.dtype)
            empty = torch.zeros_like(mask)
            slots = [torch.cat([x_t, empty], 1), torch.cat([render, mask], 1),
                     torch.cat([reference, empty], 1)]  # (B, C + 1, h, w) each
        x = torch.cat(slots, dim=3)  # (B, C_in, h, V w)
        x = self.x_embedder(x)  # (B, D, gh, V gw)
        x = x.flatten(2).transpose(1, 2)  # (B, gh V gw, D) merged-grid row-major
        x = x + self._positions((gh, V * gw), x)  # (B, gh V gw, D)
        x = x.reshape(B, gh, V, gw, D).transpose(1, 2).reshape(B, V * gh * gw, D)  # (B, N, D) camera-major
        prope = None
        if cfg.camera_encoding != "none":
            viewmats = cameras.viewmats.to(x.device)
            Ks = None if cameras.Ks is None else cameras.Ks.to(x.device)
        if cfg.camera_encoding == "plucker":
            rays = plucker_rays(viewmats, Ks, cameras.image_size, (gh, gw))  # (B, N, 6)
            x = x + self.plucker_proj(rays.to(x.dtype))  # (B, N, D)
        elif cfg.camera_encoding == "prope":
            prope = PRoPETransforms.build(viewmats, Ks, cameras.image_size, (gh, gw), cfg.head_dim)
        t = t.reshape(-1).expand(B) if t.numel() == 1 else t.reshape(B)  # (B,)
        t_emb = self.t_embedder(t)  # (B, D)
        t0 = self.t_block(t_emb)  # (B, 6 D)
        for block in self.blocks:
            x = block(x, t0, prope)  # (B, N, D)
        x = x[:, : gh * gw]  # (B, gh gw, D) target tokens
        x = self.final_layer(x, t_emb)  # (B, gh gw, p p out)
        return self.unpatchify(x, gh, gw)  # (B, out, h, w)

    def unpatchify(self, x: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
        """(B, gh gw, p p c) tokens -> (B, c, gh p, gw p); token entry (a p + b) c + k -> pixel (k, a, b)."""
        p, c = self.cfg.patch_size, self.cfg.out_channels
        x = x.reshape(x.shape[0], gh, gw, p, p, c)  # (B, gh, gw, p, p, c)
        x = x.permute(0, 5, 1, 3, 2, 4)  # (B, c, gh, p, gw, p)
        return x.reshape(x.shape[0], c, gh * p, gw * p)  # (B, c, h, w)
