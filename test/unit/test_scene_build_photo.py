"""`worldfm scene-build photo`: one photo, metric depth from a local transformers model, the single-image scene."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from worldfm_ros.cli import main
from worldfm_ros.errors import SceneError
from worldfm_ros.build.build_photo import build_photo, photo_intrinsics, read_photo
from worldfm_ros.scene.store import load_scene

W, H = 64, 48


def save_tiny_depth_anything(folder: Path, metric: bool = True) -> Path:
    """A randomly initialised Depth Anything (DINOv2 backbone of 4 layers, 32 wide), saved as a user's download is."""
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                            image_size=56, patch_size=14, out_indices=[1, 2, 3, 4], reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
                                 fusion_hidden_size=16, head_hidden_size=8, max_depth=10,
                                 depth_estimation_type="metric" if metric else "relative")
    torch.manual_seed(0)
    DepthAnythingForDepthEstimation(config).save_pretrained(folder)
    DPTImageProcessor(size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14,
                      image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_depth_anything(tmp_path_factory.mktemp("models") / "tiny-depth-anything")


def save_photo(path: Path, focal_35mm: int | None = 28) -> Path:
    from PIL import Image

    u, v = np.meshgrid(np.arange(W), np.arange(H))
    rgb = np.stack([u * 4, v * 5, np.full_like(u, 120)], axis=-1).astype(np.uint8)
    image = Image.fromarray(rgb)
    exif = image.getexif()
    if focal_35mm is not None:
        exif.get_ifd(0x8769)[0xA405] = focal_35mm
    image.save(path, exif=exif)
    return path


def test_a_photo_builds_a_one_keyframe_scene_through_a_locally_saved_model(tmp_path, model_dir):
    out = tmp_path / "scene"
    assert main(["scene-build", "photo", str(save_photo(tmp_path / "room.jpg")), "--depth-model", str(model_dir),
                 "-o", str(out)]) == 0
    scene = load_scene(out)
    assert len(scene.keyframes) == 1 and scene.keyframes[0].image.shape == (H, W, 3)
    assert scene.num_points > 0.9 * W * H and np.all(scene.keyframes[0].depth > 0)


def test_intrinsics_come_from_the_exif_35mm_focal_length_or_the_fov(tmp_path):
    image, f35 = read_photo(save_photo(tmp_path / "p.jpg", focal_35mm=28))
    assert f35 == 28.0
    K = photo_intrinsics(W, H, f35, None, "p")
    assert K[0, 0] == pytest.approx(28 * np.hypot(W, H) / np.hypot(36, 24))
    assert photo_intrinsics(W, H, f35, 90.0, "p")[0, 0] == pytest.approx((W / 2) / np.tan(np.radians(45)), rel=0.02)
    with pytest.raises(SceneError, match="no EXIF focal length .*pass the field of view with --fov"):
        photo_intrinsics(W, H, None, None, "p")


def test_bad_photos_and_model_folders_fail_with_one_line(tmp_path, model_dir):
    photo = save_photo(tmp_path / "p.jpg")
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    with pytest.raises(SceneError, match="notes.jpg: not an image"):
        build_photo(text, model_dir)
    with pytest.raises(SceneError, match="no depth model here .*hf download"):
        build_photo(photo, tmp_path / "missing")
    wrong = tmp_path / "bert"
    wrong.mkdir()
    (wrong / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8, "num_hidden_layers": 1,
                                                   "num_attention_heads": 1, "intermediate_size": 8}))
    with pytest.raises(SceneError, match="bert: not a depth-estimation model") as info:
        build_photo(photo, wrong)
    assert "\n" not in str(info.value)
    relative = save_tiny_depth_anything(tmp_path / "relative", metric=False)
    with pytest.raises(SceneError, match="predicts relative depth"):
        build_photo(photo, relative)
