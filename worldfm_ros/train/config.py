"""Dataclass configs of data preparation, Stage II training and Stage III distillation (YAML files).

Load with ``worldfm_ros.config.load_config(Stage2Config, "config/train/stage2_res128.yaml")``;
unknown keys and wrong types fail with one line naming the field. Fractions of training
(``reference_only_until``, ``masking_from``) are of ``steps``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from worldfm_ros.errors import ConfigError
from worldfm_ros.model.config import CONFIG_NAMES, DiTConfig
from worldfm_ros.train.artefacts import CaptureArtefacts


@dataclass
class DataConfig:
    """Where samples come from.

    cache: ``.npz`` sample set; built from the sources below when absent, read when present.
    num_clips / first_seed: procedural clips of rooms ``first_seed .. first_seed + num_clips - 1``
        (0 clips = none). frames_per_clip, num_references: clip length and anchor/reference
        frames (16 and 4 in the paper). capture_size: side of the ray-cast frames (the anchor is
        fused at this resolution). image_size: side of the model's views in pixels.
    hfov_deg: horizontal field of view of the procedural camera. step_m: camera travel per frame.
    rgbd_folders: posed RGB-D sequences (TUM, 7-Scenes, ICL/Open3D folders) to add, cut into
        clips of ``frames_per_clip`` frames ``rgbd_frame_step`` apart.
    rgbd_max_frame: only frames with index < this of each folder (0 = all): keeps a validation
        split by frame index (e.g. ``worldfm evaluate --rgbd --split first`` scores the second
        half) that training never sees.
    rgbd_repeats: samples of each real clip built this many times, each with its own draw of
        the reference frames (real clips are few).
    artefacts: real-capture artefacts put on the procedural reference frames before fusion
        (``CaptureArtefacts``; all zero = exact frames).
    clean_anchor: fuse anchors the way ``build_rgbd`` does (flying pixels dropped, 1 cm
        confidence-weighted cells with robust colours) instead of keeping every point, so the
        training renders look like the node's renders of real scenes.
    """

    cache: str = ""
    num_clips: int = 200
    first_seed: int = 0
    frames_per_clip: int = 16
    num_references: int = 4
    capture_size: int = 128
    image_size: int = 64
    hfov_deg: float = 75.0
    step_m: float = 0.15
    rgbd_folders: list[str] = field(default_factory=list)
    rgbd_frame_step: int = 1
    rgbd_max_frame: int = 0
    rgbd_repeats: int = 1
    artefacts: CaptureArtefacts = field(default_factory=CaptureArtefacts)
    clean_anchor: bool = False

    def __post_init__(self) -> None:
        if self.frames_per_clip <= self.num_references or self.num_references < 1:
            raise ConfigError(f"data: need 1 <= num_references < frames_per_clip, got {self.num_references} "
                              f"and {self.frames_per_clip}")
        if self.image_size < 8 or self.capture_size < self.image_size:
            raise ConfigError(f"data: need image_size >= 8 and capture_size >= image_size, got "
                              f"{self.image_size} and {self.capture_size}")


@dataclass
class ModelSpec:
    """The network to train: a named DiTConfig size with optional overrides, in pixel space.

    pixel_factor: space-to-depth factor f of the ``PixelCodec``: latents have 3 f^2 channels and
    image_size / f pixels per side. use_mask_channel: give the network the render's coverage.
    residual: "filled_render" trains the network on the difference to the push-pull-filled
    render (``DiTConfig.residual``); "none" on the frame itself. residual_scale: see
    ``DiTConfig.residual_scale``.
    """

    size: str = "small"
    hidden_size: int | None = None
    depth: int | None = None
    num_heads: int | None = None
    patch_size: int | None = None
    mlp_ratio: float | None = None
    pixel_factor: int = 4
    use_mask_channel: bool = True
    learn_sigma: bool = False
    residual: str = "none"
    residual_scale: float = 1.0

    def dit_config(self, image_size: int) -> DiTConfig:
        """The DiTConfig for views of ``image_size`` pixels."""
        if self.size not in CONFIG_NAMES:
            raise ConfigError(f"model.size: expected one of {list(CONFIG_NAMES)}, got {self.size!r}")
        if image_size % self.pixel_factor:
            raise ConfigError(f"model.pixel_factor: {self.pixel_factor} does not divide image_size {image_size}")
        overrides = {k: getattr(self, k) for k in ("hidden_size", "depth", "num_heads", "patch_size", "mlp_ratio")
                     if getattr(self, k) is not None}
        return DiTConfig.named(self.size, latent_channels=3 * self.pixel_factor ** 2,
                               input_size=image_size // self.pixel_factor, use_mask_channel=self.use_mask_channel,
                               learn_sigma=self.learn_sigma, residual=self.residual,
                               residual_scale=self.residual_scale, **overrides)


@dataclass
class Stage2Config:
    """Stage II: conditional v-prediction training on multi-view samples.

    steps, batch_size (global, split over processes), lr (AdamW, linear warm-up over
    warmup_steps then cosine to lr_min), weight_decay, grad_clip (max gradient norm),
    ema_decay (exported weights are the EMA).
    Timesteps: ``logit_normal`` t = T sigmoid(N(logit_mean, logit_std)), biased to high noise
    for logit_mean > 0, or ``uniform``; from ``focus_from`` x steps on, a share ``focus_prob`` of
    the samples uses one of ``focus_timesteps`` instead (the distilled sampler's).
    Progressive condition injection: renders emptied (reference only) before
    ``reference_only_until`` x steps; random anchor masking from ``masking_from`` x steps on.
    hole_weight: weight of the loss on the render's holes (masked-out pixels included) relative
    to covered pixels; > 1 spends the model's capacity where the anchor shows nothing.
    out_dir: state.pt (resumable), log.jsonl, model.safetensors.
    init: a model file (``.safetensors`` of ``save_model``) to fine-tune from ('' = random
        initial weights); its network must match ``model``.
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSpec = field(default_factory=ModelSpec)
    out_dir: str = "runs/stage2"
    init: str = ""
    steps: int = 2000
    batch_size: int = 16
    lr: float = 3e-4
    lr_min: float = 3e-5
    warmup_steps: int = 100
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    timestep_sampling: str = "logit_normal"
    logit_mean: float = 0.5
    logit_std: float = 1.0
    focus_timesteps: list[int] = field(default_factory=lambda: [999, 200])
    focus_prob: float = 0.0
    focus_from: float = 0.0
    reference_only_until: float = 0.1
    masking_from: float = 0.5
    mask_patch_prob: float = 0.5
    mask_drop_prob: float = 0.1
    mask_max_patches: int = 4
    hole_weight: float = 1.0
    seed: int = 0
    device: str = "cpu"
    threads: int = 0
    log_every: int = 20
    checkpoint_every: int = 200

    def __post_init__(self) -> None:
        if self.timestep_sampling not in ("logit_normal", "uniform"):
            raise ConfigError(f"timestep_sampling: expected 'logit_normal' or 'uniform', "
                              f"got {self.timestep_sampling!r}")
        if any(not 0 <= t < 1000 for t in self.focus_timesteps):
            raise ConfigError(f"focus_timesteps: expected integers in [0, 1000), got {self.focus_timesteps}")
        for name in ("reference_only_until", "masking_from", "mask_patch_prob", "mask_drop_prob", "focus_prob",
                     "focus_from"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name}: expected a fraction in [0, 1], got {getattr(self, name)}")
        if self.steps < 1 or self.batch_size < 1:
            raise ConfigError(f"steps and batch_size: expected >= 1, got {self.steps} and {self.batch_size}")


@dataclass
class DistillConfig:
    """Stage III: DMD distillation of a Stage II teacher into a 1- or 2-step generator.

    teacher: the Stage II model (``.safetensors``). num_steps: 1 -> timesteps (999,),
    2 -> (999, 200), the released sampler's. Per step: ``fake_updates`` updates of the fake-score
    model (lr_fake), then one generator update (lr_generator) with
    dm_weight x distribution-matching loss + regression_weight x MSE to teacher DDIM samples
    (``regression_pairs`` pairs, ``teacher_ddim_steps`` DDIM steps, from fixed noise).
    dm_t_min / dm_t_max: range of the timesteps the scores are compared at.
    """

    teacher: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    out_dir: str = "runs/distill"
    num_steps: int = 2
    steps: int = 500
    batch_size: int = 8
    lr_generator: float = 2e-5
    lr_fake: float = 1e-4
    fake_updates: int = 1
    dm_weight: float = 1.0
    regression_weight: float = 0.25
    regression_pairs: int = 64
    teacher_ddim_steps: int = 8
    dm_t_min: int = 20
    dm_t_max: int = 980
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "cpu"
    threads: int = 0
    log_every: int = 20
    checkpoint_every: int = 100

    def __post_init__(self) -> None:
        if self.num_steps not in (1, 2):
            raise ConfigError(f"num_steps: expected 1 or 2 (timesteps 999 or 999 -> 200), got {self.num_steps}")
        if not 0 <= self.dm_t_min < self.dm_t_max < 1000:
            raise ConfigError(f"dm_t_min / dm_t_max: expected 0 <= min < max < 1000, got {self.dm_t_min}, "
                              f"{self.dm_t_max}")
        if self.steps < 1 or self.batch_size < 1 or self.fake_updates < 1:
            raise ConfigError("steps, batch_size and fake_updates: expected >= 1")
