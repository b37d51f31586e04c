"""A set of 3D Gaussians (the primitives of a Gaussian-splat world), activated and checked.

Conventions are 3DGS's (Kerbl et al. 2023) after activation, as gsplat's ``rasterization`` takes
them: positions and scales in metres, rotations as unit quaternions (w, x, y, z), opacity in
[0, 1], colour as real spherical-harmonic coefficients of RGB in [0, 1] space whose value plus 0.5
(clamped at 0) is the colour seen along a direction. numpy only; no torch, no numba.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from worldfm_ros.errors import SceneError

#: the degree-0 SH basis constant: colour = SH_C0 * dc + 0.5
SH_C0 = 0.28209479177387814
#: highest SH degree a splat file may carry (16 coefficients per channel)
MAX_SH_DEGREE = 3


def sh_coefficients(degree: int) -> int:
    """Coefficients per colour channel of an SH expansion up to ``degree``: (degree + 1)^2."""
    return (degree + 1) ** 2


@dataclass(frozen=True)
class Gaussians:
    """N anisotropic 3D Gaussians in the scene frame.

    means: (N, 3) float32 centres, metres.
    quats: (N, 4) float32 unit rotations (w, x, y, z), Gaussian axes to the scene frame.
    scales: (N, 3) float32 standard deviations along the Gaussian's axes, metres (> 0).
    opacities: (N,) float32 peak opacity in [0, 1].
    sh: (N, K, 3) float32 SH coefficients per RGB channel, K = (degree + 1)^2; sh[:, 0] is the DC term.
    """

    means: np.ndarray
    quats: np.ndarray
    scales: np.ndarray
    opacities: np.ndarray
    sh: np.ndarray

    def __len__(self) -> int:
        return len(self.means)

    @property
    def sh_degree(self) -> int:
        return int(round(np.sqrt(self.sh.shape[1]))) - 1

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.means, self.quats, self.scales, self.opacities, self.sh))

    def base_colors(self) -> np.ndarray:
        """(N, 3) uint8 view-independent colour (the DC term) of each Gaussian."""
        rgb = self.sh[:, 0, :] * SH_C0 + 0.5
        return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)

    def subset(self, index: np.ndarray) -> "Gaussians":
        """The Gaussians at ``index`` (an index or boolean mask array)."""
        return Gaussians(self.means[index], self.quats[index], self.scales[index], self.opacities[index],
                         self.sh[index])

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(min, max) (3,) corners of the centres, metres."""
        return self.means.min(axis=0), self.means.max(axis=0)


def make_gaussians(means, quats, scales, opacities, sh, source: str = "splats") -> Gaussians:
    """Check and normalise activated Gaussian arrays (shapes: ``Gaussians``); ``sh`` may also be
    (N, 3) (degree 0). Raises SceneError naming ``source`` and the field on a wrong shape, NaN or
    inf, a scale <= 0, a zero quaternion, an opacity outside [0, 1] or an SH count that is no
    square up to degree 3. Quaternions are normalised; everything is stored C-contiguous float32."""

    def arr(x, name: str, shape: tuple) -> np.ndarray:
        a = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
        if a.ndim != len(shape) or any(s is not None and a.shape[i] != s for i, s in enumerate(shape)):
            want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
            raise SceneError(f"{source}: {name}: expected shape {want}, got {a.shape}")
        # a float64 sum is finite exactly when every float32 value is (it cannot overflow), and it
        # needs no (N, ...) boolean temporary: 96 MB less at the peak of a 2 M-splat SH-3 load
        if not np.isfinite(np.sum(a, dtype=np.float64)):
            raise SceneError(f"{source}: {name}: contains NaN or inf")
        return a

    means = arr(means, "means", (None, 3))
    n = len(means)
    if n == 0:
        raise SceneError(f"{source}: holds no Gaussians")
    quats = arr(quats, "quats", (n, 4))
    scales = arr(scales, "scales", (n, 3))
    opacities = arr(opacities, "opacities", (n,))
    sh = np.asarray(sh, dtype=np.float32)
    if sh.ndim == 2:
        sh = sh[:, None, :]
    sh = arr(sh, "sh", (n, None, 3))
    k = sh.shape[1]
    if k not in [sh_coefficients(d) for d in range(MAX_SH_DEGREE + 1)]:
        raise SceneError(f"{source}: sh: {k} coefficients per channel is no SH degree 0..{MAX_SH_DEGREE} "
                         "(expected 1, 4, 9 or 16)")
    if np.any(scales <= 0):
        raise SceneError(f"{source}: scales: expected standard deviations > 0 metres "
                         f"({int(np.count_nonzero(np.any(scales <= 0, axis=1)))} Gaussians have one <= 0)")
    if np.any((opacities < 0) | (opacities > 1)):
        raise SceneError(f"{source}: opacities: expected values in [0, 1] (activated, not logits)")
    norm = np.sqrt(np.einsum("ij,ij->i", quats, quats))[:, None]  # a third of linalg.norm's time on 2 M
    if np.any(norm < 1e-8):
        raise SceneError(f"{source}: quats: {int(np.count_nonzero(norm < 1e-8))} quaternions are zero "
                         "(expected rotations w, x, y, z)")
    quats = np.ascontiguousarray(quats / norm, dtype=np.float32)
    return Gaussians(means, quats, scales, opacities, sh)


