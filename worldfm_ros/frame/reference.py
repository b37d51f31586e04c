"""Reference-keyframe selection by co-visibility.

For a target view (its anchor-render depth, camera and pose), sample a grid of
target pixels that have depth, lift them to 3D, and count, for every keyframe,
how many of those points the keyframe sees at the same depth. The keyframe that
confirms the largest fraction is the reference handed to the frame model.

Samples: an ``outer_grid`` x ``outer_grid`` grid over the whole image plus a
denser ``centre_grid`` x ``centre_grid`` grid over the central half (the centre of
the frame matters most), cell centres rounded to pixels, duplicates merged.
A sample agrees with keyframe k when it projects inside k's image in front of
k's camera and |z_k - D_k| <= max(rel_tol * z_k, abs_tol), where z_k is its
depth in k's camera and D_k > 0 the keyframe's depth at that pixel.
Keyframe depth is ``Keyframe.depth`` or, when None, the world rendered at the
keyframe's camera and pose (computed once, then cached).

``SelectionRules.release()`` are the released pipeline's rules instead (spec §3.5): outer and
centre grids over ``linspace`` including the edges, strict |z_k - D_k| < rel_tol * z_k with no
absolute tolerance, every score weighted by a ramp of the keyframe's camera distance, keyframe
depth always rendered from the world, and keyframe 0 when no sample has depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from worldfm_ros.camera import PinholeCamera, check_pose, check_poses
from worldfm_ros.errors import CameraError, ConfigError
from worldfm_ros.frame.reference_batch import covisible_counts
from worldfm_ros.world.base import DEFAULT_NEAR, RenderStyle, World, render_one


@dataclass(frozen=True)
class KeyframeChoice:
    """The selected reference keyframe.

    index: position in ``world.keyframes``.
    score: fraction of valid target samples the chosen keyframe confirms, [0, 1].
    scores: (K,) float64 the same fraction for every keyframe.
    num_samples: target samples with valid depth; 0 means no sample was usable and
        ``index`` is the keyframe whose camera centre is nearest the target's.
    """

    index: int
    score: float
    scores: np.ndarray
    num_samples: int


def _grid_axis(length: int, count: int, start: float, span: float) -> np.ndarray:
    """Pixel coordinates of ``count`` cell centres tiling [start, start + span) (pixel edges)."""
    centres = start + (np.arange(count) + 0.5) * (span / count) - 0.5
    return np.clip(np.rint(centres), 0, length - 1).astype(np.int64)


def sample_grid(width: int, height: int, outer_grid: int = 10, centre_grid: int = 15) -> np.ndarray:
    """(S, 2) int64 unique (u, v) pixel samples: the outer grid plus the central-half grid."""
    grids = []
    for count, (u0, su), (v0, sv) in (
        (outer_grid, (0.0, width), (0.0, height)),
        (centre_grid, (width / 4, width / 2), (height / 4, height / 2)),
    ):
        if count > 0:
            uu, vv = np.meshgrid(_grid_axis(width, count, u0, su), _grid_axis(height, count, v0, sv))
            grids.append(np.stack([uu.ravel(), vv.ravel()], axis=1))
    uv = np.concatenate(grids)
    flat = np.unique(uv[:, 1] * width + uv[:, 0])
    return np.stack([flat % width, flat // width], axis=1)


def release_sample_grid(width: int, height: int, outer_grid: int = 10, centre_grid: int = 15,
                        centre_frac: float = 0.5) -> np.ndarray:
    """(S, 2) int64 unique (u, v) samples as the release draws them (309 at 512²).

    Outer grid: ``outer_grid`` values of linspace(0, side - 1) per axis, minus the points
    inside the centre window; centre grid: linspace over the window
    (side - 1) / 2 ± centre_frac (side - 1) / 2. Values round half to even; the result is
    ordered by flat index v * width + u.
    """
    def window(side: int) -> tuple[float, float]:
        half = centre_frac * (side - 1) / 2.0
        return (side - 1) / 2.0 - half, (side - 1) / 2.0 + half

    (ulo, uhi), (vlo, vhi) = window(width), window(height)
    uu, vv = np.meshgrid(np.rint(np.linspace(0, width - 1, outer_grid)),
                         np.rint(np.linspace(0, height - 1, outer_grid)))
    inside = (uu >= np.rint(ulo)) & (uu <= np.rint(uhi)) & (vv >= np.rint(vlo)) & (vv <= np.rint(vhi))
    cu, cv = np.meshgrid(np.rint(np.linspace(ulo, uhi, centre_grid)), np.rint(np.linspace(vlo, vhi, centre_grid)))
    u = np.concatenate([uu[~inside], cu.ravel()]).astype(np.int64)
    v = np.concatenate([vv[~inside], cv.ravel()]).astype(np.int64)
    flat = np.unique(v * width + u)
    return np.stack([flat % width, flat // width], axis=1)


@dataclass(frozen=True)
class SelectionRules:
    """How a reference keyframe is chosen; the defaults are ours, ``release()`` the release's.

    outer_grid, centre_grid: sample grid sizes (>= 0, not both 0); grid: "cells" (cell
    centres, ``sample_grid``) or "linspace" (``release_sample_grid``).
    rel_tol, abs_tol: depth agreement |z_k - D_k| <= max(rel_tol z_k, abs_tol metres);
    strict: use < instead of <=.
    distance_weight: (near_m, far_m, weight_near, weight_far): each score is multiplied by a
        weight ramping linearly from weight_near at near_m to weight_far at far_m (clamped) of
        the distance between the keyframe's and the target's camera centres; None = no weight.
    point_radius: splat radius (pixels) of keyframe depth rendered from a point-cloud world.
    stored_depth: use ``Keyframe.depth`` when present (False: always render it from the cloud).
    fallback: keyframe when no sample has depth: "nearest" camera centre or "first".
    """

    outer_grid: int = 10
    centre_grid: int = 15
    grid: str = "cells"
    rel_tol: float = 0.02
    abs_tol: float = 0.01
    strict: bool = False
    distance_weight: tuple[float, float, float, float] | None = None
    point_radius: int = 1
    stored_depth: bool = True
    fallback: str = "nearest"

    def __post_init__(self) -> None:
        if self.outer_grid < 0 or self.centre_grid < 0 or self.outer_grid + self.centre_grid == 0:
            raise ConfigError(f"sample grids must be >= 0 and not both 0, got {self.outer_grid}, {self.centre_grid}")
        if self.grid not in ("cells", "linspace"):
            raise ConfigError(f"selection grid: expected 'cells' or 'linspace', got {self.grid!r}")
        if not (self.rel_tol >= 0 and self.abs_tol >= 0):
            raise ConfigError(f"depth tolerances must be >= 0, got rel_tol={self.rel_tol}, abs_tol={self.abs_tol}")
        if self.fallback not in ("nearest", "first"):
            raise ConfigError(f"selection fallback: expected 'nearest' or 'first', got {self.fallback!r}")
        if self.distance_weight is not None and not (len(self.distance_weight) == 4
                                                     and self.distance_weight[1] > self.distance_weight[0]):
            raise ConfigError(f"distance_weight: expected (near_m, far_m > near_m, weight_near, weight_far), "
                              f"got {self.distance_weight}")

    @classmethod
    def release(cls) -> "SelectionRules":
        """The released pipeline's rules (``render.*`` of its default.yaml)."""
        return cls(grid="linspace", rel_tol=0.02, abs_tol=0.0, strict=True, distance_weight=(1.0, 20.0, 1.0, 0.0),
                   point_radius=0, stored_depth=False, fallback="first")

    def samples(self, width: int, height: int) -> np.ndarray:
        """(S, 2) int64 (u, v) target pixels to test."""
        if self.grid == "linspace":
            return release_sample_grid(width, height, self.outer_grid, self.centre_grid)
        return sample_grid(width, height, self.outer_grid, self.centre_grid)

    def weight(self, distance_m: float) -> float:
        """Score weight of a keyframe whose camera centre is ``distance_m`` from the target's."""
        if self.distance_weight is None:
            return 1.0
        near, far, w_near, w_far = self.distance_weight
        a = min(max((distance_m - near) / (far - near), 0.0), 1.0)
        return w_near + (w_far - w_near) * a


