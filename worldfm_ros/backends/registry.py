"""Frame backends by name. Adding one = a new module + one line in ``BACKENDS``.

``create_backend(name, **options)`` imports the backend's module only when asked for, so a
missing optional library (onnxruntime, tensorrt) only matters to the backend that needs it.
Any failure to start is re-raised as ``BackendUnavailable`` naming the backend and the reason,
so that a caller (the ROS node) can log it and fall back to the 'anchor' backend.
"""

from __future__ import annotations

import importlib
import inspect
import os
from typing import Any

from worldfm_ros.backends.base import FrameBackend
from worldfm_ros.errors import BackendUnavailable

# name -> "module:Class"
BACKENDS: dict[str, str] = {
    "anchor": "worldfm_ros.backends.fill_backend:FillBackend",
    "torch": "worldfm_ros.backends.torch_backend:TorchBackend",
    "onnxruntime": "worldfm_ros.backends.onnx_backend:OnnxBackend",
    "tensorrt": "worldfm_ros.backends.tensorrt_backend:TensorRTBackend",
}


def available_backends() -> list[str]:
    """Names ``create_backend`` accepts (whether each can start here is only known by trying)."""
    return sorted(BACKENDS)


def backend_class(name: str) -> type[FrameBackend]:
    """The class registered under ``name``; BackendUnavailable if unknown or its module fails to import."""
    if name not in BACKENDS:
        raise BackendUnavailable(f"backend: unknown name {name!r}; expected one of {available_backends()}")
    module_name, class_name = BACKENDS[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendUnavailable(f"backend {name!r}: cannot import {module_name} ({exc})") from exc
    return getattr(module, class_name)


def options_from_config(cls: type[FrameBackend], config: Any) -> dict[str, Any]:
    """Constructor options for ``cls`` from a node-style backend config.

    config: an object with the fields of ``worldfm_ros.sim.config.BackendConfig`` (model, vae,
    steps, device, dtype, fill, seed, reuse_noise, profile). '' means unset; device 'auto' = CUDA when
    torch sees one, else CPU; dtype 'auto' = fp16 on CUDA, fp32 on CPU; seed < 0 = a random
    base seed; model '' = the bundled default model (``resources.default_model_path``). A model
    path ending in .onnx is passed as ``onnx_path``. Only the options the class accepts are
    returned.
    """
    from worldfm_ros.devices import resolve_device

    device = resolve_device(getattr(config, "device", "auto"))
    dtype = getattr(config, "dtype", "auto")
    if dtype == "auto":
        dtype = "fp16" if device.startswith("cuda") else "fp32"
    seed = int(getattr(config, "seed", 0))
    model = getattr(config, "model", "") or None
    if model is None and hasattr(config, "model"):
        from worldfm_ros.resources import default_model_path

        model = str(default_model_path())
    candidates: dict[str, Any] = {
        "fill": getattr(config, "fill", None),
        "model_path": None if model is None or model.endswith(".onnx") else model,
        "onnx_path": model if model is not None and model.endswith(".onnx") else None,
        "vae_path": getattr(config, "vae", "") or None,
        "steps": getattr(config, "steps", None),
        "device": device,
        "dtype": dtype,
        "precision": dtype,
        "seed": seed if seed >= 0 else int.from_bytes(os.urandom(4), "little"),
        "reuse_noise": getattr(config, "reuse_noise", None),
        "profile": getattr(config, "profile", None),
        "providers": (["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda")
                      else ["CPUExecutionProvider"]),
    }
    params = inspect.signature(cls.__init__).parameters
    return {k: v for k, v in candidates.items() if k in params and v is not None}


def create_backend(name: str, config: Any = None, **options: Any) -> FrameBackend:
    """Build backend ``name`` with keyword ``options`` (the class's constructor arguments).

    config: optional node-style backend config mapped by ``options_from_config``; explicit
    ``options`` override it. Raises BackendUnavailable for an unknown name, an unknown
    option, or any error while starting (missing library, device, model file, bad value);
    the original exception is chained.
    """
    cls = backend_class(name)
    if config is not None:
        options = {**options_from_config(cls, config), **options}
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(options) - set(params) - {"self"})
        if unknown:
            known = sorted(set(params) - {"self"})
            raise BackendUnavailable(f"backend {name!r}: unknown option(s) {unknown}; known: {known}")
    try:
        return cls(**options)
    except BackendUnavailable:
        raise
    except Exception as exc:  # whatever stops a backend from starting makes it unavailable
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BackendUnavailable(f"backend {name!r} cannot start: {reason}") from exc
