"""Samplers for the v-prediction frame model, and the seeded noise they consume.

A sampler is arithmetic around a ``denoise(x_t, t) -> o`` callable: x_t is (B, C, h, w) float32,
t an integer timestep, and o (B, >= C, h, w) the network output whose first C channels are the
v-prediction (the released model also returns C variance channels, which are ignored). Any
callable works, which is how the tests check the arithmetic without a network.

* ``DistilledSampler``: the released few-step sampler. z ~ N(0, I) at t = 999,
  x0 = sqrt(abar_t) * x_t - sqrt(1 - abar_t) * o; each later timestep re-noises x0 to t with
  fresh noise and applies the same formula. Timesteps (999,) for the 1-step checkpoint,
  (999, 200) for the 2-step one.
* ``DDIMSampler``: deterministic DDIM (eta = 0) for multi-step teachers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from worldfm_ros.errors import ConfigError
from worldfm_ros.model.schedule import NoiseSchedule

Denoise = Callable[[torch.Tensor, int], torch.Tensor]

# Timesteps of the released distilled checkpoints, by number of steps.
DISTILLED_TIMESTEPS: dict[int, tuple[int, ...]] = {1: (999,), 2: (999, 200)}


class NoiseSource:
    """Hands out one CPU ``torch.Generator`` per frame, so a seed gives the same noise on every device.

    seed: base seed. reuse: if True every frame starts from the same generator state (the
    same initial and re-noising noise frame after frame, which reduces flicker); if False
    one generator seeded once advances, so each frame draws fresh but reproducible noise.
    A per-request seed (``frame(seed=...)``) always gives a generator seeded with it.
    """

    def __init__(self, seed: int = 0, reuse: bool = False) -> None:
        self.seed = int(seed)
        self.reuse = bool(reuse)
        self._stream = torch.Generator().manual_seed(self.seed)

    def frame(self, seed: int | None = None) -> torch.Generator:
        """The generator to draw all of one frame's noise from."""
        if seed is not None:
            return torch.Generator().manual_seed(int(seed))
        if self.reuse:
            return torch.Generator().manual_seed(self.seed)
        return self._stream


def draw_noise(generator: torch.Generator, shape: Sequence[int], count: int) -> list[torch.Tensor]:
    """``count`` standard-normal float32 CPU tensors of ``shape``, drawn in order from ``generator``."""
    return [torch.randn(tuple(shape), generator=generator, dtype=torch.float32) for _ in range(count)]


class DistilledSampler:
    """Few-step sampler of the DMD-distilled checkpoints (v-prediction, re-noising between steps).

    timesteps: strictly decreasing integers in [0, T), e.g. (999,) or (999, 200).
    """

    def __init__(self, timesteps: Sequence[int] = (999, 200), schedule: NoiseSchedule | None = None) -> None:
        self.schedule = schedule or NoiseSchedule()
        self.timesteps = tuple(self.schedule.check_timestep(t) for t in timesteps)
        if not self.timesteps:
            raise ConfigError("sampler timesteps: expected at least one timestep, got none")
        if any(a <= b for a, b in zip(self.timesteps, self.timesteps[1:])):
            raise ConfigError(f"sampler timesteps: expected strictly decreasing values, got {list(timesteps)}")

    @property
    def num_noises(self) -> int:
        """How many noise tensors ``sample`` consumes: the initial one plus one per re-noising."""
        return len(self.timesteps)

    def sample(self, denoise: Denoise, noises: Sequence[torch.Tensor]) -> torch.Tensor:
        """Clean latent x0 (B, C, h, w) float32 from ``num_noises`` noise tensors of that shape."""
        if len(noises) != self.num_noises:
            raise ConfigError(f"sampler: expected {self.num_noises} noise tensors, got {len(noises)}")
        x0 = None
        for i, t in enumerate(self.timesteps):
            noise = noises[i].float()
            x_t = noise if x0 is None else self.schedule.add_noise(x0, noise, t)  # (B, C, h, w)
            o = denoise(x_t, t)[:, : x_t.shape[1]].float()  # v-prediction channels only
            x0 = self.schedule.x0_from_v(x_t, o, t)
        return x0


def ddim_timesteps(num_steps: int, num_train_steps: int = 1000) -> tuple[int, ...]:
    """Evenly spaced decreasing timesteps starting at T - 1, e.g. 4 -> (999, 749, 500, 250)."""
    if num_steps < 1 or num_steps > num_train_steps:
        raise ConfigError(f"DDIM steps: expected 1..{num_train_steps}, got {num_steps}")
    grid = torch.linspace(num_train_steps - 1, 0, num_steps + 1, dtype=torch.float64)[:-1]
    return tuple(int(t) for t in grid.round())


class DDIMSampler:
    """Deterministic DDIM (eta = 0) for a v-prediction model; the last step returns x0.

    num_steps: number of network calls, timesteps from ``ddim_timesteps``.
    """

    def __init__(self, num_steps: int = 14, schedule: NoiseSchedule | None = None) -> None:
        self.schedule = schedule or NoiseSchedule()
        self.timesteps = ddim_timesteps(num_steps, self.schedule.num_steps)

    num_noises = 1

    def sample(self, denoise: Denoise, noises: Sequence[torch.Tensor]) -> torch.Tensor:
        """Clean latent x0 (B, C, h, w) float32 from one noise tensor of that shape."""
        if len(noises) != 1:
            raise ConfigError(f"sampler: expected 1 noise tensor, got {len(noises)}")
        x_t = noises[0].float()
        x0 = x_t
        for i, t in enumerate(self.timesteps):
            o = denoise(x_t, t)[:, : x_t.shape[1]].float()
            x0 = self.schedule.x0_from_v(x_t, o, t)
            if i + 1 < len(self.timesteps):
                eps = self.schedule.eps_from_v(x_t, o, t)
                x_t = self.schedule.add_noise(x0, eps, self.timesteps[i + 1])
        return x0


Sampler = DistilledSampler | DDIMSampler


def make_sampler(kind: str = "distilled", steps: int = 2, timesteps: Sequence[int] | None = None) -> Sampler:
    """Sampler by name: 'distilled' (timesteps, or the released ones for ``steps`` 1/2) or 'ddim'."""
    if kind == "distilled":
        if timesteps is None:
            if steps not in DISTILLED_TIMESTEPS:
                raise ConfigError(f"sampler steps: distilled checkpoints use 1 or 2 steps, got {steps} "
                                  "(give explicit timesteps for other schedules)")
            timesteps = DISTILLED_TIMESTEPS[steps]
        return DistilledSampler(timesteps)
    if kind == "ddim":
        if timesteps is not None:
            raise ConfigError("sampler timesteps: only the 'distilled' sampler takes explicit timesteps")
        return DDIMSampler(steps)
    raise ConfigError(f"sampler: expected 'distilled' or 'ddim', got {kind!r}")
