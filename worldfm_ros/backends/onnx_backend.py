"""ONNX export of the DiT and the ONNX Runtime frame backend.

The DiT is exported with fixed shapes (batch 1 by default) by the dynamo exporter
(``torch.onnx.export(dynamo=True)``; SDPA becomes plain ONNX ops). The graph takes and returns
float32 whatever its internal precision, and carries its ``DiTConfig`` as metadata so a
session can be run without the PyTorch model code. The codec (VAE or pixel) stays in PyTorch.
Camera-encoded models (PRoPE / Plücker) are not exported; they run on the torch backend.

Graph inputs: x_t, render, reference (B, C, h, w) float32; t (B,) float32 timestep;
mask (B, 1, h, w) float32 for models with a mask channel. Output: out (B, out_ch, h, w).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldfm_ros.backends.config import check_correction, model_profile
from worldfm_ros.backends.config import BackendConfig
from worldfm_ros.backends.frame_model import (
    FixedBatchDenoiser,
    PipelineBackend,
    backend_codec,
    build_sampler_and_noise,
    load_frame_model,
    model_pipeline,
    parse_dtype,
)
from worldfm_ros.devices import parse_device
from worldfm_ros.errors import BackendUnavailable, CheckpointError, ConfigError
from worldfm_ros.model.codec import Codec

CONFIG_KEY = "worldfm.dit_config"  # ONNX metadata entry holding the DiTConfig as JSON
INPUTS_KEY = "worldfm.inputs"
# Above this many parameter bytes the weights go to an external data file (protobuf limit 2 GB).
EXTERNAL_DATA_BYTES = 1 << 30


def default_cache_dir() -> Path:
    """$WORLDFM_CACHE or ~/.cache/worldfm_ros: exported ONNX files and TensorRT engines."""
    return Path(os.environ.get("WORLDFM_CACHE", Path.home() / ".cache" / "worldfm_ros"))


class _ExportWrapper(torch.nn.Module):
    """Positional float32 interface around the DiT, casting to and from the model's dtype."""

    def __init__(self, model: torch.nn.Module, dtype: torch.dtype, use_mask: bool) -> None:
        super().__init__()
        self.model, self.dtype, self.use_mask = model, dtype, use_mask

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, render: torch.Tensor, reference: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        cast = self.dtype
        out = self.model(x_t.to(cast), t, render.to(cast), reference.to(cast),
                         mask=mask.to(cast) if self.use_mask else None)
        return out.float()


def input_names(cfg: Any) -> list[str]:
    """Graph input names for a DiTConfig: mask only for models with a mask channel."""
    return ["x_t", "t", "render", "reference"] + (["mask"] if cfg.use_mask_channel else [])


