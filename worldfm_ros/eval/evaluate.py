"""``worldfm evaluate``: frame backends side by side on held-out multi-view samples.

Held-out data: procedural clips of rooms never used for training (seeds from 100000 on by
default), or a real posed RGB-D folder (``--rgbd``). A folder is split by frame index by default
(``--split first`` or ``interleave``: the anchor is built from some frames with the scene
builder, the others are rendered through the simulator's frame pipeline and scored; see
``worldfm_ros.eval.rgbd_split``, which also writes a contact sheet with ``--sheet``), or with
``--split clips`` cut into clips turned into samples exactly like the training data (4
reference frames fuse the anchor; every other frame is a target). On samples, each backend
generates every target from its anchor render and reference; then per backend:

* ``psnr`` / ``ssim``: against the ground-truth target over the whole view, averaged over
  views (PSNR capped at 100 dB for identical images);
* ``psnr_holes`` / ``ssim_holes``: over the render's holes only (what the anchor does not
  show, where a frame model has to do more than copy), pooled over every hole pixel of every
  view: PSNR of the mean squared error of all hole pixels, mean SSIM-map value over them. Pooled,
  not averaged per view, because a view with a handful of hole pixels would otherwise weigh
  as much as one with a large unseen region, and its near-exact fill (up to the 100 dB cap)
  would dominate the mean;
* ``consistency``: mean absolute difference (0-255 levels) between a generated target and
  another generated target of the same clip 2-4 frames away warped into it with the
  ground-truth depth and poses, over co-visible pixels (``gt_consistency``: the same on the
  ground truth, the floor set by resampling);
* ``flicker``: the same between consecutive targets, minus the ground truth's value (excess
  frame-to-frame change; 0 = as steady as the true images);
* ``ms``: mean milliseconds per generated frame.

The anchor-only backend (push-pull hole filling) is always included as the baseline.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from worldfm_ros.backends.config import CORRECTION_REGIONS
from worldfm_ros.runtime import add_threads_argument
from worldfm_ros.render.antialias import DEFAULT_ANTIALIAS
from worldfm_ros.build.assemble import DEFAULT_MAX_POINTS
from worldfm_ros.build.cli_build import add_rgbd_fusion_arguments

HELP = "compare frame backends on held-out views: PSNR/SSIM (all, holes), consistency, flicker"

METRICS = ("psnr", "ssim", "psnr_holes", "ssim_holes", "consistency", "gt_consistency", "flicker", "ms")


def generate_all(backend, samples, seed: int = 0) -> tuple[np.ndarray, float]:
    """Frames (N, S, S, 3) uint8 of ``backend`` for every sample, and the mean ms per frame."""
    from worldfm_ros.backends.base import FrameRequest

    frames = []
    start = time.perf_counter()
    for i in range(len(samples)):
        request = FrameRequest(render_rgb=samples.render[i], render_depth=samples.render_depth[i],
                               render_valid=samples.valid[i], K=samples.K[i], c2w=samples.target_c2w[i],
                               reference_rgb=samples.reference[i], reference_K=samples.K[i],
                               reference_c2w=samples.reference_c2w[i], reference_id=-1, seed=seed + i)
        frames.append(backend.generate_one(request))
    return np.stack(frames), (time.perf_counter() - start) * 1e3 / max(1, len(samples))


def _pairs(samples, min_gap: int, max_gap: int) -> list[tuple[int, int]]:
    """(i, j) sample pairs of one clip whose frame numbers differ by min_gap..max_gap."""
    pairs = []
    for clip in np.unique(samples.clip):
        idx = np.flatnonzero(samples.clip == clip)
        idx = idx[np.argsort(samples.frame[idx])]
        for a in range(len(idx)):
            for b in range(a + 1, len(idx)):
                gap = samples.frame[idx[b]] - samples.frame[idx[a]]
                if min_gap <= gap <= max_gap:
                    pairs.append((int(idx[a]), int(idx[b])))
    return pairs


def _consecutive(samples) -> list[tuple[int, int]]:
    pairs = []
    for clip in np.unique(samples.clip):
        idx = np.flatnonzero(samples.clip == clip)
        idx = idx[np.argsort(samples.frame[idx])]
        pairs += [(int(a), int(b)) for a, b in zip(idx[:-1], idx[1:])]
    return pairs


def _warp_mae(images: np.ndarray, samples, pairs: list[tuple[int, int]]) -> np.ndarray:
    from worldfm_ros.eval.metrics import warp_difference

    out = []
    for i, j in pairs:
        mae, _ = warp_difference(images[i], images[j], samples.target_depth[i], samples.target_c2w[i],
                                 samples.target_depth[j], samples.target_c2w[j], samples.K[j])
        out.append(mae)
    return np.asarray(out, dtype=np.float64)


def score(frames: np.ndarray, samples) -> dict[str, float]:
    """The metrics of the module docstring (except ``ms``) for frames (N, S, S, 3) of ``samples``."""
    from worldfm_ros.eval.metrics import psnr, ssim_map
    from worldfm_ros.eval.rgbd_split import pooled_psnr_ssim

    maps = [ssim_map(frames[i], samples.target[i]) for i in range(len(samples))]
    per = {"psnr": [psnr(frames[i], samples.target[i]) for i in range(len(samples))],
           "ssim": [float(m.mean()) for m in maps]}
    result = {k: float(np.nanmean(np.minimum(v, 100.0))) for k, v in per.items()}
    result["psnr_holes"], result["ssim_holes"] = pooled_psnr_ssim(frames, samples.target, ~samples.valid, maps)
    wide = _pairs(samples, 2, 4)
    result["consistency"] = float(np.nanmean(_warp_mae(frames, samples, wide)))
    result["gt_consistency"] = float(np.nanmean(_warp_mae(samples.target, samples, wide)))
    near = _consecutive(samples)
    result["flicker"] = float(np.nanmean(_warp_mae(frames, samples, near) - _warp_mae(samples.target, samples, near)))
    return result


# Views grouped by the share of their pixels that are render holes: (low, high] fractions.
HOLE_BINS = ((0.0, 0.02), (0.02, 0.1), (0.1, 0.5), (0.5, 1.0))


def hole_psnr_by_size(frames: np.ndarray, samples) -> dict[str, float]:
    """Pooled hole PSNR (dB) over the views of each ``HOLE_BINS`` group, keyed 'holes <=2%' etc.,
    plus 'per-view mean': the mean over views of each view's hole PSNR (capped at 100 dB), the
    figure small, almost exactly filled holes dominate."""
    from worldfm_ros.eval.metrics import DATA_RANGE, psnr

    holes = ~samples.valid
    fraction = holes.reshape(len(samples), -1).mean(axis=1)
    out = {}
    for low, high in HOLE_BINS:
        views = np.flatnonzero((fraction > low) & (fraction <= high))
        sq = [((frames[i][holes[i]].astype(np.float64) - samples.target[i][holes[i]]) ** 2).ravel() for i in views]
        mse = float(np.concatenate(sq).mean()) if views.size else float("nan")
        out[f"holes {100 * low:g}-{100 * high:g}% ({views.size} views)"] = \
            min(100.0, 10 * np.log10(DATA_RANGE ** 2 / mse)) if mse > 0 else (100.0 if mse == 0 else float("nan"))
    per_view = [min(100.0, psnr(frames[i], samples.target[i], holes[i])) for i in range(len(samples)) if holes[i].any()]
    out["per-view mean"] = float(np.mean(per_view)) if per_view else float("nan")
    return out


def evaluate(backends: dict, samples, seed: int = 0) -> dict[str, dict[str, float]]:
    """{backend label: metrics} for every backend (label -> FrameBackend) on ``samples``; each
    entry also holds ``hole_psnr_by_size`` under 'holes_by_size'."""
    results = {}
    for label, backend in backends.items():
        frames, ms = generate_all(backend, samples, seed)
        results[label] = {**score(frames, samples), "ms": ms, "holes_by_size": hole_psnr_by_size(frames, samples)}
    return results


def format_table(results: dict[str, dict[str, float]]) -> str:
    """A Markdown table, one row per backend, one column per metric of ``METRICS``; then, when
    present, one of hole PSNR by hole size."""
    lines = ["| backend | " + " | ".join(METRICS) + " |", "|---|" + "---:|" * len(METRICS)]
    for label, m in results.items():
        lines.append(f"| {label} | " + " | ".join(f"{m[k]:.3f}" if k.startswith("ssim") else f"{m[k]:.2f}"
                                                  for k in METRICS) + " |")
    groups = [list(m["holes_by_size"]) for m in results.values() if "holes_by_size" in m]
    if groups:
        lines += ["", "| hole PSNR, dB | " + " | ".join(groups[0]) + " |", "|---|" + "---:|" * len(groups[0])]
        lines += [f"| {label} | " + " | ".join(f"{v:.2f}" for v in m["holes_by_size"].values()) + " |"
                  for label, m in results.items() if "holes_by_size" in m]
    return "\n".join(lines)


def heldout_samples(args: argparse.Namespace):
    """The evaluation samples the arguments describe (procedural by default, or --rgbd)."""
    from worldfm_ros.train.config import DataConfig
    from worldfm_ros.train.data import SampleSet, build_samples
    from worldfm_ros.train.dataset import procedural_samples

    if args.rgbd:
        from worldfm_ros.train.loaders import rgbd_clips

        clips = rgbd_clips(args.rgbd, args.frames_per_clip, args.frame_step, max_clips=args.clips,
                           depth_registration=args.depth_registration)
        return SampleSet.concatenate([build_samples(c, args.image_size, np.random.default_rng([k, 3]), 4, clip_index=k)
                                      for k, c in enumerate(clips)])
    cfg = DataConfig(num_clips=args.clips, first_seed=args.first_seed, frames_per_clip=args.frames_per_clip,
                     capture_size=args.capture_size, image_size=args.image_size, hfov_deg=args.hfov)
    return procedural_samples(cfg)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", action="append", default=[], help="frame model .safetensors (repeatable)")
    parser.add_argument("--steps", type=int, nargs="+", default=[2], choices=(1, 2),
                        help="distilled-sampler steps to evaluate each model with (default: 2)")
    parser.add_argument("--correction", nargs="+", default=["holes"], choices=CORRECTION_REGIONS,
                        help="where a residual model corrects the filled render (the node's backend.correction; "
                             "several = one row each; default holes)")
    parser.add_argument("--ddim", type=int, default=0, help="also run each model with an N-step DDIM sampler")
    parser.add_argument("--clips", type=int, default=16, help="held-out clips (default 16)")
    parser.add_argument("--first-seed", type=int, default=100_000, help="room seed of the first held-out clip")
    parser.add_argument("--frames-per-clip", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=128, help="side of the evaluated views in pixels (default 128)")
    parser.add_argument("--capture-size", type=int, default=256, help="side of the ray-cast procedural frames (default 256)")
    parser.add_argument("--hfov", type=float, default=75.0, help="procedural camera field of view, degrees")
    parser.add_argument("--rgbd", help="evaluate on a posed RGB-D folder instead of procedural rooms")
    parser.add_argument("--frame-step", type=int, default=1, help="with --rgbd --split clips: use every N-th frame")
    add_rgbd_fusion_arguments(parser)
    parser.add_argument("--max-points", type=int, default=DEFAULT_MAX_POINTS,
                        help=f"--split first/interleave: point budget of the anchor (and so of the Gaussians a fit "
                             f"starts from), met by voxel downsampling (default {DEFAULT_MAX_POINTS:,})")
    parser.add_argument("--split", choices=("first", "interleave", "clips"), default="first",
                        help="with --rgbd: anchor from the first part of the frames and score the rest (first, "
                             "default), from every --every-th frame and score those between (interleave), or "
                             "training-style clips (clips)")
    parser.add_argument("--fraction", type=float, default=0.5, help="--split first: share of the frames in the anchor")
    parser.add_argument("--every", type=int, default=4, help="--split interleave: every N-th frame is in the anchor")
    parser.add_argument("--heldout-step", type=int, default=1, help="--split first/interleave: score every N-th "
                                                                    "held-out frame")
    parser.add_argument("--size", type=int, nargs=2, metavar=("W", "H"), default=(320, 240),
                        help="--split first/interleave: evaluation camera size, px (the recording's K, scaled)")
    parser.add_argument("--point-radius", type=int, default=1, help="--split first/interleave: the node's splat "
                                                                    "radius, px")
    parser.add_argument("--splat", choices=("square", "footprint"), default="square",
                        help="--split first/interleave: splat --point-radius squares (the node's default) or by "
                             "each point's footprint")
    parser.add_argument("--antialias", type=float, default=DEFAULT_ANTIALIAS,
                        help="--split first/interleave: the node's reconstruction filter of the camera view, in point "
                             f"footprints (0 = point-sampled; default {DEFAULT_ANTIALIAS:g})")
    parser.add_argument("--anchor-fill", action="append", default=[], choices=("push_pull", "background", "telea"),
                        help="anchor-backend hole filling to evaluate (repeatable; default push_pull)")
    parser.add_argument("--sheet", type=Path, help="--split first/interleave: write a contact sheet PNG (recorded | "
                                                   "anchor render | each backend) of 3 held-out views here")
    parser.add_argument("--seed", type=int, default=0, help="noise seed of the first frame")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--world", choices=("points", "splats", "both"), default="points",
                        help="--split first/interleave: score the fused point anchor, a splat world fitted to the "
                             "anchor frames (the --fit-* options), or both side by side")
    parser.add_argument("--pose-noise", type=float, nargs=2, metavar=("M", "DEG"),
                        help="--split first/interleave: give every anchor frame but the first a pose error of M metres "
                             "and DEG degrees (random directions, --seed) before fusing and fitting; held-out views keep "
                             "the recorded poses (with --refine-poses: how well the fit recovers them)")
    from worldfm_ros.build.cli_build import add_refine_argument
    from worldfm_ros.build.fit.cli import add_fit_arguments

    add_refine_argument(parser, "none", "the anchor frames' poses (--split first/interleave; after --pose-noise)")
    add_fit_arguments(parser, resumable=False)  # the evaluation's fit is not kept
    add_threads_argument(parser)


def run(args: argparse.Namespace) -> int:
    from worldfm_ros.backends.fill_backend import FillBackend
    from worldfm_ros.backends.torch_backend import TorchBackend

    fills = args.anchor_fill or ["push_pull"]
    backends = {("anchor (push-pull)" if f == "push_pull" else f"anchor ({f})"): FillBackend(fill=f) for f in fills}
    stems = [Path(p).stem for p in args.model]
    for path, stem in zip(args.model, stems):
        name = stem if stems.count(stem) == 1 else f"{Path(path).parent.name}/{stem}"  # runs/*/model.safetensors
        for steps in args.steps:
            for region in args.correction:
                label = f"{name} ({steps}-step" + (f", corrects {region})" if len(args.correction) > 1 else ")")
                backends[label] = TorchBackend(model_path=path, steps=steps, correction=region)
        if args.ddim:
            backends[f"{name} (DDIM {args.ddim})"] = TorchBackend(model_path=path, sampler="ddim", steps=args.ddim)
    if args.rgbd and args.split != "clips":
        return run_split(args, backends)
    samples = heldout_samples(args)
    results = evaluate(backends, samples, args.seed)
    holes = float((~samples.valid).mean())
    print(f"{len(samples)} held-out views of {len(np.unique(samples.clip))} clips, "
          f"{samples.image_size}x{samples.image_size} px, {100 * holes:.1f}% of pixels are render holes")
    print(format_table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"views": len(samples), "clips": int(len(np.unique(samples.clip))), "hole_fraction": holes,
                   "source": args.rgbd or f"procedural rooms {args.first_seed}..{args.first_seed + args.clips - 1}",
                   "results": results}
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


def run_split(args: argparse.Namespace, backends: dict) -> int:
    """``--rgbd`` with a frame-index split: print (and optionally save) the table and the sheet."""
    from worldfm_ros.eval.rgbd_split import evaluate_split, format_split_table
    from worldfm_ros.build.fit.cli import fit_config
    from worldfm_ros.scene.io import contact_sheet, write_image

    run = evaluate_split(
        args.rgbd, backends, args.split, args.fraction, args.every, args.heldout_step, tuple(args.size),
        args.point_radius, build_options={"depth_registration": args.depth_registration,
                                          "fuse_voxel": args.fuse_voxel, "max_points": args.max_points},
        seed=args.seed,
        footprint=args.splat == "footprint", antialias=args.antialias,
        worlds=("points", "splats") if args.world == "both" else (args.world,), fit=fit_config(args),
        fit_size=args.fit_size, pose_noise=args.pose_noise, refine=args.refine)
    results, views, outputs, anchor = run.results, run.views, run.outputs, run.anchor
    print(f"{args.rgbd}: split {args.split}, anchor of {len(anchor.points)} points, {len(views.frames)} held-out "
          f"views (frames {views.frames[0]}..{views.frames[-1]}), {views.camera.width}x{views.camera.height} px")
    print(format_split_table(results))
    for label, e in run.poses.items():
        print(f"anchor frame poses, {label}: median {e['median_cm']:.2f} cm / {e['median_deg']:.3f} deg, "
              f"max {e['max_cm']:.2f} cm / {e['max_deg']:.3f} deg from the recording's")
    if args.sheet:
        rows = sorted({int(round(x)) for x in np.linspace(0, len(views.frames) - 1, 3)})
        args.sheet.parent.mkdir(parents=True, exist_ok=True)
        write_image(args.sheet, contact_sheet(outputs, rows))
        print(f"contact sheet: {args.sheet} (held-out frames {[int(views.frames[r]) for r in rows]})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"source": str(args.rgbd), "split": args.split, "views": len(views.frames),
                   "frames": views.frames.tolist(), "results": results, "pose_errors": run.poses}
        args.json.write_text(json.dumps(payload, indent=2))
    return 0
