"""The camera rig composes base poses, the mount and the scene frame per REP-103/105."""

from __future__ import annotations

import numpy as np
import pytest

from worldfm_ros.errors import ConfigError
from worldfm_ros.sensors.rig import CameraConfig, CameraRig, MountConfig, load_camera_info_yaml


def test_optical_frame_looks_along_base_x_with_image_x_to_the_right():
    rig = CameraRig(CameraConfig(64, 48, 90).build(), MountConfig([0.0, 0.0, 1.0], [0.0, 0.0, 0.0]).matrix())
    T = rig.optical_in_map(np.eye(4))
    assert np.allclose(T[:3, 2], [1, 0, 0])   # optical z = forward = base x
    assert np.allclose(T[:3, 0], [0, -1, 0])  # optical x = right = -base y
    assert np.allclose(T[:3, 1], [0, 0, -1])  # optical y = down
    assert np.allclose(T[:3, 3], [0, 0, 1])


def test_scene_pose_applies_the_inverse_scene_to_map_transform():
    rig = CameraRig(CameraConfig().build(), np.eye(4))
    map_T_scene = np.eye(4)
    map_T_scene[:3, 3] = (0, 0, -1.5)  # scene origin 1.5 m below map origin
    c2w = rig.optical_in_scene(np.eye(4), map_T_scene)
    assert np.allclose(c2w[:3, 3], [0, 0, 1.5])


def test_base_pose_is_recovered_from_the_optical_pose():
    rig = CameraRig(CameraConfig().build(), MountConfig([0.2, 0.1, 0.9], [0.0, 0.3, 0.1]).matrix())
    base = np.eye(4)
    base[:3, 3] = (3, -1, 0)
    assert np.allclose(rig.base_from_optical_in_map(rig.optical_in_map(base)), base)


def test_camera_info_yaml_is_read(tmp_path):
    path = tmp_path / "cam.yaml"
    path.write_text(
        "image_width: 320\nimage_height: 240\ncamera_name: c\n"
        "camera_matrix: {rows: 3, cols: 3, data: [200, 0, 160, 0, 210, 120, 0, 0, 1]}\n"
        "distortion_model: plumb_bob\ndistortion_coefficients: {rows: 1, cols: 5, data: [0, 0, 0, 0, 0]}\n")
    cam = load_camera_info_yaml(path)
    assert (cam.width, cam.height, cam.fx, cam.fy, cam.cx, cam.cy) == (320, 240, 200, 210, 160, 120)


def test_camera_info_with_distortion_is_refused(tmp_path):
    path = tmp_path / "cam.yaml"
    path.write_text("image_width: 4\nimage_height: 4\ncamera_matrix: {data: [1, 0, 2, 0, 1, 2, 0, 0, 1]}\n"
                    "distortion_coefficients: {data: [0.1, 0, 0, 0, 0]}\n")
    with pytest.raises(ConfigError, match="distortion_coefficients must be zero"):
        load_camera_info_yaml(path)


def test_bad_field_of_view_is_a_config_error():
    with pytest.raises(ConfigError, match="camera.hfov_deg"):
        CameraConfig(hfov_deg=200)
