#!/usr/bin/env bash
# Train a config in resumable segments of at most SEGMENT steps, so that no single process runs
# for more than about an hour and an interrupted run loses at most one segment:
#   tools/train_segments.sh configs/mnist_angular_eps.yaml runs/mnist_angular_eps 5000 1250
# Each segment is `python -m dlib train CONFIG --out OUT --steps S --resume`; its wall time is
# appended to OUT/segments.log (the publish tool's --wall-minutes is the sum of these).
set -euo pipefail
config=$1; out=$2; total=$3; segment=${4:-1250}
python=${PYTHON:-python}
mkdir -p "$out"
done_steps=0
if [ -f "$out/model.safetensors" ]; then
  done_steps=$("$python" -c "import sys; from dlib import checkpoint; print(checkpoint.read(sys.argv[1])[1]['step'])" "$out/model.safetensors")
fi
while [ "$done_steps" -lt "$total" ]; do
  next=$(( done_steps + segment < total ? done_steps + segment : total ))
  start=$(date +%s)
  "$python" -m dlib train "$config" --out "$out" --steps "$next" --resume --no-progress > "$out/segment_$next.json"
  echo "steps $done_steps-$next: $(( $(date +%s) - start )) s, OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset}, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" >> "$out/segments.log"
  done_steps=$next
done
