"""``worldfm bag-reindex BAG``: repair a bag whose recorder was killed, as ``ros2 bag reindex`` does."""

from __future__ import annotations

import argparse

HELP = "repair a bag whose recorder was killed (no metadata.yaml): rewrite it from every complete message"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", help="bag folder holding one .mcap file")
    parser.add_argument("--no-compress", action="store_true", help="write the MCAP chunks uncompressed")


def run(args: argparse.Namespace) -> int:
    from worldfm_ros.bags import reindex

    kept = reindex(args.bag, compress=not args.no_compress)
    print(f"{args.bag}: rewritten with {kept} messages and a new metadata.yaml")
    return 0
