"""Specification of the bundled default model on held-out procedural rooms (never trained on)."""

from __future__ import annotations

import numpy as np
import pytest

from worldfm_ros.backends.fill_backend import FillBackend
from worldfm_ros.backends.torch_backend import TorchBackend
from worldfm_ros.eval.evaluate import generate_all, score
from worldfm_ros.eval.metrics import psnr
from worldfm_ros.resources import default_model_path
from worldfm_ros.train.config import DataConfig
from worldfm_ros.train.dataset import procedural_samples


@pytest.fixture(scope="module")
def heldout():
    # Rooms 100004-100007: ordinary views plus some the anchor barely covers (48 views).
    samples = procedural_samples(DataConfig(num_clips=4, first_seed=100_004, capture_size=256, image_size=128))
    anchor, _ = generate_all(FillBackend(), samples)
    model, _ = generate_all(TorchBackend(model_path=default_model_path(), steps=1), samples)
    return samples, anchor, model


def test_bundled_model_fills_render_holes_better_than_push_pull(heldout):
    samples, anchor, model = heldout
    assert score(model, samples)["psnr_holes"] > score(anchor, samples)["psnr_holes"] + 1.0


def test_bundled_model_keeps_well_covered_views_as_good_as_the_anchor(heldout):
    samples, anchor, model = heldout
    covered = [i for i in range(len(samples)) if samples.valid[i].mean() >= 0.5]
    assert len(covered) >= 30
    gap = np.mean([psnr(model[i], samples.target[i]) - psnr(anchor[i], samples.target[i]) for i in covered])
    assert gap > -0.5
