"""A live view of a run without ROS GUI tools: the frames, poses and scene logged to Rerun.

One :class:`RerunLog` streams a run to any of these targets (``--view`` / ``--rrd`` on
``worldfm demo`` and ``worldfm render-trajectory``, the node's ``rerun`` parameter):

* ``spawn``: start a Rerun viewer on this machine (needs a display) and stream to it;
* ``rerun+http://HOST:PORT/proxy``: stream to a viewer already running (``rerun`` on a machine
  with a display; headless-safe here);
* a path ending in ``.rrd``: save the recording, to open later with ``rerun FILE.rrd``.

Entities (Rerun's own archetypes; the ``world`` entity is the ROS map frame, REP-103: x forward,
y left, z up, metres, ``ViewCoordinates.RIGHT_HAND_Z_UP``):

* ``world/anchor``: the scene anchor's coloured points in the map frame (``Points3D``, static,
  randomly subsampled to ``max_points``);
* ``world/camera``: ``Transform3D`` map → camera optical frame per frame, and a ``Pinhole``
  with the camera's K and size whose axes are OpenCV's (``ViewCoordinates.RDF``: x right,
  y down, z forward), so the viewer draws the frustum;
* ``world/camera/image`` (``Image``, RGB) and ``world/camera/depth`` (``DepthImage``, metres,
  0 = no data) under that pinhole;
* ``world/trajectory``: the optical frame's path so far (``LineStrips3D``);
* ``stats/ms/<stage>`` (``Scalars``): the frame's per-stage milliseconds, and
  ``stats/coverage`` (fraction of pixels the anchor covered) and ``stats/reference_score``.

Per-frame data sit on two timelines: ``ros_time`` (the frame's stamp, the pose's time) and
``frame`` (0, 1, 2, … in the order logged). Nothing here imports rclpy; rerun is imported when
a log is opened, so it stays an optional dependency.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from worldfm_ros.errors import ConfigError, WorldFMError

if TYPE_CHECKING:
    from worldfm_ros.camera import PinholeCamera
    from worldfm_ros.world.base import World
    from worldfm_ros.frame.pipeline import Frame

APPLICATION_ID = "worldfm_ros"
SPAWN = "spawn"
DEFAULT_VIEWER_PORT = 9876


def parse_targets(text: str | Sequence[str]) -> list[str]:
    """Targets from a comma-separated string (the node parameter) or a list; each is 'spawn',
    a rerun+http(s):// or rerun:// URL, or a path ending in '.rrd'. Raises ConfigError otherwise."""
    items = text.split(",") if isinstance(text, str) else list(text)
    targets = [t.strip() for t in items if t.strip()]
    for t in targets:
        if not (t == SPAWN or t.startswith(("rerun://", "rerun+http://", "rerun+https://")) or t.endswith(".rrd")):
            raise ConfigError(f"rerun: expected 'spawn', a rerun+http://HOST:PORT/proxy URL or a path ending in "
                              f"'.rrd', got {t!r}")
    return targets


