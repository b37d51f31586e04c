"""RLlib on the batched env: the creator its env runners call, and the PPO example trained for one iteration."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = {"camera": {"width": 32, "height": 24}, "backend": {"name": "anchor"}}


def rllib():
    return pytest.importorskip("ray.rllib", reason="ray[rllib] not installed (optional: pip install 'ray[rllib]==2.60.0')")


def test_the_rllib_creator_gives_a_batched_env_of_num_envs_robots_seeing_float_images_of_the_same_frames():
    from worldfm_ros.envs.batched import BatchedWorldFMEnv
    from worldfm_ros.scale.rllib import make_rllib_env

    env = make_rllib_env({"num_envs": 3, "config": CONFIG, "scene": "", "max_episode_steps": 5})
    reference = BatchedWorldFMEnv(3, CONFIG, scene="", observation="image", max_episode_steps=5)
    assert env.num_envs == 3 and env.single_observation_space.shape == (24, 32, 3)
    assert env.single_observation_space.dtype == np.float32 and env.observation_space.shape == (3, 24, 32, 3)
    obs, _ = env.reset(seed=4)
    expected, _ = reference.reset(seed=4)
    actions = np.zeros((3, *env.single_action_space.shape), np.float32)
    actions[:, 0] = 1.0
    obs, *_ = env.step(actions)
    expected, *_ = reference.step(actions)
    assert obs.dtype == np.float32 and np.array_equal(obs, expected.astype(np.float32) / np.float32(255.0))


def test_the_rllib_creator_refuses_an_observation_other_than_image():
    from worldfm_ros.scale.rllib import make_rllib_env

    with pytest.raises(ValueError, match="env_config.observation: expected 'image', got 'dict'"):
        make_rllib_env({"num_envs": 1, "config": CONFIG, "scene": "", "observation": "dict"})


def test_the_ppo_example_builds_one_env_runner_and_trains_an_iteration():
    rllib()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, str(ROOT / "examples" / "rllib_ppo.py"), "--width", "32", "--height", "24",
                          "--env-runners", "1", "--envs-per-runner", "4", "--iterations", "1", "--train-batch", "64",
                          "--minibatch", "32", "--epochs", "1", "--max-episode-steps", "20", "--num-cpus", "2"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    line = re.search(r"iteration 1: (\d+) env steps sampled, (\d+) trained", run.stdout)
    assert line, run.stdout
    assert int(line.group(1)) >= 64 and int(line.group(2)) >= 64
