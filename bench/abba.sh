#!/usr/bin/env bash
# Two checkouts side by side, interleaved ABBA (A B B A A B B A ...) so that neither side
# always runs first: bench/orders_bench.py (or BENCH_SCRIPT, e.g. merchant_bench.py) at one
# concurrency level in each, printing per run the server's and PostgreSQL's CPU per order
# (orders only), the rate, the p50 / p99 of each call and the ratio to pgbench
# (docs/benchmarks.md, sections 000 and 00000).
# Both sides run this checkout's bench scripts (one measuring tool, BENCH_LOADGEN included),
# each with its own .venv and so its own autokey.
#
#   bench/abba.sh OTHER_CHECKOUT [PAIRS]     e.g. git worktree add ../before d140ea4 first,
#                                            with its own .venv (pip install -e '.[dev]')
# Environment: BENCH_SCRIPT (orders_bench.py), BENCH_CLIENTS (default 32), BENCH_SECONDS (10),
# BENCH_WORKERS (1: one worker is CPU-bound, so orders/s = 1 / CPU per order); the rest goes to
# the script unchanged.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
other=$(cd "${1:?usage: bench/abba.sh OTHER_CHECKOUT [PAIRS]}" && pwd)
pairs=${2:-4}
export BENCH_CLIENTS=${BENCH_CLIENTS:-32} BENCH_SECONDS=${BENCH_SECONDS:-10}
export BENCH_WORKERS=${BENCH_WORKERS:-1} BENCH_PROFILE=0 BENCH_ROUND_TRIPS=0
script=${BENCH_SCRIPT:-orders_bench.py}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
run=0
for ((pair = 0; pair < pairs; pair++)); do
  if ((pair % 2 == 0)); then order="A B"; else order="B A"; fi
  for side in $order; do
    run=$((run + 1))
    if [[ $side == A ]]; then dir=$here; else dir=$other; fi
    (cd "$dir" && .venv/bin/python "$here/bench/$script" >"$out/$run" 2>&1)
    cpu=$(grep -o 'server [0-9.]* ms, postgres [0-9.]* ms' "$out/$run" | tail -1 || true)
    # rate, autokey's p50 / p99 per call (create, pay, fulfill; or reserve, order), ratio
    row=$(grep "^${BENCH_CLIENTS##*,} |" "$out/$run" | awk -F'|' '{
      calls = ""; for (i = 3; i <= NF - 4; i++) calls = calls (i > 3 ? ";" : "") $i
      print $2 "per s, p50 / p99 ms:" calls "," $NF }')
    echo "run $run  $side ($dir): ${cpu:+$cpu per order, }$row"
  done
done
