#!/usr/bin/env bash
# Records real traffic for the fuzz corpora: runs tests that talk over loopback (by default
# the interop tests against the real iroh, @number0/iroh, and a few of our own command-line
# tests) while tcpdump captures UDP and TCP on lo, turns the capture into fuzz inputs
# (scripts/pcap-to-corpus.py: QUIC datagrams, relay HTTP/WebSocket streams and frames),
# and merges them into tests/fuzz/corpus/<target>/ with libFuzzer's -merge=1, which adds
# only inputs that reach new coverage (so the corpora stay small).
#
#   scripts/record-corpus.sh                 record, convert, merge
#   RECORD_TESTS='interop/test_quic_direct'  ctest -R regex of the tests to run
#   RECORD_KEEP=1                            keep the capture and the raw inputs
#
# Needs: build/ (gcc, `make build`) for the tests, build-san/ (`make san`) for the merge,
# root for tcpdump (installed by scripts/install-deps.sh record). Other traffic on lo
# during the run is captured too; only what parses as QUIC or the relay protocol is kept.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
tests=${RECORD_TESTS:-'interop/test_(quic_direct|relay_endpoint|relay_server|hostile_relay)|cli/test_(pipe|relay_http|relay_metrics)'}

[ -x build/iroh-c ] || { echo "record-corpus: build/ is missing (make build)" >&2; exit 2; }
ls build-san/tests/fuzz_* >/dev/null 2>&1 || { echo "record-corpus: build-san/ is missing (make san)" >&2; exit 2; }
bash scripts/install-deps.sh record

work=$(mktemp -d /tmp/iroh-record-XXXXXX)
cap="$work/lo.pcap"
tcpdump -i lo -U -s 0 -w "$cap" 'udp or tcp' 2>"$work/tcpdump.log" &
dump=$!
cleanup() {
  kill "$dump" 2>/dev/null || true
  wait "$dump" 2>/dev/null || true
  [ -n "${RECORD_KEEP:-}" ] && echo "record-corpus: kept $work" || rm -rf "$work"
}
trap cleanup EXIT
sleep 1 # tcpdump is listening

echo "record-corpus: running ctest -R '$tests' in build/ while capturing lo"
(cd build && ctest -R "$tests" --output-on-failure) || echo "record-corpus: some tests failed; using the capture anyway" >&2
sleep 1
kill "$dump"
wait "$dump" 2>/dev/null || true

python3 scripts/pcap-to-corpus.py "$cap" "$work/inputs"

for dir in "$work"/inputs/*/; do
  t=$(basename "$dir")
  bin=build-san/tests/fuzz_$t
  [ -x "$bin" ] || continue
  mkdir -p "tests/fuzz/corpus/$t"
  before=$(ls "tests/fuzz/corpus/$t" | wc -l)
  "$bin" -merge=1 -max_len=4096 "tests/fuzz/corpus/$t" "$dir" >"$work/merge-$t.log" 2>&1 ||
    { echo "record-corpus: merge for $t failed (see $work/merge-$t.log)" >&2; RECORD_KEEP=1; continue; }
  after=$(ls "tests/fuzz/corpus/$t" | wc -l)
  echo "record-corpus: $t: $((after - before)) recorded inputs added (of $(ls "$dir" | wc -l))"
done
