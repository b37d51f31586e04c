"""Human-readable statistics of a scene anchor (printed by scene-build and scene-info)."""

from __future__ import annotations

import numpy as np

from worldfm_ros.scene.anchor import SceneAnchor


def _vec(v: np.ndarray) -> str:
    return "[" + ", ".join(f"{x:+.3f}" for x in v) + "]"


def map_points(anchor: SceneAnchor) -> np.ndarray:
    """(N, 3) float64 points in the map frame, metres."""
    T = anchor.map_T_scene
    return anchor.points.astype(np.float64) @ T[:3, :3].T + T[:3, 3]


def scene_summary(anchor: SceneAnchor, per_keyframe: bool = False) -> str:
    """Multi-line summary: points, bounds in scene and map frames, keyframes.

    per_keyframe: add one line per keyframe (size, focal length, position in the map
    frame, heading = yaw of its optical axis in the map xy-plane, degrees from +x).
    """
    lo, hi = anchor.bounds()
    mp = map_points(anchor)
    with_depth = sum(kf.depth is not None for kf in anchor.keyframes)
    sizes = sorted({f"{kf.image.shape[1]}x{kf.image.shape[0]}" for kf in anchor.keyframes})
    lines = [
        f"scene {anchor.name!r}: {anchor.num_points:,} points, {len(anchor.keyframes)} keyframes"
        + (f" ({', '.join(sizes)}; {with_depth} with depth)" if anchor.keyframes else ""),
        f"  bounds, scene frame (m): min {_vec(lo)} max {_vec(hi)}",
        f"  bounds, map frame (m):   min {_vec(mp.min(axis=0))} max {_vec(mp.max(axis=0))}",
        f"  floor (map z = 0): {np.mean(np.abs(mp[:, 2]) < 0.05):.1%} of points within 5 cm",
        f"  splat: {anchor.splat}" + (f" (point spacing {anchor.point_spacing * 1e3:.1f} mm)"
                                      if anchor.point_spacing else ""),
    ]
    if per_keyframe:
        for i, kf in enumerate(anchor.keyframes):
            T = anchor.map_T_scene @ kf.c2w
            heading = np.degrees(np.arctan2(T[1, 2], T[0, 2]))
            lines.append(
                f"  [{i:3d}] {kf.name:<24} {kf.image.shape[1]}x{kf.image.shape[0]} f={kf.K[0, 0]:.1f} "
                f"map xyz {_vec(T[:3, 3])} heading {heading:+.1f} deg"
                + (" +depth" if kf.depth is not None else "")
            )
    return "\n".join(lines)


def world_summary(world, per_keyframe: bool = False) -> str:
    """``scene_summary`` of a world's point-cloud side (``world.anchor``), after the lines the world
    kind adds about itself (``world.describe()``, where it has one)."""
    lines = list(world.describe()) if hasattr(world, "describe") else []
    return "\n".join(lines + [scene_summary(world.anchor, per_keyframe)])
