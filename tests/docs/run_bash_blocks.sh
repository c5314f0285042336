#!/usr/bin/env bash
# Runs a Markdown document's ```bash code blocks, in order, as one script (set -euo pipefail) in a
# fresh temporary directory with BIN_DIR first on PATH: the document's commands are tested as a
# reader would type them. Blocks fenced ```sh or ```ini are shown, not run.
#   tests/docs/run_bash_blocks.sh docs/federation-howto.md build/bin [TIMEOUT_S]
# Exit status: the script's (124 when it ran past TIMEOUT_S, default 300). Every process the
# document started is stopped afterwards (the script runs in its own process group).
set -uo pipefail
doc=$(realpath "$1")
bin=$(realpath "$2")
limit=${3:-300}
work=$(mktemp -d "${TMPDIR:-/tmp}/fedlora-doc-XXXXXX")
trap 'rm -rf "$work"' EXIT
{
  echo 'set -euo pipefail'
  awk '/^```bash[[:space:]]*$/ {on=1; next} /^```/ {on=0} on {print}' "$doc"
} > "$work/doc.sh"
if [ "$(wc -l < "$work/doc.sh")" -le 1 ]; then
  echo "run_bash_blocks: no \`\`\`bash blocks in $doc" >&2
  exit 2
fi
cd "$work"
PATH="$bin:$PATH" setsid timeout --kill-after=10 "$limit" bash "$work/doc.sh" &
pid=$!
wait "$pid"
status=$?
# The document's background processes, if it left any (its own process group).
kill -TERM -- "-$pid" 2>/dev/null && sleep 2 && kill -KILL -- "-$pid" 2>/dev/null
if [ "$status" -ne 0 ]; then
  echo "run_bash_blocks: $doc failed with status $status; logs:" >&2
  for f in "$work"/*.log; do [ -f "$f" ] && { echo "== $f" >&2; tail -20 "$f" >&2; }; done
fi
exit "$status"
