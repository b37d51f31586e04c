"""Stage II: conditional training of the frame model on multi-view samples (v-prediction).

Per sample: the target is encoded (pixel codec), noised at a timestep drawn biased to high
noise, and the network predicts v on the target slot from [noisy target | anchor render |
reference]; the loss is the MSE to the true v. Progressive condition injection: before
``reference_only_until`` x steps every render is emptied, so the network first learns to use
the reference alone; random anchor masking (patches, sometimes the whole render) from
``masking_from`` x steps on teaches it to fill what the anchor misses. From ``focus_from`` x
steps on, a share ``focus_prob`` of the samples is trained at the few-step sampler's own
timesteps (999 and 200), which a small model otherwise sees too rarely to be good at.

Every random draw of a step comes from seeds that depend only on (seed, step, position in
the global batch) plus one data-order generator saved in the checkpoint, so a run resumed from
``state.pt`` continues bit for bit, and N DDP processes compute the update of one process.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

from worldfm_ros.model.codec import make_codec
from worldfm_ros.errors import CheckpointError
from worldfm_ros.model.checkpoint import save_model
from worldfm_ros.model.codec import Codec, PixelCodec
from worldfm_ros.model.dit import WorldFMDiT
from worldfm_ros.model.schedule import NoiseSchedule
from worldfm_ros.runtime import apply_torch_threads
from worldfm_ros.train.config import Stage2Config
from worldfm_ros.train.data import AnchorMasking, Batch, SampleSet, latent_mask, make_batch, sample_seed
from worldfm_ros.train.ddp import DistributedContext, cleanup_distributed, setup_distributed
from worldfm_ros.train.loop import MODEL_FILE, STATE_FILE, run_steps



def draw_timestep_and_noise(seed: int, shape: tuple[int, ...], sampling: str = "logit_normal",
                            logit_mean: float = 0.5, logit_std: float = 1.0, num_steps: int = 1000,
                            focus: Sequence[int] = (), focus_prob: float = 0.0) -> tuple[int, torch.Tensor]:
    """One sample's timestep in [0, num_steps) and float32 noise of ``shape``, from ``seed``.

    logit_normal: t = floor(T sigmoid(logit_mean + logit_std z)), z ~ N(0, 1); logit_mean > 0
    moves the mass to high noise (the released sampler starts at t = 999). uniform: t ~ U{0..T-1}.
    focus / focus_prob: with probability focus_prob, t is instead one of ``focus`` (uniformly),
    e.g. the few-step sampler's (999, 200). Drawn after the rest, so focus_prob = 0 gives the
    same t and noise as no focus at all.
    """
    g = torch.Generator().manual_seed(seed)
    if sampling == "uniform":
        t = int(torch.randint(0, num_steps, (1,), generator=g))
    else:
        u = torch.sigmoid(logit_mean + logit_std * torch.randn(1, generator=g, dtype=torch.float64))
        t = min(num_steps - 1, int(u * num_steps))
    noise = torch.randn(shape, generator=g)
    if focus and focus_prob > 0 and float(torch.rand(1, generator=g)) < focus_prob:
        t = int(focus[int(torch.randint(len(focus), (1,), generator=g))])
    return t, noise


def conditions(codec: Codec, batch: Batch, latent_size: int,
               use_mask: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(render latent, reference latent, coverage mask or None) of a batch, as the pipeline builds them."""
    mask = latent_mask(batch.valid, latent_size) if use_mask else None
    return codec.encode(batch.render), codec.encode(batch.reference), mask


def clean_latent(codec: Codec, batch: Batch, residual: str = "none", residual_scale: float = 1.0) -> torch.Tensor:
    """What the network learns to generate, (B, C, h, w): the target's latent, or for residual
    models (``DiTConfig.residual == "filled_render"``) residual_scale x its difference to the
    filled render's."""
    x0 = codec.encode(batch.target)
    if residual == "filled_render":
        x0 = residual_scale * (x0 - codec.encode(batch.filled))
    return x0


def hole_weights(codec: Codec, valid: torch.Tensor, hole_weight: float, latent_shape: torch.Size) -> torch.Tensor:
    """Per-element loss weights (B, C, h, w): 1 on covered pixels, ``hole_weight`` on holes.

    valid: (B, 1, S, S) render coverage in {0, 1}. A pixel codec maps each latent element to one
    pixel, so the weights are exact; other codecs take the hole fraction of each latent cell.
    """
    holes = 1.0 - valid
    if isinstance(codec, PixelCodec):
        cell = F.pixel_unshuffle(holes.expand(-1, 3, -1, -1), codec.downsample)
    else:
        cell = F.adaptive_avg_pool2d(holes, latent_shape[-2:]).expand(latent_shape)
    return 1.0 + (hole_weight - 1.0) * cell


