"""The package's ROS messages built from numpy, once for both message implementations. No rclpy.

The node publishes rclpy messages (``ros.conversions``); the offline bag writer serialises
rosbags' message classes (``sim.trajectory.TrajectoryBag``). Both build every message here,
through a ``MessageBuilder`` that is told how to find a message class by its ROS name and how
to hold an unbounded array field. Every field is given (rosbags' classes have no defaults).

Images follow REP-118 / sensor_msgs conventions: rgb8 colour, 32FC1 depth in metres with NaN
where there is no data. CameraInfo carries the camera's lens model (plumb_bob with zero
distortion for an ideal camera), R = I and P = [K | t] with t = (Tx, 0, 0), Tx = -fx·B for the
right eye of a rectified stereo pair and 0 otherwise. Imu carries specific force and angular
rate in the IMU's frame with the noise model's variances (orientation_covariance[0] = -1 when
no orientation is reported, as sensor_msgs/Imu asks). Odometry carries the pose of base in odom and the twist in the base
frame (REP-105).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from worldfm_ros.camera import PinholeCamera, rotation_to_quaternion

#: variance of each pose and twist component in Odometry: ground truth from the simulator, but
#: tiny non-zero variances keep filters well-conditioned
ODOM_VARIANCE = 1e-6


class MessageBuilder:
    """Builds ROS messages of one implementation from numpy values.

    types: ROS type name ('sensor_msgs/msg/Image') -> message class.
    sequence: contiguous (N,) numpy array -> the value of an unbounded array field (rclpy
        takes ``array.array``, rosbags the numpy array itself).
    """

    def __init__(self, types: Callable[[str], type], sequence: Callable[[np.ndarray], Any]) -> None:
        self.types = types
        self.sequence = sequence

    def time(self, stamp_ns: int) -> Any:
        """builtin_interfaces/Time from integer nanoseconds."""
        return self.types("builtin_interfaces/msg/Time")(sec=int(stamp_ns // 1_000_000_000),
                                                        nanosec=int(stamp_ns % 1_000_000_000))

    def header(self, stamp_ns: int, frame_id: str) -> Any:
        return self.types("std_msgs/msg/Header")(stamp=self.time(stamp_ns), frame_id=frame_id)

    def image(self, array: np.ndarray, encoding: str, stamp_ns: int, frame_id: str) -> Any:
        """sensor_msgs/Image of an (H, W[, C]) little-endian array in ``encoding``."""
        h, w = array.shape[:2]
        data = np.ascontiguousarray(array).view(np.uint8).reshape(-1)
        return self.types("sensor_msgs/msg/Image")(header=self.header(stamp_ns, frame_id), height=h, width=w,
                                                   encoding=encoding, is_bigendian=0, step=data.size // h,
                                                   data=self.sequence(data))

    def rgb_image(self, rgb: np.ndarray, stamp_ns: int, frame_id: str) -> Any:
        """sensor_msgs/Image rgb8 from (H, W, 3) uint8."""
        return self.image(rgb.astype(np.uint8, copy=False), "rgb8", stamp_ns, frame_id)

    def depth_image(self, depth: np.ndarray, stamp_ns: int, frame_id: str) -> Any:
        """sensor_msgs/Image 32FC1 in metres from (H, W) float z-depth; 0 (no data) becomes NaN."""
        return self.image(np.where(depth > 0, depth, np.nan).astype("<f4", copy=False), "32FC1", stamp_ns, frame_id)

    def mask_image(self, mask: np.ndarray, stamp_ns: int, frame_id: str) -> Any:
        """sensor_msgs/Image mono8 from (H, W) bool: 255 where True, 0 elsewhere."""
        return self.image(np.where(mask, np.uint8(255), np.uint8(0)), "mono8", stamp_ns, frame_id)

    def camera_info(self, camera: PinholeCamera, stamp_ns: int, frame_id: str, distortion_model: str = "plumb_bob",
                    D: list[float] | None = None, tx: float = 0.0) -> Any:
        """sensor_msgs/CameraInfo: K of ``camera``; the lens as ``distortion_model`` and ``D``
        (default: plumb_bob, zeros); P = [K | (tx, 0, 0)] with tx in pixels·metres (-fx·B for a
        stereo right eye)."""
        t = self.types
        K = camera.K
        P = np.hstack([K, [[tx], [0.0], [0.0]]])
        d = np.zeros(5) if D is None else np.asarray(D, dtype=np.float64)
        roi = t("sensor_msgs/msg/RegionOfInterest")(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
        return t("sensor_msgs/msg/CameraInfo")(
            header=self.header(stamp_ns, frame_id), height=camera.height, width=camera.width,
            distortion_model=distortion_model, d=self.sequence(d), k=K.ravel(), r=np.eye(3).ravel(),
            p=P.ravel(), binning_x=0, binning_y=0, roi=roi)

    def imu(self, stamp_ns: int, frame_id: str, angular_velocity: np.ndarray, linear_acceleration: np.ndarray,
            orientation_xyzw: np.ndarray | None, angular_velocity_covariance: np.ndarray,
            linear_acceleration_covariance: np.ndarray, orientation_covariance: np.ndarray) -> Any:
        """sensor_msgs/Imu: rates (3,) rad/s and specific force (3,) m/s² in ``frame_id``; the
        orientation as (x, y, z, w) or None (then orientation_covariance[0] = -1); (3, 3) covariances."""
        t = self.types
        q = (0.0, 0.0, 0.0, 1.0) if orientation_xyzw is None else (float(c) for c in orientation_xyzw)
        x, y, z, w = q
        ocov = np.asarray(orientation_covariance, dtype=np.float64).ravel().copy()
        if orientation_xyzw is None:
            ocov[:] = 0.0
            ocov[0] = -1.0
        return t("sensor_msgs/msg/Imu")(
            header=self.header(stamp_ns, frame_id), orientation=t("geometry_msgs/msg/Quaternion")(x=x, y=y, z=z, w=w),
            orientation_covariance=ocov, angular_velocity=self.vector3(angular_velocity),
            angular_velocity_covariance=np.asarray(angular_velocity_covariance, dtype=np.float64).ravel(),
            linear_acceleration=self.vector3(linear_acceleration),
            linear_acceleration_covariance=np.asarray(linear_acceleration_covariance, dtype=np.float64).ravel())

    def vector3(self, v: np.ndarray) -> Any:
        x, y, z = (float(c) for c in v)
        return self.types("geometry_msgs/msg/Vector3")(x=x, y=y, z=z)

    def quaternion(self, R: np.ndarray) -> Any:
        """geometry_msgs/Quaternion of a (3, 3) rotation."""
        x, y, z, w = rotation_to_quaternion(R)
        return self.types("geometry_msgs/msg/Quaternion")(x=x, y=y, z=z, w=w)

    def transform(self, T: np.ndarray) -> Any:
        """geometry_msgs/Transform from a (4, 4) rigid matrix."""
        return self.types("geometry_msgs/msg/Transform")(translation=self.vector3(T[:3, 3]),
                                                         rotation=self.quaternion(T[:3, :3]))

    def transform_stamped(self, T: np.ndarray, stamp_ns: int, parent: str, child: str) -> Any:
        """geometry_msgs/TransformStamped: parent_T_child at stamp."""
        return self.types("geometry_msgs/msg/TransformStamped")(
            header=self.header(stamp_ns, parent), child_frame_id=child, transform=self.transform(T))

    def tf_message(self, transforms: list[Any]) -> Any:
        return self.types("tf2_msgs/msg/TFMessage")(transforms=transforms)

    def pose(self, T: np.ndarray) -> Any:
        """geometry_msgs/Pose from a (4, 4) rigid matrix."""
        x, y, z = (float(c) for c in T[:3, 3])
        return self.types("geometry_msgs/msg/Pose")(position=self.types("geometry_msgs/msg/Point")(x=x, y=y, z=z),
                                                    orientation=self.quaternion(T[:3, :3]))

    def odometry(self, odom_T_base: np.ndarray, linear: np.ndarray, angular: np.ndarray, stamp_ns: int,
                 odom_frame: str, base_frame: str) -> Any:
        """nav_msgs/Odometry: pose of base in odom, body twist (linear m/s, angular rad/s, (3,) each)."""
        t = self.types
        cov = np.diag([ODOM_VARIANCE] * 6).ravel()
        twist = t("geometry_msgs/msg/Twist")(linear=self.vector3(linear), angular=self.vector3(angular))
        return t("nav_msgs/msg/Odometry")(
            header=self.header(stamp_ns, odom_frame), child_frame_id=base_frame,
            pose=t("geometry_msgs/msg/PoseWithCovariance")(pose=self.pose(odom_T_base), covariance=cov),
            twist=t("geometry_msgs/msg/TwistWithCovariance")(twist=twist, covariance=cov))
