"""Parameter files load into the node's config, and every launch argument sets a real parameter (the
launch description itself, built by the launch package: test/ros/test_launch_description.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from worldfm_ros.config import flatten, flatten_mapping, load_config, read_yaml, unflatten
from worldfm_ros.launch_args import BUILTIN_PARAMETERS, LAUNCH_ARGUMENTS
from worldfm_ros.sim.config import SimConfig

ROOT = Path(__file__).resolve().parents[2]
PARAM_FILES = [ROOT / "config" / "sim.yaml", *sorted((ROOT / "config" / "cameras").glob("*.yaml"))]


def ros_parameters(path: Path) -> dict:
    doc = read_yaml(path)
    assert list(doc) == ["/**"], f"{path.name}: parameters must be under '/**: ros__parameters'"
    return doc["/**"]["ros__parameters"]


@pytest.mark.parametrize("path", PARAM_FILES, ids=lambda p: p.name)
def test_parameter_file_loads_into_the_sim_config(path):
    load_config(SimConfig, ros_parameters(path))


def test_sim_yaml_sets_every_parameter_of_the_node():
    params = flatten(load_config(SimConfig, ros_parameters(ROOT / "config" / "sim.yaml")))
    given = set(flatten_mapping(ros_parameters(ROOT / "config" / "sim.yaml")))
    assert given == set(params) - {"camera.width", "camera.height", "camera.hfov_deg", "camera.camera_info_url"}


def test_sim_yaml_restates_the_config_defaults_so_ros2_launch_and_ros2_run_agree():
    # ros2 run uses the dataclass defaults, ros2 launch this file: one source of truth.
    given = flatten_mapping(ros_parameters(ROOT / "config" / "sim.yaml"))
    defaults = flatten(SimConfig())
    assert {k: v for k, v in given.items() if v != defaults[k]} == {}


def test_every_launch_argument_maps_to_a_declared_parameter():
    declared = set(flatten(SimConfig())) | BUILTIN_PARAMETERS
    for arg in LAUNCH_ARGUMENTS:
        if arg.parameter:
            assert arg.parameter in declared, f"launch argument {arg.name!r} sets unknown parameter {arg.parameter!r}"


def test_launch_argument_defaults_are_valid_parameter_values():
    values = {a.parameter: a.default for a in LAUNCH_ARGUMENTS if a.parameter and a.parameter not in BUILTIN_PARAMETERS}
    types = {"rate_hz": float, "torch_threads": int, "compressed.depth": lambda text: {"true": True, "false": False}[text]}
    typed = {k: types.get(k, str)(v) for k, v in values.items()}
    load_config(SimConfig, unflatten(typed))


def test_camera_argument_default_names_an_existing_preset():
    default = next(a.default for a in LAUNCH_ARGUMENTS if a.name == "camera")
    assert (ROOT / "config" / "cameras" / f"{default}.yaml").is_file()


def test_launch_file_declares_exactly_the_argument_table():
    tree = ast.parse((ROOT / "launch" / "sim.launch.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert "LAUNCH_ARGUMENTS" in imported
