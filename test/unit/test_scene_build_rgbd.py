"""The RGB-D scene builder: TUM, 7-Scenes-style, image/+depth/ folders, and the real captures."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.errors import SceneError
from worldfm_ros.build.build_rgbd import build_rgbd, read_sequence
from worldfm_ros.scene.io import write_image
from worldfm_ros.build.procedural import body_pose, random_room
from worldfm_ros.scene.store import load_scene, save_scene

CAMERA = PinholeCamera.from_fov(64, 48, 70.0)
HEIGHT = 1.2


def room_frames(n: int = 6):
    """n ray-cast frames in a procedural room, expressed in a tilted, shifted scene frame.

    Returns (frames [(rgb, depth, c2w_scene)], room_to_scene (4, 4)).
    """
    room = random_room(seed=7)
    room_to_scene = np.eye(4)
    room_to_scene[:3, :3] = Rotation.from_euler("xyz", [90, 20, -30], degrees=True).as_matrix()
    room_to_scene[:3, 3] = [0.4, -1.0, 2.0]
    frames = []
    for k in range(n):
        c2w_room = body_pose(room.size[0] / 2, room.size[1] / 2, 2 * np.pi * k / n, height=HEIGHT, pitch=0.3)
        rgb, depth = room.raycast(CAMERA, c2w_room)
        frames.append((rgb, depth, room_to_scene @ c2w_room))
    return frames, room_to_scene


def write_seven_scenes(root: Path, frames, camera: PinholeCamera = CAMERA) -> None:
    root.mkdir()
    np.savetxt(root / "camera-intrinsics.txt", camera.K)
    for i, (rgb, depth, c2w) in enumerate(frames):
        stem = f"frame-{i:06d}"
        write_image(root / f"{stem}.color.png", rgb)
        cv2.imwrite(str(root / f"{stem}.depth.png"), np.round(depth * 1000).astype(np.uint16))
        np.savetxt(root / f"{stem}.pose.txt", c2w)


def assert_floor_at_z0(anchor, frames, room_to_scene) -> None:
    T = anchor.map_T_scene
    m = anchor.points.astype(np.float64) @ T[:3, :3].T + T[:3, 3]
    assert np.percentile(m[:, 2], 1) > -0.03
    assert np.mean(np.abs(m[:, 2]) < 0.02) > 0.1  # the floor is a big share of what is seen
    for kf in anchor.keyframes:
        assert (T @ kf.c2w)[2, 3] == pytest.approx(HEIGHT, abs=0.02)


def test_seven_scenes_layout_builds_with_the_floor_at_z0(tmp_path: Path) -> None:
    frames, room_to_scene = room_frames()
    write_seven_scenes(tmp_path / "seq", frames)
    anchor = build_rgbd(tmp_path / "seq", num_keyframes=3, pixel_stride=1)
    assert [kf.name for kf in anchor.keyframes] == ["frame-000000", "frame-000002", "frame-000005"]
    assert anchor.keyframes[0].depth.shape == (48, 64)
    np.testing.assert_allclose(anchor.keyframes[1].c2w, frames[2][2], atol=1e-9)
    assert_floor_at_z0(anchor, frames, room_to_scene)


def test_image_and_depth_folders_with_poses_txt_build(tmp_path: Path) -> None:
    frames, room_to_scene = room_frames()
    root = tmp_path / "seq"
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    (root / "intrinsics.txt").write_text(f"{CAMERA.fx} {CAMERA.fy} {CAMERA.cx} {CAMERA.cy}\n")
    lines = []
    for i, (rgb, depth, c2w) in enumerate(frames):
        write_image(root / "rgb" / f"{i:04d}.png", rgb)
        np.save(root / "depth" / f"{i:04d}.npy", depth)
        lines.append(" ".join(repr(float(v)) for v in c2w.ravel()))
    (root / "poses.txt").write_text("\n".join(lines) + "\n")
    anchor = build_rgbd(root, keyframe_every=2, pixel_stride=2)
    assert [kf.name for kf in anchor.keyframes] == ["0000", "0002", "0004"]
    assert anchor.keyframes[0].depth.tobytes() == frames[0][1].tobytes()  # .npy depth is metres, untouched
    assert_floor_at_z0(anchor, frames, room_to_scene)


def test_tum_layout_associates_by_nearest_timestamp(tmp_path: Path) -> None:
    frames, _ = room_frames(4)
    root = tmp_path / "tum"
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    rgb_lines, depth_lines, gt_lines = ["# colour images"], ["# depth"], ["# timestamp tx ty tz qx qy qz qw"]
    for i, (rgb, depth, c2w) in enumerate(frames):
        t = 100.0 + i
        write_image(root / "rgb" / f"{t:.6f}.png", rgb)
        cv2.imwrite(str(root / "depth" / f"{t + 0.01:.6f}.png"), np.round(depth * 5000).astype(np.uint16))
        rgb_lines.append(f"{t:.6f} rgb/{t:.6f}.png")
        depth_lines.append(f"{t + 0.01:.6f} depth/{t + 0.01:.6f}.png")
        q = Rotation.from_matrix(c2w[:3, :3]).as_quat()
        for dt in (-0.3, 0.004, 0.3):  # only the nearest pose (4 ms away) is the right one
            T = c2w if dt == 0.004 else np.eye(4)
            qq = q if dt == 0.004 else [0, 0, 0, 1]
            gt_lines.append(f"{t + dt:.6f} " + " ".join(f"{v:.9f}" for v in [*T[:3, 3], *qq]))
    rgb_lines.append("200.000000 rgb/orphan.png")  # no depth near t = 200: skipped
    (root / "rgb.txt").write_text("\n".join(rgb_lines) + "\n")
    (root / "depth.txt").write_text("\n".join(depth_lines) + "\n")
    (root / "groundtruth.txt").write_text("\n".join(gt_lines) + "\n")
    seq = read_sequence(root)
    assert seq.layout == "tum" and len(seq.frames) == 4
    np.testing.assert_allclose(seq.frames[2].c2w, frames[2][2], atol=1e-6)
    anchor = build_rgbd(root, K=CAMERA.K, num_keyframes=2)
    np.testing.assert_allclose(anchor.keyframes[1].depth, frames[3][1], atol=1e-4)  # 1/5000 m units


def test_tum_without_intrinsics_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "tum"
    root.mkdir()
    (root / "rgb.txt").write_text("1.0 rgb/a.png\n")
    (root / "depth.txt").write_text("1.0 depth/a.png\n")
    (root / "groundtruth.txt").write_text("1.0 0 0 0 0 0 0 1\n")
    with pytest.raises(SceneError, match=r"no intrinsics in the folder \(tum\); pass K"):
        build_rgbd(root)


def test_built_scene_round_trips(tmp_path: Path) -> None:
    frames, _ = room_frames(3)
    write_seven_scenes(tmp_path / "seq", frames)
    anchor = build_rgbd(tmp_path / "seq", num_keyframes=2, max_points=2000, pixel_stride=1)
    assert 1900 <= anchor.num_points <= 2000
    save_scene(anchor, tmp_path / "out")
    back = load_scene(tmp_path / "out")
    assert back.points.tobytes() == anchor.points.tobytes()
    assert back.map_T_scene.tobytes() == anchor.map_T_scene.tobytes()
    assert [k.c2w.tobytes() for k in back.keyframes] == [k.c2w.tobytes() for k in anchor.keyframes]


def test_the_built_scene_keeps_the_recorded_camera_path_and_keyframes_at_the_asked_size(tmp_path: Path) -> None:
    from worldfm_ros.cli import main
    from worldfm_ros.sim.trajectory import load_tum

    frames, _ = room_frames(4)
    write_seven_scenes(tmp_path / "seq", frames)
    out = tmp_path / "scene"
    assert main(["scene-build", "rgbd", str(tmp_path / "seq"), "--keyframes", "2", "--keyframe-size", "32", "24",
                 "-o", str(out)]) == 0
    scene = load_scene(out)
    assert [kf.image.shape for kf in scene.keyframes] == [(24, 32, 3)] * 2
    assert [kf.depth.shape for kf in scene.keyframes] == [(24, 32)] * 2
    np.testing.assert_allclose(scene.keyframes[0].K, CAMERA.scaled(32, 24).K)
    path = load_tum(out / "trajectory.tum", world="scene")
    np.testing.assert_allclose(path.poses, np.stack([c2w for _, _, c2w in frames]), atol=1e-7)
    assert path.stamps_ns.tolist() == [0, 100_000_000, 200_000_000, 300_000_000]


def test_intrinsics_for_another_size_are_rejected(tmp_path: Path) -> None:
    frames, _ = room_frames(2)
    write_seven_scenes(tmp_path / "seq", frames)
    np.savetxt(tmp_path / "seq" / "camera-intrinsics.txt", [[585, 0, 320], [0, 585, 240], [0, 0, 1]])
    with pytest.raises(SceneError, match=r"frame-000000\.color\.png: intrinsics K: K principal point \(320, 240\) lies outside"):
        build_rgbd(tmp_path / "seq")


def test_non_orthonormal_pose_file_is_rejected(tmp_path: Path) -> None:
    frames, _ = room_frames(2)
    write_seven_scenes(tmp_path / "seq", frames)
    bad = frames[1][2].copy()
    bad[:3, :3] *= 1.1
    np.savetxt(tmp_path / "seq" / "frame-000001.pose.txt", bad)
    with pytest.raises(SceneError, match=r"frame-000001\.pose\.txt: rotation is not orthonormal"):
        build_rgbd(tmp_path / "seq")


def test_nan_depth_frame_is_rejected(tmp_path: Path) -> None:
    frames, _ = room_frames(2)
    root = tmp_path / "seq"
    (root / "image").mkdir(parents=True)
    (root / "depth").mkdir()
    np.savetxt(root / "camera-intrinsics.txt", CAMERA.K)
    for i, (rgb, depth, c2w) in enumerate(frames):
        write_image(root / "image" / f"{i}.png", rgb)
        depth = depth.copy()
        depth[5, 5] = np.nan
        np.save(root / "depth" / f"{i}.npy", depth)
    (root / "poses.txt").write_text("".join(" ".join(map(repr, f[2].ravel().tolist())) + "\n" for f in frames))
    with pytest.raises(SceneError, match=r"0\.npy: depth contains 1 NaN/inf pixels"):
        build_rgbd(root)


def test_empty_folder_names_the_expected_layouts(tmp_path: Path) -> None:
    with pytest.raises(SceneError, match=r"no RGB-D frames found \(expected rgb\.txt"):
        build_rgbd(tmp_path)


@pytest.mark.parametrize("dataset", ["sevenscenes_redkitchen", "icl_livingroom"])
def test_real_sequence_builds_with_a_floor_below_the_cameras(shared_data: Path, dataset: str, tmp_path: Path) -> None:
    root = shared_data / dataset
    if not root.is_dir():
        pytest.skip(f"{root} not present")
    anchor = build_rgbd(root, frame_step=40, max_frames=4, num_keyframes=2, pixel_stride=8)
    assert len(anchor.keyframes) == 2 and anchor.keyframes[0].image.shape == (480, 640, 3)
    T = anchor.map_T_scene
    m = anchor.points.astype(np.float64) @ T[:3, :3].T + T[:3, 3]
    assert np.percentile(m[:, 2], 1) > -0.05  # nothing much below the floor
    for kf in anchor.keyframes:
        assert 0.3 < (T @ kf.c2w)[2, 3] < 2.0  # hand-held camera heights
    save_scene(anchor, tmp_path / "real.npz")
    assert load_scene(tmp_path / "real.npz").points.tobytes() == anchor.points.tobytes()


def furnished_turn(n: int = 8):
    """n ray-cast 160x120 frames turning slowly in a furnished procedural room (bare walls and floor
    alone leave a geometric registration free to slide along them). Returns (camera, frames)."""
    room = random_room(seed=7, num_obstacles=12, clear_radius=0.6)
    camera = PinholeCamera.from_fov(160, 120, 90.0)
    frames = []
    for k in range(n):  # neighbouring views overlap by most of the image
        c2w = body_pose(room.size[0] / 2 + 0.05 * k, room.size[1] / 2, 0.08 * k, height=HEIGHT, pitch=0.4)
        rgb, depth = room.raycast(camera, c2w)
        frames.append((rgb, depth, c2w))
    return camera, frames


def test_refine_icp_registers_noisy_folder_poses_before_fusing(tmp_path: Path) -> None:
    from worldfm_ros.cli import main
    from worldfm_ros.eval.bench_bag import pose_errors as worst_pose_error
    from worldfm_ros.geometry import perturbed_poses
    from worldfm_ros.sim.trajectory import load_tum

    camera, frames = furnished_turn(8)
    truth = np.stack([c2w for _, _, c2w in frames])
    noisy = truth.copy()
    noisy[1:] = perturbed_poses(truth[1:], 0.03, 2.0, np.random.default_rng(0))
    write_seven_scenes(tmp_path / "seq", [(rgb, depth, c2w) for (rgb, depth, _), c2w in zip(frames, noisy)], camera)
    out = tmp_path / "scene"
    assert main(["scene-build", "rgbd", str(tmp_path / "seq"), "--refine", "icp", "--keyframes", "2",
                 "-o", str(out)]) == 0
    refined = load_tum(out / "trajectory.tum", world="scene").poses
    assert worst_pose_error(noisy, truth) == pytest.approx((0.03, 2.0), rel=0.01)
    metres, degrees = worst_pose_error(refined, truth)
    assert metres < 0.01 and degrees < 0.5, (metres, degrees)  # 0.07 cm / 0.03 deg measured
