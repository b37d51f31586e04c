"""Anti-aliasing of the camera view: a reconstruction filter as wide as a point's footprint,
over covered pixels only."""

from __future__ import annotations

import numpy as np
import pytest

from worldfm_ros.errors import ConfigError
from worldfm_ros.render.antialias import MAX_SIGMA_PX, MIN_SIGMA_PX, antialias_render, antialias_sigma


def speckled_grey(rng: np.random.Generator, shape=(48, 64)) -> np.ndarray:
    """Mid-grey (128) with per-pixel colour noise of σ 20 levels: point-sampled noisy points."""
    return np.clip(128 + rng.normal(0, 20, (*shape, 3)), 0, 255).astype(np.uint8)


def test_the_filter_removes_point_speckle_and_keeps_the_surface_colour() -> None:
    rgb = speckled_grey(np.random.default_rng(0))
    out = antialias_render(rgb, np.ones(rgb.shape[:2], bool), 1.5)
    assert out.astype(float).std() < 0.3 * rgb.astype(float).std()
    assert abs(out.astype(float).mean() - rgb.astype(float).mean()) < 1.0


def test_holes_stay_empty_and_spill_no_black_into_the_covered_pixels_beside_them() -> None:
    rgb = np.zeros((48, 64, 3), np.uint8)
    valid = np.zeros((48, 64), bool)
    valid[:, :32] = True
    rgb[valid] = 200
    out = antialias_render(rgb, valid, 2.0)
    assert (out[~valid] == 0).all()
    assert np.abs(out[valid].astype(int) - 200).max() <= 1  # a plain blur would darken the edge column to ~100


def test_the_filter_is_as_wide_as_a_point_at_the_median_depth() -> None:
    depth = np.full((48, 64), 2.0, np.float32)
    depth[:, :16] = 8.0  # a quarter of the view far away does not move the median
    valid = np.ones_like(depth, bool)
    # 1.0 footprints of a 1 cm point seen at 2 m through a 300 px focal length: 1.5 px
    assert antialias_sigma(depth, valid, 300.0, 0.01, 1.0) == pytest.approx(1.5)
    assert antialias_sigma(depth, valid, 300.0, 0.01, 2.0) == pytest.approx(3.0)


def test_a_filter_narrower_than_a_third_of_a_pixel_is_skipped_and_a_wide_one_is_capped() -> None:
    depth = np.full((48, 64), 2.0, np.float32)
    valid = np.ones_like(depth, bool)
    assert antialias_sigma(depth, valid, 300.0, 0.9 * MIN_SIGMA_PX * 2.0 / 300.0, 1.0) == 0.0
    assert antialias_sigma(depth, valid, 300.0, 1.0, 1.0) == MAX_SIGMA_PX
    assert antialias_sigma(depth, np.zeros_like(valid), 300.0, 0.01, 1.0) == 0.0  # nothing covered
    assert antialias_sigma(depth, valid, 300.0, 0.01, 0.0) == 0.0  # switched off


def test_the_pipeline_filters_the_camera_view_and_antialias_0_renders_it_point_sampled() -> None:
    from worldfm_ros.backends.fill_backend import FillBackend
    from worldfm_ros.camera import PinholeCamera
    from worldfm_ros.render.pointcloud import PointCloudRenderer
    from worldfm_ros.resources import default_scene_path
    from worldfm_ros.scene.store import load_scene
    from worldfm_ros.frame.pipeline import FramePipeline
    from worldfm_ros.sensors.rig import CameraRig, MountConfig
    from worldfm_ros.world.pointcloud import PointCloudWorld

    anchor = load_scene(default_scene_path())
    rig = CameraRig(PinholeCamera.from_fov(160, 120, 77.3), MountConfig().matrix())
    map_T_base = rig.base_from_optical_in_map(anchor.map_T_scene @ anchor.keyframes[0].c2w)
    world = PointCloudWorld(anchor)
    frames = {k: FramePipeline(world, rig, FillBackend(), antialias=k).render(map_T_base, 0) for k in (0.0, 2.0)}
    c2w = rig.optical_in_scene(map_T_base, anchor.map_T_scene)
    point_sampled = PointCloudRenderer(anchor.points, anchor.colors).render(rig.camera, c2w, point_radius=1)
    assert np.array_equal(frames[0.0].render_rgb, point_sampled.rgb) and "antialias" not in frames[0.0].timings_ms
    assert not np.array_equal(frames[2.0].render_rgb, point_sampled.rgb) and "antialias" in frames[2.0].timings_ms
    assert np.array_equal(frames[2.0].valid, point_sampled.valid)  # what is covered does not change


@pytest.mark.parametrize("value", [-0.5, float("nan"), 9.0])
def test_an_antialias_setting_outside_0_to_4_footprints_is_a_config_error(value: float) -> None:
    from worldfm_ros.config import load_config
    from worldfm_ros.sim.config import SimConfig

    with pytest.raises(ConfigError, match=r"antialias: expected 0\.\.4 point footprints"):
        load_config(SimConfig, {"antialias": value})


def test_antialias_changes_while_running() -> None:
    from worldfm_ros.config import load_config
    from worldfm_ros.sim.config import SimConfig
    from worldfm_ros.sim.simulator import Simulator

    sim = Simulator.from_config(load_config(SimConfig, {"backend": {"name": "anchor"}}), print)
    sim.load_scene()
    sim.reconfigure(load_config(SimConfig, {"backend": {"name": "anchor"}, "antialias": 0.5}))
    assert sim.pipeline.antialias == 0.5
