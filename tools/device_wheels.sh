#!/usr/bin/env bash
# Gather, on this machine, every wheel the GPU device lacks into .whl/ (ignored; carry it):
# the shared device-wheels set (ROS 2 runtime, interface generators, ultralytics, rosbags) plus
# the pins that set does not have (lap, which Ultralytics' trackers need and must never try to
# install at run time). Then, on the device: `. tools/device_setup.sh`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest=${1:-$root/.whl}
bash "$root/../shared/tools/device-wheels" "$dest"
lap=$(grep -E '^lap==' "$root/requirements/lock.txt")
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$dest" "$lap"
echo "device_wheels: ready in $dest"
