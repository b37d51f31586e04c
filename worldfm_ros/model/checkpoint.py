"""Loading and saving frame-model weights, safely and strictly.

Two formats:

* **official** InSpatio-WorldFM checkpoints (``worldfm_1-step.pth``, ``worldfm_2-step.pth``):
  a torch pickle of a dict, weights under ``state_dict`` when present. Read with
  ``torch.load(weights_only=True)`` only, so a file can never run code. Keys the released
  network carries but never uses (the stale ``pos_embed``, the caption path ``y_embedder.*``,
  ``blocks.*.cross_attn.*``, micro-condition embedders, and ``plucker_proj.*`` unless our model
  uses Plücker rays) are dropped; every other key must match the model exactly, and all
  differences are reported at once (the release loads with strict=False and silently keeps
  random weights for anything missing).
* **ours**: safetensors with the ``DiTConfig`` embedded as JSON metadata, so a file rebuilds its
  own model (``save_model`` / ``load_model``), plus free-form JSON metadata (training steps...).
"""

from __future__ import annotations

import json
import math
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from worldfm_ros.errors import CheckpointError, ConfigError, library_reason
from worldfm_ros.model.config import DiTConfig
from worldfm_ros.model.dit import WorldFMDiT

CONFIG_KEY = "worldfm.dit_config"
METADATA_KEY = "worldfm.metadata"
FORMAT_KEY = "format"
FORMAT = "worldfm_ros.dit.v1"

# Released keys with no counterpart on our live path; ``plucker_proj`` is handled separately.
_IGNORED_OFFICIAL = re.compile(r"^(pos_embed|y_embedder\..*|blocks\.\d+\.cross_attn\..*|csize_embedder\..*"
                               r"|ar_embedder\..*)$")
_LISTED = 5  # keys named per category in an error message


def _read_official(source: str | Path | Mapping[str, Any]) -> tuple[Any, str]:
    """(unpickled object, name for messages) without ever executing code from the file."""
    if isinstance(source, Mapping):
        return source, "<state dict>"
    path = Path(source)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True), str(path)
    except pickle.UnpicklingError:
        # torch's own message advises weights_only=False; that advice is not passed on
        raise CheckpointError(f"{path}: refused to load: expected a pickle of tensors and plain containers only "
                              "(it is corrupt or holds other Python objects, which are never loaded)") from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({library_reason(exc)})") from None


def _unwrap(obj: Any, name: str, use_ema: bool) -> dict[str, Any]:
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{name}: expected a dict of tensors, got {type(obj).__name__}")
    key = "state_dict_ema" if use_ema else "state_dict"
    if use_ema and key not in obj:
        raise CheckpointError(f"{name}: no 'state_dict_ema' entry (top-level keys: {sorted(map(str, obj))[:10]})")
    state = obj.get(key, obj)
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{name}: '{key}' is a {type(state).__name__}, expected a dict of tensors")
    return {(str(k)[len("module."):] if str(k).startswith("module.") else str(k)): v for k, v in state.items()}


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_LISTED])
    return shown + (", ..." if len(keys) > _LISTED else "")


def check_state_dict(state: Mapping[str, Any], expected: Mapping[str, torch.Size | tuple[int, ...]],
                     name: str) -> None:
    """Raise one CheckpointError listing every missing key, unexpected key and shape mismatch.

    expected: key -> shape of the model's state dict; name: the file, for the message.
    """
    missing = sorted(k for k in expected if k not in state)
    unexpected = sorted(k for k in state if k not in expected)
    not_tensor = sorted(k for k in state if k in expected and not isinstance(state[k], torch.Tensor))
    mismatched = sorted(k for k in state if k in expected and isinstance(state[k], torch.Tensor)
                        and tuple(state[k].shape) != tuple(expected[k]))
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key{'s' * (len(missing) > 1)} ({_listing(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key{'s' * (len(unexpected) > 1)} ({_listing(unexpected)})")
    if not_tensor:
        problems.append(f"{len(not_tensor)} non-tensor value{'s' * (len(not_tensor) > 1)} ({_listing(not_tensor)})")
    if mismatched:
        details = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k])}" for k in mismatched]
        problems.append(f"{len(mismatched)} shape mismatch{'es' * (len(mismatched) > 1)} ({_listing(details)})")
    if problems:
        raise CheckpointError(f"{name}: " + ", ".join(problems))


