#!/usr/bin/env bash
# Installs missing dependencies, builds the release preset and runs the main job.
# Until the federation lands, the main job is a demonstration of the encrypted linear layer:
# a participant encrypts X, a worker computes W*Enc(X) without any key, the participant decrypts
# and the result is checked against the plaintext product, bit for bit.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake --preset release
cmake --build --preset release -j2
exec build/bin/fedctl fhe-demo "$@"
