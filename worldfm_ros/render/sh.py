"""Real spherical harmonics up to degree 3, in the basis and sign convention of 3DGS and gsplat
(Sloan's "Stupid SH tricks" ordering: l = 0; l = 1 as y, z, x; ...). One numba function evaluates
the basis; the splat rasterizer and the numpy helper below both call it."""

from __future__ import annotations

import numpy as np
from numba import njit

C0 = 0.28209479177387814
C1 = 0.4886025119029199
C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
      -0.4570457994644658, 1.445305721320277, -0.5900435899266435)


@njit(cache=True, fastmath=False)
def sh_basis_into(degree, x, y, z, out):
    """Write the (degree + 1)^2 basis values at the unit direction (x, y, z) into ``out``."""
    out[0] = C0
    if degree < 1:
        return
    out[1] = -C1 * y
    out[2] = C1 * z
    out[3] = -C1 * x
    if degree < 2:
        return
    xx, yy, zz = x * x, y * y, z * z
    xy, yz, xz = x * y, y * z, x * z
    out[4] = C2[0] * xy
    out[5] = C2[1] * yz
    out[6] = C2[2] * (2.0 * zz - xx - yy)
    out[7] = C2[3] * xz
    out[8] = C2[4] * (xx - yy)
    if degree < 3:
        return
    out[9] = C3[0] * y * (3.0 * xx - yy)
    out[10] = C3[1] * xy * z
    out[11] = C3[2] * y * (4.0 * zz - xx - yy)
    out[12] = C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy)
    out[13] = C3[4] * x * (4.0 * zz - xx - yy)
    out[14] = C3[5] * z * (xx - yy)
    out[15] = C3[6] * x * (xx - 3.0 * yy)


@njit(cache=True)
def _basis_rows(degree, dirs, out):
    for i in range(dirs.shape[0]):
        sh_basis_into(degree, dirs[i, 0], dirs[i, 1], dirs[i, 2], out[i])


def sh_basis(degree: int, dirs: np.ndarray) -> np.ndarray:
    """(S, (degree + 1)^2) float64 basis values at the (S, 3) directions (normalised here)."""
    dirs = np.asarray(dirs, dtype=np.float64)
    dirs = np.ascontiguousarray(dirs / np.linalg.norm(dirs, axis=1, keepdims=True))
    out = np.zeros((len(dirs), (degree + 1) ** 2))
    _basis_rows(degree, dirs, out)
    return out


def sh_colors(sh: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """(N, 3) colours in [0, inf) seen along (N, 3) directions of (N, K, 3) coefficients:
    sum_k B_k(d) sh[:, k] + 0.5, clamped at 0 (3DGS's activation)."""
    degree = int(round(np.sqrt(sh.shape[1]))) - 1
    B = sh_basis(degree, dirs)
    return np.maximum(np.einsum("nk,nkc->nc", B, sh) + 0.5, 0.0)
