"""TF publishing and lookup: tf2_ros when importable, a small fallback otherwise.

A real ROS 2 install has tf2_ros and it is used as is. Where it is missing (ROS from
PyPI wheels), the fallback publishes tf2_msgs/TFMessage on /tf and /tf_static with
tf2's QoS, and listens to both into :class:`worldfm_ros.ros.tf_tree.TransformTree`,
which implements the same lookup contract (latest transform along the chain).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from tf2_msgs.msg import TFMessage

from worldfm_ros.ros.conversions import time_ns, transform_stamped_msg, transform_to_matrix
from worldfm_ros.ros.tf_tree import TransformLookupError, TransformTree

try:  # pragma: no cover - exercised only on full ROS installs
    import tf2_ros
except ImportError:
    tf2_ros = None

TF_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE,
                    history=HistoryPolicy.KEEP_LAST)
TF_STATIC_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL, history=HistoryPolicy.KEEP_LAST)


class TfPublisher:
    """Sends dynamic transforms on /tf and latched static ones on /tf_static."""

    def __init__(self, node: Node) -> None:
        self._pub = node.create_publisher(TFMessage, "/tf", TF_QOS)
        self._static_pub = node.create_publisher(TFMessage, "/tf_static", TF_STATIC_QOS)
        self._static: dict[str, object] = {}

    def send(self, transforms: list[tuple[np.ndarray, int, str, str]]) -> None:
        """transforms: (parent_T_child (4, 4), stamp_ns, parent, child) each."""
        self._pub.publish(TFMessage(transforms=[transform_stamped_msg(*t) for t in transforms]))

    def send_static(self, transforms: list[tuple[np.ndarray, int, str, str]]) -> None:
        """Static transforms accumulate (keyed by child) and are republished together, as tf2 does."""
        for t in transforms:
            self._static[t[3]] = transform_stamped_msg(*t)
        self._static_pub.publish(TFMessage(transforms=list(self._static.values())))


class TfListener:
    """Looks up transforms from /tf and /tf_static. lookup() raises TransformLookupError.

    on_reject: called with a one-line reason for every received transform that is dropped
    (NaN, a non-unit quaternion, a cycle).
    """

    def __init__(self, node: Node, on_reject: Callable[[str], None] | None = None) -> None:
        self._node = node
        self.tree = TransformTree()
        self._buffer = None
        if tf2_ros is not None:  # pragma: no cover
            self._buffer = tf2_ros.Buffer()
            self._listener = tf2_ros.TransformListener(self._buffer, node)
        else:
            node.create_subscription(TFMessage, "/tf", lambda m: self._on_tf(m, False), TF_QOS)
            node.create_subscription(TFMessage, "/tf_static", lambda m: self._on_tf(m, True), TF_STATIC_QOS)
        self.rejected = 0
        self.last_rejection = ""
        self._on_reject = on_reject

    def _on_tf(self, msg: TFMessage, static: bool) -> None:
        for t in msg.transforms:
            try:
                self.tree.set_transform(t.header.frame_id, t.child_frame_id, transform_to_matrix(t.transform),
                                        time_ns(t.header.stamp), static=static)
            except (ValueError, TransformLookupError) as exc:
                self.rejected += 1
                self.last_rejection = f"{t.header.frame_id} -> {t.child_frame_id}: {exc}"
                if self._on_reject is not None:
                    self._on_reject(self.last_rejection)

    def lookup(self, target: str, source: str, now_ns: int, max_age_s: float) -> tuple[np.ndarray, int]:
        """(target_T_source (4, 4), stamp_ns) of the latest data; raises TransformLookupError."""
        if self._buffer is not None:  # pragma: no cover
            from rclpy.time import Time

            try:
                t = self._buffer.lookup_transform(target, source, Time())
            except Exception as exc:  # tf2 raises several exception types
                raise TransformLookupError(str(exc)) from None
            stamp = time_ns(t.header.stamp)
            if stamp == 0:  # tf2's stamp for a chain of static transforms only
                return transform_to_matrix(t.transform), now_ns
            if now_ns - stamp > max_age_s * 1e9:
                raise TransformLookupError(f"transform {target!r} -> {source!r} is stale: "
                                           f"{(now_ns - stamp) * 1e-9:.3f} s old (limit {max_age_s:.3f} s)")
            return transform_to_matrix(t.transform), stamp
        T, stamp = self.tree.lookup(target, source, now_ns=now_ns, max_age_s=max_age_s)
        return T, (now_ns if stamp is None else stamp)
