"""Held-out views of a posed RGB-D recording, scored through the simulator's own frame pipeline.

The recording's frames are split by index: the anchor is built with ``build_rgbd`` (what
``worldfm scene-build rgbd`` runs) from the anchor frames only, then every held-out frame's
recorded pose is rendered through ``FramePipeline`` (anchor render, keyframe choice, frame
backend: what the node publishes) at the evaluation camera size, and compared with the
recorded image.

Splits:

* ``first``: anchor from frames ``[0, fraction * N)``, held-out views from the rest (what a user
  sees driving on from where the recording stopped; the later views also see parts of the
  room the anchor never saw);
* ``interleave``: anchor from every ``every``-th frame, held-out views from the frames in
  between (views near the recording, nearly all pixels covered: a measure of the anchor's
  fidelity rather than of hallucination).

Metrics per backend (images are uint8 RGB at the evaluation size):

* ``psnr`` / ``ssim``: whole view, averaged over views;
* ``psnr_covered`` / ``ssim_covered`` and ``psnr_holes`` / ``ssim_holes``: pooled over every
  pixel the anchor render covered (or left as a hole) in every view: PSNR of their pooled mean
  squared error, mean SSIM-map value over them;
* ``flicker``: mean absolute difference (0-255 levels) between consecutive held-out outputs,
  one warped into the other with the recorded depth and poses over co-visible pixels, minus the
  same on the recorded images (excess frame-to-frame change; 0 = as steady as the recording);
* ``coverage``: mean fraction of pixels the anchor render covered; ``ms``: mean pipeline
  milliseconds per view.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.errors import ConfigError
from worldfm_ros.render.antialias import DEFAULT_ANTIALIAS

log = logging.getLogger(__name__)

SPLITS = ("first", "interleave")
SPLIT_METRICS = ("psnr", "ssim", "psnr_covered", "ssim_covered", "psnr_holes", "ssim_holes", "flicker",
                 "coverage", "ms")


def split_indices(num_frames: int, split: str = "first", fraction: float = 0.5, every: int = 4,
                  heldout_step: int = 1) -> tuple[list[int], list[int]]:
    """(anchor frame indices, held-out frame indices) of a recording of ``num_frames`` frames.

    split: 'first' (anchor = the first ``fraction`` of the frames) or 'interleave' (anchor =
    every ``every``-th frame from 0); held-out = the other frames, every ``heldout_step``-th.
    """
    if split not in SPLITS:
        raise ConfigError(f"split: expected one of {SPLITS}, got {split!r}")
    if heldout_step < 1:
        raise ConfigError(f"heldout_step: expected >= 1, got {heldout_step}")
    if split == "first":
        if not 0.0 < fraction < 1.0:
            raise ConfigError(f"split fraction: expected a number in (0, 1), got {fraction}")
        cut = int(round(fraction * num_frames))
        anchor, rest = list(range(cut)), list(range(cut, num_frames))
    else:
        if every < 2:
            raise ConfigError(f"interleave every: expected >= 2 frames, got {every}")
        anchor = list(range(0, num_frames, every))
        rest = [i for i in range(num_frames) if i % every]
    heldout = rest[::heldout_step]
    if not anchor or not heldout:
        raise ConfigError(f"split {split!r} of {num_frames} frames leaves {len(anchor)} anchor and "
                          f"{len(heldout)} held-out frames; both must be non-empty")
    return anchor, heldout


@dataclass
class HeldOutViews:
    """Recorded held-out views at the evaluation size (H, W).

    images: (N, H, W, 3) uint8 RGB; depth: (N, H, W) float32 z-depth, metres, 0 = none;
    c2w: (N, 4, 4) camera-to-world in the recording's (= scene) frame, OpenCV axes, metres;
    camera: the evaluation camera; frames: (N,) indices into the recording.
    """

    images: np.ndarray
    depth: np.ndarray
    c2w: np.ndarray
    camera: PinholeCamera
    frames: np.ndarray


def load_views(root: str | Path, indices: list[int], size: tuple[int, int],
               depth_registration: str = "auto", K: np.ndarray | None = None,
               depth_scale: float | None = None) -> HeldOutViews:
    """The recording's frames ``indices`` at ``size`` (W, H) (``build.build_rgbd.load_frames``)."""
    from worldfm_ros.build.build_rgbd import load_frames

    images, depths, poses, camera = load_frames(root, indices, size, depth_registration, K, depth_scale)
    return HeldOutViews(images, depths, poses, camera, np.asarray(indices))


