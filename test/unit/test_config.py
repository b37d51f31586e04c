"""Dataclass configs load from YAML with one-line errors naming the field."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from worldfm_ros.config import flatten, load_config, unflatten
from worldfm_ros.errors import ConfigError


@dataclass
class Inner:
    width: int = 4
    scale: float = 1.0


@dataclass
class Outer:
    name: str = "x"
    enabled: bool = True
    inner: Inner = field(default_factory=Inner)
    xyz: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])


def test_yaml_values_override_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: cam\ninner:\n  width: 8\n")
    cfg = load_config(Outer, path)
    assert (cfg.name, cfg.inner.width, cfg.inner.scale, cfg.enabled) == ("cam", 8, 1.0, True)


def test_integer_is_accepted_for_a_float_field():
    assert load_config(Outer, {"inner": {"scale": 2}}).inner.scale == 2.0


def test_unknown_key_is_named_with_the_known_ones():
    with pytest.raises(ConfigError, match=r"Outer.inner: unknown key\(s\) \['widht'\]"):
        load_config(Outer, {"inner": {"widht": 3}})


def test_wrong_type_names_the_dotted_field():
    with pytest.raises(ConfigError, match="Outer.inner.width: expected an integer, got 'big'"):
        load_config(Outer, {"inner": {"width": "big"}})


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: file not found"):
        load_config(Outer, tmp_path / "nope.yaml")


def test_flatten_and_unflatten_round_trip():
    cfg = Outer(inner=Inner(width=7))
    flat = flatten(cfg)
    assert flat["inner.width"] == 7 and flat["xyz"] == [0.0, 0.0, 0.0]
    assert load_config(Outer, unflatten(flat)) == cfg


def test_the_node_configuration_loads_without_importing_torch():
    # CLI tools that only read the configuration (worldfm record, beside a launch) must start in a
    # fraction of a second, not after torch's seconds of import.
    import subprocess
    import sys

    code = "import sys, worldfm_ros.sim.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
