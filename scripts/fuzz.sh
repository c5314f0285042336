#!/usr/bin/env bash
# Builds every libFuzzer target with clang (cmake --preset fuzz: libraries instrumented for
# coverage and ASan, in build-fuzz/) and runs each for a bounded time:
#   bash scripts/fuzz.sh [SECONDS]
# SECONDS is the total fuzzing time, split evenly across the 10 targets (default 240, i.e. 24 s
# each; at least 1 s each). CI runs `bash scripts/fuzz.sh 120`.
#   protocol_fuzz_decode  worker and coordinator messages (tests/protocol)
#   fuzz_npy fuzz_safetensors fuzz_ciphertext fuzz_checkpoint fuzz_ini fuzz_peft_adapter
#   fuzz_budget fuzz_roster fuzz_tokenizer_json   the file parsers (tests/fuzz/README.md)
# Each target starts from its checked-in seeds (tests/fuzz/corpus/NAME, read only) and keeps
# what it finds in build-fuzz/corpus/TARGET. A crash, leak, timeout or out-of-memory input is
# written to build-fuzz/crashes/ and fails the script: fix the parser, then add the input to
# tests/fuzz/corpus/NAME so that fuzz_corpus_tests replays it in every build.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-240}"
targets=(protocol_fuzz_decode fuzz_npy fuzz_safetensors fuzz_ciphertext fuzz_checkpoint fuzz_ini
  fuzz_peft_adapter fuzz_budget fuzz_roster fuzz_tokenizer_json)
each=$((seconds / ${#targets[@]}))
((each >= 1)) || each=1

bash scripts/install-deps.sh
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
  # Cache hits across checkouts in different directories (CI clones into a fresh one).
  export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
fi
bash scripts/configure.sh fuzz "${launcher[@]}"
cmake --build --preset fuzz -j "$(nproc)"

mkdir -p build-fuzz/crashes
for t in "${targets[@]}"; do
  corpus="build-fuzz/corpus/$t"
  mkdir -p "$corpus"
  seeds=()
  name="${t#fuzz_}"
  [ -d "tests/fuzz/corpus/$name" ] && seeds=("tests/fuzz/corpus/$name")
  echo "== $t: ${each} s"
  if ! build-fuzz/bin/"$t" -max_total_time="$each" -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -timeout=10 -print_final_stats=1 -artifact_prefix="build-fuzz/crashes/$t-" \
    "$corpus" "${seeds[@]}"; then
    echo "fuzz.sh: $t found a failing input (build-fuzz/crashes/$t-*)" >&2
    exit 1
  fi
done
echo "fuzz.sh: ${#targets[@]} targets, ${each} s each, no findings"
