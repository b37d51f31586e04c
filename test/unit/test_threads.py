"""The torch thread count: one setting (``torch_threads`` / ``--threads`` / ``WorldFMEnv(threads=)``)
that really sets ``torch.get_num_threads()`` in the process that runs the model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.config import load_config
from worldfm_ros.errors import ConfigError
from worldfm_ros.runtime import DEFAULT_TORCH_THREADS
from worldfm_ros.build.procedural import make_room_scene, random_room
from worldfm_ros.sim.config import SimConfig

ROOT = Path(__file__).resolve().parents[2]


def worldfm(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worldfm_ros.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def bench_model_threads(tmp_path: Path, *flags: str) -> int:
    out = tmp_path / "bench.json"
    done = worldfm("bench-model", "--config", "tiny", "--repeats", "1", "--warmup", "0", "--json", str(out), *flags)
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())["threads"]


def test_bench_model_runs_the_model_with_the_default_thread_count(tmp_path):
    assert bench_model_threads(tmp_path) == DEFAULT_TORCH_THREADS == 1


def test_threads_flag_sets_the_thread_count_of_the_process_that_runs_the_model(tmp_path):
    assert bench_model_threads(tmp_path, "--threads", "2") == 2


def test_a_negative_threads_flag_is_a_one_line_error_naming_the_flag():
    done = worldfm("bench-render", "--threads", "-1")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "worldfm bench-render: error: --threads: expected a thread count >= 0 (0 = one per core, torch's "
        "default), got -1"]


def test_every_command_that_runs_torch_has_the_threads_flag():
    import argparse
    import importlib

    from worldfm_ros.cli import COMMANDS

    torch_commands = ("bench-render", "bench-model", "bench-node", "bench-env", "demo", "render-trajectory",
                      "evaluate", "train", "distill")
    for name in torch_commands:
        parser = argparse.ArgumentParser()
        importlib.import_module(COMMANDS[name]).add_arguments(parser)
        assert "--threads" in parser.format_help(), f"worldfm {name} has no --threads"


def test_torch_threads_config_field_rejects_a_negative_count_naming_the_field():
    with pytest.raises(ConfigError, match=r"torch_threads: expected a thread count >= 0"):
        load_config(SimConfig, {"torch_threads": -2})


@pytest.fixture(scope="module")
def env_parts():
    camera = PinholeCamera.from_fov(32, 24, 90.0)
    scene = make_room_scene(random_room(seed=3, num_obstacles=0), camera, num_views=4, num_keyframes=2)
    return {"camera": {"width": 32, "height": 24}, "backend": {"name": "anchor"}}, scene


def test_env_threads_argument_sets_torch_threads_of_the_process(env_parts, restore_threads):
    from worldfm_ros.envs import WorldFMEnv

    config, scene = env_parts
    env = WorldFMEnv(config, scene=scene, threads=2)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    assert torch.get_num_threads() == 2 and env.config.torch_threads == 2


def test_env_without_threads_argument_uses_the_configs_count(env_parts, restore_threads):
    from worldfm_ros.envs import WorldFMEnv

    config, scene = env_parts
    WorldFMEnv({**config, "torch_threads": 2}, scene=scene)
    assert torch.get_num_threads() == 2
    WorldFMEnv(config, scene=scene)
    assert torch.get_num_threads() == DEFAULT_TORCH_THREADS
