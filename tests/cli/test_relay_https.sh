#!/usr/bin/env bash
# Two iroh-c endpoints through an https relay (iroh-c relay with a throwaway self-signed
# certificate made by openssl): trusted with --relay-ca it connects by EndpointId alone;
# without it (system trust store) the relay is refused with the certificate's reason and
# the connection fails cleanly. (Name mismatches: unit/test_tls_stream.)
set -u
bin=${IROH_C:?IROH_C not set}
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$dir"; }
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

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

"$bin" relay --listen 127.0.0.1:0 --tls-cert "$dir/cert.pem" --tls-key "$dir/key.pem" \
  > "$dir/relay.out" 2> "$dir/relay.err" &
pids+=($!)
line=$(wait_line "$dir/relay.out") || bad "relay did not start: $(cat "$dir/relay.err")"
port=${line##*:}
url="https://localhost:$port"

"$bin" listen --alpn tls/0 --echo --bind 127.0.0.1:0 --relay "$url" --relay-ca "$dir/cert.pem" \
  > "$dir/l.out" 2> "$dir/l.err" &
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

echo "$pass passed, $fail failed"
[ $fail = 0 ]
