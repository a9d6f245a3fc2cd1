#!/usr/bin/env bash
# Extracts August 2019 of three campaigns from the bundled Cube simulator into ./out and prints
# what landed. Run through `make demo`, which builds first.
set -euo pipefail
cd "$(dirname "$0")/.."

SIM=target/debug/examples/cube_sim
BIN=target/debug/cube-extract
REPORT=target/demo-report.json

# The simulator prints its address as its first line; read it from the pipe (no sleeping).
exec 3< <(exec "$SIM" serve --port 0 --quirks all)
SIM_PID=$!
trap 'kill "$SIM_PID" 2>/dev/null || true' EXIT
read -r -u 3 line
BASE_URL=${line#listening on }
echo "simulator: $BASE_URL"

"$BIN" call-outcomes --base-url "$BASE_URL" --token sim-token \
    --campaign 101,102,103 --from 2019-08-01 --to 2019-08-31 \
    --dest out --report "$REPORT"

python3 scripts/summary.py "$REPORT" out/_cube_extract/call_outcomes/schema.json
