#!/usr/bin/env bash
# Extracts the whole Cube model from the bundled simulator into ./out with one `sync`: August 2019
# of three campaigns' call outcomes and product registrations, and today's snapshot of their
# customers, call-flow status, campaigns and custom-field definitions; prints what landed. Run through `make demo`, which builds first.
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

"$BIN" sync --base-url "$BASE_URL" --token sim-token \
    --campaign 101,102,103 --from 2019-08-01 --to 2019-08-31 \
    --dest out --report "$REPORT"

python3 scripts/summary.py "$REPORT" out/_cube_extract/call_outcomes/schema.json

# What the destination now holds of call outcomes, from its ledger alone; the month is complete.
echo
"$BIN" status --dest out --expect-from 2019-08-01 --expect-to 2019-08-31
