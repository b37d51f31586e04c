"""The transforms of a whole recording, looked up at any stamp (tf2's BufferCore, offline).

Every edge parent → child keeps all its samples: /tf_static edges hold one transform valid at all
times, /tf (and odometry) edges are interpolated between the samples around the stamp (linear in
translation, slerp in rotation). A stamp outside an edge's samples is served by its nearest
sample when it lies within ``tolerance_ns`` of it, and fails otherwise (tf2 does not extrapolate
either). ``lookup(target, source, t)`` chains the edges through the frames' common ancestor and
returns target_T_source at t. Errors name the frames and the edge that broke the chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from worldfm_ros.errors import SceneError


class TransformChainError(SceneError, LookupError):
    """No transform between two frames at a stamp: unknown frame, no chain, or no sample near it."""


@dataclass
class _Edge:
    parent: str
    static: bool
    stamps: list[int] = field(default_factory=list)
    translations: list[np.ndarray] = field(default_factory=list)
    quaternions: list[np.ndarray] = field(default_factory=list)  # x, y, z, w
    _sorted: tuple | None = None

    def add(self, stamp_ns: int, translation: np.ndarray, quaternion: np.ndarray) -> None:
        self.stamps.append(int(stamp_ns))
        self.translations.append(np.asarray(translation, np.float64))
        self.quaternions.append(np.asarray(quaternion, np.float64))
        self._sorted = None

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._sorted is None:
            order = np.argsort(np.asarray(self.stamps), kind="stable")
            stamps = np.asarray(self.stamps, np.int64)[order]
            keep = np.r_[np.diff(stamps) > 0, True]  # of samples sharing a stamp, the last one wins
            self._sorted = (stamps[keep], np.stack(self.translations)[order][keep],
                            np.stack(self.quaternions)[order][keep])
        return self._sorted

    def at(self, stamp_ns: int, tolerance_ns: int, child: str) -> np.ndarray:
        """(4, 4) parent_T_child at ``stamp_ns``."""
        T = np.eye(4)
        if self.static:
            T[:3, :3] = Rotation.from_quat(self.quaternions[-1]).as_matrix()
            T[:3, 3] = self.translations[-1]
            return T
        stamps, trans, quats = self._arrays()
        i = int(np.searchsorted(stamps, stamp_ns))
        if i < len(stamps) and stamps[i] == stamp_ns:
            j = k = i
        elif 0 < i < len(stamps):
            j, k = i - 1, i
        else:
            nearest = 0 if i == 0 else len(stamps) - 1
            if abs(int(stamps[nearest]) - stamp_ns) > tolerance_ns:
                raise TransformChainError(
                    f"transform {self.parent} -> {child}: no sample near t = {stamp_ns * 1e-9:.3f} s (its samples span "
                    f"{stamps[0] * 1e-9:.3f} .. {stamps[-1] * 1e-9:.3f} s, tolerance {tolerance_ns * 1e-9:.3f} s)")
            j = k = nearest
        if j == k:
            T[:3, :3] = Rotation.from_quat(quats[j]).as_matrix()
            T[:3, 3] = trans[j]
            return T
        a = (stamp_ns - stamps[j]) / (stamps[k] - stamps[j])
        T[:3, :3] = Slerp([0.0, 1.0], Rotation.from_quat(quats[[j, k]]))([a]).as_matrix()[0]
        T[:3, 3] = (1 - a) * trans[j] + a * trans[k]
        return T


class TfBuffer:
    """All transforms of a recording; each child frame has one parent (a tree, as tf2 requires)."""

    def __init__(self) -> None:
        self._edges: dict[str, _Edge] = {}

    @property
    def frames(self) -> set[str]:
        return set(self._edges) | {e.parent for e in self._edges.values()}

    def has_edge(self, child: str) -> bool:
        return child in self._edges

    def add(self, parent: str, child: str, translation: np.ndarray, quaternion_xyzw: np.ndarray, stamp_ns: int,
            static: bool = False) -> None:
        """One sample of parent_T_child: translation (3,) metres, unit quaternion (x, y, z, w).

        A child given a second parent keeps its first (tf2 would flip between them): raises
        TransformChainError naming both."""
        parent, child = parent.lstrip("/"), child.lstrip("/")
        if not parent or not child or parent == child:
            raise TransformChainError(f"transform {parent!r} -> {child!r}: frame ids must be distinct and non-empty")
        q = np.asarray(quaternion_xyzw, np.float64)
        norm = np.linalg.norm(q)
        if not np.all(np.isfinite(q)) or norm < 1e-6 or not np.all(np.isfinite(translation)):
            raise TransformChainError(f"transform {parent} -> {child} at t = {stamp_ns * 1e-9:.3f} s is not finite "
                                      f"or has a zero quaternion")
        edge = self._edges.get(child)
        if edge is None:
            edge = self._edges[child] = _Edge(parent, static)
        elif edge.parent != parent:
            raise TransformChainError(f"frame {child!r} has two parents, {edge.parent!r} and {parent!r} "
                                      f"(TF must be a tree)")
        edge.static = edge.static or static
        edge.add(stamp_ns, translation, q / norm)

    def _path_to_root(self, frame: str) -> list[str]:
        path = [frame]
        while path[-1] in self._edges:
            path.append(self._edges[path[-1]].parent)
            if len(path) > len(self._edges) + 1:
                raise TransformChainError(f"TF has a cycle through {frame!r}")
        return path

    def root(self, frame: str) -> str:
        """The top of ``frame``'s tree."""
        return self._path_to_root(frame)[-1]

    def connected(self, a: str, b: str) -> bool:
        return a in self.frames and b in self.frames and self.root(a) == self.root(b)

    def chain(self, target: str, source: str) -> list[str]:
        """The frames from ``source`` up to the common ancestor and down to ``target``."""
        for name in (target, source):
            if name not in self.frames:
                known = ", ".join(sorted(self.frames)) or "none"
                raise TransformChainError(f"frame {name!r} is not in /tf or /tf_static (frames: {known})")
        up_s, up_t = self._path_to_root(source), self._path_to_root(target)
        if up_s[-1] != up_t[-1]:
            raise TransformChainError(f"no TF chain from {target!r} to {source!r}: {source!r} hangs under "
                                      f"{up_s[-1]!r}, {target!r} under {up_t[-1]!r}")
        common = next(f for f in up_s if f in up_t)
        return up_s[: up_s.index(common) + 1] + list(reversed(up_t[: up_t.index(common)]))

    def lookup(self, target: str, source: str, stamp_ns: int, tolerance_ns: int = 50_000_000) -> np.ndarray:
        """(4, 4) target_T_source at ``stamp_ns`` (maps points in ``source`` to ``target``), metres."""
        self.chain(target, source)  # names the missing frame or the break
        up_s, up_t = self._path_to_root(source), self._path_to_root(target)
        common = next(f for f in up_s if f in up_t)
        return np.linalg.inv(self._to_ancestor(up_t, common, stamp_ns, tolerance_ns)) @ \
            self._to_ancestor(up_s, common, stamp_ns, tolerance_ns)

    def _to_ancestor(self, path: list[str], ancestor: str, stamp_ns: int, tolerance_ns: int) -> np.ndarray:
        """ancestor_T_path[0] along ``path`` (a frame's path to its root)."""
        T = np.eye(4)
        for child in path[: path.index(ancestor)]:
            T = self._edges[child].at(stamp_ns, tolerance_ns, child) @ T
        return T
