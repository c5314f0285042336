#!/usr/bin/env bash
# Builds the libFuzzer target over every decoder of untrusted protocol bytes (worker and
# coordinator messages) with clang, and runs it for a bounded time (default 60 s; CI uses this).
#   bash scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
bash scripts/install-deps.sh
cmake --preset fuzz
cmake --build --preset fuzz
mkdir -p build-fuzz/corpus
build-fuzz/bin/protocol_fuzz_decode -max_total_time="$seconds" -rss_limit_mb=2048 \
  -print_final_stats=1 build-fuzz/corpus
