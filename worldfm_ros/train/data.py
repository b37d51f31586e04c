"""Multi-view training samples, built the way the WorldFM paper builds them.

From one clip of posed RGB-D frames: ``num_references`` frames (4 in the paper) are drawn
after a random shuffle; their depth maps, back-projected and fused, are the explicit anchor
(a coloured point cloud), and they are the candidate references. Every other frame is a target:
the anchor is rendered at its pose as the point-cloud world the simulator draws (holes black, as
at inference), and its reference is the nearest of the candidates by camera distance plus
``angle_weight`` x viewing-angle difference.

A ``SampleSet`` stacks samples as numpy arrays (saved as one ``.npz``); ``make_batch`` turns a
list of indices into model-ready tensors and applies the random anchor masking of the paper
(random rectangles of the render dropped, sometimes the whole render) from a per-sample seed,
so a batch depends only on (seed, step, position in the global batch), never on how many
processes share it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from worldfm_ros.camera import PinholeCamera
from worldfm_ros.errors import ConfigError
from worldfm_ros.scene.anchor import SceneAnchor
from worldfm_ros.build.backproject import backproject_depth
from worldfm_ros.train.artefacts import CaptureArtefacts
from worldfm_ros.train.synthetic import Clip, resize_clip
from worldfm_ros.world.base import render_one
from worldfm_ros.world.pointcloud import PointCloudWorld


@dataclass
class SampleSet:
    """N multi-view samples at S x S pixels (numpy arrays, first axis = sample).

    target, render, reference: (N, S, S, 3) uint8 RGB; the render has black holes.
    valid: (N, S, S) bool, True where an anchor point landed in the render.
    render_depth: (N, S, S) float32 z-depth of the render in metres, 0 = hole.
    target_depth: (N, S, S) float32 ground-truth z-depth of the target, metres, 0 = none.
    K: (N, 3, 3) float64 pixel intrinsics of the S x S views (target and reference share them).
    target_c2w, reference_c2w: (N, 4, 4) float64 camera-to-world, OpenCV axes, metres.
    clip: (N,) int32 index of the source clip; frame: (N,) int32 frame index in that clip.
    """

    target: np.ndarray
    render: np.ndarray
    valid: np.ndarray
    render_depth: np.ndarray
    reference: np.ndarray
    target_depth: np.ndarray
    K: np.ndarray
    target_c2w: np.ndarray
    reference_c2w: np.ndarray
    clip: np.ndarray
    frame: np.ndarray

    def __len__(self) -> int:
        return len(self.target)

    @property
    def image_size(self) -> int:
        """S, the side of every view in pixels."""
        return int(self.target.shape[1])

    def subset(self, indices: np.ndarray | list[int]) -> "SampleSet":
        """The samples at ``indices``, in that order."""
        idx = np.asarray(indices, dtype=np.int64)
        return SampleSet(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    @classmethod
    def concatenate(cls, sets: list["SampleSet"]) -> "SampleSet":
        """One set holding every sample of ``sets``; clips are renumbered consecutively, set by set."""
        if not sets:
            raise ConfigError("sample sets: nothing to concatenate")
        parts, offset = [], 0
        for s in sets:
            ids, clip = np.unique(s.clip, return_inverse=True)
            parts.append(SampleSet(**{**{f.name: getattr(s, f.name) for f in fields(s)},
                                      "clip": (clip.reshape(-1) + offset).astype(np.int32)}))
            offset += len(ids)
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)})

    def save(self, path: str | Path) -> Path:
        """Write every array to one compressed ``.npz``; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, **{f.name: getattr(self, f.name) for f in fields(self)})
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "SampleSet":
        """Read a set written by ``save``; ConfigError naming the file when it is not one."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: sample set not found")
        names = [f.name for f in fields(cls)]
        with np.load(path, allow_pickle=False) as data:
            missing = sorted(set(names) - set(data.files))
            if missing:
                raise ConfigError(f"{path}: not a sample set (missing arrays {missing})")
            return cls(**{n: data[n] for n in names})


def pose_distance(a: np.ndarray, b: np.ndarray, angle_weight: float = 0.5) -> float:
    """Distance between camera-to-world poses: metres between centres + angle_weight x radians
    between the rotations."""
    from scipy.spatial.transform import Rotation

    angle = Rotation.from_matrix(a[:3, :3].T @ b[:3, :3]).magnitude()
    return float(np.linalg.norm(a[:3, 3] - b[:3, 3]) + angle_weight * angle)


def nearest_reference(target_c2w: np.ndarray, reference_c2ws: np.ndarray, angle_weight: float = 0.5) -> int:
    """Index into reference_c2ws (R, 4, 4) of the pose nearest to target_c2w (``pose_distance``)."""
    return int(np.argmin([pose_distance(target_c2w, r, angle_weight) for r in reference_c2ws]))


def fuse_frames(clip: Clip, frames: list[int], stride: int = 1, clean: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Anchor point cloud of some frames of a clip: points (N, 3) float32 world, colours (N, 3) uint8.

    clean: drop flying pixels and fuse confidence-weighted observations per 1 cm cell with
    robust colours, as ``build_rgbd`` does; otherwise every back-projected pixel is a point.
    """
    from worldfm_ros.build.rgbd_fusion import frame_observations, fuse_observations

    points, colors, weights = [], [], []
    for i in frames:
        if clean:
            p, c, w = frame_observations(clip.depths[i], clip.K, clip.c2w[i], clip.images[i], stride)
            weights.append(w)
        else:
            p, c = backproject_depth(clip.depths[i], clip.K, clip.c2w[i], clip.images[i], stride)
        points.append(p)
        colors.append(c)
    points, colors = np.concatenate(points), np.concatenate(colors)
    if clean and len(points):
        points, colors = fuse_observations(points, colors, np.concatenate(weights))
    return points, colors


