"""Following a pose published on /tf (``input_mode: tf``): the base pose a frame renders, refused
when missing, stale or stamped ahead of the node's clock, and the body twist between the last two
followed poses (the velocity the motion effects need). No rclpy: the transforms come from a
``lookup`` callable (``TfListener.lookup`` in the node, a ``TransformTree``'s in tests)."""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.spatial.transform import Rotation

from worldfm_ros.ros.tf_tree import TransformLookupError
from worldfm_ros.sim.config import SimConfig

#: (target, source, now_ns, max_age_s) -> (target_T_source (4, 4), stamp_ns); TransformLookupError
Lookup = Callable[[str, str, int, float], tuple[np.ndarray, int]]


class TfFollower:
    """The followed base pose and its velocity.

    lookup: the transform source (see ``Lookup``). base_from_optical: map_T_optical (4, 4) ->
    map_T_base (4, 4) through the camera mount (``CameraRig.base_from_optical_in_map``), for
    ``tf_source: optical``. report: ``(message, throttle_key)``, how a refused pose reaches the log
    and diagnostics.
    """

    def __init__(self, lookup: Lookup, base_from_optical: Callable[[np.ndarray], np.ndarray],
                 report: Callable[[str, str], None]) -> None:
        self._lookup = lookup
        self._base_from_optical = base_from_optical
        self._report = report
        self._last: tuple[np.ndarray, int] | None = None  # the last followed pose, for its velocity

    def pose(self, cfg: SimConfig, now_ns: int) -> tuple[np.ndarray, int] | None:
        """(map_T_base (4, 4), stamp_ns) of the latest pose on /tf (``cfg.tf_source``: map ->
        optical, or map -> base), or None (reported) when there is none younger than
        ``cfg.tf_max_age_s`` or it is stamped more than ``cfg.tf_future_tolerance_s`` ahead of
        ``now_ns``."""
        f = cfg.frames
        source = f.optical if cfg.tf_source == "optical" else f.base
        try:
            T, stamp = self._lookup(f.map, source, now_ns, cfg.tf_max_age_s)
        except TransformLookupError as exc:
            self._report(f"waiting for pose on /tf: {exc}", "waiting for pose on /tf")
            return None
        ahead_s = (stamp - now_ns) * 1e-9
        if ahead_s > cfg.tf_future_tolerance_s:
            self._report(f"/tf rejected: {f.map} -> {source} is stamped {ahead_s:.3f} s ahead of the node's clock "
                         f"(tf_future_tolerance_s {cfg.tf_future_tolerance_s:g}); images would carry that stamp",
                         "/tf stamped ahead")
            return None
        if cfg.tf_source == "optical":
            T = self._base_from_optical(T)
        return T, stamp

    def twist(self, pose: tuple[np.ndarray, int]) -> tuple[np.ndarray, np.ndarray] | None:
        """Body twist (linear m/s, angular rad/s, both (3,) in base_link) from the previously
        followed pose to ``pose`` (map_T_base, stamp_ns), which becomes the previous one; None
        for the first pose or one not newer than the previous."""
        last, self._last = self._last, pose
        if last is None or pose[1] <= last[1]:
            return None
        dt = (pose[1] - last[1]) * 1e-9
        prev_T_now = np.linalg.inv(last[0]) @ pose[0]
        return prev_T_now[:3, 3] / dt, Rotation.from_matrix(prev_T_now[:3, :3]).as_rotvec() / dt
