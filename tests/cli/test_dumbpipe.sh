#!/usr/bin/env bash
# dumbpipe's protocol as the default of listen and connect (ALPN DUMBPIPEV0, the opener
# writes "hello", the listener checks it): data both ways; a stream that does not start
# with the hello, ends inside it or stalls in it for 10 s (a refusal, exit 1 on the
# listener, the reason at the peer); --alpn keeps the raw pipe; --recv-only on both
# sides; listen --stats; the echo service without --alpn; and on a terminal (script(1)
# gives one) the progress line, erased at the end, cut to the width, none with --quiet,
# off a terminal or with stdout on it, and the note of a newly made secret key, as
# dumbpipe shows it. (Against the real iroh peer: interop/test_dumbpipe.js.)
source "$(dirname "$0")/common.bash"

pipe_ticket() { # file -> the ticket a pipe listener printed on stderr
  local t
  for _ in $(seq 200); do
    t=$(sed -n 's/^iroh-c: ticket: \(endpoint[a-z0-9]*\)$/\1/p' "$1" | head -1)
    [ -n "$t" ] && echo "$t" && return 0
    sleep 0.05
  done
  return 1
}
listen_bg() { # NAME [args...]: a pipe listener, stdin from $dir/NAME.in (made empty if absent)
  local name=$1; shift
  [ -e "$dir/$name.in" ] || : > "$dir/$name.in"
  "$bin" listen --no-relay --bind 127.0.0.1:0 "$@" < "$dir/$name.in" > "$dir/$name.out" 2> "$dir/$name.err" &
  lpid=$!; pids+=($lpid)
  ticket=$(pipe_ticket "$dir/$name.err") || bad "$name: no ticket: $(cat "$dir/$name.err")"
}
# stdin that stays open and silent
mkfifo "$dir/quiet"
exec 7<> "$dir/quiet"

# --- the default: dumbpipe's protocol, data both ways, nothing else on stderr ---
head -c 300000 /dev/urandom > "$dir/up"
head -c 200000 /dev/urandom > "$dir/d.in"
listen_bg d --stats
timeout -k 5 60 "$bin" connect --no-relay "$ticket" < "$dir/up" > "$dir/c.out" 2> "$dir/c.err"; status=$?
wait_exit $lpid 10
[ $status = 0 ] && [ ! -s "$dir/c.err" ] && ok || bad "connect (dumbpipe): status $status: $(cat "$dir/c.err")"
[ $st = 0 ] && ok || bad "listen (dumbpipe): status $st: $(cat "$dir/d.err")"
cmp -s "$dir/up" "$dir/d.out" && ok || bad "listen's stdout is not connect's stdin ($(wc -c < "$dir/d.out") bytes): the hello must not reach stdout"
cmp -s "$dir/d.in" "$dir/c.out" && ok || bad "connect's stdout is not listen's stdin ($(wc -c < "$dir/c.out") bytes)"
# listen --stats: the final stats line of connect --stats; no progress line off a terminal
grep -q '^iroh-c: connection stats: path direct 127\.0\.0\.1:[0-9]*, rtt [0-9.]* ms, path mtu [0-9]*, packets sent [0-9]*, received [0-9]*, lost [0-9]*$' "$dir/d.err" &&
  ok || bad "listen --stats printed no stats line: $(cat "$dir/d.err")"
! grep -q $'\r\|iroh-c: sent \|using secret key' "$dir/d.err" "$dir/c.err" && ok ||
  bad "a progress line or key note although stderr is a file: $(cat -v "$dir/d.err" "$dir/c.err")"

# --- a stream that does not start with "hello": refused, listen exits 1 ---
# (connect --alpn DUMBPIPEV0 is the raw pipe on dumbpipe's ALPN: it sends no hello)
listen_bg bad
printf 'HELO!then data' | timeout -k 5 30 "$bin" connect --no-relay --alpn DUMBPIPEV0 "$ticket" > "$dir/bc.out" 2> "$dir/bc.err"; status=$?
wait_exit $lpid 10
[ $st = 1 ] && grep -q "^iroh-c: [0-9a-f]\{64\} does not speak dumbpipe's protocol (its stream did not start with \"hello\"): connection closed$" "$dir/bad.err" &&
  ok || bad "listen after a wrong hello: status $st: $(cat "$dir/bad.err")"
[ ! -s "$dir/bad.out" ] && ok || bad "listen wrote a bad peer's bytes: $(cat "$dir/bad.out")"
[ $status = 1 ] && [ "$(cat "$dir/bc.err")" = 'iroh-c: the peer closed the connection: invalid handshake: the stream did not start with "hello" (code 2)' ] &&
  ok || bad "the peer with a wrong hello: status $status: $(cat "$dir/bc.err")"
