#!/usr/bin/env bash
# iroh-c relay: the plain-HTTP endpoints (/ping, /generate_204 with and without a
# challenge, /healthz, /, /robots.txt, 404), a malformed upgrade refused with 400, a bad
# listen address, and SIGTERM ending it with status 143 and the port closed. Uses curl when
# present, else bash's /dev/tcp.
source "$(dirname "$0")/common.bash"

# start the relay on a free port (retry if another process takes it first)
start_relay() {
  for _ in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 30000))
    "$bin" relay --listen "127.0.0.1:$port" > "$dir/relay.out" 2> "$dir/relay.err" &
    rpid=$!
    for _ in $(seq 100); do
      [ -s "$dir/relay.out" ] && break
      kill -0 $rpid 2>/dev/null || break
      sleep 0.05
    done
    if [ "$(head -1 "$dir/relay.out" 2>/dev/null)" = "relay listening on http://127.0.0.1:$port" ]; then
      pids+=($rpid)
      return 0
    fi
    kill -9 $rpid 2>/dev/null; wait $rpid 2>/dev/null
  done
  return 1
}

# request PATH [HEADER...] -> the raw response (head and body, CRLFs removed) on stdout
if [ -z "${IROH_TEST_NO_CURL:-}" ] && command -v curl > /dev/null; then
  request() {
    local path=$1; shift
    local args=()
    for h in "$@"; do args+=(-H "$h"); done
    curl -s -i --max-time 10 "${args[@]}" "http://127.0.0.1:$port$path" | tr -d '\r'
  }
else
  request() {
    local path=$1; shift
    exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
    { printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n' "$path" "$port"
      for h in "$@"; do printf '%s\r\n' "$h"; done
      printf '\r\n'; } >&3
    timeout 10 cat <&3 | tr -d '\r'
    exec 3<&-
  }
fi
# raw bytes to the port, the response on stdout (read for at most ${2:-10} s)
raw() {
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  printf "$1" >&3
  timeout "${2:-10}" cat <&3 | tr -d '\r'
  exec 3<&-
}
status_of() { head -1 | cut -d' ' -f2; }

start_relay || { echo "FAIL: the relay did not start: $(cat "$dir/relay.err")"; exit 1; }

# /ping: 200, empty, CORS header
r=$(request /ping)
[ "$(status_of <<< "$r")" = 200 ] && ok || bad "/ping: $r"
grep -qi '^access-control-allow-origin: \*$' <<< "$r" && ok || bad "/ping without Access-Control-Allow-Origin: $r"
grep -qi '^content-length: 0$' <<< "$r" && ok || bad "/ping not empty: $r"
grep -qi '^strict-transport-security: max-age=63072000; includeSubDomains$' <<< "$r" && ok || bad "/ping without HSTS: $r"

# /generate_204: 204, the challenge answered only when well-formed
r=$(request /generate_204)
[ "$(status_of <<< "$r")" = 204 ] && ok || bad "/generate_204: $r"
grep -qi '^x-iroh-response' <<< "$r" && bad "/generate_204 answered without a challenge: $r" || ok
r=$(request /generate_204 "X-Iroh-Challenge: ts_127.0.0.1-x")
[ "$(status_of <<< "$r")" = 204 ] && ok || bad "/generate_204 with challenge: $r"
grep -qi '^x-iroh-response: response ts_127.0.0.1-x$' <<< "$r" && ok || bad "no X-Iroh-Response: $r"
r=$(request /generate_204 "X-Iroh-Challenge: bad/char")
grep -qi '^x-iroh-response' <<< "$r" && bad "invalid challenge answered: $r" || ok
long=$(printf 'a%.0s' $(seq 64))
r=$(request /generate_204 "X-Iroh-Challenge: $long")
grep -qi '^x-iroh-response' <<< "$r" && bad "64-character challenge answered: $r" || ok

# /healthz: 200 JSON
r=$(request /healthz)
[ "$(status_of <<< "$r")" = 200 ] && ok || bad "/healthz: $r"
grep -q '^{"status":"ok","version":"[^"]*","git_hash":"unknown"}$' <<< "$r" && ok || bad "/healthz body: $r"
grep -qi '^content-type: application/json$' <<< "$r" && ok || bad "/healthz content type: $r"

