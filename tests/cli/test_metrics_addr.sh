#!/usr/bin/env bash
# --metrics-addr IP:PORT on listen and connect: the endpoint's counters in the Prometheus
# text format at /metrics (iroh's socket_* names, "# EOF" at the end, 404 elsewhere),
# scraped with curl during a transfer whose stdin is held open: the byte counters rise
# between two scrapes on both sides, one connection opened. A malformed address is a
# usage error (exit 2, one line on stderr); a taken port fails the command (exit 1).
# Loopback only; ports chosen by the kernel (port 0) and read from "iroh-c: metrics at".
command -v curl > /dev/null || { echo "SKIP: no curl"; exit 0; }
source "$(dirname "$0")/common.bash"

# bad addresses: exit 2, exactly one line
for a in nope 127.0.0.1 "127.0.0.1:99999" "[::1]"; do
  "$bin" listen --alpn m/0 --no-relay --metrics-addr "$a" > /dev/null 2> "$dir/e"; st=$?
  [ $st = 2 ] && [ "$(wc -l < "$dir/e")" = 1 ] && grep -q -- "--metrics-addr" "$dir/e" && ok ||
    bad "listen --metrics-addr '$a': exit $st, $(cat "$dir/e")"
done
"$bin" listen --alpn m/0 --no-relay --metrics-addr > /dev/null 2> "$dir/e"; st=$?
[ $st = 2 ] && [ "$(wc -l < "$dir/e")" = 1 ] && ok || bad "--metrics-addr without a value: exit $st"
"$bin" connect endpointaaaa --alpn m/0 --metrics-addr 1.2.3.4 > /dev/null 2> "$dir/e"; st=$?
[ $st = 2 ] && [ "$(wc -l < "$dir/e")" = 1 ] && ok || bad "connect --metrics-addr 1.2.3.4: exit $st"

# metrics_port FILE: the port a command printed ("iroh-c: metrics at http://IP:PORT/metrics")
metrics_port() {
  for _ in $(seq 200); do
    p=$(sed -n 's#^iroh-c: metrics at http://127\.0\.0\.1:\([0-9]*\)/metrics$#\1#p' "$1")
    [ -n "$p" ] && { echo "$p"; return 0; }
    sleep 0.05
  done
  return 1
}
scrape() { curl -s --max-time 10 "http://127.0.0.1:$1${2:-/metrics}" | tr -d '\r'; }
value() { sed -n "s/^$1 \\([0-9]*\\)\$/\\1/p" <<< "$2"; }
# wait_size FILE BYTES: until FILE holds at least BYTES (20 s at most)
wait_size() {
  for _ in $(seq 400); do
    [ "$(stat -c %s "$1" 2> /dev/null || echo 0)" -ge "$2" ] && return 0
    sleep 0.05
  done
  return 1
}

"$bin" listen --alpn m/0 --no-relay --bind 127.0.0.1:0 --metrics-addr 127.0.0.1:0 \
  < /dev/null > "$dir/listen.out" 2> "$dir/listen.err" &
lpid=$!
pids+=($lpid)
lport=$(metrics_port "$dir/listen.err") || { echo "FAIL: no metrics line: $(cat "$dir/listen.err")"; exit 1; }
for _ in $(seq 200); do grep -q '^iroh-c: ticket: ' "$dir/listen.err" && break; sleep 0.05; done
ticket=$(sed -n 's/^iroh-c: ticket: \(endpoint[a-z0-9]*\)$/\1/p' "$dir/listen.err")
[ -n "$ticket" ] || { echo "FAIL: no ticket: $(cat "$dir/listen.err")"; exit 1; }

# before any connection: well-formed, nothing received
r=$(curl -s -i --max-time 10 "http://127.0.0.1:$lport/metrics" | tr -d '\r')
[ "$(head -1 <<< "$r")" = "HTTP/1.1 200 OK" ] && ok || bad "GET /metrics: $(head -1 <<< "$r")"
grep -qi '^content-type: application/openmetrics-text; version=1.0.0; charset=utf-8$' <<< "$r" && ok ||
  bad "content type: $r"
