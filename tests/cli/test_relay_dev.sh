#!/usr/bin/env bash
# iroh-c relay as iroh-relay is run: --dev (plain HTTP on [::]:3340, metrics on [::]:9090,
# checked in a network namespace of its own so the fixed ports are ours; with a [tls]
# config it stays plain HTTP and serves QUIC address discovery with the certificate),
# --config-path / -c / --config-path=FILE, and the captive-portal check (/generate_204
# with X-Iroh-Challenge -> X-Iroh-Response) on a plain-HTTP port next to HTTPS
# (--http-listen, or the file's http_bind_addr), which answers nothing else. Errors:
# --http-listen without TLS and unknown keys exit 2, a taken captive-portal port exits 1.
command -v curl > /dev/null || { echo "SKIP: no curl"; exit 0; }
command -v openssl > /dev/null || { echo "SKIP: no openssl"; exit 0; }
source "$(dirname "$0")/common.bash"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -keyout "$dir/key.pem" -out "$dir/cert.pem" -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2> /dev/null || { echo "FAIL: openssl"; exit 1; }

# start_relay LINES ARGS...: waits for LINES lines on stdout; sets rpid
start_relay() {
  local lines=$1; shift
  : > "$dir/relay.out"; : > "$dir/relay.err"
  "$bin" relay "$@" > "$dir/relay.out" 2> "$dir/relay.err" &
  rpid=$!
  pids+=($rpid)
  for _ in $(seq 100); do
    [ "$(wc -l < "$dir/relay.out")" -ge "$lines" ] && break
    kill -0 $rpid 2> /dev/null || break
    sleep 0.05
  done
  [ "$(wc -l < "$dir/relay.out")" -ge "$lines" ]
}
stop_relay() { kill -TERM $rpid 2> /dev/null; wait_exit $rpid; }
# port_of PATTERN: the port of the stdout line starting with PATTERN
port_of() { sed -n "s#^$1.*:\\([0-9]*\\)\\(/.*\\)\\{0,1\\}\$#\\1#p" "$dir/relay.out" | head -1; }
# head_of URL [HEADER]: the response head (status line and headers), CR stripped
head_of() { curl -s -k -o /dev/null -D - --max-time 10 ${2:+-H "$2"} "$1" | tr -d '\r'; }
status_of() { head -1 | cut -d' ' -f2; }

