"""Specification of data-parallel training: 2 gloo processes compute the single-process gradient."""

from __future__ import annotations

import os
import socket

import numpy as np
import torch
import torch.multiprocessing as mp

from worldfm_ros.train.config import ModelSpec, Stage2Config
from worldfm_ros.train.data import SampleSet, build_samples
from worldfm_ros.train.ddp import cleanup_distributed, setup_distributed
from worldfm_ros.train.stage2 import Stage2Trainer, v_loss
from worldfm_ros.train.synthetic import synthetic_clip

CFG = Stage2Config(model=ModelSpec(size="tiny", pixel_factor=4, patch_size=1), steps=10, batch_size=4,
                   reference_only_until=0.0, masking_from=0.0, threads=1)
STEP = 3


def gradients(trainer: Stage2Trainer) -> dict[str, torch.Tensor]:
    """Gradient of this step's loss (global batch of step STEP) on this process's model, and the
    number of samples this process saw (under "local_batch")."""
    batch, t, noise = trainer.local_batch(STEP, list(range(CFG.batch_size)))
    loss = v_loss(trainer.ddp_model, trainer.codec, trainer.schedule, batch, t, noise, True)
    loss.backward()
    grads = {name: p.grad.clone() for name, p in trainer.model.named_parameters()}
    return {**grads, "local_batch": torch.tensor(len(t))}


def _worker(rank: int, world_size: int, port: int, data_path: str, out_path: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world_size))
    torch.set_num_threads(1)
    ctx = setup_distributed("cpu")
    try:
        grads = gradients(Stage2Trainer(CFG, SampleSet.load(data_path), ctx))
        if ctx.is_main:
            torch.save(grads, out_path)
        ctx.barrier()  # as stage2 does: a gloo group torn down while the other rank still uses it aborts that rank
    finally:
        cleanup_distributed(ctx)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_gradient_matches_single_process(tmp_path, monkeypatch):
    samples = build_samples(synthetic_clip(3, num_frames=8, image_size=32), 16, np.random.default_rng(0))
    data_path = str(samples.save(tmp_path / "samples.npz"))
    out_path = str(tmp_path / "ddp_grads.pt")
    mp.spawn(_worker, args=(2, _free_port(), data_path, out_path), nprocs=2, join=True)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    single = gradients(Stage2Trainer(CFG, samples))
    ddp = torch.load(out_path, weights_only=True)
    assert single.keys() == ddp.keys()
    assert int(single.pop("local_batch")) == 4 and int(ddp.pop("local_batch")) == 2
    for name in single:
        torch.testing.assert_close(ddp[name], single[name], rtol=1e-4, atol=1e-6, msg=name)
    assert any(g.abs().sum() > 0 for g in single.values())