m=$(scrape "$lport")
[ "$(tail -1 <<< "$m")" = "# EOF" ] && ok || bad "no # EOF at the end"
grep -q '^# TYPE socket_recv_data_ipv4 counter$' <<< "$m" && ok || bad "no socket_recv_data_ipv4 family: $m"
[ "$(value socket_num_conns_opened_total "$m")" = 0 ] && ok || bad "a connection before any: $m"
[ "$(scrape "$lport" / | tail -1)" = "# EOF" ] && ok || bad "GET / answered no metrics"
[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$lport/nope")" = 404 ] && ok ||
  bad "GET /nope is not 404"

# hostile clients: a silent connection and an endless head cost the server a moment,
# then it answers again
exec 4<> "/dev/tcp/127.0.0.1/$lport"
head -c 20000 /dev/zero | tr '\0' 'a' | curl -s --max-time 10 -o /dev/null --data-binary @- \
  -H "X-Junk: $(head -c 5000 /dev/zero | tr '\0' 'b')" "http://127.0.0.1:$lport/metrics"
[ "$(scrape "$lport" | tail -1)" = "# EOF" ] && ok || bad "no answer after a silent and a junk client"
exec 4>&-

# many silent clients at once (as many as the old server's listen backlog): each costs a
# slot for 2 s, none delays a scrape (served one at a time, they delayed it ~32 s)
silent=()
for _ in $(seq 16); do
  exec {sfd}<> "/dev/tcp/127.0.0.1/$lport" && silent+=("$sfd")
done
t0=$(date +%s%N)
m=$(curl -s --max-time 8 "http://127.0.0.1:$lport/metrics" | tr -d '\r')
t1=$(date +%s%N)
[ "$(tail -1 <<< "$m")" = "# EOF" ] && ok ||
  bad "no scrape answer with 16 silent clients within 8 s ($(( (t1 - t0) / 1000000 )) ms)"
for sfd in "${silent[@]}"; do exec {sfd}>&-; done

# HEAD: GET's head (its Content-Length) without a body; retried if a counter changed
# between the two requests
hd_ok=0
for _ in 1 2 3; do
  h=$(curl -s -I --max-time 10 "http://127.0.0.1:$lport/metrics" | tr -d '\r')
  g=$(curl -s -D - -o "$dir/get.body" --max-time 10 "http://127.0.0.1:$lport/metrics" | tr -d '\r')
  hl=$(sed -n 's/^[Cc]ontent-[Ll]ength: \([0-9]*\)$/\1/p' <<< "$h")
  gl=$(sed -n 's/^[Cc]ontent-[Ll]ength: \([0-9]*\)$/\1/p' <<< "$g")
  [ "$(head -1 <<< "$h")" = "HTTP/1.1 200 OK" ] && [ -n "$hl" ] && [ "$hl" != 0 ] &&
    [ "$hl" = "$gl" ] && [ "$gl" = "$(stat -c %s "$dir/get.body")" ] && { hd_ok=1; break; }
done
[ $hd_ok = 1 ] && ok || bad "HEAD /metrics: Content-Length '$hl', GET's '$gl'"

# a second command on the same metrics port: exit 1, one line
"$bin" listen --alpn m/0 --no-relay --bind 127.0.0.1:0 --metrics-addr "127.0.0.1:$lport" \
  < /dev/null > /dev/null 2> "$dir/e2" &
p2=$!
pids+=($p2)
wait_exit $p2 10
[ $st = 1 ] && [ "$(wc -l < "$dir/e2")" = 1 ] && grep -q "127.0.0.1:$lport" "$dir/e2" && ok ||
  bad "taken metrics port: exit $st, $(cat "$dir/e2")"

# the transfer: stdin held open between two pieces, a scrape after each
mkfifo "$dir/up"
"$bin" connect "$ticket" --alpn m/0 --no-relay --metrics-addr 127.0.0.1:0 \
  < "$dir/up" > "$dir/connect.out" 2> "$dir/connect.err" &
