"""A ROS domain of its own for commands that start their own node (demo, bench-node).

Processes of one host share a DDS domain, whatever ROS_AUTOMATIC_DISCOVERY_RANGE says; a
command that starts a simulator and drives it would otherwise record a second simulator's
topics and send its cmd_vel to that robot. These commands therefore run in a private
domain id unless ``--domain-id`` names one (e.g. the one rviz2 or Foxglove listens on).
"""

from __future__ import annotations

import argparse
import os
import random

# Domain ids usable on every platform with the default port mapping (REP 2000 / ROS 2 docs: 0-101).
MAX_DOMAIN_ID = 101


def add_domain_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--domain-id", type=int, default=-1,
                        help="ROS domain id to run in (default -1: a private one, different from ROS_DOMAIN_ID, "
                             "so other ROS nodes on this machine neither see nor are driven by this run)")


def private_domain_id(seed: int | None = None) -> int:
    """A domain id in 1..101 other than the environment's ROS_DOMAIN_ID (default 0), drawn from
    ``seed`` (default: the process id)."""
    current = int(os.environ.get("ROS_DOMAIN_ID", "0") or 0)
    choices = [d for d in range(1, MAX_DOMAIN_ID + 1) if d != current]
    return random.Random(os.getpid() if seed is None else seed).choice(choices)


def domain_id(args: argparse.Namespace) -> int:
    """The ``--domain-id`` to use: the given one, or a private one for -1."""
    if args.domain_id >= 0:
        if args.domain_id > MAX_DOMAIN_ID:
            from worldfm_ros.errors import ConfigError

            raise ConfigError(f"--domain-id: expected 0..{MAX_DOMAIN_ID} or -1 (private), got {args.domain_id}")
        return args.domain_id
    return private_domain_id()
