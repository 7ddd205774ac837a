#!/usr/bin/env bash
# `make fuzz`: runs every libFuzzer target of the clang build (build-san, `make san`) for a
# fixed time, one target at a time, and prints the executions per target and the total.
#
#   FUZZ_SECONDS=60     seconds per target (default 60)
#   FUZZ_TARGETS="a b"  only these targets (short names: conn, relay_server, ...)
#   FUZZ_NICE=19        niceness of the fuzzing processes (default 19: the machine is shared)
#   FUZZ_MAX_LEN=4096   libFuzzer -max_len (as the ctest cases)
#   FUZZ_BUILD=build-san
#
# Binaries are copied first (a rebuild does not disturb a long run). New inputs go to
# $FUZZ_BUILD/fuzz-run/scratch/<name>/, never into tests/fuzz/corpus (scripts/record-corpus.sh
# merges them there on purpose, minimized); crashes to $FUZZ_BUILD/fuzz-run/artifacts/<name>/.
# Every run is appended to $FUZZ_BUILD/fuzz-run/ledger.tsv (date, target, seconds,
# executions, result), so the executions of several sessions add up. Exit status 1 if
# any target crashed, leaked or timed out.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD:-build-san}
case "$build" in /*) ;; *) build="$here/$build" ;; esac
secs=${FUZZ_SECONDS:-60}
nice_level=${FUZZ_NICE:-19}
max_len=${FUZZ_MAX_LEN:-4096}
run="$build/fuzz-run"

if ! ls "$build"/tests/fuzz_* >/dev/null 2>&1; then
  echo "fuzz: no libFuzzer targets in $build/tests (run 'make san' first)" >&2
  exit 2
fi
mkdir -p "$run/bin" "$run/scratch" "$run/artifacts" "$run/logs"

targets=()
if [ -n "${FUZZ_TARGETS:-}" ]; then
  for t in $FUZZ_TARGETS; do targets+=("${t#fuzz_}"); done
else
  for b in "$build"/tests/fuzz_*; do targets+=("$(basename "$b" | sed 's/^fuzz_//')"); done
fi

total=0
failed=0
printf '%-16s %8s %14s %10s  %s\n' target seconds executions exec/s result
for t in "${targets[@]}"; do
  src="$build/tests/fuzz_$t"
  if [ ! -x "$src" ]; then
    echo "fuzz: no target fuzz_$t in $build/tests" >&2
    failed=1
    continue
  fi
  cp "$src" "$run/bin/fuzz_$t"
  mkdir -p "$run/scratch/$t" "$run/artifacts/$t"
  corpus="$here/tests/fuzz/corpus/$t"
  dirs=("$run/scratch/$t")
  [ -d "$corpus" ] && dirs+=("$corpus")
  log="$run/logs/$t.log"
  start=$(date +%s)
  # the first corpus directory receives new inputs: the scratch one
  nice -n "$nice_level" "$run/bin/fuzz_$t" -max_total_time="$secs" -print_final_stats=1 \
    -max_len="$max_len" -timeout=30 -rss_limit_mb=2560 \
    -artifact_prefix="$run/artifacts/$t/" "${dirs[@]}" >"$log" 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  if [ -z "$execs" ]; then
    # a crash ends the run before the final stats: take the last status line
    execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
  fi
  execs=${execs:-0}
  if [ $rc -eq 0 ]; then
    result=ok
  else
    result="FAILED (exit $rc, see $log)"
    failed=1
    art=$(ls -t "$run/artifacts/$t" 2>/dev/null | head -1)
    [ -n "$art" ] && result="$result, input $run/artifacts/$t/$art"
  fi
  total=$((total + execs))
  rate=$(( took > 0 ? execs / took : execs ))
  printf '%-16s %8s %14s %10s  %s\n' "$t" "$took" "$execs" "$rate" "$result"
  printf '%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "$took" "$execs" "${result%% *}" \
    >>"$run/ledger.tsv"
done
printf '%-16s %8s %14s\n' total "" "$total"
if [ -s "$run/ledger.tsv" ]; then
  all=$(awk -F'\t' '$5 == "ok" { s += $4 } END { printf "%d", s }' "$run/ledger.tsv")
  echo "all runs recorded in $run/ledger.tsv without a failure: $all executions"
fi
exit $failed
