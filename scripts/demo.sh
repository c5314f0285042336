#!/usr/bin/env bash
# Installs missing dependencies, builds the release preset and runs the main job: a simulated
# federation (build/bin/fedsim with configs/sim.ini: 3 hospital sites, 2 fhe_workers, 5 rounds,
# every frozen projection encrypted on the workers, DP-SGD on). Extra arguments go to fedsim,
# e.g. `bash scripts/demo.sh --processes` or `--rounds 10`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/configure.sh release
# Only what the federation runs (the test suites are built by scripts/test.sh).
cmake --build --preset release -j2 --target fedsim coordinator fhe_worker participant_agent fedctl
exec build/bin/fedsim --config configs/sim.ini "$@"
