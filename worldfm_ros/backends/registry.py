"""Frame backends by name. Adding one = a new module + one line in ``BACKENDS``.

``create_backend(name, **options)`` imports the backend's module only when asked for, so a
missing optional library (onnxruntime, tensorrt) only matters to the backend that needs it.
Any failure to start is re-raised as ``BackendUnavailable`` naming the backend and the reason,
so that a caller (the ROS node) can log it and fall back to the 'anchor' backend.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from worldfm_ros.backends.base import FrameBackend
from worldfm_ros.backends.config import BackendConfig
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


def create_backend(name: str, config: BackendConfig | None = None, **options: Any) -> FrameBackend:
    """Build backend ``name`` with keyword ``options`` (the class's constructor arguments).

    config: optional node-style backend config, mapped by the class's ``config_options`` ('' model
    = the bundled one, 'auto' device and dtype, seed < 0 = random; see BackendConfig); explicit
    ``options`` override it. Raises BackendUnavailable for an unknown name, an unknown option, or
    any error while starting (missing library, device, model file, bad value); the original
    exception is chained.
    """
    cls = backend_class(name)
    params = inspect.signature(cls.__init__).parameters
    unknown = sorted(set(options) - set(params) - {"self"})
    if unknown:
        known = sorted(set(params) - {"self"})
        raise BackendUnavailable(f"backend {name!r}: unknown option(s) {unknown}; known: {known}")
    try:
        if config is not None:
            options = {**cls.config_options(config), **options}
        return cls(**options)
    except BackendUnavailable:
        raise
    except Exception as exc:  # whatever stops a backend from starting makes it unavailable
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BackendUnavailable(f"backend {name!r} cannot start: {reason}") from exc
