"""Sensor rigs: rig files, the stereo convention, and frames of all cameras from one pose."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import yaml

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.errors import ConfigError
from worldfm_ros.messages import MessageBuilder
from worldfm_ros.scene.anchor import SceneAnchor
from worldfm_ros.sensors.mount import MountConfig
from worldfm_ros.sensors.rig import CameraConfig
from worldfm_ros.sim.config import SimConfig
from worldfm_ros.sensors.sensor_rig import RIG_PRESETS, build_rig, load_rig, remount
from worldfm_ros.sim.simulator import Simulator, planar_pose

W, H, HFOV = 320, 240, 90.0


def textured_wall(x: float, step: float = 0.004, seed: int = 0) -> SceneAnchor:
    """A wall of random-coloured points at map x = ``x`` metres facing -x, 6 m wide, 3 m tall
    (texture for block matching), one point per ``step`` metres."""
    ys, zs = np.meshgrid(np.arange(-3.0, 3.0, step), np.arange(-0.5, 2.5, step))
    points = np.stack([np.full(ys.size, x), ys.ravel(), zs.ravel()], axis=1).astype(np.float32)
    rng = np.random.default_rng(seed)
    # 2 cm blobs of one colour: texture block matching can lock onto at every distance tried
    cells = (np.floor(ys.ravel() / 0.02).astype(np.int64) * 7919 + np.floor(zs.ravel() / 0.02).astype(np.int64))
    colors = rng.integers(0, 256, (int(cells.max() - cells.min()) + 1, 3), dtype=np.uint8)[cells - cells.min()]
    return SceneAnchor(points=points, colors=colors, keyframes=[], name="wall")


def stereo_sim(tmp_path, baseline: float = 0.12) -> Simulator:
    """A simulator whose rig file is a stereo pair at base (0, 0, 1 m) looking along base +x."""
    template = {"camera": {"width": W, "height": H, "hfov_deg": HFOV},
                "mount": {"xyz": [0.0, 0.0, 1.0], "rpy": [0.0, 0.0, 0.0]}}
    path = tmp_path / "rig.yaml"
    path.write_text(yaml.safe_dump({"stereo": {"name": "stereo", "baseline_m": baseline, "template": template}}))
    return Simulator(SimConfig(rig=str(path), initial_pose=[0.0, 0.0, 0.0, 0.0]))


def test_the_default_rig_is_the_single_camera_of_camera_mount_and_frames():
    sim = Simulator(SimConfig())
    (cam,) = sim.sensors.cameras
    assert (cam.name, cam.link_frame, cam.optical_frame) == ("camera", "camera_link", "camera_optical_frame")
    assert cam.camera == SimConfig().camera.build()
    assert not cam.effects.enabled and sim.imu is None


def test_the_node_camera_parameters_resolve_as_the_same_camera_in_a_rig_file(tmp_path):
    calibration = tmp_path / "cam.yaml"
    calibration.write_text(
        "image_width: 320\nimage_height: 240\ncamera_matrix: {data: [200, 0, 160, 0, 210, 120, 0, 0, 1]}\n"
        "distortion_model: plumb_bob\ndistortion_coefficients: {data: [-0.2, 0.05, 0, 0, 0]}\n")
    camera = {"camera_info_url": str(calibration)}
    mount = {"xyz": [0.1, 0.0, 0.8], "rpy": [0.0, 0.1, 0.0]}
    rig_file = tmp_path / "rig.yaml"
    rig_file.write_text(yaml.safe_dump({"cameras": [{"name": "camera", "camera": camera, "mount": mount}]}))
    params = SimConfig(camera=CameraConfig(**camera), mount=MountConfig(**mount))
    (node_camera,) = Simulator(params).sensors.cameras
    (file_camera,) = Simulator(SimConfig(rig=str(rig_file))).sensors.cameras
    assert node_camera.camera == file_camera.camera
    assert node_camera.lens.distortion_model == file_camera.lens.distortion_model == "plumb_bob"
    assert np.array_equal(node_camera.lens.D, file_camera.lens.D)
    assert np.allclose(node_camera.mounted.base_T_optical, file_camera.mounted.base_T_optical)


@pytest.mark.parametrize("preset", RIG_PRESETS)
def test_bundled_presets_load_with_a_left_and_right_eye(preset):
    rig = build_rig(load_rig(preset), 10.0, where=preset)
    names = [c.name for c in rig.cameras]
    assert names == ["stereo/left", "stereo/right"]
    assert rig.cameras[1].stereo_left == 0 and rig.cameras[1].baseline_m == pytest.approx(0.12)
    assert rig.cameras[0].optical_frame == "stereo_left_optical_frame"
    assert rig.imu.enabled == (preset == "stereo_imu")


def test_cameras_group_by_rate_and_those_at_rate_0_follow_the_node_rate_given():
    rig = build_rig(load_rig({"cameras": [{"name": "a"}, {"name": "b", "rate_hz": 30.0}, {"name": "c"}]}), 10.0)
    assert rig.groups() == {10.0: [0, 2], 30.0: [1]}
    assert rig.groups(default_rate_hz=5.0) == {5.0: [0, 2], 30.0: [1]}
    assert rig.groups(default_rate_hz=30.0) == {30.0: [0, 1, 2]}


def test_right_camera_info_follows_the_ros_stereo_convention():
    rig = build_rig(load_rig("stereo"), 10.0)
    left, right = rig.cameras
    builder = MessageBuilder(lambda name: _Record, lambda a: np.asarray(a))
    info = builder.camera_info(right.camera, 0, right.optical_frame, right.lens.distortion_model, right.lens.D,
                               right.projection_tx())
    P = np.asarray(info.p).reshape(3, 4)
    assert P[0, 3] == pytest.approx(-right.camera.fx * 0.12)
    assert np.allclose(P[:, :3], left.camera.K) and np.allclose(np.asarray(info.r).reshape(3, 3), np.eye(3))
    assert left.projection_tx() == 0.0


class _Record:
    def __init__(self, **fields):
        self.__dict__.update(fields)


def test_disparity_of_a_wall_at_known_depth_is_f_times_baseline_over_z(tmp_path):
    sim = stereo_sim(tmp_path, 0.12)
    sim.load_scene(textured_wall(x=2.5))
    left, right = sim.render_cameras(planar_pose(0.0, 0.0, 0.0, 0.0), 1_000, [0, 1])
    z = 2.5  # the cameras sit at base x = 0 looking along +x
    expected = left.rgb.shape[1] / 2 / np.tan(np.radians(HFOV) / 2) * 0.12 / z
    sgbm = cv2.StereoSGBM_create(minDisparity=0, numDisparities=32, blockSize=7)
    disparity = sgbm.compute(cv2.cvtColor(left.rgb, cv2.COLOR_RGB2GRAY),
                             cv2.cvtColor(right.rgb, cv2.COLOR_RGB2GRAY)).astype(np.float32) / 16.0
    inner = disparity[40:-40, 60:-60]
    measured = float(np.median(inner[inner > 0]))
    assert measured == pytest.approx(expected, abs=0.25), (measured, expected)


def test_both_eyes_share_the_stamp_and_the_left_eyes_keyframe(tmp_path):
    from worldfm_ros.build.procedural import make_room_scene, random_room

    sim = stereo_sim(tmp_path, 0.12)
    room = random_room(seed=3, size=(6.0, 5.0, 2.8), num_obstacles=1)
    sim.load_scene(make_room_scene(room, PinholeCamera.from_fov(W, H, HFOV), num_views=8, num_keyframes=4, stride=2))
    left, right = sim.render_cameras(planar_pose(3.0, 2.5, 0.0, 0.3), 123_456_789, [0, 1])
    assert left.stamp_ns == right.stamp_ns == 123_456_789
    assert left.reference_index >= 0 and right.reference_index == left.reference_index
    baseline = np.linalg.inv(left.map_T_optical) @ right.map_T_optical
    assert np.allclose(baseline[:3, 3], [0.12, 0.0, 0.0])


def test_a_pair_that_is_not_parallel_is_refused_naming_both_eyes():
    cams = [{"name": "a", "mount": {"xyz": [0, 0, 1], "rpy": [0, 0, 0]}},
            {"name": "b", "mount": {"xyz": [0, -0.1, 1], "rpy": [0, 0, 0.05]}}]
    with pytest.raises(ConfigError, match="'a'/'b'.*right of the left"):
        build_rig(load_rig({"cameras": cams, "stereo_pairs": [{"left": "a", "right": "b"}]}), 10.0)


def test_a_rig_file_with_an_unknown_field_names_the_file_and_the_field(tmp_path):
    path = tmp_path / "rig.yaml"
    path.write_text("cameras:\n  - name: front\n    fov: 90\n")
    with pytest.raises(ConfigError, match=r"rig.yaml.*cameras\[0\].*unknown key.*fov"):
        load_rig(path)


def test_camera_names_must_be_ros_names():
    with pytest.raises(ConfigError, match="camera name '2cam'"):
        load_rig({"cameras": [{"name": "2cam"}]})


def test_remount_moves_the_rig_rigidly_with_its_first_camera():
    cfg = load_rig("stereo_imu")
    target = planar_pose(0.2, 0.0, 1.4, 0.0)
    moved = build_rig(remount(cfg, target), 10.0)
    before = build_rig(cfg, 10.0)
    assert np.allclose(moved.cameras[0].mounted.base_T_link, target)
    rel = lambda rig: np.linalg.inv(rig.cameras[0].mounted.base_T_link) @ rig.cameras[1].mounted.base_T_link
    assert np.allclose(rel(moved), rel(before))
    assert np.allclose(np.linalg.inv(moved.cameras[0].mounted.base_T_link) @ moved.imu.mount.matrix(),
                       np.linalg.inv(before.cameras[0].mounted.base_T_link) @ before.imu.mount.matrix())


def test_kalibr_calibration_maps_the_imu_into_each_eye_and_chains_the_eyes(tmp_path):
    from worldfm_ros.cli import main

    assert main(["rig-calibration", "--rig", "stereo_imu", "-o", str(tmp_path)]) == 0
    chain = yaml.safe_load((tmp_path / "camchain.yaml").read_text())
    imu = yaml.safe_load((tmp_path / "imu.yaml").read_text())
    rig = build_rig(load_rig("stereo_imu"), 10.0)
    for i, cam in enumerate(rig.cameras):
        T_cam_imu = np.array(chain[f"cam{i}"]["T_cam_imu"])
        assert np.allclose(T_cam_imu, np.linalg.inv(cam.mounted.base_T_optical) @ rig.imu.mount.matrix())
        assert chain[f"cam{i}"]["rostopic"] == f"/{cam.name}/image_raw"
    assert np.allclose(np.array(chain["cam1"]["T_cn_cnm1"])[:3, 3], [-0.12, 0.0, 0.0])
    assert imu["gyroscope_noise_density"] == rig.imu.noise.gyroscope_noise_density and imu["update_rate"] == 200.0
