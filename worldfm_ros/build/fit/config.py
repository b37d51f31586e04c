"""What a splat fit does (``build.fit.fitter``); no torch here, so the CLI builds its options fast."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FitConfig:
    """What a fit does. Learning rates are 3DGS's (means scaled by the scene's extent, metres)."""

    iterations: int = 3000
    #: stop after this many seconds of fitting even before ``iterations`` (None = no limit)
    time_budget_s: float | None = None
    seed: int = 0
    sh_degree: int = 1
    lambda_ssim: float = 0.2
    lambda_depth: float = 0.1
    refine_poses: bool = False
    exposure: bool = True
    lr_means: float = 1.6e-4
    lr_means_final: float = 1.6e-6
    lr_scales: float = 5e-3
    lr_quats: float = 1e-3
    lr_opacities: float = 5e-2
    lr_sh: float = 2.5e-3
    lr_pose: float = 1e-3
    lr_exposure: float = 1e-3
    densify_from: int = 200
    #: densify until this share of ``iterations``
    densify_until: float = 0.6
    densify_every: int = 100
    #: mean screen-space gradient of a centre (NDC units, gsplat's convention) above which it densifies
    grad_threshold: float = 2e-4
    #: a Gaussian wider than this share of the scene extent is split, narrower is cloned
    dense_share: float = 0.01
    prune_opacity: float = 0.005
    max_gaussians: int = 600_000
    init_opacity: float = 0.5
    checkpoint_every: int = 250
