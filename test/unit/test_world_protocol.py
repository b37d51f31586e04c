"""A second kind of world is one file: an analytic box room, written against the ``World``
protocol and registered under a scene ``kind`` (test/boxworld.py), runs through the simulator, the
gymnasium env and ``worldfm render-trajectory`` with no other change to the package (the ROS node:
test/ros/test_world_protocol_node.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from boxworld import FACE_COLOURS, H, W, BoxWorld, box_config, box_scene  # noqa: F401  (box_scene: a fixture)
from worldfm_ros.world.base import World
from worldfm_ros.world.store import load_world


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
