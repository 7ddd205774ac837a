#!/usr/bin/env bash
# Source coverage of fuzz targets over their corpora: builds build-cov/ (clang with
# -fprofile-instr-generate -fcoverage-mapping, the targets run by tests/fuzz/driver.c), runs
# each target on tests/fuzz/corpus/<target>/ and prints llvm-cov's line and function
# coverage for the library files that target is about.
#
#   scripts/fuzz-coverage.sh                  the targets below
#   scripts/fuzz-coverage.sh ep relay_server  only these
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
cov=build-cov
if [ ! -f "$cov/CMakeCache.txt" ]; then
  CC=clang cmake -S . -B "$cov" -DCMAKE_BUILD_TYPE=Debug -DIROH_INTEROP=OFF \
    -DCMAKE_C_FLAGS="-fprofile-instr-generate -fcoverage-mapping" >/dev/null
fi
nice -n 10 cmake --build "$cov" -j 2 >/dev/null

# target -> the files it is meant to reach
declare -A files=(
  [ep]="src/endpoint/ep_core.c src/endpoint/ep_cidmap.c src/endpoint/ep.c"
  [qad]="src/quic/conn_path.c src/quic/conn_recv.c src/quic/conn_send.c"
  [relay_server]="src/relay/server.c src/relay/server_relay.c src/relay/server_routing.c src/relay/server_output.c src/relay/server_ratelimit.c src/relay/server_timers.c"
  [relay_http]="src/relay/server.c src/relay/server_http.c src/relay/server_metrics.c src/relay/server_shell.c src/relay/http.c src/relay/ws.c"
  [relay_link]="src/endpoint/relay_link_core.c src/endpoint/relay_link.c src/relay/client.c"
  [tls_stream]="src/relay/tls_stream.c"
  [cert]="src/tls/tls.c"
  [relay_client]="src/relay/client.c"
  [conn]="src/quic/conn.c src/quic/conn_hs.c src/quic/conn_keys.c src/quic/conn_recv.c src/quic/conn_send.c src/quic/conn_cid.c src/quic/conn_path.c src/quic/conn_stream.c src/quic/conn_dgram.c src/quic/stream_map.c"
)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(ep qad relay_server relay_http relay_link tls_stream cert)
work=$(mktemp -d /tmp/iroh-cov-XXXXXX)
trap 'rm -rf "$work"' EXIT
for t in "${targets[@]}"; do
  bin="$cov/tests/fuzz_$t"
  LLVM_PROFILE_FILE="$work/$t-%p.profraw" "$bin" "tests/fuzz/corpus/$t" >/dev/null 2>&1 ||
    echo "fuzz-coverage: $t failed on its corpus" >&2
  llvm-profdata merge -sparse "$work/$t"-*.profraw -o "$work/$t.profdata"
  echo "== $t ($(ls "tests/fuzz/corpus/$t" | wc -l) inputs)"
  # shellcheck disable=SC2086
  llvm-cov report "$bin" -instr-profile="$work/$t.profdata" ${files[$t]:-} |
    awk '$1 ~ /\.c$/ { f = $1; if (index(f, "/src/")) f = substr(f, index(f, "/src/") + 5);
         printf "  %-24s functions %7s  lines %7s  branches %7s\n", f, $7, $10, $13 }'
done
