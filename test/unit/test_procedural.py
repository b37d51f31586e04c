"""Procedural rooms ray-cast exact RGB-D frames, and scenes fused from them reproduce the views."""

from __future__ import annotations

import numpy as np
import pytest

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.render.pointcloud import PointCloudRenderer
from worldfm_ros.build.procedural import ProceduralRoom, body_pose, make_room_scene, random_room


def empty_room() -> ProceduralRoom:
    return ProceduralRoom(np.array([6.0, 4.0, 3.0]))


def test_depth_to_the_facing_wall_is_exact():
    cam = PinholeCamera(65, 49, 40.0, 40.0, 32.0, 24.0)
    _, depth = empty_room().raycast(cam, body_pose(2.0, 2.0, 0.0, height=1.5))
    assert depth[24, 32] == pytest.approx(4.0, abs=1e-6)  # +x wall at x = 6


def test_floor_depth_follows_the_ground_plane():
    cam = PinholeCamera(65, 49, 40.0, 40.0, 32.0, 24.0)
    _, depth = empty_room().raycast(cam, body_pose(2.0, 2.0, 0.0, height=1.0))
    v = 44  # 20 px below the centre row: ray slope 0.5 → hits the floor 2 m ahead
    assert depth[v, 32] == pytest.approx(2.0, abs=1e-6)


def test_obstacle_occludes_the_wall_behind_it():
    room = random_room(seed=1, size=(6.0, 4.0, 3.0), num_obstacles=0)
    from worldfm_ros.build.procedural import Box

    room.obstacles.append(Box(np.array([3.0, 1.5, 0.0]), np.array([3.5, 2.5, 2.5]), np.array([200.0, 0, 0])))
    cam = PinholeCamera(65, 49, 40.0, 40.0, 32.0, 24.0)
    _, depth = room.raycast(cam, body_pose(2.0, 2.0, 0.0, height=1.0))
    assert depth[24, 32] == pytest.approx(1.0, abs=1e-6)


def test_same_seed_gives_the_same_room_and_images():
    cam = PinholeCamera.from_fov(40, 30, 90)
    a, _ = random_room(3).raycast(cam, body_pose(2.0, 2.0, 0.5))
    b, _ = random_room(3).raycast(cam, body_pose(2.0, 2.0, 0.5))
    assert np.array_equal(a, b)


def test_fused_scene_renders_its_keyframes_back():
    cam = PinholeCamera.from_fov(80, 60, 90)
    scene = make_room_scene(random_room(2), cam, num_views=8, num_keyframes=2, stride=1)
    assert len(scene.keyframes) == 2 and np.array_equal(scene.map_T_scene, np.eye(4))
    kf = scene.keyframes[1]
    out = PointCloudRenderer(scene.points, scene.colors).render(kf.camera, kf.c2w)
    err = out.rgb[out.valid].astype(float) - kf.image[out.valid]
    psnr = 10 * np.log10(255.0**2 / np.mean(err**2))
    # Points of neighbouring views interleave with the keyframe's own on shared surfaces, so the
    # fused render matches well but not exactly (the own-cloud case is exact: test_render).
    assert out.valid.mean() > 0.95 and psnr > 28
