"""The simulator configuration of a command: ``--config FILE``, the command's own flags, ``--set``.

Every command that runs the simulator (``demo``, ``render-trajectory``, ``bench-node``,
``bench-env``) builds its :class:`~worldfm_ros.sim.config.SimConfig` here, in this order:

1. the dataclass defaults (the one source of defaults: ``backend.name`` is ``torch``, the
   bundled model, for every command);
2. ``--config FILE``: a YAML file of fields, plain or as a ROS parameter file
   (``<node or /**>: ros__parameters: ...``, e.g. ``config/sim.yaml`` or a camera preset);
3. the command's own flags (``--backend``, ``--size``, ...), only those given;
4. ``--set key=value`` (dotted keys, YAML values: ``--set camera.width=320 --set rate_hz=15``).

Errors name the flag or the file and the field, through :func:`worldfm_ros.config.load_config`.
"""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from worldfm_ros.config import flatten, flatten_mapping, load_config, read_yaml, unflatten
from worldfm_ros.errors import ConfigError
from worldfm_ros.sim.config import SimConfig

#: a command's flag (argparse dest) -> the dotted SimConfig field(s) it sets; a flag with
#: nargs sets one field per value (``size`` -> camera.width, camera.height)
Flags = dict[str, "str | tuple[str, ...]"]

#: flags every simulator command shares, with their fields
COMMON_FLAGS: Flags = {"scene": "scene", "backend": "backend.name", "model": "backend.model",
                       "size": ("camera.width", "camera.height"), "threads": "torch_threads"}


def add_config_arguments(parser: argparse.ArgumentParser, size: bool = True) -> None:
    """``--config``, ``--set`` and the common flags (``--scene``, ``--backend``, ``--model`` and,
    unless ``size`` is False, ``--size``), each defaulting to the configuration's value."""
    defaults = SimConfig()
    parser.add_argument("--config", default="", metavar="FILE",
                        help="YAML of simulator fields, plain or a ROS parameter file (e.g. config/sim.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="set_fields",
                        help="set one field, dotted key and YAML value (camera.width=320); repeatable, applied last")
    parser.add_argument("--scene", default=None, help="scene anchor folder (default: the bundled default room)")
    parser.add_argument("--backend", default=None,
                        help=f"frame backend: torch | onnx | tensorrt | anchor (default {defaults.backend.name})")
    parser.add_argument("--model", default=None, help="frame-model checkpoint (default: the bundled model)")
    if size:
        parser.add_argument("--size", type=int, nargs=2, default=None, metavar=("W", "H"),
                            help=f"camera size, px (default {defaults.camera.width} {defaults.camera.height})")


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> ``{"a.b": 1, "c": "x"}`` (values parsed as YAML); ConfigError naming a bad item."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set: expected KEY=VALUE (e.g. camera.width=320), got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            raise ConfigError(f"--set {key.strip()}: value {text!r} is not YAML") from None
    return out


def config_file_fields(path: str) -> dict:
    """The fields of a config file: plain, or the one ``ros__parameters`` mapping of a ROS parameter file."""
    data = read_yaml(path)
    nested = [v["ros__parameters"] for v in data.values() if isinstance(v, dict) and "ros__parameters" in v]
    if len(nested) > 1:
        raise ConfigError(f"{path}: expected one node's ros__parameters, found {len(nested)}")
    return nested[0] if nested else data


def sim_config_from_args(args: argparse.Namespace, flags: Flags | None = None) -> SimConfig:
    """The SimConfig of a command line (see the module docstring for the order)."""
    fields = flatten_mapping(config_file_fields(args.config)) if args.config else {}
    for dest, target in {**COMMON_FLAGS, **(flags or {})}.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        if isinstance(target, tuple):
            fields.update({name: v for name, v in zip(target, value)})
        else:
            fields[target] = list(value) if isinstance(value, tuple) else value
    fields.update(parse_set(args.set_fields))
    base = flatten(SimConfig())
    where = "--config/--set" if (args.config or args.set_fields) else "command line"
    unknown = sorted(set(fields) - set(base))
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; fields are the node's parameters, "
                          "e.g. camera.width, backend.name, rate_hz")
    return load_config(SimConfig, unflatten({**base, **fields}), prefix=args.config or "config")


def changed_fields(config: SimConfig) -> dict[str, Any]:
    """Dotted fields of ``config`` that differ from the defaults (what a node needs as overrides)."""
    defaults = flatten(SimConfig())
    return {k: v for k, v in flatten(config).items() if v != defaults[k]}
