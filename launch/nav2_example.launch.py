"""ros2 launch worldfm_ros nav2_example.launch.py [scene:=...] [params_file:=...] [use_sim_time:=false]

The simulator (launch/sim.launch.py, with the depth point cloud and LaserScan on) plus a minimal Nav2 stack
without a static map: planner, controller, behaviours and the BT navigator, configured by
config/nav2/nav2_params.yaml, brought up by one lifecycle manager. Send a goal with RViz's
"Nav2 Goal" or ``ros2 action send_goal /navigate_to_pose nav2_msgs/action/NavigateToPose ...``.
Needs the Nav2 packages (nav2_bringup's dependencies) installed from the ROS distribution; without
them the simulator still starts and the launch log names each Nav2 package that is missing.
"""

from launch import LaunchDescription
from ament_index_python.packages import PackageNotFoundError, get_package_prefix
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, LogInfo, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

NAV2_NODES = [
    ("nav2_controller", "controller_server"),
    ("nav2_planner", "planner_server"),
    ("nav2_behaviors", "behavior_server"),
    ("nav2_bt_navigator", "bt_navigator"),
]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("worldfm_ros")
    params_file = LaunchConfiguration("params_file")
    use_sim_time = LaunchConfiguration("use_sim_time")
    args = [
        DeclareLaunchArgument("scene", default_value="", description="scene anchor ('' = bundled default room)"),
        DeclareLaunchArgument("params_file",
                              default_value=PathJoinSubstitution([share, "config", "nav2", "nav2_params.yaml"]),
                              description="Nav2 parameter file"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock time"),
    ]
    # A parameter file, not SetParameter: the node's own files would override a global parameter.
    sim = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "sim.launch.py"])),
        launch_arguments={"scene": LaunchConfiguration("scene"), "use_sim_time": use_sim_time,
                          "params_file": PathJoinSubstitution([share, "config", "nav2", "sim_params.yaml"])}.items(),
    )
    return LaunchDescription([*args, sim, OpaqueFunction(function=_nav2, args=[params_file, use_sim_time])])


def _missing(package: str) -> bool:
    try:
        get_package_prefix(package)
        return False
    except PackageNotFoundError:
        return True


def _nav2(context, params_file, use_sim_time):
    """The Nav2 nodes, or (without Nav2) one log line naming what is missing and how to get it."""
    missing = [p for p in [p for p, _ in NAV2_NODES] + ["nav2_lifecycle_manager"] if _missing(p)]
    if missing:
        return [LogInfo(msg=f"nav2_example: Nav2 is not installed (missing packages: {', '.join(missing)}); "
                            "started the simulator only. Install Nav2 (apt install ros-$ROS_DISTRO-navigation2) "
                            "for the navigation stack.")]
    nav2 = [Node(package=package, executable=name, name=name, output="screen",
                 parameters=[params_file, {"use_sim_time": use_sim_time}])
            for package, name in NAV2_NODES]
    lifecycle = Node(package="nav2_lifecycle_manager", executable="lifecycle_manager",
                     name="lifecycle_manager_navigation", output="screen",
                     parameters=[{"use_sim_time": use_sim_time, "autostart": True,
                                  "node_names": [name for _, name in NAV2_NODES]}])
    return [*nav2, lifecycle]
