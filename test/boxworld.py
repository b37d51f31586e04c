"""An analytic box room written against the ``World`` protocol, registered under the scene kind
'box': the second kind of world the tests run through the package (test_world_protocol.py and,
for the node, test_world_protocol_node.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.render.result import RenderResult
from worldfm_ros.scene.anchor import Keyframe
from worldfm_ros.world.base import RenderStyle, World
from worldfm_ros.world.store import WORLD_KINDS


LO, HI = np.array([0.0, 0.0, 0.0]), np.array([6.0, 4.0, 2.5])  # the room, map frame = scene frame, metres
#: colour of the face each ray leaves the box through: -x, +x, -y, +y, floor, ceiling
FACE_COLOURS = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40], [120, 120, 120],
                         [240, 240, 240]], np.uint8)
W, H = 64, 48


class BoxWorld:
    """An axis-aligned room seen from inside: each wall one colour, exact depth, no holes."""

    def __init__(self, name: str = "box") -> None:
        self.name = name
        self.map_T_scene = np.eye(4)
        camera = PinholeCamera.from_fov(W, H, 90.0)
        c2w = np.eye(4)
        c2w[:3, :3] = [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]  # looking along +x, OpenCV axes
        c2w[:3, 3] = [1.0, 2.0, 1.0]
        view = self.render([camera], [c2w])[0]
        self.keyframes = [Keyframe(view.rgb, camera.K, c2w, None, "from_the_door")]  # depth: rendered when asked

    primitives = 0
    surface_spacing = 0.0

    def render(self, cameras, c2ws, style: RenderStyle = RenderStyle()) -> list[RenderResult]:
        out = []
        for camera, c2w in zip(cameras, c2ws):
            u, v = np.meshgrid(np.arange(camera.width), np.arange(camera.height))
            rays = np.stack([(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy, np.ones(u.shape)], -1)
            d = rays @ np.asarray(c2w)[:3, :3].T  # (H, W, 3) per unit of camera z
            o = np.asarray(c2w)[:3, 3]
            with np.errstate(divide="ignore", invalid="ignore"):
                exits = np.where(d > 0, (HI - o) / d, np.where(d < 0, (LO - o) / d, np.inf))  # (H, W, 3)
            axis = np.argmin(exits, axis=-1)
            z = np.take_along_axis(exits, axis[..., None], -1)[..., 0].astype(np.float32)
            face = 2 * axis + np.take_along_axis(d, axis[..., None], -1)[..., 0].__gt__(0)
            inside = bool(np.all(o > LO) and np.all(o < HI))
            valid = np.isfinite(z) & (z > 0) & inside
            rgb = np.where(valid[..., None], FACE_COLOURS[face], 0).astype(np.uint8)
            out.append(RenderResult(rgb, np.where(valid, z, 0).astype(np.float32), valid))
        return out

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return LO.copy(), HI.copy()

    def surface_points(self, max_points: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        g = 0.05
        x, y, z = (np.arange(lo, hi + g / 2, g) for lo, hi in zip(LO, HI))
        walls = [np.stack(np.meshgrid([c], y, z), -1).reshape(-1, 3) for c in (LO[0], HI[0])]
        walls += [np.stack(np.meshgrid(x, [c], z), -1).reshape(-1, 3) for c in (LO[1], HI[1])]
        points = np.concatenate(walls).astype(np.float32)
        if max_points is not None:
            points = points[:: max(1, -(-len(points) // max_points))]
        return points, np.full(points.shape, 128, np.uint8)


def load_box(path: Path, device: str) -> World:
    return BoxWorld(name=Path(path).name)


@pytest.fixture
def box_scene(tmp_path, monkeypatch) -> Path:
    """A scene folder whose scene.yaml names the kind 'box', registered for this test."""
    monkeypatch.setitem(WORLD_KINDS, "box", load_box)  # the registry line a new kind adds
    path = tmp_path / "box_room"
    path.mkdir()
    (path / "scene.yaml").write_text("kind: box\n")
    return path


def box_config(**extra) -> dict:
    return {"backend": {"name": "anchor"}, "camera": {"width": W, "height": H, "hfov_deg": 90.0},
            "initial_pose": [3.0, 2.0, 0.0, 0.0], "antialias": 0.0, **extra}
