#!/usr/bin/env bash
# The GPU checks in one go, about 10 minutes on one GPU:
#   1. tests/test_cuda.py: batches, augmentations, trials, the HeadBank and a Barlow Twins stage
#      on CUDA equal the CPU's; `precision: fp32` runs without autocast, bf16/fp16 with it;
#   2. benchmarks/bench_gpu.py: ResNet-50 fine-tuning and Barlow Twins pre-training throughput,
#      bf16 + channels_last vs fp32 NCHW, eager vs torch.compile, and whether the input pipeline
#      starves the GPU;
#   3. `bench calibrate suites/isic2019star.yaml`: the paper suite's throughput per unit kind
#      (ResNet-50 at 256 px in the suite's fp32, random weights, synthetic images; no data or
#      weights needed), then `bench plan --allow-missing`, which turns it into the suite's
#      GPU-hours by the datasets' declared image counts;
#   4. the same calibration through torch.compile (`--compile`, as `compile: true` runs), kept
#      beside it as <GPU>+compile and copied to calibration-compiled.json; last, since each
#      shape's compilation takes a minute or more.
# Each step's output is a file in $OUT (default gpu-checks/); summary.txt has each step's exit
# status and seconds, calibration.json the rates (copy it into <output>/calibration/ of a machine
# that plans the suite). PY names the Python that has bench's dependencies (default python3);
# bench itself is read from this checkout. A step that fails does not stop the next.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-checks}
PY=${PY:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

step() {  # step NAME SECONDS COMMAND...: run it under a time limit, output in $OUT/NAME.txt
    local name=$1 limit=$2 t0=$SECONDS rc
    shift 2
    timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
    rc=$?
    echo "$name: exit $rc, $((SECONDS - t0)) s" | tee -a "$OUT/summary.txt"
}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv \
    > "$OUT/gpu.txt" 2>&1
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" \
    >> "$OUT/gpu.txt" 2>&1
step test_cuda 180 "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda.py
step bench_gpu 300 "$PY" benchmarks/bench_gpu.py
step calibrate 150 "$PY" -m bench calibrate suites/isic2019star.yaml --device cuda \
    --seconds 100 --output "$OUT/paper"
for f in "$OUT"/paper/calibration/*.json; do [ -e "$f" ] && cp "$f" "$OUT/calibration.json"; done
step plan 60 "$PY" -m bench plan suites/isic2019star.yaml --allow-missing --output "$OUT/paper"
grep -h "expected time" "$OUT/plan.txt" >> "$OUT/summary.txt" 2>/dev/null
step calibrate_compiled 300 "$PY" -m bench calibrate suites/isic2019star.yaml --device cuda \
    --compile --seconds 40 --output "$OUT/paper"
for f in "$OUT"/paper/calibration/*compile.json; do
    [ -e "$f" ] && cp "$f" "$OUT/calibration-compiled.json"
done
step plan_compiled 60 "$PY" -m bench plan suites/isic2019star.yaml --allow-missing \
    --output "$OUT/paper"
grep -h "expected time by bench calibrate: .*compile" "$OUT/plan_compiled.txt" \
    >> "$OUT/summary.txt" 2>/dev/null
exit 0
