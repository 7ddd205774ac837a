#!/usr/bin/env bash
# Two iroh-c processes on loopback: listen (dumb pipe) and connect, data both ways, with
# the pipe listener's stdout carrying exactly the bytes received (its ticket on stderr);
# a closed stdout on either side; a second client of a busy pipe listener; listen with
# two ALPNs; closed standard descriptors; an echo listener and connect --streams; and
# the clean failures.
source "$(dirname "$0")/common.bash"

wait_ticket() { # file -> the first line of an echo listener's stdout
  for _ in $(seq 100); do [ -s "$1" ] && head -1 "$1" && return 0; sleep 0.05; done
  return 1
}
pipe_ticket() { # file... -> the ticket a pipe listener printed on stderr ("iroh-c:
  # ticket: ..."; in its stdout, if given as well, for the other checks' sake)
  local t
  for _ in $(seq 100); do
    t=$(sed -n 's/^\(iroh-c: ticket: \)\{0,1\}\(endpoint[a-z0-9]*\)$/\2/p' "$@" | head -1)
    [ -n "$t" ] && echo "$t" && return 0
    sleep 0.05
  done
  return 1
}
# stdin that stays open and silent: a FIFO this shell holds open for writing
mkfifo "$dir/quiet"
exec 7<> "$dir/quiet"

# --- dumb pipe: connect's stdin -> listen's stdout, listen's stdin -> connect's stdout ---
head -c 300000 /dev/urandom > "$dir/up"
head -c 200000 /dev/urandom > "$dir/down"
"$bin" listen --no-relay --alpn pipe/0 --bind 127.0.0.1:0 < "$dir/down" > "$dir/listen.out" 2> "$dir/listen.err" &
pids+=($!); lpid=$!
ticket=$(pipe_ticket "$dir/listen.err" "$dir/listen.out")
grep -q "^iroh-c: ticket: $ticket\$" "$dir/listen.err" && ok || bad "listen put no 'iroh-c: ticket: ' line on stderr: $(cat "$dir/listen.err")"
timeout -k 5 60 "$bin" connect --no-relay "$ticket" --alpn pipe/0 < "$dir/up" > "$dir/connect.out" 2> "$dir/connect.err"
status=$?
[ $status = 0 ] && ok || bad "connect exited $status: $(cat "$dir/connect.err")"
cmp -s "$dir/down" "$dir/connect.out" && ok || bad "listen's stdin did not arrive intact at connect"
wait_exit $lpid 10
[ $st = 0 ] && ok || bad "listen exited $st: $(cat "$dir/listen.err")"
# stdout is exactly the bytes received: no ticket, no message
cmp -s "$dir/up" "$dir/listen.out" && ok || bad "listen's stdout is not exactly connect's stdin ($(wc -c < "$dir/listen.out") bytes, want 300000)"
grep -q "connection from [0-9a-f]\{64\}" "$dir/listen.err" && ok || bad "listen did not name the peer"

# --- a closed stdout ends the transfer quietly: no crash, no SIGPIPE death, status 0 ---
head -c 20000000 /dev/zero > "$dir/big"
"$bin" listen --no-relay --alpn pipe/0 --bind 127.0.0.1:0 < "$dir/big" > "$dir/l1.out" 2> "$dir/l1.err" &
pids+=($!); lpid=$!
ticket=$(pipe_ticket "$dir/l1.err" "$dir/l1.out") || bad "no ticket: $(cat "$dir/l1.err")"
timeout -k 5 60 "$bin" connect --no-relay "$ticket" --alpn pipe/0 < "$dir/big" 2> "$dir/c1.err" | head -c 10 > "$dir/c1.out"
status=${PIPESTATUS[0]}
[ $status = 0 ] && [ ! -s "$dir/c1.err" ] && ok || bad "connect | head -c 10: status $status: $(cat "$dir/c1.err")"
[ "$(wc -c < "$dir/c1.out")" = 10 ] && ok || bad "head got $(wc -c < "$dir/c1.out") bytes"
wait_exit $lpid 10
[ $st = 1 ] && grep -q "the peer closed the connection: output closed" "$dir/l1.err" && ok ||
  bad "the listener was not told connect's stdout closed: status $st: $(cat "$dir/l1.err")"
# the same for listen's stdout (head reads it through a process substitution, so that
# $! is the listener)
"$bin" listen --no-relay --alpn pipe/0 --bind 127.0.0.1:0 < "$dir/big" 2> "$dir/l2.err" > >(head -c 10 > "$dir/l2.out") &
pids+=($!); lpid=$!
ticket=$(pipe_ticket "$dir/l2.err") || bad "no ticket: $(cat "$dir/l2.err")"
timeout -k 5 60 "$bin" connect --no-relay "$ticket" --alpn pipe/0 < "$dir/big" > /dev/null 2> "$dir/c2.err"
status=$?
[ $status = 1 ] && grep -q "the peer closed the connection: output closed" "$dir/c2.err" && ok ||
  bad "connect was not told the listener's stdout closed: status $status: $(cat "$dir/c2.err")"
