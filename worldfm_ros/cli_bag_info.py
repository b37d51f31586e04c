"""``worldfm bag-info BAG``: topics, types, message counts, rates and duration of a rosbag2 bag (no ROS needed)."""

from __future__ import annotations

import argparse

HELP = "print a rosbag2 bag's topics, types, message counts, rates and duration (like 'ros2 bag info')"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", help="bag folder (holds metadata.yaml and the .mcap file)")


def run(args: argparse.Namespace) -> int:
    from worldfm_ros.bags import summarize

    s = summarize(args.bag)
    print(f"bag:         {s.path}")
    print(f"size:        {s.size_bytes / 1e6:.1f} MB (chunk compression: {s.compression or 'none'})")
    print(f"duration:    {s.duration_s:.3f} s")
    print(f"messages:    {s.message_count}")
    width = max((len(t) for t in s.topics), default=5)
    print(f"\n{'topic':<{width}}  {'type':<34} {'count':>7} {'rate Hz':>8}")
    for t in sorted(s.topics.values(), key=lambda t: t.name):
        print(f"{t.name:<{width}}  {t.msgtype:<34} {t.count:>7} {t.rate_hz:>8.2f}")
    return 0
