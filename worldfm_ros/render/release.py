"""The released WorldFM pipeline's condition renderer, reproduced for the ``release`` profile.

Rules (spec §3.4), on the same pinhole projection as ``PointCloudRenderer``:

* positions are stored in float16 and moved to the camera in float16:
  X_c = fp16(fp16(R) X_w) + fp16(t), with (R, t) the world-to-camera of c2w; depth z = X_c.z
  in float32. At 10-20 m a float16 position is only good to 8-16 mm;
* points with near < z < 1e6 are projected in float32 to (round(u), round(v)), halves to even,
  exactly one pixel per point;
* per pixel, every point within ``TIE_BAND_M`` of the nearest depth may write its colour and
  the last write wins; the release leaves the order to the GPU scheduler, here it is the point
  with the highest index among them (deterministic);
* colours are stored as float16(c / 255) and read back as trunc(float32 value * 255), so 131 of
  the 256 codes come back as c - 1;
* depth is the nearest z, 0 = empty; holes are black.
"""

from __future__ import annotations

import numpy as np
import torch

from worldfm_ros.camera import PinholeCamera, check_pose, invert_pose
from worldfm_ros.errors import CameraError
from worldfm_ros.render.cloud import check_points
from worldfm_ros.render.pointcloud import RenderTensors, resolve_device
from worldfm_ros.render.result import DEFAULT_NEAR, RenderResult

#: depth band (metres) above a pixel's nearest point inside which points tie
TIE_BAND_M = 1e-4
#: far clipping distance of the release, metres
FAR_M = 1e6


def fp16_colours(colors: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 -> (N, 3) uint8 as the release's float16 colour storage returns them."""
    stored = (np.asarray(colors, np.float64) / 255.0).astype(np.float16)
    return (stored.astype(np.float32) * np.float32(255.0)).astype(np.uint8)  # the cast truncates


class ReleaseRenderer:
    """Point renderer with the release's float16 storage, tie band and colour truncation.

    points: (N, 3) float32 world positions, metres; colors: (N, 3) uint8 RGB; device: where
    the cloud lives; near: metres. Same ``render`` / ``render_tensors`` interface as
    ``PointCloudRenderer`` (``point_radius`` must be 0: the release splats one pixel per point).
    """

    def __init__(self, points: np.ndarray, colors: np.ndarray, device: str | torch.device = "cpu",
                 near: float = DEFAULT_NEAR) -> None:
        points, colors = check_points(points, colors, "release renderer")
        self.device = resolve_device(device)
        self.near = float(near)
        self.num_points = len(points)
        self._xyz = torch.from_numpy(points.astype(np.float16)).to(self.device)  # (N, 3) fp16
        rgb = np.zeros((self.num_points + 1, 3), np.uint8)  # row N: the black of an empty pixel
        rgb[:-1] = fp16_colours(colors)
        self._rgb = torch.from_numpy(rgb).to(self.device)

    def render(self, camera: PinholeCamera, c2w: np.ndarray, point_radius: int = 0) -> RenderResult:
        """Render at camera-to-world c2w ((4, 4), OpenCV axes, metres); numpy outputs."""
        return self.render_tensors(camera, c2w, point_radius).numpy()

    def render_tensors(self, camera: PinholeCamera, c2w: np.ndarray, point_radius: int = 0) -> RenderTensors:
        """Like :meth:`render`, outputs as tensors on the renderer's device."""
        if point_radius != 0:
            raise CameraError(f"point_radius: the release renderer splats one pixel per point, got {point_radius}")
        w2c = invert_pose(check_pose(c2w, "c2w"))
        R = torch.from_numpy(w2c[:3, :3].astype(np.float16)).to(self.device).float()  # (3, 3)
        t = torch.from_numpy(w2c[:3, 3].astype(np.float16)).to(self.device)  # (3,) fp16
        xyz = self._xyz.float()  # (N, 3), exact
        # Products of float16 values are exact in float32; the fixed order keeps devices equal.
        rot = xyz[:, 0:1] * R[:, 0] + xyz[:, 1:2] * R[:, 1] + xyz[:, 2:3] * R[:, 2]  # (N, 3)
        cam = (rot.half() + t).float()  # (N, 3) the float16 transform
        z = cam[:, 2]
        width, height = camera.width, camera.height
        zs = torch.where(z > self.near, z, torch.ones_like(z))
        u = (np.float32(camera.fx) * cam[:, 0] / zs + np.float32(camera.cx)).round()
        v = (np.float32(camera.fy) * cam[:, 1] / zs + np.float32(camera.cy)).round()
        keep = (z > self.near) & (z < FAR_M) & torch.isfinite(z) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
        index = torch.nonzero(keep).squeeze(1)  # (M,) point rows
        pix = (v[index] * width + u[index]).long()  # (M,)
        zk = z[index]
        zmin = torch.full((height * width,), float("inf"), device=self.device)
        zmin.scatter_reduce_(0, pix, zk, "amin")
        tied = zk <= zmin[pix] + TIE_BAND_M
        winner = torch.full((height * width,), -1, dtype=torch.int64, device=self.device)
        winner.scatter_reduce_(0, pix[tied], index[tied], "amax")
        valid = winner >= 0
        winner = torch.where(valid, winner, self.num_points)
        rgb = self._rgb.index_select(0, winner).view(height, width, 3)
        depth = torch.where(valid, zmin, torch.zeros_like(zmin)).view(height, width)
        return RenderTensors(rgb, depth, valid.view(height, width))
