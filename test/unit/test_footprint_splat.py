"""Footprint splatting: a sparse plane seen at a grazing angle closes without changing its depth."""

from __future__ import annotations

import numpy as np

from worldfm_ros.camera import PinholeCamera
import pytest

from worldfm_ros.errors import CameraError
from worldfm_ros.render.pointcloud import PointCloudRenderer
from worldfm_ros.scene.downsample import point_spacing

CAMERA = PinholeCamera.from_fov(96, 72, 70.0)
SPACING = 0.02
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def grazing_floor() -> tuple[PointCloudRenderer, np.ndarray, np.ndarray]:
    """A floor (world z = 0) sampled on a 2 cm grid, and a camera 0.3 m above it looking along it,
    10 degrees down: (renderer, c2w (4, 4) OpenCV axes, the floor's true z-depth per pixel (H, W))."""
    points = floor_points()
    colors = np.full(points.shape, 150, np.uint8)
    pitch = np.radians(10.0)
    forward = np.array([0.0, np.cos(pitch), -np.sin(pitch)])
    right = np.array([1.0, 0.0, 0.0])
    down = np.cross(forward, right)
    c2w = np.eye(4)
    c2w[:3, :3] = np.stack([right, down, forward], axis=1)
    c2w[:3, 3] = [0.0, 0.0, 0.3]
    u, v = np.meshgrid(np.arange(CAMERA.width), np.arange(CAMERA.height))
    rays = np.stack([(u - CAMERA.cx) / CAMERA.fx, (v - CAMERA.cy) / CAMERA.fy, np.ones(u.shape)], axis=-1)
    rays_world_z = rays @ c2w[:3, :3].T[:, 2]  # world z change per unit camera z
    with np.errstate(divide="ignore"):
        true_z = np.where(rays_world_z < 0, -0.3 / rays_world_z, 0.0)
    return PointCloudRenderer(points, colors), c2w, true_z


def test_footprint_splat_closes_a_grazing_plane_and_keeps_each_points_depth() -> None:
    renderer, c2w, true_z = grazing_floor()
    floor = (true_z > 0) & (true_z < 5.0)
    one_pixel = renderer.render(CAMERA, c2w)
    splat = renderer.render(CAMERA, c2w, footprint_spacing=point_spacing(floor_points()))
    assert one_pixel.valid[floor].mean() < 0.7  # one pixel per point: the near floor is see-through
    assert splat.valid[floor].mean() > 0.99
    same = one_pixel.valid
    np.testing.assert_array_equal(splat.depth[same], one_pixel.depth[same])  # covered pixels keep their depth
    filled = splat.valid & ~same & floor
    rel = np.abs(splat.depth[filled] - true_z[filled]) / true_z[filled]
    # filled pixels lie on the plane, up to the depth change over one row at this slant (~7 %)
    assert np.median(rel) < 0.03 and np.percentile(rel, 99) < 0.08


def test_a_nearer_footprint_replaces_background_seen_through_a_gap_but_not_a_surface_just_behind() -> None:
    cam = PinholeCamera(32, 32, fx=40.0, fy=40.0, cx=16.0, cy=16.0)
    # A point at 1 m standing for 10 cm (footprint 4 px, radius 2) at pixel (16, 16); a far wall
    # point at 3 m on pixel (17, 16), and a point 10 % behind the near one on pixel (15, 16).
    points = [[0.0, 0.0, 1.0], [1 / 40 * 3.0, 0.0, 3.0], [-1 / 40 * 1.1, 0.0, 1.1]]
    renderer = PointCloudRenderer(np.asarray(points, np.float32), np.array([RED, GREEN, BLUE], np.uint8))
    out = renderer.render(cam, np.eye(4), footprint_spacing=0.1)
    assert tuple(out.rgb[16, 17]) == RED and out.depth[16, 17] == np.float32(1.0)  # background replaced
    assert tuple(out.rgb[16, 15]) == BLUE and out.depth[16, 15] == np.float32(1.1)  # within 15 %: kept
    # The two near points' 5x5 squares (the wall's 3x3 lies inside them).
    assert out.valid[14:19, 13:19].all() and out.valid.sum() == 30


def test_footprint_splat_and_a_point_radius_together_are_a_camera_error() -> None:
    renderer, c2w, _ = grazing_floor()
    with pytest.raises(CameraError, match="footprint_spacing 0.02 m and point_radius 1 are exclusive"):
        renderer.render(CAMERA, c2w, point_radius=1, footprint_spacing=0.02)


def test_point_spacing_is_the_grid_step_of_a_regular_cloud() -> None:
    xs, ys = np.meshgrid(np.arange(0, 1, SPACING), np.arange(0, 1, SPACING))
    points = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)], axis=1)
    assert abs(point_spacing(points) - SPACING) < 1e-6


