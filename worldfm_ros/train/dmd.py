"""Stage III: Distribution Matching Distillation (DMD / DMD2) into a 1- or 2-step generator.

Three copies of the Stage II network, all conditioned on the same [render | reference]:

* the **teacher** (frozen): its x0 prediction at a noised generator sample is the real score;
* the **fake score** model: trained online with the ordinary v-loss on generator samples, so its
  x0 prediction tracks the score of what the generator currently produces;
* the **generator**: the distilled sampler's network. It maps noise at t = 999 (and, with two
  steps, the re-noised first result at t = 200) to a clean image, exactly as
  ``DistilledSampler`` runs it at inference.

Generator loss = dm_weight x distribution matching + regression_weight x regression:
the DM gradient (fake_x0 - real_x0) / mean|x0 - real_x0| (DMD2's normalisation) is applied as
an MSE between the sample and a stop-gradient target ``x0 - grad``, which moves samples towards
the teacher's distribution and away from the generator's own; the regression loss is the MSE
between the generator's output and teacher DDIM samples from the same fixed noise (DMD's
paired regression, MSE instead of LPIPS in pixel space). A 2-step generator is trained on a
randomly chosen step of its own chain (backward simulation, DMD2), earlier steps run without
gradient.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from worldfm_ros.model.codec import make_codec
from worldfm_ros.model.checkpoint import load_model, save_model
from worldfm_ros.model.dit import WorldFMDiT
from worldfm_ros.model.sampler import DISTILLED_TIMESTEPS, DDIMSampler
from worldfm_ros.model.schedule import NoiseSchedule
from worldfm_ros.runtime import apply_torch_threads
from worldfm_ros.train.config import DistillConfig
from worldfm_ros.train.data import AnchorMasking, SampleSet, make_batch, sample_seed
from worldfm_ros.train.loop import MODEL_FILE, STATE_FILE, run_steps
from worldfm_ros.train.stage2 import conditions, load_training_state, save_training_state


def dm_gradient(x0: torch.Tensor, real_x0: torch.Tensor, fake_x0: torch.Tensor) -> torch.Tensor:
    """The distribution-matching gradient (B, C, h, w) for generator samples x0.

    real_x0 / fake_x0: the teacher's and the fake-score model's x0 predictions at the same noised
    x0. (fake - real) / mean|x0 - real| per sample (DMD2); zero where the two scores agree.
    """
    norm = (x0 - real_x0).abs().mean(dim=tuple(range(1, x0.dim())), keepdim=True).clamp_min(1e-6)
    return torch.nan_to_num((fake_x0 - real_x0) / norm)


def dm_loss(x0: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """0.5 MSE(x0, stop_grad(x0 - grad)): its gradient with respect to x0 is grad / x0.numel()."""
    return 0.5 * F.mse_loss(x0, (x0 - grad).detach())


@dataclass
class Conditioning:
    """Latent conditions of a batch: render and reference (B, C, h, w), coverage mask (B, 1, h, w) or None."""

    render: torch.Tensor
    reference: torch.Tensor
    mask: torch.Tensor | None

    def subset(self, idx: torch.Tensor) -> "Conditioning":
        """The conditions of the samples at ``idx`` (B',) long."""
        return Conditioning(self.render[idx], self.reference[idx], None if self.mask is None else self.mask[idx])


def predict_x0(model: torch.nn.Module, schedule: NoiseSchedule, x_t: torch.Tensor, t: int | torch.Tensor,
               cond: Conditioning) -> torch.Tensor:
    """x0 = sqrt(abar_t) x_t - sqrt(1 - abar_t) v of a v-prediction model (B, C, h, w)."""
    B, C = x_t.shape[:2]
    tt = torch.full((B,), t, dtype=torch.long) if isinstance(t, int) else t
    v = model(x_t, tt.to(x_t.device), cond.render, cond.reference, cond.mask)[:, :C]
    return schedule.x0_from_v(x_t, v, t)


def generate(model: torch.nn.Module, schedule: NoiseSchedule, timesteps: Sequence[int], noises: Sequence[torch.Tensor],
             cond: Conditioning, grad_from: int = 0, last: int | None = None) -> torch.Tensor:
    """The distilled sampler's chain up to step ``last`` (default: all), gradients only from
    step ``grad_from`` on; noises[i] (B, C, h, w) is the initial noise (i = 0) or step i's re-noising."""
    last = len(timesteps) - 1 if last is None else last
    x0 = None
    for i, t in enumerate(timesteps[: last + 1]):
        x_t = noises[0] if x0 is None else schedule.add_noise(x0, noises[i], t)
        with torch.set_grad_enabled(torch.is_grad_enabled() and i >= grad_from):
            x0 = predict_x0(model, schedule, x_t, t, cond)
    return x0


class DMDTrainer:
    """Teacher, fake score, generator and their optimisers; ``train_step`` does one round."""

    def __init__(self, cfg: DistillConfig, samples: SampleSet, teacher: WorldFMDiT) -> None:
        self.cfg = cfg
        self.samples = samples
        self.teacher = teacher.eval().requires_grad_(False)
        self.generator = copy.deepcopy(teacher).train().requires_grad_(True)
        self.fake = copy.deepcopy(teacher).train().requires_grad_(True)
        self.opt_g = torch.optim.AdamW(self.generator.parameters(), lr=cfg.lr_generator, betas=(0.0, 0.99),
                                       weight_decay=0.0)
        self.opt_f = torch.optim.AdamW(self.fake.parameters(), lr=cfg.lr_fake, betas=(0.0, 0.99), weight_decay=0.0)
        self.dit_cfg = teacher.cfg
        self.codec = make_codec(self.dit_cfg.latent_channels)
        self.schedule = NoiseSchedule()
        self.timesteps = DISTILLED_TIMESTEPS[cfg.num_steps]
        self.masking = AnchorMasking()
        self.data_order = torch.Generator().manual_seed(cfg.seed)
        self.step = 0
        self._build_regression_pairs()

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        s = self.dit_cfg.input_size
        return (self.dit_cfg.latent_channels, s, s)

    def _conditioning(self, indices: list[int], seeds: list[int], masking: AnchorMasking | None) -> Conditioning:
        batch = make_batch(self.samples, indices, seeds, masking)
        render, reference, mask = conditions(self.codec, batch, self.dit_cfg.input_size,
                                             self.dit_cfg.use_mask_channel)
        return Conditioning(render, reference, mask)

    @torch.no_grad()
    def _build_regression_pairs(self) -> None:
        """Fixed (noise, condition) -> teacher DDIM sample pairs; deterministic given the config."""
        cfg = self.cfg
        g = torch.Generator().manual_seed(cfg.seed + 1)
        n = min(cfg.regression_pairs, len(self.samples))
        self.pair_indices = torch.randperm(len(self.samples), generator=g)[:n].tolist()
        self.pair_noises = torch.randn((len(self.timesteps), n, *self.latent_shape), generator=g)
        self.pair_cond = self._conditioning(self.pair_indices, [0] * n, None)
        ddim = DDIMSampler(cfg.teacher_ddim_steps, self.schedule)
        outs = []
        for start in range(0, n, 16):
            idx = torch.arange(start, min(n, start + 16))
            cond = self.pair_cond.subset(idx)

            def denoise(x_t: torch.Tensor, t: int, cond: Conditioning = cond) -> torch.Tensor:
                tt = torch.full((x_t.shape[0],), t, dtype=torch.long)
                return self.teacher(x_t, tt, cond.render, cond.reference, cond.mask)

            outs.append(ddim.sample(denoise, [self.pair_noises[0, idx]]))
        self.pair_targets = torch.cat(outs)  # (n, C, h, w)

    def train_step(self) -> dict[str, float]:
        """One round: generator update (DM + regression), then ``fake_updates`` fake-score updates."""
        cfg, schedule = self.cfg, self.schedule
        indices = torch.randint(len(self.samples), (cfg.batch_size,), generator=self.data_order).tolist()
        seeds = [sample_seed(cfg.seed, self.step, p) for p in range(cfg.batch_size)]
        cond = self._conditioning(indices, seeds, self.masking)
        B = cfg.batch_size
        g = torch.Generator().manual_seed(sample_seed(cfg.seed, self.step, B))  # the step's shared draws
        noises = torch.randn((len(self.timesteps), B, *self.latent_shape), generator=g)
        last = int(torch.randint(len(self.timesteps), (1,), generator=g))

        # Generator: distribution matching at a random timestep, plus paired regression.
        self.generator.train()
        x0 = generate(self.generator, schedule, self.timesteps, noises, cond, grad_from=last, last=last)
        t = torch.randint(cfg.dm_t_min, cfg.dm_t_max + 1, (B,), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        with torch.no_grad():
            x_t = schedule.add_noise(x0.detach(), eps, t)
            real_x0 = predict_x0(self.teacher, schedule, x_t, t, cond)
            fake_x0 = predict_x0(self.fake, schedule, x_t, t, cond)
            grad = dm_gradient(x0.detach(), real_x0, fake_x0)
        loss_dm = dm_loss(x0, grad)
        pick = torch.randint(len(self.pair_indices), (max(1, B // 2),), generator=g)
        pred = generate(self.generator, schedule, self.timesteps, self.pair_noises[:, pick],
                        self.pair_cond.subset(pick))
        loss_reg = F.mse_loss(pred, self.pair_targets[pick])
        loss_g = cfg.dm_weight * loss_dm + cfg.regression_weight * loss_reg
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        torch.nn.utils.clip_grad_norm_(self.generator.parameters(), cfg.grad_clip)
        self.opt_g.step()

        # Fake score: the ordinary v-loss on the generator's (detached) samples.
        samples = x0.detach()
        loss_f = torch.zeros(())
        for _ in range(cfg.fake_updates):
            t = torch.randint(0, schedule.num_steps, (B,), generator=g)
            eps = torch.randn(samples.shape, generator=g)
            x_t = schedule.add_noise(samples, eps, t)
            v = self.fake(x_t, t, cond.render, cond.reference, cond.mask)[:, : samples.shape[1]]
            loss_f = F.mse_loss(v, schedule.v_target(samples, eps, t))
            self.opt_f.zero_grad(set_to_none=True)
            loss_f.backward()
            torch.nn.utils.clip_grad_norm_(self.fake.parameters(), cfg.grad_clip)
            self.opt_f.step()
        self.step += 1
        return {"dm": float(loss_dm.detach()), "regression": float(loss_reg.detach()), "fake": float(loss_f.detach())}

    def state_dict(self) -> dict:
        """Everything a resumed run needs: generator, fake score, both optimisers, step, data-order RNG."""
        return {"generator": self.generator.state_dict(), "fake": self.fake.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_f": self.opt_f.state_dict(), "step": self.step,
                "data_order": self.data_order.get_state(), "config": json.dumps(asdict(self.cfg))}

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict`` (the regression pairs are rebuilt from the config, not stored)."""
        self.generator.load_state_dict(state["generator"])
        self.fake.load_state_dict(state["fake"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_f.load_state_dict(state["opt_f"])
        self.step = int(state["step"])
        self.data_order.set_state(state["data_order"])

    def export(self, path: str | Path) -> Path:
        """The generator as a model file; run it with the distilled sampler of ``num_steps`` steps."""
        meta = {"stage": "III", "steps": self.step, "num_steps": self.cfg.num_steps,
                "timesteps": list(self.timesteps), "teacher": Path(self.cfg.teacher).name,
                "image_size": self.samples.image_size, "data": asdict(self.cfg.data)}
        return save_model(self.generator, path, meta)


def distill(cfg: DistillConfig, samples: SampleSet | None = None, stop_at: int | None = None,
            progress: bool = True) -> Path:
    """Run (or resume, from ``out_dir/state.pt``) DMD distillation; returns the exported model path.

    Single process. samples: None = ``prepare_samples(cfg.data)``; stop_at: see ``train_stage2``.
    """
    from worldfm_ros.train.dataset import prepare_samples

    apply_torch_threads(cfg.threads, "threads")
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    teacher = load_model(cfg.teacher, "cpu", torch.float32)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    samples = samples if samples is not None else prepare_samples(cfg.data, progress)
    trainer = DMDTrainer(cfg, samples, teacher)
    if (out / STATE_FILE).is_file():
        trainer.load_state_dict(load_training_state(out / STATE_FILE))
    end = cfg.steps if stop_at is None else min(cfg.steps, stop_at)
    run_steps(trainer, end, out, log_every=cfg.log_every, checkpoint_every=cfg.checkpoint_every,
              save=lambda: save_training_state(trainer.state_dict(), out / STATE_FILE),
              desc=f"DMD {cfg.num_steps}-step", progress=progress)
    path = out / MODEL_FILE
    if trainer.step >= cfg.steps:
        trainer.export(path)
    return path