wait_exit $lpid 10
[ $st = 0 ] && ok || bad "listen > >(head -c 10): status $st"
[ "$(grep -vc '^iroh-c: ticket: \|^iroh-c: connection from ' "$dir/l2.err")" = 0 ] && ok ||
  bad "listen > >(head -c 10) printed: $(cat "$dir/l2.err")"
for _ in $(seq 100); do [ -s "$dir/l2.out" ] && break; sleep 0.05; done
[ "$(wc -c < "$dir/l2.out")" = 10 ] && ok || bad "head got $(wc -c < "$dir/l2.out") bytes from listen"

# --- a busy pipe listener refuses a second client at once, with the reason ---
"$bin" listen --no-relay --alpn pipe/0 --bind 127.0.0.1:0 < "$dir/quiet" > "$dir/busy.out" 2> "$dir/busy.err" &
pids+=($!); lpid=$!
ticket=$(pipe_ticket "$dir/busy.err" "$dir/busy.out") || bad "no ticket: $(cat "$dir/busy.err")"
printf first | "$bin" connect --no-relay "$ticket" --alpn pipe/0 > /dev/null 2> "$dir/first.err" &
# (printf's end finishes the stream; connect then waits for the listener's side)
pids+=($!); fpid=$!
for _ in $(seq 100); do grep -q "connection from" "$dir/busy.err" && break; sleep 0.05; done
t0=$(ms)
echo second | timeout -k 5 60 "$bin" connect --no-relay "$ticket" --alpn pipe/0 > "$dir/second.out" 2> "$dir/second.err"
status=$? took=$(( $(ms) - t0 ))
[ $status = 1 ] && ok || bad "second client: status $status: $(cat "$dir/second.err")"
[ "$(cat "$dir/second.err")" = "iroh-c: the peer closed the connection: busy: this listener serves one connection (code 1)" ] &&
  ok || bad "second client's message: $(cat "$dir/second.err")"
[ $took -le 1000 ] && ok || bad "the second client took $took ms (the issue's bound: 1 s)"
echo "busy listener: the second client was refused in $took ms"
kill -0 $fpid 2> /dev/null && ok || bad "the first client is gone: $(cat "$dir/first.err")"
[ "$(tail -c 5 "$dir/busy.out")" = first ] && ok || bad "the first client's data: '$(cat "$dir/busy.out")'"
kill -TERM $lpid; wait_exit $lpid 10; wait_exit $fpid 10

# --- listen with two ALPNs serves both ---
"$bin" listen --no-relay --alpn one/0 --alpn two/0 --echo --bind 127.0.0.1:0 > "$dir/two.out" 2> /dev/null &
pids+=($!); tpid=$!
tticket=$(wait_ticket "$dir/two.out") || bad "the two-ALPN echo listener printed no ticket"
for a in one/0 two/0; do
  out=$(echo "via $a" | timeout -k 5 30 "$bin" connect --no-relay "$tticket" --alpn $a 2>&1)
  [ "$out" = "via $a" ] && ok || bad "echo listener with two ALPNs, $a: $out"
done
kill -TERM $tpid; wait_exit $tpid 10
"$bin" listen --no-relay --alpn one/0 --alpn two/0 --bind 127.0.0.1:0 < /dev/null > "$dir/p2.out" 2> "$dir/p2.err" &
pids+=($!); ppid2=$!
pticket=$(pipe_ticket "$dir/p2.err" "$dir/p2.out") || bad "no ticket: $(cat "$dir/p2.err")"
echo "via one" | timeout -k 5 30 "$bin" connect --no-relay "$pticket" --alpn one/0 > /dev/null 2> "$dir/p2c.err"
status=$?
wait_exit $ppid2 10
[ $status = 0 ] && [ "$(tail -n 1 "$dir/p2.out")" = "via one" ] && ok ||
  bad "pipe listener with two ALPNs, the first: $status '$(cat "$dir/p2.out")' $(cat "$dir/p2c.err" "$dir/p2.err")"
grep -q "connection from [0-9a-f]\{64\} (ALPN one/0)" "$dir/p2.err" && ok || bad "the pipe listener did not say which ALPN: $(cat "$dir/p2.err")"

