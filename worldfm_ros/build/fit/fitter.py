"""Fit a Gaussian-splat world to posed RGB-D captures (3DGS optimisation with depth supervision).

The Gaussians start as the flat discs of the fused RGB-D points (``build.build_splats.splats_from_points``)
and are optimised with Adam against the recorded images through the differentiable rasterizer of
``build.fit.raster`` (whose forward pass is the world's own CPU renderer), after 3DGS (Kerbl et al. 2023)
with the depth term of the RGB-D splatting methods (SplaTAM, Gaussian-SLAM):

    loss = (1 - lambda_ssim) * L1(rgb) + lambda_ssim * (1 - SSIM(rgb)) + lambda_depth * L1(depth)

(colour in [0, 1], depth in metres over the pixels with recorded depth). Densification (clone small,
split large Gaussians whose screen-space centre gradient is high) and pruning (faint or huge ones)
follow 3DGS's adaptive density control. Optional per-frame terms, fitted but never baked into the
world: an SE(3) correction of each frame's pose (``refine_poses``; the first frame stays fixed, which
fixes the gauge) and an affine colour (exposure) term per frame (``exposure``: rgb * exp(gain) + bias
per channel), after nerfstudio's camera optimiser and splatfacto's appearance terms.

A fit runs like a training job: seeded and deterministic, an iteration and a time budget, a progress
bar with loss and PSNR, a checkpoint every ``checkpoint_every`` iterations and on SIGINT from which
``resume`` goes on to the same result as an uninterrupted run.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from threading import Event

import numpy as np
import torch

from worldfm_ros.camera import PinholeCamera, check_pose
from worldfm_ros.errors import SceneError
from worldfm_ros.build.fit.config import FitConfig
from worldfm_ros.build.fit.raster import SplatParams, render
from worldfm_ros.render.gaussians import Gaussians, make_gaussians

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "worldfm_splat_fit"
CHECKPOINT_VERSION = 2


class FitInterrupted(RuntimeError):
    """The fit stopped on request (SIGINT); a checkpoint at ``checkpoint`` resumes it."""

    def __init__(self, iteration: int, checkpoint: Path | None) -> None:
        where = f"; resume from {checkpoint}" if checkpoint else ""
        super().__init__(f"fit interrupted at iteration {iteration}{where}")
        self.iteration = iteration
        self.checkpoint = checkpoint


@dataclass
class FitViews:
    """The captures a world is fitted to, at one camera size.

    images: (F, H, W, 3) uint8 RGB; depths: (F, H, W) float32 z-depth metres (0 = none);
    c2w: (F, 4, 4) camera-to-scene, OpenCV axes, metres; names: F frame names.
    """

    images: np.ndarray
    depths: np.ndarray
    c2w: np.ndarray
    camera: PinholeCamera
    names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        f = len(self.images)
        if f == 0:
            raise SceneError("fit: no frames to fit (empty sequence)")
        h, w = self.camera.height, self.camera.width
        for i in range(f):
            name = self.names[i] if i < len(self.names) else str(i)
            if self.images[i].shape != (h, w, 3):
                raise SceneError(f"fit: frame {name}: image is {self.images[i].shape}, expected ({h}, {w}, 3)")
            if self.depths[i].shape != (h, w):
                raise SceneError(f"fit: frame {name}: depth is {self.depths[i].shape}, expected ({h}, {w})")
            if not np.any((self.depths[i] > 0) & np.isfinite(self.depths[i])):
                raise SceneError(f"fit: frame {name}: depth: no valid depth (all zero or NaN)")
            check_pose(self.c2w[i], f"fit: frame {name}: c2w")


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


class SplatFitter:
    """One fit of ``init`` (scene-frame Gaussians) to ``views`` under ``config``."""

    def __init__(self, init: Gaussians, views: FitViews, config: FitConfig = FitConfig()) -> None:
        self.config = config
        self.views = views
        torch.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.generator = torch.Generator().manual_seed(config.seed)
        lo, hi = np.percentile(init.means, [2, 98], axis=0)
        self.extent = float(max(np.linalg.norm(hi - lo) / 2, 1e-3))
        k = (config.sh_degree + 1) ** 2
        sh = np.zeros((len(init), k, 3), np.float32)
        kk = min(k, init.sh.shape[1])
        sh[:, :kk] = init.sh[:, :kk]
        f = len(views.images)
        self.params = {
            "means": torch.tensor(init.means, dtype=torch.float32),
            "quats": torch.tensor(init.quats, dtype=torch.float32),
            "log_scales": torch.tensor(np.log(init.scales), dtype=torch.float32),
            "opacity_logits": torch.tensor(_logit(np.minimum(init.opacities, config.init_opacity)), dtype=torch.float32),
            "sh_dc": torch.tensor(sh[:, :1], dtype=torch.float32),
            "sh_rest": torch.tensor(sh[:, 1:], dtype=torch.float32),
        }
        self.frame_params = _frame_params({"pose": torch.zeros(f, 6, dtype=torch.float64),
                                           "exposure": torch.zeros(f, 6, dtype=torch.float32)})
        for t in self.params.values():
            t.requires_grad_(True)
        self.optimizer = self._make_optimizer()
        self.grad_accum = torch.zeros(len(init))
        self.grad_count = torch.zeros(len(init))
        self.iteration = 0
        self.order: list[int] = []
        self.history: list[tuple[int, float, float]] = []
        self._targets = torch.from_numpy(views.images).float().div_(255.0)
        self._depths = torch.from_numpy(np.nan_to_num(views.depths, nan=0.0, posinf=0.0))
        self._w2c = torch.from_numpy(np.linalg.inv(views.c2w.astype(np.float64)))

    # -- parameters ------------------------------------------------------------------------------

    def _lr(self, name: str) -> float:
        c = self.config
        return {"means": c.lr_means * self.extent, "quats": c.lr_quats, "log_scales": c.lr_scales,
                "opacity_logits": c.lr_opacities, "sh_dc": c.lr_sh, "sh_rest": c.lr_sh / 20.0}[name]

    def _make_optimizer(self) -> torch.optim.Adam:
        c = self.config
        groups = [{"params": [t], "lr": self._lr(name), "name": name, "eps": 1e-15} for name, t in self.params.items()]
        # one tensor a frame: Adam skips a tensor without a gradient, so only the frame of the step
        # moves (rows of one shared tensor would keep drifting on their momentum and weight decay)
        if c.refine_poses:
            groups.append({"params": self.frame_params["pose"], "lr": c.lr_pose, "name": "pose"})
        if c.exposure:
            groups.append({"params": self.frame_params["exposure"], "lr": c.lr_exposure, "name": "exposure",
                           "weight_decay": 1e-3})
        return torch.optim.Adam(groups, foreach=True)

    def splat_params(self) -> SplatParams:
        p = self.params
        return SplatParams(p["means"], p["quats"], torch.exp(p["log_scales"]), torch.sigmoid(p["opacity_logits"]),
                           torch.cat([p["sh_dc"], p["sh_rest"]], dim=1))

    def gaussians(self) -> Gaussians:
        """The fitted Gaussians, activated (what the world stores)."""
        with torch.no_grad():
            s = self.splat_params()
            return make_gaussians(s.means.numpy(), s.quats.numpy(), s.scales.numpy(), s.opacities.numpy(),
                                  s.sh.numpy(), "fit")

    def w2c(self, i: int) -> torch.Tensor:
        """(4, 4) float64 world-to-camera of frame ``i`` with its fitted correction."""
        if not self.config.refine_poses or i == 0:
            return self._w2c[i]
        return se3_exp(self.frame_params["pose"][i]) @ self._w2c[i]

    def fitted_c2w(self) -> np.ndarray:
        """(F, 4, 4) camera-to-scene poses after refinement (the inputs when it is off)."""
        with torch.no_grad():
            return np.stack([np.linalg.inv(self.w2c(i).numpy()) for i in range(len(self.views.images))])

    def _expose(self, rgb: torch.Tensor, i: int) -> torch.Tensor:
        if not self.config.exposure:
            return rgb
        e = self.frame_params["exposure"][i]
        return rgb * torch.exp(e[:3]) + e[3:]

    # -- one step --------------------------------------------------------------------------------

    def _next_frame(self) -> int:
        if not self.order:
            self.order = [int(i) for i in self.rng.permutation(len(self.views.images))]
        return self.order.pop()

    def step(self) -> tuple[float, float]:
        """One iteration on the next frame; returns (loss, PSNR dB of the exposed render)."""
        from pytorch_msssim import ssim

        c = self.config
        i = self._next_frame()
        self._schedule()
        rgb, alpha, depth, proj = render(self.splat_params(), self.views.camera, self.w2c(i))
        proj.xy.retain_grad()
        pred = self._expose(rgb, i)
        target = self._targets[i]
        l1 = (pred - target).abs().mean()
        s = ssim(pred.permute(2, 0, 1)[None], target.permute(2, 0, 1)[None], data_range=1.0, size_average=True)
        loss = (1 - c.lambda_ssim) * l1 + c.lambda_ssim * (1 - s)
        recorded = self._depths[i]
        has = recorded > 0
        if c.lambda_depth > 0 and bool(has.any()):
            loss = loss + c.lambda_depth * (depth[has] - recorded[has]).abs().mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            g = proj.xy.grad
            visible = torch.from_numpy(proj.radius[:, 0] > 0)
            if g is not None and self.iteration < c.densify_until * c.iterations:
                scale = torch.tensor([self.views.camera.width / 2.0, self.views.camera.height / 2.0], dtype=g.dtype)
                norm = (g * scale).norm(dim=1).float()
                seen = proj.index[visible]
                self.grad_accum[seen] += norm[visible]
                self.grad_count[seen] += 1
            mse = float(((pred.clamp(0, 1) - target) ** 2).mean())
        self.iteration += 1
        if (c.densify_from <= self.iteration < c.densify_until * c.iterations
                and self.iteration % c.densify_every == 0):
            self.densify()
        return loss.item(), 10 * math.log10(1.0 / max(mse, 1e-10))

    def _schedule(self) -> None:
        c = self.config
        frac = min(self.iteration / max(c.iterations, 1), 1.0)
        # exponential decay from lr_means to lr_means_final (3DGS's schedule)
        lr = self.extent * c.lr_means ** (1 - frac) * c.lr_means_final ** frac
        for group in self.optimizer.param_groups:
            if group["name"] == "means":
                group["lr"] = lr

    # -- adaptive density control ----------------------------------------------------------------

    @torch.no_grad()
    def densify(self) -> None:
        c = self.config
        avg = self.grad_accum / self.grad_count.clamp_min(1)
        scales = torch.exp(self.params["log_scales"])
        big = scales.max(dim=1).values > c.dense_share * self.extent
        hot = avg >= c.grad_threshold
        room = max(c.max_gaussians - len(avg), 0)
        hot_idx = torch.nonzero(hot).flatten()
        if len(hot_idx) > room // 2:
            hot_idx = hot_idx[torch.argsort(avg[hot_idx], descending=True)[: room // 2]]
        clone = hot_idx[~big[hot_idx]]
        split = hot_idx[big[hot_idx]]
        new = {name: t[clone] for name, t in self.params.items()}
        if len(split):
            # two samples of each split Gaussian, each 1/1.6 as wide (3DGS)
            from worldfm_ros.build.fit.raster import quat_to_rotmat_torch

            R = quat_to_rotmat_torch(self.params["quats"][split].double()).float()
            std = scales[split]
            for _ in range(2):
                offset = (R @ (torch.randn(len(split), 3, generator=self.generator) * std)[..., None])[..., 0]
                new["means"] = torch.cat([new["means"], self.params["means"][split] + offset])
                new["log_scales"] = torch.cat([new["log_scales"], self.params["log_scales"][split] - math.log(1.6)])
                for name in ("quats", "opacity_logits", "sh_dc", "sh_rest"):
                    new[name] = torch.cat([new[name], self.params[name][split]])
        keep = torch.ones(len(avg), dtype=torch.bool)
        keep[split] = False
        opac = torch.sigmoid(self.params["opacity_logits"])
        keep &= opac >= c.prune_opacity
        keep &= scales.max(dim=1).values <= self.extent
        self._replace(keep, new)
        log.debug("densify at %d: %d cloned, %d split, %d kept -> %d", self.iteration, len(clone), len(split),
                  int(keep.sum()), len(self.params["means"]))

    def _replace(self, keep: torch.Tensor, new: dict[str, torch.Tensor]) -> None:
        """Keep the Gaussians ``keep`` and append ``new``, carrying Adam's moments along (zeros for new)."""
        added = len(next(iter(new.values())))
        for group in self.optimizer.param_groups:
            name = group["name"]
            if name not in self.params:
                continue
            old = group["params"][0]
            data = torch.cat([old.detach()[keep], new[name]]).requires_grad_(True)
            state = self.optimizer.state.pop(old, None)
            if state:
                for key in ("exp_avg", "exp_avg_sq"):
                    v = state[key]
                    state[key] = torch.cat([v[keep], torch.zeros((added, *v.shape[1:]), dtype=v.dtype)])
                self.optimizer.state[data] = state
            group["params"][0] = data
            self.params[name] = data
        self.grad_accum = torch.zeros(len(self.params["means"]))
        self.grad_count = torch.zeros(len(self.params["means"]))

    # -- the job ---------------------------------------------------------------------------------

    def run(self, checkpoint: Path | None = None, stop: Event | None = None, progress: bool = True) -> None:
        """Iterate up to ``config.iterations`` (or the time budget), checkpointing to ``checkpoint``;
        ``stop`` set (e.g. by SIGINT) saves a checkpoint and raises FitInterrupted."""
        from tqdm import tqdm

        c = self.config
        start = time.monotonic()
        bar = tqdm(total=c.iterations, initial=self.iteration, desc="fit", unit="it", disable=not progress,
                   dynamic_ncols=True)
        try:
            while self.iteration < c.iterations:
                if stop is not None and stop.is_set():
                    if checkpoint is not None:
                        self.save_checkpoint(checkpoint)
                    raise FitInterrupted(self.iteration, checkpoint)
                if c.time_budget_s is not None and time.monotonic() - start >= c.time_budget_s:
                    log.info("fit: time budget of %.0f s reached at iteration %d", c.time_budget_s, self.iteration)
                    break
                loss, psnr = self.step()
                self.history.append((self.iteration, loss, psnr))
                bar.update(1)
                if self.iteration % 10 == 0:
                    bar.set_postfix(loss=f"{loss:.4f}", psnr=f"{psnr:.2f}", n=len(self.params["means"]))
                if checkpoint is not None and self.iteration % c.checkpoint_every == 0:
                    self.save_checkpoint(checkpoint)
        finally:
            bar.close()

    def save_checkpoint(self, path: Path) -> None:
        """Everything the fit needs to go on (written to a temporary name, then renamed)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "config": asdict(self.config),
                 "iteration": self.iteration, "params": {k: v.detach() for k, v in self.params.items()},
                 "frame_params": {k: torch.stack([t.detach() for t in v]) for k, v in self.frame_params.items()},
                 "optimizer": self.optimizer.state_dict(), "grad_accum": self.grad_accum,
                 "grad_count": self.grad_count, "order": list(self.order), "rng": self.rng.bit_generator.state,
                 "generator": self.generator.get_state(), "torch_rng": torch.get_rng_state(),
                 "history": self.history, "frames": len(self.views.images)}
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        torch.save(state, tmp)
        os.replace(tmp, path)

    def load_checkpoint(self, path: Path) -> None:
        """Go on from ``path`` (written by a fit of the same config and frames); SceneError otherwise."""
        try:
            state = torch.load(path, weights_only=False)
        except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
            raise SceneError(f"{path}: not a readable fit checkpoint ({e})") from None
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise SceneError(f"{path}: not a fit checkpoint (format {CHECKPOINT_FORMAT!r} expected)")
        if state.get("version") != CHECKPOINT_VERSION:
            raise SceneError(f"{path}: fit checkpoint version {state.get('version')}, this version resumes "
                             f"{CHECKPOINT_VERSION} only; delete it and fit again")
        mine = {k: v for k, v in asdict(self.config).items() if k not in ("iterations", "time_budget_s")}
        theirs = {k: v for k, v in state["config"].items() if k not in ("iterations", "time_budget_s")}
        if mine != theirs or state["frames"] != len(self.views.images):
            diff = sorted(k for k in mine if mine[k] != theirs.get(k))
            raise SceneError(f"{path}: checkpoint of a different fit (differs in {diff or 'frames'}); "
                             "delete it or fit with the same options")
        self.params = {k: v.clone().requires_grad_(True) for k, v in state["params"].items()}
        self.frame_params = _frame_params(state["frame_params"])
        self.optimizer = self._make_optimizer()
        self.optimizer.load_state_dict(state["optimizer"])
        self.iteration = state["iteration"]
        self.grad_accum, self.grad_count = state["grad_accum"], state["grad_count"]
        self.order = list(state["order"])
        self.rng.bit_generator.state = state["rng"]
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.history = list(state["history"])

    # -- results ---------------------------------------------------------------------------------

    @torch.no_grad()
    def mean_psnr(self) -> float:
        """Mean PSNR (dB) over the views of the current Gaussians, without exposure terms."""
        params = self.splat_params()
        return float(np.mean([_psnr(render(params, self.views.camera, self.w2c(i))[0].clamp(0, 1), self._targets[i])
                              for i in range(len(self.views.images))]))

    @torch.no_grad()
    def report(self) -> dict:
        """Per-frame PSNR of the fitted world (raw and with the frame's exposure term), pose
        corrections (cm, degrees) and exposure terms; plus totals."""
        frames = []
        psnr_raw, psnr_exposed = [], []
        c2w_in = self.views.c2w
        c2w_out = self.fitted_c2w()
        params = self.splat_params()
        for i in range(len(self.views.images)):
            rgb, _, _, _ = render(params, self.views.camera, self.w2c(i))
            target = self._targets[i]
            raw = _psnr(rgb.clamp(0, 1), target)
            exposed = _psnr(self._expose(rgb, i).clamp(0, 1), target)
            d = np.linalg.inv(c2w_in[i]) @ c2w_out[i]
            angle = math.degrees(math.acos(float(np.clip((np.trace(d[:3, :3]) - 1) / 2, -1, 1))))
            e = self.frame_params["exposure"][i].detach().numpy()
            frames.append({"name": self.views.names[i] if i < len(self.views.names) else str(i),
                           "psnr": round(raw, 3), "psnr_exposed": round(exposed, 3),
                           "pose_correction_cm": round(float(np.linalg.norm(d[:3, 3])) * 100, 3),
                           "pose_correction_deg": round(angle, 4),
                           "exposure_gain": [round(float(math.exp(x)), 4) for x in e[:3]],
                           "exposure_bias": [round(float(x), 4) for x in e[3:]]})
            psnr_raw.append(raw)
            psnr_exposed.append(exposed)
        return {"iterations": self.iteration, "gaussians": len(self.params["means"]),
                "mean_psnr": round(float(np.mean(psnr_raw)), 3),
                "mean_psnr_exposed": round(float(np.mean(psnr_exposed)), 3), "frames": frames}


def _frame_params(stacked: dict[str, torch.Tensor]) -> dict[str, list[torch.Tensor]]:
    """Per-frame parameters, one leaf tensor a frame, from {name: (F, D) tensor}."""
    return {k: [row.clone().requires_grad_(True) for row in v] for k, v in stacked.items()}


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return 10 * math.log10(1.0 / max(mse, 1e-10))


def se3_exp(xi: torch.Tensor) -> torch.Tensor:
    """(4, 4) float64 transform of the twist ``xi`` = (rx, ry, rz, tx, ty, tz) (rotation vector in
    radians, then translation in metres), applied on the camera side: w2c' = exp(xi) w2c."""
    w = xi[:3]
    K = torch.zeros(3, 3, dtype=xi.dtype)
    K[0, 1], K[0, 2], K[1, 0], K[1, 2], K[2, 0], K[2, 1] = -w[2], w[1], w[2], -w[0], -w[1], w[0]
    T = torch.eye(4, dtype=xi.dtype)
    T[:3, :3] = torch.matrix_exp(K)
    T[:3, 3] = xi[3:]
    return T