# 1. --dev alone: iroh-relay's ports, in a namespace of our own (loopback only)
if unshare -n true 2> /dev/null; then
  out=$(timeout 60 unshare -n bash -c '
    ip link set lo up
    "$0" relay --dev > "$1/dev.out" 2> "$1/dev.err" &
    r=$!
    trap "kill -9 $r 2> /dev/null" EXIT
    for _ in $(seq 100); do [ "$(wc -l < "$1/dev.out")" -ge 2 ] && break; sleep 0.05; done
    cat "$1/dev.out"
    echo "ping $(curl -s -o /dev/null -w "%{http_code}" --max-time 10 http://127.0.0.1:3340/ping)"
    echo "ping6 $(curl -s -o /dev/null -w "%{http_code}" --max-time 10 "http://[::1]:3340/ping")"
    curl -s -D - -o /dev/null --max-time 10 -H "X-Iroh-Challenge: dev-1" http://127.0.0.1:3340/generate_204 | tr -d "\r"
    curl -s --max-time 10 http://127.0.0.1:9090/metrics | grep -c "^relayserver_"
    kill -TERM $r; wait $r; echo "exit $?"' "$bin" "$dir")
  grep -Eq '^relay listening on http://(\[::\]|0\.0\.0\.0):3340$' <<< "$out" && ok || bad "--dev: not HTTP on port 3340: $out"
  grep -Eq '^metrics listening on http://(\[::\]|0\.0\.0\.0):9090/metrics$' <<< "$out" && ok || bad "--dev: no metrics on 9090: $out"
  grep -q '^ping 200$' <<< "$out" && ok || bad "--dev: /ping over IPv4: $out"
  if grep -q '^relay listening on http://\[::\]' <<< "$out"; then
    grep -q '^ping6 200$' <<< "$out" && ok || bad "--dev: /ping over IPv6: $out"
  fi
  grep -qi '^x-iroh-response: response dev-1$' <<< "$out" && ok || bad "--dev: /generate_204: $out"
  n=$(sed -n 's/^\([0-9][0-9]*\)$/\1/p' <<< "$out" | head -1)
  [ "${n:-0}" -ge 10 ] && ok || bad "--dev: metrics scrape: $out"
  grep -q '^exit 143$' <<< "$out" && ok || bad "--dev: exit: $out"
  grep -q 'QUIC address discovery' <<< "$out" && bad "--dev without a certificate serves QUIC address discovery: $out" || ok
else
  echo "note: no network namespace (unshare -n): --dev's fixed ports not checked"
fi

# 2. --dev with a [tls] config (-c FILE): plain HTTP on the file's http_bind_addr, the
#    certificate serves QUIC address discovery only, no captive-portal port
qport=$((20000 + RANDOM % 30000))
cat > "$dir/dev.toml" <<EOF
http_bind_addr = "127.0.0.1:0"
enable_metrics = false
enable_quic_addr_discovery = true
[tls]
cert_mode = "Manual"
manual_cert_path = "$dir/cert.pem"
manual_key_path = "$dir/key.pem"
quic_bind_addr = "127.0.0.1:$qport"
EOF
if start_relay 2 --dev -c "$dir/dev.toml"; then
  grep -q '^relay listening on http://127\.0\.0\.1:[0-9]*$' "$dir/relay.out" && ok || bad "--dev -c: not plain HTTP: $(cat "$dir/relay.out")"
  grep -q "^QUIC address discovery on udp 127.0.0.1:$qport\$" "$dir/relay.out" && ok || bad "--dev -c: no QUIC address discovery: $(cat "$dir/relay.out" "$dir/relay.err")"
  grep -q 'captive portal' "$dir/relay.out" && bad "--dev -c: a captive-portal port: $(cat "$dir/relay.out")" || ok
  port=$(port_of "relay listening")
  [ "$(head_of "http://127.0.0.1:$port/generate_204" | status_of)" = 204 ] && ok || bad "--dev -c: /generate_204"
  stop_relay
else
  bad "--dev -c did not start: $(cat "$dir/relay.out" "$dir/relay.err")"
fi

# 3. HTTPS with --http-listen: the captive-portal check there, nothing else
if start_relay 2 --listen 127.0.0.1:0 --tls-cert "$dir/cert.pem" --tls-key "$dir/key.pem" --no-qad \
    --http-listen 127.0.0.1:0; then
  port=$(port_of "relay listening on https")
  cport=$(port_of "captive portal check on http")
  [ -n "$port" ] && [ -n "$cport" ] && [ "$port" != "$cport" ] && ok || bad "https + captive lines: $(cat "$dir/relay.out")"
  h=$(head_of "http://127.0.0.1:$cport/generate_204" "X-Iroh-Challenge: ts_127.0.0.1-x")
  [ "$(status_of <<< "$h")" = 204 ] && ok || bad "captive /generate_204: $h"
  grep -qi '^x-iroh-response: response ts_127.0.0.1-x$' <<< "$h" && ok || bad "captive: no X-Iroh-Response: $h"
  h=$(head_of "http://127.0.0.1:$cport/generate_204")
  [ "$(status_of <<< "$h")" = 204 ] && ! grep -qi '^x-iroh-response' <<< "$h" && ok || bad "captive without a challenge: $h"
  h=$(head_of "http://127.0.0.1:$cport/generate_204" "X-Iroh-Challenge: bad/char")
  [ "$(status_of <<< "$h")" = 204 ] && ! grep -qi '^x-iroh-response' <<< "$h" && ok || bad "captive, a bad challenge answered: $h"
  for path in /ping / /healthz /relay /metrics; do
    [ "$(head_of "http://127.0.0.1:$cport$path" | status_of)" = 404 ] && ok || bad "captive port serves $path"
  done
  # a malformed request gets an answer and a close, not a hang
  r=$(printf 'NONSENSE\r\n\r\n' | timeout 10 curl -s --max-time 5 telnet://127.0.0.1:$cport 2> /dev/null | head -1 | tr -d '\r')
  [ "${r%% *}" = HTTP/1.1 ] && ok || bad "captive: malformed request: '$r'"
  # the relay itself is still HTTPS on its own port
  [ "$(curl -s -k -o /dev/null -w '%{http_code}' --max-time 10 "https://127.0.0.1:$port/ping")" = 200 ] && ok || bad "https /ping"
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$port/ping")" = 200 ] && bad "plain HTTP on the https port" || ok
  stop_relay
  [ $st = 143 ] && ok || bad "https + captive: exit $st"
else
  bad "https relay with --http-listen did not start: $(cat "$dir/relay.out" "$dir/relay.err")"
fi

# 4. a [tls] config file (--config-path=FILE): the captive-portal check on http_bind_addr
cat > "$dir/tls.toml" <<EOF
http_bind_addr = "127.0.0.1:0"
enable_metrics = false
[tls]
https_bind_addr = "127.0.0.1:0"
manual_cert_path = "$dir/cert.pem"
manual_key_path = "$dir/key.pem"
EOF
if start_relay 2 --config-path="$dir/tls.toml"; then
  cport=$(port_of "captive portal check on http")
  grep -q '^relay listening on https://' "$dir/relay.out" && [ -n "$cport" ] && ok || bad "[tls] file: $(cat "$dir/relay.out" "$dir/relay.err")"
  h=$(head_of "http://127.0.0.1:$cport/generate_204" "X-Iroh-Challenge: abc")
  grep -qi '^x-iroh-response: response abc$' <<< "$h" && ok || bad "[tls] file: captive check: $h"
  stop_relay
else
  bad "[tls] file did not start: $(cat "$dir/relay.out" "$dir/relay.err")"
fi

# 5. errors
"$bin" relay --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 > /dev/null 2> "$dir/e.err"; st=$?
[ $st = 2 ] && grep -q 'http-listen' "$dir/e.err" && ok || bad "--http-listen without TLS: status $st: $(cat "$dir/e.err")"
printf 'http_bind_addr = "127.0.0.1:0"\nno_such_key = 1\n' > "$dir/bad.toml"
for form in "-c $dir/bad.toml" "--config-path $dir/bad.toml" "--config-path=$dir/bad.toml" "--config $dir/bad.toml"; do
  # shellcheck disable=SC2086
  "$bin" relay $form > /dev/null 2> "$dir/e.err"; st=$?
  [ $st = 2 ] && grep -q "line 2: unknown key 'no_such_key'" "$dir/e.err" && ok || bad "$form: status $st: $(cat "$dir/e.err")"
done
"$bin" relay -c > /dev/null 2>&1; st=$?
[ $st = 2 ] && ok || bad "-c without a file: status $st"
# an explicit captive-portal address that is taken: exit 1, said
if start_relay 1 --listen 127.0.0.1:0; then
  taken=$(port_of "relay listening")
  "$bin" relay --listen 127.0.0.1:0 --tls-cert "$dir/cert.pem" --tls-key "$dir/key.pem" --no-qad \
    --http-listen "127.0.0.1:$taken" > /dev/null 2> "$dir/e.err" & p=$!
  pids+=($p)
  wait_exit $p 10
  [ $st = 1 ] && [ -s "$dir/e.err" ] && ok || bad "taken captive port: status $st: $(cat "$dir/e.err")"
  stop_relay
fi

echo "relay --dev / captive portal: $pass passed, $fail failed"
[ $fail = 0 ]