def expected_shapes(cfg: DiTConfig) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the state dict of ``WorldFMDiT(cfg)``, computed without allocating weights."""
    with torch.device("meta"):
        model = WorldFMDiT(cfg)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def infer_config(state: Mapping[str, Any], num_heads: int | None = None) -> DiTConfig:
    """The DiTConfig of an official-layout state dict (already unwrapped, prefix stripped).

    depth: number of ``blocks.i``; hidden size and patch: ``x_embedder.proj.weight`` (D, C, p, p);
    out channels: ``final_layer.linear.weight`` rows / p^2; mlp_ratio: ``mlp.fc1`` rows / D;
    input_size: from a ``pos_embed`` of (1, base^2, D) when present, else 64.
    num_heads cannot be read from weights: default D / 72 (PixArt's head width; 16 for XL).
    """
    try:
        d, c_in, p, _ = state["x_embedder.proj.weight"].shape
        out_rows = state["final_layer.linear.weight"].shape[0]
        mlp_hidden = state["blocks.0.mlp.fc1.weight"].shape[0]
    except (KeyError, AttributeError, ValueError) as exc:
        raise CheckpointError(f"cannot infer the network shape: x_embedder.proj.weight, final_layer.linear.weight "
                              f"or blocks.0.mlp.fc1.weight missing or malformed ({exc})") from None
    depth = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k)))
    out_channels = out_rows // (p * p)
    if out_channels in (2 * c_in, c_in):
        latent, mask = c_in, False
    elif out_channels in (2 * (c_in - 1), c_in - 1):
        latent, mask = c_in - 1, True
    else:
        raise CheckpointError(f"cannot infer latent channels: {c_in} input and {out_channels} output channels")
    if num_heads is None:
        if d % 72:
            raise CheckpointError(f"cannot infer num_heads for hidden size {d}; pass it explicitly")
        num_heads = d // 72
    input_size = 64
    pos = state.get("pos_embed")
    if isinstance(pos, torch.Tensor) and pos.ndim == 3 and math.isqrt(pos.shape[1]) ** 2 == pos.shape[1]:
        input_size = math.isqrt(pos.shape[1]) * p
    try:
        return DiTConfig(hidden_size=d, depth=depth, num_heads=num_heads, latent_channels=latent, patch_size=p,
                         mlp_ratio=mlp_hidden / d, learn_sigma=out_channels == 2 * latent, input_size=input_size,
                         use_mask_channel=mask)
    except ConfigError as exc:
        raise CheckpointError(f"inferred network shape is invalid: {exc}") from None


def load_official_state_dict(source: str | Path | Mapping[str, Any], cfg: DiTConfig | None = None, *,
                             use_ema: bool = False) -> dict[str, torch.Tensor]:
    """A state dict from an official checkpoint, ready for ``WorldFMDiT(cfg).load_state_dict(strict=True)``.

    source: path to a ``.pth`` (read with weights_only=True) or an already loaded dict.
    cfg: the model it must fit; None infers it (``infer_config``). use_ema: take
    ``state_dict_ema`` instead of ``state_dict``. A leading ``module.`` is stripped; unused
    released keys are dropped; anything else that does not fit raises CheckpointError.
    """
    return _official_state(source, cfg, use_ema)[0]


def _official_state(source: str | Path | Mapping[str, Any], cfg: DiTConfig | None,
                    use_ema: bool) -> tuple[dict[str, torch.Tensor], DiTConfig]:
    obj, name = _read_official(source)
    state = _unwrap(obj, name, use_ema)
    if cfg is None:
        try:
            cfg = infer_config(state)
        except CheckpointError as exc:
            raise CheckpointError(f"{name}: {exc}") from None
    keep_plucker = cfg.camera_encoding == "plucker"
    state = {k: v for k, v in state.items()
             if not _IGNORED_OFFICIAL.match(k) and (keep_plucker or not k.startswith("plucker_proj."))}
    check_state_dict(state, expected_shapes(cfg), name)
    return state, cfg


def load_official_checkpoint(model: WorldFMDiT, path: str | Path, *, use_ema: bool = False) -> WorldFMDiT:
    """Load an official checkpoint into ``model`` in place (strict over the live keys); returns it.

    Weights are cast to the model's dtype and device.
    """
    state = load_official_state_dict(path, model.cfg, use_ema=use_ema)
    model.load_state_dict(state, strict=True)
    return model


def load_official_model(path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                        cfg: DiTConfig | None = None, *, use_ema: bool = False) -> WorldFMDiT:
    """A WorldFMDiT built straight from an official checkpoint, in eval mode.

    cfg: the network to build (e.g. ``DiTConfig.xl_2(camera_encoding="prope")``); None infers it
    from the weights. Skips the random initialisation a ``WorldFMDiT(cfg)`` would spend
    seconds on at XL size.
    """
    state, cfg = _official_state(path, cfg, use_ema)
    model = _empty_model(cfg, device, dtype)
    model.load_state_dict(state, strict=True)
    return model.eval()


def _empty_model(cfg: DiTConfig, device: str | torch.device, dtype: torch.dtype) -> WorldFMDiT:
    """A WorldFMDiT with uninitialised weights (to be loaded) and computed buffers."""
    with torch.device("meta"):
        model = WorldFMDiT(cfg).to(dtype=dtype)
    # Fresh allocations rather than load_state_dict(assign=True): tensors mapped from a file can
    # be misaligned, which sends CPU GEMMs down other kernels and changes results in the last bits.
    model.to_empty(device=device)
    model.reset_buffers()
    return model


def save_model(model: WorldFMDiT, path: str | Path, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` as safetensors with its DiTConfig embedded; returns the path.

    metadata: free-form JSON-serialisable values (e.g. {"steps": 12000}), read back by
    ``read_model_metadata``. Tensors are stored in the model's dtype.
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        extra = json.dumps(dict(metadata or {}))
    except TypeError as exc:
        raise ConfigError(f"metadata: values must be JSON-serialisable ({exc})") from None
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    header = {FORMAT_KEY: FORMAT, CONFIG_KEY: json.dumps(model.cfg.to_dict()), METADATA_KEY: extra}
    save_file(tensors, str(path), metadata=header)
    return path


def _header(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    if not path.is_file():
        raise CheckpointError(f"{path}: model file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own SafetensorError for corrupt headers
        raise CheckpointError(f"{path}: not a readable safetensors file ({str(exc).splitlines()[0]})") from None
    if header.get(FORMAT_KEY) != FORMAT or CONFIG_KEY not in header:
        raise CheckpointError(f"{path}: not a worldfm_ros model file (metadata '{FORMAT_KEY}' is "
                              f"{header.get(FORMAT_KEY)!r}, expected {FORMAT!r} with a '{CONFIG_KEY}' entry)")
    return header


def read_model_config(path: str | Path) -> DiTConfig:
    """The DiTConfig stored in one of our safetensors model files."""
    path = Path(path)
    try:
        return DiTConfig.from_dict(json.loads(_header(path)[CONFIG_KEY]))
    except (json.JSONDecodeError, ConfigError) as exc:
        raise CheckpointError(f"{path}: invalid embedded '{CONFIG_KEY}' ({exc})") from None


def read_model_metadata(path: str | Path) -> dict[str, Any]:
    """The free-form metadata given to ``save_model``."""
    path = Path(path)
    try:
        return json.loads(_header(path).get(METADATA_KEY, "{}"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: invalid embedded '{METADATA_KEY}' ({exc})") from None


def load_model(path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> WorldFMDiT:
    """Rebuild a WorldFMDiT from one of our safetensors files (config from the metadata, strict).

    dtype: cast the weights to this dtype; None keeps the stored one. The model is returned in
    eval mode.
    """
    from safetensors.torch import load_file

    path = Path(path)
    cfg = read_model_config(path)
    state = load_file(str(path), device="cpu")
    check_state_dict(state, expected_shapes(cfg), str(path))
    model = _empty_model(cfg, device, dtype or next(iter(state.values())).dtype)
    model.load_state_dict(state, strict=True)
    return model.eval()
