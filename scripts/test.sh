#!/usr/bin/env bash
# Installs missing dependencies, builds a preset (release by default, or asan) and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"
bash scripts/install-deps.sh
bash scripts/configure.sh "$preset"
cmake --build --preset "$preset" -j2
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
ctest --preset "$preset" -j2
