"""Sensor rigs: N cameras and an optional IMU on one robot, from a rig file.

A rig file (YAML, validated once by :func:`load_rig`) lists the cameras, each with a name, its
mount (``base_link → <name>_link``, metres/radians), its model (size + fov, or a
camera_calibration_parsers YAML), its rate and its sensor effects (all off by default), the
stereo pairs among them, and the IMU. ``rig: ""`` (the default) is today's single camera built
from the node's ``camera``, ``mount`` and ``frames`` parameters, so nothing changes for it.

Names: camera ``name`` publishes under ``<name>/image_raw``, ``<name>/camera_info``,
``<name>/depth/...``; its frames are ``<name>_link`` and ``<name>_optical_frame`` with '/'
replaced by '_' (``stereo/left`` → ``stereo_left_optical_frame``).

Stereo (the ROS convention, as ``stereo_image_proc`` consumes it): both eyes have the same
model, no lens distortion and parallel mounts, the right eye displaced by the baseline B along
the left eye's optical x axis; both images are rendered from the same robot pose with one
stamp, and the right CameraInfo carries ``P[0,3] = -fx·B``. The frame model sees the left eye's
keyframe choice and the same noise seed for both eyes (one reference, one noise per tick), so
the model cannot make the eyes disagree about the scene; sensor noise (photometric, depth) is
drawn independently per eye, as two real imagers have it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.config import load_config, read_yaml
from worldfm_ros.errors import ConfigError
from worldfm_ros.sensors.effects import CameraEffects
from worldfm_ros.sensors.imu import ImuConfig
from worldfm_ros.sensors.lens import Lens, LensConfig, load_calibration
from worldfm_ros.sensors.mount import MountConfig
from worldfm_ros.sensors.motion import MotionBlurConfig, RollingShutterConfig
from worldfm_ros.sensors.noise import DepthNoiseConfig, PhotometricConfig
from worldfm_ros.sensors.rig import CameraConfig, CameraRig

#: rig presets shipped in ``config/rigs/<name>.yaml``
RIG_PRESETS = ("stereo", "stereo_imu")
#: parallel stereo mounts may differ by this much (radians) and the right eye may leave the
#: left eye's optical x axis by this much (metres) before the pair is refused
STEREO_ANGLE_TOL = 1e-6
STEREO_OFFSET_TOL = 1e-6


@dataclass
class RigCameraConfig:
    """One camera of a rig.

    name: topic namespace ('camera', 'stereo/left', ...). rate_hz: frames per second, 0 = the
    node's ``rate_hz``. mount: base_link → <name>_link. camera: size + horizontal fov, or
    ``camera_info_url`` (a calibration YAML, whose distortion then sets ``lens``).
    lens / photometric / depth_noise / motion_blur / rolling_shutter: the sensor effects
    (worldfm_ros.sensors), each off by default. publish_depth: also publish depth/image_raw.
    """

    name: str = "camera"
    rate_hz: float = 0.0
    mount: MountConfig = field(default_factory=MountConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    lens: LensConfig = field(default_factory=LensConfig)
    photometric: PhotometricConfig = field(default_factory=PhotometricConfig)
    depth_noise: DepthNoiseConfig = field(default_factory=DepthNoiseConfig)
    motion_blur: MotionBlurConfig = field(default_factory=MotionBlurConfig)
    rolling_shutter: RollingShutterConfig = field(default_factory=RollingShutterConfig)
    publish_depth: bool = True

    def __post_init__(self) -> None:
        parts = self.name.split("/")
        if not self.name or any(not p or not (p[0].isalpha() and p.replace("_", "a").isalnum()) for p in parts):
            raise ConfigError(f"camera name {self.name!r}: expected ROS name tokens (letters, digits, '_', "
                              "starting with a letter) separated by '/'")
        if not (math.isfinite(self.rate_hz) and self.rate_hz >= 0):
            raise ConfigError(f"{self.name}.rate_hz: expected 0 (the node's rate) or a positive number, got {self.rate_hz}")

    @property
    def frame_prefix(self) -> str:
        return self.name.replace("/", "_")


@dataclass
class StereoPairConfig:
    """Two cameras of the rig that form a rectified stereo pair (names of ``cameras``)."""

    left: str = "left"
    right: str = "right"


@dataclass
class StereoPresetConfig:
    """A stereo pair written compactly: expands to cameras ``<name>/left`` and ``<name>/right``
    sharing ``camera``, ``rate_hz`` and the effects of ``template``; the left eye at
    ``mount``, the right eye ``baseline_m`` to its right (−y of the left camera_link).
    baseline_m 0 = no preset pair."""

    name: str = "stereo"
    baseline_m: float = 0.0
    template: RigCameraConfig = field(default_factory=RigCameraConfig)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.baseline_m) and 0 <= self.baseline_m <= 10):
            raise ConfigError(f"stereo.baseline_m: expected 0 (none) to 10 metres, got {self.baseline_m}")


@dataclass
class RigConfig:
    """A rig file: cameras, stereo pairs among them, the stereo preset, and the IMU."""

    cameras: list[RigCameraConfig] = field(default_factory=list)
    stereo_pairs: list[StereoPairConfig] = field(default_factory=list)
    stereo: StereoPresetConfig = field(default_factory=StereoPresetConfig)
    imu: ImuConfig = field(default_factory=ImuConfig)


@dataclass
class RigCamera:
    """One camera as the simulator runs it.

    config: its RigCameraConfig. mounted: the output camera (K, size, after the lens) on its
    mount. lens: maps the ideal pinhole canvas (``lens.render_camera``) to the output image.
    effects: the sensor stage (motion, lens, noise) applied to each frame.
    link_frame / optical_frame: TF frame ids. rate_hz: resolved frame rate.
    stereo_left: for a right eye, the index of its left eye in ``SensorRig.cameras`` (else None);
    baseline_m: the pair's baseline (0 for cameras outside a pair).
    """

    config: RigCameraConfig
    mounted: CameraRig
    lens: Lens
    effects: CameraEffects
    link_frame: str
    optical_frame: str
    rate_hz: float
    stereo_left: int | None = None
    baseline_m: float = 0.0

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def camera(self) -> PinholeCamera:
        """The output camera (what CameraInfo describes)."""
        return self.mounted.camera

    def projection_tx(self) -> float:
        """CameraInfo P[0,3], pixels·metres: −fx·B for the right eye of a stereo pair, else 0."""
        return -self.camera.fx * self.baseline_m if self.stereo_left is not None else 0.0


@dataclass
class SensorRig:
    """The cameras and IMU of one robot. ``cameras[0]`` is the primary camera (Simulator.rig)."""

    cameras: list[RigCamera]
    imu: ImuConfig

    def groups(self, default_rate_hz: float | None = None) -> dict[float, list[int]]:
        """Camera indices by frame rate, Hz, in rig order: the cameras of one group render from the
        same robot pose at each of its ticks. ``default_rate_hz``: the rate of cameras whose file
        says 0 (the node's rate_hz now, which may have changed since the rig was built); None =
        the rate resolved when the rig was built."""
        out: dict[float, list[int]] = {}
        for i, cam in enumerate(self.cameras):
            rate = cam.rate_hz if default_rate_hz is None else (cam.config.rate_hz or default_rate_hz)
            out.setdefault(rate, []).append(i)
        return out

    def static_transforms(self, base: str) -> list[tuple[np.ndarray, str, str]]:
        """base → <name>_link → <name>_optical_frame for every camera, and base → imu frame."""
        out = []
        for cam in self.cameras:
            out += cam.mounted.static_transforms(base, cam.link_frame, cam.optical_frame)
        if self.imu.enabled:
            out.append((self.imu.mount.matrix(), base, self.imu.frame_id))
        return out


def rig_path(rig: str) -> Path:
    """The rig file for ``rig``: a preset name (``RIG_PRESETS``) or a path to a YAML file."""
    if rig in RIG_PRESETS:
        from worldfm_ros.resources import config_dir

        return config_dir() / "rigs" / f"{rig}.yaml"
    return Path(rig)


def load_rig(rig: str | Path | dict) -> RigConfig:
    """Read and validate a rig file (path, preset name, or mapping); ConfigError naming the file and field."""
    if isinstance(rig, dict):
        return load_config(RigConfig, rig, prefix="rig")
    path = rig_path(str(rig))
    cfg = load_config(RigConfig, read_yaml(path), prefix=str(path))
    if not cfg.cameras and cfg.stereo.baseline_m == 0:
        raise ConfigError(f"{path}: expected at least one camera (cameras: [...] or stereo.baseline_m > 0)")
    return cfg


def expand_stereo(cfg: RigConfig) -> tuple[list[RigCameraConfig], list[StereoPairConfig]]:
    """The rig's cameras and pairs with the stereo preset written out as two cameras and a pair."""
    cameras, pairs = list(cfg.cameras), list(cfg.stereo_pairs)
    st = cfg.stereo
    if st.baseline_m > 0:
        left = replace(st.template, name=f"{st.name}/left")
        right_T = st.template.mount.matrix() @ _translation(0.0, -st.baseline_m, 0.0)
        right_mount = MountConfig(right_T[:3, 3].tolist(), list(st.template.mount.rpy))
        right = replace(st.template, name=f"{st.name}/right", mount=right_mount)
        cameras += [left, right]
        pairs.append(StereoPairConfig(left.name, right.name))
    return cameras, pairs


def build_rig(cfg: RigConfig, default_rate_hz: float, where: str = "rig") -> SensorRig:
    """Resolve a RigConfig into cameras (models, lenses, frames, rates) and check its stereo pairs."""
    configs, pairs = expand_stereo(cfg)
    names = [c.name for c in configs]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: camera names must be unique, got {names}")
    cameras = []
    for c in configs:
        cameras.append(_rig_camera(c, f"{c.frame_prefix}_link", f"{c.frame_prefix}_optical_frame",
                                   c.rate_hz or default_rate_hz, where))
    index = {c.name: i for i, c in enumerate(cameras)}
    for p in pairs:
        for eye in (p.left, p.right):
            if eye not in index:
                raise ConfigError(f"{where}: stereo pair names camera {eye!r}; the rig has {names}")
        left, right = cameras[index[p.left]], cameras[index[p.right]]
        right.stereo_left, right.baseline_m = index[p.left], _check_pair(left, right, where)
        left.baseline_m = right.baseline_m
    return SensorRig(cameras, cfg.imu)


def single_camera_rig(camera: RigCameraConfig, link_frame: str, optical_frame: str, rate_hz: float) -> SensorRig:
    """The default rig: the one camera of the node's parameters (``SimConfig.rig_camera``) with the
    node's own frame ids (a calibration file's distortion becomes its lens)."""
    return SensorRig([_rig_camera(camera, link_frame, optical_frame, rate_hz, "camera")], ImuConfig())


def _rig_camera(c: RigCameraConfig, link_frame: str, optical_frame: str, rate_hz: float, where: str) -> RigCamera:
    """Camera ``c`` resolved: its model and lens (a calibration file's, its distortion as the lens,
    or size + fov with ``c.lens``), mount and sensor effects."""
    if c.camera.camera_info_url:
        model, lens_cfg = load_calibration(c.camera.camera_info_url)
        if c.lens.model != "none":
            raise ConfigError(f"{where}: camera {c.name!r}: give the distortion either in lens or in "
                              "camera_info_url, not both")
    else:
        model, lens_cfg = c.camera.build(), c.lens
    mounted, lens = CameraRig(model, c.mount.matrix()), Lens(model, lens_cfg)
    effects = CameraEffects(lens, mounted.base_T_optical, c.motion_blur, c.rolling_shutter, c.photometric,
                            c.depth_noise)
    return RigCamera(c, mounted, lens, effects, link_frame, optical_frame, rate_hz)


def _check_pair(left: RigCamera, right: RigCamera, where: str) -> float:
    """Baseline (metres) of a rectified pair; ConfigError unless the eyes match and are parallel."""
    what = f"{where}: stereo pair {left.name!r}/{right.name!r}"
    if left.camera != right.camera:
        raise ConfigError(f"{what}: both eyes need the same camera model, got {left.camera} and {right.camera}")
    if left.lens.distortion_model != right.lens.distortion_model or any(left.lens.D) or any(right.lens.D):
        raise ConfigError(f"{what}: a rectified pair has no lens distortion (lens.model none)")
    if left.rate_hz != right.rate_hz:
        raise ConfigError(f"{what}: both eyes need one rate_hz, got {left.rate_hz:g} and {right.rate_hz:g}")
    left_T_right = np.linalg.inv(left.mounted.base_T_optical) @ right.mounted.base_T_optical
    angle = np.arccos(np.clip((np.trace(left_T_right[:3, :3]) - 1) / 2, -1.0, 1.0))
    offset = left_T_right[:3, 3]
    if angle > STEREO_ANGLE_TOL or np.linalg.norm(offset[1:]) > STEREO_OFFSET_TOL or offset[0] <= 0:
        raise ConfigError(f"{what}: the right eye must sit to the right of the left one along its optical x axis "
                          f"with the same orientation (got offset {np.round(offset, 6).tolist()} m, "
                          f"rotation {math.degrees(angle):.3g} deg)")
    return float(offset[0])


def _translation(x: float, y: float, z: float) -> np.ndarray:
    T = np.eye(4)
    T[:3, 3] = (x, y, z)
    return T


def remount(cfg: RigConfig, base_T_primary: np.ndarray) -> RigConfig:
    """The rig moved rigidly on the robot so that its first camera's link sits at ``base_T_primary``
    (4, 4); every other camera and the IMU keep their pose relative to it. The stereo preset is
    written out as cameras and a pair."""
    from scipy.spatial.transform import Rotation

    cameras, pairs = expand_stereo(cfg)
    if not cameras:
        raise ConfigError("rig: no camera to remount")
    move = base_T_primary @ np.linalg.inv(cameras[0].mount.matrix())

    def moved(mount: MountConfig) -> MountConfig:
        T = move @ mount.matrix()
        return MountConfig(T[:3, 3].tolist(), Rotation.from_matrix(T[:3, :3]).as_euler("xyz").tolist())

    return RigConfig([replace(c, mount=moved(c.mount)) for c in cameras], pairs, StereoPresetConfig(),
                     replace(cfg.imu, mount=moved(cfg.imu.mount)))
