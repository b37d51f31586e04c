"""The CPU splat rasterizer: projection and colour equal gsplat's reference functions, full
renders equal a brute-force per-pixel compositor written from the 3DGS equations."""

import numpy as np
import pytest

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.render.gaussians import make_gaussians, transform_gaussians
from worldfm_ros.render.sh import sh_colors
from worldfm_ros.render.splats import ALPHA_MAX, ALPHA_MIN, EPS2D, T_MIN, VALID_ALPHA, SplatRenderer

torch = pytest.importorskip("torch")
ti = pytest.importorskip("gsplat.cuda._torch_impl", reason="gsplat's reference functions (pip install gsplat)")


def look_at_pose(eye, target, up=(0.0, -1.0, 0.0)) -> np.ndarray:
    """(4, 4) camera-to-world, OpenCV axes, at ``eye`` looking at ``target``, image-up towards ``up``."""
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    z = (target - eye) / np.linalg.norm(target - eye)
    x = np.cross(z, np.asarray(up, float))
    x /= np.linalg.norm(x)
    T = np.eye(4)
    T[:3, :3] = np.column_stack([x, np.cross(z, x), z])
    T[:3, 3] = eye
    return T


def random_gaussians(n: int, degree: int = 3, seed: int = 0, spread: float = 1.0):
    """n Gaussians in front of a camera at the origin looking down +z."""
    rng = np.random.default_rng(seed)
    means = np.column_stack([rng.uniform(-spread, spread, n), rng.uniform(-spread, spread, n), rng.uniform(1.5, 4.0, n)])
    quats = rng.normal(size=(n, 4))
    scales = np.exp(rng.uniform(np.log(0.01), np.log(0.2), (n, 3)))
    opacities = rng.uniform(0.05, 1.0, n)
    sh = rng.normal(0, 0.4, (n, (degree + 1) ** 2, 3))
    return make_gaussians(means, quats, scales, opacities, sh)


CAM = PinholeCamera(96, 72, 80.0, 82.0, 47.5, 35.5)


def gsplat_projection(g, cam, c2w):
    """gsplat's reference projection in float64: (radii, means2d, depths, conics)."""
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64)  # noqa: E731
    covars, _ = ti._quat_scale_to_covar_preci(t(g.quats), t(g.scales), compute_preci=False)
    viewmat = t(np.linalg.inv(c2w))[None]
    radii, means2d, depths, conics, _ = ti._fully_fused_projection(
        t(g.means), covars, viewmat, t(cam.K)[None], cam.width, cam.height, eps2d=EPS2D, near_plane=0.01)
    return radii[0].numpy(), means2d[0].numpy(), depths[0].numpy(), conics[0].numpy()


