"""PRoPE and Plücker camera encodings: channel split, relativity, ray geometry."""

import math

import pytest
import torch
from scipy.spatial.transform import Rotation

from worldfm_ros.errors import CameraError
from worldfm_ros.model.config import DiTConfig
from worldfm_ros.model.dit import CameraInputs, WorldFMDiT
from worldfm_ros.model.plucker import plucker_rays
from worldfm_ros.model.prope import PRoPETransforms, projection_matrices, prope_attention, prope_split

GRID = (3, 4)  # token rows, cols per camera


def _rigid(seed: int, batch: int = 2, views: int = 3) -> torch.Tensor:
    """(batch, views, 4, 4) random rigid transforms."""
    rot = Rotation.random(batch * views, random_state=seed).as_matrix()
    g = torch.Generator().manual_seed(seed)
    out = torch.eye(4).repeat(batch, views, 1, 1)
    out[..., :3, :3] = torch.from_numpy(rot).float().reshape(batch, views, 3, 3)
    out[..., :3, 3] = torch.randn(batch, views, 3, generator=g) * 2
    return out


def _Ks(batch: int = 2, views: int = 3) -> torch.Tensor:
    K = torch.tensor([[20.0, 0, 15.5], [0, 22.0, 11.5], [0, 0, 1]])
    return K.repeat(batch, views, 1, 1)


def _qkv(head_dim: int = 16, seed: int = 3):
    g = torch.Generator().manual_seed(seed)
    n = 3 * GRID[0] * GRID[1]
    return [torch.randn(2, 2, n, head_dim, generator=g, dtype=torch.float64).float() for _ in range(3)]


def _moved(viewmats: torch.Tensor, seed: int = 7) -> torch.Tensor:
    """Every camera moved by the same rigid world transform T: viewmat -> viewmat @ T^-1."""
    T = _rigid(seed, 1, 1)[0, 0]
    return viewmats @ torch.linalg.inv(T)


def test_split_of_the_xl_head_is_36_18_18():
    assert prope_split(72) == (36, 18)
    assert prope_split(16) == (8, 4)
    assert prope_split(64) == (32, 16)


def test_split_rejects_head_dims_not_divisible_by_4():
    with pytest.raises(CameraError, match="multiple of 4"):
        prope_split(18)


def test_projection_inverse_is_exact():
    P, P_inv = projection_matrices(_rigid(0), _Ks(), (24, 32))
    torch.testing.assert_close(P @ P_inv, torch.eye(4).expand_as(P), atol=1e-5, rtol=0)


def test_rope_channels_rotate_split_half_with_base_100():
    tf = PRoPETransforms.build(torch.eye(4).repeat(1, 3, 1, 1), None, (24, 32), GRID, 16)
    q = torch.zeros(1, 1, 36, 16)
    # head_dim 16: projective 0-7, x group 8-11 (pairs 8|10, 9|11), y group 12-15 (pairs 12|14, 13|15).
    q[..., 8] = 1.0  # "a" of x pair 0
    q[..., 15] = 1.0  # "b" of y pair 1
    out = tf.transform_q(q)
    token = 1 * GRID[1] + 2  # row 1, column 2 of camera 0
    a = 2 * 100 ** (-0 / 2)
    torch.testing.assert_close(out[0, 0, token, [8, 10]], torch.tensor([math.cos(a), -math.sin(a)]))
    b = 1 * 100 ** (-1 / 2)
    torch.testing.assert_close(out[0, 0, token, [13, 15]], torch.tensor([math.sin(b), math.cos(b)]))


def test_a_value_read_back_by_its_own_token_is_unchanged():
    _, _, v = _qkv()
    tf = PRoPETransforms.build(_rigid(5), _Ks(), (24, 32), GRID, 16)
    torch.testing.assert_close(tf.transform_out(tf.transform_kv(v)), v, atol=1e-4, rtol=1e-4)


def test_attention_logits_are_invariant_to_a_global_rigid_transform():
    q, k, _ = _qkv()
    viewmats, Ks = _rigid(1), _Ks()
    before = PRoPETransforms.build(viewmats, Ks, (24, 32), GRID, 16)
    after = PRoPETransforms.build(_moved(viewmats), Ks, (24, 32), GRID, 16)
    logits = before.transform_q(q) @ before.transform_kv(k).transpose(-1, -2)
    moved = after.transform_q(q) @ after.transform_kv(k).transpose(-1, -2)
    torch.testing.assert_close(moved, logits, atol=1e-4, rtol=1e-4)


def test_attention_output_is_invariant_to_a_global_rigid_transform():
    q, k, v = _qkv()
    viewmats, Ks = _rigid(2), _Ks()
    out = prope_attention(q, k, v, PRoPETransforms.build(viewmats, Ks, (24, 32), GRID, 16))
    moved = prope_attention(q, k, v, PRoPETransforms.build(_moved(viewmats), Ks, (24, 32), GRID, 16))
    torch.testing.assert_close(moved, out, atol=1e-4, rtol=1e-4)


