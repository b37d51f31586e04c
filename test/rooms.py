"""Rooms built from points: floor rectangles, walls from the floor to ``HEIGHT`` and a table top,
sampled every ``STEP`` metres with a little colour noise, for the room-closing tests."""

from __future__ import annotations

import numpy as np

STEP = 0.02
HEIGHT = 2.4


def rect(origin, u, v, lu, lv, color, rng):
    a, b = np.meshgrid(np.arange(0, lu, STEP), np.arange(0, lv, STEP))
    p = np.asarray(origin) + np.outer(a.ravel(), u) + np.outer(b.ravel(), v)
    c = np.clip(np.asarray(color) + rng.normal(0, 6, (len(p), 3)), 0, 255)
    return p, c


def room_points(floor_cells, walls, table=None, seed=0):
    """Points of a room: floor rectangles [(x0, y0, x1, y1)], walls [((x0, y0), (x1, y1))] from z = 0
    to HEIGHT, and an optional table top (x0, y0, x1, y1, z) hiding the floor under it."""
    rng = np.random.default_rng(seed)
    parts = []
    for x0, y0, x1, y1 in floor_cells:
        p, c = rect((x0, y0, 0), (1, 0, 0), (0, 1, 0), x1 - x0, y1 - y0, (150, 110, 80), rng)
        if table is not None:
            tx0, ty0, tx1, ty1, _ = table
            under = (p[:, 0] > tx0) & (p[:, 0] < tx1) & (p[:, 1] > ty0) & (p[:, 1] < ty1)
            p, c = p[~under], c[~under]
        parts.append((p, c))
    for (x0, y0), (x1, y1) in walls:
        d = np.array([x1 - x0, y1 - y0, 0.0])
        length = float(np.linalg.norm(d))
        parts.append(rect((x0, y0, 0), d / length, (0, 0, 1), length, HEIGHT, (200, 200, 190), rng))
    if table is not None:
        x0, y0, x1, y1, z = table
        parts.append(rect((x0, y0, z), (1, 0, 0), (0, 1, 0), x1 - x0, y1 - y0, (90, 60, 40), rng))
    p = np.concatenate([q for q, _ in parts]).astype(np.float32)
    c = np.concatenate([c for _, c in parts]).astype(np.uint8)
    return p, c


BOX_3_WALLS = [((0, 0), (4, 0)), ((4, 0), (4, 3)), ((0, 3), (0, 0))]  # the wall at y = 3 is missing
