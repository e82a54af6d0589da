#!/usr/bin/env bash
# Benchmark of bench-report: a report from 64 node results × 3 cycles × 20 steps must build in
# under 2 s and 300 MB. Prints the wall time and peak memory; exits 1 when over budget.
#
#   scripts/bench-report.sh [NODES]      (default 64)
set -euo pipefail
cd "$(dirname "$0")/.."

nodes="${1:-64}"
work="target/bench-report"
rm -rf "$work"
mkdir -p "$work/results"

cargo build --release --quiet --bin bench-report
echo "writing $nodes node results (3 cycles × 20 steps) into $work/results ..."
BENCH_REPORT_FIXTURES="$PWD/$work/results" BENCH_REPORT_NODES="$nodes" \
  cargo test --release --quiet --test tests report::write_benchmark_fixtures -- \
  --ignored --exact >/dev/null

size=$(du -sh "$work/results" | cut -f1)
echo "input: $(ls "$work/results" | wc -l) files, $size"

/usr/bin/time -f '%e %M' -o "$work/time.txt" \
  target/release/bench-report -o "$work/report" "$work"/results/*.xml >/dev/null
read -r seconds kib <"$work/time.txt"
mib=$((kib / 1024))
echo "report: $(du -sh "$work/report/index.html" | cut -f1) of HTML in $work/report/"
echo "wall time: ${seconds} s (budget 2 s)"
echo "peak memory: ${mib} MiB (budget 300 MiB)"

awk -v s="$seconds" -v m="$mib" 'BEGIN { exit !(s < 2 && m < 300) }' \
  && echo "within budget" || { echo "OVER BUDGET"; exit 1; }
