#!/usr/bin/env bash
# Fuzzing Bench Master's parsers with cargo-fuzz (libFuzzer).
#
#   scripts/fuzz.sh                 replay: run every target over its committed corpus once
#                                   (-runs=0); fast, what CI can run; fails on any crash
#   scripts/fuzz.sh long [SECONDS]  fuzz each target for SECONDS (default 600), ONE AT A TIME,
#                                   growing fuzz/corpus/<target>; logs in fuzz/logs/
#   scripts/fuzz.sh cmin            minimise each corpus in place, keeping every feature with
#                                   the fewest inputs (-set_cover_merge), before committing it
#   TARGETS="nodes progress" scripts/fuzz.sh ...   only these targets
#
# Targets (fuzz/fuzz_targets/): test_def (the TOML test definition), nodes (the nodes file),
# result_xml (the result XML reader, with a write-and-read-back check), progress (per-node
# progress lines, with a print-and-parse-back check).
#
# Needs: `cargo install cargo-fuzz` and a C++ compiler (libfuzzer-sys builds libFuzzer).
# cargo-fuzz passes nightly-only flags to rustc (-Zsanitizer=..., -Cpasses=sancov-module...);
# on a stable toolchain RUSTC_BOOTSTRAP=1 lets rustc accept them. We fuzz without a sanitizer
# (-s none): the code is safe Rust, so ASan adds little and halves the speed; debug assertions
# (-a) are on so that integer overflow panics. Crashes land in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

export RUSTC_BOOTSTRAP=1
mode="${1:-replay}"
seconds="${2:-600}"
targets=(${TARGETS:-test_def nodes result_xml progress})
flags=(-O -a -s none)

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: cargo-fuzz is missing: cargo install cargo-fuzz" >&2
  exit 2
fi

# Build every target once, then run the binaries directly: a change to the crate while a long
# run goes on does not rebuild under it.
cargo fuzz build "${flags[@]}" >&2
bin_dir="target/$(rustc -vV | sed -n 's/^host: //p')/release"

# Limits for every run: a slow input (10 s) or 2 GB of memory is a crash too.
common=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1)

# The test_def target keeps its test file in a directory of its own, which libFuzzer's exit
# leaves behind: remove them after each target.
cleanup() { rm -rf /dev/shm/bm-fuzz-test-def-* "${TMPDIR:-/tmp}"/bm-fuzz-test-def-*; }
trap cleanup EXIT

for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t" logs
  case "$mode" in
    replay)
      echo "== $t: replaying $(ls "corpus/$t" | wc -l) inputs" >&2
      "$bin_dir/$t" "${common[@]}" -runs=0 "-artifact_prefix=artifacts/$t/" "corpus/$t" \
        2>"logs/$t.replay.log" || { tail -40 "logs/$t.replay.log" >&2; exit 1; }
      grep -E 'stat::number_of_executed_units|Done' "logs/$t.replay.log" >&2 || true
      ;;
    long)
      echo "== $t: fuzzing for $seconds s (log: fuzz/logs/$t.log)" >&2
      start=$(date +%s)
      status=0
      "$bin_dir/$t" "${common[@]}" "-max_total_time=$seconds" "-artifact_prefix=artifacts/$t/" \
        "corpus/$t" 2>"logs/$t.log" || status=$?
      end=$(date +%s)
      execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "logs/$t.log" | tail -1)
      crashes=$(find "artifacts/$t" -type f | wc -l)
      echo "$t: exit $status, $((end - start)) s, ${execs:-?} execs, $crashes artifacts, corpus $(ls "corpus/$t" | wc -l)" \
        | tee -a logs/summary.txt >&2
      ;;
    cmin)
      echo "== $t: minimising the corpus" >&2
      rm -rf "corpus/$t.min" && mkdir "corpus/$t.min"
      "$bin_dir/$t" "${common[@]}" -set_cover_merge=1 "corpus/$t.min" "corpus/$t" 2>"logs/$t.cmin.log"
      rm -rf "corpus/$t" && mv "corpus/$t.min" "corpus/$t"
      echo "$t: $(ls "corpus/$t" | wc -l) inputs, $(du -sh "corpus/$t" | cut -f1)" >&2
      ;;
    *)
      echo "usage: scripts/fuzz.sh [replay | long [SECONDS] | cmin]" >&2
      exit 2
      ;;
  esac
done