def add_view_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--view [URL]`` and ``--rrd FILE`` options of the commands that can log to Rerun."""
    parser.add_argument("--view", nargs="?", const=SPAWN, default="", metavar="URL",
                        help="stream the run to Rerun: without URL spawn a viewer here (needs a display), "
                             "or to a running viewer at URL (rerun+http://HOST:9876/proxy)")
    parser.add_argument("--rrd", default="", metavar="FILE", help="save the run as a Rerun recording (.rrd)")


def targets_from_args(args: argparse.Namespace) -> list[str]:
    """The Rerun targets that ``--view`` / ``--rrd`` ask for ([] = none)."""
    if args.rrd and not args.rrd.endswith(".rrd"):
        raise ConfigError(f"--rrd: expected a file name ending in '.rrd', got {args.rrd!r}")
    targets = parse_targets([t for t in (args.view, args.rrd) if t])
    check_can_spawn(targets)
    return targets


def check_can_spawn(targets: Sequence[str]) -> None:
    """Raise WorldFMError if ``targets`` ask to spawn a viewer and there is no display to show it on."""
    has_display = sys.platform in ("darwin", "win32") or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if SPAWN in targets and not has_display:
        raise WorldFMError("rerun: no display ($DISPLAY and $WAYLAND_DISPLAY are unset) to spawn a viewer in; "
                           "run `rerun` where there is one and stream to rerun+http://HOST:9876/proxy, "
                           "or save with an .rrd file")


class RerunLog:
    """Logs frames of one camera, and the scene anchor, to a Rerun recording.

    targets: see :func:`parse_targets`; camera: the frames' pinhole model; max_points: the most
    anchor points logged (a uniform random subset beyond that); trajectory_length: the most recent
    camera positions kept in ``world/trajectory``; report: gets a failure to deliver the recording
    at :meth:`close` (None = raise it). Log each frame from one thread.
    """

    def __init__(self, targets: str | Sequence[str], camera: PinholeCamera, *, application_id: str = APPLICATION_ID,
                 max_points: int = 200_000, trajectory_length: int = 5_000,
                 report: Callable[[str], None] | None = None) -> None:
        import rerun as rr

        self.targets = parse_targets(targets)
        if not self.targets:
            raise ConfigError("rerun: no target given (expected 'spawn', a viewer URL or a .rrd path)")
        check_can_spawn(self.targets)
        self.camera, self.max_points, self.trajectory_length = camera, max_points, trajectory_length
        self.report = report
        self._rr = rr
        self.rec = rr.RecordingStream(application_id)
        sinks = []
        for target in self.targets:
            if target == SPAWN:
                self.rec.spawn(port=DEFAULT_VIEWER_PORT, connect=False)
                sinks.append(rr.GrpcSink(f"rerun+http://127.0.0.1:{DEFAULT_VIEWER_PORT}/proxy"))
            elif target.endswith(".rrd"):
                Path(target).parent.mkdir(parents=True, exist_ok=True)
                sinks.append(rr.FileSink(target))
            else:
                sinks.append(rr.GrpcSink(target))
        self.rec.set_sinks(*sinks, default_blueprint=self._blueprint())
        self.rec.log("world", rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)
        self.frames_logged = 0
        self.log_ms: list[float] = []  # per log_frame call, milliseconds (handing over to Rerun's sinks)
        self._positions: list[np.ndarray] = []

    def _blueprint(self):
        rrb = self._rr.blueprint
        return rrb.Blueprint(rrb.Horizontal(
            rrb.Spatial3DView(origin="world", name="map"),
            rrb.Vertical(rrb.Spatial2DView(origin="world/camera", contents="world/camera/image", name="image"),
                         rrb.Spatial2DView(origin="world/camera", contents="world/camera/depth", name="depth"),
                         rrb.TimeSeriesView(origin="stats/ms", name="stage ms")),
            column_shares=[2, 1]), collapse_panels=True)

    def log_world(self, world: World) -> None:
        """Log points on the world's surfaces in the map frame (static, replacing any earlier world)."""
        from worldfm_ros.world.base import points_in_map

        rr = self._rr
        points, colors = world.surface_points(self.max_points)
        map_points = points_in_map(world, points.astype(np.float64))
        self.rec.log("world/anchor", rr.Points3D(map_points.astype(np.float32), colors=colors, radii=0.01),
                     static=True)

    def log_frame(self, frame: Frame) -> None:
        """Log one frame at its stamp: camera pose and frustum, image, depth, trajectory, stats."""
        t0 = time.perf_counter()
        rr, rec, cam = self._rr, self.rec, self.camera
        rec.set_time("ros_time", timestamp=np.datetime64(int(frame.stamp_ns), "ns"))
        rec.set_time("frame", sequence=self.frames_logged)
        map_T_optical = frame.map_T_optical
        rec.log("world/camera", rr.Transform3D(translation=map_T_optical[:3, 3], mat3x3=map_T_optical[:3, :3]),
                rr.Pinhole(image_from_camera=cam.K, width=cam.width, height=cam.height,
                           camera_xyz=rr.ViewCoordinates.RDF, image_plane_distance=0.3))
        rec.log("world/camera/image", rr.Image(frame.rgb, color_model="RGB"))
        rec.log("world/camera/depth", rr.DepthImage(frame.depth, meter=1.0))
        self._positions.append(map_T_optical[:3, 3].copy())
        del self._positions[:-self.trajectory_length]
        rec.log("world/trajectory", rr.LineStrips3D([np.asarray(self._positions)], radii=0.01))
        for stage, ms in frame.timings_ms.items():
            rec.log(f"stats/ms/{stage}", rr.Scalars(float(ms)))
        rec.log("stats/coverage", rr.Scalars(frame.coverage))
        rec.log("stats/reference_score", rr.Scalars(float(frame.reference_score)))
        self.frames_logged += 1
        self.log_ms.append((time.perf_counter() - t0) * 1e3)

    def close(self) -> None:
        """Flush everything to the targets and finish the recording (an .rrd is complete after this).

        Raises WorldFMError (or reports it) when a viewer could not be reached."""
        try:
            self.rec.flush()
        except RuntimeError as exc:  # rerun's gRPC client gives up on an unreachable viewer
            message = f"rerun: could not deliver the recording to {', '.join(self.targets)} " \
                      f"({str(exc).splitlines()[0]}); is a viewer listening there?"
        else:
            message = ""
        finally:
            self.rec.disconnect()
        if message and self.report is not None:
            self.report(message)
        elif message:
            raise WorldFMError(message)


def open_log(targets: str, camera: PinholeCamera, report: Callable[[str], None],
             application_id: str = APPLICATION_ID) -> RerunLog | None:
    """A RerunLog for ``targets``, or None when they are empty or the log cannot start (rerun not
    installed, no display to spawn a viewer in); ``report`` gets the one-line reason then."""
    if not parse_targets(targets):
        return None
    try:
        return RerunLog(targets, camera, application_id=application_id, report=report)
    except ImportError as exc:
        report(f"rerun: cannot log ({exc}); pip install 'rerun-sdk>=0.41,<0.42'")
    except WorldFMError as exc:
        report(str(exc))
    return None
