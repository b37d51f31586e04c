"""The envs as RL libraries use them: public imports, gym.make / make_vec, SB3's VecEnv and PPO."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.build.procedural import make_room_scene, random_room

W, H = 64, 48
CONFIG = {"camera": {"width": W, "height": H}, "backend": {"name": "anchor"}}


@pytest.fixture(scope="module")
def scene():
    room = random_room(seed=21, size=(6.0, 5.0, 2.8), num_obstacles=2)
    return make_room_scene(room, PinholeCamera.from_fov(W, H, 90.0), num_views=12, num_keyframes=3, name="rl_room")


def sb3():
    return pytest.importorskip("stable_baselines3", reason="stable-baselines3 not installed (optional RL dependency)")


def test_the_envs_and_vector_helpers_import_from_worldfm_ros_envs():
    from worldfm_ros.envs import WorldFMEnv, WorldFMRosEnv, make_sb3_vector_env, make_vector_env  # noqa: F401

    assert issubclass(WorldFMEnv, gym.Env) and issubclass(WorldFMRosEnv, gym.Env)


def test_the_default_action_space_is_normalised_to_plus_minus_one(scene):
    from worldfm_ros.envs import WorldFMEnv

    env = WorldFMEnv(CONFIG, scene=scene)
    assert env.action_space.low.tolist() == [-1.0, -1.0] and env.action_space.high.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("mode, shape", [("image", (H, W, 3)), ("rgbd", (H, W, 4))])
def test_image_observation_modes_are_single_uint8_boxes(scene, mode, shape):
    from worldfm_ros.envs import WorldFMEnv

    env = WorldFMEnv(CONFIG, scene=scene, observation=mode)
    obs, _ = env.reset(seed=0)
    assert env.observation_space == gym.spaces.Box(0, 255, shape, np.uint8) and env.observation_space.contains(obs)


def test_rgbd_carries_depth_scaled_from_ten_metres_to_255(scene):
    from worldfm_ros.envs import WorldFMEnv

    rgbd, _ = WorldFMEnv(CONFIG, scene=scene, observation="rgbd").reset(seed=0)
    full, _ = WorldFMEnv(CONFIG, scene=scene, observation="dict").reset(seed=0)
    assert np.array_equal(rgbd[..., :3], full["image"])
    assert np.abs(rgbd[..., 3:].astype(float) - full["depth"] * 25.5).max() <= 0.5


@pytest.mark.parametrize("mode", ["image", "rgbd", "dict_uint8"])
def test_gymnasium_and_sb3_env_checkers_pass_without_warnings(scene, mode):
    sb3()
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    from worldfm_ros.envs import WorldFMEnv

    env = WorldFMEnv(CONFIG, scene=scene, observation=mode, max_episode_steps=20)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
        sb3_check_env(env)
    assert [str(w.message) for w in caught] == []


def test_the_dict_observation_has_finite_bounds_for_the_checkers(scene):
    from worldfm_ros.envs import WorldFMEnv

    env = WorldFMEnv(CONFIG, scene=scene)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
    assert [str(w.message) for w in caught] == []
    assert all(np.isfinite(s.high).all() and np.isfinite(s.low).all() for s in env.observation_space.values())


def test_sb3_takes_the_metric_dict_depth_for_a_one_channel_image_not_an_unconventional_shape(scene):
    sb3()
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    from worldfm_ros.envs import WorldFMEnv

    env = WorldFMEnv(CONFIG, scene=scene, observation="dict", max_episode_steps=20)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb3_check_env(env)
    messages = [str(w.message) for w in caught]
    assert not any("unconventional shape" in m for m in messages)
    # What SB3 still says of a float image in metres: its dtype and range (the reason for 'dict_uint8').
    assert messages and all("observation depth" in m or "observation space depth" in m for m in messages)


def test_the_dict_depth_is_one_channel_in_metres_and_dict_uint8_scales_it_like_rgbd(scene):
    from worldfm_ros.envs import WorldFMEnv

    metric, _ = WorldFMEnv(CONFIG, scene=scene, observation="dict").reset(seed=0)
    scaled, _ = WorldFMEnv(CONFIG, scene=scene, observation="dict_uint8").reset(seed=0)
    rgbd, _ = WorldFMEnv(CONFIG, scene=scene, observation="rgbd").reset(seed=0)
    assert metric["depth"].shape == (H, W, 1) and metric["depth"].dtype == np.float32
    assert scaled["depth"].shape == (H, W, 1) and scaled["depth"].dtype == np.uint8
    assert np.array_equal(scaled["depth"], rgbd[..., 3:]) and np.array_equal(scaled["image"], metric["image"])


def test_sb3_multi_input_policy_runs_a_cnn_on_the_dict_uint8_depth(scene):
    sb3()
    from stable_baselines3 import PPO
    from stable_baselines3.common.torch_layers import NatureCNN
    from torch import nn

    from worldfm_ros.envs import WorldFMEnv

    env = WorldFMEnv(CONFIG, scene=scene, observation="dict_uint8", max_episode_steps=8)
    model = PPO("MultiInputPolicy", env, n_steps=16, batch_size=16, n_epochs=1, seed=0, device="cpu")
    extractors = model.policy.features_extractor.extractors
    assert isinstance(extractors["depth"], NatureCNN) and extractors["depth"].cnn[0].in_channels == 1
    assert isinstance(extractors["image"], NatureCNN) and isinstance(extractors["odom"], nn.Flatten)
    model.learn(total_timesteps=16)
    assert model.num_timesteps >= 16


def test_different_seeds_start_at_different_collision_free_poses_and_a_seed_repeats_its_start(scene):
    from worldfm_ros.envs import WorldFMEnv

    env = WorldFMEnv(CONFIG, scene=scene)
    starts = [env.reset(seed=s)[1] for s in range(5)]
    xy = np.array([i["map_T_base"][:2, 3] for i in starts])
    assert len({tuple(np.round(p, 3)) for p in xy}) == 5
    assert all(i["min_obstacle_distance"] >= 0.25 + 0.2 - 1e-9 for i in starts)
    assert np.array_equal(env.reset(seed=3)[1]["map_T_base"], starts[3]["map_T_base"])


def test_a_list_of_start_poses_is_drawn_from_by_the_seed(scene):
    from worldfm_ros.envs import WorldFMEnv

    poses = [(2.0, 2.0, 0.0), (4.0, 3.0, np.pi / 2)]
    env = WorldFMEnv(CONFIG, scene=scene, start_poses=poses)
    seen = {tuple(np.round(env.reset(seed=s)[1]["map_T_base"][:2, 3], 6)) for s in range(12)}
    assert seen == {(2.0, 2.0), (4.0, 3.0)}


@pytest.fixture(scope="module")
def icl_env():
    from worldfm_ros.envs import WorldFMEnv
    from worldfm_ros.resources import share_dir

    # The ICL-NUIM recording saw part of the room (the point scene, not closed by a layout): many
    # free poses face where it holds nothing.
    env = WorldFMEnv({"camera": {"width": 160, "height": 120}, "backend": {"name": "anchor"}},
                     scene=str(share_dir() / "scenes" / "icl_livingroom"))
    yield env
    env.close()


def test_random_starts_in_the_icl_room_see_at_least_the_start_coverage(icl_env):
    assert icl_env.min_start_coverage == 0.5
    coverage = [icl_env.reset(seed=s)[1]["coverage"] for s in range(30)]
    assert min(coverage) >= 0.5


def test_the_start_coverage_threshold_is_the_users_to_set(icl_env):
    icl_env.min_start_coverage = 0.7
    try:
        assert all(icl_env.reset(seed=s)[1]["coverage"] >= 0.7 for s in range(10))
    finally:
        icl_env.min_start_coverage = 0.5


def test_a_start_coverage_no_free_pose_reaches_is_an_error_naming_the_threshold(icl_env):
    from worldfm_ros.errors import WorldFMError

    icl_env.min_start_coverage = 1.0  # the partial scan never fills a whole view
    try:
        with pytest.raises(WorldFMError, match=r"none of 64 collision-free poses sees min_start_coverage 1\.00 .*best 0\."):
            icl_env.reset(seed=0)
    finally:
        icl_env.min_start_coverage = 0.5


def test_a_start_coverage_outside_zero_to_one_is_rejected(scene):
    from worldfm_ros.envs import WorldFMEnv

    with pytest.raises(ValueError, match=r"min_start_coverage: expected a fraction in \[0, 1\], got 1\.5"):
        WorldFMEnv(CONFIG, scene=scene, min_start_coverage=1.5)


def test_bad_start_poses_are_rejected_with_the_argument_named(scene):
    from worldfm_ros.envs import WorldFMEnv

    with pytest.raises(ValueError, match="start_poses: expected None, 'random' or a list of"):
        WorldFMEnv(CONFIG, scene=scene, start_poses=[(1.0, 2.0)])


def test_gym_make_sets_the_episode_length(scene):
    import worldfm_ros.envs  # noqa: F401 (registers the ids)

    env = gym.make("WorldFM-v0", config=CONFIG, scene=scene, max_episode_steps=4)
    env.reset(seed=0)
    flags = []
    for _ in range(4):
        _, _, terminated, truncated, _ = env.step(np.zeros(2, np.float32))
        flags.append(truncated)
    assert flags == [False, False, False, True]
    assert gym.make("WorldFM-v0", config=CONFIG, scene=scene).spec.max_episode_steps == 500


def test_gymnasium_make_vec_and_a_cleanrl_style_loop_run_with_autoreset(scene):
    import worldfm_ros.envs  # noqa: F401

    envs = gym.make_vec("WorldFM-v0", num_envs=2, vectorization_mode="sync", max_episode_steps=5,
                        config=CONFIG, scene=scene, observation="image")
    envs.action_space.seed(0)
    obs, _ = envs.reset(seed=1)
    assert obs.shape == (2, H, W, 3)
    ends = 0
    for _ in range(12):
        obs, reward, terminated, truncated, _ = envs.step(envs.action_space.sample())
        ends += int(np.sum(terminated | truncated))
        assert obs.shape == (2, H, W, 3) and reward.shape == (2,)
    assert ends >= 2  # both sub-envs reached the 5-step limit and were reset
    envs.close()


def test_a_real_ppo_trains_a_few_hundred_steps_on_the_sb3_vector_env(scene):
    sb3()
    from stable_baselines3 import PPO

    from worldfm_ros.envs import make_sb3_vector_env

    vec = make_sb3_vector_env([scene, scene], CONFIG, observation="image", max_episode_steps=32)
    model = PPO("CnnPolicy", vec, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu", verbose=0)
    model.learn(total_timesteps=256)
    assert model.num_timesteps >= 256
    assert len(model.ep_info_buffer) >= 4  # Monitor reported the finished episodes
    action, _ = model.predict(vec.reset(), deterministic=True)
    assert action.shape == (2, 2) and np.all(np.abs(action) <= 1.0)
    vec.close()
