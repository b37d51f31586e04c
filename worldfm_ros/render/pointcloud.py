"""Z-buffered point-cloud renderer, identical on CPU and CUDA.

Each point is transformed to the camera (OpenCV axes: x right, y down, z forward),
projected to the pixel (round(u), round(v)) with u = fx * x / z + cx and
v = fy * y / z + cy, and the nearest point wins each pixel. Points with
z <= near are culled. With a splat radius r > 0 a point covers the
(2r + 1) x (2r + 1) pixel square around its projection, still z-tested per pixel.

Exactness: every step is an IEEE float32 elementwise operation in a fixed order
(no matrix products, whose summation order differs between BLAS libraries, and no
fused multiply-add), and rounding is half-to-even, so the CPU and CUDA paths
produce bit-identical images. The z-buffer stores one int64 key per pixel,
``float32 depth bits << 32 | point index``: positive float32 bit patterns are
ordered like their values, so a single scatter-min yields both the nearest depth
and, among equal depths, the lowest point index.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from worldfm_ros.camera import PinholeCamera, check_pose, check_poses, invert_pose
from worldfm_ros.devices import parse_device
from worldfm_ros.errors import CameraError, SceneError
from worldfm_ros.render.blocks import BlockLayout
from worldfm_ros.render.cloud import check_points
from worldfm_ros.render.result import DEFAULT_NEAR, RenderResult

# Points per culling block: small enough to cull tightly, large enough that the per-block
# bookkeeping (a numpy box-versus-frustum test per block each frame) stays small next to
# the per-point work; big clouds get bigger blocks so there are at most MAX_BLOCKS.
MIN_BLOCK_SIZE = 512
MAX_BLOCKS = 4096
# Bit pattern of float32 +inf: the key of an empty pixel sorts after every real depth.
_INF_BITS = 0x7F800000
# A culled point's (u, v) is pushed this far past the image, times its distance behind
# the near plane (clamped to 1 m).
_PUSH_OUT = 1e30


@dataclass
class RenderTensors:
    """A rendered view as torch tensors on the renderer's device (same layout as RenderResult).

    rgb: (H, W, 3) uint8; depth: (H, W) float32 metres, 0 = empty; valid: (H, W) bool.
    """

    rgb: torch.Tensor
    depth: torch.Tensor
    valid: torch.Tensor

    def numpy(self) -> RenderResult:
        """Copy to host memory as a RenderResult."""
        return RenderResult(self.rgb.cpu().numpy(), self.depth.cpu().numpy(), self.valid.cpu().numpy())


def resolve_device(device: str | torch.device) -> torch.device:
    """torch.device for 'cpu', 'cuda', 'cuda:N' or a torch.device (see worldfm_ros.devices)."""
    return parse_device(device, "renderer device")


class PointCloudRenderer:
    """Renders a coloured point cloud from any pinhole camera pose.

    points: (N, 3) float32 positions in the world (scene) frame, metres; N >= 1, finite.
    colors: (N, 3) uint8 RGB.
    device: 'cpu', 'cuda', 'cuda:N' or a torch.device; the cloud lives there.
    near: points with camera z <= near (metres, > 0) are culled.

    Among points at exactly the same depth in a pixel, the lowest row of ``points`` wins.
    A render call changes no renderer state, so one renderer may serve several threads.
    """

    def __init__(self, points: np.ndarray, colors: np.ndarray,
                 device: str | torch.device = "cpu", near: float = DEFAULT_NEAR) -> None:
        points, colors = check_points(points, colors, "renderer")
        if len(points) >= 2**31:
            raise SceneError(f"renderer supports fewer than 2**31 points, got {len(points)}")
        if not (np.isfinite(near) and near > 0):
            raise CameraError(f"renderer near plane must be a finite distance > 0 m, got {near}")
        self.device = resolve_device(device)
        self.near = float(np.float32(near))
        self.num_points = len(points)
        bs = max(MIN_BLOCK_SIZE, -(-len(points) // MAX_BLOCKS))
        self._blocks = BlockLayout.build(points, bs)
        nb = self._blocks.num_blocks
        order = self._blocks.order
        # (blocks, 3, block_size): selecting blocks is one contiguous copy per block.
        self._xyz = torch.from_numpy(
            np.ascontiguousarray(points[order].reshape(nb, bs, 3).transpose(0, 2, 1))).to(self.device)
        # (blocks, block_size, 2) int32: [point index, slot for the depth bits]; viewed as
        # little-endian int64 this is exactly the z-buffer key depth_bits << 32 | index.
        pairs = np.zeros((nb, bs, 2), np.int32)
        pairs[..., 0] = order.reshape(nb, bs)
        self._pairs = torch.from_numpy(pairs).to(self.device)
        # (N + 1,) int32 RGBA-packed colours (one element per gather); row N is black, the
        # colour an empty pixel's key points at.
        rgba = np.zeros((self.num_points + 1, 4), np.uint8)
        rgba[:-1, :3] = colors
        self._rgba = torch.from_numpy(rgba.view(np.int32).reshape(-1)).to(self.device)
        self._empty_key = (_INF_BITS << 32) | self.num_points

    def render(self, camera: PinholeCamera, c2w: np.ndarray, point_radius: int = 0,
               footprint_spacing: float = 0.0) -> RenderResult:
        """Render at camera-to-world pose c2w; numpy outputs.

        camera: intrinsics and image size (W, H). c2w: (4, 4) or (3, 4) camera-to-world,
        OpenCV axes, metres (validated; CameraError if not rigid).
        point_radius: splat half-size in pixels, int >= 0 (0 = one pixel per point).
        footprint_spacing: > 0 (metres, the side of the surface patch a point stands for, e.g.
        ``scene.downsample.point_spacing(points)``): splat each point by its footprint instead (see
        :func:`footprint_radius`); point_radius must then be 0.
        """
        return self.render_tensors(camera, c2w, point_radius, footprint_spacing).numpy()

    def render_batch(self, cameras: "list[PinholeCamera]", c2ws: "list[np.ndarray]", point_radius: int = 0,
                     footprint_spacing: float = 0.0) -> list[RenderResult]:
        """``render`` of cameras[i] at c2ws[i] for every i, bit-identical to one call each. On the
        CPU the z-buffers of all views are filled by one compiled pass (``render.pointcloud_batch``)
        instead of a dozen torch kernels per view; on other devices it is one render call each."""
        if self.device.type != "cpu":
            return [self.render(c, p, point_radius, footprint_spacing) for c, p in zip(cameras, c2ws)]
        from worldfm_ros.render import pointcloud_batch as kernels

        poses = check_poses(c2ws)
        views = [self._view_arguments(c, p, point_radius, footprint_spacing, checked=True) for c, p in zip(cameras, poses)]
        culled = self._blocks.visible_batch(np.array([v[2] for v in views]).reshape(-1, 4, 4),
                                            np.array([v[3] for v in views]).reshape(-1, 4),
                                            np.array([(c.width, c.height) for c in cameras]).reshape(-1, 2), self.near,
                                            np.array([v[0] + 2.0 for v in views]))
        setups = [(*v, blocks) for v, blocks in zip(views, culled)]
        consts = np.empty((len(setups), kernels.CONSTS), np.float32)
        dims = np.empty((len(setups), kernels.DIMS), np.int64)
        above_near = np.nextafter(np.float32(self.near), np.float32(np.inf))
        offset = 0
        for c, (camera, (r, _, w2c, intrinsics, _)) in enumerate(zip(cameras, setups)):
            pad = 2 * r + 1  # the border of render_tensors
            wp, hp = camera.width + 2 * pad, camera.height + 2 * pad
            consts[c] = [*w2c[:3, :3].ravel(), *w2c[:3, 3], *intrinsics, self.near, above_near, _PUSH_OUT]
            dims[c] = (camera.width, camera.height, r, pad, wp, hp, offset)
            offset += wp * hp
        blocks = np.concatenate([s[4] for s in setups]) if setups else np.zeros(0, np.int64)
        block_start = np.cumsum([0] + [len(s[4]) for s in setups])
        bs = self._blocks.block_size
        zbuf = np.full(offset, self._empty_key, np.int64)
        kernels.zbuffer(self._xyz.numpy(), self._blocks.order.reshape(-1, bs), blocks, block_start, consts, dims, zbuf)
        if all(s[1] == 0 for s in setups):
            return self._resolve_squares(cameras, dims, zbuf)
        return [self._resolve(torch.from_numpy(zbuf[d[6]:d[6] + d[4] * d[5]]).view(int(d[5]), int(d[4])), int(d[3]),
                              int(d[2]), c.height, c.width, s[3][0] * s[1]).numpy()
                for c, d, s in zip(cameras, dims, setups)]

    def _resolve_squares(self, cameras: "list[PinholeCamera]", dims: np.ndarray, zbuf: np.ndarray) -> list[RenderResult]:
        """The square-splat views of ``render_batch``'s z-buffers, resolved by one compiled pass."""
        from worldfm_ros.render import pointcloud_batch as kernels

        sizes = [c.width * c.height for c in cameras]
        start = np.cumsum([0] + sizes)
        rgb, depth = np.empty((start[-1], 3), np.uint8), np.empty(start[-1], np.float32)
        valid = np.empty(start[-1], np.bool_)
        kernels.resolve_square(zbuf, dims, self._rgba.numpy().view(np.uint8).reshape(-1, 4), rgb, depth, valid,
                               start[:-1])
        return [RenderResult(rgb[a:b].reshape(c.height, c.width, 3), depth[a:b].reshape(c.height, c.width),
                             valid[a:b].reshape(c.height, c.width)) for c, a, b in zip(cameras, start[:-1], start[1:])]

    def _frame_setup(self, camera: PinholeCamera, c2w: np.ndarray, point_radius: int, footprint_spacing: float,
                     checked: bool = False) -> tuple[int, float, np.ndarray, tuple[float, ...], np.ndarray]:
        """The checked arguments of one view (``_view_arguments``) and the (K,) ids of the blocks
        that may reach its image."""
        r, spacing, w2c, (fx, fy, cx, cy) = self._view_arguments(camera, c2w, point_radius, footprint_spacing, checked)
        blocks = self._blocks.visible(w2c, fx, fy, cx, cy, camera.width, camera.height, self.near, margin_px=r + 2.0)
        return r, spacing, w2c, (fx, fy, cx, cy), blocks

    def _view_arguments(self, camera: PinholeCamera, c2w: np.ndarray, point_radius: int, footprint_spacing: float,
                        checked: bool = False) -> tuple[int, float, np.ndarray, tuple[float, ...]]:
        """The checked arguments of one view: splat reach r (pixels), footprint spacing (m), (4, 4)
        w2c and float32 (fx, fy, cx, cy) (``checked``: c2w is a (4, 4) float64 pose ``check_pose``
        already accepted)."""
        if not isinstance(camera, PinholeCamera):
            raise CameraError(f"camera must be a PinholeCamera, got {type(camera).__name__}")
        if isinstance(point_radius, bool) or not isinstance(point_radius, (int, np.integer)) or point_radius < 0:
            raise CameraError(f"point_radius must be an integer >= 0 pixels, got {point_radius!r}")
        spacing = float(footprint_spacing)
        if not (np.isfinite(spacing) and spacing >= 0):
            raise CameraError(f"footprint_spacing must be a finite distance >= 0 m, got {footprint_spacing!r}")
        if spacing > 0 and point_radius:
            raise CameraError(f"footprint_spacing {spacing:g} m and point_radius {point_radius} are exclusive "
                              "(a footprint splat starts from one pixel per point)")
        # The padding and culling margin are those of the widest splat the footprints may need.
        r = MAX_FOOTPRINT_RADIUS if spacing > 0 else int(point_radius)
        w2c = invert_pose(c2w if checked else check_pose(c2w, "c2w"))
        return r, spacing, w2c, tuple(float(np.float32(v)) for v in (camera.fx, camera.fy, camera.cx, camera.cy))

    def render_tensors(self, camera: PinholeCamera, c2w: np.ndarray, point_radius: int = 0,
                       footprint_spacing: float = 0.0) -> RenderTensors:
        """Like :meth:`render`, but the outputs stay torch tensors on the renderer's device."""
        r, spacing, w2c, (fx, fy, cx, cy), blocks = self._frame_setup(camera, c2w, point_radius, footprint_spacing)
        width, height = camera.width, camera.height
        sel = torch.from_numpy(blocks).to(self.device)
        # A fresh copy each call: its depth slots are written below.
        pairs = self._pairs.index_select(0, sel)  # (K, block_size, 2)
        xyz = self._xyz if len(blocks) == self._blocks.num_blocks else self._xyz.index_select(0, sel)  # (K, 3, bs)

        # Off-image points are clamped into a border of the padded z-buffer (pad = 2r + 1), which
        # every splat offset in [-r, r] keeps off the image; the border is discarded.
        pad = 2 * r + 1
        wp, hp = width + 2 * pad, height + 2 * pad
        # Per-frame float32 constants, one host-to-device copy: w2c rotation columns, translation,
        # focal lengths, principal point.
        consts = np.concatenate([w2c[:3, :3].T.ravel(), w2c[:3, 3], [fx, fy, cx, cy]]).astype(np.float32)
        k = torch.from_numpy(consts).to(self.device).view(-1, 1)  # (16, 1)
        rot_cols, trans, focal, centre = k[0:9].view(3, 3, 1), k[9:12], k[12:14], k[14:16]

        # ((r0 * x + r1 * y) + r2 * z) + t per camera axis, as separate kernels so nothing fuses
        # into an FMA: the same roundings on every device.
        cam = xyz[:, 0:1] * rot_cols[0]  # (K, 3, bs)
        tmp = torch.empty_like(cam)
        cam += torch.mul(xyz[:, 1:2], rot_cols[1], out=tmp)
        cam += torch.mul(xyz[:, 2:3], rot_cols[2], out=tmp)
        cam += trans
        zc = cam[:, 2]  # (K, bs)
        # Culled points (z <= near) divide by near instead, then get pushed far off-image
        # (by >= 1e20 px): no inf - inf, so no NaN; the clamp leaves valid depths untouched.
        zdiv = zc.clamp(min=self.near).unsqueeze(1)  # (K, 1, bs)
        behind = torch.sub(float(np.nextafter(np.float32(self.near), np.float32(np.inf))), zc).clamp_(0.0, 1.0)
        uv = cam[:, :2].mul(focal).div_(zdiv).add_(centre).round_()  # (K, 2, bs) pixel (u, v)
        uv += behind.mul_(_PUSH_OUT).unsqueeze(1)
        uv[:, 0].clamp_(-1 - r, width + r)
        uv[:, 1].clamp_(-1 - r, height + r)
        exact = torch.float32 if hp * wp <= 2**24 else torch.float64
        uv = uv.to(exact)
        pix = uv[:, 1].mul(wp).add_(uv[:, 0]).add_(pad * wp + pad).to(torch.int64).reshape(-1)  # (M,)

        pairs[..., 1] = zc.view(torch.int32)
        key = pairs.view(torch.int64).reshape(-1)  # (M,) depth_bits << 32 | index
        zbuf = torch.empty(hp * wp, dtype=torch.int64, device=self.device).fill_(self._empty_key)
        zbuf.scatter_reduce_(0, pix, key, "amin")
        return self._resolve(zbuf.view(hp, wp), pad, r, height, width, fx * spacing)

    def _resolve(self, zbuf: torch.Tensor, pad: int, r: int, height: int, width: int,
                 focal_spacing: float) -> RenderTensors:
        """The view from its padded one-pixel z-buffer (hp, wp) int64: square splats of radius r, or
        footprint splats when ``focal_spacing`` (fx * spacing, pixel·metres) > 0."""
        if focal_spacing > 0:
            inner = _footprint_min(zbuf, pad, r, height, width, focal_spacing, self._empty_key)
        else:
            inner = _square_min(zbuf, pad, r, height, width)  # (H, W) int64
        halves = inner.view(torch.int32).view(height, width, 2)  # [..., 0] index, [..., 1] depth bits
        depth = torch.nan_to_num(halves[..., 1].view(torch.float32), posinf=0.0)  # (H, W), contiguous
        valid = depth.bool()  # (H, W); bool() is != 0, several times faster than a comparison on CPU
        winner = halves[..., 0].reshape(-1)  # (H * W,) point index, N where empty
        rgba = self._rgba.index_select(0, winner).view(torch.uint8).view(height, width, 4)
        if rgba.is_cpu:
            # OpenCV's SIMD channel drop is ~20x faster than torch's strided uint8 copy on CPU.
            rgb = torch.from_numpy(cv2.cvtColor(rgba.numpy(), cv2.COLOR_RGBA2RGB))
        else:
            rgb = rgba[..., :3].contiguous()
        return RenderTensors(rgb, depth, valid)  # (H, W, 3), (H, W), (H, W)


