#!/usr/bin/env bash
# iroh-c relay --config FILE: upstream's TOML keys (http_bind_addr, enable_metrics,
# metrics_bind_addr, [limits.client.rx], [tls] with Manual certificates, access), the
# command line overriding the file, a missing file meaning the defaults (said on stderr),
# and errors (unknown key, LetsEncrypt, QAD without [tls], bad TOML, a directory) exiting 2 with the
# file and line named. Loopback only; port 0 everywhere, the real ports read from stdout.
command -v curl > /dev/null || { echo "SKIP: no curl"; exit 0; }
source "$(dirname "$0")/common.bash"

# start_relay LINES ARGS...: waits for LINES lines on stdout; sets rpid, scheme, port, mport
start_relay() {
  local lines=$1; shift
  # emptied here: the background redirection may truncate only after the first check
  : > "$dir/relay.out"; : > "$dir/relay.err"
  "$bin" relay "$@" > "$dir/relay.out" 2> "$dir/relay.err" &
  rpid=$!
  pids+=($rpid)
  for _ in $(seq 100); do
    [ "$(wc -l < "$dir/relay.out")" -ge "$lines" ] && break
    kill -0 $rpid 2>/dev/null || break
    sleep 0.05
  done
  scheme=$(sed -n 's#^relay listening on \(https*\)://127\.0\.0\.1:[0-9]*$#\1#p' "$dir/relay.out")
  port=$(sed -n 's#^relay listening on https*://127\.0\.0\.1:\([0-9]*\)$#\1#p' "$dir/relay.out")
  mport=$(sed -n 's#^metrics listening on http://127\.0\.0\.1:\([0-9]*\)/metrics$#\1#p' "$dir/relay.out")
  [ -n "$port" ]
}
stop_relay() { kill -TERM $rpid 2>/dev/null; wait $rpid; }

# a plain-HTTP relay with metrics and a rate limit, all from the file
cat > "$dir/relay.toml" <<'EOF'
# iroh-relay's keys
enable_relay = true
http_bind_addr = "127.0.0.1:0"
enable_metrics = true
metrics_bind_addr = "127.0.0.1:0"   # a separate port
access = "everyone"

[limits.client.rx]
bytes_per_second = 1_000_000
max_burst_bytes = 50000
EOF
if start_relay 2 --config "$dir/relay.toml"; then
  [ "$scheme" = http ] && [ -n "$mport" ] && [ "$port" != "$mport" ] && ok || bad "relay/metrics lines: $(cat "$dir/relay.out")"
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$port/ping")" = 200 ] && ok || bad "/ping"
  curl -s --max-time 10 "http://127.0.0.1:$mport/metrics" | grep -q '^relayserver_accepts_total 0' && ok || bad "metrics"
  grep -q 'receive rate limit 1000000 bytes/s per client, burst 50000' "$dir/relay.err" && ok ||
    bad "rate limit not taken from the file: $(cat "$dir/relay.err")"
  stop_relay
else
  bad "relay with a config file did not start: $(cat "$dir/relay.out" "$dir/relay.err")"
fi

# the command line overrides the file; enable_metrics = false; default burst rate/10
cat > "$dir/relay2.toml" <<'EOF'
http_bind_addr = "127.0.0.1:1"     # overridden by --listen
enable_metrics = false
[limits]
accept_conn_limit = 10.0           # accepted, ignored (as upstream)
[limits.client.rx]
bytes_per_second = 1000
EOF
if start_relay 1 --config "$dir/relay2.toml" --listen 127.0.0.1:0 --rate-limit 5000; then
  sleep 0.2
  [ -z "$mport" ] && ok || bad "metrics despite enable_metrics = false"
  grep -q 'receive rate limit 5000 bytes/s per client, burst 500$' "$dir/relay.err" && ok ||
    bad "--rate-limit did not override: $(cat "$dir/relay.err")"
  grep -q "relay2.toml: line 4: 'limits.accept_conn_limit' ignored" "$dir/relay.err" && ok ||
    bad "no note for an ignored key: $(cat "$dir/relay.err")"
  stop_relay
