#!/usr/bin/env bash
# Two iroh-c endpoints through an https relay (iroh-c relay with a throwaway self-signed
# certificate made by openssl): trusted with --relay-ca it connects by EndpointId alone;
# without it (system trust store) the relay is refused with the certificate's reason and
# the connection fails cleanly. (Name mismatches: unit/test_tls_stream.) QUIC address
# discovery (relay.md 4.3): the relay serves it on UDP with the same certificate and the
# endpoint learns its address from it.
source "$(dirname "$0")/common.bash"

if ! command -v openssl >/dev/null; then
  echo "SKIP: openssl is not installed (scripts/install-deps.sh test installs it)"; exit 0
fi
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -keyout "$dir/key.pem" -out "$dir/cert.pem" -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null || { echo "FAIL: openssl"; exit 1; }

wait_line() { # file -> first line
  for _ in $(seq 100); do [ -s "$1" ] && head -1 "$1" && return 0; sleep 0.05; done
  return 1
}

qport=$((20000 + RANDOM % 30000))
"$bin" relay --listen 127.0.0.1:0 --tls-cert "$dir/cert.pem" --tls-key "$dir/key.pem" \
  --qad-listen "127.0.0.1:$qport" > "$dir/relay.out" 2> "$dir/relay.err" &
relay=$!
pids+=($relay)
line=$(wait_line "$dir/relay.out") || bad "relay did not start: $(cat "$dir/relay.err")"
port=${line##*:}
url="https://localhost:$port"
for _ in $(seq 50); do grep -q "QUIC address discovery on udp 127.0.0.1:$qport" "$dir/relay.out" && break; sleep 0.05; done
grep -q "QUIC address discovery on udp 127.0.0.1:$qport" "$dir/relay.out" && ok || bad "no address discovery: $(cat "$dir/relay.out" "$dir/relay.err")"

IROH_LOG=info "$bin" listen --alpn tls/0 --echo --bind 127.0.0.1:0 --relay "$url" --relay-ca "$dir/cert.pem" \
  --relay-quic-port "$qport" > "$dir/l.out" 2> "$dir/l.err" &
pids+=($!)
ticket=$(wait_line "$dir/l.out") || bad "listen printed no ticket: $(cat "$dir/l.err")"
json=$("$bin" ticket decode "$ticket")
case "$json" in *"\"relay\":\"$url/\""*) ok ;; *) bad "the ticket does not name the https relay: $json" ;; esac
id=$(echo "$json" | sed 's/.*"id":"\([0-9a-f]*\)".*/\1/')
rticket=$("$bin" ticket encode "$id" --relay "$url")

out=$(echo "over tls" | timeout 30 "$bin" connect "$rticket" --alpn tls/0 --relay "$url" --relay-ca "$dir/cert.pem" 2> "$dir/c.err")
[ "$out" = "over tls" ] && ok || bad "echo through the https relay: '$out' $(cat "$dir/c.err")"

# the system store does not know the self-signed certificate: refused, with the reason
out=$(echo x | timeout 30 "$bin" connect "$rticket" --alpn tls/0 --relay "$url" --timeout 2 2>&1); st=$?
[ $st = 1 ] && ok || bad "untrusted relay: status $st"
echo "$out" | grep -q "rejected: not trusted" && ok || bad "untrusted relay: no reason given: $out"

# the listener learned its address from the relay: the port it is bound to
lport=$(echo "$json" | sed -n 's/.*"127\.0\.0\.1:\([0-9]*\)".*/\1/p')
for _ in $(seq 50); do grep -q "public address (QUIC address discovery)" "$dir/l.err" && break; sleep 0.05; done
grep -q "public address (QUIC address discovery): 127.0.0.1:$lport\$" "$dir/l.err" && ok ||
  bad "address discovery: want 127.0.0.1:$lport: $(grep -i address "$dir/l.err")"
kill -TERM $relay
for _ in $(seq 100); do kill -0 $relay 2>/dev/null || break; sleep 0.05; done
grep -q "qad stats: connections=[1-9]" "$dir/relay.err" && ok || bad "relay's address discovery stats: $(cat "$dir/relay.err")"

# address discovery needs the certificate
out=$("$bin" relay --listen 127.0.0.1:0 --qad-listen 127.0.0.1:1 2>&1); st=$?
[ $st = 2 ] && [[ "$out" == *"needs --tls-cert"* ]] && ok || bad "--qad-listen without TLS: $st $out"

echo "$pass passed, $fail failed"
[ $fail = 0 ]
