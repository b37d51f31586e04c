"""A camera or IMU consumer in its own process, for ``worldfm bench-node``.

Subscribes to one image topic with the sensor-data QoS, as a perception node does, converts each
image to numpy (what cv_bridge does for it) and records, per image, its stamp (the pose time)
and its receipt time on the system clock, which is ROS time in real-time mode on this host.
With ``--imu QOS`` the topic is a sensor_msgs/Imu one, subscribed as a VIO front-end does:
``sensor_data`` (best effort, depth 5: ``qos_profile_sensor_data``) or ``reliable`` (depth 10,
rclpy's default). It runs until its standard input closes, then prints one JSON line
``{"topic": ..., "stamps_ns": [...], "receipt_ns": [...], "convert_ms": [...]}`` and exits.

    python -m worldfm_ros.ros.bench_consumer --topic camera/image_raw --domain-id 42
    python -m worldfm_ros.ros.bench_consumer --topic imu/data --imu sensor_data --domain-id 42
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

#: --imu: the subscriber QoS of a VIO front-end
IMU_QOS = ("sensor_data", "reliable")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topic", required=True, help="sensor_msgs/Image topic")
    parser.add_argument("--domain-id", type=int, required=True, help="ROS domain id of the node under test")
    parser.add_argument("--imu", choices=IMU_QOS, default="", help="the topic is sensor_msgs/Imu, read with this QoS")
    args = parser.parse_args(argv)

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, qos_profile_sensor_data
    from sensor_msgs.msg import Image, Imu

    from worldfm_ros.ros.conversions import image_to_numpy, time_ns

    rclpy.init(domain_id=args.domain_id)
    node = rclpy.create_node(f"bench_consumer_{args.topic.replace('/', '_')}{'_' + args.imu if args.imu else ''}")
    stamps: list[int] = []
    receipts: list[int] = []
    convert_ms: list[float] = []

    def on_image(msg: Image) -> None:
        receipts.append(time.time_ns())
        stamps.append(time_ns(msg.header.stamp))
        t0 = time.perf_counter()
        image_to_numpy(msg)
        convert_ms.append((time.perf_counter() - t0) * 1e3)

    def on_imu(msg: Imu) -> None:
        receipts.append(time.time_ns())
        stamps.append(time_ns(msg.header.stamp))

    if args.imu:
        qos = qos_profile_sensor_data if args.imu == "sensor_data" else QoSProfile(depth=10)
        node.create_subscription(Imu, args.topic, on_imu, qos)
    else:
        node.create_subscription(Image, args.topic, on_image, qos_profile_sensor_data)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    print("ready", flush=True)
    while not stop.is_set():
        executor.spin_once(timeout_sec=0.05)
    node.destroy_node()
    rclpy.try_shutdown()
    print(json.dumps({"topic": args.topic, "stamps_ns": stamps, "receipt_ns": receipts,
                      "convert_ms": convert_ms}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
