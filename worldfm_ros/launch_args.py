"""The arguments of ``launch/sim.launch.py`` and the node parameters they set.

Kept free of the ``launch`` package so that the mapping can be checked anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from worldfm_ros.errors import ConfigError
from worldfm_ros.runtime import DEFAULT_TORCH_THREADS


@dataclass(frozen=True)
class LaunchArgument:
    """name: launch argument; default: its default text; parameter: the node parameter it sets
    ('' when it configures the launch itself rather than a parameter)."""

    name: str
    default: str
    description: str
    parameter: str = ""


LAUNCH_ARGUMENTS: tuple[LaunchArgument, ...] = (
    LaunchArgument("scene", "", "scene anchor directory or file ('' = bundled default room)", "scene"),
    LaunchArgument("backend", "torch", "frame backend: torch (bundled model), anchor, onnxruntime or tensorrt",
                   "backend.name"),
    LaunchArgument("model", "", "frame-model checkpoint for the neural backends ('' = bundled)", "backend.model"),
    LaunchArgument("input_mode", "cmd_vel", "cmd_vel (integrate velocity commands) or tf (follow /tf)", "input_mode"),
    LaunchArgument("rate", "10.0", "camera frame rate, Hz", "rate_hz"),
    LaunchArgument("threads", str(DEFAULT_TORCH_THREADS), "torch CPU threads of the node (0 = one per core)",
                   "torch_threads"),
    LaunchArgument("executor", "events", "what spins the node: events (rclpy's C++ events executor) or single "
                   "(rclpy's Python SingleThreadedExecutor)", "executor"),
    LaunchArgument("use_sim_time", "false", "stamp with /clock time published by someone else", "use_sim_time"),
    LaunchArgument("camera", "default",
                   "camera preset (a name in config/cameras/) or the path of a parameter file like them"),
    LaunchArgument("rig", "", "sensor rig: stereo, stereo_imu (config/rigs/) or a rig YAML ('' = one camera)", "rig"),
    LaunchArgument("namespace", "", "ROS namespace of the node and its relative topics"),
    LaunchArgument("record", "", "if set, record the camera, odom, TF and clock topics to this MCAP bag"),
    LaunchArgument("record_images", "raw", "what record:= keeps of the images: raw, or compressed (only "
                   "image_transport's compressed topics; set compressed:= and compressed_depth:=)"),
    LaunchArgument("compressed", "", "publish <camera>/image_raw/compressed: jpeg or png ('' = off)", "compressed.image"),
    LaunchArgument("compressed_depth", "false", "publish <camera>/depth/image_raw/compressedDepth", "compressed.depth"),
    LaunchArgument("params_file", "", "extra node parameter file, applied after config/sim.yaml and the camera"),
)

# Parameters every ROS node has; the launch file may set them without a SimConfig field.
BUILTIN_PARAMETERS = {"use_sim_time"}


def camera_parameter_file(camera: str, presets: Path) -> Path:
    """The parameter file the ``camera`` launch argument names.

    camera: a preset name (``presets/<camera>.yaml``) or a path to a ``.yaml`` parameter file.
    Raises ConfigError naming the argument and the presets that exist.
    """
    given = Path(camera).expanduser()
    if camera.endswith((".yaml", ".yml")) or given.parent != Path("."):
        if not given.is_file():
            raise ConfigError(f"launch argument 'camera': no parameter file at {given}")
        return given
    path = presets / f"{camera}.yaml"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in presets.glob("*.yaml"))) or "none"
        raise ConfigError(f"launch argument 'camera': no preset {camera!r} in {presets} (presets: {names})")
    return path
