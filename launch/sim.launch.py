"""ros2 launch worldfm_ros sim.launch.py [scene:=...] [backend:=...] [camera:=...] [rig:=...] [record:=bag_dir] ...

Arguments and the parameters they set: worldfm_ros/launch_args.py.
"""

from pathlib import Path

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from worldfm_ros.errors import ConfigError
from worldfm_ros.launch_args import LAUNCH_ARGUMENTS, camera_parameter_file


def _node(context):
    # Resolved here rather than as nested substitutions: Jazzy's PathJoinSubstitution takes no
    # lists as components, and a missing preset deserves a message that lists the real ones.
    config = Path(FindPackageShare("worldfm_ros").perform(context)) / "config"
    camera = camera_parameter_file(LaunchConfiguration("camera").perform(context), config / "cameras")
    overrides = {a.parameter: ParameterValue(LaunchConfiguration(a.name), value_type=None)
                 for a in LAUNCH_ARGUMENTS if a.parameter}
    overrides["scene"] = ParameterValue(LaunchConfiguration("scene"), value_type=str)
    overrides["backend.model"] = ParameterValue(LaunchConfiguration("model"), value_type=str)
    overrides["rig"] = ParameterValue(LaunchConfiguration("rig"), value_type=str)
    overrides["compressed.image"] = ParameterValue(LaunchConfiguration("compressed"), value_type=str)
    files = [str(config / "sim.yaml"), str(camera)]
    if extra := LaunchConfiguration("params_file").perform(context):
        if not Path(extra).expanduser().is_file():
            raise ConfigError(f"launch argument 'params_file': no parameter file at {extra}")
        files.append(str(Path(extra).expanduser()))
    return [Node(
        package="worldfm_ros", executable="sim_node", name="worldfm_sim",
        namespace=LaunchConfiguration("namespace"), output="screen",
        parameters=[*files, overrides],
    )]


def generate_launch_description() -> LaunchDescription:
    args = [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description)
            for a in LAUNCH_ARGUMENTS]
    record = ExecuteProcess(
        cmd=["worldfm", "record", "--output", LaunchConfiguration("record"),
             "--namespace", LaunchConfiguration("namespace"), "--rig", LaunchConfiguration("rig"),
             "--images", LaunchConfiguration("record_images")],
        condition=IfCondition(PythonExpression(["'", LaunchConfiguration("record"), "' != ''"])),
        output="screen",
    )
    return LaunchDescription([*args, OpaqueFunction(function=_node), record])