# a stream that ends inside the hello
listen_bg short
printf 'hel' | timeout -k 5 30 "$bin" connect --no-relay --alpn DUMBPIPEV0 "$ticket" > /dev/null 2> "$dir/sc.err"; status=$?
wait_exit $lpid 10
[ $st = 1 ] && grep -q "^iroh-c: [0-9a-f]\{64\} ended its stream before its \"hello\" was complete: connection closed$" "$dir/short.err" &&
  ok || bad "listen, a stream ending inside the hello: status $st: $(cat "$dir/short.err")"
# the peer is told it was an invalid handshake (code 2), as for wrong bytes
[ $status = 1 ] && [ "$(cat "$dir/sc.err")" = 'iroh-c: the peer closed the connection: invalid handshake: the stream ended inside the "hello" (code 2)' ] &&
  ok || bad "the peer with a short hello: status $status: $(cat "$dir/sc.err")"
[ ! -s "$dir/short.out" ] && ok || bad "listen wrote part of a hello: $(cat "$dir/short.out")"

# a stream that stalls inside the hello: closed after 10 s (the listener's bound)
listen_bg stall
printf 'hel' >&7
t0=$(ms)
timeout -k 5 60 "$bin" connect --no-relay --alpn DUMBPIPEV0 "$ticket" <&7 > /dev/null 2> "$dir/stc.err"; status=$?
took=$(( $(ms) - t0 ))
wait_exit $lpid 10
[ $st = 1 ] && grep -q "^iroh-c: [0-9a-f]\{64\} sent no \"hello\" within 10 s: connection closed$" "$dir/stall.err" &&
  ok || bad "listen, a stalled hello: status $st: $(cat "$dir/stall.err")"
[ $status = 1 ] && [ "$(cat "$dir/stc.err")" = 'iroh-c: the peer closed the connection: invalid handshake: no "hello" within 10 s (code 2)' ] &&
  ok || bad "the peer with a stalled hello: status $status: $(cat "$dir/stc.err")"
[ $took -ge 9000 ] && [ $took -le 30000 ] && ok || bad "a stalled hello was closed after $took ms (want 10 s)"

# --- --alpn: the raw pipe on both sides, and it does not meet the default ---
listen_bg raw --alpn raw/0
printf 'no hello here' | timeout -k 5 30 "$bin" connect --no-relay --alpn raw/0 "$ticket" > /dev/null 2> "$dir/rc.err"; status=$?
wait_exit $lpid 10
[ $status = 0 ] && [ $st = 0 ] && [ "$(cat "$dir/raw.out")" = 'no hello here' ] && ok ||
  bad "--alpn raw/0 both sides: $status/$st '$(cat "$dir/raw.out")' $(cat "$dir/rc.err" "$dir/raw.err")"
listen_bg raw2 --alpn raw/0
out=$(timeout -k 5 30 "$bin" connect --no-relay "$ticket" 2>&1 < /dev/null); status=$?
[ $status = 1 ] && [[ "$out" == *"does not speak dumbpipe's protocol (ALPN DUMBPIPEV0"* ]] && ok || bad "connect (dumbpipe) to listen --alpn raw/0: $status $out"
kill -TERM $lpid; wait_exit $lpid 10

# --- --recv-only: connect sends nothing and never waits for stdin; listen likewise ---
printf 'from the listener' > "$dir/r1.in"
listen_bg r1
timeout -k 5 30 "$bin" connect --no-relay --recv-only "$ticket" <&7 > "$dir/r1c.out" 2> "$dir/r1c.err"; status=$?
wait_exit $lpid 10
[ $status = 0 ] && [ "$(cat "$dir/r1c.out")" = 'from the listener' ] && ok || bad "connect --recv-only: status $status '$(cat "$dir/r1c.out")' $(cat "$dir/r1c.err")"
[ $st = 0 ] && [ ! -s "$dir/r1.out" ] && ok || bad "listen, a --recv-only peer: status $st, $(wc -c < "$dir/r1.out") bytes: $(cat "$dir/r1.err")"
"$bin" listen --no-relay --bind 127.0.0.1:0 --recv-only <&7 > "$dir/r2.out" 2> "$dir/r2.err" &
lpid=$!; pids+=($lpid)
ticket=$(pipe_ticket "$dir/r2.err") || bad "no ticket: $(cat "$dir/r2.err")"
printf 'to the listener' | timeout -k 5 30 "$bin" connect --no-relay "$ticket" > "$dir/r2c.out" 2> "$dir/r2c.err"; status=$?
wait_exit $lpid 10
[ $status = 0 ] && [ ! -s "$dir/r2c.out" ] && ok || bad "connect to listen --recv-only: status $status: $(cat "$dir/r2c.err")"
[ $st = 0 ] && [ "$(cat "$dir/r2.out")" = 'to the listener' ] && ok || bad "listen --recv-only: status $st '$(cat "$dir/r2.out")' $(cat "$dir/r2.err")"

