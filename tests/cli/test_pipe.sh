#!/usr/bin/env bash
# Two iroh-c processes on loopback: listen (dumb pipe) and connect, data both ways; an
# echo listener and connect --streams; and the clean failures.
source "$(dirname "$0")/common.bash"

wait_ticket() { # file -> ticket on stdout
  for _ in $(seq 100); do [ -s "$1" ] && head -1 "$1" && return 0; sleep 0.05; done
  return 1
}

# --- dumb pipe: connect's stdin -> listen's stdout, listen's stdin -> connect's stdout ---
head -c 300000 /dev/urandom > "$dir/up"
head -c 200000 /dev/urandom > "$dir/down"
"$bin" listen --no-relay --alpn pipe/0 --bind 127.0.0.1:0 < "$dir/down" > "$dir/listen.out" 2> "$dir/listen.err" &
pids+=($!); lpid=$!
ticket=$(wait_ticket "$dir/listen.out") || bad "listen printed no ticket"
timeout 60 "$bin" connect --no-relay "$ticket" --alpn pipe/0 < "$dir/up" > "$dir/connect.out" 2> "$dir/connect.err"
status=$?
[ $status = 0 ] && ok || bad "connect exited $status: $(cat "$dir/connect.err")"
cmp -s "$dir/down" "$dir/connect.out" && ok || bad "listen's stdin did not arrive intact at connect"
wait $lpid; lstatus=$?
[ $lstatus = 0 ] && ok || bad "listen exited $lstatus: $(cat "$dir/listen.err")"
tail -n +2 "$dir/listen.out" > "$dir/listen.data"
cmp -s "$dir/up" "$dir/listen.data" && ok || bad "connect's stdin did not arrive intact at listen"
grep -q "connection from [0-9a-f]\{64\}" "$dir/listen.err" && ok || bad "listen did not name the peer"

# --- echo listener, several streams on one connection ---
"$bin" listen --no-relay --alpn echo/0 --echo --bind 127.0.0.1:0 > "$dir/echo.out" 2>&1 &
pids+=($!); epid=$!
eticket=$(wait_ticket "$dir/echo.out") || bad "echo listener printed no ticket"
printf 'ping\n' | timeout 30 "$bin" connect --no-relay "$eticket" --alpn echo/0 --streams 5 > "$dir/streams.out"
[ "$(grep -c '^ping$' "$dir/streams.out")" = 5 ] && ok || bad "--streams 5 gave: $(cat "$dir/streams.out")"

# --- failures are clean and quick ---
out=$(echo x | timeout 30 "$bin" connect --no-relay "$eticket" --alpn wrong/0 2>&1); st=$?
[ $st = 1 ] && [[ "$out" == *"ALPN"* ]] && ok || bad "wrong ALPN: status $st: $out"
other=$("$bin" id "$("$bin" keygen)")
addr=$("$bin" ticket decode "$eticket" | sed 's/.*"addrs":\["\([^"]*\)".*/\1/')
wrong=$("$bin" ticket encode "$other" --addr "$addr")
out=$(echo x | timeout 30 "$bin" connect --no-relay "$wrong" --alpn echo/0 2>&1); st=$?
[ $st = 1 ] && [[ "$out" == *"wrong key"* ]] && ok || bad "wrong key: status $st: $out"
dead=$("$bin" ticket encode "$other" --addr 127.0.0.1:9)
out=$(echo x | timeout 30 "$bin" connect --no-relay "$dead" --alpn echo/0 --timeout 1 2>&1); st=$?
[ $st = 1 ] && [[ "$out" == *"timed out"* ]] && ok || bad "nobody there: status $st: $out"
out=$(timeout 10 "$bin" connect --no-relay "$eticket" 2>&1); st=$?
[ $st = 2 ] && ok || bad "connect without --alpn: status $st: $out"

# SIGTERM ends the echo listener cleanly
kill -TERM $epid
for _ in $(seq 100); do kill -0 $epid 2>/dev/null || break; sleep 0.05; done
wait $epid; st=$?
[ $st = 0 ] && ok || bad "echo listener exit status after SIGTERM: $st"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
