"""PRoPE: projective relative position encoding of camera views inside attention.

After Li et al., "Cameras as Relative Positional Encoding" (arXiv 2507.10496), in the form the
WorldFM release describes (and never runs). Each attention head's channels are split into three
block-diagonal groups (``prope_split``):

* projective: consecutive 4-vectors transformed by the token's camera matrix P = lift(K~) V,
  q -> P^T q, k -> P^-1 k, v -> P^-1 v and the attention output o -> P o, so the score between
  tokens a and b is q^T P_a P_b^-1 k and the values travel relative to the querying camera;
* RoPE on the token's patch column, then RoPE on its patch row, both split-half (channel m pairs
  with m + n/2), frequencies 100^(-k/(n/2)), positions counted per camera (0 .. w-1, 0 .. h-1);
  q, k and v are rotated, the output is rotated back.

Everything is relative: moving all cameras by one rigid world transform changes nothing.
Tokens are laid out camera-major (each camera's h x w grid row-major, cameras one after the
other), which is the order ``WorldFMDiT`` keeps its tokens in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from worldfm_ros.errors import CameraError

ROPE_BASE = 100.0


def prope_split(head_dim: int) -> tuple[int, int]:
    """(projective channels, RoPE channels per image axis) of one head.

    The projective group takes the largest multiple of 4 not above head_dim / 2, and the rest
    is shared equally by x and y: 72 -> (36, 18), 64 -> (32, 16), 16 -> (8, 4). head_dim must be
    a multiple of 4 so that both RoPE groups have an even width.
    """
    if head_dim <= 0 or head_dim % 4:
        raise CameraError(f"PRoPE: head dimension must be a positive multiple of 4, got {head_dim}")
    projective = 4 * (head_dim // 8)
    return projective, (head_dim - projective) // 2


def normalized_intrinsics(Ks: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Pixel intrinsics -> K~ = [[fx/W, 0, cx/W - 0.5], [0, fy/H, cy/H - 0.5], [0, 0, 1]].

    Ks: (..., 3, 3) pixel intrinsics; image_size: (H, W) in pixels. Returns (..., 3, 3) float32.
    """
    height, width = image_size
    Ks = Ks.float()
    out = torch.zeros_like(Ks)
    out[..., 0, 0] = Ks[..., 0, 0] / width
    out[..., 0, 2] = Ks[..., 0, 2] / width - 0.5
    out[..., 1, 1] = Ks[..., 1, 1] / height
    out[..., 1, 2] = Ks[..., 1, 2] / height - 0.5
    out[..., 2, 2] = 1.0
    return out


def projection_matrices(viewmats: torch.Tensor, Ks: torch.Tensor | None,
                        image_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(P, P^-1), each (..., 4, 4) float32, with P = lift(K~) @ viewmat.

    viewmats: (..., 4, 4) rigid world-to-camera transforms; Ks: (..., 3, 3) pixel intrinsics or
    None (then P = viewmat). Both inverses are analytic: SE(3) for the viewmat, the closed form
    of an upper-triangular pinhole matrix for K~.
    """
    viewmats = viewmats.float()
    rot, trans = viewmats[..., :3, :3], viewmats[..., :3, 3:]
    view_inv = torch.zeros_like(viewmats)
    view_inv[..., :3, :3] = rot.transpose(-1, -2)
    view_inv[..., :3, 3:] = -rot.transpose(-1, -2) @ trans
    view_inv[..., 3, 3] = 1.0
    if Ks is None:
        return viewmats, view_inv
    k = normalized_intrinsics(Ks, image_size)
    fx, fy, cx, cy = k[..., 0, 0], k[..., 1, 1], k[..., 0, 2], k[..., 1, 2]
    lift = torch.zeros_like(viewmats)
    lift[..., :3, :3] = k
    lift[..., 3, 3] = 1.0
    lift_inv = torch.zeros_like(viewmats)
    lift_inv[..., 0, 0] = 1.0 / fx
    lift_inv[..., 0, 2] = -cx / fx
    lift_inv[..., 1, 1] = 1.0 / fy
    lift_inv[..., 1, 2] = -cy / fy
    lift_inv[..., 2, 2] = 1.0
    lift_inv[..., 3, 3] = 1.0
    return lift @ viewmats, view_inv @ lift_inv


def _rope_tables(length: int, channels: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of pos * 100^(-k/(channels/2)), each (length, channels/2) float32."""
    pairs = channels // 2
    freqs = ROPE_BASE ** (-torch.arange(pairs, dtype=torch.float32, device=device) / pairs)
    angles = torch.arange(length, dtype=torch.float32, device=device)[:, None] * freqs[None]
    return torch.cos(angles), torch.sin(angles)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, inverse: bool) -> torch.Tensor:
    """Split-half rotation (a, b) -> (a cos + b sin, -a sin + b cos); the inverse negates sin."""
    a, b = x.chunk(2, dim=-1)
    if inverse:
        sin = -sin
    return torch.cat([a * cos + b * sin, b * cos - a * sin], dim=-1)


