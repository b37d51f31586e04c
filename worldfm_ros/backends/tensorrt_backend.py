"""TensorRT frame backend: an engine built from the exported ONNX graph, run on torch CUDA buffers.

The engine is built once with the TensorRT Python API (OnnxParser -> builder config with the
precision flag -> serialized engine) and cached on disk under a key made of the ONNX file's
digest, the input shapes, the precision, the GPU name and the TensorRT version, since an
engine is only valid for that exact combination. The codec stays in PyTorch.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from worldfm_ros.backends.config import BackendConfig
from worldfm_ros.backends.onnx_backend import CONFIG_KEY, default_cache_dir, onnx_or_checkpoint, resolve_onnx
from worldfm_ros.backends.config import check_correction, model_profile
from worldfm_ros.backends.frame_model import (
    FixedBatchDenoiser,
    PipelineBackend,
    backend_codec,
    build_sampler_and_noise,
    model_pipeline,
    parse_dtype,
)
from worldfm_ros.errors import BackendUnavailable, CheckpointError, ConfigError
from worldfm_ros.model.codec import Codec

PRECISIONS = ("fp32", "fp16", "bf16")


def import_tensorrt() -> Any:
    """The ``tensorrt`` module, or BackendUnavailable saying why it cannot be imported."""
    try:
        import tensorrt
    except Exception as exc:  # a broken install raises more than ImportError (missing libnvinfer, ...)
        raise BackendUnavailable(f"tensorrt: the 'tensorrt' Python package cannot be imported "
                                 f"({type(exc).__name__}: {exc}); install TensorRT for your CUDA version "
                                 "or use the 'torch' or 'onnxruntime' backend") from exc
    return tensorrt


def onnx_digest(onnx_path: str | Path) -> str:
    """SHA-256 of an ONNX file together with the external data files it references."""
    import onnx

    path = Path(onnx_path)
    digest = hashlib.sha256(path.read_bytes())
    model = onnx.load(str(path), load_external_data=False)
    locations = sorted({entry.value for tensor in model.graph.initializer
                        if tensor.data_location == onnx.TensorProto.EXTERNAL
                        for entry in tensor.external_data if entry.key == "location"})
    for location in locations:
        with open(path.parent / location, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 24), b""):
                digest.update(chunk)
    return digest.hexdigest()


def engine_cache_key(onnx_sha256: str, input_shapes: dict[str, tuple[int, ...]], precision: str,
                     gpu_name: str, trt_version: str) -> str:
    """File-name-safe key (32 hex digits) identifying one engine build.

    input_shapes: graph input name -> fixed shape. Every argument changes the key; the
    order of ``input_shapes`` does not.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"tensorrt precision: expected one of {PRECISIONS}, got {precision!r}")
    payload = json.dumps({"onnx": onnx_sha256, "shapes": {k: list(v) for k, v in input_shapes.items()},
                          "precision": precision, "gpu": gpu_name, "tensorrt": trt_version}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def onnx_input_shapes(onnx_path: str | Path) -> tuple[dict[str, tuple[int, ...]], dict[str, Any]]:
    """(input name -> fixed shape, DiTConfig dict from the metadata) of an exported graph."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    if CONFIG_KEY not in meta:
        raise CheckpointError(f"{onnx_path}: no '{CONFIG_KEY}' metadata; export it with export_onnx")
    shapes = {i.name: tuple(d.dim_value for d in i.type.tensor_type.shape.dim) for i in model.graph.input}
    return shapes, json.loads(meta[CONFIG_KEY])


def build_engine(onnx_path: str | Path, engine_path: str | Path, precision: str = "fp16",
                 workspace_gib: float = 4.0) -> Path:
    """Parse ``onnx_path``, build a serialized engine with the precision flag, write ``engine_path``."""
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # TensorRT 10 networks are always explicit-batch; older versions need the flag.
    major = int(trt.__version__.split(".")[0])
    flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise CheckpointError(f"{onnx_path}: TensorRT cannot parse the ONNX graph ({errors})")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "bf16":
        config.set_flag(trt.BuilderFlag.BF16)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendUnavailable(f"tensorrt: building the engine from {onnx_path} failed (see the TensorRT log)")
    engine_path = Path(engine_path)
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = engine_path.with_suffix(".partial")
    tmp.write_bytes(memoryview(serialized))
    tmp.replace(engine_path)  # never leave a truncated engine under the final name
    return engine_path


class TensorRTDenoiser(FixedBatchDenoiser):
    """Runs a deserialized engine with torch CUDA tensors as I/O buffers on the current stream."""

    def __init__(self, engine_path: str | Path, device: torch.device) -> None:
        trt = import_tensorrt()
        self._trt = trt
        self.device = device
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self.engine is None:
            raise CheckpointError(f"{engine_path}: TensorRT cannot deserialize this engine")
        self.context = self.engine.create_execution_context()
        types = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16}
        if hasattr(trt.DataType, "BF16"):  # TensorRT >= 9
            types[trt.DataType.BF16] = torch.bfloat16
        self._inputs: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}
        self._outputs: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            entry = (tuple(self.engine.get_tensor_shape(name)), types[self.engine.get_tensor_dtype(name)])
            is_input = self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (self._inputs if is_input else self._outputs)[name] = entry
        (self._out_name,) = self._outputs

    @torch.inference_mode()
    def __call__(self, x_t: torch.Tensor, t: int, render: torch.Tensor, reference: torch.Tensor,
                 mask: torch.Tensor | None, cameras: Any = None) -> torch.Tensor:
        given = {"x_t": x_t, "t": torch.full((x_t.shape[0],), float(t)), "render": render,
                 "reference": reference, "mask": mask}
        keep = []
        for name, (shape, dtype) in self._inputs.items():
            if given.get(name) is None:
                raise ConfigError(f"tensorrt: the engine needs input '{name}', which was not given")
            tensor = given[name].to(self.device, dtype).contiguous()
            if tuple(tensor.shape) != shape:
                raise ConfigError(f"tensorrt: input '{name}' has shape {tuple(tensor.shape)}, "
                                  f"the engine was built for {shape}")
            keep.append(tensor)
            self.context.set_tensor_address(name, tensor.data_ptr())
        shape, dtype = self._outputs[self._out_name]
        out = torch.empty(shape, device=self.device, dtype=dtype)
        self.context.set_tensor_address(self._out_name, out.data_ptr())
        if not self.context.execute_async_v3(torch.cuda.current_stream(self.device).cuda_stream):
            raise RuntimeError("tensorrt: execute_async_v3 reported failure")
        return out.float()


class TensorRTBackend(PipelineBackend):
    """The frame model run by a TensorRT engine on CUDA (engine building is untested in CI).

    onnx_path / model_path / model: as for OnnxBackend (the graph is exported in fp32).
    precision: 'fp16' (default) | 'bf16' | 'fp32', a builder flag; the VAE runs in that
    dtype too. cache_dir: engines go to cache_dir/tensorrt/<engine_cache_key>.engine.
    workspace_gib: builder workspace limit. Other options as TorchBackend.
    """

    name = "tensorrt"

    @classmethod
    def weights_options(cls, config: BackendConfig, device: str) -> dict[str, Any]:
        return {**onnx_or_checkpoint(config), "precision": config.torch_dtype(device)}

    def __init__(self, onnx_path: str | Path | None = None, model_path: str | Path | None = None,
                 vae_path: str | Path | None = None, *, model: torch.nn.Module | None = None,
                 codec: Codec | None = None, device: str = "cuda", precision: str = "fp16",
                 sampler: str = "distilled", steps: int = 2, timesteps: list[int] | None = None,
                 seed: int = 0, reuse_noise: bool = False, sample_posterior: bool = False,
                 profile: str = "default", cache_dir: str | Path | None = None,
                 workspace_gib: float = 4.0,
                 correction: str = "holes") -> None:
        self.correction = check_correction(correction)
        resolved = model_profile(profile)  # the one resolution of the name
        trt = import_tensorrt()
        if not torch.cuda.is_available():
            raise BackendUnavailable("tensorrt: torch sees no CUDA device")
        torch_device = torch.device(device)
        if torch_device.type != "cuda":
            raise ConfigError(f"tensorrt device: expected 'cuda' or 'cuda:N', got {device!r}")
        torch_dtype = parse_dtype(precision)
        onnx_file = resolve_onnx(onnx_path, model_path, model, torch.float32, cache_dir)
        shapes, cfg = onnx_input_shapes(onnx_file)
        key = engine_cache_key(onnx_digest(onnx_file), shapes, precision,
                               torch.cuda.get_device_name(torch_device), trt.__version__)
        self.engine_path = Path(cache_dir or default_cache_dir()) / "tensorrt" / f"{key}.engine"
        if not self.engine_path.is_file():
            build_engine(onnx_file, self.engine_path, precision, workspace_gib)
        denoiser = TensorRTDenoiser(self.engine_path, torch_device)
        if codec is None:
            codec = backend_codec(cfg["latent_channels"], vae_path, torch_device, torch_dtype, sample_posterior, resolved)
        sampler_obj, noise = build_sampler_and_noise(sampler, steps, timesteps, seed, reuse_noise, resolved)
        self.pipeline = model_pipeline(denoiser, codec, sampler_obj, noise, torch_device, cfg, False, resolved)