def render_views(world, backend, views: HeldOutViews, point_radius: int = 1, seed: int = 0,
                 splat: str = "square", antialias: float = DEFAULT_ANTIALIAS):
    """Every held-out pose of ``world`` (a ``world.base.World``) through ``FramePipeline`` (splats:
    ``point_radius`` px squares, or by footprint with ``splat`` 'footprint'; ``antialias``: its
    reconstruction filter, in point footprints); returns (rgb (N, H, W, 3) uint8, anchor render
    (N, H, W, 3) uint8, covered (N, H, W) bool, mean ms per view)."""
    from worldfm_ros.frame.pipeline import FramePipeline
    from worldfm_ros.sensors.rig import CameraRig

    rig = CameraRig(views.camera, np.eye(4))
    pipeline = FramePipeline(world, rig, backend, point_radius=point_radius, splat=splat, antialias=antialias)
    rgb, render, covered, ms = [], [], [], []
    for k, c2w in enumerate(views.c2w):
        map_T_base = rig.base_from_optical_in_map(world.map_T_scene @ c2w)
        frame = pipeline.render(map_T_base, 0, seed=seed + k)
        rgb.append(frame.rgb)
        render.append(frame.render_rgb)
        covered.append(frame.valid)
        ms.append(sum(v for key, v in frame.timings_ms.items() if "." not in key))
    return np.stack(rgb), np.stack(render), np.stack(covered), float(np.mean(ms))


def pooled_psnr_ssim(frames: np.ndarray, targets: np.ndarray, masks: np.ndarray,
                     ssim_maps: list[np.ndarray]) -> tuple[float, float]:
    """PSNR (dB, capped at 100) of the mean squared error pooled over every masked pixel of every
    view, and the mean of the SSIM maps over them; (nan, nan) for an empty mask.

    frames, targets: (N, H, W, 3) uint8; masks: (N, H, W) bool; ssim_maps: N (H, W) maps.
    """
    from worldfm_ros.eval.metrics import DATA_RANGE

    sq = [((f[m].astype(np.float64) - t[m].astype(np.float64)) ** 2).mean(axis=-1)
          for f, t, m in zip(frames, targets, masks)]
    sq = np.concatenate(sq) if sq else np.zeros(0)
    if sq.size == 0:
        return float("nan"), float("nan")
    mse = float(sq.mean())
    value = 100.0 if mse == 0 else min(100.0, 10.0 * np.log10(DATA_RANGE ** 2 / mse))
    return value, float(np.concatenate([s[m] for s, m in zip(ssim_maps, masks)]).mean())


def score_views(rgb: np.ndarray, covered: np.ndarray, views: HeldOutViews) -> dict[str, float]:
    """The metrics of the module docstring (except ``ms``) of outputs ``rgb`` (N, H, W, 3) with
    render coverage ``covered`` (N, H, W) against the recorded ``views``."""
    from worldfm_ros.eval.metrics import psnr, ssim_map, warp_difference

    maps = [ssim_map(a, b) for a, b in zip(rgb, views.images)]
    result = {"psnr": float(np.mean([min(100.0, psnr(a, b)) for a, b in zip(rgb, views.images)])),
              "ssim": float(np.mean([m.mean() for m in maps]))}
    result["psnr_covered"], result["ssim_covered"] = pooled_psnr_ssim(rgb, views.images, covered, maps)
    result["psnr_holes"], result["ssim_holes"] = pooled_psnr_ssim(rgb, views.images, ~covered, maps)
    excess = []
    for i in range(len(rgb) - 1):
        args = (views.depth[i], views.c2w[i], views.depth[i + 1], views.c2w[i + 1], views.camera.K)
        out, _ = warp_difference(rgb[i], rgb[i + 1], *args)
        rec, _ = warp_difference(views.images[i], views.images[i + 1], *args)
        excess.append(out - rec)
    result["flicker"] = float(np.nanmean(excess)) if excess else float("nan")
    result["coverage"] = float(covered.mean())
    return result


@dataclass
class SplitRun:
    """What ``evaluate_split`` measured: results {label: metrics}; views (HeldOutViews); outputs
    {label: (N, H, W, 3) uint8} with 'recorded' and each world's render first; the anchor
    (SceneAnchor); poses: with ``pose_noise``, the anchor frames' pose errors against the recording
    (``pose_error_summary``) as injected and, per fitted world, after its fit."""

    results: dict
    views: HeldOutViews
    outputs: dict
    anchor: object
    poses: dict


