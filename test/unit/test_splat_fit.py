"""Splat worlds fitted to captures: the differentiable rasterizer is the world's renderer with exact
gradients, a fit is a resumable, deterministic job, pose refinement recovers injected noise, and the
CLI writes the scene atomically and refuses bad captures before any work."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.build.fit.config import FitConfig
from worldfm_ros.build.fit.fitter import FitInterrupted, FitViews, SplatFitter, se3_exp
from worldfm_ros.build.fit.raster import SplatParams, project, render
from worldfm_ros.render.gaussians import Gaussians, make_gaussians
from worldfm_ros.render.splats import ALPHA_MAX, ALPHA_MIN, T_MIN, SplatRenderer
from worldfm_ros.scene.io import write_image
from worldfm_ros.build.procedural import body_pose, random_room

CAMERA = PinholeCamera.from_fov(48, 36, 70.0)


def random_gaussians(n: int, seed: int, near: float = 1.5, far: float = 3.0, log_scale=(-3.0, -1.8)) -> Gaussians:
    rng = np.random.default_rng(seed)
    return make_gaussians(rng.uniform([-0.7, -0.5, near], [0.7, 0.5, far], (n, 3)), rng.normal(size=(n, 4)),
                          np.exp(rng.uniform(*log_scale, (n, 3))), rng.uniform(0.2, 0.95, n),
                          rng.normal(0, 0.3, (n, 4, 3)))


def as_params(g: Gaussians, requires_grad: bool = False) -> SplatParams:
    return SplatParams(*(torch.tensor(a, dtype=torch.float64, requires_grad=requires_grad)
                         for a in (g.means, g.quats, g.scales, g.opacities, g.sh)))


def brute_force(p: SplatParams, camera: PinholeCamera, w2c: torch.Tensor):
    """Every pixel against every Gaussian in depth order, in plain torch (3DGS's compositing rules)."""
    proj = project(p, camera, w2c)
    h, w = camera.height, camera.width
    py, px = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    T = torch.ones(h, w, dtype=torch.float64)
    rgb = torch.zeros(h, w, 3, dtype=torch.float64)
    acc, zsum = torch.zeros_like(T), torch.zeros_like(T)
    done = torch.zeros(h, w, dtype=torch.bool)
    visible = np.flatnonzero(proj.radius[:, 0] > 0)
    for j in visible[np.argsort(proj.depth.detach().numpy().astype(np.float32)[visible], kind="stable")]:
        u, v = proj.xy[j]
        rx, ry = proj.radius[j]
        inside = ((px >= math.ceil(u.item() - rx)) & (px <= math.floor(u.item() + rx))
                  & (py >= math.ceil(v.item() - ry)) & (py <= math.floor(v.item() + ry)))
        dx, dy = u - px, v - py
        a, b, c = proj.conic[j]
        sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
        o = p.opacities[proj.index[j]]
        alpha = torch.clamp(o * torch.exp(-sigma), max=ALPHA_MAX)
        hit = inside & (sigma >= 0) & (sigma <= math.log(o.item() / ALPHA_MIN)) & (alpha >= ALPHA_MIN) & ~done
        stop = hit & (T * (1 - alpha) <= T_MIN)
        done, hit = done | stop, hit & ~stop
        weight = torch.where(hit, alpha * T, torch.zeros_like(T))
        rgb = rgb + weight[..., None] * proj.color[j]
        acc, zsum = acc + weight, zsum + weight * proj.depth[j]
        T = torch.where(hit, T * (1 - alpha), T)
    depth = torch.where(acc > 0, zsum / torch.where(acc > 0, acc, torch.ones_like(acc)), torch.zeros_like(acc))
    return rgb, acc, depth


def test_the_fit_renderer_draws_what_the_world_renderer_draws() -> None:
    g = random_gaussians(3000, seed=0, log_scale=(-4.0, -2.0))
    camera = PinholeCamera.from_fov(96, 64, 70.0)
    c2w = np.eye(4)
    c2w[:3, 3] = [0.05, -0.02, 0.1]
    expected = SplatRenderer(g).render_image(camera, c2w)
    rgb, alpha, depth, _ = render(as_params(g), camera, torch.from_numpy(np.linalg.inv(c2w)))
    assert expected.alpha.mean() > 0.3
    assert np.abs(rgb.numpy() - expected.rgb).max() < 1e-5
    assert np.abs(alpha.numpy() - expected.alpha).max() < 1e-5
    assert np.abs(depth.numpy() - expected.depth).max() < 1e-5


def test_gradients_equal_autograd_of_a_brute_force_compositor() -> None:
    g = random_gaussians(40, seed=1)
    params = as_params(g, requires_grad=True)
    twist = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    base = torch.eye(4, dtype=torch.float64)
    base[:3, 3] = torch.tensor([0.02, 0.01, 0.0])
    gen = torch.Generator().manual_seed(0)
    weights = [torch.randn(CAMERA.height, CAMERA.width, *s, dtype=torch.float64, generator=gen) for s in ((3,), (), ())]

    def loss(images):
        return sum((im * wt).sum() for im, wt in zip(images, weights))

    leaves = [params.means, params.quats, params.scales, params.opacities, params.sh, twist]
    ours = torch.autograd.grad(loss(render(params, CAMERA, se3_exp(twist) @ base)[:3]), leaves)
    reference = torch.autograd.grad(loss(brute_force(params, CAMERA, se3_exp(twist) @ base)), leaves)
    for name, a, b in zip(["means", "quats", "scales", "opacities", "sh", "pose"], ours, reference):
        assert b.abs().max() > 0, name
        assert (a - b).abs().max() <= 1e-5 * b.abs().max(), name


def room_views(n: int, camera: PinholeCamera = CAMERA, seed: int = 7) -> FitViews:
    """n ray-cast RGB-D frames around a procedural room, poses in the room frame."""
    room = random_room(seed=seed)
    images, depths, poses = [], [], []
    for k in range(n):
        c2w = body_pose(room.size[0] / 2, room.size[1] / 2, 2 * np.pi * k / n, height=1.2, pitch=0.2)
        rgb, depth = room.raycast(camera, c2w)
        images.append(rgb)
        depths.append(depth.astype(np.float32))
        poses.append(c2w)
    return FitViews(np.stack(images), np.stack(depths), np.stack(poses), camera, [f"{k:03d}" for k in range(n)])


def room_init(views: FitViews, stride: int = 3) -> Gaussians:
    """Discs of the back-projected frames (what a fit starts from)."""
    from worldfm_ros.build.backproject import backproject_depth
    from worldfm_ros.build.build_splats import splats_from_points
    from worldfm_ros.scene.downsample import point_spacing

    pts, cols = [], []
    for rgb, depth, c2w in zip(views.images, views.depths, views.c2w):
        p, c = backproject_depth(depth, views.camera.K, c2w, rgb, stride=stride)
        pts.append(p)
        cols.append(c)
    points = np.concatenate(pts)
    return splats_from_points(points, np.concatenate(cols), point_spacing(points))


class StopAt:
    """Stands in for the SIGINT event: set from the given iteration's check on."""

    def __init__(self, fitter: SplatFitter, iteration: int) -> None:
        self.fitter, self.iteration = fitter, iteration

    def is_set(self) -> bool:
        return self.fitter.iteration >= self.iteration


def test_an_interrupted_fit_resumes_to_the_result_of_an_uninterrupted_one(tmp_path: Path) -> None:
    views = room_views(4)
    init = room_init(views)
    config = FitConfig(iterations=24, densify_from=8, densify_every=8, densify_until=0.9, checkpoint_every=1000)
    whole = SplatFitter(init, views, config)
    whole.run(progress=False)

    first = SplatFitter(init, views, config)
    checkpoint = tmp_path / "fit.pt"
    with pytest.raises(FitInterrupted):
        first.run(checkpoint, stop=StopAt(first, 13), progress=False)
    assert checkpoint.exists() and first.iteration == 13
    resumed = SplatFitter(init, views, config)
    resumed.load_checkpoint(checkpoint)
    resumed.run(progress=False)

    a, b = whole.gaussians(), resumed.gaussians()
    assert len(a) == len(b) != len(init)  # densification ran, on both sides alike
    for field in ("means", "quats", "scales", "opacities", "sh"):
        np.testing.assert_allclose(getattr(b, field), getattr(a, field), rtol=0, atol=1e-6, err_msg=field)


def test_pose_refinement_recovers_injected_pose_noise() -> None:
    # a textured cloud seen from six poses, the targets drawn by the world renderer itself: only the
    # injected pose error separates the world from the views
    world = random_gaussians(4000, seed=2, log_scale=(-4.0, -2.5))
    camera = PinholeCamera.from_fov(64, 48, 60.0)
    truth = []
    for k in range(6):
        c2w = np.eye(4)
        c2w[:3, :3] = se3_exp(torch.tensor([0.0, 0.05 * (k - 2.5), 0.0, 0, 0, 0], dtype=torch.float64)).numpy()[:3, :3]
        c2w[:3, 3] = [0.06 * (k - 2.5), 0.02 * (k % 2), 0.0]
        truth.append(c2w)
    truth = np.stack(truth)
    shots = [SplatRenderer(world).render(camera, c2w) for c2w in truth]
    rng = np.random.default_rng(3)
    noisy = truth.copy()
    for i in range(1, len(noisy)):  # frame 0 anchors the gauge
        twist = np.concatenate([rng.normal(size=3), rng.normal(size=3)])
        twist[:3] *= math.radians(1.5) / np.linalg.norm(twist[:3])
        twist[3:] *= 0.03 / np.linalg.norm(twist[3:])
        noisy[i] = truth[i] @ np.linalg.inv(se3_exp(torch.from_numpy(twist)).numpy())
    views = FitViews(np.stack([r.rgb for r in shots]), np.stack([r.depth for r in shots]), noisy, camera,
                     [f"{k}" for k in range(6)])
    frozen = dict(lr_means=0.0, lr_means_final=0.0, lr_scales=0.0, lr_quats=0.0, lr_opacities=0.0, lr_sh=0.0)
    fitter = SplatFitter(world, views, FitConfig(iterations=900, refine_poses=True, exposure=False, lr_pose=2e-3,
                                                 densify_from=10**9, init_opacity=1.0, sh_degree=1, **frozen))
    fitter.run(progress=False)

    def errors(c2w):
        d = [np.linalg.inv(t) @ c for t, c in zip(truth, c2w)]
        return (max(np.linalg.norm(x[:3, 3]) for x in d),
                max(math.degrees(math.acos(np.clip((np.trace(x[:3, :3]) - 1) / 2, -1, 1))) for x in d))

    before, after = errors(noisy), errors(fitter.fitted_c2w())
    assert before[0] > 0.029 and before[1] > 1.4
    assert after[0] < 0.01 and after[1] < 0.5, (before, after)


def test_a_frames_pose_and_exposure_move_only_on_the_steps_that_fit_that_frame() -> None:
    world = random_gaussians(500, seed=4)
    camera = PinholeCamera.from_fov(32, 24, 60.0)
    poses = np.stack([np.eye(4)] * 4)
    poses[:, 0, 3] = [0.0, 0.02, 0.04, 0.06]
    shots = [SplatRenderer(world).render(camera, c2w) for c2w in poses]
    views = FitViews(np.stack([255 - r.rgb for r in shots]), np.stack([r.depth + 0.1 for r in shots]), poses, camera)
    fitter = SplatFitter(world, views, FitConfig(iterations=2, refine_poses=True, densify_from=10**9))

    def corrections():
        report = fitter.report()["frames"]
        return [(f["exposure_gain"], f["exposure_bias"], f["pose_correction_cm"]) for f in report]

    still = corrections()
    fitter.step()
    first = corrections()
    moved = [i for i in range(4) if first[i] != still[i]]
    assert len(moved) == 1
    fitter.step()
    assert corrections()[moved[0]] == first[moved[0]]  # no drift on the Adam state of frames not fitted


def write_seven_scenes(root: Path, views: FitViews) -> None:
    root.mkdir()
    np.savetxt(root / "camera-intrinsics.txt", views.camera.K)
    for i, (rgb, depth, c2w) in enumerate(zip(views.images, views.depths, views.c2w)):
        write_image(root / f"frame-{i:06d}.color.png", rgb)
        cv2.imwrite(str(root / f"frame-{i:06d}.depth.png"), np.round(depth * 1000).astype(np.uint16))
        np.savetxt(root / f"frame-{i:06d}.pose.txt", c2w)


def worldfm(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worldfm_ros.cli", *args], capture_output=True, text=True,
                          timeout=240, **kwargs)


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fit") / "room"
    write_seven_scenes(root, room_views(6, PinholeCamera.from_fov(64, 48, 70.0)))
    return root


def test_scene_build_rgbd_world_splats_writes_a_splat_scene_sharper_than_its_points(recording: Path,
                                                                                    tmp_path: Path) -> None:
    from worldfm_ros.world.store import load_world

    out = tmp_path / "splats"
    run = worldfm("scene-build", "rgbd", str(recording), "-o", str(out), "--world", "splats", "--fit-iterations",
                  "120", "--fit-size", "64x48", "--keyframes", "2")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "fit:" in run.stdout and not out.with_name("splats.fit-checkpoint.pt").exists()
    world = load_world(out)
    assert world.kind == "splats" and len(world.keyframes) == 2
    assert (out / "fit_report.yaml").exists() and (out / "fit_sheet.png").exists()
    import yaml

    report = yaml.safe_load((out / "fit_report.yaml").read_text())
    assert report["iterations"] == 120 and len(report["frames"]) == 6
    assert report["mean_psnr"] > report["initial_psnr"] + 3  # sharper than the discs of the fused points


def test_sigint_leaves_a_checkpoint_and_the_old_scene_then_resume_finishes(recording: Path, tmp_path: Path) -> None:
    out = tmp_path / "scene"
    out.mkdir()
    (out / "marker").write_text("the scene from before")
    args = ["scene-build", "rgbd", str(recording), "-o", str(out), "--world", "splats", "--fit-size", "64x48",
            "--keyframes", "2"]
    proc = subprocess.Popen([sys.executable, "-m", "worldfm_ros.cli", *args, "--fit-iterations", "1000000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoint = out.with_name("scene.fit-checkpoint.pt")
    deadline = time.monotonic() + 180
    buffer = ""
    while "fit:" not in buffer and time.monotonic() < deadline:  # tqdm writes to stderr once fitting starts
        buffer += os.read(proc.stderr.fileno(), 4096).decode(errors="replace")
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout
    assert "no scene written" in stdout and "--resume" in stdout
    assert checkpoint.exists()
    assert (out / "marker").exists() and not (out / "scene.yaml").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".scene.partial")]

    run = worldfm(*args, "--fit-iterations", "1", "--resume")  # the checkpoint is past 1: nothing left to do
    assert run.returncode == 0, run.stderr[-2000:]
    assert "resumed from" in run.stderr + run.stdout
    assert (out / "scene.yaml").exists() and not (out / "marker").exists() and not checkpoint.exists()


def test_a_scene_whose_keyframes_have_no_depth_is_refused_before_fitting(tmp_path: Path) -> None:
    from worldfm_ros.scene.anchor import Keyframe, SceneAnchor
    from worldfm_ros.scene.store import save_scene

    views = room_views(2)
    kf = Keyframe(views.images[0], views.camera.K, views.c2w[0], None, "front")
    save_scene(SceneAnchor(np.random.default_rng(0).uniform(-1, 1, (500, 3)).astype(np.float32),
                           np.full((500, 3), 128, np.uint8), np.eye(4), [kf], "nodepth"), tmp_path / "in")
    run = worldfm("scene-fit", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--fit-size", "48x36")
    assert run.returncode != 0
    assert "keyframe front: no depth" in (run.stderr + run.stdout)
    assert not (tmp_path / "out").exists()


def test_frames_with_no_valid_depth_are_named() -> None:
    views = room_views(2)
    depths = views.depths.copy()
    depths[1] = np.nan
    from worldfm_ros.errors import SceneError

    with pytest.raises(SceneError, match="frame 001: depth: no valid depth"):
        FitViews(views.images, depths, views.c2w, views.camera, views.names)
