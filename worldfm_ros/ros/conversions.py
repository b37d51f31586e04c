"""numpy ↔ ROS message conversions (the node's edge). Needs the ROS message packages.

Messages are built by ``worldfm_ros.messages`` (shared with the offline bag writer) with
rclpy's classes; reading them back (images, poses, transforms) and PointCloud2 live here.
"""

from __future__ import annotations

import array
import functools
import importlib

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Pose, Transform, Twist
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import Image, PointCloud2, PointField

from worldfm_ros.messages import MessageBuilder
from worldfm_ros.sim.kinematics import Twist as BodyTwist


@functools.cache
def _message_class(name: str) -> type:
    package, _, cls = name.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), cls)


def _bytes_field(arr: np.ndarray) -> array.array:
    # array.array skips the per-element check rclpy applies to other sequences; frombytes reads
    # the array's buffer directly, so this is the one copy.
    out = array.array(arr.dtype.char)
    out.frombytes(memoryview(np.ascontiguousarray(arr)).cast("B"))
    return out


#: the node's messages: ``worldfm_ros.messages`` with rclpy's classes
MESSAGES = MessageBuilder(_message_class, _bytes_field)
time_msg = MESSAGES.time
header = MESSAGES.header
rgb_image_msg = MESSAGES.rgb_image
depth_image_msg = MESSAGES.depth_image
mask_image_msg = MESSAGES.mask_image
camera_info_msg = MESSAGES.camera_info
transform_msg = MESSAGES.transform
transform_stamped_msg = MESSAGES.transform_stamped
pose_msg = MESSAGES.pose
odometry_msg = MESSAGES.odometry
imu_msg = MESSAGES.imu


def time_ns(msg: Time) -> int:
    """Integer nanoseconds of a builtin_interfaces/Time."""
    return int(msg.sec) * 1_000_000_000 + int(msg.nanosec)


def image_to_numpy(msg: Image) -> np.ndarray:
    """(H, W, 3) uint8 for rgb8/bgr8 (as RGB), (H, W) uint8 for mono8, (H, W) float32 for 32FC1."""
    buf = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    if msg.encoding in ("rgb8", "bgr8"):
        img = buf.reshape(msg.height, msg.step)[:, : msg.width * 3].reshape(msg.height, msg.width, 3)
        return img[..., ::-1].copy() if msg.encoding == "bgr8" else img.copy()
    if msg.encoding == "mono8":
        return buf.reshape(msg.height, msg.step)[:, : msg.width].copy()
    if msg.encoding == "32FC1":
        dt = ">f4" if msg.is_bigendian else "<f4"
        rows = buf.reshape(msg.height, msg.step)[:, : msg.width * 4]
        return rows.copy().view(dt).reshape(msg.height, msg.width).astype(np.float32)
    raise ValueError(f"image encoding {msg.encoding!r} not supported (expected rgb8, bgr8, mono8 or 32FC1)")


def _quat_matrix(q, t) -> np.ndarray:
    quat = np.array([q.x, q.y, q.z, q.w], dtype=np.float64)
    trans = np.array([t.x, t.y, t.z], dtype=np.float64)
    if not (np.all(np.isfinite(quat)) and np.all(np.isfinite(trans))):
        raise ValueError("pose contains NaN or inf")
    n = np.linalg.norm(quat)
    if abs(n - 1.0) > 1e-3:
        raise ValueError(f"quaternion is not normalised (|q| = {n:.4f})")
    T = np.eye(4)
    T[:3, :3] = Rotation.from_quat(quat / n).as_matrix()
    T[:3, 3] = trans
    return T


def transform_to_matrix(msg: Transform) -> np.ndarray:
    """(4, 4) from geometry_msgs/Transform; ValueError on NaN or a non-unit quaternion."""
    return _quat_matrix(msg.rotation, msg.translation)


def pose_to_matrix(msg: Pose) -> np.ndarray:
    """(4, 4) from geometry_msgs/Pose; ValueError on NaN or a non-unit quaternion."""
    return _quat_matrix(msg.orientation, msg.position)


try:  # a ROS install has sensor_msgs_py; the numpy path below is the fallback, tested to match it
    from sensor_msgs_py import point_cloud2 as _point_cloud2
except ImportError:
    _point_cloud2 = None

POINT_FIELDS = [PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                for i, name in enumerate(("x", "y", "z", "rgb"))]


def point_cloud_msg(points: np.ndarray, colors: np.ndarray, stamp_ns: int, frame_id: str) -> PointCloud2:
    """sensor_msgs/PointCloud2 of (N, 3) float points and (N, 3) uint8 colours.

    Fields x, y, z (float32) and rgb (0x00RRGGBB packed into a float32, the PCL/rviz convention);
    points: metres in ``frame_id``. Built by sensor_msgs_py where it is importable.
    """
    records = _point_records(points, colors)
    if _point_cloud2 is None:
        return _point_cloud_msg_numpy(records, stamp_ns, frame_id)
    msg = _point_cloud2.create_cloud(header(stamp_ns, frame_id), POINT_FIELDS, records)
    msg.is_dense = True  # every point is a rendered, finite surface point
    return msg


def _point_records(points: np.ndarray, colors: np.ndarray) -> np.ndarray:
    rec = np.zeros(len(points), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<f4")])
    rec["x"], rec["y"], rec["z"] = points[:, 0], points[:, 1], points[:, 2]
    c = colors.astype(np.uint32)
    rec["rgb"] = ((c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]).view("<f4")
    return rec


def _point_cloud_msg_numpy(records: np.ndarray, stamp_ns: int, frame_id: str) -> PointCloud2:
    n = len(records)
    return PointCloud2(header=header(stamp_ns, frame_id), height=1, width=n, fields=POINT_FIELDS,
                       is_bigendian=False, point_step=16, row_step=16 * n, is_dense=True,
                       data=_bytes_field(records.view(np.uint8)))


def twist_to_body(msg: Twist) -> BodyTwist:
    """geometry_msgs/Twist (base_link axes, m/s and rad/s) → the simulator's body twist."""
    return BodyTwist(np.array([msg.linear.x, msg.linear.y, msg.linear.z], dtype=np.float64),
                     np.array([msg.angular.x, msg.angular.y, msg.angular.z], dtype=np.float64))


def set_twist(msg: Twist, linear: np.ndarray, angular: np.ndarray) -> Twist:
    """Write a body twist, linear (3,) m/s and angular (3,) rad/s, into ``msg`` (returned)."""
    msg.linear.x, msg.linear.y, msg.linear.z = (float(v) for v in linear)
    msg.angular.x, msg.angular.y, msg.angular.z = (float(v) for v in angular)
    return msg
