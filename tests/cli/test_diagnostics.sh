#!/usr/bin/env bash
# IROH_LOG levels and SSLKEYLOGFILE (TLS secrets for Wireshark/tshark) on a real connection.
set -u
bin=${IROH_C:?IROH_C not set}
dir=$(mktemp -d)
lpid=
cleanup() { [ -n "$lpid" ] && { kill "$lpid" 2>/dev/null; wait "$lpid" 2>/dev/null; }; rm -rf "$dir"; }
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

IROH_LOG=debug "$bin" listen --no-relay --alpn diag/0 --echo --bind 127.0.0.1:0 > "$dir/l.out" 2> "$dir/l.err" &
lpid=$!
for _ in $(seq 100); do [ -s "$dir/l.out" ] && break; sleep 0.05; done
ticket=$(head -1 "$dir/l.out")
echo hi | SSLKEYLOGFILE="$dir/keys" IROH_LOG=info timeout 30 "$bin" connect --no-relay "$ticket" --alpn diag/0 > "$dir/c.out" 2> "$dir/c.err"
[ "$(cat "$dir/c.out")" = hi ] && ok || bad "echo through the logged connection"
grep -q 'INFO  iroh: connection to [0-9a-f]\{10\} established (ALPN diag/0)' "$dir/c.err" && ok || bad "info log of the client: $(cat "$dir/c.err")"
grep -q 'DEBUG iroh: UDP socket bound to 127.0.0.1:' "$dir/l.err" && ok || bad "debug log of the listener"
grep -q 'DEBUG' "$dir/c.err" && bad "IROH_LOG=info printed debug lines" || ok
for label in CLIENT_HANDSHAKE_TRAFFIC_SECRET SERVER_HANDSHAKE_TRAFFIC_SECRET CLIENT_TRAFFIC_SECRET_0 SERVER_TRAFFIC_SECRET_0; do
  grep -Eq "^$label [0-9a-f]{64} [0-9a-f]{64,96}\$" "$dir/keys" && ok || bad "no $label line in SSLKEYLOGFILE"
done
# the default level (warn) keeps a good run silent
echo hi | timeout 30 "$bin" connect --no-relay "$ticket" --alpn diag/0 > /dev/null 2> "$dir/quiet.err"
[ ! -s "$dir/quiet.err" ] && ok || bad "default log level printed: $(cat "$dir/quiet.err")"

# an invalid IROH_LOG is reported (one line naming it), and the command works on
out=$(echo hi | IROH_LOG=loud timeout -k 5 30 "$bin" connect --no-relay "$ticket" --alpn diag/0 2> "$dir/bad.err"); st=$?
[ $st = 0 ] && [ "$out" = hi ] && ok || bad "IROH_LOG=loud: status $st, '$out'"
[ "$(wc -l < "$dir/bad.err")" = 1 ] && grep -q 'IROH_LOG=loud' "$dir/bad.err" && ok || bad "IROH_LOG=loud was not reported in one line: $(cat "$dir/bad.err")"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
