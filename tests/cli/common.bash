# Shared by the command-line tests (sourced, not a test itself): the binary under test,
# a scratch directory, background processes killed on exit (also on failure), and the
# pass/fail counters. A test may define cleanup_extra for more to undo.
set -u
bin=${IROH_C:?IROH_C not set}
dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2> /dev/null; done
  if declare -F cleanup_extra > /dev/null; then cleanup_extra; fi
  rm -rf "$dir"
}
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
# milliseconds since the epoch, for the liveness bounds
ms() { echo $(( $(date +%s%N) / 1000000 )); }
# wait_exit PID [SECS]: waits up to SECS (default 20) for PID to exit, killing it then;
# sets st to its exit status (137 when it had to be killed)
wait_exit() {
  local n=$(( ${2:-20} * 20 ))
  for _ in $(seq $n); do kill -0 "$1" 2> /dev/null || break; sleep 0.05; done
  kill -9 "$1" 2> /dev/null
  wait "$1"; st=$?
}
