"""The ``release`` profile reproduces the released pipeline's rules (spec §3.4, §3.5, §6.6, §9.16)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldfm_ros.backends.base import FrameRequest
from worldfm_ros.backends.frame_model import FrameModelPipeline
from worldfm_ros.backends.registry import create_backend
from worldfm_ros.backends.torch_backend import TorchDenoiser
from worldfm_ros.camera import PinholeCamera
from worldfm_ros.errors import ConfigError
from worldfm_ros.model.codec import VAECodec
from worldfm_ros.model.config import DiTConfig
from worldfm_ros.model.dit import WorldFMDiT
from worldfm_ros.model.sampler import DistilledSampler, NoiseSource
from worldfm_ros.model.schedule import NoiseSchedule
from worldfm_ros.backends.config import model_profile
from worldfm_ros.render.pointcloud import PointCloudRenderer
from worldfm_ros.render.release import ReleaseRenderer, fp16_colours
from worldfm_ros.scene.anchor import Keyframe, SceneAnchor
from worldfm_ros.world.pointcloud import PointCloudWorld
from worldfm_ros.frame.reference import KeyframeSelector, SelectionRules, covisibility_counts, release_sample_grid
from worldfm_ros.backends.config import BackendConfig

CAM = PinholeCamera(8, 8, 100.0, 100.0, 4.0, 4.0)
# Two float16 values 6.1e-5 m apart (inside the 1e-4 m tie band), and one 1.8e-4 m behind.
Z0 = float(np.float16(0.1))
Z1 = float(np.nextafter(np.float16(Z0), np.float16(1)))
Z2 = float(np.float16(Z0) + np.float16(3 * (Z1 - Z0)))
RED, GREEN, BLUE = [255, 0, 0], [0, 255, 0], [0, 0, 255]


def centre_pixel(renderer, points, colors):
    r = renderer(np.array(points, np.float32), np.array(colors, np.uint8)).render(CAM, np.eye(4))
    return r.rgb[4, 4].tolist(), float(r.depth[4, 4])


def test_points_within_the_tie_band_let_the_last_one_paint_the_pixel():
    rgb, depth = centre_pixel(ReleaseRenderer, [[0, 0, Z0], [0, 0, Z1], [0, 0, Z2]], [RED, GREEN, BLUE])
    assert rgb == fp16_colours(np.array([GREEN], np.uint8))[0].tolist()  # Z1 is tied with Z0, Z2 is not
    assert depth == pytest.approx(Z0, abs=0)


def test_last_write_means_the_highest_point_index_among_the_tied():
    rgb, _ = centre_pixel(ReleaseRenderer, [[0, 0, Z1], [0, 0, Z0]], [GREEN, RED])
    assert rgb == fp16_colours(np.array([RED], np.uint8))[0].tolist()


def test_the_exact_renderer_keeps_the_nearest_point_instead():
    rgb, _ = centre_pixel(PointCloudRenderer, [[0, 0, Z0], [0, 0, Z1]], [RED, GREEN])
    assert rgb == RED


def test_positions_are_stored_in_float16():
    _, depth = centre_pixel(ReleaseRenderer, [[0, 0, 10.003]], [RED])
    assert depth == 10.0  # float16 spacing is 0.0078 m between 8 and 16 m


def test_colours_are_truncated_through_float16():
    codes = np.arange(256, dtype=np.uint8)
    cam = PinholeCamera(256, 1, 100.0, 100.0, 0.0, 0.0)
    points = np.stack([codes / 100.0, np.zeros(256), np.ones(256)], 1).astype(np.float32)  # one pixel each
    rgb = ReleaseRenderer(points, np.repeat(codes[:, None], 3, 1)).render(cam, np.eye(4)).rgb[0, :, 0]
    expected = (np.float16(codes / 255.0).astype(np.float32) * np.float32(255)).astype(np.uint8)
    assert np.array_equal(rgb, expected)
    assert int(np.sum(rgb == codes - 1)) == 131 and int(np.sum(rgb == codes)) == 125


def test_release_sample_grid_is_the_309_linspace_samples_with_edges():
    uv = release_sample_grid(512, 512)
    assert len(uv) == 309
    outer = {0, 57, 114, 170, 227, 284, 341, 397, 454, 511}
    on_outer = [(u, v) for u, v in uv if u in outer and v in outer and not (128 <= u <= 383 and 128 <= v <= 383)]
    assert len(on_outer) == 84
    centre = uv[(uv[:, 0] >= 128) & (uv[:, 0] <= 383) & (uv[:, 1] >= 128) & (uv[:, 1] <= 383)]
    assert len(centre) == 225
    assert sorted(set(centre[:, 0])) == sorted({int(round(x)) for x in np.linspace(127.75, 383.25, 15)})
    assert np.all(np.diff(uv[:, 1] * 512 + uv[:, 0]) > 0)  # ordered by flat index


def _one_point_view(depth_value: float) -> tuple[np.ndarray, np.ndarray]:
    depth = np.zeros((CAM.height, CAM.width), np.float32)
    depth[4, 4] = depth_value
    return np.array([[0.0, 0.0, 4.0]]), depth  # a world point 4 m in front of an identity camera


def test_release_depth_test_is_strict():
    point, depth = _one_point_view(5.0)  # |5 - 4| equals 0.25 * 4 exactly
    assert covisibility_counts(point, CAM, np.eye(4), depth, 0.25, 0.0, strict=False) == 1
    assert covisibility_counts(point, CAM, np.eye(4), depth, 0.25, 0.0, strict=True) == 0


def test_release_depth_test_has_no_absolute_tolerance():
    point, depth = _one_point_view(0.0)
    point[0, 2], depth[4, 4] = 0.25, 0.258  # 8 mm off at 0.25 m: more than 2 %, less than 1 cm
    ours, release = SelectionRules(), SelectionRules.release()
    assert covisibility_counts(point, CAM, np.eye(4), depth, ours.rel_tol, ours.abs_tol, strict=ours.strict) == 1
    assert covisibility_counts(point, CAM, np.eye(4), depth, release.rel_tol, release.abs_tol,
                               strict=release.strict) == 0


def wall_anchor() -> SceneAnchor:
    """A dense wall 20 m down +z; keyframe 0 sees it from 15 m, keyframe 1 from 3 m."""
    g = np.arange(-3.0, 3.0, 0.02)
    x, y = np.meshgrid(g, g)
    points = np.stack([x.ravel(), y.ravel(), np.full(x.size, 20.0)], 1)
    colors = np.full(points.shape, 128, np.uint8)
    cam = PinholeCamera.from_fov(64, 64, 90.0)
    keyframes = []
    for z in (5.0, 17.0):
        c2w = np.eye(4)
        c2w[2, 3] = z
        keyframes.append(Keyframe(np.zeros((64, 64, 3), np.uint8), cam.K, c2w, None, f"z{z:g}"))
    return SceneAnchor(points, colors, np.eye(4), keyframes, "wall")


def target_view(anchor: SceneAnchor) -> tuple[np.ndarray, PinholeCamera, np.ndarray]:
    cam = PinholeCamera.from_fov(64, 64, 40.0)
    c2w = np.eye(4)
    c2w[2, 3] = 16.0
    return PointCloudRenderer(anchor.points, anchor.colors).render(cam, c2w, 1).depth, cam, c2w


def test_release_selection_weights_scores_by_camera_distance():
    anchor = wall_anchor()
    depth, cam, c2w = target_view(anchor)
    world = PointCloudWorld(anchor)
    ours = KeyframeSelector(world).select(depth, cam, c2w)
    release = KeyframeSelector(world, SelectionRules.release(), release=True).select(depth, cam, c2w)
    assert ours.scores[0] == ours.scores[1] == 1.0 and ours.index == 0  # a tie goes to the lowest index
    assert release.index == 1  # 1 m away (weight 1) beats 11 m away (weight 1 - 10/19)
    assert release.scores[0] == pytest.approx(1 - 10 / 19)


def test_release_selection_without_target_depth_returns_keyframe_0():
    anchor = wall_anchor()
    _, cam, c2w = target_view(anchor)
    empty = np.zeros((cam.height, cam.width), np.float32)
    world = PointCloudWorld(anchor)
    assert KeyframeSelector(world).select(empty, cam, c2w).index == 1  # ours: the nearest camera
    assert KeyframeSelector(world, rules=SelectionRules.release()).select(empty, cam, c2w).index == 0


# --- posterior samples and noise ---------------------------------------------------------------

SIZE = 16


@pytest.fixture(scope="module")
def vae():
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4, latent_channels=4,
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)


class Recording:
    """The real tiny DiT, recording the latents each call receives."""

    def __init__(self, model: WorldFMDiT) -> None:
        self.net, self.calls = TorchDenoiser(model), []

    def __call__(self, x_t, t, render, reference, mask, cameras=None):
        self.calls.append((x_t.clone(), t, render.clone(), reference.clone()))
        return self.net(x_t, t, render, reference, mask, cameras)


def release_pipeline(vae, reuse_noise: bool = False) -> tuple[FrameModelPipeline, Recording]:
    torch.manual_seed(0)
    model = WorldFMDiT(DiTConfig.tiny(latent_channels=4)).eval()
    with torch.no_grad():
        model.final_layer.linear.weight.normal_(0, 0.05)
    recording = Recording(model)
    pipeline = FrameModelPipeline(recording, VAECodec(vae, sample_posterior=True), DistilledSampler((999, 200)),
                                  8, NoiseSource(0, reuse_noise), profile=model_profile("release"))
    return pipeline, recording


def request(seed: int | None) -> FrameRequest:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    valid = np.ones((SIZE, SIZE), bool)
    return FrameRequest(rgb, valid.astype(np.float32), valid, np.eye(3), np.eye(4),
                        rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8), None, None, 3, seed)


def test_release_draws_render_posterior_reference_posterior_initial_noise_then_renoising_noise(vae):
    pipeline, recording = release_pipeline(vae)
    req = request(seed=7)
    pipeline.generate([req])
    g = torch.Generator().manual_seed(7)
    eps_render, eps_reference, z, eps_renoise = (torch.randn((1, 4, 8, 8), generator=g) for _ in range(4))

    def posterior(image, eps):
        dist = vae.encode(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1).latent_dist
        return (dist.mean + dist.std * eps) * vae.config.scaling_factor

    (x999, t0, z_render, z_reference), (x200, t1, _, _) = recording.calls
    with torch.no_grad():
        torch.testing.assert_close(z_render, posterior(req.render_rgb, eps_render))
        torch.testing.assert_close(z_reference, posterior(req.reference_rgb, eps_reference))
    assert (t0, t1) == (999, 200) and torch.equal(x999, z)
    s = NoiseSchedule()
    out = recording.net(x999, 999, z_render, z_reference, None)[:, :4]
    torch.testing.assert_close(x200, s.add_noise(s.x0_from_v(x999, out, 999), eps_renoise, 200))


def test_release_draws_fresh_noise_and_reencodes_the_reference_every_frame(vae):
    pipeline, recording = release_pipeline(vae, reuse_noise=True)  # the profile overrides reuse
    pipeline.noise = NoiseSource(0, reuse=False)
    first, second = (pipeline.generate([request(seed=None)])[0] for _ in range(2))
    assert not first.reference_cached and not second.reference_cached
    (a, _, render_a, ref_a), _, (b, _, render_b, ref_b), _ = recording.calls
    assert not torch.equal(a, b) and not torch.equal(render_a, render_b) and not torch.equal(ref_a, ref_b)


def test_backend_config_profile_release_reaches_the_torch_backend(tmp_path, vae):
    vae.save_pretrained(tmp_path / "vae")
    cfg = BackendConfig(name="torch", model="", vae=str(tmp_path / "vae"), device="cpu", reuse_noise=True,
                        profile="release")
    model = WorldFMDiT(DiTConfig.tiny(latent_channels=4))
    backend = create_backend("torch", config=cfg, model=model, model_path=None)
    assert backend.profile.name == "release"
    assert backend.pipeline.codec.sample_posterior and not backend.pipeline.noise.reuse


def test_unknown_profile_is_a_config_error_naming_the_field():
    with pytest.raises(ConfigError, match=r"backend.profile: expected one of \['default', 'release'\], got 'rel'"):
        BackendConfig(profile="rel")