def _shrink_min3x3(keys: torch.Tensor) -> torch.Tensor:
    """(h - 2, w - 2): the minimum of each full 3x3 neighbourhood of keys (h, w) int64."""
    across = torch.minimum(torch.minimum(keys[:, :-2], keys[:, 1:-1]), keys[:, 2:])
    return torch.minimum(torch.minimum(across[:-2], across[1:-1]), across[2:])


def _square_min(zbuf: torch.Tensor, pad: int, r: int, height: int, width: int) -> torch.Tensor:
    """The (H, W) image inside a padded one-pixel z-buffer (hp, wp) int64 (border ``pad`` >= r), each
    pixel the minimum key of the (2r + 1)² square around it.

    A point splatted over the square of radius r around its pixel, z-tested per pixel, is exactly
    this: the nearest key among the points whose own pixel lies in the square. r 3x3 minima
    (square minima compose) replace (2r + 1)² - 1 more scatters over the points.
    """
    keys = zbuf[pad - r:pad + height + r, pad - r:pad + width + r]
    for _ in range(r):
        keys = _shrink_min3x3(keys)
    return keys


# ---------------------------------------------------------------- footprint splatting
#: largest footprint splat radius, pixels
MAX_FOOTPRINT_RADIUS = 4
#: a covered pixel is replaced by a nearer point's footprint when it lies this much (relative) behind it
FOOTPRINT_DEPTH_TOLERANCE = 0.15


