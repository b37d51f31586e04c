"""``worldfm bench-model``: per-stage latency and FPS of the frame model through a frame backend.

Random weights (``--config tiny|xl_2``) or a checkpoint (``--model``); pixel codec or a VAE
(``--vae`` folder, or random weights with the SDXL VAE architecture). Every frame is timed per
stage by the backend (CUDA synchronised at each boundary) after ``--warmup`` frames; the
reference is measured both cached (same keyframe every frame) and uncached (re-encoded every
frame, as the released pipeline does). Prints a markdown table of median / min ms per stage and FPS,
then the flicker: mean absolute change (8-bit levels) between consecutive frames generated from one
unchanged request, which only the noise and the posterior samples can cause. ``--profile release``
runs the released pipeline's choices (posterior samples, fresh noise, no reference cache).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import platform
import statistics
from typing import Any

from worldfm_ros.errors import ConfigError
from worldfm_ros.runtime import add_threads_argument

HELP = "time the frame model per stage (encode, each DiT step, decode) and report FPS"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--config", choices=("tiny", "small", "xl_2"), default="tiny",
                     help="named DiT size with random weights (default tiny)")
    src.add_argument("--model", help="checkpoint: .safetensors (ours) or official worldfm_*-step.pth")
    parser.add_argument("--backend", choices=("torch", "onnxruntime", "tensorrt"), default="torch")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    parser.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="fp32",
                        help="DiT and VAE precision (tensorrt: builder precision)")
    parser.add_argument("--steps", type=int, choices=(1, 2), default=2, help="distilled steps (default 2)")
    parser.add_argument("--resolution", type=int, default=None,
                        help="square image side in pixels (default: the model's own)")
    parser.add_argument("--codec", choices=("pixel", "vae"), default=None,
                        help="pixel space-to-depth or VAE (default: vae for xl_2 / --vae, else pixel)")
    parser.add_argument("--vae", help="diffusers VAE folder; without it --codec vae uses random SDXL-VAE weights")
    parser.add_argument("--pixel-factor", type=int, default=8,
                        help="space-to-depth factor of the pixel codec for random-weight models (default 8)")
    parser.add_argument("--compile", action="store_true", help="torch backend: torch.compile the DiT")
    parser.add_argument("--cuda-graphs", action="store_true", help="torch backend: CUDA-graph the DiT call")
    parser.add_argument("--providers", nargs="+", default=None,
                        help="onnxruntime execution providers (default CPUExecutionProvider)")
    parser.add_argument("--batch", type=int, default=1,
                        help="frames per generate call (several cameras or robots; default 1): stage ms are per "
                             "call, FPS counts frames")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per reference mode (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed frames first (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", choices=("default", "release"), default="default",
                        help="compatibility profile (release: posterior samples, fresh noise, no reference cache)")
    parser.add_argument("--reuse-noise", action="store_true", help="same noise every frame (the node's default)")
    parser.add_argument("--flicker-frames", type=int, default=4,
                        help="frames of one unchanged request for the flicker figure (default 4)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    add_threads_argument(parser)


def _random_model(args: argparse.Namespace, codec_kind: str, device: Any) -> Any:
    import torch

    from worldfm_ros.model.config import DiTConfig
    from worldfm_ros.model.dit import WorldFMDiT

    cfg = DiTConfig.named(args.config)
    factor = 8 if codec_kind == "vae" else args.pixel_factor
    channels = 4 if codec_kind == "vae" else 3 * factor * factor
    resolution = args.resolution or cfg.input_size * factor
    if resolution % (factor * cfg.patch_size):
        raise ConfigError(f"--resolution {resolution}: expected a multiple of {factor * cfg.patch_size}")
    # The release scales positions by image side / 512; only xl_2 follows the release.
    pe = resolution / 512 if args.config == "xl_2" else cfg.pe_interpolation
    cfg = dataclasses.replace(cfg, latent_channels=channels, input_size=resolution // factor, pe_interpolation=pe)
    torch.manual_seed(args.seed)
    with torch.device(device):  # initialising XL/2 on the GPU takes a fraction of the CPU time
        return WorldFMDiT(cfg)


def _codec(args: argparse.Namespace, codec_kind: str, latent_channels: int) -> Any:
    from worldfm_ros.backends.frame_model import backend_codec, parse_dtype
    from worldfm_ros.devices import parse_device
    from worldfm_ros.model.codec import VAECodec, sdxl_vae_config
    from worldfm_ros.backends.config import model_profile

    device = parse_device(args.device)
    dtype = parse_dtype(args.dtype) if device.type == "cuda" else parse_dtype("fp32")
    profile = model_profile(args.profile)
    if codec_kind == "vae" and not args.vae:
        return VAECodec.from_config(sdxl_vae_config(), device, dtype, profile.sample_posterior, seed=args.seed)
    return backend_codec(latent_channels, args.vae if codec_kind == "vae" else None, device, dtype, False, profile)


def _request(size: int, reference_id: int, seed: int) -> Any:
    import numpy as np

    from worldfm_ros.backends.base import FrameRequest

    # A new render every frame, one fixed keyframe as reference (so the cache can hit).
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    valid = rng.random((size, size)) > 0.2
    rgb[~valid] = 0
    K = np.array([[size, 0, (size - 1) / 2], [0, size, (size - 1) / 2], [0, 0, 1.0]])
    reference = np.random.default_rng(2**31).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return FrameRequest(render_rgb=rgb, render_depth=np.where(valid, 2.0, 0.0).astype(np.float32),
                        render_valid=valid, K=K, c2w=np.eye(4), reference_rgb=reference,
                        reference_K=K, reference_c2w=np.eye(4), reference_id=reference_id)


def _summarise(runs: list[dict[str, float]]) -> dict[str, tuple[float, float]]:
    keys = [k for k in runs[0] if k != "total"] + ["total"]
    return {k: (statistics.median(r[k] for r in runs), min(r[k] for r in runs)) for k in keys}


def run(args: argparse.Namespace) -> int:
    import torch

    from worldfm_ros.backends.frame_model import load_frame_model, parse_dtype
    from worldfm_ros.devices import parse_device
    from worldfm_ros.backends.registry import create_backend

    device = parse_device(args.device)
    parse_dtype(args.dtype)
    if args.batch < 1:
        raise ConfigError(f"--batch: expected a number of frames >= 1, got {args.batch}")
    if (args.compile or args.cuda_graphs) and args.backend != "torch":
        raise ConfigError("--compile / --cuda-graphs: only the torch backend has them")
    if args.providers and args.backend != "onnxruntime":
        raise ConfigError("--providers: only the onnxruntime backend takes execution providers")
    codec_kind = args.codec or ("vae" if args.vae else None)
    if args.model:
        model = load_frame_model(args.model, torch.device("cpu"), torch.float32)
        if codec_kind is None:
            channels = model.cfg.latent_channels
            pixel = channels % 3 == 0 and math.isqrt(channels // 3) ** 2 * 3 == channels
            codec_kind = "pixel" if pixel else "vae"
    else:
        codec_kind = codec_kind or ("vae" if args.config == "xl_2" else "pixel")
        model = _random_model(args, codec_kind, device)
    cfg = model.cfg
    codec = _codec(args, codec_kind, cfg.latent_channels)
    size = cfg.input_size * codec.downsample
    if args.resolution and args.resolution != size:
        raise ConfigError(f"--resolution {args.resolution}: the model works at {size} px "
                          "(a checkpoint's resolution is fixed)")
    options: dict[str, Any] = {"model": model, "codec": codec, "device": args.device, "steps": args.steps,
                               "seed": args.seed, "profile": args.profile, "reuse_noise": args.reuse_noise}
    if args.backend == "torch":
        options.update(dtype=args.dtype, compile=args.compile, cuda_graphs=args.cuda_graphs)
    elif args.backend == "onnxruntime":
        options.update(dtype=args.dtype, providers=args.providers)
    else:
        options.update(precision=args.dtype)
    backend = create_backend(args.backend, **options)

    results: dict[str, dict[str, tuple[float, float]]] = {}
    for mode, reference_id in (("cached", 0), ("uncached", -1)):
        def batch(i: int) -> list:
            return [_request(size, reference_id, args.seed + i * args.batch + j) for j in range(args.batch)]

        for i in range(args.warmup):
            backend.generate(batch(i))
        runs = [backend.generate(batch(i))[0].timings_ms for i in range(args.repeats)]
        results[mode] = _summarise(runs)
    import numpy as np

    still = _request(size, 0, args.seed)
    frames = [backend.generate_one(still).astype(np.int16) for _ in range(max(2, args.flicker_frames))]
    flicker = float(np.mean([np.abs(b - a).mean() for a, b in zip(frames, frames[1:])]))
    backend.close()

    n_params = sum(p.numel() for p in model.parameters())
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"frame model: {args.model or args.config} ({n_params / 1e6:.1f} M params), codec {codec_kind} "
          f"({type(codec).__name__}, /{codec.downsample}, {codec.latent_channels} ch), {size}x{size} px, "
          f"{cfg.input_size}x{3 * cfg.input_size} latent canvas")
    print(f"backend {args.backend}, device {args.device} ({gpu}), dtype {args.dtype}, steps {args.steps}, "
          f"compile {args.compile}, cuda_graphs {args.cuda_graphs}, profile {args.profile}, "
          f"reuse_noise {args.reuse_noise}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, batch {args.batch}, repeats {args.repeats}, warm-up {args.warmup}")
    print()
    print(f"| stage ({args.batch} frame{'s' * (args.batch > 1)} a call) | cached ref: median ms | min ms | "
          "uncached ref: median ms | min ms |")
    print("|---|---:|---:|---:|---:|")
    for key in results["uncached"]:
        c, u = results["cached"][key], results["uncached"][key]
        print(f"| {key} | {c[0]:.2f} | {c[1]:.2f} | {u[0]:.2f} | {u[1]:.2f} |")
    fps_c = args.batch * 1e3 / results["cached"]["total"][0]
    fps_u = args.batch * 1e3 / results["uncached"]["total"][0]
    print(f"| **FPS** (batch / median total) | {fps_c:.2f} | | {fps_u:.2f} | |")
    print()
    print(f"flicker: {flicker:.2f} levels mean |frame - previous frame| over {len(frames)} frames of one request")
    if args.json:
        from worldfm_ros.eval.bench_render import write_json

        write_json(args.json, {
            "model": args.model or args.config, "params_m": n_params / 1e6, "codec": codec_kind, "size": size,
            "backend": args.backend, "device": args.device, "where": gpu, "dtype": args.dtype, "steps": args.steps,
            "compile": args.compile, "cuda_graphs": args.cuda_graphs, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "batch": args.batch, "repeats": args.repeats,
            "stages_ms": {mode: {k: {"median": v[0], "min": v[1]} for k, v in r.items()} for mode, r in results.items()},
            "fps_cached": fps_c, "fps_uncached": fps_u})
    return 0
