#!/usr/bin/env bash
# iroh-c relay --metrics-listen: the counters as OpenMetrics text on a separate plain-HTTP
# port (GET / and /metrics; 404 elsewhere; never on the relay port), well-formed (HELP,
# TYPE, one sample per family, "# EOF" at the end), upstream's relayserver_* names, and
# counters that move: TCP accepts (and upstream's http_connections, _closed) and HTTP
# requests after /ping, websocket accepts after an upgrade; the rate-limit families named
# as iroh-metrics writes them (a name ending in _total is not suffixed again). Bad or taken metrics addresses and bad --rate-limit/--rate-burst values fail
# cleanly (the rate limit itself is tested on a virtual clock in unit/test_relay_ratelimit). Loopback only, ports chosen by the
# kernel (port 0) and read from the command's output.
command -v curl > /dev/null || { echo "SKIP: no curl"; exit 0; }
source "$(dirname "$0")/common.bash"

# start_relay ARGS...: sets rpid, port (relay) and mport (metrics)
start_relay() {
  # emptied here: the background redirection may truncate only after the first check
  : > "$dir/relay.out"; : > "$dir/relay.err"
  "$bin" relay --listen 127.0.0.1:0 "$@" > "$dir/relay.out" 2> "$dir/relay.err" &
  rpid=$!
  pids+=($rpid)
  for _ in $(seq 100); do
    [ "$(wc -l < "$dir/relay.out")" -ge "${want:-2}" ] && break
    kill -0 $rpid 2>/dev/null || break
    sleep 0.05
  done
  port=$(sed -n 's#^relay listening on http://127\.0\.0\.1:\([0-9]*\)$#\1#p' "$dir/relay.out")
  mport=$(sed -n 's#^metrics listening on http://127\.0\.0\.1:\([0-9]*\)/metrics$#\1#p' "$dir/relay.out")
  [ -n "$port" ] && [ -n "$mport" ]
}
metrics() { curl -s --max-time 10 "http://127.0.0.1:$mport${1:-/metrics}" | tr -d '\r'; }
value() { sed -n "s/^$1 \\([0-9]*\\)\$/\\1/p" <<< "$2"; }

start_relay --metrics-listen 127.0.0.1:0 --rate-limit 1000000 --rate-burst 200000 ||
  { echo "FAIL: the relay did not start: $(cat "$dir/relay.out" "$dir/relay.err")"; exit 1; }

r=$(curl -s -i --max-time 10 "http://127.0.0.1:$mport/metrics" | tr -d '\r')
[ "$(head -1 <<< "$r")" = "HTTP/1.1 200 OK" ] && ok || bad "GET /metrics: $(head -1 <<< "$r")"
grep -qi '^content-type: application/openmetrics-text; version=1.0.0; charset=utf-8$' <<< "$r" && ok ||
  bad "content type: $r"
m=$(metrics /metrics)
[ "$(tail -1 <<< "$m")" = "# EOF" ] && ok || bad "no # EOF at the end"
# every line: a HELP, a TYPE or a sample "name value"; every family has HELP and TYPE
if grep -vqE '^(# HELP [a-z_]+ .+|# TYPE [a-z_]+ (counter|gauge)|[a-z_]+ [0-9]+|# EOF)$' <<< "$m"; then
  bad "malformed lines: $(grep -vE '^(# HELP [a-z_]+ .+|# TYPE [a-z_]+ (counter|gauge)|[a-z_]+ [0-9]+|# EOF)$' <<< "$m" | head -3)"
else ok; fi
families=0 lacking=0
while read -r _ _ fam kind; do
  families=$((families + 1))
  if [ "$kind" = counter ] && [ "${fam%_total}" = "$fam" ]; then sample="${fam}_total"; else sample=$fam; fi
  grep -q "^$sample [0-9]*$" <<< "$m" || { bad "family $fam ($kind) without its sample $sample"; lacking=1; }
done < <(grep '^# TYPE ' <<< "$m")
[ $families -gt 10 ] && [ $lacking = 0 ] && ok || bad "metric families: $families, some lacking a sample: $lacking"
for name in relayserver_bytes_sent_total relayserver_bytes_recv_total \
    relayserver_send_packets_sent_total relayserver_send_packets_recv_total \
    relayserver_send_packets_dropped_total relayserver_got_ping_total relayserver_sent_pong_total \
    relayserver_accepts_total relayserver_disconnects_total relayserver_http_connections_total \
    relayserver_http_connections_closed_total relayserver_http_connections_errored_total \
    relayserver_clients_inactive_added_total relayserver_clients_inactive_removed_total \
    relayserver_bytes_rx_ratelimited_total relayserver_conns_rx_ratelimited_total \
    irohc_relay_conns irohc_relay_clients irohc_relay_tcp_accepts_total irohc_relay_websocket_accepts_total; do
  [ -n "$(value "$name" "$m")" ] && ok || bad "no $name"