def covisible(points: np.ndarray, camera: PinholeCamera, c2w: np.ndarray, depth: np.ndarray,
              rel_tol: float, abs_tol: float, near: float = DEFAULT_NEAR, strict: bool = False) -> np.ndarray:
    """(S,) bool: which world points (S, 3) float64 (metres) a view confirms.

    camera, c2w: (4, 4) camera-to-world (OpenCV axes) of the view; depth: (H, W) z-depth in
    metres of that view, 0 = no data; strict: |z - D| < tolerance instead of <=. Elementwise
    arithmetic only (no matrix product, whose rounding depends on how many rows it is given),
    so a point's answer does not depend on the other points asked with it.
    """
    R, t = c2w[:3, :3], c2w[:3, 3]
    d = points - t
    pc = d[:, 0:1] * R[0] + d[:, 1:2] * R[1] + d[:, 2:3] * R[2]  # (S, 3) world -> camera: Rᵀ (p - t)
    z = pc[:, 2]
    front = z > near
    zs = np.where(front, z, 1.0)
    u = np.rint(camera.fx * pc[:, 0] / zs + camera.cx)
    v = np.rint(camera.fy * pc[:, 1] / zs + camera.cy)
    inside = front & (u >= 0) & (u < camera.width) & (v >= 0) & (v < camera.height)
    seen = depth[v[inside].astype(np.int64), u[inside].astype(np.int64)]
    zi = z[inside]
    error, tolerance = np.abs(zi - seen), np.maximum(rel_tol * zi, abs_tol)
    agree = np.zeros(len(points), bool)
    agree[inside] = (seen > 0) & ((error < tolerance) if strict else (error <= tolerance))
    return agree


