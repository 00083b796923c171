#!/bin/bash
# The GPU checks in one run on a CUDA machine without network, from a folder holding src/,
# tests/, benchmarks/ (and samples/, .whl/ wheels beside it where the machine lacks packages):
#   bash scripts/gpu-checks.sh            # OUT=folder for the logs and JSON (default runs/gpu)
# Parts, each under its own timeout, logs written as they go: the benchmark (bench_gpu, its own
# per-part timeouts inside BENCH_S), then the GPU test target (the `gpu` tests on CUDA).
# BENCH_PARTS=a,b: only those parts of the benchmark (none: no benchmark). DRY=1: the same commands on the CPU with tiny sizes (bench --dry-run; the tests then skip, saying why).
export PYTHONUNBUFFERED=1 OUT=${OUT:-runs/gpu}
PY=${PY:-python3} WHEELS=${WHEELS:-../.whl} TESTS_S=${TESTS_S:-170} BENCH_S=${BENCH_S:-330} WORKERS=${WORKERS:-8}
mkdir -p "$OUT"
T0=$(date +%s)
if [ -d "$WHEELS" ]; then
  SITE=$(mktemp -d)
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl \
    >"$OUT/pip.log" 2>&1 || { tail -5 "$OUT/pip.log"; exit 3; }
  export PYTHONPATH=$SITE
fi
export PYTHONPATH=$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH} ALIENSTAY_SAMPLES=${ALIENSTAY_SAMPLES:-$PWD/samples}
BIN=$(mktemp -d)
printf '#!/bin/sh\nexec %s -c "from alienstay.cli.commands import main; main()" "$@"\n' "$PY" >"$BIN/alienstay"
chmod +x "$BIN/alienstay" && export PATH=$BIN:$PATH
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$OUT/machine.txt" 2>&1
$PY -c "import torch, transformers, diffusers, torchvision; print(torch.__version__, transformers.__version__, diffusers.__version__, torchvision.__version__)" >>"$OUT/machine.txt" 2>&1
part() {  # part NAME SECONDS COMMAND...: one timed part, its log under $OUT, a line of summary
  local name=$1 limit=$2; shift 2
  timeout -k 10 "$limit" "$@" >"$OUT/$name.log" 2>&1
  RC=$?; echo "$name rc=$RC at $(( $(date +%s) - T0 )) s"; [ $RC -eq 0 ] || FAILED=1
}
if [ -n "${DRY:-}" ]; then BENCH=(--dry-run); else BENCH=(); fi
[ -n "${BENCH_PARTS:-}" ] && BENCH+=(--parts "$BENCH_PARTS")
if [ "${BENCH_PARTS:-}" != none ]; then
  part bench $((BENCH_S + 20)) $PY -m benchmarks.bench_gpu "${BENCH[@]}" --budget-s "$BENCH_S"
  cp runs/bench/gpu*.json "$OUT/" 2>/dev/null
fi
XDIST=(); $PY -c "import xdist" 2>/dev/null && XDIST=(-n "$WORKERS")
part tests "$TESTS_S" env ALIENSTAY_TEST_DEVICE=cuda $PY -m pytest -q -p no:cacheprovider -o addopts="" -m gpu -rfEs \
  --durations=15 "${XDIST[@]}" tests/test_tagging.py tests/test_editing.py tests/test_editors_gpu.py tests/test_owlsam.py \
  tests/test_stages.py tests/test_faithfulness.py tests/test_registries.py tests/test_devices.py tests/test_hardware.py tests/test_reader.py
tail -25 "$OUT/tests.log"; [ -f "$OUT/bench.log" ] && grep -E "^  " "$OUT/bench.log" | tail -60
exit ${FAILED:-0}  # non-zero when a part failed or ran out of time