def degrade_frames(clip: Clip, frames: list[int], artefacts: CaptureArtefacts, rng: np.random.Generator) -> Clip:
    """A copy of ``clip`` whose ``frames`` carry real-capture ``artefacts`` (the others exact)."""
    images, depths, c2w = clip.images.copy(), clip.depths.copy(), clip.c2w.copy()
    for i in frames:
        images[i], depths[i], c2w[i] = artefacts.apply(clip.images[i], clip.depths[i], clip.c2w[i], rng)
    return Clip(images, depths, c2w, clip.K, clip.name)


def build_samples(clip: Clip, image_size: int, rng: np.random.Generator, num_references: int = 4,
                  angle_weight: float = 0.5, clip_index: int = 0, artefacts: CaptureArtefacts | None = None,
                  clean_anchor: bool = False) -> SampleSet:
    """Every target of one clip as a multi-view sample at ``image_size`` x ``image_size``.

    The references are ``num_references`` frames of a random shuffle of the clip; the anchor
    is fused from their depth at the clip's own resolution, every ``stride`` pixels, where
    stride keeps about two points per output pixel along each axis, so the holes of the
    render are disocclusions and unseen regions rather than sparse sampling.
    artefacts: real-capture artefacts put on the reference frames (their images, depth and
    poses) before fusion; the targets stay exact. clean_anchor: see ``fuse_frames``.
    """
    if clip.num_frames <= num_references:
        raise ConfigError(f"clip {clip.name!r}: needs more than {num_references} frames, has {clip.num_frames}")
    order = rng.permutation(clip.num_frames)
    refs = sorted(int(i) for i in order[:num_references])
    targets = sorted(int(i) for i in order[num_references:])
    stride = max(1, min(clip.images.shape[1:3]) // (2 * image_size))
    seen = degrade_frames(clip, refs, artefacts, rng) if artefacts is not None and artefacts.enabled else clip
    points, colors = fuse_frames(seen, refs, stride, clean_anchor)
    small = resize_clip(clip, image_size)
    small_seen = resize_clip(seen, image_size) if seen is not clip else small
    camera = PinholeCamera.from_K(small.K, image_size, image_size)
    world = PointCloudWorld(SceneAnchor(points, colors, name=clip.name))
    out: dict[str, list] = {f.name: [] for f in fields(SampleSet)}
    for t in targets:
        r = refs[nearest_reference(clip.c2w[t], clip.c2w[refs], angle_weight)]
        view = render_one(world, camera, clip.c2w[t])
        for name, value in (("target", small.images[t]), ("render", view.rgb), ("valid", view.valid),
                            ("render_depth", view.depth),
                            ("reference", small_seen.images[r]), ("target_depth", small.depths[t]), ("K", small.K),
                            ("target_c2w", clip.c2w[t]), ("reference_c2w", seen.c2w[r]),
                            ("clip", clip_index), ("frame", t)):
            out[name].append(value)
    arrays = {name: np.stack(values) if name not in ("clip", "frame") else np.asarray(values, np.int32)
              for name, values in out.items()}
    return SampleSet(**arrays)


@dataclass
class Batch:
    """Model-ready tensors for B samples at S x S.

    target, render, reference: (B, 3, S, S) float32 in [-1, 1]; holes of the render are -1
    (black), exactly what the inference pipeline feeds. valid: (B, 1, S, S) float32 in {0, 1}.
    filled: (B, 3, S, S) float32 in [-1, 1], the render with its holes push-pull filled (what the
    anchor-only backend outputs; mid-grey for an empty render): the base of residual models.
    """

    target: torch.Tensor
    render: torch.Tensor
    reference: torch.Tensor
    valid: torch.Tensor
    filled: torch.Tensor

    def to(self, device: torch.device | str) -> "Batch":
        """The same tensors on ``device``."""
        return Batch(*(getattr(self, f.name).to(device) for f in fields(self)))


@dataclass(frozen=True)
class AnchorMasking:
    """Random anchor masking: with ``patch_prob`` drop 1..``max_patches`` rectangles (each 1/8 to
    1/2 of the side) from the render; with ``drop_prob`` drop the whole render."""

    patch_prob: float = 0.5
    drop_prob: float = 0.1
    max_patches: int = 4

    def apply(self, render: np.ndarray, valid: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Masked copies of render (S, S, 3) uint8 and valid (S, S) bool; dropped pixels become holes."""
        render, valid = render.copy(), valid.copy()
        S = render.shape[0]
        if rng.random() < self.drop_prob:
            render[:] = 0
            valid[:] = False
        elif rng.random() < self.patch_prob:
            for _ in range(int(rng.integers(1, self.max_patches + 1))):
                h, w = rng.integers(max(1, S // 8), S // 2 + 1, size=2)
                y, x = rng.integers(0, S - h + 1), rng.integers(0, S - w + 1)
                render[y:y + h, x:x + w] = 0
                valid[y:y + h, x:x + w] = False
        return render, valid


def sample_seed(seed: int, step: int, position: int) -> int:
    """Seed of the randomness of one sample of one step: a function of the three, nothing else."""
    return int(np.random.SeedSequence([seed, step, position]).generate_state(1, np.uint64)[0] >> 1)


def _unit(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def make_batch(samples: SampleSet, indices: list[int], seeds: list[int], masking: AnchorMasking | None,
               empty_render: bool = False) -> Batch:
    """Batch of ``samples[indices]``; sample i is masked with ``np.random.default_rng(seeds[i])``.

    masking: None = renders as built. empty_render: every render emptied (all holes), the
    reference-only phase of progressive condition injection.
    """
    from worldfm_ros.render.fill import residual_base

    renders, valids, filled = [], [], []
    for i, seed in zip(indices, seeds):
        render, valid = samples.render[i], samples.valid[i]
        if empty_render:
            render, valid = np.zeros_like(render), np.zeros_like(valid)
        elif masking is not None:
            render, valid = masking.apply(render, valid, np.random.default_rng(seed))
        renders.append(render)
        valids.append(valid)
        filled.append(residual_base(render, valid))
    idx = np.asarray(indices, dtype=np.int64)
    return Batch(_unit(samples.target[idx]), _unit(np.stack(renders)), _unit(samples.reference[idx]),
                 torch.from_numpy(np.stack(valids)).float()[:, None], _unit(np.stack(filled)))


def latent_mask(valid: torch.Tensor, latent_size: int) -> torch.Tensor:
    """(B, 1, S, S) pixel validity -> (B, 1, h, h) coverage fraction, as ``FramePipeline`` computes it."""
    return F.adaptive_avg_pool2d(valid, latent_size)
