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