# /, /index.html, /robots.txt, 404
r=$(request /)
[ "$(status_of <<< "$r")" = 200 ] && grep -q 'Iroh Relay' <<< "$r" && ok || bad "/: $r"
r=$(request /index.html)
[ "$(status_of <<< "$r")" = 200 ] && grep -qi '^content-type: text/html' <<< "$r" && ok || bad "/index.html: $r"
r=$(request /robots.txt)
[ "$(status_of <<< "$r")" = 200 ] && grep -q '^Disallow: /$' <<< "$r" && ok || bad "/robots.txt: $r"
r=$(request /nothing-here)
[ "$(status_of <<< "$r")" = 404 ] && grep -q '^Not Found$' <<< "$r" && ok || bad "404: $r"
r=$(request '/ping?x=1')
[ "$(status_of <<< "$r")" = 200 ] && ok || bad "/ping with a query: $r"

# malformed upgrades: 400 with upstream's reasons
r=$(request /relay)
[ "$(status_of <<< "$r")" = 400 ] && grep -q 'missing header: upgrade' <<< "$r" && ok || bad "GET /relay without upgrade: $r"
r=$(raw 'GET /relay HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nsec-websocket-protocol: iroh-relay-v2\r\n\r\n')
[ "$(status_of <<< "$r")" = 400 ] && ok || bad "Upgrade: WebSocket (case differs): $r"
r=$(raw 'GET /relay HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\nsec-websocket-protocol: iroh-relay-v2\r\n\r\n')
[ "$(status_of <<< "$r")" = 400 ] && grep -qi '^sec-websocket-version: 13$' <<< "$r" && ok || bad "version 8: $r"
r=$(raw 'GET /relay HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nsec-websocket-protocol: iroh-relay-v9\r\n\r\n')
[ "$(status_of <<< "$r")" = 400 ] && grep -q 'unsupported relay version' <<< "$r" && ok || bad "unknown protocol: $r"
# and a good one is switched (101, the RFC 6455 accept of the sample key)
r=$(raw 'GET /relay HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nsec-websocket-protocol: iroh-relay-v1, iroh-relay-v2\r\n\r\n' 1 | head -8)
[ "$(status_of <<< "$r")" = 101 ] && grep -qi '^sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=$' <<< "$r" &&
  grep -qi '^sec-websocket-protocol: iroh-relay-v2$' <<< "$r" && ok || bad "upgrade: $r"
# not HTTP at all
r=$(raw 'hello\r\n\r\n')
[ "$(status_of <<< "$r")" = 400 ] && ok || bad "garbage request: $r"

# keep-alive: two requests on one connection
if [ -z "${IROH_TEST_NO_CURL:-}" ] && command -v curl > /dev/null; then
  n=$(curl -s -o /dev/null -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$port/ping" "http://127.0.0.1:$port/healthz" | tr -d '\n')
  [ "$n" = 200200 ] && ok || bad "two requests on one connection: $n"
fi

# a bad listen address and a taken port fail cleanly
out=$("$bin" relay --listen nonsense 2>&1); st=$?
[ $st = 2 ] && [[ "$out" == *"invalid listen address"* ]] && ok || bad "bad listen address: $st $out"
out=$(timeout 5 "$bin" relay --listen "127.0.0.1:$port" 2>&1); st=$?
[ $st = 1 ] && [[ "$out" == *"cannot bind"* ]] && ok || bad "port in use: $st $out"
out=$("$bin" relay --bogus 2>&1); st=$?
[ $st = 2 ] && ok || bad "unknown option: $st $out"

# SIGTERM: exit 143 (128 + 15, as every iroh-c command), the port closed
kill -TERM $rpid
for _ in $(seq 100); do kill -0 $rpid 2>/dev/null || break; sleep 0.05; done
wait $rpid; st=$?
[ $st = 143 ] && ok || bad "relay exit status after SIGTERM: $st ($(cat "$dir/relay.err"))"
grep -q '^relay stats: .*http_requests=' "$dir/relay.err" && ok || bad "no stats line at exit: $(cat "$dir/relay.err")"
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then bad "port $port still open after exit"; else ok; fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