# --- --bind binds exactly that; connect without --bind reaches either family ---
"$bin" listen --no-relay --alpn v6/0 --echo --bind '[::1]:0' > "$dir/v6.out" 2> "$dir/v6.err" &
v6pid=$!; pids+=($v6pid)
if v6ticket=$(wait_ticket "$dir/v6.out"); then
  addrs=$("$bin" ticket decode "$v6ticket" | sed 's/.*"addrs":\[\(.*\)\]}$/\1/')
  [[ "$addrs" =~ ^\"\[::1\]:[0-9]+\"$ ]] && ok || bad "listen --bind [::1]:0 advertises $addrs"
  out=$(echo six | timeout -k 5 30 "$bin" connect --no-relay "$v6ticket" --alpn v6/0 2>&1)
  [ "$out" = six ] && ok || bad "connect to an IPv6-only listener: $out"
  kill -TERM $v6pid; wait_exit $v6pid 10
else
  echo "note: no IPv6 loopback here ($(cat "$dir/v6.err")): --bind [::1] not tested"
fi

# --- echo listener, several streams on one connection ---
"$bin" listen --no-relay --alpn echo/0 --echo --bind 127.0.0.1:0 > "$dir/echo.out" 2> "$dir/echo.err" &
pids+=($!); epid=$!
eticket=$(wait_ticket "$dir/echo.out") || bad "echo listener printed no ticket"
printf 'ping\n' | timeout -k 5 30 "$bin" connect --no-relay "$eticket" --alpn echo/0 --streams 5 > "$dir/streams.out"
[ "$(grep -c '^ping$' "$dir/streams.out")" = 5 ] && ok || bad "--streams 5 gave: $(cat "$dir/streams.out")"

# --- closed standard descriptors: /dev/null takes their place, not the UDP socket ---
out=$(echo closed | timeout -k 5 30 "$bin" connect --no-relay "$eticket" --alpn echo/0 2>&1 >&-); status=$?
[ $status = 0 ] && [ -z "$out" ] && ok || bad "connect >&-: status $status: $out"
out=$(timeout -k 5 30 "$bin" connect --no-relay "$eticket" --alpn echo/0 <&- 2>&1); status=$?
[ $status = 0 ] && [ -z "$out" ] && ok || bad "connect <&-: status $status: $out"
out=$(echo closed | timeout -k 5 30 "$bin" connect --no-relay "$eticket" --alpn echo/0 2>&-); status=$?
[ $status = 0 ] && [ "$out" = closed ] && ok || bad "connect 2>&-: status $status: $out"
"$bin" listen --no-relay --alpn fds/0 --bind 127.0.0.1:0 < /dev/null >&- 2> "$dir/fds.err" &
pids+=($!); fpid=$!
fticket=$(pipe_ticket "$dir/fds.err") || bad "no ticket: $(cat "$dir/fds.err")"
echo "into nowhere" | timeout -k 5 30 "$bin" connect --no-relay "$fticket" --alpn fds/0 > /dev/null 2> "$dir/fdsc.err"; status=$?
wait_exit $fpid 10
[ $status = 0 ] && [ $st = 0 ] && ok || bad "listen >&-: connect $status, listen $st: $(cat "$dir/fdsc.err" "$dir/fds.err")"

# --- failures are clean and quick ---
out=$(echo x | timeout -k 5 30 "$bin" connect --no-relay "$eticket" --alpn wrong/0 2>&1); st=$?
[ $st = 1 ] && [[ "$out" == *"ALPN"* ]] && ok || bad "wrong ALPN: status $st: $out"
other=$("$bin" id "$("$bin" keygen)")
addr=$("$bin" ticket decode "$eticket" | sed 's/.*"addrs":\["\([^"]*\)".*/\1/')
wrong=$("$bin" ticket encode "$other" --addr "$addr")
out=$(echo x | timeout -k 5 30 "$bin" connect --no-relay "$wrong" --alpn echo/0 2>&1); st=$?
[ $st = 1 ] && [[ "$out" == *"wrong key"* ]] && ok || bad "wrong key: status $st: $out"
dead=$("$bin" ticket encode "$other" --addr 127.0.0.1:9)
out=$(echo x | timeout -k 5 30 "$bin" connect --no-relay "$dead" --alpn echo/0 --timeout 1 2>&1); st=$?
[ $st = 1 ] && [[ "$out" == *"timed out"* ]] && ok || bad "nobody there: status $st: $out"
# without --alpn, connect speaks dumbpipe's protocol, which this listener does not take
out=$(timeout -k 5 10 "$bin" connect --no-relay "$eticket" 2>&1 < /dev/null); st=$?
[ $st = 1 ] && [ "$out" = "iroh-c: the peer does not speak dumbpipe's protocol (ALPN DUMBPIPEV0; give its protocol with --alpn)" ] &&
  ok || bad "connect without --alpn to an echo/0 listener: status $st: $out"

# SIGTERM ends the echo listener cleanly, with status 143
kill -TERM $epid
wait_exit $epid 10
[ $st = 143 ] && ok || bad "echo listener exit status after SIGTERM: $st"
[ ! -s "$dir/echo.err" ] && ok || bad "the echo listener printed: $(cat "$dir/echo.err")"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
