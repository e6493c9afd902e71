#!/usr/bin/env bash
# On the GPU device (the `device` tool): install the carried wheels (.whl, from
# tools/device_wheels.sh) into its python3 and build the interface packages there. Source it:
#   . tools/device_setup.sh
_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$_root/.whl/device-env.sh" >/dev/null 2>&1 || { echo "device_setup: wheel install failed"; return 1; }
_pfx=$(python3 -c 'import sys; print(sys.prefix)')
for _pkg in vision_msgs composition_interfaces; do
  _build=/tmp/${_pkg}_build
  rm -rf "$_build" && mkdir -p "$_build"
  (cd "$_build" && cmake "$_root/interfaces/$_pkg" -DCMAKE_INSTALL_PREFIX="$_pfx" \
    -DPython3_EXECUTABLE="$(command -v python3)" -DBUILD_TESTING=OFF >cfg.log 2>&1 &&
    cmake --build . -j"$(nproc)" >build.log 2>&1 && cmake --install . >install.log 2>&1) ||
    { tail -n 30 "$_build"/*.log; echo "device_setup: $_pkg build failed"; return 1; }
done
python3 -c 'import vision_msgs.msg, composition_interfaces.srv, lap, rclpy' || return 1
export YOLO_OFFLINE=1 PYTHONUNBUFFERED=1 PYTHONPATH=$_root ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
echo "device_setup: ready"
