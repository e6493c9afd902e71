#!/usr/bin/env bash
# On the GPU device (the `device` tool): install the carried wheels (.whl, from
# ../shared/tools/device-wheels) into its python3 and build vision_msgs there. Source it:
#   . tools/device_setup.sh
_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$_root/.whl/device-env.sh" >/dev/null 2>&1 || { echo "device_setup: wheel install failed"; return 1; }
_build=/tmp/vision_msgs_build
rm -rf "$_build" && mkdir -p "$_build"
_pfx=$(python3 -c 'import sys; print(sys.prefix)')
(cd "$_build" && cmake "$_root/interfaces/vision_msgs" -DCMAKE_INSTALL_PREFIX="$_pfx" \
  -DPython3_EXECUTABLE="$(command -v python3)" -DBUILD_TESTING=OFF >cfg.log 2>&1 &&
  cmake --build . -j"$(nproc)" >build.log 2>&1 && cmake --install . >install.log 2>&1) ||
  { tail -n 30 "$_build"/*.log; echo "device_setup: vision_msgs build failed"; return 1; }
python3 -c 'import vision_msgs.msg, rclpy' || return 1
export YOLO_OFFLINE=1 PYTHONUNBUFFERED=1 PYTHONPATH=$_root ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
echo "device_setup: ready"