def quat_to_rotmat(quats: np.ndarray) -> np.ndarray:
    """(N, 4) unit quaternions (w, x, y, z) -> (N, 3, 3) rotation matrices."""
    w, x, y, z = (quats[:, i].astype(np.float64) for i in range(4))
    return np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], axis=1).reshape(-1, 3, 3)


def rotmat_to_quat(R: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotation matrices -> (N, 4) unit quaternions (w, x, y, z), w >= 0."""
    from scipy.spatial.transform import Rotation

    xyzw = Rotation.from_matrix(R).as_quat()
    q = np.concatenate([xyzw[:, 3:], xyzw[:, :3]], axis=1)
    q *= np.where(q[:, :1] < 0, -1.0, 1.0)
    return q.astype(np.float32)


def transform_gaussians(g: Gaussians, b_T_a: np.ndarray, scale: float = 1.0) -> Gaussians:
    """``g`` (in frame a) expressed in frame b: means and rotations moved by the rigid (4, 4)
    ``b_T_a``, everything first scaled by ``scale`` about a's origin. View-dependent SH
    coefficients are rotated with the frame (degree 1 exactly, higher degrees through a
    least-squares fit on sample directions), so colours seen along a direction are unchanged."""
    R = np.asarray(b_T_a, dtype=np.float64)[:3, :3]
    t = np.asarray(b_T_a, dtype=np.float64)[:3, 3]
    means = (g.means.astype(np.float64) * scale) @ R.T + t
    rot = rotmat_to_quat(R[None] @ quat_to_rotmat(g.quats))
    sh = rotate_sh(g.sh, R) if g.sh.shape[1] > 1 else g.sh
    return Gaussians(means.astype(np.float32), rot, (g.scales * scale).astype(np.float32), g.opacities, sh)


def rotate_sh(sh: np.ndarray, R: np.ndarray) -> np.ndarray:
    """SH coefficients (N, K, 3) of a function f(d) re-expressed for the rotated frame, so that the
    new coefficients at R d give f(d). Solved once per call as a (K, K) linear map fitted on
    sample directions (exact for the real SH basis, which is closed under rotation)."""
    from worldfm_ros.render.sh import sh_basis

    k = sh.shape[1]
    degree = int(round(np.sqrt(k))) - 1
    rng = np.random.default_rng(0)
    dirs = rng.normal(size=(256, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    B_old = sh_basis(degree, dirs)  # (S, K)
    B_new = sh_basis(degree, dirs @ R.T)  # basis at the rotated directions
    # B_new @ M = B_old: the new coefficients c' = M c reproduce f at the rotated directions
    M, *_ = np.linalg.lstsq(B_new, B_old, rcond=None)
    return np.einsum("jk,nkc->njc", M, sh.astype(np.float64)).astype(np.float32)
