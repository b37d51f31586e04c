"""The bundled ICL-NUIM living room loads, carries its attribution, and its trajectory stays where it is seen."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.render.pointcloud import PointCloudRenderer
from worldfm_ros.scene.store import load_scene
from worldfm_ros.sim.trajectory import load_trajectory

SCENE = Path(__file__).resolve().parents[2] / "scenes" / "icl_livingroom"
# The recording's camera (fx = fy = 525 at 640x480), at a quarter of its size.
CAMERA = PinholeCamera.from_K(np.array([[525.0, 0, 319.5], [0, 525.0, 239.5], [0, 0, 1]]), 640, 480).scaled(160, 120)


def test_the_icl_scene_is_attributed_under_cc_by_3() -> None:
    text = (SCENE / "ATTRIBUTION.md").read_text()
    assert "CC BY 3.0" in text and "Handa" in text


def test_the_icl_trajectory_renders_nearly_covered_views() -> None:
    anchor = load_scene(SCENE)
    renderer = PointCloudRenderer(anchor.points, anchor.colors)
    trajectory = load_trajectory(SCENE / "trajectory.tum", "optical", "scene", 10.0)
    coverage = [renderer.render(CAMERA, c2w, point_radius=1).coverage for c2w in trajectory.poses[::20]]
    assert min(coverage) > 0.9


SPLATS = SCENE.parent / "icl_livingroom_splats"


def test_the_fitted_icl_world_is_attributed_under_cc_by_3() -> None:
    text = (SPLATS / "ATTRIBUTION.md").read_text()
    assert "CC BY 3.0" in text and "Handa" in text


def test_the_fitted_icl_world_is_a_closed_splat_world_that_renders_the_trajectory_whole() -> None:
    from worldfm_ros.world.completed import CompletedWorld
    from worldfm_ros.world.store import load_world

    world = load_world(SPLATS)
    assert isinstance(world, CompletedWorld) and world.kind == "splats"
    trajectory = load_trajectory(SPLATS / "trajectory.tum", "optical", "scene", 10.0)
    poses = list(trajectory.poses[::40])
    views = world.render([CAMERA] * len(poses), poses)
    assert min(v.coverage for v in views) > 0.99
    assert max(v.observed.mean() for v in views) > 0.9  # along the recording, the capture fills the view
