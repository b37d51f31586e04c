"""The simulator commands take their configuration one way: defaults, ``--config FILE``, their own
flags, ``--set key=value``, in that order, with one default backend for all of them."""

from __future__ import annotations

import argparse
import importlib

import cv2
import pytest
import yaml

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.cli import COMMANDS, build_parser, main
from worldfm_ros.errors import ConfigError
from worldfm_ros.build.procedural import make_room_scene, random_room
from worldfm_ros.scene.store import save_scene
from worldfm_ros.sim.cli_config import sim_config_from_args
from worldfm_ros.sim.config import SimConfig

SIM_COMMANDS = ("demo", "render-trajectory", "bench-node", "bench-env")
REQUIRED = {"render-trajectory": ["poses.txt", "-o", "out"]}


def parsed(command: str, *argv: str) -> argparse.Namespace:
    return build_parser().parse_args([command, *REQUIRED.get(command, []), *argv])


def config_of(command: str, *argv: str) -> SimConfig:
    """The configuration ``command`` runs with for ``argv`` (its parser, its flags, the shared loader)."""
    return sim_config_from_args(parsed(command, *argv), importlib.import_module(COMMANDS[command]).CONFIG_FLAGS)


@pytest.mark.parametrize("command", SIM_COMMANDS)
def test_every_simulator_command_defaults_to_the_configured_backend(command):
    assert config_of(command).backend.name == SimConfig().backend.name == "torch"


@pytest.mark.parametrize("command", SIM_COMMANDS)
def test_a_config_file_then_a_flag_then_set_each_override_the_one_before(command, tmp_path):
    path = tmp_path / "sim.yaml"
    path.write_text(yaml.safe_dump({"camera": {"width": 320, "height": 240, "hfov_deg": 70.0},
                                    "backend": {"name": "onnx"}, "rate_hz": 5.0}))
    cfg = config_of(command, "--config", str(path), "--backend", "anchor", "--set", "camera.hfov_deg=60",
                    "--set", "publish_scan=true")
    assert (cfg.camera.width, cfg.camera.height, cfg.camera.hfov_deg) == (320, 240, 60.0)
    assert cfg.backend.name == "anchor" and cfg.rate_hz == 5.0 and cfg.publish_scan is True


def test_a_ros_parameter_file_is_read_through_its_ros__parameters(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": {"camera.width": 160, "camera": {"height": 120}}}}))
    cfg = config_of("bench-node", "--config", str(path))
    assert (cfg.camera.width, cfg.camera.height) == (160, 120)


def test_an_unknown_set_key_is_refused_naming_it():
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['camera.widht'\]"):
        config_of("bench-node", "--set", "camera.widht=320")


def test_a_set_item_without_a_value_is_refused_with_the_expected_form():
    with pytest.raises(ConfigError, match="--set: expected KEY=VALUE"):
        config_of("bench-env", "--set", "camera.width")


def test_a_wrong_type_is_refused_naming_the_field():
    with pytest.raises(ConfigError, match="camera.width"):
        config_of("render-trajectory", "--set", "camera.width=wide")


def test_render_trajectory_renders_at_the_size_a_config_file_gives(tmp_path, capsys):
    from test_trajectory import write_tum

    scene = tmp_path / "room"
    room = random_room(seed=5, size=(6.0, 5.0, 2.8), num_obstacles=0)
    save_scene(make_room_scene(room, PinholeCamera.from_fov(64, 48, 90.0), num_views=6, num_keyframes=2), scene)
    path = tmp_path / "sim.yaml"
    path.write_text(yaml.safe_dump({"scene": str(scene), "camera": {"width": 48, "height": 32},
                                    "backend": {"name": "anchor", "device": "cpu"}}))
    out = tmp_path / "out"
    assert main(["render-trajectory", str(write_tum(tmp_path / "poses.txt", 2)), "-o", str(out),
                 "--config", str(path), "--no-video", "--no-bag"]) == 0
    assert "backend anchor" in capsys.readouterr().out
    assert cv2.imread(str(out / "frames" / "000000.png")).shape == (32, 48, 3)
