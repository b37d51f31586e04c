"""A small transform tree with tf2's lookup contract, for machines without tf2_ros.

``lookup(target, source)`` returns target_T_source (maps points in ``source`` to
``target``) composed from the latest transform of every edge on the chain, stamped
with the oldest non-static edge stamp (integer nanoseconds, so image stamps copied
from it stay exact), like tf2's "latest common time" for a tree
where each edge keeps only its newest sample. Errors name the frames involved.
On a real ROS install the node uses tf2_ros.Buffer instead; this class exists only
because tf2_ros is not installable from PyPI.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from worldfm_ros.camera import check_pose, invert_pose
from worldfm_ros.errors import WorldFMError


BACKWARD_JUMP_NS = 1_000_000_000


class TransformLookupError(WorldFMError, LookupError):
    """A lookup failed: unknown frame, frames not connected, or data too old."""


@dataclass
class _Edge:
    parent: str
    transform: np.ndarray  # parent_T_child
    stamp_ns: int
    static: bool


class TransformTree:
    """Frames connected by parent→child transforms; each child has one parent (a tree)."""

    def __init__(self) -> None:
        self._edges: dict[str, _Edge] = {}

    @property
    def frames(self) -> set[str]:
        return set(self._edges) | {e.parent for e in self._edges.values()}

    def set_transform(self, parent: str, child: str, parent_T_child: np.ndarray, stamp_ns: int,
                      static: bool = False) -> None:
        """Insert or replace the child's edge. Raises TransformLookupError for an invalid transform
        or one that would create a cycle; an older stamp than the stored one is ignored."""
        if not parent or not child or parent == child:
            raise TransformLookupError(f"transform {parent!r} -> {child!r}: frame ids must be distinct and non-empty")
        try:
            T = check_pose(parent_T_child, f"transform {parent!r} -> {child!r}")
        except WorldFMError as exc:
            raise TransformLookupError(str(exc)) from None
        if child in self._ancestors(parent):
            raise TransformLookupError(f"transform {parent!r} -> {child!r} would create a cycle")
        old = self._edges.get(child)
        # An older sample is late delivery, and ignored; one older by more than a second is a
        # time reset (a looping bag, a restarted simulation) and replaces the edge, as tf2
        # clears its buffer when time jumps back.
        if old is not None and not static and not old.static and 0 < old.stamp_ns - stamp_ns <= BACKWARD_JUMP_NS:
            return
        self._edges[child] = _Edge(parent, T, int(stamp_ns), static)

    def _ancestors(self, frame: str) -> list[str]:
        chain = [frame]
        while chain[-1] in self._edges:
            chain.append(self._edges[chain[-1]].parent)
            if len(chain) > 10_000:
                raise TransformLookupError(f"frame {frame!r}: transform tree contains a cycle")
        return chain

    def lookup(self, target: str, source: str, now_ns: int | None = None,
               max_age_s: float | None = None) -> tuple[np.ndarray, int | None]:
        """Return (target_T_source (4, 4), stamp_ns). stamp_ns = oldest dynamic edge stamp on the
        chain (None when all edges are static). With now_ns and max_age_s, data older than
        max_age_s raises TransformLookupError('stale')."""
        for frame in (target, source):
            if frame not in self.frames:
                known = ", ".join(sorted(self.frames)) or "none"
                raise TransformLookupError(f"frame {frame!r} does not exist (known frames: {known})")
        up_src, up_tgt = self._ancestors(source), self._ancestors(target)
        common = next((f for f in up_src if f in set(up_tgt)), None)
        if common is None:
            raise TransformLookupError(f"frames {target!r} and {source!r} are not connected in the transform tree")
        stamp: int | None = None
        root_T_source = np.eye(4)
        for frame in up_src[: up_src.index(common)]:
            edge = self._edges[frame]
            root_T_source = edge.transform @ root_T_source
            stamp = stamp if edge.static else (edge.stamp_ns if stamp is None else min(stamp, edge.stamp_ns))
        root_T_target = np.eye(4)
        for frame in up_tgt[: up_tgt.index(common)]:
            edge = self._edges[frame]
            root_T_target = edge.transform @ root_T_target
            stamp = stamp if edge.static else (edge.stamp_ns if stamp is None else min(stamp, edge.stamp_ns))
        if now_ns is not None and max_age_s is not None and stamp is not None and now_ns - stamp > max_age_s * 1e9:
            raise TransformLookupError(
                f"transform {target!r} -> {source!r} is stale: newest data is {(now_ns - stamp) * 1e-9:.3f} s old "
                f"(limit {max_age_s:.3f} s)")
        return invert_pose(root_T_target) @ root_T_source, stamp
