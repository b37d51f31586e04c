"""The training sample set of a ``DataConfig``: procedural clips plus real RGB-D folders, cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from worldfm_ros.errors import ConfigError
from worldfm_ros.train.config import DataConfig
from worldfm_ros.train.data import SampleSet, build_samples
from worldfm_ros.train.synthetic import synthetic_clip


def procedural_samples(cfg: DataConfig, progress: bool = False) -> SampleSet:
    """Samples of ``cfg.num_clips`` procedural clips (rooms first_seed, first_seed + 1, ...).

    The reference shuffle of clip k uses ``default_rng([first_seed + k, 1])``: the whole set is a
    function of the config.
    """
    sets = []
    seeds = range(cfg.first_seed, cfg.first_seed + cfg.num_clips)
    for k, seed in enumerate(tqdm(seeds, desc="procedural clips", disable=not progress)):
        clip = synthetic_clip(seed, cfg.frames_per_clip, cfg.capture_size, cfg.hfov_deg, step=cfg.step_m)
        sets.append(build_samples(clip, cfg.image_size, np.random.default_rng([seed, 1]), cfg.num_references,
                                  clip_index=k, artefacts=cfg.artefacts, clean_anchor=cfg.clean_anchor))
    return SampleSet.concatenate(sets)


def rgbd_samples(cfg: DataConfig, progress: bool = False) -> list[SampleSet]:
    """Samples of every folder in ``cfg.rgbd_folders`` (see ``worldfm_ros.train.loaders``), from
    frames below ``cfg.rgbd_max_frame`` only, each clip ``cfg.rgbd_repeats`` times (repeat r draws
    its references with ``default_rng([k, 2, r])``; the first repeat is the historical
    ``default_rng([k, 2])``). Real clips keep their own artefacts: none are added."""
    if not cfg.rgbd_folders:
        return []
    from worldfm_ros.train.loaders import rgbd_clips

    sets = []
    for folder in cfg.rgbd_folders:
        clips = rgbd_clips(folder, cfg.frames_per_clip, cfg.rgbd_frame_step, max_frame=cfg.rgbd_max_frame or None)
        for k, clip in enumerate(tqdm(clips, desc=Path(folder).name, disable=not progress)):
            for r in range(cfg.rgbd_repeats):
                rng = np.random.default_rng([k, 2] if r == 0 else [k, 2, r])
                sets.append(build_samples(clip, cfg.image_size, rng, cfg.num_references,
                                          clip_index=k * cfg.rgbd_repeats + r, clean_anchor=cfg.clean_anchor))
    return sets


def prepare_samples(cfg: DataConfig, progress: bool = False) -> SampleSet:
    """The sample set of ``cfg``: read from ``cfg.cache`` if it exists, else built (and cached)."""
    if cfg.cache and Path(cfg.cache).is_file():
        samples = SampleSet.load(cfg.cache)
        if samples.image_size != cfg.image_size:
            raise ConfigError(f"{cfg.cache}: cached samples are {samples.image_size} px, data.image_size is "
                              f"{cfg.image_size} (delete the cache or point data.cache elsewhere)")
        return samples
    sets = ([procedural_samples(cfg, progress)] if cfg.num_clips > 0 else []) + rgbd_samples(cfg, progress)
    if not sets:
        raise ConfigError("data: no sources (num_clips is 0 and rgbd_folders is empty)")
    samples = SampleSet.concatenate(sets)
    if cfg.cache:
        samples.save(cfg.cache)
    return samples
