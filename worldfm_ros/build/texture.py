"""Texture for surfaces nobody saw: patch-based synthesis from observed texture, exposure-matched.

``synthesize`` fills the unknown texels of a texture by image quilting (Efros & Freeman 2001):
square patches copied from the known texels of an exemplar (the same surface, or another surface of
the same kind when this one was barely seen), each chosen among the best matches to what is already
in place over its overlap, so a pattern's period and orientation carry on. ``match_exposure`` then
moves the low frequencies of the synthesised texels to those of their observed neighbours, so the
seam between seen and invented carries no step in brightness. Known texels are never changed.
"""

from __future__ import annotations

import numpy as np

#: most exemplar patches compared per block (drawn evenly at random from all fully known windows)
MAX_CANDIDATES = 1500
#: a block's patch is drawn among those whose overlap error is within this factor of the best
TOLERANCE = 1.1
#: weight of a patch's distance from the dominant colour against its overlap error (per texel)
DOMINANCE = 0.5


def known_windows(known: np.ndarray, patch: int) -> np.ndarray:
    """(M, 2) top-left (row, col) of every ``patch`` x ``patch`` window of ``known`` (H, W) bool
    whose texels are all known."""
    h, w = known.shape
    if h < patch or w < patch:
        return np.zeros((0, 2), dtype=np.int64)
    ii = np.pad(np.cumsum(np.cumsum(known.astype(np.int32), 0), 1), ((1, 0), (1, 0)))
    full = ii[patch:, patch:] - ii[:-patch, patch:] - ii[patch:, :-patch] + ii[:-patch, :-patch]
    return np.argwhere(full == patch * patch)


def synthesize(texture: np.ndarray, known: np.ndarray, exemplar: np.ndarray | None = None,
               exemplar_known: np.ndarray | None = None, patch: int = 24, overlap: int = 6,
               seed: int = 0) -> np.ndarray:
    """``texture`` (H, W, 3) uint8 with its unknown texels (``known`` (H, W) bool False) filled.

    exemplar / exemplar_known: where patches come from (default: ``texture`` / ``known``); patch:
    side of a copied patch, texels; overlap: texels a patch shares with its neighbours, matched and
    feathered. Deterministic for a ``seed``. With no full patch of known exemplar texels, the
    unknown texels get the exemplar's mean colour (nothing better is known).
    """
    rng = np.random.default_rng(seed)
    out = texture.astype(np.float32).copy()
    known = np.asarray(known, dtype=bool)
    if known.all():
        return texture.copy()
    if exemplar is None:
        exemplar, exemplar_known = texture, known
    exemplar_known = np.ones(exemplar.shape[:2], bool) if exemplar_known is None else exemplar_known
    patch = max(4, min(patch, *exemplar.shape[:2]))
    overlap = min(overlap, patch // 3)
    windows = known_windows(exemplar_known, patch)
    if not len(windows):
        colour = exemplar[exemplar_known].mean(axis=0) if exemplar_known.any() else np.full(3, 128.0)
        out[~known] = colour
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)
    if len(windows) > MAX_CANDIDATES:
        windows = windows[np.sort(rng.choice(len(windows), MAX_CANDIDATES, replace=False))]
    ex = exemplar.astype(np.float32)
    candidates = np.stack([ex[r:r + patch, c:c + patch] for r, c in windows])  # (M, P, P, 3)
    flat = candidates.reshape(len(candidates), -1)
    # patches far from the exemplar's dominant colour (a poster on a wall) are copied less: what
    # was not seen is most likely the surface's material, not the object hanging on it
    means = candidates.mean(axis=(1, 2))
    prior = DOMINANCE * patch * patch * ((means - np.median(means, axis=0)) ** 2).sum(axis=1)
    filled = known.copy()
    h, w = known.shape
    step = patch - overlap
    ramp = np.minimum(1.0, (np.arange(patch) + 1.0) / (overlap + 1.0)).astype(np.float32)
    for r0 in range(0, max(h - overlap, 1), step):
        for c0 in range(0, max(w - overlap, 1), step):
            r1, c1 = min(r0 + patch, h), min(c0 + patch, w)
            todo = ~filled[r0:r1, c0:c1]
            if not todo.any():
                continue
            ph, pw = r1 - r0, c1 - c0
            block = out[r0:r1, c0:c1]
            constraint = filled[r0:r1, c0:c1]
            if constraint.any():
                sel = np.zeros((patch, patch), bool)
                sel[:ph, :pw] = constraint
                target = np.zeros((patch, patch, 3), np.float32)
                target[:ph, :pw] = block
                m = np.repeat(sel.reshape(-1), 3)
                err = ((flat[:, m] - target.reshape(-1)[m]) ** 2).sum(axis=1) * (patch * patch / sel.sum()) + prior
                good = np.nonzero(err <= err.min() * TOLERANCE + 1e-3)[0]
                pick = candidates[rng.choice(good)]
            else:
                good = np.nonzero(prior <= prior.min() * TOLERANCE + 1e-3)[0]
                pick = candidates[rng.choice(good)]
            pick = pick[:ph, :pw]
            # feather into texels synthesised by earlier patches; known texels stay as they are
            weight = np.minimum.outer(ramp[:ph] if r0 else np.ones(ph, np.float32),
                                      ramp[:pw] if c0 else np.ones(pw, np.float32))
            earlier = constraint & ~known[r0:r1, c0:c1]
            alpha = np.where(earlier, weight, 1.0)[..., None]
            blend = np.where(constraint[..., None] & ~earlier[..., None], block, alpha * pick + (1 - alpha) * block)
            out[r0:r1, c0:c1] = blend
            filled[r0:r1, c0:c1] = True
    out[known] = texture[known]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def match_exposure(texture: np.ndarray, known: np.ndarray, sigma: float, fallback: np.ndarray | None = None
                   ) -> np.ndarray:
    """``texture`` (H, W, 3) uint8 whose unknown texels (``known`` False) have their low
    frequencies (Gaussian of ``sigma`` texels) moved to those of the known texels around them;
    far from any known texel, to ``fallback`` ((3,) RGB; default: the mean known colour)."""
    import cv2

    known = np.asarray(known, dtype=bool)
    if known.all():
        return texture.copy()
    img = texture.astype(np.float32)
    ksize = (0, 0)

    def lowpass(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = mask.astype(np.float32)
        num = cv2.GaussianBlur(img * m[..., None], ksize, sigma, borderType=cv2.BORDER_REFLECT)
        den = cv2.GaussianBlur(m, ksize, sigma, borderType=cv2.BORDER_REFLECT)
        return num, den

    if known.any():
        # the neighbours' exposure, not their objects: texels far from the dominant colour (a
        # poster on the wall) do not pull the synthesised texels towards their colour
        median = np.median(img[known], axis=0)
        distance = np.abs(img - median).sum(axis=-1)
        spread = max(30.0, 3.0 * float(np.median(distance[known])))
        inliers = known & (distance <= spread)
        mean = img[inliers].mean(axis=0) if fallback is None else np.asarray(fallback, np.float32)
        num, den = lowpass(inliers)
        eps = 0.05
        target = (num + eps * mean) / (den[..., None] + eps)
    else:
        if fallback is None:
            return texture.copy()
        target = np.broadcast_to(np.asarray(fallback, np.float32), img.shape)
    num_s, den_s = lowpass(~known)
    current = num_s / np.maximum(den_s[..., None], 1e-6)
    out = img.copy()
    out[~known] += (target - current)[~known]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
