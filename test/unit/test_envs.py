"""The gymnasium envs: the Env contract, determinism, rewards, termination, vectorisation."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.envs import ENV_IDS
from worldfm_ros.envs.reward import Transition
from worldfm_ros.envs.sim_env import WorldFMEnv
from worldfm_ros.envs.vector import make_vector_env
from worldfm_ros.build.procedural import make_room_scene, random_room

W, H = 64, 48
CONFIG = {"camera": {"width": W, "height": H}, "initial_pose": [3.0, 2.5, 0.0, 0.0],
          "kinematics": {"max_linear_accel": 100.0, "max_angular_accel": 100.0}}
# Actions in m/s and rad/s, episodes from the configured initial pose (the defaults are
# normalised actions and random collision-free starts).
FIXED = {"normalized_actions": False, "start_poses": None}


def room_scene(seed: int):
    room = random_room(seed=seed, size=(6.0, 5.0, 2.8), num_obstacles=0)
    return make_room_scene(room, PinholeCamera.from_fov(W, H, 90.0), num_views=12, num_keyframes=3,
                           name=f"room{seed}")


@pytest.fixture(scope="module")
def scene():
    return room_scene(11)


@pytest.fixture
def env(scene):
    env = WorldFMEnv(CONFIG, scene=scene, dt=0.2, max_episode_steps=20, **FIXED)
    yield env
    env.close()


def forward(v: float) -> np.ndarray:
    return np.array([v, 0.0], np.float32)


def test_env_passes_the_gymnasium_env_checker(env):
    check_env(env, skip_render_check=True)


def test_reset_observes_image_depth_in_metres_and_odom_at_the_origin(env):
    obs, info = env.reset(seed=0)
    assert obs["image"].shape == (H, W, 3) and obs["image"].dtype == np.uint8
    assert obs["depth"].shape == (H, W, 1) and obs["depth"].dtype == np.float32
    valid = obs["depth"] > 0
    assert valid.mean() > 0.5 and obs["depth"][valid].max() < 8.0  # inside a 6 x 5 m room
    assert np.allclose(obs["odom"], 0.0)
    assert info["map_T_base"][:2, 3] == pytest.approx([3.0, 2.5])


def test_a_fixed_seed_gives_identical_episodes(env):
    runs = []
    for _ in range(2):
        obs, _ = env.reset(seed=5)
        frames = [obs["image"]]
        for _ in range(3):
            obs, *_ = env.step(np.array([0.5, 0.3], np.float32))
            frames.append(obs["image"])
        runs.append(frames)
    for a, b in zip(*runs):
        assert np.array_equal(a, b)
    assert not np.array_equal(runs[0][0], runs[0][-1]), "the robot moved, so the view must change"


def test_driving_forward_moves_odom_by_v_dt_and_earns_that_progress(env):
    env.reset(seed=0)
    total = 0.0
    for _ in range(5):
        obs, reward, terminated, truncated, info = env.step(forward(0.5))
        total += reward
    assert obs["odom"][0] == pytest.approx(0.5, abs=1e-4)
    assert obs["odom"][3] == pytest.approx(0.5, abs=1e-4)
    assert total == pytest.approx(0.5, abs=1e-4)
    assert not terminated and not truncated and info["stamp_ns"] == 1_000_000_000


def test_turning_in_place_changes_yaw_not_position(env):
    env.reset(seed=0)
    obs, reward, *_ = env.step(np.array([0.0, 1.0], np.float32))
    assert obs["odom"][2] == pytest.approx(0.2, abs=1e-4)
    assert obs["odom"][:2] == pytest.approx([0.0, 0.0], abs=1e-6)
    assert reward == pytest.approx(0.0, abs=1e-6)


def test_driving_into_a_wall_terminates_with_the_collision_penalty(env):
    env.reset(seed=0, options={"pose": (5.4, 2.5, 0.0)})  # the x = 6 wall is 0.6 m ahead
    for _ in range(5):
        obs, reward, terminated, truncated, info = env.step(forward(1.0))
        if terminated:
            break
    assert terminated and info["collision"]
    assert reward < -0.5
    assert info["min_obstacle_distance"] >= 0.25 - 1e-6  # the blocked move never entered the radius


def test_an_episode_is_truncated_after_max_episode_steps(scene):
    env = WorldFMEnv(CONFIG, scene=scene, dt=0.1, max_episode_steps=3, **FIXED)
    env.reset(seed=0)
    flags = [env.step(forward(0.0))[3] for _ in range(3)]
    assert flags == [False, False, True]


def test_reset_options_place_the_robot_and_load_another_scene(env):
    obs_a, info = env.reset(seed=0, options={"pose": (2.0, 2.0, np.pi / 2)})
    assert info["map_T_base"][:2, 3] == pytest.approx([2.0, 2.0])
    assert np.arctan2(info["map_T_base"][1, 0], info["map_T_base"][0, 0]) == pytest.approx(np.pi / 2)
    obs_b, _ = env.reset(seed=0, options={"pose": (2.0, 2.0, np.pi / 2), "scene": room_scene(12)})
    assert not np.array_equal(obs_a["image"], obs_b["image"])


def test_unknown_reset_options_are_rejected(env):
    with pytest.raises(ValueError, match="unknown key"):
        env.reset(options={"goal": (1, 2)})


def test_the_action_space_follows_the_kinematic_model_and_limits(scene):
    diff = WorldFMEnv({**CONFIG, "kinematics": {"max_linear": 0.7, "max_angular": 2.0}}, scene=scene, **FIXED)
    assert diff.action_space.shape == (2,)
    assert diff.action_space.high.tolist() == pytest.approx([0.7, 2.0])
    holo = WorldFMEnv({**CONFIG, "kinematics": {**CONFIG["kinematics"], "model": "holonomic"}}, scene=scene, **FIXED)
    assert holo.action_space.shape == (3,)
    holo.reset(seed=0)
    obs, *_ = holo.step(np.array([0.0, 0.5, 0.0], np.float32))
    assert obs["odom"][1] == pytest.approx(0.05, abs=1e-3)  # sideways at 0.5 m/s for 0.1 s


def test_normalized_actions_are_scaled_by_the_kinematics_limits(scene):
    env = WorldFMEnv({**CONFIG, "kinematics": {**CONFIG["kinematics"], "max_linear": 0.4}}, scene=scene,
                     dt=0.5, normalized_actions=True, start_poses=None)
    assert env.action_space.high.tolist() == [1.0, 1.0]
    env.reset(seed=0)
    obs, *_ = env.step(np.array([0.5, 0.0], np.float32))
    assert obs["odom"][0] == pytest.approx(0.1, abs=1e-4)  # half of 0.4 m/s for 0.5 s


def test_an_action_of_the_wrong_shape_is_rejected(env):
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action: expected 2 values"):
        env.step(np.zeros(3, np.float32))


def test_a_custom_reward_function_receives_the_transition(scene):
    seen: list[Transition] = []
    env = WorldFMEnv(CONFIG, scene=scene, dt=0.2, reward_fn=lambda t: seen.append(t) or 42.0, **FIXED)
    env.reset(seed=0)
    _, reward, *_ = env.step(forward(0.5))
    assert reward == 42.0
    assert seen[0].dt == 0.2 and seen[0].current[0, 3] - seen[0].previous[0, 3] == pytest.approx(0.1)


def test_render_returns_the_last_camera_image(scene):
    env = WorldFMEnv(CONFIG, scene=scene, render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    assert np.array_equal(env.render(), obs["image"])


def test_a_vector_env_steps_robots_in_different_scenes(scene):
    slow = {**CONFIG, "kinematics": {**CONFIG["kinematics"], "max_linear": 0.2}}
    envs = make_vector_env([scene, room_scene(12)], configs=[CONFIG, slow], dt=0.5, max_episode_steps=10,
                           normalized_actions=True, start_poses=None)
    obs, _ = envs.reset(seed=3)
    assert obs["image"].shape == (2, H, W, 3) and obs["depth"].shape == (2, H, W, 1)
    assert not np.array_equal(obs["image"][0], obs["image"][1])
    obs, reward, terminated, truncated, _ = envs.step(np.array([[1.0, 0.0], [1.0, 0.0]], np.float32))
    assert obs["odom"][:, 0] == pytest.approx([0.5, 0.1], abs=1e-4)  # each robot's own speed limit
    assert reward.shape == (2,) and not terminated.any() and not truncated.any()
    envs.close()


def test_the_envs_of_a_vector_env_share_one_backend_and_see_what_a_lone_env_sees(scene):
    envs = make_vector_env([scene, scene], configs=CONFIG, dt=0.2, max_episode_steps=10, **FIXED)
    first, second = envs.envs
    assert first.sim.backend is second.sim.backend  # one model in memory for both robots
    obs, _ = envs.reset(seed=3)  # env i is seeded 3 + i
    lone = WorldFMEnv(CONFIG, scene=scene, dt=0.2, max_episode_steps=10, **FIXED)
    alone, _ = lone.reset(seed=3)
    assert np.array_equal(obs["image"][0], alone["image"])
    envs.close()
    lone.close()


def test_the_env_is_registered_with_gymnasium(scene):
    assert "WorldFM-v0" in ENV_IDS and "WorldFM-v0" in gym.registry
    env = gym.make("WorldFM-v0", config=CONFIG, scene=scene)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    env.close()


def test_a_scripted_wall_avoiding_policy_runs_200_steps(scene):
    env = WorldFMEnv(CONFIG, scene=scene, dt=0.1, max_episode_steps=1000, **FIXED)
    obs, info = env.reset(seed=3)
    steps, episodes = 0, 1
    for _ in range(200):
        # Turn away when the centre of the depth image is close, else drive on.
        centre = obs["depth"][H // 3: 2 * H // 3, W // 3: 2 * W // 3]
        near = np.median(centre[centre > 0]) if np.any(centre > 0) else np.inf
        action = np.array([0.0, 1.0] if near < 1.2 else [0.6, 0.0], np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        assert env.observation_space.contains(obs) and np.isfinite(reward)
        steps += 1
        if terminated or truncated:
            obs, info = env.reset()
            episodes += 1
    assert steps == 200 and episodes >= 1
    env.close()
