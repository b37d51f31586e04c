"""Noise schedule, distilled and DDIM samplers, seeded noise: arithmetic checked by hand."""

import math

import pytest
import torch

from worldfm_ros.errors import ConfigError
from worldfm_ros.model.sampler import (
    DDIMSampler,
    DistilledSampler,
    NoiseSource,
    ddim_timesteps,
    draw_noise,
    make_sampler,
)
from worldfm_ros.model.schedule import NoiseSchedule

SHAPE = (1, 4, 3, 5)


def _hand_abar(t: int) -> float:
    prod = 1.0
    for s in range(t + 1):
        prod *= 1.0 - (1e-4 + (0.02 - 1e-4) * s / 999)
    return prod


def test_alphas_cumprod_matches_released_values():
    abar = NoiseSchedule().alphas_cumprod
    assert abar.dtype == torch.float32 and abar.shape == (1000,)
    assert abar[999].item() == pytest.approx(4.0358e-5, rel=1e-4)
    assert abar[200].item() == pytest.approx(0.65635, rel=1e-5)


def test_alphas_cumprod_is_the_product_of_linear_betas():
    abar = NoiseSchedule().alphas_cumprod
    for t in (0, 1, 500, 999):
        assert abar[t].item() == pytest.approx(_hand_abar(t), rel=1e-6)


def test_v_target_and_x0_from_v_invert_each_other():
    sched = NoiseSchedule()
    x0, noise = torch.randn(SHAPE), torch.randn(SHAPE)
    t = torch.tensor([321])
    x_t = sched.add_noise(x0, noise, t)
    v = sched.v_target(x0, noise, t)
    assert torch.allclose(sched.x0_from_v(x_t, v, t), x0, atol=1e-5)
    assert torch.allclose(sched.eps_from_v(x_t, v, t), noise, atol=1e-5)


def test_one_step_sampler_applies_the_v_formula_to_a_constant_model():
    # The "model" returns o = 0.5 in the first 4 channels and junk in the 4 variance channels.
    def model(x_t, t):
        return torch.cat([torch.full_like(x_t, 0.5), torch.full_like(x_t, 99.0)], dim=1)

    z = torch.full(SHAPE, 2.0)
    x0 = DistilledSampler((999,)).sample(model, [z])
    a, s = math.sqrt(_hand_abar(999)), math.sqrt(1.0 - _hand_abar(999))
    assert torch.allclose(x0, torch.full(SHAPE, a * 2.0 - s * 0.5), atol=1e-6)


def test_two_step_sampler_renoises_to_t200_with_the_second_noise():
    seen = []

    def model(x_t, t):
        seen.append((t, x_t.clone()))
        return torch.full_like(x_t, 0.25 if t == 999 else -1.0)

    z, eps = torch.full(SHAPE, 1.0), torch.full(SHAPE, -3.0)
    x0 = DistilledSampler((999, 200)).sample(model, [z, eps])

    a1, s1 = math.sqrt(_hand_abar(999)), math.sqrt(1.0 - _hand_abar(999))
    a2, s2 = math.sqrt(_hand_abar(200)), math.sqrt(1.0 - _hand_abar(200))
    x0_first = a1 * 1.0 - s1 * 0.25
    x_200 = a2 * x0_first + s2 * -3.0
    expected = a2 * x_200 - s2 * -1.0
    assert [t for t, _ in seen] == [999, 200]
    assert torch.allclose(seen[1][1], torch.full(SHAPE, x_200), atol=1e-6)
    assert torch.allclose(x0, torch.full(SHAPE, expected), atol=1e-6)


def test_distilled_sampler_rejects_increasing_timesteps():
    with pytest.raises(ConfigError, match="decreasing"):
        DistilledSampler((200, 999))


def test_distilled_sampler_needs_one_noise_per_step():
    with pytest.raises(ConfigError, match="2 noise"):
        DistilledSampler((999, 200)).sample(lambda x, t: x, [torch.zeros(SHAPE)])


def test_ddim_timesteps_are_evenly_spaced_from_999():
    assert ddim_timesteps(1) == (999,)
    assert ddim_timesteps(4) == (999, 749, 500, 250)


def test_ddim_recovers_x0_exactly_from_an_oracle_v_model():
    # A model that knows x0 returns the exact v for any x_t; DDIM then stays on the x0 trajectory.
    sched = NoiseSchedule()
    x0_true = torch.randn(SHAPE)

    def oracle(x_t, t):
        a, s = sched.coefficients(t)
        eps = (x_t - a * x0_true) / s
        return a * eps - s * x0_true

    x0 = DDIMSampler(5).sample(oracle, [torch.randn(SHAPE)])
    assert torch.allclose(x0, x0_true, atol=1e-4)


def test_ddim_step_matches_hand_computation():
    calls = []

    def model(x_t, t):
        calls.append(x_t.clone())
        return torch.full_like(x_t, 0.3)

    z = torch.full(SHAPE, 1.5)
    DDIMSampler(2).sample(model, [z])
    a, s = math.sqrt(_hand_abar(999)), math.sqrt(1 - _hand_abar(999))
    x0, eps = a * 1.5 - s * 0.3, s * 1.5 + a * 0.3
    a_next, s_next = math.sqrt(_hand_abar(500)), math.sqrt(1 - _hand_abar(500))
    assert torch.allclose(calls[1], torch.full(SHAPE, a_next * x0 + s_next * eps), atol=1e-5)


def test_make_sampler_uses_released_timesteps_for_one_and_two_steps():
    assert make_sampler("distilled", steps=1).timesteps == (999,)
    assert make_sampler("distilled", steps=2).timesteps == (999, 200)
    assert make_sampler("distilled", timesteps=[999, 500, 100]).timesteps == (999, 500, 100)
    assert make_sampler("ddim", steps=3).timesteps == (999, 666, 333)


def test_make_sampler_rejects_three_distilled_steps_without_timesteps():
    with pytest.raises(ConfigError, match="1 or 2"):
        make_sampler("distilled", steps=3)


def test_same_seed_gives_same_noise():
    a = draw_noise(NoiseSource().frame(seed=7), SHAPE, 2)
    b = draw_noise(NoiseSource(seed=123).frame(seed=7), SHAPE, 2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], a[1])


def test_fresh_noise_source_draws_new_noise_each_frame_reproducibly():
    src1, src2 = NoiseSource(seed=3), NoiseSource(seed=3)
    f1 = [draw_noise(src1.frame(), SHAPE, 1)[0] for _ in range(2)]
    f2 = [draw_noise(src2.frame(), SHAPE, 1)[0] for _ in range(2)]
    assert not torch.equal(f1[0], f1[1])
    assert torch.equal(f1[0], f2[0]) and torch.equal(f1[1], f2[1])


def test_reuse_noise_source_repeats_the_same_noise_every_frame():
    src = NoiseSource(seed=3, reuse=True)
    first = draw_noise(src.frame(), SHAPE, 2)
    second = draw_noise(src.frame(), SHAPE, 2)
    assert all(torch.equal(x, y) for x, y in zip(first, second))


def test_sampling_is_deterministic_under_a_fixed_seed():
    weight = torch.randn(8, 4, 1, 1)

    def model(x_t, t):
        return torch.nn.functional.conv2d(x_t, weight) * (t / 1000.0)

    sampler = DistilledSampler((999, 200))
    runs = [sampler.sample(model, draw_noise(NoiseSource().frame(seed=11), SHAPE, 2)) for _ in range(2)]
    assert torch.equal(runs[0], runs[1])
