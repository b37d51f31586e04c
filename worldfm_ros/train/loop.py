"""The training loop Stage II (``stage2.py``) and DMD distillation (``dmd.py``) share.

A trainer has ``step`` (int, steps done) and ``train_step()`` (one optimiser step; returns the
loss, or a dict of named losses). The loop runs it to a step, logs window means as JSON lines
and checkpoints; what a step does, and how a trainer saves, stay with the trainer.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Protocol

from tqdm import tqdm

STATE_FILE = "state.pt"
LOG_FILE = "log.jsonl"
MODEL_FILE = "model.safetensors"


class Trainer(Protocol):
    step: int

    def train_step(self) -> float | dict[str, float]: ...


def run_steps(trainer: Trainer, end: int, out_dir: Path, *, log_every: int, checkpoint_every: int,
              save: Callable[[], None], desc: str, progress: bool = True, is_main: bool = True,
              reduce: Callable[[float], float] = float, extra: Callable[[], dict] = dict) -> None:
    """Step ``trainer`` until ``trainer.step == end``.

    Every ``log_every`` steps and at ``end``, appends ``{"step", <mean of each loss over the
    window>, **extra(), "seconds"}`` to ``out_dir/log.jsonl`` and shows the means on the
    progress bar; every ``checkpoint_every`` steps and at ``end``, calls ``save()``. With
    several processes, ``reduce`` (called on every rank, e.g. an all-reduce mean) combines each
    mean, and only the main rank (``is_main``) logs and saves.
    """
    bar = tqdm(total=end, initial=trainer.step, desc=desc, disable=not (progress and is_main))
    sums: dict[str, float] = {}
    count, started = 0, time.perf_counter()
    while trainer.step < end:
        losses = trainer.train_step()
        for name, value in (losses if isinstance(losses, dict) else {"loss": losses}).items():
            sums[name] = sums.get(name, 0.0) + float(value)
        count += 1
        bar.update(1)
        step = trainer.step
        if step % log_every == 0 or step == end:
            means = {name: reduce(total / count) for name, total in sums.items()}
            if is_main:
                bar.set_postfix({name: f"{value:.4f}" for name, value in means.items()})
                record = {"step": step, **means, **extra(), "seconds": round(time.perf_counter() - started, 2)}
                with open(Path(out_dir) / LOG_FILE, "a", encoding="utf-8") as f:
                    f.write(json.dumps(record) + "\n")
            sums, count = {}, 0
        if is_main and (step % checkpoint_every == 0 or step == end):
            save()
    bar.close()