def v_loss(model: torch.nn.Module, codec: Codec, schedule: NoiseSchedule, batch: Batch, t: torch.Tensor,
           noise: torch.Tensor, use_mask: bool, residual: str = "none", hole_weight: float = 1.0,
           residual_scale: float = 1.0) -> torch.Tensor:
    """Mean squared error of the v-prediction on the target slot (scalar).

    t: (B,) long timesteps; noise: (B, C, h, w) like the target latent. ``model`` may be wrapped
    in DistributedDataParallel; the first C output channels are the prediction. residual: see
    ``clean_latent``. hole_weight: see ``hole_weights`` (1 = plain mean).
    """
    x0 = clean_latent(codec, batch, residual, residual_scale)  # (B, C, h, w)
    z_render, z_ref, mask = conditions(codec, batch, x0.shape[-1], use_mask)
    x_t = schedule.add_noise(x0, noise, t)  # (B, C, h, w)
    out = model(x_t, t, z_render, z_ref, mask)[:, : x0.shape[1]]  # (B, C, h, w)
    if hole_weight == 1.0:
        return F.mse_loss(out, schedule.v_target(x0, noise, t))
    weights = hole_weights(codec, batch.valid, hole_weight, x0.shape)
    return (weights * (out - schedule.v_target(x0, noise, t)).square()).mean()


def learning_rate(step: int, total: int, lr: float, lr_min: float, warmup: int) -> float:
    """Linear warm-up to lr over ``warmup`` steps, then cosine decay to lr_min at ``total``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * progress))


class Stage2Trainer:
    """Model, EMA, optimiser and data order of one Stage II run; ``train_step`` does one update.

    samples: the training set; ctx: the process's distributed context (single process if None).
    """

    def __init__(self, cfg: Stage2Config, samples: SampleSet, ctx: DistributedContext | None = None) -> None:
        self.cfg = cfg
        self.samples = samples
        self.ctx = ctx or DistributedContext()
        self.dit_cfg = cfg.model.dit_config(samples.image_size)
        torch.manual_seed(cfg.seed)  # the same initial weights in every process
        self.model = WorldFMDiT(self.dit_cfg).to(self.ctx.device)
        if cfg.init:
            self.model.load_state_dict(initial_weights(cfg.init, self.dit_cfg))
        self.ema = copy.deepcopy(self.model).requires_grad_(False).eval()
        self.ddp_model = self.ctx.wrap(self.model)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, betas=(0.9, 0.99),
                                           weight_decay=cfg.weight_decay)
        self.codec = make_codec(self.dit_cfg.latent_channels)
        self.schedule = NoiseSchedule()
        self.masking = AnchorMasking(cfg.mask_patch_prob, cfg.mask_drop_prob, cfg.mask_max_patches)
        self.data_order = torch.Generator().manual_seed(cfg.seed)
        self.step = 0

    def global_indices(self) -> list[int]:
        """The sample indices of this step's global batch (advances the data-order generator)."""
        return torch.randint(len(self.samples), (self.cfg.batch_size,), generator=self.data_order).tolist()

    def local_batch(self, step: int, indices: list[int]) -> tuple[Batch, torch.Tensor, torch.Tensor]:
        """This process's share of the global batch ``indices``: (batch, t (b,), noise (b, C, h, w))."""
        cfg = self.cfg
        positions = self.ctx.shard(list(range(len(indices))))
        seeds = [sample_seed(cfg.seed, step, p) for p in positions]
        empty = step < cfg.reference_only_until * cfg.steps
        masking = self.masking if step >= cfg.masking_from * cfg.steps else None
        batch = make_batch(self.samples, [indices[p] for p in positions], seeds, masking, empty)
        latent = self.dit_cfg.input_size
        shape = (self.dit_cfg.latent_channels, latent, latent)
        focus_prob = cfg.focus_prob if step >= cfg.focus_from * cfg.steps else 0.0
        # seed + 1: the noise stream never shares its seed with the sample's masking draws
        draws = [draw_timestep_and_noise(s + 1, shape, cfg.timestep_sampling, cfg.logit_mean, cfg.logit_std,
                                         focus=cfg.focus_timesteps, focus_prob=focus_prob) for s in seeds]
        t = torch.tensor([d[0] for d in draws], dtype=torch.long)
        noise = torch.stack([d[1] for d in draws])
        return batch.to(self.ctx.device), t.to(self.ctx.device), noise.to(self.ctx.device)

    def train_step(self) -> float:
        """One optimiser update on the next global batch; returns this process's loss."""
        cfg = self.cfg
        batch, t, noise = self.local_batch(self.step, self.global_indices())
        lr = learning_rate(self.step, cfg.steps, cfg.lr, cfg.lr_min, cfg.warmup_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        loss = v_loss(self.ddp_model, self.codec, self.schedule, batch, t, noise, self.dit_cfg.use_mask_channel,
                      self.dit_cfg.residual, cfg.hole_weight, self.dit_cfg.residual_scale)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.update_ema()
        self.step += 1
        return float(loss.detach())

    @torch.no_grad()
    def update_ema(self) -> None:
        """ema = d ema + (1 - d) params, with d ramping up to ema_decay over the first steps."""
        decay = min(self.cfg.ema_decay, (1 + self.step) / (10 + self.step))
        for e, p in zip(self.ema.parameters(), self.model.parameters()):
            e.lerp_(p, 1.0 - decay)

    def state_dict(self) -> dict:
        """Everything a resumed run needs: weights, EMA, optimiser, step, data-order RNG, config."""
        return {"model": self.model.state_dict(), "ema": self.ema.state_dict(),
                "optimizer": self.optimizer.state_dict(), "step": self.step,
                "data_order": self.data_order.get_state(), "config": json.dumps(asdict(self.cfg))}

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict``."""
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.data_order.set_state(state["data_order"])

    def save_checkpoint(self, path: str | Path) -> Path:
        """Write ``state_dict`` atomically (a crash mid-write leaves the previous checkpoint)."""
        return save_training_state(self.state_dict(), path)

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore a checkpoint written by ``save_checkpoint``."""
        self.load_state_dict(load_training_state(path))

    def export(self, path: str | Path) -> Path:
        """The EMA weights as a model file that ``TorchBackend(model_path=...)`` runs."""
        meta = {"stage": "II", "steps": self.step, "image_size": self.samples.image_size,
                "pixel_factor": self.cfg.model.pixel_factor, "training_samples": len(self.samples),
                "data": asdict(self.cfg.data)}
        return save_model(self.ema, path, meta)


def initial_weights(path: str | Path, dit_cfg) -> dict:
    """The state dict of model file ``path`` to fine-tune from; CheckpointError naming the file
    when its network differs from ``dit_cfg``."""
    from worldfm_ros.model.checkpoint import load_model

    model = load_model(path, dtype=torch.float32)
    if model.cfg != dit_cfg:
        raise CheckpointError(f"{path}: init model is {model.cfg}, the config trains {dit_cfg}")
    return model.state_dict()


def save_training_state(state: dict, path: str | Path) -> Path:
    """torch.save to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return path


def load_training_state(path: str | Path) -> dict:
    """A training state written by ``save_training_state``, read with ``weights_only=True``."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: training state not found") from None
    except Exception as exc:  # torch raises several types for a truncated or foreign file
        raise CheckpointError(f"{path}: not a readable training state ({str(exc).splitlines()[0]})") from None


