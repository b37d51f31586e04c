"""A second kind of world is one file: an analytic box room, written here against the ``World``
protocol and registered under a scene ``kind``, runs through the simulator, the gymnasium env,
``worldfm render-trajectory`` and the ROS node with no other change to the package."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.render.result import RenderResult
from worldfm_ros.scene.anchor import Keyframe
from worldfm_ros.world.base import RenderStyle, World
from worldfm_ros.world.store import WORLD_KINDS, load_world, register_world_kind

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


def test_the_box_satisfies_the_world_protocol() -> None:
    assert isinstance(BoxWorld(), World)


def test_a_registered_kind_loads_from_its_scene_file(box_scene) -> None:
    assert isinstance(load_world(box_scene), BoxWorld)


def test_an_unknown_kind_is_a_scene_error_naming_the_field(tmp_path) -> None:
    from worldfm_ros.errors import SceneError

    (tmp_path / "scene.yaml").write_text("kind: hologram\n")
    with pytest.raises(SceneError, match=r"scene\.yaml: kind: expected one of \[.*'pointcloud'.*\], got 'hologram'"):
        load_world(tmp_path / "scene.yaml")


def test_the_env_steps_through_a_box_world_and_collides_with_its_walls(box_scene) -> None:
    from worldfm_ros.envs import WorldFMEnv

    env = WorldFMEnv(box_config(), scene=str(box_scene), observation="dict", normalized_actions=False,
                     start_poses=[(5.3, 2.0, 0.0)], max_episode_steps=50)
    obs, info = env.reset(seed=0)
    assert info["coverage"] == 1.0  # a closed room: every ray hits a wall
    ahead = obs["depth"][H // 2, W // 2, 0]
    assert ahead == pytest.approx(6.0 - 5.3 - 0.1, abs=1e-3)  # the +x wall, from the camera 0.1 m ahead of base
    assert tuple(obs["image"][H // 2, W // 2]) == tuple(FACE_COLOURS[1])
    for _ in range(20):
        obs, _, terminated, _, info = env.step(np.array([0.5, 0.0], np.float32))
        if terminated:
            break
    assert info["collision"] and info["map_T_base"][0, 3] < 6.0 - 0.25 + 1e-6  # stopped by the wall's points
    env.close()


def test_render_trajectory_renders_a_box_world(box_scene, tmp_path, capsys) -> None:
    from test_trajectory import write_tum

    from worldfm_ros.cli import main

    out = tmp_path / "out"
    assert main(["render-trajectory", str(write_tum(tmp_path / "poses.txt", 3)), "-o", str(out),
                 "--scene", str(box_scene), "--backend", "anchor", "--size", str(W), str(H), "--device", "cpu",
                 "--no-video", "--no-bag"]) == 0
    frames = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted((out / "frames").glob("*.png"))]
    assert len(frames) == 3
    for frame in frames:
        colours = {tuple(c) for c in frame.reshape(-1, 3)}
        assert colours <= {tuple(c) for c in FACE_COLOURS}  # only walls: nothing black, nothing filled


def test_the_ros_node_publishes_a_box_world(box_scene, ros_context) -> None:
    rclpy = pytest.importorskip("rclpy", reason="rclpy not importable: run via scripts/env.sh")
    from rclpy.parameter import Parameter
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from rosutil import Spinner, wait_for
    from worldfm_ros.config import flatten, load_config
    from worldfm_ros.ros import conversions as conv
    from worldfm_ros.ros.node import SimNode
    from worldfm_ros.sim.config import SimConfig

    params = flatten(load_config(SimConfig, box_config(scene=str(box_scene), rate_hz=10.0)))
    node = SimNode(context=ros_context, parameter_overrides=[Parameter(k, value=params[k]) for k in
                                                            ("scene", "backend.name", "camera.width", "camera.height",
                                                             "camera.hfov_deg", "initial_pose", "rate_hz")])
    probe = rclpy.create_node("box_probe", context=ros_context)
    images, depths = [], []
    probe.create_subscription(Image, "camera/image_raw", images.append, qos_profile_sensor_data)
    probe.create_subscription(Image, "camera/depth/image_raw", depths.append, qos_profile_sensor_data)
    spinner = Spinner(ros_context, node, probe)
    try:
        wait_for(lambda: images and depths, what="an image and a depth image of the box world")
        rgb, depth = conv.image_to_numpy(images[-1]), conv.image_to_numpy(depths[-1])
        assert rgb.shape == (H, W, 3) and tuple(rgb[H // 2, W // 2]) == tuple(FACE_COLOURS[1])
        assert depth[H // 2, W // 2] == pytest.approx(6.0 - 3.0 - 0.1, abs=1e-3)
    finally:
        spinner.stop()
        node.destroy_node()
        probe.destroy_node()
