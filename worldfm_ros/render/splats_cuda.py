"""Gaussian splats on CUDA through gsplat's rasterizer, with the CPU rasterizer's conventions
(``render.splats``): pixel centres at integer coordinates, expected depth, the same low-pass,
near plane and validity threshold."""

from __future__ import annotations

import numpy as np

from worldfm_ros.camera import PinholeCamera, check_pose, invert_pose
from worldfm_ros.errors import BackendUnavailable
from worldfm_ros.render.gaussians import Gaussians
from worldfm_ros.render.result import RenderResult
from worldfm_ros.render.splats import EPS2D, SPLAT_NEAR, SplatImage


class GsplatRenderer:
    """``Gaussians`` on the GPU ``device`` ('cuda[:N]'), copied there once; views of one size are
    rasterized in one gsplat call."""

    def __init__(self, gaussians: Gaussians, device: str = "cuda") -> None:
        try:
            import torch
            from gsplat import rasterization
        except ImportError as exc:
            raise BackendUnavailable(f"device {device!r}: splats on CUDA need gsplat (pip install gsplat): {exc}") from None
        if not torch.cuda.is_available():
            raise BackendUnavailable(f"device {device!r}: CUDA is not available to torch")
        self._torch, self._rasterization = torch, rasterization
        self.device = torch.device(device)
        t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=self.device)  # noqa: E731
        self.means, self.quats, self.scales = t(gaussians.means), t(gaussians.quats), t(gaussians.scales)
        self.opacities, self.sh = t(gaussians.opacities), t(gaussians.sh)
        self.sh_degree = gaussians.sh_degree

    def render_images(self, camera: PinholeCamera, c2ws: list[np.ndarray]) -> list[SplatImage]:
        """Views of one ``camera`` at each camera-to-scene pose (OpenCV axes, metres), one gsplat call."""
        torch = self._torch
        w2c = np.stack([invert_pose(check_pose(c2w, "c2w")) for c2w in c2ws])
        K = camera.K.copy()
        K[0, 2] += 0.5  # gsplat samples pixel centres at (u + 0.5, v + 0.5)
        K[1, 2] += 0.5
        Ks = np.repeat(K[None], len(c2ws), axis=0)
        with torch.no_grad():
            out, alphas, _ = self._rasterization(
                self.means, self.quats, self.scales, self.opacities, self.sh,
                torch.as_tensor(w2c, dtype=torch.float32, device=self.device),
                torch.as_tensor(Ks, dtype=torch.float32, device=self.device), camera.width, camera.height,
                near_plane=SPLAT_NEAR, eps2d=EPS2D, sh_degree=self.sh_degree, render_mode="RGB+ED", packed=False)
        out, alphas = out.cpu().numpy(), alphas.cpu().numpy()
        return [SplatImage(out[i, ..., :3], alphas[i, ..., 0], np.where(alphas[i, ..., 0] > 0, out[i, ..., 3], 0))
                for i in range(len(c2ws))]

    def render(self, camera: PinholeCamera, c2w: np.ndarray) -> RenderResult:
        return self.render_images(camera, [c2w])[0].result()

    def render_batch(self, cameras: list[PinholeCamera], c2ws: list[np.ndarray]) -> list[RenderResult]:
        """Views grouped by camera, each group one gsplat call; results in the order asked."""
        out: list[RenderResult | None] = [None] * len(cameras)
        groups: dict[PinholeCamera, list[int]] = {}
        for i, camera in enumerate(cameras):
            groups.setdefault(camera, []).append(i)
        for camera, index in groups.items():
            for i, image in zip(index, self.render_images(camera, [c2ws[i] for i in index])):
                out[i] = image.result()
        return out