def test_projection_matches_gsplat_reference():
    g = random_gaussians(400)
    c2w = look_at_pose([0.3, -0.2, -0.5], [0.0, 0.0, 2.5])
    proj = SplatRenderer(g).project(CAM, c2w)
    radii, means2d, depths, conics = gsplat_projection(g, CAM, c2w)
    rows = proj.drawn
    ours = proj.index[rows]
    assert len(ours) > 100 and len(np.unique(ours)) == len(ours)
    assert np.all(radii[ours, 0] > 0), "a Gaussian gsplat culls is drawn"
    np.testing.assert_allclose(proj.xy[rows], means2d[ours], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(proj.depth[rows], depths[ours], rtol=1e-5)
    np.testing.assert_allclose(proj.conic[rows], conics[ours], rtol=1e-5, atol=1e-7)
    # the support shrinks with opacity, never past gsplat's 3.33 standard deviations
    assert np.all(proj.radius[rows] <= radii[ours])


def test_culling_of_whole_blocks_keeps_every_gaussian_that_reaches_the_image():
    # small Gaussians all around the camera, and a cluster of large ones beside the view, centres
    # outside it, that reach in
    rng = np.random.default_rng(3)
    n, m = 20000, 1024
    means = np.concatenate([rng.uniform(-4.0, 4.0, (n, 3)), rng.uniform(-0.1, 0.1, (m, 3)) + [-2.3, 0.0, 3.0]])
    scales = np.concatenate([np.exp(rng.uniform(np.log(0.005), np.log(0.05), (n, 3))), np.full((m, 3), 0.3)])
    g = make_gaussians(means, rng.normal(size=(n + m, 4)), scales, rng.uniform(0.05, 1.0, n + m),
                       rng.normal(0, 0.4, (n + m, 1, 3)))
    renderer = SplatRenderer(g)
    c2w = np.eye(4)
    assert len(renderer.visible_blocks(CAM, c2w)) < 0.75 * renderer._blocks.num_blocks, "blocks culled"
    radii, means2d, depths, conics = gsplat_projection(g, CAM, c2w)
    # which Gaussians reach the image by the renderer's rule, from gsplat's projection
    a, b, c = conics[:, 0], conics[:, 1], conics[:, 2]
    det = a * c - b * b
    extent = np.minimum(3.33, np.sqrt(np.maximum(2 * np.log(g.opacities * 255.0), 0.0)))
    rx = np.ceil(extent * np.sqrt(c / det))
    ry = np.ceil(extent * np.sqrt(a / det))
    u, v = means2d[:, 0], means2d[:, 1]
    reach = ((radii[:, 0] > 0) & (rx > 0) & (ry > 0) & (u + rx > 0) & (u - rx < CAM.width) & (v + ry > 0)
             & (v - ry < CAM.height))
    assert np.count_nonzero(reach[n:] & (u[n:] < -5)) > 500, "the cluster should reach in from outside"
    proj = renderer.project(CAM, c2w)
    assert set(np.flatnonzero(reach)) <= set(proj.index[proj.drawn])


def test_colours_match_gsplat_spherical_harmonics_at_every_degree():
    rng = np.random.default_rng(1)
    dirs = rng.normal(size=(50, 3))
    for degree in range(4):
        coeffs = rng.normal(0, 0.5, (50, (degree + 1) ** 2, 3))
        ref = ti._spherical_harmonics(degree, torch.as_tensor(dirs), torch.as_tensor(coeffs)).numpy()
        np.testing.assert_allclose(sh_colors(coeffs, dirs), np.maximum(ref + 0.5, 0.0), rtol=1e-6, atol=1e-7)


def test_projected_colour_is_the_sh_value_along_the_ray_from_the_camera():
    g = random_gaussians(200)
    c2w = look_at_pose([0.5, 0.1, -0.3], [0.0, 0.0, 2.5])
    proj = SplatRenderer(g).project(CAM, c2w)
    expected = sh_colors(g.sh, g.means - c2w[:3, 3])
    np.testing.assert_allclose(proj.color[proj.drawn], expected[proj.index[proj.drawn]], rtol=1e-5, atol=1e-6)


def brute_force(g, cam, c2w):
    """Every pixel against every Gaussian, front to back, from gsplat's projection and the 3DGS
    compositing rules; pixel centres at integer coordinates (OpenCV)."""
    radii, means2d, depths, conics = gsplat_projection(g, cam, c2w)
    colors = sh_colors(g.sh, g.means - c2w[:3, 3])
    keep = np.flatnonzero(radii[:, 0] > 0)
    keep = keep[np.argsort(depths[keep], kind="stable")]
    rgb = np.zeros((cam.height, cam.width, 3))
    alpha = np.zeros((cam.height, cam.width))
    depth = np.zeros((cam.height, cam.width))
    for v in range(cam.height):
        for u in range(cam.width):
            T, c, wsum, z = 1.0, np.zeros(3), 0.0, 0.0
            for i in keep:
                dx, dy = means2d[i, 0] - u, means2d[i, 1] - v
                a, b, cc = conics[i]
                sigma = 0.5 * (a * dx * dx + cc * dy * dy) + b * dx * dy
                if sigma < 0:
                    continue
                al = min(ALPHA_MAX, g.opacities[i] * np.exp(-sigma))
                if al < ALPHA_MIN:
                    continue
                if T * (1 - al) <= T_MIN:
                    break
                c += al * T * colors[i]
                wsum += al * T
                z += al * T * depths[i]
                T *= 1 - al
            rgb[v, u], alpha[v, u], depth[v, u] = c, wsum, z / wsum if wsum > 0 else 0.0
    return rgb, alpha, depth


def test_full_render_matches_a_brute_force_compositor():
    g = random_gaussians(300, spread=0.9)
    c2w = look_at_pose([0.2, 0.1, -0.2], [0.0, 0.0, 2.5])
    image = SplatRenderer(g).render_image(CAM, c2w)
    rgb, alpha, depth = brute_force(g, CAM, c2w)
    assert alpha.mean() > 0.3, "the scene should cover much of the view"
    assert np.abs(image.rgb - rgb).mean() < 1 / 255
    assert np.abs(image.alpha - alpha).mean() < 1 / 255
    both = (alpha > VALID_ALPHA) & (image.alpha > VALID_ALPHA)
    assert np.abs(image.depth - depth)[both].mean() < 1e-3


def test_uint8_render_is_the_float_render_quantised():
    g = random_gaussians(300, spread=0.9)
    renderer = SplatRenderer(g)
    c2w = look_at_pose([0.0, 0.0, -0.4], [0.0, 0.0, 2.5])
    image, result = renderer.render_image(CAM, c2w), renderer.render(CAM, c2w)
    assert np.abs(result.rgb / 255.0 - np.clip(image.rgb, 0, 1)).max() <= 0.5 / 255 + 1e-6
    np.testing.assert_array_equal(result.valid, image.alpha >= VALID_ALPHA)
    assert np.all(result.depth[~result.valid] == 0)


def test_one_opaque_disc_gives_its_depth_and_colour_and_nothing_around_it():
    disc = make_gaussians([[0.0, 0.0, 2.0]], [[1.0, 0, 0, 0]], [[0.2, 0.2, 0.001]], [1.0],
                          np.full((1, 1, 3), (0.8 - 0.5) / 0.28209479177387814))
    out = SplatRenderer(disc).render(CAM, np.eye(4))
    centre = (int(CAM.cy), int(CAM.cx))
    assert out.valid[centre] and abs(out.depth[centre] - 2.0) < 1e-5
    assert abs(int(out.rgb[centre][0]) - round(0.8 * 255 * 0.999)) <= 1
    assert not out.valid[0, 0] and out.rgb[0, 0].max() == 0 and out.depth[0, 0] == 0


def test_gaussians_behind_the_near_plane_are_not_drawn():
    behind = make_gaussians([[0.0, 0.0, -1.0], [0.0, 0.0, 0.005]], [[1.0, 0, 0, 0]] * 2, [[0.3, 0.3, 0.3]] * 2,
                            [1.0, 1.0], np.zeros((2, 1, 3)))
    assert SplatRenderer(behind).render(CAM, np.eye(4)).coverage == 0.0


def test_moving_the_gaussians_and_the_camera_together_changes_nothing():
    g = random_gaussians(300, degree=3, spread=0.9)
    c2w = look_at_pose([0.2, 0.1, -0.2], [0.0, 0.0, 2.5])
    b_T_a = look_at_pose([1.0, -2.0, 0.5], [0.3, 4.0, 1.0])  # any rigid motion
    a = SplatRenderer(g).render_image(CAM, c2w)
    b = SplatRenderer(transform_gaussians(g, b_T_a)).render_image(CAM, b_T_a @ c2w)
    assert np.abs(a.rgb - b.rgb).mean() < 1e-4
    assert np.abs(a.alpha - b.alpha).max() < 1e-3


@pytest.mark.cuda
def test_the_cuda_path_draws_what_the_cpu_path_draws():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    from worldfm_ros.render.splats_cuda import GsplatRenderer

    g = random_gaussians(300, spread=0.9)
    c2w = look_at_pose([0.2, 0.1, -0.2], [0.0, 0.0, 2.5])
    cpu = SplatRenderer(g).render_image(CAM, c2w)
    gpu = GsplatRenderer(g, "cuda").render_images(CAM, [c2w])[0]
    assert np.abs(cpu.rgb - gpu.rgb).mean() < 2 / 255
    assert np.abs(cpu.alpha - gpu.alpha).mean() < 2 / 255
