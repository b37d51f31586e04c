"""Scene from one photo: metric depth from a monocular depth model, then the single-image builder.

The depth model is a transformers depth-estimation model (``AutoModelForDepthEstimation`` +
``AutoImageProcessor``) loaded from a local folder the user names (``config.json``,
``model.safetensors``, ``preprocessor_config.json``; nothing is downloaded). It must predict
*metric* depth: Depth Anything V2 Metric (``depth_estimation_type: metric`` in its config),
ZoeDepth, or any depth-estimation model whose config says so; relative-depth models (the plain
Depth Anything V2, DPT) give disparity up to an unknown scale and are refused. The prediction is
resized to the photo by the processor's own post-processing, on the CPU.

Intrinsics: the photo's EXIF 35 mm-equivalent focal length (``FocalLengthIn35mmFilm``, defined
over the 36 x 24 mm frame's diagonal), else the horizontal field of view ``hfov_deg``. EXIF
orientation is applied first. The scene is then built exactly as ``scene-build image`` builds
one (``build_image.image_scene``): the camera at the origin, the photo the only keyframe.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.errors import SceneError
from worldfm_ros.scene.anchor import SceneAnchor
from worldfm_ros.build.assemble import DEFAULT_MAX_POINTS
from worldfm_ros.build.build_image import image_scene

log = logging.getLogger(__name__)

_EXIF_IFD = 0x8769
_FOCAL_35MM = 0xA405
_FULL_FRAME_DIAGONAL_MM = float(np.hypot(36.0, 24.0))
#: model types whose output is metric depth whatever their config says
METRIC_MODEL_TYPES = ("zoedepth",)


def read_photo(path: str | os.PathLike) -> tuple[np.ndarray, float | None]:
    """(H, W, 3) uint8 RGB of a photo, EXIF orientation applied, and its 35 mm-equivalent focal length (mm) or None."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise SceneError(f"{path}: photo not found")
    try:
        with Image.open(path) as im:
            f35 = im.getexif().get_ifd(_EXIF_IFD).get(_FOCAL_35MM)
            image = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise SceneError(f"{path}: not an image that can be read ({exc})") from None
    return image, (float(f35) if f35 else None)


def photo_intrinsics(width: int, height: int, focal_35mm: float | None, hfov_deg: float | None, where: str) -> np.ndarray:
    """(3, 3) K in pixels: from ``hfov_deg`` when given, else from the 35 mm-equivalent focal length."""
    if hfov_deg is not None:
        return PinholeCamera.from_fov(width, height, float(hfov_deg)).K
    if focal_35mm is None:
        raise SceneError(f"{where}: no EXIF focal length (FocalLengthIn35mmFilm); pass the field of view with --fov")
    f = focal_35mm * float(np.hypot(width, height)) / _FULL_FRAME_DIAGONAL_MM
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def load_depth_model(folder: str | os.PathLike):
    """(model, image processor) of a metric depth-estimation model saved in ``folder``, in eval mode on the CPU."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise SceneError(f"{folder}: no depth model here (expected a transformers model folder with config.json, "
                         f"e.g. from 'hf download depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf --local-dir DIR')")
    from transformers import AutoConfig, AutoImageProcessor, AutoModelForDepthEstimation

    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        model = AutoModelForDepthEstimation.from_pretrained(folder, local_files_only=True)
        processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
    except (ValueError, OSError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SceneError(f"{folder}: not a depth-estimation model ({first})") from None
    metric = getattr(config, "depth_estimation_type", None) == "metric" or config.model_type in METRIC_MODEL_TYPES
    if not metric:
        raise SceneError(f"{folder}: {config.model_type} model predicts relative depth (config depth_estimation_type "
                         f"{getattr(config, 'depth_estimation_type', None)!r}); use a metric one, e.g. "
                         f"Depth-Anything-V2-Metric-Indoor-Small-hf")
    return model.eval(), processor


def predict_depth(model, processor, image: np.ndarray) -> np.ndarray:
    """(H, W) float32 metric z-depth in metres of an (H, W, 3) uint8 RGB image, 0 where not positive."""
    import torch

    h, w = image.shape[:2]
    inputs = processor(images=image, return_tensors="pt")
    with torch.inference_mode():
        outputs = model(**inputs)
    depth = processor.post_process_depth_estimation(outputs, target_sizes=[(h, w)])[0]["predicted_depth"]
    depth = depth.float().numpy()
    return np.where(np.isfinite(depth) & (depth > 0), depth, 0).astype(np.float32)


def build_photo(
    photo: str | os.PathLike,
    depth_model: str | os.PathLike,
    hfov_deg: float | None = None,
    max_depth: float | None = None,
    max_points: int = DEFAULT_MAX_POINTS,
    up: str = "auto",
    plane_threshold: float = 0.02,
    name: str | None = None,
) -> SceneAnchor:
    """One photo's scene (module docstring): depth from the model in ``depth_model``, K from EXIF or ``hfov_deg``."""
    photo = Path(photo)
    image, focal_35mm = read_photo(photo)
    h, w = image.shape[:2]
    K = photo_intrinsics(w, h, focal_35mm, hfov_deg, str(photo))
    model, processor = load_depth_model(depth_model)
    depth = predict_depth(model, processor, image)
    log.info("%s: %dx%d, f = %.1f px (%s), depth %.2f .. %.2f m", photo, w, h, K[0, 0],
             "--fov" if hfov_deg is not None else f"EXIF {focal_35mm:g} mm equivalent",
             float(depth[depth > 0].min()) if (depth > 0).any() else 0.0, float(depth.max()))
    return image_scene(image, depth, K, photo.stem, name or photo.stem, str(photo), max_depth, max_points, up,
                       plane_threshold)
