#!/usr/bin/env bash
# Runs every libFuzzer harness of harmose-fuzz (docs/robustness.md). Usage:
#   tools/fuzz.sh [RUNS] [HARNESS …]     RUNS executions per harness (default 1000000)
#   FUZZ_SECONDS=N caps each harness's time as well (libFuzzer -max_total_time; 0 = no cap)
# Builds Sources/HarmoseFuzz (HARMOSE_FUZZ=1: -sanitize=fuzzer,address) into .build-fuzz/, seeds each corpus
# from Tests/Fixtures (harmose-fuzz seeds) plus Tests/Fixtures/fuzz/<harness>/ (past findings),
# and runs with -timeout=1 (an input taking over a second is a hang). Findings are written to
# .build-fuzz/findings/<harness>/; a summary line per harness gives runs, seconds and findings.
set -uo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-1000000}
shift || true
# HARMOSE_FUZZ=1 makes Package.swift compile harmose-fuzz and the modules it fuzzes with ONE
# -sanitize=fuzzer,address flag per target (coverage-guided libFuzzer + ASan), while the
# CodeIdentity plugin's host tool stays plain. (`--sanitize=fuzzer --sanitize=address` passes two
# -sanitize flags and swiftc keeps only the last, dropping coverage; `-Xswiftc -sanitize=…` also
# instruments the host tool, whose link then fails.) Own scratch path and no shared manifest
# cache, so the plain .build of make test/run is never touched.
HARMOSE_FUZZ=1 swift build --product harmose-fuzz --scratch-path .build-fuzz --manifest-cache none \
  ${SWIFT_BUILD_FLAGS:-} || exit 1
swift build --product harmose-fuzz ${SWIFT_BUILD_FLAGS:-} || exit 1
FUZZ=$PWD/.build-fuzz/debug/harmose-fuzz
PLAIN=$PWD/.build/debug/harmose-fuzz
HARNESSES=("$@")
[ ${#HARNESSES[@]} -gt 0 ] || mapfile -t HARNESSES < <("$PLAIN" list | cut -f1)
status=0
for h in "${HARNESSES[@]}"; do
  corpus=.build-fuzz/corpus/$h findings=.build-fuzz/findings/$h
  mkdir -p "$corpus" "$findings"
  "$PLAIN" seeds "$h" "$corpus" || exit 1
  [ -d "Tests/Fixtures/fuzz/$h" ] && cp Tests/Fixtures/fuzz/$h/* "$corpus"/ 2>/dev/null
  # Inputs up to 64 KiB, or the largest seed (run-folder harnesses join several files).
  maxlen=$(find "$corpus" -type f -printf '%s\n' | sort -n | tail -1)
  [ "${maxlen:-0}" -gt 65536 ] || maxlen=65536
  log=.build-fuzz/$h.log
  start=$(date +%s)
  HARMOSE_FUZZ_TARGET=$h SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 \
    "$FUZZ" -runs="$RUNS" -max_total_time="${FUZZ_SECONDS:-0}" -timeout=1 -rss_limit_mb=4096 -max_len=$maxlen -print_final_stats=1 \
      -artifact_prefix="$findings/" "$corpus" > "$log" 2>&1
  rc=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  found=$(ls "$findings" | wc -l)
  echo "$h: rc=$rc runs=${runs:-?} seconds=$(( $(date +%s) - start )) findings=$found log=$log"
  [ "$rc" = 0 ] && [ "$found" = 0 ] || status=1
done
exit $status
