"""numpy ↔ ROS message conversions (the node's edge). Needs the ROS message packages.

Images follow REP-118 / sensor_msgs conventions: rgb8 colour, 32FC1 depth in metres
with NaN where there is no data. CameraInfo uses plumb_bob with zero distortion,
R = I and P = [K | 0] (a monocular camera).
"""

from __future__ import annotations

import array

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Pose, Transform, TransformStamped
from nav_msgs.msg import Odometry
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Header

from worldfm_ros.camera import PinholeCamera


def time_msg(stamp_ns: int) -> Time:
    """builtin_interfaces/Time from integer nanoseconds."""
    return Time(sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000))


def time_ns(msg: Time) -> int:
    """Integer nanoseconds of a builtin_interfaces/Time."""
    return int(msg.sec) * 1_000_000_000 + int(msg.nanosec)


def header(stamp_ns: int, frame_id: str) -> Header:
    return Header(stamp=time_msg(stamp_ns), frame_id=frame_id)


def _bytes_field(arr: np.ndarray) -> array.array:
    # array.array('B') skips the per-element check rclpy applies to other sequences.
    out = array.array("B")
    out.frombytes(np.ascontiguousarray(arr).tobytes())
    return out


def rgb_image_msg(rgb: np.ndarray, stamp_ns: int, frame_id: str) -> Image:
    """sensor_msgs/Image rgb8 from (H, W, 3) uint8."""
    h, w = rgb.shape[:2]
    return Image(header=header(stamp_ns, frame_id), height=h, width=w, encoding="rgb8",
                 is_bigendian=0, step=w * 3, data=_bytes_field(rgb.astype(np.uint8, copy=False)))


def depth_image_msg(depth: np.ndarray, stamp_ns: int, frame_id: str) -> Image:
    """sensor_msgs/Image 32FC1 in metres from (H, W) float z-depth; 0 (no data) becomes NaN."""
    h, w = depth.shape
    d = np.where(depth > 0, depth, np.nan).astype("<f4")
    return Image(header=header(stamp_ns, frame_id), height=h, width=w, encoding="32FC1",
                 is_bigendian=0, step=w * 4, data=_bytes_field(d))


def image_to_numpy(msg: Image) -> np.ndarray:
    """(H, W, 3) uint8 for rgb8/bgr8 (as RGB), (H, W) float32 for 32FC1."""
    buf = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    if msg.encoding in ("rgb8", "bgr8"):
        img = buf.reshape(msg.height, msg.step)[:, : msg.width * 3].reshape(msg.height, msg.width, 3)
        return img[..., ::-1].copy() if msg.encoding == "bgr8" else img.copy()
    if msg.encoding == "32FC1":
        dt = ">f4" if msg.is_bigendian else "<f4"
        rows = buf.reshape(msg.height, msg.step)[:, : msg.width * 4]
        return rows.copy().view(dt).reshape(msg.height, msg.width).astype(np.float32)
    raise ValueError(f"image encoding {msg.encoding!r} not supported (expected rgb8, bgr8 or 32FC1)")


def camera_info_msg(camera: PinholeCamera, stamp_ns: int, frame_id: str) -> CameraInfo:
    """sensor_msgs/CameraInfo of an undistorted pinhole camera."""
    K = camera.K
    P = np.zeros((3, 4))
    P[:, :3] = K
    return CameraInfo(header=header(stamp_ns, frame_id), height=camera.height, width=camera.width,
                      distortion_model="plumb_bob", d=[0.0] * 5, k=K.ravel().tolist(),
                      r=np.eye(3).ravel().tolist(), p=P.ravel().tolist())


def transform_msg(T: np.ndarray) -> Transform:
    """geometry_msgs/Transform from a (4, 4) rigid matrix."""
    q = Rotation.from_matrix(T[:3, :3]).as_quat()  # x, y, z, w
    msg = Transform()
    msg.translation.x, msg.translation.y, msg.translation.z = (float(v) for v in T[:3, 3])
    msg.rotation.x, msg.rotation.y, msg.rotation.z, msg.rotation.w = (float(v) for v in q)
    return msg


def transform_stamped_msg(T: np.ndarray, stamp_ns: int, parent: str, child: str) -> TransformStamped:
    """geometry_msgs/TransformStamped: parent_T_child at stamp."""
    return TransformStamped(header=header(stamp_ns, parent), child_frame_id=child, transform=transform_msg(T))


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


def pose_msg(T: np.ndarray) -> Pose:
    q = Rotation.from_matrix(T[:3, :3]).as_quat()
    msg = Pose()
    msg.position.x, msg.position.y, msg.position.z = (float(v) for v in T[:3, 3])
    msg.orientation.x, msg.orientation.y, msg.orientation.z, msg.orientation.w = (float(v) for v in q)
    return msg


def odometry_msg(T: np.ndarray, linear: np.ndarray, angular: np.ndarray, stamp_ns: int,
                 odom_frame: str, base_frame: str) -> Odometry:
    """nav_msgs/Odometry: pose of base in odom, twist in the base frame (REP-105)."""
    msg = Odometry(header=header(stamp_ns, odom_frame), child_frame_id=base_frame)
    msg.pose.pose = pose_msg(T)
    msg.twist.twist.linear.x, msg.twist.twist.linear.y, msg.twist.twist.linear.z = (float(v) for v in linear)
    msg.twist.twist.angular.x, msg.twist.twist.angular.y, msg.twist.twist.angular.z = (float(v) for v in angular)
    # Ground truth from the simulator: tiny, non-zero variances keep filters well-conditioned.
    cov = np.diag([1e-6] * 6).ravel().tolist()
    msg.pose.covariance = cov
    msg.twist.covariance = cov
    return msg


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
