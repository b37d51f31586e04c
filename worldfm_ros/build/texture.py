"""Texture for surfaces nobody saw: the observed material continued, without the light that fell on it.

A captured surface is its material under one lighting: sun stripes and shadows on the floor, a
brighter wall near the window. ``complete_texture`` keeps the two apart (``split_shading``): the
shading is the texture's low frequencies (a mask-normalised Gaussian of about a quarter patch), the
detail the texture divided by it (the grain, a pattern's stripes, around 1). Only the detail is
synthesised where nothing was seen, by image quilting (``synthesize``, Efros & Freeman 2001: square
patches copied from the known texels of an exemplar, the same surface or another of its kind, each
chosen among the best matches to what is in place over its overlap, so a pattern's period and
orientation carry on); the shading is continued smoothly from the observed texels
(``continue_shading``: push-pull, fading to the material's mean level away from them), so no sun
patch is copied into the unseen floor and the seam carries no step. Known texels are never changed.
"""

from __future__ import annotations

import numpy as np

#: most exemplar patches compared per block (drawn evenly at random from all fully known windows)
MAX_CANDIDATES = 1500
#: a block's patch is drawn among those whose overlap error is within this factor of the best
TOLERANCE = 1.1
#: weight of a patch's distance from the dominant colour against its overlap error (per texel)
DOMINANCE = 0.5
#: weight of the halo an edge of the light leaves in a patch's detail (``light_edges``) against its
#: overlap error: low, so a floor crossed by shadow bars still gives its grain
EDGE_WEIGHT = 0.25
#: a channel at or above this is clipped, a texel whose brightest channel is at or below DARK in
#: deep shadow: neither shows the material's grain (``well_exposed``)
CLIPPED = 250
DARK = 40


def window_sums(values: np.ndarray, patch: int) -> np.ndarray:
    """(H - patch + 1, W - patch + 1): the sum of (H, W) ``values`` over each ``patch`` x ``patch``
    window, indexed by its top-left texel (an integral image)."""
    ii = np.pad(np.cumsum(np.cumsum(values.astype(np.float64), 0), 1), ((1, 0), (1, 0)))
    return ii[patch:, patch:] - ii[:-patch, patch:] - ii[patch:, :-patch] + ii[:-patch, :-patch]


def known_windows(known: np.ndarray, patch: int) -> np.ndarray:
    """(M, 2) top-left (row, col) of every ``patch`` x ``patch`` window of ``known`` (H, W) bool
    whose texels are all known."""
    h, w = known.shape
    if h < patch or w < patch:
        return np.zeros((0, 2), dtype=np.int64)
    return np.argwhere(window_sums(known, patch) > patch * patch - 0.5)


def synthesize(texture: np.ndarray, known: np.ndarray, exemplar: np.ndarray | None = None,
               exemplar_known: np.ndarray | None = None, patch: int = 24, overlap: int = 6,
               seed: int = 0, cost: np.ndarray | None = None) -> np.ndarray:
    """``texture`` (H, W, 3) uint8 with its unknown texels (``known`` (H, W) bool False) filled.

    exemplar / exemplar_known: where patches come from (default: ``texture`` / ``known``); patch:
    side of a copied patch, texels; overlap: texels a patch shares with its neighbours, matched and
    feathered; cost: (H, W) of the exemplar, squared colour error per texel a copy of it is
    expected to bring, added up over a patch to its overlap error. Deterministic for a ``seed``. With no full patch of known exemplar texels, the
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
    if cost is not None:
        prior = prior + window_sums(cost, patch)[windows[:, 0], windows[:, 1]]
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


def well_exposed(texture: np.ndarray, known: np.ndarray) -> np.ndarray:
    """(H, W) bool: the ``known`` texels of ``texture`` (H, W, 3) uint8 with no channel clipped and
    not in deep shadow, where the material's grain is recorded; all ``known`` ones when fewer than
    a quarter of them are (a surface seen only against the light)."""
    peak = texture.max(axis=-1)
    exposed = known & (peak < CLIPPED) & (peak > DARK)
    return exposed if exposed.sum() >= 0.25 * known.sum() else known


def dominant(texture: np.ndarray, known: np.ndarray) -> np.ndarray:
    """(H, W) bool: the ``known`` texels of ``texture`` (H, W, 3) near its dominant (median) colour,
    the surface's material rather than the objects on it (a poster, a television on the wall)."""
    img = texture.astype(np.float32)
    distance = np.abs(img - np.median(img[known], axis=0)).sum(axis=-1)
    spread = max(30.0, 3.0 * float(np.median(distance[known])))
    return known & (distance <= spread)