# --- the echo service without --alpn: each stream's hello checked, not echoed ---
"$bin" listen --no-relay --bind 127.0.0.1:0 --echo > "$dir/echo.out" 2> "$dir/echo.err" &
epid=$!; pids+=($epid)
for _ in $(seq 100); do [ -s "$dir/echo.out" ] && break; sleep 0.05; done
eticket=$(head -1 "$dir/echo.out")
printf 'ping\n' | timeout -k 5 30 "$bin" connect --no-relay --streams 3 "$eticket" > "$dir/streams.out" 2> "$dir/streams.err"
[ "$(grep -c '^ping$' "$dir/streams.out")" = 3 ] && [ "$(wc -l < "$dir/streams.out")" = 3 ] && ok || bad "echo (dumbpipe), --streams 3: $(cat "$dir/streams.out" "$dir/streams.err")"
out=$(printf 'nohellox' | timeout -k 5 30 "$bin" connect --no-relay --alpn DUMBPIPEV0 "$eticket" 2>&1 > /dev/null); status=$?
[ $status = 1 ] && kill -0 $epid 2> /dev/null && ok || bad "echo, a stream with no hello: status $status (want 1, the service going on): $out"
out=$(printf 'again\n' | timeout -k 5 30 "$bin" connect --no-relay "$eticket" 2>&1); status=$?
[ $status = 0 ] && [ "$out" = again ] && ok || bad "echo after a bad stream: $status $out"
kill -TERM $epid; wait_exit $epid 10

# --- on a terminal: the progress line, a few updates a second, erased at the end ---
if ! command -v script > /dev/null; then
  echo "note: no script(1) (util-linux bsdutils): the progress line on a terminal is not tested"
