"""The DDS set-up a camera needs: Fast DDS shared memory large enough for whole frames.

Fast DDS (the default RMW of Jazzy) hands messages to subscribers on the same host through a
shared-memory segment of 512 KiB per participant. A 640x480 rgb8 image is 0.9 MB and its
32FC1 depth 1.2 MB, so each frame overflows the segment, and best-effort (sensor-data)
subscribers in other processes lose most frames: measured with ``worldfm bench-node`` at a 30 Hz
target, 11 of 21 frames a second arrived (benchmarks/RESULTS.md, "Transport"). The bundled
profile ``config/dds/fastdds_camera.xml`` gives the publishing participant a 16 MiB segment;
subscribers need no change, because the segment that holds a sample is its writer's.
"""

from __future__ import annotations

import os
from pathlib import Path

from worldfm_ros.resources import config_dir

#: Fast DDS 2.x reads its default XML profiles from the file this variable names
PROFILE_VARIABLE = "FASTRTPS_DEFAULT_PROFILES_FILE"
SEGMENT_BYTES = 16 * 1024 * 1024


def camera_profile_path() -> Path:
    return config_dir() / "dds" / "fastdds_camera.xml"


def use_camera_profile(shm_dir: str = "/dev/shm") -> str:
    """Point Fast DDS at the bundled camera profile; call before ``rclpy.init``.

    Leaves the environment alone when the RMW is not Fast DDS, when the user names a profile
    of their own, or when ``shm_dir`` has no room for the segment (a container's 64 MiB
    /dev/shm shared by several nodes); Fast DDS's defaults then apply.
    Returns why nothing was changed, or '' when the profile is in force.
    """
    rmw = os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") or "rmw_fastrtps_cpp"
    if not rmw.startswith("rmw_fastrtps"):
        return f"RMW_IMPLEMENTATION is {rmw}"
    if os.environ.get(PROFILE_VARIABLE):
        return f"{PROFILE_VARIABLE} is set to {os.environ[PROFILE_VARIABLE]}"
    shortage = shm_shortage(shm_dir)
    if shortage:
        return shortage
    os.environ[PROFILE_VARIABLE] = str(camera_profile_path())
    return ""


def shm_shortage(shm_dir: str = "/dev/shm") -> str:
    """Why ``shm_dir`` cannot hold a few camera segments ('' when it can)."""
    try:
        stat = os.statvfs(shm_dir)
        free = stat.f_bavail * stat.f_frsize
    except OSError as exc:
        return f"{shm_dir}: {exc.strerror}"
    if free < 4 * SEGMENT_BYTES:
        return f"{shm_dir} has {free / 2**20:.0f} MiB free, less than {4 * SEGMENT_BYTES / 2**20:.0f} MiB"
    return ""
