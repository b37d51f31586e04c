"""The launch file's description, built by the launch package, declares the argument table."""

from __future__ import annotations

from pathlib import Path

import pytest

from worldfm_ros.launch_args import LAUNCH_ARGUMENTS

ROOT = Path(__file__).resolve().parents[2]


def test_launch_description_builds_where_the_launch_package_exists():
    pytest.importorskip("launch_ros", reason="launch/launch_ros are not installable from PyPI")
    import importlib.util

    spec = importlib.util.spec_from_file_location("sim_launch", ROOT / "launch" / "sim.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    names = [e.name for e in module.generate_launch_description().entities if hasattr(e, "default_value")]
    assert names == [a.name for a in LAUNCH_ARGUMENTS]
