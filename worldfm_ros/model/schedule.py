"""The discrete variance-preserving noise schedule of the frame model (linear betas, 1000 steps).

x_t = sqrt(abar_t) * x0 + sqrt(1 - abar_t) * eps, with t an integer in [0, T). The network
predicts v = sqrt(abar_t) * eps - sqrt(1 - abar_t) * x0. Pure arithmetic, no network.
"""

from __future__ import annotations

import torch

from worldfm_ros.errors import ConfigError


class NoiseSchedule:
    """Linear-beta DDPM schedule; ``alphas_cumprod`` is (T,) float32 on the CPU.

    The cumulative product is taken in float64 and only then cast to float32, so that
    abar_999 = 4.0358e-5 and abar_200 = 0.65635 as in the released model.
    """

    def __init__(self, num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> None:
        if num_steps < 2:
            raise ConfigError(f"NoiseSchedule num_steps: expected >= 2, got {num_steps}")
        if not 0.0 < beta_start <= beta_end < 1.0:
            raise ConfigError(f"NoiseSchedule betas: expected 0 < beta_start <= beta_end < 1, "
                              f"got {beta_start}, {beta_end}")
        self.num_steps = num_steps
        betas = torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0).to(torch.float32)  # (T,)

    def check_timestep(self, t: int) -> int:
        """Return ``t`` as int, or ConfigError when it is outside [0, T)."""
        if not 0 <= int(t) < self.num_steps:
            raise ConfigError(f"timestep: expected an integer in [0, {self.num_steps}), got {t}")
        return int(t)

    def coefficients(self, t: int) -> tuple[float, float]:
        """(sqrt(abar_t), sqrt(1 - abar_t)) as Python floats computed in float32."""
        abar = self.alphas_cumprod[self.check_timestep(t)]
        return float(abar.sqrt()), float((1.0 - abar).sqrt())

    def _coef(self, t: int | torch.Tensor, like: torch.Tensor) -> tuple:
        """Coefficients for an int t (floats) or a (B,) long tensor of t (each (B, 1, ..., 1))."""
        if isinstance(t, torch.Tensor):
            if t.min() < 0 or t.max() >= self.num_steps:
                raise ConfigError(f"timestep: expected integers in [0, {self.num_steps}), "
                                  f"got range [{int(t.min())}, {int(t.max())}]")
            abar = self.alphas_cumprod[t.long().cpu()].to(like.device)
            abar = abar.view(-1, *([1] * (like.dim() - 1))).to(like.dtype)
            return abar.sqrt(), (1.0 - abar).sqrt()
        return self.coefficients(t)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """x_t from clean latents x0 (B, C, h, w) and Gaussian noise of the same shape."""
        a, s = self._coef(t, x0)
        return a * x0 + s * noise

    def x0_from_v(self, x_t: torch.Tensor, v: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """Clean-latent estimate x0 = sqrt(abar_t) * x_t - sqrt(1 - abar_t) * v."""
        a, s = self._coef(t, x_t)
        return a * x_t - s * v

    def eps_from_v(self, x_t: torch.Tensor, v: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """Noise estimate eps = sqrt(1 - abar_t) * x_t + sqrt(abar_t) * v."""
        a, s = self._coef(t, x_t)
        return s * x_t + a * v

    def v_target(self, x0: torch.Tensor, noise: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """Training target v = sqrt(abar_t) * noise - sqrt(1 - abar_t) * x0."""
        a, s = self._coef(t, x0)
        return a * noise - s * x0
