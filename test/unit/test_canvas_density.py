"""The neural backends see an anchor as closed as the released model's training renders.

A panorama scene built with our point budget leaves gaps between its points on the released
model's 512² canvas at one pixel per point; the frame pipeline closes them with the splat radius
``render.density`` picks, while the ``release`` profile keeps one pixel per point on the
release's own 8.4 M-point cloud.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldfm_ros.backends.registry import create_backend
from worldfm_ros.camera import PinholeCamera
from worldfm_ros.eval.bench_density import synthetic_panorama
from worldfm_ros.model.config import DiTConfig
from worldfm_ros.model.dit import WorldFMDiT
from worldfm_ros.render.density import gap_fraction
from worldfm_ros.render.release import ReleaseRenderer
from worldfm_ros.build.build_panorama import build_panorama, reference_pose
from worldfm_ros.scene.io import write_image
from worldfm_ros.frame.pipeline import FramePipeline
from worldfm_ros.sensors.rig import CameraRig, MountConfig
from worldfm_ros.world.pointcloud import PointCloudWorld

CANVAS = PinholeCamera(512, 512, 320.0, 320.0, 256.0, 256.0)  # the released demo's K


@pytest.fixture(scope="module")
def pano_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pano")
    rgb, dist = synthetic_panorama(1024)
    write_image(tmp / "pano.png", rgb)
    np.save(tmp / "dist.npy", dist)
    return tmp / "pano.png", tmp / "dist.npy"


def backend_512(profile: str = "default"):
    """A tiny frame model on a 512² canvas (x8 pixel space-to-depth), as a real torch backend."""
    torch.manual_seed(0)
    model = WorldFMDiT(DiTConfig.tiny(latent_channels=192, input_size=64))
    return create_backend("torch", model=model, steps=1, profile=profile)


def pipeline_for(anchor, backend, profile: str = "default") -> FramePipeline:
    rig = CameraRig(PinholeCamera.from_fov(160, 120, 77.3), MountConfig().matrix())
    return FramePipeline(PointCloudWorld(anchor), rig, backend, profile=profile)


def canvas_valid(pipeline: FramePipeline, c2w, **style) -> np.ndarray:
    """Coverage of the release demo's 512² canvas at ``c2w``, drawn as the pipeline's canvas (or ``style``)."""
    from dataclasses import replace

    return pipeline.world.render([CANVAS], [c2w], replace(pipeline.canvas_style, **style))[0].valid


def test_default_canvas_of_a_panorama_scene_is_closed_by_the_chosen_splat_radius(pano_files):
    anchor = build_panorama(*pano_files, crop_size=64, yaws=(0, 90, 180, -90), pitches=(0,))
    pipeline = pipeline_for(anchor, backend_512())
    c2w = reference_pose(45.0, 10.0)
    one_pixel = canvas_valid(pipeline, c2w, closed=False, point_radius=0)
    closed = canvas_valid(pipeline, c2w)
    assert 1 - one_pixel.mean() > 0.3  # a 1024 px panorama is sparser than the canvas
    assert 1 - closed.mean() < 0.005 and gap_fraction(closed) < 0.005
    frame = pipeline.render(np.eye(4), 0)
    assert frame.rgb.shape == (120, 160, 3)


def test_release_profile_renders_its_own_cloud_one_pixel_per_point_and_leaves_it_closed(pano_files):
    anchor = build_panorama(*pano_files, profile="release")
    pipeline = pipeline_for(anchor, backend_512("release"), profile="release")
    c2w = reference_pose(45.0, 10.0)
    assert pipeline.canvas_style.release and not pipeline.canvas_style.closed
    canvas = pipeline.world.render([CANVAS], [c2w], pipeline.canvas_style)[0]
    release = ReleaseRenderer(anchor.points, anchor.colors).render(CANVAS, c2w)
    assert np.array_equal(canvas.rgb, release.rgb) and np.array_equal(canvas.depth, release.depth)
    assert 1 - canvas.valid.mean() < 0.001
