"""The Rerun view of a run: `worldfm render-trajectory --rrd` read back with Rerun's own reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

rr = pytest.importorskip("rerun", reason="rerun-sdk not installed (requirements/python.txt)")

from rrdutil import frame_stamps, read_rrd  # noqa: E402
from test_trajectory import H, T0_NS, W, optical_pose, scene_dir, write_tum  # noqa: E402, F401 (scene_dir: a fixture)

from worldfm_ros.camera import PinholeCamera  # noqa: E402
from worldfm_ros.cli import main  # noqa: E402
from worldfm_ros.world.pointcloud import PointCloudWorld
from worldfm_ros.scene.store import load_scene  # noqa: E402
from worldfm_ros.viz import RerunLog  # noqa: E402

FRAMES = 5  # test_trajectory.write_tum's default
PER_FRAME = {"/world/camera", "/world/camera/image", "/world/camera/depth", "/world/trajectory",
             "/stats/ms/render", "/stats/ms/select", "/stats/ms/backend", "/stats/coverage",
             "/stats/reference_score"}


@pytest.fixture(scope="module")
def recording(tmp_path_factory, scene_dir) -> dict[str, list]:
    tmp = tmp_path_factory.mktemp("rrd")
    rrd = tmp / "run.rrd"
    assert main(["render-trajectory", str(write_tum(tmp / "poses.txt")), "-o", str(tmp / "out"), "--scene",
                 str(scene_dir), "--backend", "anchor", "--size", str(W), str(H), "--device", "cpu",
                 "--no-png", "--no-video", "--no-bag", "--rrd", str(rrd)]) == 0
    return read_rrd(rrd)


def test_render_trajectory_rrd_has_every_per_frame_entity_once_per_pose_at_its_stamp(recording):
    assert PER_FRAME <= set(recording)
    for entity in PER_FRAME:
        rows = [r for r in recording[entity] if "frame" in r]
        assert sorted(r["frame"] for r in rows) == list(range(FRAMES)), entity
        assert frame_stamps(recording, entity) == [T0_NS + i * 100_000_000 for i in range(FRAMES)], entity


def test_the_camera_entity_is_the_optical_pose_in_the_map_with_the_cameras_pinhole(recording):
    transforms = sorted((r for r in recording["/world/camera"] if "Transform3D:translation" in r),
                        key=lambda r: r["frame"])
    for i, row in enumerate(transforms):
        T = optical_pose(i)
        assert np.allclose(row["Transform3D:translation"][0], T[:3, 3], atol=1e-5)
        # Rerun stores mat3x3 column-major.
        assert np.allclose(np.reshape(row["Transform3D:mat3x3"][0], (3, 3), order="F"), T[:3, :3], atol=1e-5)
    pinhole = next(r for r in recording["/world/camera"] if "Pinhole:image_from_camera" in r)
    K = PinholeCamera.from_fov(W, H, 90.0).K
    assert np.allclose(np.reshape(pinhole["Pinhole:image_from_camera"][0], (3, 3), order="F"), K)
    assert pinhole["Pinhole:resolution"][0] == [W, H]
    assert pinhole["Pinhole:camera_xyz"][0] == rr.components.ViewCoordinates.RDF.as_arrow_array().to_pylist()[0]


def test_the_map_is_z_up_and_the_anchor_is_logged_once_in_map_coordinates(recording, scene_dir):
    world = recording["/world"]
    assert world[0]["ViewCoordinates:xyz"][0] == rr.components.ViewCoordinates.RIGHT_HAND_Z_UP.as_arrow_array(
    ).to_pylist()[0]
    anchor = load_scene(scene_dir)
    [row] = recording["/world/anchor"]
    assert "frame" not in row, "the anchor is static"
    expected = anchor.points @ anchor.map_T_scene[:3, :3].T + anchor.map_T_scene[:3, 3]
    assert np.allclose(np.asarray(row["Points3D:positions"]), expected, atol=1e-4)


def test_images_and_depth_keep_the_camera_size(recording):
    image = recording["/world/camera/image"][0]
    depth = recording["/world/camera/depth"][0]
    assert image["Image:format"][0]["width"] == W and image["Image:format"][0]["height"] == H
    assert depth["DepthImage:format"][0]["width"] == W and depth["DepthImage:format"][0]["height"] == H
    assert depth["DepthImage:meter"][0] == 1.0


def test_a_large_world_is_subsampled_to_max_points(tmp_path, scene_dir):
    rrd = tmp_path / "anchor.rrd"
    log = RerunLog(str(rrd), PinholeCamera.from_fov(W, H, 90.0), max_points=100)
    log.log_world(PointCloudWorld(load_scene(scene_dir)))
    log.close()
    [row] = read_rrd(rrd)["/world/anchor"]
    assert len(row["Points3D:positions"]) == 100


def test_view_without_a_display_stops_before_rendering_with_a_one_line_reason(tmp_path, scene_dir, monkeypatch,
                                                                             capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    out = tmp_path / "out"
    assert main(["render-trajectory", str(write_tum(tmp_path / "poses.txt")), "-o", str(out), "--scene",
                 str(scene_dir), "--backend", "anchor", "--size", str(W), str(H), "--view"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no display" in err and ".rrd" in err
    assert not out.exists()


def test_an_rrd_name_without_the_rrd_suffix_is_refused(tmp_path, scene_dir, capsys):
    assert main(["render-trajectory", str(write_tum(tmp_path / "poses.txt")), "-o", str(tmp_path / "out"),
                 "--scene", str(scene_dir), "--backend", "anchor", "--rrd", str(tmp_path / "run.txt")]) == 2
    assert "--rrd: expected a file name ending in '.rrd'" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:RRD file has no footer")  # rerun --save streams without a footer
def test_view_url_streams_every_frame_to_a_running_rerun(tmp_path, scene_dir):
    import shutil
    import signal
    import socket
    import subprocess
    import time

    def listening(port: int) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    exe = shutil.which("rerun")
    if exe is None:
        pytest.skip("the rerun executable (rerun-sdk's CLI) is not on PATH")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    received = tmp_path / "received.rrd"
    # `rerun --save` is Rerun's own headless receiver: it listens like a viewer and writes what arrives.
    viewer = subprocess.Popen([exe, "--port", str(port), "--save", str(received)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not listening(port):
            assert time.monotonic() < deadline and viewer.poll() is None, "rerun --save did not start listening"
            time.sleep(0.1)
        assert main(["render-trajectory", str(write_tum(tmp_path / "poses.txt")), "-o", str(tmp_path / "out"),
                     "--scene", str(scene_dir), "--backend", "anchor", "--size", str(W), str(H), "--device", "cpu",
                     "--no-png", "--no-video", "--no-bag", "--view", f"rerun+http://127.0.0.1:{port}/proxy"]) == 0
    finally:
        viewer.send_signal(signal.SIGINT)
        viewer.wait(timeout=30)
    assert frame_stamps(read_rrd(received)) == [T0_NS + i * 100_000_000 for i in range(FRAMES)]
