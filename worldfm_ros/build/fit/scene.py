"""Splat worlds fitted to captures: from a posed RGB-D recording or from a scene's own keyframes.

``fit_world`` turns a point-cloud scene (the fused capture: its points initialise the Gaussians, its
frame and keyframes are kept) plus the captured views into a ``SplatWorld``; ``save_fitted`` writes
it as a splat scene folder with ``fit_report.yaml`` and ``fit_sheet.png`` (recorded | point anchor |
splat world), atomically: the scene is assembled under a temporary name beside the output and
renamed into place, so an interrupted fit never leaves a half-written scene that looks complete.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import resource
import shutil
import time
from pathlib import Path
from threading import Event

import numpy as np

from worldfm_ros.errors import SceneError
from worldfm_ros.build.fit.fitter import FitConfig, FitViews, SplatFitter
from worldfm_ros.scene.anchor import SceneAnchor

log = logging.getLogger(__name__)

REPORT_FILE = "fit_report.yaml"
SHEET_FILE = "fit_sheet.png"
#: fewest surface samples a fitted world keeps (a sparse capture still collides everywhere)
MIN_SURFACE_POINTS = 100_000
#: frames of the fit shown in the contact sheet
SHEET_ROWS = 3


def rgbd_fit_views(root: str | os.PathLike, indices: list[int], size: tuple[int, int], K: np.ndarray | None = None,
                   depth_scale: float | None = None, depth_registration: str = "auto") -> FitViews:
    """The recording's frames ``indices`` at ``size`` (W, H) as fit targets."""
    from worldfm_ros.build.build_rgbd import load_frames, read_sequence

    images, depths, poses, camera = load_frames(root, indices, size, depth_registration, K, depth_scale)
    names = [read_sequence(root, depth_registration=depth_registration).frames[i].name for i in indices]
    return FitViews(images, depths, poses, camera, names)


def keyframe_fit_views(anchor: SceneAnchor, size: tuple[int, int], where: str) -> FitViews:
    """A scene's keyframes (each with depth) resized to ``size`` (W, H) as fit targets."""
    if not anchor.keyframes:
        raise SceneError(f"{where}: no keyframes to fit to")
    frames = []
    for i, kf in enumerate(anchor.keyframes):
        if kf.depth is None:
            raise SceneError(f"{where}: keyframe {kf.name or i}: no depth (a fit needs depth for every frame)")
        frames.append(kf.resized(*size))
    camera = frames[0].camera
    for i, kf in enumerate(frames):
        if not np.allclose(kf.K, camera.K, atol=1e-3):
            raise SceneError(f"{where}: keyframe {kf.name or i}: intrinsics differ from the first keyframe's at the fit size")
    return FitViews(np.stack([kf.image for kf in frames]), np.stack([kf.depth for kf in frames]),
                    np.stack([kf.c2w for kf in frames]), camera, [kf.name or str(i) for i, kf in enumerate(frames)])


def fit_world(anchor: SceneAnchor, views: FitViews, config: FitConfig, checkpoint: Path | None = None,
              resume: bool = False, stop: Event | None = None, progress: bool = True):
    """Fit Gaussians initialised from ``anchor``'s points to ``views``. Returns (SplatWorld, report
    dict, the fitter). ``resume`` goes on from ``checkpoint`` when it exists. Raises FitInterrupted
    when ``stop`` is set (a checkpoint is saved first)."""
    from worldfm_ros.scene.downsample import point_spacing
    from worldfm_ros.build.build_splats import splats_from_points
    from worldfm_ros.world.splats import SplatWorld, splat_surface

    if len(anchor.points) == 0:
        raise SceneError(f"{anchor.name}: no points to start the fit from")
    spacing = anchor.point_spacing or point_spacing(anchor.points)
    fitter = SplatFitter(splats_from_points(anchor.points, anchor.colors, spacing), views, config)
    initial_psnr = fitter.mean_psnr()
    if resume and checkpoint is not None and Path(checkpoint).exists():
        fitter.load_checkpoint(Path(checkpoint))
        log.info("fit: resumed from %s at iteration %d", checkpoint, fitter.iteration)
    start = time.perf_counter()
    fitter.run(checkpoint, stop, progress)
    seconds = time.perf_counter() - start
    report = fitter.report()
    report.update(initial_psnr=round(initial_psnr, 3), seconds=round(seconds, 1), peak_rss_mb=round(_peak_rss_mb(), 1),
                  size=[views.camera.width, views.camera.height], config=dataclasses.asdict(config))
    refined = dict(zip(views.names, fitter.fitted_c2w()))
    keyframes = [dataclasses.replace(kf, c2w=refined.get(kf.name, kf.c2w)) for kf in anchor.keyframes]
    gaussians = fitter.gaussians()
    # surface samples (collision, scan, viewer) no denser than the fused capture the fit started from
    surface = splat_surface(gaussians, max(len(anchor.points), MIN_SURFACE_POINTS))
    world = SplatWorld(gaussians, anchor.map_T_scene, keyframes, anchor.name, surface=surface)
    return world, report, fitter


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def contact_sheet(anchor: SceneAnchor, world, views: FitViews, rows: list[int]) -> np.ndarray:
    """recorded | point anchor | splat world at the views ``rows`` (uint8 RGB)."""
    from worldfm_ros.scene.io import contact_sheet as sheet
    from worldfm_ros.world.pointcloud import PointCloudWorld

    points = PointCloudWorld(anchor)
    cams = [views.camera] * len(views.c2w)
    anchor_rgb = np.stack([r.rgb for r in points.render(cams, list(views.c2w))])
    splat_rgb = np.stack([r.rgb for r in world.render(cams, list(views.c2w))])
    return sheet({"recorded": views.images, "point anchor": anchor_rgb, "splat world": splat_rgb}, rows)


def save_fitted(world, report: dict, output: str | os.PathLike, sheet: np.ndarray | None = None) -> Path:
    """Write ``world`` as a splat scene folder at ``output`` with the fit report (and sheet),
    atomically (module docstring); an existing scene there is replaced only once the new one is whole."""
    import cv2
    import yaml

    from worldfm_ros.world.splats import save_splat_world

    out = Path(output)
    if out.suffix.lower() == ".npz":
        raise SceneError(f"{out}: a splat scene is a folder, not a .npz archive")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        save_splat_world(world, tmp)
        (tmp / REPORT_FILE).write_text(yaml.safe_dump(report, sort_keys=False))
        if sheet is not None:
            cv2.imwrite(str(tmp / SHEET_FILE), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def format_report(report: dict) -> str:
    """A few lines for the terminal: Gaussians, iterations, time, PSNR, pose corrections."""
    frames = report["frames"]
    moves = [f["pose_correction_cm"] for f in frames]
    turns = [f["pose_correction_deg"] for f in frames]
    return (f"fit: {report['gaussians']:,} Gaussians after {report['iterations']} iterations in "
            f"{report['seconds']:.0f} s (peak RSS {report['peak_rss_mb']:.0f} MB) at "
            f"{report['size'][0]}x{report['size'][1]}\n"
            f"  fitted views: {report['initial_psnr']:.2f} dB at the start -> {report['mean_psnr']:.2f} dB ({report['mean_psnr_exposed']:.2f} dB with each frame's "
            f"exposure term); pose corrections median {np.median(moves):.2f} cm / {np.median(turns):.3f} deg, "
            f"max {max(moves):.2f} cm / {max(turns):.3f} deg")
