"""Record ROS topics to a rosbag2 MCAP bag with a pure-Python writer (rosbags).

rosbag2 is not installable from PyPI; this recorder subscribes in raw (serialized CDR)
mode and hands the bytes to the writer of :mod:`worldfm_ros.bags` unchanged, stamped with
the receive time like ``ros2 bag record``. As rosbag2 does, it subscribes to a topic once a
publisher of it is discovered, with the publishers' QoS: reliable when every publisher
offers reliable (so no message is lost to a best-effort transport), transient-local when
every one offers it, and a deep queue; the bag's ``offered_qos_profiles`` are the
publishers' own, so a replay offers the same. A topic nobody publishes gets no connection.
Messages DDS reports lost are counted in ``dropped``. ``close()`` finalises the bag
(metadata.yaml). The open chunk is written to disk every ``flush_period_s``, so a killed
recorder loses at most that much; ``worldfm bag-reindex`` then repairs the bag.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.event_handler import SubscriptionEventCallbacks
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

from worldfm_ros import bags

# Subscription queue per topic: room for several seconds of 640x480 frames at 30 Hz while the writer catches up.
QUEUE_DEPTH = 200


def ros_type_name(msg_class: type) -> str:
    """'sensor_msgs/msg/Image' for sensor_msgs.msg.Image."""
    package = msg_class.__module__.split(".")[0]
    return f"{package}/msg/{msg_class.__name__}"


def offered_qos(qos: QoSProfile) -> Qos:
    """The rosbag2 metadata record of a publisher QoS, so that replay offers the same QoS
    (e.g. transient-local /tf_static, which tf2 listeners require)."""
    never = QosTime(sec=0x7FFFFFFF, nsec=0xFFFFFFFF)  # rosbag2's "infinite"
    return Qos(
        history=QosHistory.KEEP_LAST, depth=max(1, int(qos.depth)),
        reliability=QosReliability(int(qos.reliability)), durability=QosDurability(int(qos.durability)),
        deadline=never, lifespan=never, liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=never, avoid_ros_namespace_conventions=False,
    )


def subscription_qos(offered: list[QoSProfile], depth: int = QUEUE_DEPTH) -> QoSProfile:
    """The QoS that receives everything ``offered`` publishers send: reliable and transient-local
    only where every publisher offers them (else the subscription would not match them)."""
    reliable = all(q.reliability == ReliabilityPolicy.RELIABLE for q in offered)
    latched = all(q.durability == DurabilityPolicy.TRANSIENT_LOCAL for q in offered)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


@dataclass
class Topic:
    """name: topic name as subscribed (relative names resolve in the node's namespace);
    msg_class: the rclpy message class."""

    name: str
    msg_class: type


class BagRecorder:
    """Writes every message of ``topics`` seen by ``node`` to a new MCAP bag at ``path``.

    Subscriptions are made as publishers appear (checked every ``discovery_period_s``); spin the
    node. counts / dropped: messages written / reported lost by DDS, per resolved topic name.
    compress: zstd chunks (rosbag2's zstd_fast preset); False writes them plain.
    """

    def __init__(self, node: Node, path: str | Path, topics: list[Topic], compress: bool = True,
                 discovery_period_s: float = 0.1, flush_period_s: float = 1.0) -> None:
        self.path = Path(path)
        self._node = node
        self._lock = threading.Lock()
        self._store = bags.typestore()
        self._writer = bags.open_writer(self.path, compress=compress)
        self._wanted = {node.resolve_topic_name(t.name): t.msg_class for t in topics}
        self.counts: dict[str, int] = {}
        self.dropped: dict[str, int] = {}
        self._subscriptions = {}
        self._closed = False
        self._discover()
        self._timers = [node.create_timer(discovery_period_s, self._discover),
                        node.create_timer(flush_period_s, self._flush)]

    def _discover(self) -> None:
        for name, msg_class in self._wanted.items():
            if name in self._subscriptions:
                continue
            offered = [info.qos_profile for info in self._node.get_publishers_info_by_topic(name)]
            if offered:
                self._subscribe(name, msg_class, offered)

    def _subscribe(self, name: str, msg_class: type, offered: list[QoSProfile]) -> None:
        with self._lock:
            if self._closed:
                return
            conn = self._writer.add_connection(name, ros_type_name(msg_class), typestore=self._store,
                                               offered_qos_profiles=[offered_qos(q) for q in offered])
            self.counts[name] = self.dropped[name] = 0

        def on_lost(event, n=name) -> None:
            self.dropped[n] += event.total_count_change

        self._subscriptions[name] = self._node.create_subscription(
            msg_class, name, lambda data, c=conn, n=name: self._on_message(c, n, data), subscription_qos(offered),
            raw=True, event_callbacks=SubscriptionEventCallbacks(message_lost=on_lost))

    def _flush(self) -> None:
        with self._lock:
            if not self._closed:
                bags.flush(self._writer)

    def _on_message(self, connection, topic: str, data: bytes) -> None:
        with self._lock:
            if self._closed:
                return
            self._writer.write(connection, self._node.get_clock().now().nanoseconds, data)
            self.counts[topic] += 1

    def report(self) -> str:
        """One line: messages per topic, and what was lost if anything."""
        text = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        lost = {k: v for k, v in self.dropped.items() if v}
        return text + ("; DROPPED " + ", ".join(f"{k} {v}" for k, v in lost.items()) if lost else "; none dropped")

    def close(self) -> None:
        """Finalise the bag; later messages are dropped. Safe to call twice."""
        with self._lock:
            if not self._closed:
                self._closed = True
                for timer in self._timers:
                    timer.cancel()
                self._writer.close()


def simulator_topics(namespace: str = "", cameras: tuple[str, ...] = ("camera",), imu: bool = False,
                     compressed_only: bool = False) -> list[Topic]:
    """The simulator's topics: per camera (rig names, e.g. ``stereo/left``) image, camera_info,
    depth and frame stats; ``imu/data`` when ``imu``; odometry, TF, diagnostics and clock.
    ``compressed_only``: image_transport's ``image_raw/compressed`` and
    ``depth/image_raw/compressedDepth`` instead of the raw images (the node's ``compressed``)."""
    from diagnostic_msgs.msg import DiagnosticArray
    from nav_msgs.msg import Odometry
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image, Imu
    from tf2_msgs.msg import TFMessage

    from worldfm_ros.msg import FrameStats

    ns = namespace.strip("/")
    prefix = f"/{ns}/" if ns else "/"
    topics = []
    for cam in cameras:
        images = ([Topic(f"{prefix}{cam}/image_raw/compressed", CompressedImage),
                   Topic(f"{prefix}{cam}/depth/image_raw/compressedDepth", CompressedImage)] if compressed_only else
                  [Topic(f"{prefix}{cam}/image_raw", Image), Topic(f"{prefix}{cam}/depth/image_raw", Image)])
        topics += [*images, Topic(f"{prefix}{cam}/camera_info", CameraInfo),
                   Topic(f"{prefix}{cam}/frame_stats", FrameStats)]
    if imu:
        topics.append(Topic(prefix + "imu/data", Imu))
    return topics + [
        Topic(prefix + "odom", Odometry),
        Topic("/tf", TFMessage),
        Topic("/tf_static", TFMessage),
        Topic("/clock", Clock),
        Topic("/diagnostics", DiagnosticArray),
    ]
