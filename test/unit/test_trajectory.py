"""Offline trajectory rendering: pose files, and the PNG / MP4 / MCAP outputs of `worldfm render-trajectory`."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from worldfm_ros.camera import LINK_T_OPTICAL, PinholeCamera
from worldfm_ros.cli import main
from worldfm_ros.config import load_config
from worldfm_ros.errors import CameraError, ConfigError, WorldFMError
from worldfm_ros.build.procedural import make_room_scene, random_room
from worldfm_ros.scene.store import save_scene
from worldfm_ros.sim.config import SimConfig
from worldfm_ros.sim.simulator import Simulator, planar_pose
from worldfm_ros.sim.trajectory import Trajectory, base_poses, load_matrices, load_trajectory, render_trajectory

W, H = 64, 48
T0_NS = 1_700_000_000_123_456_789  # epoch-sized stamps must survive exactly
MOUNT_X, MOUNT_Z = 0.1, 1.0  # the default mount


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("scene") / "room"
    room = random_room(seed=5, size=(6.0, 5.0, 2.8), num_obstacles=0)
    save_scene(make_room_scene(room, PinholeCamera.from_fov(W, H, 90.0), num_views=12, num_keyframes=3), path)
    return path


def optical_pose(i: int) -> np.ndarray:
    """The camera 1 m above the floor, moving along +x, looking along +x (OpenCV axes)."""
    return planar_pose(2.5 + 0.1 * i, 2.5, 1.0, 0.05 * i) @ LINK_T_OPTICAL


def stamp_ns(i: int) -> int:
    return T0_NS + i * 100_000_000


def write_tum(path: Path, count: int = 5) -> Path:
    from scipy.spatial.transform import Rotation

    lines = ["# timestamp tx ty tz qx qy qz qw"]
    for i in range(count):
        T = optical_pose(i)
        q = Rotation.from_matrix(T[:3, :3]).as_quat()
        s = stamp_ns(i)
        lines.append(f"{s // 10**9}.{s % 10**9:09d} " + " ".join(f"{v:.12f}" for v in (*T[:3, 3], *q)))
    path.write_text("\n".join(lines) + "\n")
    return path


def sim_for(scene_dir: Path) -> Simulator:
    sim = Simulator(load_config(SimConfig, {"camera": {"width": W, "height": H, "hfov_deg": 90.0}}))
    sim.load_scene(scene_dir)
    return sim


def test_a_5_pose_trajectory_renders_5_pngs_an_mp4_and_a_bag(tmp_path, scene_dir, capsys):
    tum = write_tum(tmp_path / "poses.txt")
    out = tmp_path / "out"
    assert main(["render-trajectory", str(tum), "-o", str(out), "--scene", str(scene_dir),
                 "--size", str(W), str(H), "--device", "cpu"]) == 0
    assert "frames/s" in capsys.readouterr().out

    pngs = sorted((out / "frames").glob("*.png"))
    assert [p.name for p in pngs] == [f"{i:06d}.png" for i in range(5)]
    assert cv2.imread(str(pngs[0])).shape == (H, W, 3)
    video = cv2.VideoCapture(str(out / "video.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    assert (int(video.get(cv2.CAP_PROP_FRAME_WIDTH)), int(video.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (W, H)
    video.release()


def test_the_bag_holds_typed_messages_stamped_with_the_pose_times(tmp_path, scene_dir):
    trajectory = load_trajectory(write_tum(tmp_path / "poses.tum"))
    render_trajectory(sim_for(scene_dir), trajectory, tmp_path / "out", png=False, video=False)

    expected_types = {"/camera/image_raw": "sensor_msgs/msg/Image", "/camera/camera_info": "sensor_msgs/msg/CameraInfo",
                      "/camera/depth/image_raw": "sensor_msgs/msg/Image", "/odom": "nav_msgs/msg/Odometry",
                      "/tf": "tf2_msgs/msg/TFMessage", "/tf_static": "tf2_msgs/msg/TFMessage"}
    stamps: dict[str, list[int]] = {topic: [] for topic in expected_types}
    with AnyReader([tmp_path / "out" / "bag"], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as reader:
        assert {c.topic: c.msgtype for c in reader.connections} == expected_types
        for conn, t, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            header = msg.transforms[0].header if conn.msgtype == "tf2_msgs/msg/TFMessage" else msg.header
            assert header.stamp.sec * 10**9 + header.stamp.nanosec == t
            stamps[conn.topic].append(t)
            if conn.topic == "/camera/depth/image_raw":
                depth = np.frombuffer(msg.data, "<f4").reshape(H, W)
                assert msg.encoding == "32FC1" and np.nanmin(depth) > 0 and np.isfinite(depth).mean() > 0.5
            if conn.topic == "/odom" and t == stamp_ns(2):
                p = msg.pose.pose.position
                yaw = 0.1  # base_link sits MOUNT_X behind the camera along the heading
                assert (p.x, p.y, p.z) == pytest.approx((2.7 - MOUNT_X * np.cos(yaw), 2.5 - MOUNT_X * np.sin(yaw),
                                                         1.0 - MOUNT_Z), abs=1e-6)
                assert msg.twist.twist.linear.x == pytest.approx(1.0, abs=0.05)  # 0.1 m per 0.1 s
                assert msg.twist.twist.angular.z == pytest.approx(0.5, abs=1e-6)
    for topic in expected_types:
        assert stamps[topic] == ([stamp_ns(0)] if topic == "/tf_static" else [stamp_ns(i) for i in range(5)]), topic


def test_frames_match_the_simulator_at_the_same_pose(tmp_path, scene_dir):
    sim = sim_for(scene_dir)
    trajectory = load_trajectory(write_tum(tmp_path / "poses.txt", count=2))
    render_trajectory(sim, trajectory, tmp_path / "out", video=False, bag=False)
    sim.set_map_pose(base_poses(trajectory, sim.pipeline)[1])
    expected = sim.observe().frame
    assert np.allclose(expected.map_T_optical, optical_pose(1), atol=1e-9)
    png = cv2.cvtColor(cv2.imread(str(tmp_path / "out" / "frames" / "000001.png")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(png, expected.rgb)


def test_a_json_list_of_matrices_is_stamped_at_the_rate(tmp_path):
    path = tmp_path / "poses.json"
    path.write_text(json.dumps([optical_pose(i).tolist() for i in range(3)]))
    trajectory = load_trajectory(path, rate_hz=4.0)
    assert trajectory.stamps_ns.tolist() == [0, 250_000_000, 500_000_000]
    assert np.allclose(trajectory.poses[2], optical_pose(2))


def test_a_yaml_mapping_with_c2w_and_stamps_is_read(tmp_path):
    path = tmp_path / "meta.yaml"
    path.write_text(json.dumps({"c2w": [optical_pose(i).tolist() for i in range(2)], "stamps": [1.5, 2.25]}))
    trajectory = load_matrices(path, kind="base", world="scene")
    assert trajectory.stamps_ns.tolist() == [1_500_000_000, 2_250_000_000]
    assert (trajectory.kind, trajectory.world) == ("base", "scene")


def test_base_poses_put_the_camera_on_its_mount(scene_dir):
    sim = sim_for(scene_dir)
    base = planar_pose(3.0, 2.0, 0.0, 0.3)
    assert np.allclose(base_poses(Trajectory(np.zeros(1, np.int64), base[None], "base"), sim.pipeline)[0], base)
    assert np.allclose(sim.rig.optical_in_map(base)[:3, 3], [3.0 + MOUNT_X * np.cos(0.3), 2.0 + MOUNT_X * np.sin(0.3),
                                                              MOUNT_Z])


def test_a_tum_line_with_missing_fields_is_rejected_naming_the_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("# header\n0.0 1 2 3 0 0 0 1\n0.1 1 2 3 0 0 1\n")
    with pytest.raises(ConfigError, match=r"bad.txt:3: expected 't tx ty tz qx qy qz qw'"):
        load_trajectory(path)


def test_a_non_unit_quaternion_is_rejected(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("0.0 1 2 3 0 0 0 2\n")
    with pytest.raises(CameraError, match="unit quaternion"):
        load_trajectory(path)


def test_stamps_that_do_not_increase_are_rejected(tmp_path):
    path = tmp_path / "poses.txt"
    path.write_text("1.0 0 0 0 0 0 0 1\n1.0 1 0 0 0 0 0 1\n")
    with pytest.raises(ConfigError, match="strictly increasing"):
        load_trajectory(path)


def test_an_existing_bag_is_not_overwritten(tmp_path, scene_dir):
    (tmp_path / "out" / "bag").mkdir(parents=True)
    trajectory = load_trajectory(write_tum(tmp_path / "poses.txt", count=1))
    with pytest.raises(WorldFMError, match="already exists"):
        render_trajectory(sim_for(scene_dir), trajectory, tmp_path / "out")


def test_seven_scenes_pose_files_render_like_scene_build_accepts_them(tmp_path, scene_dir, shared_data):
    # 7-Scenes prints rotations with few digits (|RᵀR - I| up to 3.3e-4): re-orthonormalised, with a note.
    files = sorted((shared_data / "sevenscenes_redkitchen").glob("frame-*.pose.txt"))[:3]
    path = tmp_path / "kitchen.yaml"
    path.write_text(json.dumps([np.loadtxt(f).tolist() for f in files]))
    with pytest.warns(UserWarning, match=r"kitchen.yaml: rotations re-orthonormalised"):
        assert main(["render-trajectory", str(path), "-o", str(tmp_path / "out"), "--scene", str(scene_dir),
                     "--world", "scene", "--backend", "anchor", "--size", str(W), str(H), "--device", "cpu",
                     "--no-video", "--no-bag"]) == 0
    assert len(list((tmp_path / "out" / "frames").glob("*.png"))) == 3


def test_a_slightly_non_orthonormal_rotation_is_snapped_to_the_nearest_rotation(tmp_path):
    T = optical_pose(1)
    T[:3, :3] *= 1.0003
    path = tmp_path / "poses.json"
    path.write_text(json.dumps([T.tolist()]))
    with pytest.warns(UserWarning, match="re-orthonormalised"):
        R = load_trajectory(path).poses[0][:3, :3]
    np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(R, optical_pose(1)[:3, :3], atol=1e-9)


def test_a_rotation_far_from_orthonormal_is_still_refused_naming_the_pose(tmp_path):
    T = optical_pose(1)
    T[:3, :3] *= 1.1
    path = tmp_path / "poses.json"
    path.write_text(json.dumps([optical_pose(0).tolist(), T.tolist()]))
    with pytest.raises(WorldFMError, match=r"poses.json: c2w\[1\]: rotation is not orthonormal"):
        load_trajectory(path)


@pytest.fixture(scope="module")
def stereo_imu_render(tmp_path_factory, scene_dir) -> Path:
    """render-trajectory of the 5-pose trajectory through the bundled stereo_imu rig at 64x48."""
    import yaml

    from worldfm_ros.sensors.sensor_rig import rig_path

    base = tmp_path_factory.mktemp("stereo_render")
    rig = yaml.safe_load(rig_path("stereo_imu").read_text())
    rig["stereo"]["template"]["camera"].update(width=W, height=H)
    (base / "rig.yaml").write_text(yaml.safe_dump(rig))
    tum = write_tum(base / "poses.txt")
    assert main(["render-trajectory", str(tum), "-o", str(base / "out"), "--scene", str(scene_dir),
                 "--rig", str(base / "rig.yaml"), "--backend", "anchor", "--device", "cpu"]) == 0
    return base / "out"


def read_bag_messages(path: Path) -> tuple[dict[str, str], dict[str, list]]:
    messages: dict[str, list] = {}
    with AnyReader([path], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        for conn, t, raw in reader.messages():
            messages.setdefault(conn.topic, []).append((t, reader.deserialize(raw, conn.msgtype)))
    return types, messages


def test_a_stereo_rig_renders_both_eyes_with_camera_info_into_the_bag(stereo_imu_render):
    types, msgs = read_bag_messages(stereo_imu_render / "bag")
    for eye in ("left", "right"):
        assert types[f"/stereo/{eye}/image_raw"] == "sensor_msgs/msg/Image"
        assert types[f"/stereo/{eye}/camera_info"] == "sensor_msgs/msg/CameraInfo"
        assert types[f"/stereo/{eye}/depth/image_raw"] == "sensor_msgs/msg/Image"
        images = msgs[f"/stereo/{eye}/image_raw"]
        assert [t for t, _ in images] == [stamp_ns(i) for i in range(5)]
        assert all(m.header.frame_id == f"stereo_{eye}_optical_frame" and (m.width, m.height) == (W, H)
                   for _, m in images)
        assert sorted(p.name for p in (stereo_imu_render / "frames" / f"stereo_{eye}").glob("*.png")) == \
            [f"{i:06d}.png" for i in range(5)]
    left = msgs["/stereo/left/camera_info"][0][1]
    right = msgs["/stereo/right/camera_info"][0][1]
    assert left.p[3] == 0.0 and right.p[3] == pytest.approx(-left.k[0] * 0.12)  # -fx * baseline
    left_rgb, right_rgb = (msgs[f"/stereo/{eye}/image_raw"][2][1].data for eye in ("left", "right"))
    assert not np.array_equal(left_rgb, right_rgb), "the eyes see the room from 12 cm apart"
    static = {t.child_frame_id for t in msgs["/tf_static"][0][1].transforms}
    assert {"odom", "stereo_left_link", "stereo_left_optical_frame", "stereo_right_optical_frame", "imu_link"} <= static


def test_a_rig_with_an_imu_writes_its_samples_at_its_rate_along_the_trajectory(stereo_imu_render):
    types, msgs = read_bag_messages(stereo_imu_render / "bag")
    assert types["/imu/data"] == "sensor_msgs/msg/Imu"
    imu = msgs["/imu/data"]
    stamps = np.array([t for t, _ in imu])
    assert stamps[0] > stamp_ns(0) and stamps[-1] <= stamp_ns(4) and np.all(np.diff(stamps) == 5_000_000)  # 200 Hz
    assert len(imu) == 80  # 0.4 s at 200 Hz
    assert all(m.header.frame_id == "imu_link" and m.header.stamp.sec * 10**9 + m.header.stamp.nanosec == t
               for t, m in imu)
    # the trajectory turns at 0.05 rad per 0.1 s about +z (imu_link is level on base_link)
    assert np.median([m.angular_velocity.z for _, m in imu]) == pytest.approx(0.5, abs=0.01)
