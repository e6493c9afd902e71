#!/usr/bin/env bash
# On the GPU device (the `device` tool), in one command of at most 10 minutes: the GPU tests and
# the engine figures behind the README's results, written under $OUT. Run it as
#   bash tools/device_checks.sh [tests|engine|batch|node|headset|copy|framegraph] ...   (default: tests engine batch)
# with `.whl` carried (tools/device_wheels.sh). Each part prints its table; the full outputs
# are in $OUT. The `node` part (three bench runs of raw 1408² over DDS) and the `headset` part
# (the three cameras one by one, then with worker.batch_cameras) take about 6 minutes each: give
# each a command of its own.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
: "${OUT:?set OUT to the folder the results go to}"
. tools/device_setup.sh >/dev/null || exit 1
export XDG_CACHE_HOME=${XDG_CACHE_HOME:-/tmp/xdgcache}  # compiled kernels, warm for the later parts
parts=("$@")
[[ ${#parts[@]} -eq 0 ]] && parts=(tests engine batch)
t0=$(date +%s)
stamp() { echo "[$1 done at +$(($(date +%s) - t0)) s]"; }

for part in "${parts[@]}"; do
  case $part in
    tests)
      # About 4.5 minutes on a fresh machine (compiling); torch's debug log stays out of it.
      timeout 330 python3 -m pytest -q -m gpu test/ -p no:cacheprovider -p no:logging \
        --tb=short >"$OUT/gpu_tests.txt" 2>&1
      grep -E "^(FAILED|ERROR|E  )|passed|failed" "$OUT/gpu_tests.txt" | head -n 40
      ;;
    engine)
      timeout 180 python3 -m aria_perception.bench.engine_bench --size 1408x1408 \
        --iterations 300 --ablations default,no-compile,rectify --json "$OUT/engine.json" \
        >"$OUT/engine.txt" 2>&1
      grep "^|" "$OUT/engine.txt"
      ;;
    batch)
      timeout 150 python3 -m aria_perception.bench.engine_bench --size 640x480 --encoding mono8 \
        --iterations 300 --ablations default --batch 4 --json "$OUT/batch_slam.json" \
        >"$OUT/batch_slam.txt" 2>&1
      grep "^|" "$OUT/batch_slam.txt"
      ;;
    node)
      for run in 1 2 3; do
        timeout 150 python3 -m aria_perception.bench.cli --preset benchmark --no-progress \
          --fastdds-profile config/fastdds_large_data.xml --echo-targets --frames 300 \
          --out "$OUT/raw$run" >"$OUT/raw$run.txt" 2>&1
        grep -A3 "over echo" "$OUT/raw$run.txt" | head -n 8
        rm -rf "$OUT/raw$run/frames"
      done
      ;;
    headset)
      # Both configurations and the echo in one call: about 6 minutes.
      timeout 560 python3 -m aria_perception.bench.cli --preset headset --no-progress \
        --fastdds-profile config/fastdds_large_data.xml --echo-targets --frames 300 \
        -P worker.batch_cameras:=true --out "$OUT/headset" >"$OUT/headset.txt" 2>&1
      grep -E "over echo|PASS|FAIL|RESULT" "$OUT/headset.txt" | head -n 40
      rm -rf "$OUT/headset/frames"
      ;;
    copy)
      # The copy into shared memory at 30 Hz with one thread and two, and the engine at 30 Hz.
      for threads in 1 2 1 2; do
        timeout 90 python3 -m aria_perception.bench.transport --size 1408x1408 --no-depth \
          --frames 300 --rate 30 --copy-threads $threads >"$OUT/copy$threads.txt" 2>&1
        echo "copy threads $threads: $(grep -E '^copy_in' "$OUT/copy$threads.txt")"
      done
      timeout 150 python3 -m aria_perception.bench.engine_bench --size 1408x1408 \
        --iterations 300 --ablations default --rate 30 >"$OUT/engine_30hz.txt" 2>&1
      grep "^|" "$OUT/engine_30hz.txt"
      ;;
    framegraph)
      # The frame graph's GPU tests, then it against the steps' graphs, back to back and at 30 Hz.
      timeout 240 python3 -m pytest -q -m gpu test/engine/test_frame_graph.py test/engine/test_engine.py \
        test/engine/test_batched.py -p no:cacheprovider -p no:logging --tb=short \
        >"$OUT/framegraph_tests.txt" 2>&1
      grep -E "^(FAILED|ERROR|E  )|passed|failed" "$OUT/framegraph_tests.txt" | head -n 40
      for rate in 0 30; do
        timeout 150 python3 -m aria_perception.bench.engine_bench --size 1408x1408 \
          --iterations 300 --ablations default,step-graphs --rate $rate \
          --json "$OUT/framegraph_rate$rate.json" >"$OUT/framegraph_rate$rate.txt" 2>&1
        grep -E "^\|" "$OUT/framegraph_rate$rate.txt"
      done
      ;;
    *)
      echo "device_checks: unknown part '$part' (tests, engine, batch, node, headset, copy, framegraph)" >&2
      exit 2
      ;;
  esac
  stamp "$part"
done