def pose_error_summary(estimated: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Median and max translation (cm) and rotation (deg) error of (N, 4, 4) poses."""
    from worldfm_ros.geometry import pose_errors

    metres, degrees = pose_errors(estimated, truth)
    return {"median_cm": float(np.median(metres) * 100), "max_cm": float(metres.max() * 100),
            "median_deg": float(np.median(degrees)), "max_deg": float(degrees.max())}


def evaluate_split(root: str | Path, backends: dict, split: str = "first", fraction: float = 0.5, every: int = 4,
                   heldout_step: int = 1, size: tuple[int, int] = (320, 240), point_radius: int = 1,
                   build_options: dict | None = None, seed: int = 0, footprint: bool = False,
                   antialias: float = DEFAULT_ANTIALIAS, worlds: tuple[str, ...] = ("points",), fit=None,
                   fit_size: tuple[int, int] = (320, 240), pose_noise: tuple[float, float] | None = None,
                   refine: str = "none") -> SplitRun:
    """Build the anchor of ``root``'s anchor frames and score every backend (label -> FrameBackend)
    on the held-out views (``footprint``: splat by footprint; ``antialias``: see ``render_views``).

    worlds: 'points' (the fused anchor) and / or 'splats' (Gaussians fitted with ``fit``, a
    ``build.fit.config.FitConfig``, to the anchor frames at ``fit_size``: what ``scene-build rgbd --world
    splats`` writes); with both, labels read 'points / backend'.
    pose_noise: (metres, degrees): every anchor frame but the first (which fixes the world's frame)
    is given a pose error of exactly this size in a random direction (seeded by ``seed``) before the
    anchor is fused and fitted, as an inaccurate odometry would; held-out views keep the recorded poses.
    refine: a builder's ``--refine`` choice (``build.pose_refine.REFINE``): 'rgbd' / 'icp' register
    the anchor frames' (possibly perturbed) poses before fusing and fitting, as ``scene-build rgbd
    --refine`` does; 'none' keeps them."""
    from worldfm_ros.build.build_rgbd import build_rgbd, read_sequence
    from worldfm_ros.world.pointcloud import PointCloudWorld

    build_options = dict(build_options or {})
    registration = build_options.get("depth_registration", "auto")
    frames = read_sequence(root, depth_registration=registration).frames
    anchor_idx, heldout_idx = split_indices(len(frames), split, fraction, every, heldout_step)
    log.info("%s: anchor from %d frames, %d held-out views", root, len(anchor_idx), len(heldout_idx))
    recorded = np.stack([frames[i].c2w for i in anchor_idx])
    used, poses = recorded, {}
    if pose_noise is not None:
        from worldfm_ros.geometry import perturbed_poses

        used = recorded.copy()
        used[1:] = perturbed_poses(recorded[1:], *pose_noise, np.random.default_rng(seed))
        build_options["poses"] = used
        poses["injected"] = pose_error_summary(used, recorded)
    if refine != "none":
        from worldfm_ros.build.build_rgbd import refine_sequence_poses
        from worldfm_ros.build.pose_refine import refine_config

        used, _ = refine_sequence_poses(root, anchor_idx, used, depth_registration=registration,
                                        cfg=refine_config(refine))
        build_options["poses"] = used
        poses["registered"] = pose_error_summary(used, recorded)
    anchor = build_rgbd(root, frames=anchor_idx, **build_options)
    views = load_views(root, heldout_idx, size, registration)
    results, outputs = {}, {"recorded": views.images}
    for kind in worlds:
        if kind == "splats":
            import dataclasses

            from worldfm_ros.build.fit.scene import fit_world, format_report, rgbd_fit_views
            from worldfm_ros.build.fit.config import FitConfig

            targets = dataclasses.replace(rgbd_fit_views(root, anchor_idx, fit_size, depth_registration=registration),
                                          c2w=used)
            world, report, fitter = fit_world(anchor, targets, fit or FitConfig())
            log.info("%s", format_report(report))
            if pose_noise is not None:
                poses["splats, fitted"] = pose_error_summary(fitter.fitted_c2w(), recorded)
        elif kind == "points":
            world = PointCloudWorld(anchor)
        else:
            raise ConfigError(f"worlds: expected 'points' or 'splats', got {kind!r}")
        prefix = f"{kind} / " if len(worlds) > 1 else ""
        for label, backend in backends.items():
            rgb, render, covered, ms = render_views(world, backend, views, point_radius, seed,
                                                    "footprint" if footprint else "square", antialias)
            outputs.setdefault(f"{kind} render" if len(worlds) > 1 else "anchor render", render)
            outputs[prefix + label] = rgb
            results[prefix + label] = {**score_views(rgb, covered, views), "ms": ms}
    return SplitRun(results, views, outputs, anchor, poses)


def format_split_table(results: dict[str, dict[str, float]]) -> str:
    """A Markdown table, one row per backend, one column per metric of ``SPLIT_METRICS``."""
    lines = ["| backend | " + " | ".join(SPLIT_METRICS) + " |", "|---|" + "---:|" * len(SPLIT_METRICS)]
    for label, m in results.items():
        cells = [f"{m[k]:.3f}" if k.startswith("ssim") or k == "coverage" else f"{m[k]:.2f}" for k in SPLIT_METRICS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
