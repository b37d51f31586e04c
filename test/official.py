"""Checkpoints written in the official release's layout (§5 of the spec), with random weights.

A ``.pth`` holding ``{"state_dict": ...}``: our live keys plus every key the released module
carries and never uses (the stale ``pos_embed``, the caption path, 28 cross-attentions,
Plücker), at the shapes the released module gives them for this network.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from worldfm_ros.model.config import DiTConfig
from worldfm_ros.model.dit import WorldFMDiT

#: the smallest network whose shape the loader can read back from the weights (heads of 72)
TINY_OFFICIAL = DiTConfig(hidden_size=144, depth=2, num_heads=2, input_size=8)


def official_layout(model: WorldFMDiT, caption: tuple[int, int] = (12, 32)) -> dict[str, torch.Tensor]:
    """The model's weights plus the release's unused keys, in the model's dtype; caption:
    (tokens, channels) of the caption path ((300, 4096) in the release)."""
    D = model.cfg.hidden_size
    dtype = next(model.parameters()).dtype
    g = torch.Generator().manual_seed(1)

    def rnd(*shape: int) -> torch.Tensor:
        return torch.empty(shape, dtype=dtype).normal_(generator=g)

    tokens, channels = caption
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["pos_embed"] = rnd(1, model.cfg.tokens_per_view, D)
    state["y_embedder.y_embedding"] = rnd(tokens, channels)
    state["y_embedder.y_proj.fc1.weight"] = rnd(D, channels)
    state["y_embedder.y_proj.fc1.bias"] = rnd(D)
    state["y_embedder.y_proj.fc2.weight"] = rnd(D, D)
    state["y_embedder.y_proj.fc2.bias"] = rnd(D)
    for i in range(model.cfg.depth):
        state[f"blocks.{i}.cross_attn.q_linear.weight"] = rnd(D, D)
        state[f"blocks.{i}.cross_attn.q_linear.bias"] = rnd(D)
        state[f"blocks.{i}.cross_attn.kv_linear.weight"] = rnd(2 * D, D)
        state[f"blocks.{i}.cross_attn.kv_linear.bias"] = rnd(2 * D)
        state[f"blocks.{i}.cross_attn.proj.weight"] = rnd(D, D)
        state[f"blocks.{i}.cross_attn.proj.bias"] = rnd(D)
    state["plucker_proj.0.weight"] = rnd(D, 6)
    state["plucker_proj.0.bias"] = rnd(D)
    state["plucker_proj.2.weight"] = rnd(D, D)
    state["plucker_proj.2.bias"] = rnd(D)
    return state


def random_official_model(cfg: DiTConfig, seed: int = 0, dtype: torch.dtype = torch.float32) -> WorldFMDiT:
    """A WorldFMDiT with every parameter random (no zeroed output layer), so outputs depend on all."""
    torch.manual_seed(seed)
    with torch.device("meta"):
        model = WorldFMDiT(cfg).to(dtype)
    model.to_empty(device="cpu")
    model.reset_buffers()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(std=0.02)
    return model.eval()


def write_official_checkpoint(path: Path, cfg: DiTConfig = TINY_OFFICIAL, seed: int = 0,
                              dtype: torch.dtype = torch.float32) -> WorldFMDiT:
    """Write ``{"state_dict": ...}`` for a random ``cfg`` network to ``path``; returns the network."""
    model = random_official_model(cfg, seed, dtype)
    caption = (300, 4096) if cfg.hidden_size == 1152 else (12, 32)
    torch.save({"state_dict": official_layout(model, caption)}, path)
    return model


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    """A tiny diffusers AutoencoderKL folder with the SDXL VAE's x8 downsampling."""
    from diffusers import AutoencoderKL

    path = tmp_path_factory.mktemp("vae") / "vae"
    torch.manual_seed(0)
    AutoencoderKL(block_out_channels=(8, 8, 8, 8), layers_per_block=1, norm_num_groups=4, latent_channels=4,
                  down_block_types=("DownEncoderBlock2D",) * 4,
                  up_block_types=("UpDecoderBlock2D",) * 4).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def official_pth(tmp_path_factory):
    """(path, model) of a tiny official-layout ``worldfm_2-step.pth`` with random weights."""
    path = tmp_path_factory.mktemp("weights") / "worldfm_2-step.pth"
    source = write_official_checkpoint(path)
    return path, source