def floor_points() -> np.ndarray:
    """(N, 3) points of the floor z = 0 on a SPACING grid, metres."""
    xs, ys = np.meshgrid(np.arange(-3, 3, SPACING), np.arange(0.05, 6, SPACING))
    return np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)], axis=1)


# ------------------------------------------------------------------ the scene's splat, in the node
def floor_scene(**fields) -> "SceneAnchor":
    from worldfm_ros.scene.anchor import SceneAnchor

    points = floor_points()
    return SceneAnchor(points.astype(np.float32), np.full(points.shape, 150, np.uint8), name="floor", **fields)


def test_a_scene_file_keeps_the_splat_and_point_spacing_it_asks_for(tmp_path) -> None:
    from worldfm_ros.scene.store import load_scene, save_scene

    for path in (tmp_path / "dir", tmp_path / "scene.npz"):
        save_scene(floor_scene(splat="footprint", point_spacing=SPACING), path)
        back = load_scene(path)
        assert (back.splat, back.point_spacing) == ("footprint", SPACING)
    save_scene(floor_scene(), tmp_path / "plain")
    assert "render" not in (tmp_path / "plain" / "scene.yaml").read_text()  # squares: nothing recorded
    assert load_scene(tmp_path / "plain").splat == "square"


def test_an_unknown_splat_in_a_scene_file_names_the_file_and_field(tmp_path) -> None:
    from worldfm_ros.errors import SceneError
    from worldfm_ros.scene.store import load_scene, save_scene

    save_scene(floor_scene(), tmp_path / "s")
    with open(tmp_path / "s" / "scene.yaml", "a") as f:
        f.write("render: {splat: disc}\n")
    with pytest.raises(SceneError, match=r"scene\.yaml: .*render\.splat: expected one of \('square', 'footprint'\)"):
        load_scene(tmp_path / "s")


def test_the_simulator_splats_as_the_scene_asks_unless_told_otherwise() -> None:
    from worldfm_ros.config import load_config
    from worldfm_ros.sim.config import SimConfig
    from worldfm_ros.sim.simulator import Simulator, planar_pose

    covered, map_T_base = {}, planar_pose(0.0, 0.0, 0.0, np.pi / 2)  # looking along the floor
    for mode in ("auto", "square", "footprint"):
        sim = Simulator.from_config(load_config(SimConfig, {"backend": {"name": "anchor"}, "splat": mode,
                                                            "point_radius": 0, "antialias": 0,
                                                            "camera": {"width": 320, "height": 240}}), print)
        sim.load_scene(floor_scene(splat="footprint", point_spacing=SPACING))
        covered[mode] = sim.render(map_T_base, 0).valid
    renderer = PointCloudRenderer(floor_points().astype(np.float32), np.full(floor_points().shape, 150, np.uint8))
    c2w, camera = sim.rig.optical_in_scene(map_T_base, np.eye(4)), sim.rig.camera
    assert np.array_equal(covered["square"], renderer.render(camera, c2w).valid)
    footprint = renderer.render(camera, c2w, footprint_spacing=SPACING).valid
    assert footprint.sum() > 1.1 * covered["square"].sum()  # one pixel per point leaves gaps up close
    assert np.array_equal(covered["auto"], footprint) and np.array_equal(covered["footprint"], footprint)
    sim.load_scene(floor_scene())  # no spacing recorded: measured from the cloud
    assert abs(sim.world.surface_spacing - SPACING) < 1e-6


def test_scene_build_splat_footprint_records_the_measured_spacing_and_says_so(tmp_path, capsys) -> None:
    from worldfm_ros.cli import main
    from worldfm_ros.scene.store import load_scene

    rgbd = tmp_path / "room"
    assert main(["scene-build", "image", *image_and_depth(tmp_path), "--hfov", "60", "--splat", "footprint",
                 "-o", str(rgbd)]) == 0
    scene = load_scene(rgbd)
    assert scene.splat == "footprint" and scene.point_spacing == pytest.approx(point_spacing(scene.points))
    assert f"splat: footprint (point spacing {scene.point_spacing * 1e3:.1f} mm)" in capsys.readouterr().out


def image_and_depth(tmp_path) -> tuple[str, str]:
    """A 64x48 RGB image and a depth map of a wall 2 m away: (image path, depth .npy path)."""
    import cv2

    rng = np.random.default_rng(0)
    cv2.imwrite(str(tmp_path / "rgb.png"), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    np.save(tmp_path / "depth.npy", np.full((48, 64), 2.0, np.float32))
    return str(tmp_path / "rgb.png"), str(tmp_path / "depth.npy")