done
# iroh-relay's exact family lines for the rate-limit counters, and no doubled suffix
for fam in relayserver_bytes_rx_ratelimited_total relayserver_conns_rx_ratelimited_total; do
  grep -qx "# TYPE $fam counter" <<< "$m" && ok || bad "no '# TYPE $fam counter'"
done
grep -q '_total_total' <<< "$m" && bad "a doubled _total: $(grep _total_total <<< "$m" | head -2)" || ok
# a name iroh 1.x does not have (websocket_accepts) is gone
grep -q '^relayserver_websocket_accepts' <<< "$m" && bad "relayserver_websocket_accepts is not iroh's" || ok
# / serves the same; other paths and methods do not
[ "$(metrics / | tail -1)" = "# EOF" ] && ok || bad "GET / on the metrics port"
[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$mport/relay")" = 404 ] && ok ||
  bad "/relay on the metrics port not 404"
[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST "http://127.0.0.1:$mport/metrics")" = 405 ] &&
  ok || bad "POST /metrics not 405"
# the relay port does not serve metrics
[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$port/metrics")" = 404 ] && ok ||
  bad "/metrics served on the relay port"

# counters move
before=$(value irohc_relay_tcp_accepts_total "$(metrics)")
reqs=$(value irohc_relay_http_requests_total "$(metrics)")
for _ in 1 2 3; do curl -s -o /dev/null --max-time 10 "http://127.0.0.1:$port/ping"; done
m=$(metrics)
after=$(value irohc_relay_tcp_accepts_total "$m")
[ "$(value relayserver_http_connections_total "$m")" = "$after" ] && ok ||
  bad "http_connections $(value relayserver_http_connections_total "$m") != tcp accepts $after"
closed=$(value relayserver_http_connections_closed_total "$m")
[ "$closed" -ge 3 ] && [ "$closed" -le "$after" ] && ok || bad "http_connections_closed $closed (accepts $after)"
[ "$after" -ge $((before + 3)) ] && ok || bad "tcp accepts $before -> $after after 3 requests"
[ "$(value irohc_relay_http_requests_total "$m")" -ge $((reqs + 3)) ] && ok || bad "http requests did not grow"
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET /relay HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nsec-websocket-protocol: iroh-relay-v2\r\n\r\n' >&3
head -c 12 <&3 > "$dir/upgrade"
m=$(metrics)
grep -q '^HTTP/1.1 101' "$dir/upgrade" && [ "$(value irohc_relay_websocket_accepts_total "$m")" = 1 ] && ok ||
  bad "websocket accepts after an upgrade: $(value irohc_relay_websocket_accepts_total "$m")"
[ "$(value irohc_relay_conns "$m")" -ge 1 ] && ok || bad "irohc_relay_conns gauge: $(value irohc_relay_conns "$m")"
exec 3<&-

# a slow scraper that never finishes its request does not block the relay
exec 4<>"/dev/tcp/127.0.0.1/$mport"
printf 'GET /metrics HTTP/1.1\r\n' >&4
[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$port/ping")" = 200 ] && ok ||
  bad "relay stuck behind a slow metrics client"
[ "$(metrics | tail -1)" = "# EOF" ] && ok || bad "metrics stuck behind a slow metrics client"
exec 4<&-

kill -TERM $rpid; wait $rpid; st=$?
[ $st = 143 ] && ok || bad "exit status $st after SIGTERM (want 143)"
if (exec 3<>"/dev/tcp/127.0.0.1/$mport") 2>/dev/null; then bad "metrics port still open after exit"; else ok; fi

# bad and taken metrics addresses
out=$("$bin" relay --listen 127.0.0.1:0 --metrics-listen nonsense 2>&1); st=$?
[ $st = 2 ] && [[ "$out" == *"invalid metrics address"* ]] && ok || bad "bad metrics address: $st $out"
start_relay --metrics-listen 127.0.0.1:0 || bad "second start"
out=$(timeout 5 "$bin" relay --listen 127.0.0.1:0 --metrics-listen "127.0.0.1:$mport" 2>&1); st=$?
[ $st = 1 ] && [[ "$out" == *"cannot bind"* ]] && ok || bad "metrics port in use: $st $out"
# rate limit options: positive byte counts, a burst only with a rate
for args in "--rate-limit 0" "--rate-limit x" "--rate-limit -5" "--rate-limit 4294967296" \
    "--rate-burst 100" "--rate-limit 1000 --rate-burst 0"; do
  out=$("$bin" relay --listen 127.0.0.1:0 $args 2>&1); st=$?
  [ $st = 2 ] && ok || bad "relay $args: status $st ($out)"
done
# without --metrics-listen there is no metrics line
kill -TERM $rpid; wait $rpid
want=1 start_relay
[ -n "$port" ] && [ -z "$mport" ] && ok || bad "metrics listener without --metrics-listen"
kill -TERM $rpid; wait $rpid

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