cpid=$!
pids+=($cpid)
exec 3> "$dir/up"
cport=$(metrics_port "$dir/connect.err") || bad "connect printed no metrics line: $(cat "$dir/connect.err")"
head -c 1048576 /dev/urandom >&3
wait_size "$dir/listen.out" 1048576 || bad "the first MiB did not arrive"
m1=$(scrape "$lport")
c1=$(scrape "${cport:-1}")
r1=$(value socket_recv_data_ipv4_total "$m1")
s1=$(value socket_send_ipv4_total "$c1")
[ "${r1:-0}" -ge 1048576 ] && ok || bad "listener received ${r1:-none} bytes after 1 MiB"
[ "${s1:-0}" -ge 1048576 ] && ok || bad "connect sent ${s1:-none} bytes after 1 MiB"
[ "$(value socket_num_conns_opened_total "$m1")" = 1 ] && ok || bad "listener: not one connection: $m1"
[ "$(value irohc_conns "$m1")" = 1 ] && ok || bad "listener: not one open connection"
[ "$(value socket_paths_direct_total "$c1")" = 1 ] && ok || bad "connect: not one direct path: $c1"
head -c 2097152 /dev/urandom >&3
wait_size "$dir/listen.out" 3145728 || bad "the next 2 MiB did not arrive"
m2=$(scrape "$lport")
c2=$(scrape "${cport:-1}")
r2=$(value socket_recv_data_ipv4_total "$m2")
s2=$(value socket_send_ipv4_total "$c2")
[ "${r2:-0}" -ge $(( ${r1:-0} + 2097152 )) ] && ok || bad "listener's bytes did not rise: $r1 -> $r2"
[ "${s2:-0}" -ge $(( ${s1:-0} + 2097152 )) ] && ok || bad "connect's bytes did not rise: $s1 -> $s2"
[ "$(value socket_recv_datagrams_total "$m2")" -gt "$(value socket_recv_datagrams_total "$m1")" ] && ok ||
  bad "datagrams received did not rise"
exec 3>&-
wait_exit $cpid 20
[ $st = 0 ] && ok || bad "connect exited $st: $(cat "$dir/connect.err")"
wait_exit $lpid 20
[ $st = 0 ] && ok || bad "listen exited $st: $(cat "$dir/listen.err")"
[ "$(stat -c %s "$dir/listen.out")" = 3145728 ] && ok || bad "listen wrote $(stat -c %s "$dir/listen.out") bytes"
# the servers are gone with their commands
curl -s --max-time 2 "http://127.0.0.1:$lport/metrics" > /dev/null && bad "metrics still answered" || ok

# the tunnels take it too: listen-tcp serves its counters until Ctrl-C, then stops them
"$bin" listen-tcp --host 127.0.0.1:9 --no-relay --bind 127.0.0.1:0 --metrics-addr 127.0.0.1:0 \
  < /dev/null > /dev/null 2> "$dir/tun.err" &
tpid=$!
pids+=($tpid)
tport=$(metrics_port "$dir/tun.err") || bad "listen-tcp printed no metrics line: $(cat "$dir/tun.err")"
[ "$(scrape "${tport:-1}" | tail -1)" = "# EOF" ] && ok || bad "listen-tcp's metrics not served"
"$bin" connect-tcp --addr 127.0.0.1:0 --metrics-addr nope endpointaaaa > /dev/null 2> "$dir/e"; st=$?
[ $st = 2 ] && [ "$(wc -l < "$dir/e")" = 1 ] && ok || bad "connect-tcp --metrics-addr nope: exit $st"
kill -INT $tpid
wait_exit $tpid 20
[ $st = 130 ] && ok || bad "listen-tcp exited $st after SIGINT: $(cat "$dir/tun.err")"
curl -s --max-time 2 "http://127.0.0.1:${tport:-1}/metrics" > /dev/null && bad "tunnel metrics still answered" || ok

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