def train_stage2(cfg: Stage2Config, samples: SampleSet | None = None, stop_at: int | None = None,
                 progress: bool = True) -> Path:
    """Run (or resume, from ``out_dir/state.pt``) Stage II; returns the exported model path.

    samples: the training set (None = ``prepare_samples(cfg.data)``). stop_at: stop after this
    step (checkpointed, not exported), e.g. to split a run across jobs; None trains to
    ``cfg.steps`` and exports ``out_dir/model.safetensors``.
    """
    from worldfm_ros.train.dataset import prepare_samples

    apply_torch_threads(cfg.threads, "threads")
    ctx = setup_distributed(cfg.device)
    out = Path(cfg.out_dir)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
    try:
        if samples is None:
            if ctx.is_main:
                samples = prepare_samples(cfg.data, progress)
            ctx.barrier()
            if samples is None:
                samples = prepare_samples(cfg.data)
        trainer = Stage2Trainer(cfg, samples, ctx)
        if (out / STATE_FILE).is_file():
            trainer.load_checkpoint(out / STATE_FILE)
        end = cfg.steps if stop_at is None else min(cfg.steps, stop_at)
        run_steps(trainer, end, out, log_every=cfg.log_every, checkpoint_every=cfg.checkpoint_every,
                  save=lambda: trainer.save_checkpoint(out / STATE_FILE), desc="stage II", progress=progress,
                  is_main=ctx.is_main, reduce=ctx.mean, extra=lambda: {"lr": trainer.optimizer.param_groups[0]["lr"]})
        model_path = out / MODEL_FILE
        if ctx.is_main and trainer.step >= cfg.steps:
            trainer.export(model_path)
        ctx.barrier()
        return model_path
    finally:
        cleanup_distributed(ctx)
