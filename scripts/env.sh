# Source me: puts the venv and the colcon install of worldfm_ros on the environment.
_WORLDFM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
_WORLDFM_VENV="${WORLDFM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/worldfm_ros/venv-$(printf '%s' "$_WORLDFM_ROOT" | sha256sum | cut -c1-12)}"
# shellcheck disable=SC1091
. "$_WORLDFM_VENV/bin/activate"
export AMENT_PREFIX_PATH="$_WORLDFM_VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
# shellcheck disable=SC1091
. "$_WORLDFM_ROOT/install/setup.sh"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
# Discovery stays on this machine unless the user asks for the network (SUBNET).
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
unset _WORLDFM_ROOT _WORLDFM_VENV
