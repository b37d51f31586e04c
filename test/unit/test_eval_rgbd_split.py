"""``worldfm evaluate --rgbd`` with a split by frame index, on a tiny ray-cast sequence."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from worldfm_ros.cli import main
from worldfm_ros.errors import ConfigError
from worldfm_ros.eval.rgbd_split import split_indices
from worldfm_ros.build.procedural import body_pose, random_room
from test_scene_build_rgbd import CAMERA, HEIGHT, furnished_turn, write_seven_scenes  # noqa: E402


def panning_frames(n: int = 8):
    """n ray-cast frames of a procedural room, the camera turning 4 degrees per frame."""
    room = random_room(seed=7)
    frames = []
    for k in range(n):
        c2w = body_pose(room.size[0] / 2, room.size[1] / 2, 0.07 * k, height=HEIGHT, pitch=0.3)
        rgb, depth = room.raycast(CAMERA, c2w)
        frames.append((rgb, depth, c2w))
    return frames


def test_first_split_builds_from_the_first_part_and_holds_out_the_rest() -> None:
    anchor, heldout = split_indices(10, "first", fraction=0.6, heldout_step=2)
    assert anchor == [0, 1, 2, 3, 4, 5] and heldout == [6, 8]


def test_interleaved_split_holds_out_the_frames_between_anchor_frames() -> None:
    anchor, heldout = split_indices(7, "interleave", every=3)
    assert anchor == [0, 3, 6] and heldout == [1, 2, 4, 5]


def test_a_split_that_leaves_no_held_out_frame_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="both must be non-empty"):
        split_indices(1, "first", fraction=0.5)


def test_split_evaluation_scores_held_out_views_and_writes_a_contact_sheet(tmp_path: Path) -> None:
    write_seven_scenes(tmp_path / "seq", panning_frames(8))
    out = tmp_path / "eval.json"
    sheet = tmp_path / "sheet.png"
    assert main(["evaluate", "--rgbd", str(tmp_path / "seq"), "--split", "interleave", "--every", "2",
                 "--size", "64", "48", "--json", str(out), "--sheet", str(sheet)]) == 0
    payload = json.loads(out.read_text())
    assert payload["frames"] == [1, 3, 5, 7]
    m = payload["results"]["anchor (push-pull)"]
    # Exact ray-cast depth and colour: covered pixels reproduce the recording better than filled holes.
    assert m["psnr_covered"] > m["psnr_holes"] + 3.0
    assert 0.5 < m["coverage"] < 1.0
    assert m["flicker"] == m["flicker"]  # consecutive held-out views overlap, so flicker is a number
    image = cv2.imread(str(sheet))
    assert image.shape[1] == 3 * 200  # recorded | anchor render | anchor (push-pull)
    assert image.shape[0] == 3 * 150  # three held-out views


def test_pose_noise_moves_every_anchor_frame_but_the_first_by_the_asked_amount_and_costs_quality(tmp_path: Path) -> None:
    write_seven_scenes(tmp_path / "seq", panning_frames(8))
    scores = {}
    for label, extra in (("clean", []), ("noisy", ["--pose-noise", "0.05", "3"])):
        out = tmp_path / f"{label}.json"
        assert main(["evaluate", "--rgbd", str(tmp_path / "seq"), "--split", "interleave", "--every", "2",
                     "--size", "64", "48", "--json", str(out), *extra]) == 0
        payload = json.loads(out.read_text())
        scores[label] = payload["results"]["anchor (push-pull)"]["psnr_covered"]
    injected = payload["pose_errors"]["injected"]  # anchor frames 0, 2, 4, 6: the first keeps its pose
    assert injected["max_cm"] == pytest.approx(5.0) and injected["max_deg"] == pytest.approx(3.0)
    assert injected["median_cm"] == pytest.approx(5.0) and injected["median_deg"] == pytest.approx(3.0)
    assert scores["noisy"] < scores["clean"] - 1.0, scores


def test_refine_registers_the_noisy_anchor_poses_and_wins_back_the_structure(tmp_path: Path) -> None:
    camera, frames = furnished_turn(8)
    write_seven_scenes(tmp_path / "seq", frames, camera)
    scores = {}
    for label, extra in (("clean", []), ("noisy", ["--pose-noise", "0.03", "2"]),
                         ("registered", ["--pose-noise", "0.03", "2", "--refine", "icp"])):
        out = tmp_path / f"{label}.json"
        assert main(["evaluate", "--rgbd", str(tmp_path / "seq"), "--split", "interleave", "--every", "2",
                     "--size", "80", "60", "--json", str(out), *extra]) == 0
        payload = json.loads(out.read_text())
        scores[label] = payload["results"]["anchor (push-pull)"]["ssim"]
    registered = payload["pose_errors"]["registered"]
    assert registered["max_cm"] < 1.0 and registered["max_deg"] < 0.5, registered
    # the room's fine texture hides pose error from PSNR (a blurred render scores as well); SSIM sees it
    assert scores["registered"] > scores["noisy"] + 0.02 and scores["registered"] > scores["clean"] - 0.005, scores