def footprint_radius(depth: torch.Tensor, focal_spacing: float,
                     max_radius: int = MAX_FOOTPRINT_RADIUS) -> torch.Tensor:
    """Footprint splat radius (pixels, int64, 0..max_radius) of points at z-depth ``depth`` (metres,
    any shape; inf = no point): a point standing for a patch ``spacing`` metres wide covers
    ``focal_px * spacing / z`` pixels, the square of radius ceil(footprint / 2 - 0.5) around its pixel.
    focal_spacing: focal_px * spacing, pixel·metres."""
    radius = torch.ceil(focal_spacing / depth / 2.0 - 0.5)  # inf depth -> ceil(-0.5) = 0
    return radius.clamp_(0, max_radius).to(torch.int64)


def _footprint_min(zbuf: torch.Tensor, pad: int, reach: int, height: int, width: int, focal_spacing: float,
                   empty_key: int, tolerance: float = FOOTPRINT_DEPTH_TOLERANCE) -> torch.Tensor:
    """The (H, W) image inside a padded one-pixel z-buffer (hp, wp) int64 (border ``pad`` >= reach),
    splatted by footprint.

    Each point covers the square of its :func:`footprint_radius` (at most ``reach``) around its
    pixel. There it fills empty pixels, and replaces covered pixels lying more than ``tolerance``
    (relative) behind it: background seen through the gaps of a nearer surface. Pixels of the
    nearest surface keep their own point, so the depth there does not change; a filled pixel
    takes the point (depth, colour) of the nearest footprint that reaches it.

    The nearest footprint is min over k of the square minimum of radius k over the points of
    radius >= k; as square minima compose (radius a then b = radius a + b), that is a cascade of
    3x3 minima from the widest radius present down, each on a border one pixel narrower.
    """
    def window(border: int) -> torch.Tensor:  # the image and ``border`` pixels around it
        return zbuf[pad - border:pad + height + border, pad - border:pad + width + border]

    def depth_of(keys: torch.Tensor) -> torch.Tensor:  # float32 z of each key, inf where empty
        return keys.view(torch.int32)[..., 1::2].view(torch.float32)

    radius = footprint_radius(depth_of(window(reach)), focal_spacing, reach)  # (H + 2R, W + 2R)
    top = int(radius.max())
    inner = window(0)
    if top == 0:
        return inner
    nearest = window(top).masked_fill(radius[reach - top:radius.shape[0] - reach + top,
                                             reach - top:radius.shape[1] - reach + top] < top, empty_key)
    for k in range(top - 1, -1, -1):
        nearest = _shrink_min3x3(nearest)  # border k
        if k > 0:
            within = radius[reach - k:radius.shape[0] - reach + k, reach - k:radius.shape[1] - reach + k]
            nearest = torch.minimum(nearest, window(k).masked_fill(within < k, empty_key))
    # An empty own pixel (inf) takes any footprint; an empty footprint (inf) replaces nothing.
    replace = depth_of(inner) > depth_of(nearest) * (1.0 + tolerance)
    return torch.where(replace, nearest, inner)