def covisibility_counts(points: np.ndarray, camera: PinholeCamera, c2w: np.ndarray, depth: np.ndarray,
                        rel_tol: float, abs_tol: float, near: float = DEFAULT_NEAR, strict: bool = False) -> int:
    """How many world points (S, 3) float64 (metres) a view confirms (``covisible``)."""
    return int(np.count_nonzero(covisible(points, camera, c2w, depth, rel_tol, abs_tol, near, strict)))


class KeyframeSelector:
    """Picks, for a target view, the world's keyframe that sees most of what it sees.

    world: the ``world.base.World`` (keyframes in its scene frame; at least one keyframe).
    rules: sample grid, tolerances, weighting and fallback (``SelectionRules``).
    release: keyframe depth that is rendered is drawn in the release's style (``RenderStyle.release``).
    """

    def __init__(self, world: World, rules: SelectionRules | None = None, release: bool = False) -> None:
        if not world.keyframes:
            raise ConfigError(f"scene {world.name!r}: keyframe selection needs at least one keyframe")
        self.world = world
        self.rules = rules or SelectionRules()
        self._depth_style = RenderStyle(point_radius=self.rules.point_radius, release=release)
        self._depths: dict[int, np.ndarray] = {}
        self._grids: dict[tuple[int, int], np.ndarray] = {}
        self._last: tuple[tuple, KeyframeChoice] | None = None  # (view, choice) of the last call
        self._packed: tuple[np.ndarray, ...] | None = None

    def keyframe_depth(self, index: int) -> np.ndarray:
        """(H, W) float32 z-depth of keyframe ``index`` in metres, 0 = no data (cached)."""
        if index not in self._depths:
            kf = self.world.keyframes[index]
            if kf.depth is not None and self.rules.stored_depth:
                self._depths[index] = kf.depth
            else:
                self._depths[index] = render_one(self.world, kf.camera, kf.c2w, self._depth_style).depth
        return self._depths[index]

    def select(self, depth: np.ndarray, camera: PinholeCamera, c2w: np.ndarray) -> KeyframeChoice:
        """Choose the reference for a target view.

        depth: (H, W) float32 target z-depth in metres (the anchor render), 0 = empty.
        camera: the target camera, size (W, H); c2w: (4, 4) target camera-to-scene, OpenCV axes.
        Ties go to the lowest keyframe index.
        """
        c2w = check_pose(c2w, "c2w")
        d, uv = self._samples(depth, camera)
        # The choice depends on the sampled depths, the pose and the camera only: a robot standing
        # still asks again for the view it asked for last.
        view = (d.tobytes(), c2w.tobytes(), camera.K.tobytes())
        if self._last is None or self._last[0] != view:
            self._last = (view, self._select([d], [uv], [camera], [c2w])[0])
        return self._last[1]

    def select_batch(self, depths: Sequence[np.ndarray], cameras: Sequence[PinholeCamera],
                     c2ws: Sequence[np.ndarray]) -> list[KeyframeChoice]:
        """``select`` of every view i (depths[i], cameras[i], c2ws[i]), scored together: the same
        choices as one call each."""
        c2ws = list(check_poses(c2ws))
        samples = [self._samples(depth, camera) for depth, camera in zip(depths, cameras)]
        return self._select([d for d, _ in samples], [uv for _, uv in samples], list(cameras), c2ws)

    def _keyframe_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The keyframes as ``covisible_counts`` takes them: (K, 4, 4) c2w, (K, 4) fx, fy, cx, cy,
        (K, 3) width, height, offset, and their depths (``keyframe_depth``) flattened (cached)."""
        if self._packed is None:
            keyframes = self.world.keyframes
            depths = [np.asarray(self.keyframe_depth(k), np.float64).ravel() for k in range(len(keyframes))]  # exact
            offsets = np.cumsum([0] + [len(d) for d in depths])[:-1]
            self._packed = (np.array([kf.c2w for kf in keyframes], np.float64),
                            np.array([[kf.camera.fx, kf.camera.fy, kf.camera.cx, kf.camera.cy] for kf in keyframes], np.float64),
                            np.array([[kf.camera.width, kf.camera.height, o] for kf, o in zip(keyframes, offsets)], np.int64),
                            np.concatenate(depths))
        return self._packed

    def _samples(self, depth: np.ndarray, camera: PinholeCamera) -> tuple[np.ndarray, np.ndarray]:
        """(S,) float64 depths (metres) at the (S, 2) sample pixels (u, v) of ``camera``'s grid."""
        depth = np.asarray(depth)
        if depth.shape != (camera.height, camera.width):
            raise CameraError(f"depth shape {depth.shape} does not match camera size {(camera.height, camera.width)}")
        key = (camera.width, camera.height)
        if key not in self._grids:
            self._grids[key] = self.rules.samples(camera.width, camera.height)
        uv = self._grids[key]
        return depth[uv[:, 1], uv[:, 0]].astype(np.float64), uv

    def _select(self, ds: list[np.ndarray], uvs: list[np.ndarray], cameras: list[PinholeCamera],
                c2ws: list[np.ndarray]) -> list[KeyframeChoice]:
        """The choice of every view from its depths ``ds[i]`` (S,) metres sampled at pixels
        ``uvs[i]`` (S, 2). Every sample of every view is tested against each keyframe at once,
        with elementwise arithmetic only, so a view's scores do not depend on the others."""
        rules = self.rules
        keyframes = self.world.keyframes
        centres = np.array([kf.c2w[:3, 3] for kf in keyframes])  # (K, 3)
        offsets = centres[None] - np.array([c2w[:3, 3] for c2w in c2ws])[:, None]  # (V, K, 3)
        distances = np.sqrt(np.vecdot(offsets, offsets))  # (V, K) metres
        weights = np.ones_like(distances)
        if rules.distance_weight is not None:
            near, far, w_near, w_far = rules.distance_weight
            weights = w_near + (w_far - w_near) * np.clip((distances - near) / (far - near), 0.0, 1.0)
        ok = [d > 0 for d in ds]
        usable = [int(np.count_nonzero(m)) for m in ok]
        owner = np.repeat(np.arange(len(ds)), usable)
        u = np.concatenate([uv[m, 0] for uv, m in zip(uvs, ok)])
        v = np.concatenate([uv[m, 1] for uv, m in zip(uvs, ok)])
        z = np.concatenate([d[m] for d, m in zip(ds, ok)])
        K = np.array([camera.K for camera in cameras])[owner]  # (P, 3, 3) each point's view
        T = np.array(c2ws)[owner]  # (P, 4, 4)
        cam = ((u - K[:, 0, 2]) / K[:, 0, 0] * z, (v - K[:, 1, 2]) / K[:, 1, 1] * z, z)
        world = np.stack([cam[0] * T[:, a, 0] + cam[1] * T[:, a, 1] + cam[2] * T[:, a, 2] + T[:, a, 3]
                          for a in range(3)], axis=1)  # (P, 3) scene frame
        counts = covisible_counts(world, owner, len(ds), *self._keyframe_arrays(), rules.rel_tol, rules.abs_tol,
                                  DEFAULT_NEAR, rules.strict)
        choices = []
        for i, n in enumerate(usable):
            if n == 0:
                index = int(np.argmin(distances[i])) if rules.fallback == "nearest" else 0
                choices.append(KeyframeChoice(index, 0.0, np.zeros(len(keyframes)), 0))
                continue
            scores = weights[i] * counts[i] / n
            index = int(np.argmax(scores))
            choices.append(KeyframeChoice(index, float(scores[index]), scores, n))
        return choices
