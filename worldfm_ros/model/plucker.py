"""Plücker ray features: one 6-vector (o x d, d) per token, from the token's camera ray.

The WorldFM release builds ``plucker_proj`` (Linear 6 -> D, SiLU, Linear D -> D) and never feeds
it; ``WorldFMDiT`` with camera_encoding "plucker" adds its output to the tokens after the
position embedding. The token centre follows the release's helper: u = (x + 0.5) W / w,
v = (y + 0.5) H / h for token column x and row y of an (h, w) token grid over an H x W image
(the pixel-edge convention, half a pixel from our integer-centre one; kept so that the
checkpoint's ``plucker_proj`` weights see the inputs they were built for).
"""

from __future__ import annotations

import torch
from torch import nn


def plucker_projection(hidden_size: int) -> nn.Sequential:
    """The ``plucker_proj`` module: Linear(6, D), SiLU, Linear(D, D) (checkpoint keys .0 and .2)."""
    return nn.Sequential(nn.Linear(6, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size))


def plucker_rays(viewmats: torch.Tensor, Ks: torch.Tensor, image_size: tuple[int, int],
                 grid_hw: tuple[int, int]) -> torch.Tensor:
    """Per-token Plücker coordinates, (B, V * h * w, 6) float32, camera-major, each grid row-major.

    viewmats: (B, V, 4, 4) world-to-camera [R | t], metres; Ks: (B, V, 3, 3) pixel intrinsics;
    image_size: (H, W) pixels the Ks refer to; grid_hw: (h, w) tokens per camera.
    Each feature is (o x d, d) with o = -R^T t the camera centre and d the unit ray direction
    through the token centre, both in the world frame.
    """
    height, width = image_size
    rows, cols = grid_hw
    device = viewmats.device
    u = (torch.arange(cols, dtype=torch.float32, device=device) + 0.5) * (width / cols)
    v = (torch.arange(rows, dtype=torch.float32, device=device) + 0.5) * (height / rows)
    vv, uu = torch.meshgrid(v, u, indexing="ij")  # (h, w) each
    pix = torch.stack([uu, vv, torch.ones_like(uu)], dim=-1).reshape(-1, 3)  # (n, 3)
    rays_cam = torch.einsum("bvij,nj->bvni", torch.linalg.inv(Ks.float()), pix)  # (B, V, n, 3)
    rays_cam = nn.functional.normalize(rays_cam, dim=-1)
    rot, trans = viewmats[..., :3, :3].float(), viewmats[..., :3, 3].float()  # (B, V, 3, 3), (B, V, 3)
    dirs = nn.functional.normalize(torch.einsum("bvji,bvnj->bvni", rot, rays_cam), dim=-1)  # (B, V, n, 3)
    origin = -torch.einsum("bvji,bvj->bvi", rot, trans)  # (B, V, 3)
    moment = torch.cross(origin[:, :, None].expand_as(dirs), dirs, dim=-1)  # (B, V, n, 3)
    return torch.cat([moment, dirs], dim=-1).flatten(1, 2)  # (B, V * n, 6)