@dataclass
class PRoPETransforms:
    """The per-forward PRoPE state of V cameras, each seen as an (h, w) token grid.

    P, P_inv: (B, V, 4, 4) float32 camera matrices; cos_x, sin_x, cos_y, sin_y: (h * w, n/2)
    float32 RoPE tables of one camera's tokens (row-major); projective, rope: the channel split.
    """

    P: torch.Tensor
    P_inv: torch.Tensor
    cos_x: torch.Tensor
    sin_x: torch.Tensor
    cos_y: torch.Tensor
    sin_y: torch.Tensor
    projective: int
    rope: int

    @classmethod
    def build(cls, viewmats: torch.Tensor, Ks: torch.Tensor | None, image_size: tuple[int, int],
              grid_hw: tuple[int, int], head_dim: int) -> "PRoPETransforms":
        """viewmats: (B, V, 4, 4) world-to-camera; Ks: (B, V, 3, 3) pixel intrinsics or None;
        image_size: (H, W) pixels the Ks refer to; grid_hw: (h, w) tokens per camera."""
        projective, rope = prope_split(head_dim)
        P, P_inv = projection_matrices(viewmats, Ks, image_size)
        height, width = grid_hw
        cos_x, sin_x = _rope_tables(width, rope, viewmats.device)
        cos_y, sin_y = _rope_tables(height, rope, viewmats.device)
        cols = torch.arange(width, device=viewmats.device).repeat(height)  # (h * w,)
        rows = torch.arange(height, device=viewmats.device).repeat_interleave(width)  # (h * w,)
        return cls(P, P_inv, cos_x[cols], sin_x[cols], cos_y[rows], sin_y[rows], projective, rope)

    def _apply(self, x: torch.Tensor, matrix: torch.Tensor, transpose: bool, inverse_rope: bool) -> torch.Tensor:
        """x: (B, heads, V * h * w, head_dim), camera-major. Returns the same shape and dtype."""
        batch, heads, tokens, _ = x.shape
        views = matrix.shape[1]
        x = x.reshape(batch, heads, views, tokens // views, -1)  # (B, H, V, n, hd)
        proj, rx, ry = x.split([self.projective, self.rope, self.rope], dim=-1)
        proj = proj.unflatten(-1, (-1, 4))  # (B, H, V, n, hd_p / 4, 4)
        m = matrix.to(x.dtype)
        pattern = "bvji,bhvnkj->bhvnki" if transpose else "bvij,bhvnkj->bhvnki"
        proj = torch.einsum(pattern, m, proj).flatten(-2)  # (B, H, V, n, hd_p)
        dtype = x.dtype
        rx = _rotate(rx, self.cos_x.to(dtype), self.sin_x.to(dtype), inverse_rope)  # (B, H, V, n, r)
        ry = _rotate(ry, self.cos_y.to(dtype), self.sin_y.to(dtype), inverse_rope)  # (B, H, V, n, r)
        return torch.cat([proj, rx, ry], dim=-1).reshape(batch, heads, tokens, -1)  # (B, H, N, hd)

    def transform_q(self, q: torch.Tensor) -> torch.Tensor:
        """P^T on the projective group, RoPE on the rest. q: (B, heads, N, head_dim)."""
        return self._apply(q, self.P, transpose=True, inverse_rope=False)

    def transform_kv(self, x: torch.Tensor) -> torch.Tensor:
        """P^-1 on the projective group, RoPE on the rest; for keys and values alike."""
        return self._apply(x, self.P_inv, transpose=False, inverse_rope=False)

    def transform_out(self, o: torch.Tensor) -> torch.Tensor:
        """P on the projective group, inverse RoPE on the rest: back to the query's own frame."""
        return self._apply(o, self.P, transpose=False, inverse_rope=True)


def prope_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, tf: PRoPETransforms) -> torch.Tensor:
    """Softmax attention with PRoPE. q, k, v: (B, heads, N, head_dim), camera-major tokens.

    Returns (B, heads, N, head_dim); the scale stays 1/sqrt(head_dim).
    """
    out = F.scaled_dot_product_attention(tf.transform_q(q), tf.transform_kv(k), tf.transform_kv(v))
    return tf.transform_out(out)  # (B, H, N, hd)
