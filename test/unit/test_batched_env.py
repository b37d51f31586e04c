"""The batched vector env: N robots in one shared world behave exactly as N single envs."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, VectorEnv

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.envs.batched import BatchedWorldFMEnv
from worldfm_ros.envs.vector import make_sb3_vector_env, make_vector_env
from worldfm_ros.build.procedural import make_room_scene, random_room

W, H = 32, 24
CONFIG = {"camera": {"width": W, "height": H}, "backend": {"name": "anchor"}}


def room(seed: int):
    layout = random_room(seed=seed, size=(6.0, 5.0, 2.8), num_obstacles=2)
    return make_room_scene(layout, PinholeCamera.from_fov(W, H, 90.0), num_views=12, num_keyframes=3,
                           name=f"room{seed}")


@pytest.fixture(scope="module")
def scenes():
    return room(5), room(6)


def same_obs(a, b):
    return all(np.array_equal(a[k], b[k]) for k in a)


def test_robots_in_shared_worlds_match_single_envs_bit_for_bit_through_collisions_and_autoresets(scenes):
    a, b = scenes
    layout = [a, b, a, a]  # two worlds, three robots in the first
    kwargs = dict(max_episode_steps=12)
    batched = make_vector_env(layout, CONFIG, batched=True, **kwargs)
    singles = make_vector_env(layout, CONFIG, **kwargs)
    assert isinstance(batched, VectorEnv) and len(batched.worlds) == 2
    obs, info = batched.reset(seed=[4, 8, 15, 16])
    ref_obs, ref_info = singles.reset(seed=[4, 8, 15, 16])
    assert same_obs(obs, ref_obs) and np.array_equal(info["map_T_base"], ref_info["map_T_base"])
    rng = np.random.default_rng(0)
    ends = collisions = 0
    for _ in range(30):
        actions = np.stack([np.ones(4), rng.uniform(-0.5, 0.5, 4)], axis=1).astype(np.float32)  # full speed ahead
        got, want = batched.step(actions), singles.step(actions)
        assert same_obs(got[0], want[0])
        for g, w in zip(got[1:4], want[1:4]):
            assert np.array_equal(g, w)
        assert all(np.array_equal(got[4][k], want[4][k]) for k in want[4])
        ends += int(np.sum(got[2] | got[3]))
        collisions += int(np.sum(got[4]["collision"]))
    assert ends >= 6 and collisions >= 1  # episodes ended by walls and by the time limit, and were reset
    batched.close()
    singles.close()


def test_a_finished_robot_is_reset_on_the_next_step_with_reward_zero(scenes):
    env = BatchedWorldFMEnv(2, CONFIG, scene=scenes[0], max_episode_steps=2)
    env.reset(seed=1)
    hold = np.zeros((2, 2), np.float32)
    env.step(hold)
    _, _, terminated, truncated, _ = env.step(hold)
    assert truncated.all() and not terminated.any()
    obs, reward, terminated, truncated, info = env.step(hold)
    assert reward.tolist() == [0.0, 0.0] and not (terminated | truncated).any()
    assert info["stamp_ns"].tolist() == [0, 0] and np.allclose(obs["odom"][:, 3:], 0.0)  # a fresh episode


def test_same_step_autoreset_returns_the_reset_observation_and_the_final_one_in_info(scenes):
    env = BatchedWorldFMEnv(2, CONFIG, scene=scenes[0], max_episode_steps=1, autoreset_mode=AutoresetMode.SAME_STEP)
    env.reset(seed=1)
    obs, _, _, truncated, info = env.step(np.array([[1.0, 0.0], [0.0, 1.0]], np.float32))
    assert truncated.all() and info["_final_obs"].all()
    assert info["stamp_ns"].tolist() == [0, 0] and info["final_info"]["stamp_ns"].tolist() == [100_000_000] * 2
    assert not np.array_equal(info["final_obs"][0]["odom"], obs["odom"][0])


def test_the_spaces_are_the_single_env_spaces_batched_and_hold_every_observation(scenes):
    env = BatchedWorldFMEnv(3, CONFIG, scene=scenes[0], observation="rgbd")
    assert env.single_observation_space.shape == (H, W, 4) and env.observation_space.shape == (3, H, W, 4)
    assert env.action_space.shape == (3, 2)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    obs, *_ = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs)


@pytest.mark.parametrize("kwargs, message", [
    ({"num_envs": 0}, "num_envs: expected an integer >= 1"),
    ({"num_envs": 2, "config": [CONFIG, {"camera": {"width": 16, "height": 12}, "backend": {"name": "anchor"}}]},
     "mismatched spaces: robot 1"),
    ({"num_envs": 2, "config": [CONFIG] * 3}, "config: expected one per robot (2), got 3"),
])
def test_bad_construction_is_refused_with_the_reason(scenes, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        BatchedWorldFMEnv(scene=scenes[0], **{"config": CONFIG, **kwargs})


def test_seeds_and_actions_of_the_wrong_length_are_refused(scenes):
    env = BatchedWorldFMEnv(2, CONFIG, scene=scenes[0])
    with pytest.raises(ValueError, match=r"seed: expected an int, None or one seed per robot \(2\), got 3"):
        env.reset(seed=[1, 2, 3])
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"actions: expected shape \(2, 2\)"):
        env.step(np.zeros((3, 2), np.float32))


def test_ppo_trains_a_few_hundred_steps_on_the_batched_env_through_the_sb3_adapter(scenes):
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO

    vec = make_sb3_vector_env([scenes[0]] * 4, {"camera": {"width": 16, "height": 12}, "backend": {"name": "anchor"}},
                              batched=True, observation="image", max_episode_steps=16)
    model = PPO("MlpPolicy", vec, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu", verbose=0)
    model.learn(total_timesteps=256)
    assert model.num_timesteps >= 256 and len(model.ep_info_buffer) >= 8  # VecMonitor saw the episodes end
    action, _ = model.predict(vec.reset(), deterministic=True)
    assert action.shape == (4, 2)
    vec.close()
