#!/usr/bin/env bash
# Runs ON the GPU machine, from the repository root, with gpu-bundle/ (scripts/gpu-bundle.sh)
# carried: the CUDA test suite, the worker's CUDA tests (fhe_worker_tests, `--device cuda`
# against the plaintext and the CPU worker), then bench_fhe --device cuda on the standard shapes.
# Everything printed is also written to $OUT (gpu-check.log, fhe_cuda_tests.xml,
# fhe_worker_cuda_tests.xml, bench_cuda.jsonl). Exits non-zero when a test fails or the benchmark
# is not exact. Under 5 minutes (timeouts 100 s + 60 s + 120 s).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-check-out}"
mkdir -p "$out"
bundle=gpu-bundle

check() {
  if [ ! -x "$bundle/fhe_cuda_tests" ]; then
    echo "gpu-check: $bundle/ missing (run scripts/gpu-bundle.sh first and carry it)"
    return 1
  fi
  export LD_LIBRARY_PATH="$PWD/$bundle/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  nvidia-smi || true
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
  echo "cpus: $(nproc)"
  local status=0
  echo "== fhe_cuda_tests"
  timeout 100 "$bundle/fhe_cuda_tests" --gtest_output="xml:$out/fhe_cuda_tests.xml" || status=1
  echo "== fhe_worker_tests (CUDA)"
  timeout 60 "$bundle/fhe_worker_tests" --gtest_filter='*Cuda*:*Gpu*' \
    --gtest_output="xml:$out/fhe_worker_cuda_tests.xml" || status=1
  echo "== bench_fhe --device cuda"
  timeout 120 "$bundle/bench_fhe" --device cuda --reps 7 >"$out/bench_cuda.jsonl" || status=1
  cat "$out/bench_cuda.jsonl"
  if [ ! -s "$out/bench_cuda.jsonl" ] ||
    grep -q '"bit_exact": false\|"ct_sample_identical": false' "$out/bench_cuda.jsonl"; then
    echo "gpu-check: the benchmark failed or its product is not exact"
    status=1
  fi
  echo "gpu-check: exit $status"
  return $status
}

check 2>&1 | tee "$out/gpu-check.log"
exit "${PIPESTATUS[0]}"