def model_fingerprint(model: torch.nn.Module) -> str:
    """Hex digest of a model's config and weights (names, dtypes, shapes and bytes)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps(model.cfg.to_dict(), sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        h.update(tensor.detach().contiguous().cpu().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def export_onnx(model: torch.nn.Module, path: str | Path, dtype: torch.dtype = torch.float32,
                batch: int = 1, opset: int | None = None) -> Path:
    """Export ``model`` (a WorldFMDiT) to ``path`` with fixed shapes; returns the path.

    dtype: precision of the exported weights and computation (I/O stays float32).
    Models above 1 GiB of weights get an external data file next to ``path``.
    """
    path = Path(path)
    cfg = model.cfg
    if cfg.camera_encoding != "none":
        # Camera inputs are not wired into the graph (and Plücker's torch.linalg.inv has no ONNX op).
        raise ConfigError(f"ONNX export: camera_encoding {cfg.camera_encoding!r} models run on the torch "
                          "backend only; export supports camera_encoding 'none' (the released model)")
    path.parent.mkdir(parents=True, exist_ok=True)
    if next(model.parameters()).dtype != dtype:
        model = copy.deepcopy(model).to(dtype=dtype)
    model = model.eval()
    h = w = cfg.input_size
    c = cfg.latent_channels
    args: list[torch.Tensor] = [torch.zeros(batch, c, h, w), torch.full((batch,), 999.0),
                                torch.zeros(batch, c, h, w), torch.zeros(batch, c, h, w)]
    if cfg.use_mask_channel:
        args.append(torch.ones(batch, 1, h, w))
    args = [a.to(next(model.parameters()).device) for a in args]
    names = input_names(cfg)
    wrapper = _ExportWrapper(model, dtype, cfg.use_mask_channel).eval()
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    with torch.inference_mode(False), torch.no_grad():
        program = torch.onnx.export(wrapper, tuple(args), dynamo=True, input_names=names,
                                    output_names=["out"], opset_version=opset, verbose=False)
    program.model.metadata_props[CONFIG_KEY] = json.dumps(cfg.to_dict())
    program.model.metadata_props[INPUTS_KEY] = json.dumps(names)
    program.save(str(path), external_data=weight_bytes > EXTERNAL_DATA_BYTES)
    return path


def _element_type(ort_type: str) -> tuple[np.dtype, torch.dtype]:
    table = {"tensor(float)": (np.float32, torch.float32), "tensor(float16)": (np.float16, torch.float16)}
    if ort_type not in table:
        raise CheckpointError(f"ONNX graph: unsupported I/O type {ort_type}; expected float or float16")
    return table[ort_type]


class OnnxDenoiser(FixedBatchDenoiser):
    """One ONNX Runtime session with fixed shapes, fed and read through I/O binding.

    providers: ONNX Runtime execution providers in priority order, each a name or a
    (name, options) pair, e.g. ["CUDAExecutionProvider", "CPUExecutionProvider"].
    device: where the pipeline's tensors live; 'cuda' binds device memory directly (needs the
    CUDA or TensorRT execution provider).
    """

    def __init__(self, onnx_path: str | Path, providers: list[Any], device: torch.device) -> None:
        import onnxruntime as ort

        names = [p if isinstance(p, str) else p[0] for p in providers]
        missing = [n for n in names if n not in ort.get_available_providers()]
        if missing:
            raise BackendUnavailable(f"onnxruntime: execution provider(s) {missing} not available in this "
                                     f"onnxruntime build (available: {ort.get_available_providers()})")
        if device.type == "cuda" and not {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(names):
            raise ConfigError("onnxruntime: device 'cuda' needs the CUDA or TensorRT execution provider")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning worker threads would keep the CPU busy through the torch stages between calls.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.intra_op_num_threads = torch.get_num_threads()  # the process's torch_threads / --threads
        try:
            self.session = ort.InferenceSession(str(onnx_path), options,
                                                providers=[p if isinstance(p, str) else tuple(p) for p in providers])
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable graphs
            raise CheckpointError(f"{onnx_path}: onnxruntime cannot load it ({type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if CONFIG_KEY not in meta:
            raise CheckpointError(f"{onnx_path}: no '{CONFIG_KEY}' metadata; export it with export_onnx")
        self.config: dict[str, Any] = json.loads(meta[CONFIG_KEY])
        self.device = device
        self._inputs = {i.name: (tuple(i.shape), *_element_type(i.type)) for i in self.session.get_inputs()}
        (out,) = self.session.get_outputs()
        self._out_name = out.name
        self._out_shape = tuple(out.shape)
        self._out_np, self._out_torch = _element_type(out.type)

    def _bind(self, binding: Any, name: str, tensor: torch.Tensor, output: bool = False) -> None:
        kind = "cuda" if tensor.device.type == "cuda" else "cpu"
        index = tensor.device.index or 0
        np_type = self._out_np if output else self._inputs[name][1]
        bind = binding.bind_output if output else binding.bind_input
        bind(name, kind, index, np_type, list(tensor.shape), tensor.data_ptr())

    @torch.inference_mode()
    def __call__(self, x_t: torch.Tensor, t: int, render: torch.Tensor, reference: torch.Tensor,
                 mask: torch.Tensor | None, cameras: Any = None) -> torch.Tensor:
        given = {"x_t": x_t, "t": torch.full((x_t.shape[0],), float(t), device=x_t.device),
                 "render": render, "reference": reference, "mask": mask}
        binding = self.session.io_binding()
        keep = []  # bound buffers must outlive the run
        for name, (shape, _, torch_type) in self._inputs.items():
            tensor = given.get(name)
            if tensor is None:
                raise ConfigError(f"onnxruntime: the graph needs input '{name}', which was not given")
            tensor = tensor.to(self.device, torch_type).contiguous()
            if tuple(tensor.shape) != shape:
                raise ConfigError(f"onnxruntime: input '{name}' has shape {tuple(tensor.shape)}, "
                                  f"the graph was exported for {shape}")
            keep.append(tensor)
            self._bind(binding, name, tensor)
        out = torch.empty(self._out_shape, device=self.device, dtype=self._out_torch)
        self._bind(binding, self._out_name, out, output=True)
        self.session.run_with_iobinding(binding)
        return out.float()


def onnx_or_checkpoint(config: BackendConfig) -> dict[str, str]:
    """``onnx_path`` for a model file ending in .onnx, else ``model_path`` (a checkpoint to export)."""
    model = config.model_file()
    return {"onnx_path": model} if model.endswith(".onnx") else {"model_path": model}


class OnnxBackend(PipelineBackend):
    """The frame model run by ONNX Runtime; the codec runs in PyTorch on ``device``.

    onnx_path: an exported graph (``export_onnx``). If it does not exist, or is not given,
    the model (``model_path`` / ``model``, as for the torch backend) is exported first: to
    ``onnx_path``, or to ``cache_dir``/onnx/<fingerprint>-<dtype>.onnx, reused on later starts.
    dtype: precision of the exported graph and of the VAE ('fp32' | 'fp16'; the VAE stays
    fp32 on CPU).
    providers: execution providers (default CPU only). Other options as TorchBackend.
    """

    name = "onnxruntime"

    @classmethod
    def weights_options(cls, config: BackendConfig, device: str) -> dict[str, Any]:
        providers = (["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda")
                     else ["CPUExecutionProvider"])
        return {**onnx_or_checkpoint(config), "dtype": config.torch_dtype(device), "providers": providers}

    def __init__(self, onnx_path: str | Path | None = None, model_path: str | Path | None = None,
                 vae_path: str | Path | None = None, *, model: torch.nn.Module | None = None,
                 codec: Codec | None = None, providers: list[Any] | None = None, device: str = "cpu",
                 dtype: str = "fp32", sampler: str = "distilled", steps: int = 2,
                 timesteps: list[int] | None = None, seed: int = 0, reuse_noise: bool = False,
                 sample_posterior: bool = False, profile: str = "default",
                 cache_dir: str | Path | None = None,
                 correction: str = "holes") -> None:
        self.correction = check_correction(correction)
        resolved = model_profile(profile)  # the one resolution of the name
        torch_device, torch_dtype = parse_device(device), parse_dtype(dtype)
        if dtype == "bf16":
            raise ConfigError("onnxruntime dtype: 'bf16' graphs do not load in onnxruntime; use 'fp32' or 'fp16'")
        self.onnx_path = resolve_onnx(onnx_path, model_path, model, torch_dtype, cache_dir)
        denoiser = OnnxDenoiser(self.onnx_path, list(providers or ["CPUExecutionProvider"]), torch_device)
        cfg = denoiser.config
        if codec is None:
            codec_dtype = torch_dtype if torch_device.type == "cuda" else torch.float32
            codec = backend_codec(cfg["latent_channels"], vae_path, torch_device, codec_dtype, sample_posterior, resolved)
        sampler_obj, noise = build_sampler_and_noise(sampler, steps, timesteps, seed, reuse_noise, resolved)
        self.pipeline = model_pipeline(denoiser, codec, sampler_obj, noise, torch_device, cfg, False, resolved)


def resolve_onnx(onnx_path: str | Path | None, model_path: str | Path | None, model: torch.nn.Module | None,
                 dtype: torch.dtype, cache_dir: str | Path | None = None) -> Path:
    """An ONNX file for the backend: ``onnx_path`` if it exists, else a fresh or cached export."""
    if onnx_path is not None and Path(onnx_path).is_file():
        return Path(onnx_path)
    if (model is None) == (model_path is None):
        where = f"{onnx_path} does not exist; " if onnx_path is not None else ""
        raise ConfigError(f"onnx backend: {where}give exactly one of model_path or model to export")
    if model is None:
        model = load_frame_model(model_path, torch.device("cpu"), torch.float32)
    if onnx_path is None:
        name = f"{model_fingerprint(model)}-{str(dtype).removeprefix('torch.')}.onnx"
        onnx_path = Path(cache_dir or default_cache_dir()) / "onnx" / name
        if onnx_path.is_file():
            return onnx_path
    return export_onnx(model, onnx_path, dtype)