def test_attention_output_depends_on_the_relative_camera_pose():
    q, k, v = _qkv()
    viewmats, Ks = _rigid(2), _Ks()
    other = viewmats.clone()
    other[:, 2] = _rigid(9)[:, 2]
    out = prope_attention(q, k, v, PRoPETransforms.build(viewmats, Ks, (24, 32), GRID, 16))
    changed = prope_attention(q, k, v, PRoPETransforms.build(other, Ks, (24, 32), GRID, 16))
    assert (out - changed).abs().max() > 1e-2


def test_prope_model_output_is_invariant_to_a_global_rigid_transform():
    torch.manual_seed(0)
    model = WorldFMDiT(DiTConfig.tiny(camera_encoding="prope")).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(std=0.2)
    g = torch.Generator().manual_seed(1)
    x_t, render, reference = (torch.randn(2, 4, 8, 8, generator=g) for _ in range(3))
    t = torch.tensor([999, 200])
    viewmats = _rigid(4)
    viewmats[:, 1] = viewmats[:, 0]  # slots (target, target, reference)
    cams = CameraInputs(viewmats, _Ks(), (24, 32))
    moved = CameraInputs(_moved(viewmats), _Ks(), (24, 32))
    with torch.no_grad():
        out = model(x_t, t, render, reference, cameras=cams)
        torch.testing.assert_close(model(x_t, t, render, reference, cameras=moved), out, atol=1e-4, rtol=1e-4)
        plain = WorldFMDiT(DiTConfig.tiny())
        plain.load_state_dict(model.state_dict())
        assert (plain.eval()(x_t, t, render, reference) - out).abs().max() > 1e-3


def test_cameras_from_c2w_are_target_target_reference_world_to_camera():
    target = torch.eye(4)
    target[:3, 3] = torch.tensor([1.0, 2.0, 3.0])
    reference = torch.eye(4)
    reference[:3, :3] = torch.from_numpy(Rotation.from_euler("y", 30, degrees=True).as_matrix()).float()
    K = torch.tensor([[10.0, 0, 8], [0, 10.0, 8], [0, 0, 1]])
    cams = CameraInputs.from_c2w(target, reference, K, 2 * K, (16, 16))
    assert cams.viewmats.shape == (1, 3, 4, 4) and cams.Ks.shape == (1, 3, 3, 3)
    torch.testing.assert_close(cams.viewmats[0, 0, :3, 3], torch.tensor([-1.0, -2.0, -3.0]))
    torch.testing.assert_close(cams.viewmats[0, 1], cams.viewmats[0, 0])
    torch.testing.assert_close(cams.viewmats[0, 2] @ reference, torch.eye(4), atol=1e-6, rtol=0)
    torch.testing.assert_close(cams.Ks[0, 2], 2 * K)


def test_camera_inputs_reject_a_wrong_shape():
    with pytest.raises(CameraError, match="cameras.viewmats"):
        CameraInputs(torch.eye(4).repeat(1, 2, 1, 1), None, (16, 16))


def test_plucker_ray_through_a_token_centre():
    c2w = torch.eye(4)
    c2w[:3, 3] = torch.tensor([1.0, 0.0, 0.0])
    K = torch.tensor([[10.0, 0, 8], [0, 10.0, 8], [0, 0, 1]])
    cams = CameraInputs.from_c2w(c2w, c2w, K, K, (16, 16))
    rays = plucker_rays(cams.viewmats, cams.Ks, (16, 16), (4, 4))
    assert rays.shape == (1, 3 * 16, 6)
    # Token (row 0, col 2) of a 4 x 4 grid over 16 px: centre (u, v) = (10, 2).
    d = torch.tensor([(10 - 8) / 10, (2 - 8) / 10, 1.0])
    d = d / d.norm()
    o = torch.tensor([1.0, 0.0, 0.0])
    torch.testing.assert_close(rays[0, 2, 3:], d)
    torch.testing.assert_close(rays[0, 2, :3], torch.linalg.cross(o, d))


def test_plucker_rays_are_in_the_world_frame():
    c2w = torch.eye(4)
    c2w[:3, :3] = torch.from_numpy(Rotation.from_euler("y", 90, degrees=True).as_matrix()).float()
    K = torch.tensor([[10.0, 0, 7.5], [0, 10.0, 7.5], [0, 0, 1]])
    cams = CameraInputs.from_c2w(c2w, c2w, K, K, (15, 15))
    rays = plucker_rays(cams.viewmats, cams.Ks, (15, 15), (1, 1))  # one token, centre (7.5, 7.5): optical axis
    torch.testing.assert_close(rays[0, 0, 3:], c2w[:3, 2], atol=1e-6, rtol=0)
    torch.testing.assert_close(rays[0, 0, :3], torch.zeros(3), atol=1e-6, rtol=0)
