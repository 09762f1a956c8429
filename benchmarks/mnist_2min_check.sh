#!/usr/bin/env bash
# The fast recipe's promise, checked with the commands a reader types (chapter "ddpm", "Digits in two
# minutes"): for each training seed, `python -m dlib train configs/mnist_2min.yaml` (its 2-minute
# budget), then `python -m dlib evaluate` on 500 DDIM-50 samples against the held-out digits, and the
# real-vs-real baseline at the same count. Run it on an idle machine:
#   OMP_NUM_THREADS=2 bash benchmarks/mnist_2min_check.sh [RUNS_DIR] [OUT_DIR]
# Writes OUT_DIR/seedK_train.json (the train summary), seedK_scores.json, seedK_samples.png,
# baseline.json and log.txt (the command lines with their wall times and the CPU).
set -euo pipefail
runs=${1:-runs/mnist_2min_check}
out=${2:-benchmarks/results/mnist_2min}
python=${PYTHON:-python}
mkdir -p "$runs" "$out"
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
bf16=$(grep -m1 '^flags' /proc/cpuinfo | grep -o -w -E 'amx_bf16|avx512_bf16' | sort -u | xargs)
echo "# $(date -u '+%Y-%m-%d %H:%M:%S') UTC, $cpu, $(nproc) cores, bf16 flags: ${bf16:-none}, OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset}, commit $(git rev-parse --short HEAD)" >> "$out/log.txt"
for seed in 0 1 2; do
  start=$(date +%s.%N)
  "$python" -m dlib train configs/mnist_2min.yaml --seed "$seed" --out "$runs/seed$seed" --overwrite --no-progress > "$out/seed${seed}_train.json"
  mid=$(date +%s.%N)
  "$python" -m dlib evaluate "$runs/seed$seed/model.safetensors" --n 500 --sampler ddim --steps 50 --seed 0 \
      --metrics classifier-fid,classifier-is,precision,recall --reference mnist-test --json "$out/seed${seed}_scores.json" > /dev/null
  end=$(date +%s.%N)
  "$python" -m dlib sample "$runs/seed$seed/model.safetensors" --n 64 --sampler ddim --steps 50 --seed 0 --out "$out/seed${seed}_samples.png" > /dev/null
  echo "seed $seed: train command $(awk "BEGIN {printf \"%.1f\", $mid - $start}") s, evaluate (500 DDIM-50 samples + scoring) $(awk "BEGIN {printf \"%.1f\", $end - $mid}") s" >> "$out/log.txt"
done
"$python" - "$out/baseline.json" <<'PY'
import json, sys
from dlib import metrics
runs = [metrics.real_vs_real(500, metrics=("classifier-fid", "classifier-is", "precision", "recall"), reference="mnist-test", seed=s)
        for s in range(3)]
keep = ("classifier-fid", "classifier-is", "precision", "recall", "n_samples", "reference", "samples")
json.dump([{k: r[k] for k in keep} for r in runs], open(sys.argv[1], "w"), indent=1)
PY
"$python" - "$out" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
base = json.loads((out / "baseline.json").read_text())
for seed in range(3):
    t = json.loads((out / f"seed{seed}_train.json").read_text())
    s = json.loads((out / f"seed{seed}_scores.json").read_text())
    print(f"seed {seed}: {t['steps']} steps in {t['elapsed_seconds'] / 60:.2f} min ({t['images_per_s']:.0f} img/s, {t['precision']}); "
          f"classifier-FID {s['classifier-fid']:.2f}, IS {s['classifier-is']:.2f}, precision {s['precision']:.3f}, recall {s['recall']:.3f}")
print("real vs real at 500: classifier-FID " + ", ".join(f"{b['classifier-fid']:.2f}" for b in base)
      + "; IS " + ", ".join(f"{b['classifier-is']:.2f}" for b in base))
PY
