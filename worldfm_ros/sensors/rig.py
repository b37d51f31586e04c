"""The camera rig: camera model plus its mount on the robot, and pose composition.

Frames (REP-105): map → odom → base_link → camera_link → camera_optical_frame.
camera_link uses body axes (x forward, y left, z up); the optical frame uses OpenCV
axes (x right, y down, z forward), rotated from camera_link by the fixed
OPTICAL_FROM_LINK rotation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from worldfm_ros.camera import LINK_T_OPTICAL, PinholeCamera, check_image_size, check_pose, invert_pose
from worldfm_ros.errors import ConfigError
from worldfm_ros.sensors.lens import load_calibration
from worldfm_ros.sensors.mount import MountConfig  # noqa: F401  (re-exported: the mount of a CameraRig)


@dataclass
class CameraConfig:
    """width/height: pixels (bounds: check_image_size); hfov_deg: horizontal field of view (used
    when camera_info_url is empty); camera_info_url: a camera_calibration_parsers YAML (image_width, camera_matrix, ...) overriding the rest."""

    width: int = 640
    height: int = 480
    hfov_deg: float = 90.0
    camera_info_url: str = ""

    def __post_init__(self) -> None:
        check_image_size(self.width, self.height, "camera", ConfigError)
        if not 1.0 <= self.hfov_deg <= 179.0:
            raise ConfigError(f"camera.hfov_deg: expected 1..179 degrees, got {self.hfov_deg}")

    def build(self) -> PinholeCamera:
        if self.camera_info_url:
            return load_camera_info_yaml(self.camera_info_url)
        return PinholeCamera.from_fov(self.width, self.height, self.hfov_deg)


def load_camera_info_yaml(path: str | Path) -> PinholeCamera:
    """Read a ROS camera_calibration_parsers YAML (camera_matrix, image_width, image_height) of an
    ideal camera: non-zero distortion raises ConfigError (a rig camera takes it, as its lens:
    ``worldfm_ros.sensors.lens.load_calibration``)."""
    camera, lens = load_calibration(path)
    if lens.model != "none":
        raise ConfigError(f"{path}: distortion_coefficients must be zero here (the simulator renders ideal pinhole "
                          "images for this camera; a rig camera's lens renders distortion)")
    return camera


class CameraRig:
    """Composes robot poses with the camera mount and the scene's map frame.

    camera: the pinhole model; base_T_link: (4, 4) pose of camera_link in base_link (the mount).
    Every ``a_T_b`` is the pose of frame b in frame a (it maps b coordinates to a coordinates).
    """

    def __init__(self, camera: PinholeCamera, base_T_link: np.ndarray) -> None:
        self.camera = camera
        self.base_T_link = check_pose(base_T_link, "mount")
        self.base_T_optical = self.base_T_link @ LINK_T_OPTICAL

    def optical_in_map(self, map_T_base: np.ndarray) -> np.ndarray:
        """map_T_optical (4, 4) for the base pose ``map_T_base``."""
        return map_T_base @ self.base_T_optical

    def optical_in_scene(self, map_T_base: np.ndarray, map_T_scene: np.ndarray) -> np.ndarray:
        """scene_T_optical (4, 4): the renderer's camera-to-scene c2w (OpenCV axes), for the base
        pose ``map_T_base`` and the scene's pose in the map ``map_T_scene`` (``SceneAnchor.map_T_scene``)."""
        return invert_pose(map_T_scene) @ self.optical_in_map(map_T_base)

    def base_from_optical_in_map(self, map_T_optical: np.ndarray) -> np.ndarray:
        """map_T_base: the base pose that puts the optical frame at ``map_T_optical``."""
        return map_T_optical @ invert_pose(self.base_T_optical)

    def static_transforms(self, base: str, link: str, optical: str) -> list[tuple[np.ndarray, str, str]]:
        """The fixed chain base → link → optical as (parent_T_child (4, 4), parent id, child id)
        pairs, as /tf_static carries them."""
        return [(self.base_T_link, base, link), (LINK_T_OPTICAL, link, optical)]
