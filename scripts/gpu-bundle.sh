#!/usr/bin/env bash
# Builds the GPU check programs HERE (a machine with nvcc but maybe no GPU): fhe_cuda_tests,
# fhe_worker_tests (its CUDA tests) and bench_fhe, and packs them with
# the shared libraries a stock CUDA image lacks into gpu-bundle/ (ignored by git), for
# scripts/gpu-check.sh to run on a GPU machine. Usage: scripts/gpu-bundle.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build-cuda}"
bundle=gpu-bundle
nvcc_bin="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)"
[ -x "$nvcc_bin" ] || { echo "gpu-bundle: nvcc not found" >&2; exit 1; }

# Serialised with every other build on this machine (2 shared cores).
flock /tmp/fedlora-build.lock cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DFEDLORA_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_CUDA_COMPILER="$nvcc_bin" \
  -DFEDLORA_BUILD_TESTS=ON -DFEDLORA_BUILD_BENCHMARKS=ON >/dev/null
flock /tmp/fedlora-build.lock cmake --build "$build" --target fhe_cuda_tests fhe_worker_tests bench_fhe -j2

rm -rf "$bundle"
mkdir -p "$bundle/lib"
progs=(fhe_cuda_tests fhe_worker_tests bench_fhe)
for p in "${progs[@]}"; do cp "$build/bin/$p" "$bundle/"; done
# Libraries outside the base system and the CUDA toolkit (the GPU machine has CUDA 13's own).
# glibc, libstdc++ and libgcc_s stay the target's: the programs need no newer ones
# (GLIBC_2.34, GLIBCXX_3.4.29).
for lib in $(cd "$bundle" && ldd "${progs[@]}" | awk '/=> \//{print $3}' | sort -u); do
  case "$(basename "$lib")" in
    libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|ld-linux*|libstdc++.so*|libgcc_s.so*) ;;
    libcuda.so*|libcudart.so*|libcublas.so*|libcublasLt.so*) ;;
    *) cp -L "$lib" "$bundle/lib/" ;;
  esac
done
(cd "$bundle" && strip --strip-unneeded "${progs[@]}" 2>/dev/null) || true
[ -f "$bundle/lib/libdnnl.so.2" ] || { echo "gpu-bundle: libdnnl.so.2 missing" >&2; exit 1; }
size_kib=$(du -sk "$bundle" | cut -f1)
echo "gpu-bundle: $(cd "$bundle" && find . -type f | sort | tr '\n' ' ')"
echo "gpu-bundle: ${size_kib} KiB"
if [ "$size_kib" -gt $((55 * 1024)) ]; then
  echo "gpu-bundle: larger than 55 MiB" >&2
  exit 1
fi