else
  # (script -e: its status is the command's; the typescript holds what the terminal got)
  on_tty() { # TYPESCRIPT COMMAND [COLUMNS]: runs COMMAND with a terminal as its stderr,
    # COLUMNS wide (default 200, so that the lines below are never cut)
    script -qefc "stty cols ${3:-200}; $2" "$1" < /dev/null > /dev/null
  }
  listen_bg p1
  # 8 pieces 0.25 s apart: the transfer takes about 2 s
  t0=$(ms)
  on_tty "$dir/p1.ts" "(for i in 1 2 3 4 5 6 7 8; do head -c 50000 /dev/zero; sleep 0.25; done) | timeout -k 5 60 '$bin' connect --no-relay '$ticket' > '$dir/p1c.out'"
  status=$? took=$(( $(ms) - t0 ))
  wait_exit $lpid 10
  [ $status = 0 ] && [ $st = 0 ] && [ "$(wc -c < "$dir/p1.out")" = 400000 ] && ok || bad "the transfer on a terminal: $status/$st, $(wc -c < "$dir/p1.out") bytes: $(cat -v "$dir/p1.ts")"
  draws=$(grep -o $'\riroh-c: sent [0-9.]* [KMG]*i*B ([0-9.]* [KMG]*i*B/s), received [0-9.]* [KMG]*i*B ([0-9.]* [KMG]*i*B/s), direct 127\.0\.0\.1:[0-9]*\e\[K' "$dir/p1.ts" | wc -l)
  # a few a second: at least one a second over the transfer (generous: 4 a second are drawn)
  [ "$draws" -ge $(( took / 1000 )) ] && [ "$draws" -ge 2 ] && ok || bad "$draws progress lines in $took ms: $(cat -v "$dir/p1.ts")"
  grep -q 'sent 391 KiB' "$dir/p1.ts" && ok || bad "the progress line never showed the 400000 bytes sent: $(cat -v "$dir/p1.ts")"
  # erased at the end: the last progress line is followed by the erase, and nothing after
  # it but the terminal's end of script
  tail_after=$(sed -n '/iroh-c: sent/,$p' "$dir/p1.ts" | tr -d '\n' | sed 's/.*iroh-c: sent[^\r]*//')
  [[ "$tail_after" == $'\r\e[K'* ]] && ok || bad "the progress line was not erased at the end: $(printf '%s' "$tail_after" | cat -v)"
  # the secret key made (no IROH_SECRET) is shown on a terminal, as dumbpipe does, and is
  # the key in use: the listener saw its EndpointId
  key=$(sed -n 's/^iroh-c: using secret key \([0-9a-f]\{64\}\) .*/\1/p' "$dir/p1.ts" | tr -d '\r')
  printf '%s\n' "$key" > "$dir/shown.key"; chmod 600 "$dir/shown.key"
  [ -n "$key" ] && [ "$("$bin" id --secret-file "$dir/shown.key")" = "$(sed -n 's/^iroh-c: connection from \([0-9a-f]*\)$/\1/p' "$dir/p1.err")" ] &&
    ok || bad "the key shown is not the one in use: '$key': $(cat "$dir/p1.err")"
  # listen on a terminal: the same line, with what it received
  head -c 100000 /dev/zero > "$dir/lt.in"
  (sleep 0.5; for _ in $(seq 100); do grep -q 'ticket: ' "$dir/lt.ts" 2> /dev/null && break; sleep 0.05; done
   t=$(sed -n 's/.*iroh-c: ticket: \(endpoint[a-z0-9]*\).*/\1/p' "$dir/lt.ts" | tr -d '\r' | head -1)
   printf 'up' | timeout -k 5 30 "$bin" connect --no-relay "$t" > /dev/null 2>&1) &
  cpid=$!; pids+=($cpid)
  on_tty "$dir/lt.ts" "timeout -k 5 60 '$bin' listen --no-relay --bind 127.0.0.1:0 < '$dir/lt.in' > '$dir/lt.out'"; status=$?
  wait_exit $cpid 10
  [ $status = 0 ] && [ "$(cat "$dir/lt.out")" = up ] && grep -q $'\riroh-c: sent [0-9.]* [KMG]*i*B (.*), received .*, direct 127\.0\.0\.1:' "$dir/lt.ts" &&
    ok || bad "listen on a terminal: status $status: $(cat -v "$dir/lt.ts")"
  # --quiet: neither the progress line nor the key note
  listen_bg q1
  on_tty "$dir/q1.ts" "printf quiet | timeout -k 5 30 '$bin' connect --no-relay --quiet '$ticket' > /dev/null"; status=$?
  wait_exit $lpid 10
  [ $status = 0 ] && ! grep -q 'iroh-c: sent\|using secret key' "$dir/q1.ts" && ok || bad "connect --quiet on a terminal: status $status: $(cat -v "$dir/q1.ts")"
  # a narrow terminal: the line is cut to its width - 1, so that it never wraps (a
  # wrapped line could not be redrawn in place)
  listen_bg n1
  on_tty "$dir/n1.ts" "printf narrow | timeout -k 5 30 '$bin' connect --no-relay '$ticket' > /dev/null" 40; status=$?
  wait_exit $lpid 10
  lines=$(grep -o $'\riroh-c: sent[^\r\e]*' "$dir/n1.ts" | tr -d '\r')
  [ $status = 0 ] && [ -n "$lines" ] && [ "$(printf '%s\n' "$lines" | awk '{ if (length($0) > m) m = length($0) } END { print m }')" = 39 ] &&
    ok || bad "the progress line on a 40-column terminal: $(cat -v "$dir/n1.ts")"
  # stdout on the terminal too: no progress line, it would mix with the data
  listen_bg o1
  on_tty "$dir/o1.ts" "printf out | timeout -k 5 30 '$bin' connect --no-relay '$ticket'"; status=$?
  wait_exit $lpid 10
  [ $status = 0 ] && ! grep -q 'iroh-c: sent' "$dir/o1.ts" && ok || bad "connect with stdout on the terminal drew a progress line: $status: $(cat -v "$dir/o1.ts")"
  # IROH_SECRET set: no note (stdin open for 1 s, so the line is drawn: a 1-byte transfer may end before the first redraw)
  listen_bg q2
  on_tty "$dir/q2.ts" "(printf x; sleep 1) | IROH_SECRET=$(cat "$dir/shown.key") timeout -k 5 30 '$bin' connect --no-relay '$ticket' > /dev/null"; status=$?
  wait_exit $lpid 10
  [ $status = 0 ] && ! grep -q 'using secret key' "$dir/q2.ts" && grep -q 'iroh-c: sent' "$dir/q2.ts" && ok || bad "connect with IROH_SECRET on a terminal: status $status: $(cat -v "$dir/q2.ts")"
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