else
  bad "overridden relay did not start: $(cat "$dir/relay.out" "$dir/relay.err")"
fi

# a missing file: the defaults (metrics on by default, as upstream; moved to port 0 here)
if start_relay 2 --config "$dir/none.toml" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0; then
  grep -q "config file '.*none.toml' does not exist; using the defaults" "$dir/relay.err" && ok ||
    bad "missing file not said: $(cat "$dir/relay.err")"
  [ -n "$mport" ] && ok || bad "metrics not on by default with --config"
  stop_relay
else
  bad "relay with a missing config file did not start: $(cat "$dir/relay.err")"
fi

# [tls] with Manual certificates: HTTPS on https_bind_addr
if command -v openssl > /dev/null &&
   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$dir/default.key" \
     -out "$dir/default.crt" -days 1 -subj /CN=localhost > /dev/null 2>&1; then
  qport=$((20000 + RANDOM % 30000))
  cat > "$dir/tls.toml" <<EOF
enable_metrics = false
enable_quic_addr_discovery = true
[tls]
https_bind_addr = "127.0.0.1:0"
quic_bind_addr = "127.0.0.1:$qport"
cert_mode = "Manual"
cert_dir = "$dir"
EOF
  if start_relay 1 --config "$dir/tls.toml"; then
    [ "$scheme" = https ] && ok || bad "not https: $(cat "$dir/relay.out")"
    [ "$(curl -sk -o /dev/null -w '%{http_code}' --max-time 10 "https://127.0.0.1:$port/ping")" = 200 ] && ok ||
      bad "https /ping"
    grep -q "QUIC address discovery on udp 127.0.0.1:$qport" "$dir/relay.out" && ok ||
      bad "quic_bind_addr: $(cat "$dir/relay.out")"
    stop_relay
  else
    bad "TLS relay did not start: $(cat "$dir/relay.err")"
  fi
  printf '[tls]\nhttps_bind_addr = "127.0.0.1:0"\nmanual_cert_path = "%s/nothing.crt"\nmanual_key_path = "%s/default.key"\n' \
    "$dir" "$dir" > "$dir/tls2.toml"
  out=$("$bin" relay --config "$dir/tls2.toml" 2>&1); st=$?
  [ $st = 2 ] && [[ "$out" == *"nothing.crt"* ]] && ok || bad "missing certificate: $st $out"
else
  echo "note: no openssl, [tls] not tested"
fi

# errors: exit 2, the file and the line named
expect_error() {
  local want=$1
  out=$("$bin" relay --config "$dir/bad.toml" --listen 127.0.0.1:0 2>&1); st=$?
  [ $st = 2 ] && [[ "$out" == *"bad.toml: $want"* ]] && ok || bad "want '$want': status $st, $out"
}
printf 'http_bind_addr = "127.0.0.1:0"\n\nenable_stun = true\n' > "$dir/bad.toml"
expect_error "line 3: unknown key 'enable_stun'"
printf '[tls]\ncert_mode = "LetsEncrypt"\nhostname = "relay.example.com"\n' > "$dir/bad.toml"
expect_error 'line 2: cert_mode "LetsEncrypt" is not supported'
printf 'enable_quic_addr_discovery = true\n' > "$dir/bad.toml"
expect_error 'enable_quic_addr_discovery needs a [tls] section'
printf 'access.allowlist = ["not-an-id"]\n' > "$dir/bad.toml"
expect_error "line 1: 'access.allowlist': 'not-an-id' is not an EndpointId"
printf 'access = { http = { url = "https://auth.example" } }\n' > "$dir/bad.toml"
expect_error 'line 1: access.http'
printf '# ok\nhttp_bind_addr = "127.0.0.1:0\n' > "$dir/bad.toml"
expect_error 'line 2: unterminated string'
printf '[limits.client.rx]\nmax_burst_bytes = 100\n' > "$dir/bad.toml"
expect_error 'line 2: max_burst_bytes needs bytes_per_second'
out=$("$bin" relay --config "$dir" 2>&1); st=$?
[ $st = 2 ] && [[ "$out" == *"cannot read config file"* ]] && ok || bad "a directory: $st $out"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