def split_shading(texture: np.ndarray, known: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """(shading, detail) of ``texture`` (H, W, 3) uint8 over its ``known`` (H, W) texels, both (H, W, 3)
    float32 with texture = shading * detail there: shading is the mask-normalised Gaussian of
    ``sigma`` texels (light, shadows, exposure: everything coarser than the material's pattern),
    detail the ratio around 1 (grain, stripes). Zero where nothing is known within reach. Near an
    edge of the light the blur leaves a halo of it in the detail (``light_edges`` says how much)."""
    import cv2

    m = known.astype(np.float32)
    img = texture.astype(np.float32) * m[..., None]
    num = cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    den = cv2.GaussianBlur(m, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    shading = num / np.maximum(den[..., None], 1e-3)
    detail = np.where(known[..., None], texture / np.maximum(shading, 1.0), 0.0).astype(np.float32)
    return shading.astype(np.float32), detail


def light_edges(shading: np.ndarray, sigma: float, level: np.ndarray) -> np.ndarray:
    """(H, W) squared colour error per texel that the detail near an edge of the light (a shadow's
    border, blurred over ``sigma`` texels in ``shading`` (H, W, 3)) carries at the ``level`` ((3,)
    RGB): the relative change of the light over ``sigma`` texels there, at that level."""
    import cv2

    lum = np.maximum(shading.mean(axis=-1), 1.0).astype(np.float32)
    gx, gy = cv2.Sobel(lum, cv2.CV_32F, 1, 0, ksize=3) / 8, cv2.Sobel(lum, cv2.CV_32F, 0, 1, ksize=3) / 8
    change = sigma * np.hypot(gx, gy) / lum
    return (change ** 2) * float((np.asarray(level, np.float64) ** 2).sum())


def continue_shading(shading: np.ndarray, known: np.ndarray, level: np.ndarray, reach: float) -> np.ndarray:
    """(H, W, 3) float32 ``shading`` carried from its ``known`` (H, W) texels over the rest: a
    push-pull continuation (smooth, no step at the seam), relaxing to ``level`` ((3,) RGB) with the
    distance d from the known texels as exp(-d / ``reach``) (texels): the light seen at the seam
    fades out, none is repeated further away."""
    import cv2

    from worldfm_ros.render.fill import push_pull_fill

    if not known.any():
        return np.broadcast_to(np.asarray(level, np.float32), shading.shape).copy()
    pulled = push_pull_fill(np.clip(shading + 0.5, 0, 255).astype(np.uint8), known).astype(np.float32)
    d = cv2.distanceTransform((~known).astype(np.uint8), cv2.DIST_L2, 5)
    w = np.exp(-d / max(reach, 1e-6))[..., None]
    out = level + w * (pulled - level)
    out[known] = shading[known]
    return out.astype(np.float32)


def complete_texture(texture: np.ndarray, known: np.ndarray, exemplar: np.ndarray | None = None,
                     exemplar_known: np.ndarray | None = None, inside: np.ndarray | None = None, patch: int = 24,
                     overlap: int = 6, shading_sigma: float = 6.0, reach: float = 12.0, seed: int = 0) -> np.ndarray:
    """``texture`` (H, W, 3) uint8 with its unknown texels (``known`` (H, W) bool False) of ``inside``
    ((H, W) bool, default all) invented, the others untouched: shading and detail apart, so the light
    on the exemplar is not copied.

    Both the texture and the exemplar (default: the texture itself) are split into a shading and a
    detail layer (``split_shading``, Gaussian of ``shading_sigma`` texels: about a quarter patch, so
    a pattern that repeats within a patch is detail and a sun stripe or shadow, wider than that, is
    shading). The detail is synthesised by quilting (``synthesize``, ``patch`` / ``overlap`` texels,
    seeded), from the exemplar's well-exposed texels of its dominant material (``well_exposed``,
    ``dominant``), away from the edges of its light where it can (their halo costs a patch,
    ``light_edges``, weighted by ``EDGE_WEIGHT``); the shading is continued from the texture's own
    known texels of that material (``continue_shading``, fading over ``reach`` texels) to the
    exemplar material's mean colour. With nothing known of the exemplar the unknown texels get
    its mean colour.
    """
    known = np.asarray(known, dtype=bool)
    keep = known | ~(np.ones_like(known) if inside is None else np.asarray(inside, dtype=bool))
    if keep.all():
        return texture.copy()
    if exemplar is None:
        exemplar, exemplar_known = texture, known
    exemplar_known = np.ones(exemplar.shape[:2], bool) if exemplar_known is None else np.asarray(exemplar_known, bool)
    if not exemplar_known.any():
        return synthesize(texture, keep, exemplar, exemplar_known, patch, overlap, seed)
    ex_shading, ex_detail = split_shading(exemplar, exemplar_known, shading_sigma)
    level = exemplar[dominant(exemplar, exemplar_known)].astype(np.float32).mean(axis=0)  # (3,) RGB
    # patches of the material where its grain was recorded: not the washed-out far floor, not the
    # sun-clipped planks, which would invent a flat surface
    material = dominant(exemplar, well_exposed(exemplar, exemplar_known))
    ex_detail /= np.maximum(ex_detail[material].mean(axis=0), 1e-3)
    if len(known_windows(material, min(patch, *exemplar.shape[:2]))):
        exemplar_known = material  # invent the surface's material, not the poster on it
    shading, detail = split_shading(texture, known, shading_sigma)
    detail[~known] = 1.0  # texels outside the surface constrain no patch

    def flat(d: np.ndarray) -> np.ndarray:  # the detail at the material's level, in colour units
        return np.clip(d * level + 0.5, 0, 255).astype(np.uint8)

    synth = synthesize(flat(detail), keep, flat(ex_detail), exemplar_known, patch, overlap, seed,
                       cost=EDGE_WEIGHT * light_edges(ex_shading, shading_sigma, level))
    seen = dominant(texture, known) if known.any() else known
    light = continue_shading(shading, seen, level, reach)
    out = synth.astype(np.float32) / np.maximum(level, 1.0) * light
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    out[keep] = texture[keep]
    return out
