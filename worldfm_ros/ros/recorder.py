"""Record ROS topics to a rosbag2 MCAP bag with a pure-Python writer (rosbags).

rosbag2 is not installable from PyPI; this recorder subscribes in raw (serialized CDR)
mode and hands the bytes to ``rosbags.rosbag2.Writer`` unchanged, stamped with the
receive time like ``ros2 bag record``. ``close()`` finalises the bag (metadata.yaml);
call it on shutdown (the ``worldfm record`` command does so on SIGINT/SIGTERM).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import QoSProfile
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore, get_types_from_msg

from worldfm_ros.errors import WorldFMError
from worldfm_ros.resources import share_dir


def ros_type_name(msg_class: type) -> str:
    """'sensor_msgs/msg/Image' for sensor_msgs.msg.Image."""
    package = msg_class.__module__.split(".")[0]
    return f"{package}/msg/{msg_class.__name__}"


def offered_qos(qos: QoSProfile) -> Qos:
    """The rosbag2 metadata record of a publisher QoS, so that replay offers the same QoS
    (e.g. transient-local /tf_static, which tf2 listeners require)."""
    never = QosTime(sec=0x7FFFFFFF, nsec=0xFFFFFFFF)  # rosbag2's "infinite"
    return Qos(
        history=QosHistory.KEEP_LAST, depth=int(qos.depth),
        reliability=QosReliability(int(qos.reliability)), durability=QosDurability(int(qos.durability)),
        deadline=never, lifespan=never, liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=never, avoid_ros_namespace_conventions=False,
    )


def _typestore():
    store = get_typestore(Stores.ROS2_JAZZY)
    msg_dir = share_dir() / "msg"
    for path in sorted(msg_dir.glob("*.msg")):
        store.register(get_types_from_msg(path.read_text(), f"worldfm_ros/msg/{path.stem}"))
    return store


@dataclass
class Topic:
    """name: topic name as subscribed; msg_class: the rclpy message class; qos: subscription QoS."""

    name: str
    msg_class: type
    qos: QoSProfile


class BagRecorder:
    """Subscribes to ``topics`` on ``node`` and writes every message to an MCAP bag at ``path``."""

    def __init__(self, node: Node, path: str | Path, topics: list[Topic]) -> None:
        self.path = Path(path)
        if self.path.exists():
            raise WorldFMError(f"{self.path}: bag output already exists (rosbag2 never overwrites)")
        self._node = node
        self._lock = threading.Lock()
        self._store = _typestore()
        self._writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self.counts: dict[str, int] = {}
        self._closed = False
        for topic in topics:
            resolved = node.resolve_topic_name(topic.name)
            conn = self._writer.add_connection(resolved, ros_type_name(topic.msg_class), typestore=self._store,
                                               offered_qos_profiles=[offered_qos(topic.qos)])
            self.counts[resolved] = 0
            node.create_subscription(topic.msg_class, topic.name,
                                     lambda data, c=conn, n=resolved: self._on_message(c, n, data),
                                     topic.qos, raw=True)

    def _on_message(self, connection, topic: str, data: bytes) -> None:
        with self._lock:
            if self._closed:
                return
            self._writer.write(connection, self._node.get_clock().now().nanoseconds, data)
            self.counts[topic] += 1

    def close(self) -> None:
        """Finalise the bag; later messages are dropped. Safe to call twice."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._writer.close()


def simulator_topics(namespace: str = "") -> list[Topic]:
    """The simulator's camera, odometry, TF, diagnostics and clock topics, with matching QoS."""
    from diagnostic_msgs.msg import DiagnosticArray
    from nav_msgs.msg import Odometry
    from rclpy.qos import qos_profile_sensor_data
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import CameraInfo, Image
    from tf2_msgs.msg import TFMessage

    from worldfm_ros.msg import FrameStats
    from worldfm_ros.ros.tf_io import TF_QOS, TF_STATIC_QOS

    ns = namespace.strip("/")
    prefix = f"/{ns}/" if ns else "/"
    reliable = QoSProfile(depth=100)
    return [
        Topic(prefix + "camera/image_raw", Image, qos_profile_sensor_data),
        Topic(prefix + "camera/camera_info", CameraInfo, qos_profile_sensor_data),
        Topic(prefix + "camera/depth/image_raw", Image, qos_profile_sensor_data),
        Topic(prefix + "camera/frame_stats", FrameStats, reliable),
        Topic(prefix + "odom", Odometry, reliable),
        Topic("/tf", TFMessage, TF_QOS),
        Topic("/tf_static", TFMessage, TF_STATIC_QOS),
        Topic("/clock", Clock, reliable),
        Topic("/diagnostics", DiagnosticArray, reliable),
    ]
