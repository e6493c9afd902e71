#!/usr/bin/env bash
# make demo: fetch the official weights if the network allows, write a sample bag of real
# photographs, replay it through the perception node (and the echo reference) over real DDS, print
# the summary, and leave demo_out/ with the report, the latency plot and a few overlay and depth
# images. Without the weights (no network) the node runs random weights, and says so loudly.
# The Makefile runs the setup first.
#
#   DEMO_OUT=dir      where to write (default demo_out/)
#   DEMO_SIZE=WxH     sample resolution (default 640x480; 1408x1408 is Aria's RGB camera)
#   DEMO_FETCH_S=n    seconds the weights download may take (default 60; 0 skips it)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV:-$root/.venv}
py=$venv/bin/python
out=${DEMO_OUT:-$root/demo_out}
size=${DEMO_SIZE:-640x480}
width=${size%x*}
height=${size#*x}
fetch_s=${DEMO_FETCH_S:-60}

if [[ ! -x $py ]]; then
  echo "demo: $py not found; run 'make demo' (it sets the environment up first) or 'make setup'" >&2
  exit 1
fi
# The `models` command below is the only download; ultralytics must not try on its own.
export YOLO_OFFLINE=1

rm -rf "$out"
mkdir -p "$out"

echo "== 1/3 fetching the official weights with the \`models\` command (at most ${fetch_s} s)"
weights=random
if [[ $fetch_s == 0 ]]; then
  echo "       skipped (DEMO_FETCH_S=0)"
elif timeout "$fetch_s" "$venv/bin/models" >"$out/models.log" 2>&1; then
  weights=official
  echo "       official weights in place ($out/models.log)"
else
  echo "       not fetched (no network?): $(tail -n 1 "$out/models.log" 2>/dev/null)"
fi

echo "== 2/3 writing a sample bag: ${width}x${height} rgb8, 40 frames at 10 Hz (photographs"
echo "       shipped by ultralytics and matplotlib, panned and zoomed) -> $out/sample_bag"
"$py" -m aria_perception.bench.cli sample --out "$out/sample_bag" --width "$width" \
  --height "$height" --count 40 --rate 10 --storage mcap

missing=$("$py" -c 'from aria_perception.bench.runner import node_available; print(node_available() or "")')
if [[ -n $missing ]]; then
  echo
  echo "!! MISSING: $missing."
  echo "!! The demo measures the echo reference (the transport floor) alone for now."
  echo
  "$py" -m aria_perception.bench.cli --bag "$out/sample_bag" --echo-only --rate recorded \
    --frames 40 --throughput-frames 40 --warmup 3 --out "$out" --no-progress
  echo
  echo "demo: INCOMPLETE: $missing; the report in $out covers the echo reference only."
  exit 1
fi

if [[ $weights == random ]]; then
  cat <<'EOF'

!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!! RANDOM WEIGHTS: the demo starts the node with allow_random_weights:=true. Where the official
!! weights (yolov8n.pt, midas_v21_small_256.pt) are missing -- as on any machine without
!! internet -- both networks are randomly initialised: depth maps and boxes are MEANINGLESS
!! (expect no boxes), while every timing is real. Fetch weights with the `models` command.
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!

EOF
fi
echo "== 3/3 replaying it through the echo reference, then the node (device auto: CPU here;"
echo "       the first start imports torch in the worker, allow a minute)"
# A slow CPU can take seconds per frame: a generous frame timeout keeps the worker from being
# treated as hung. Paced at the bag's 10 Hz, then as fast as the node answers.
status=0
"$py" -m aria_perception.bench.cli --bag "$out/sample_bag" --rate recorded --frames 40 \
  --throughput-frames 20 --warmup 3 --save-images 4 --depth --out "$out" \
  -p worker.frame_timeout_s:=30.0 || status=$?

echo
if [[ $status -ne 0 ]]; then
  echo "demo: the bench failed (exit $status); node output: $out/logs/node.log" >&2
  exit "$status"
fi
echo "demo: done. In $out:"
echo "  report.md, report.json   the figures above (schema in the README)"
echo "  latency.png              latency histogram and per-frame timeline"
[[ -f $out/models.log ]] && echo "  models.log               what the weights download said"
find "$out/images" -name '*.png' -printf '  images/%f\n' 2>/dev/null | sort
echo "  sample_bag/              the bag (ros2 bag play it in a ROS 2 install)"
