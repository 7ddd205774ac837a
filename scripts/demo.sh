#!/usr/bin/env bash
# The main job: an identity, its EndpointId and a ticket; then a local relay and a local
# DNS / pkarr server, and two endpoints connecting by public key through them: the dialer
# knows the EndpointId alone, finds the relay and addresses in the record the listener
# published, starts on the relay and holepunches to a direct path; then directly, and
# last a dumb pipe.
set -euo pipefail
# the demo stays on this machine: n0's lookup defaults (dns.iroh.link) off; the endpoints
# below are given the local server instead
export IROH_C_ADDRESS_LOOKUP=none
bin=${1:-build/iroh-c}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }

say "1. A new secret key, written with mode 0600:"
"$bin" keygen --output "$dir/secret.key"
ls -l "$dir/secret.key" | awk '{print "   " $1 "  secret.key"}'

say "2. Its EndpointId, the public key peers dial:"
id=$("$bin" id --secret-file "$dir/secret.key")
echo "   $id"

say "3. A ticket for it, with a local relay and two direct addresses:"
ticket=$("$bin" ticket encode "$id" --relay http://127.0.0.1:3340 --addr 127.0.0.1:4433 --addr '[::1]:4433')
echo "   $ticket"

say "4. The ticket decoded again:"
echo "   $("$bin" ticket decode "$ticket")"

say "5. A malformed ticket is refused with a clear error and status 2:"
set +e
"$bin" ticket decode "${ticket%?}x" 2>&1 | sed 's/^/   /'
echo "   (exit status ${PIPESTATUS[0]})"

say "6. A local relay server (iroh-c relay) and a local DNS and pkarr server (iroh-c dns-server):"
set -e
relay_out="$dir/relay.out"
port=3340
start_relay() {
    "$bin" relay --listen "127.0.0.1:$1" >"$relay_out" 2>"$dir/relay.err" &
    relay=$!
    for _ in $(seq 50); do [ -s "$relay_out" ] && return 0; kill -0 $relay 2>/dev/null || return 1; sleep 0.1; done
    return 1
}
if ! start_relay $port; then
    # the default port is taken: any free one will do (the relay prints which)
    start_relay 0
    port=$(sed -n 's|^relay listening on http://127.0.0.1:\([0-9]*\)$|\1|p' "$relay_out")
fi
relay_url="http://127.0.0.1:$port"
dnsd= listener=
trap 'kill $relay $dnsd $listener 2>/dev/null; rm -rf "$dir"' EXIT
echo "   $(head -1 "$relay_out")"
origin=demo.iroh.test
start_dns() { # DNS_PORT HTTP_PORT: up once its HTTP port takes connections
    "$bin" dns-server --dns-listen "127.0.0.1:$1" --http-listen "127.0.0.1:$2" --origin $origin \
        >"$dir/dns.out" 2>"$dir/dns.err" &
    dnsd=$!
    for _ in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
        kill -0 $dnsd 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
dns_port=5300 http_port=8053
for try in 1 2 3 4 5 6; do
    start_dns $dns_port $http_port && break
    kill $dnsd 2>/dev/null || true
    [ $try = 6 ] && { echo "   the dns-server did not start: $(cat "$dir/dns.err")"; exit 1; }
    # a port is taken: free ones will do
    dns_port=$((20000 + RANDOM % 30000)) http_port=$((20000 + RANDOM % 30000))
done
pkarr_url="http://127.0.0.1:$http_port/pkarr"
echo "   dns-server: pkarr relay $pkarr_url, DNS on 127.0.0.1:$dns_port for *.$origin"

say "7. An endpoint homed on that relay, echoing iroh-example/echo/0, publishing its record:"
out="$dir/listen.out"
"$bin" listen --alpn iroh-example/echo/0 --echo --bind 127.0.0.1:0 --relay "$relay_url" \
    --pkarr-relay "$pkarr_url" --secret-file "$dir/secret.key" >"$out" 2>/dev/null &
echo "   iroh-c listen --echo --relay $relay_url --pkarr-relay $pkarr_url"
listener=$!
for _ in $(seq 100); do [ -s "$out" ] && break; sleep 0.1; done
lticket=$(head -1 "$out")
echo "   EndpointId $id"
echo "   its ticket (home relay and direct addresses): $("$bin" ticket decode "$lticket")"
echo "   what DNS now says of it (iroh-c resolve ID; the record names the home relay only,"
echo "   as iroh publishes by default):"
found=
for _ in $(seq 50); do
    found=$("$bin" resolve "$id" --dns-server "127.0.0.1:$dns_port" --dns-origin $origin --timeout 2 2>/dev/null) && break
    sleep 0.2
done
echo "   $found"

say "8. A second endpoint dials it by its EndpointId alone, resolved through the DNS server:"
echo "   iroh-c connect $id --dns-server 127.0.0.1:$dns_port --dns-origin $origin"
echo "   sends 'Hello, iroh!', and again a moment later, and reads the echoes; --verbose"
echo "   shows the connection start on the relay found in the record and holepunch to a"
echo "   direct path:"
(echo "Hello, iroh!"; sleep 0.5; echo "Hello again, now directly!") \
  | "$bin" connect "$id" --alpn iroh-example/echo/0 --relay "$relay_url" \
      --dns-server "127.0.0.1:$dns_port" --dns-origin $origin --verbose 2>&1 \
  | grep -v '^iroh-c: connected\|^iroh-c: ticket' | sed 's/^/   < /'
kill -USR1 $relay
sleep 0.2
stats=$(grep 'relay stats' "$dir/relay.err" | tail -1)
echo "   the relay forwarded $(echo "$stats" | sed -n 's/.*frames_relayed=\([0-9]*\).*/\1/p') datagram frames ($(echo "$stats" | sed -n 's/.*bytes_relayed=\([0-9]*\).*/\1/p') bytes) for it"

say "9. The same two endpoints directly (the ticket's direct addresses, no relay):"
echo "Hello, iroh!" | "$bin" connect "$lticket" --alpn iroh-example/echo/0 --no-relay | sed 's/^/   < /'

say "10. A dumb pipe in dumbpipe's protocol (a dumbpipe peer could take either side); listen's stdout carries only the bytes it receives (its ticket is on stderr):"
echo "Hello from the listener" | "$bin" listen --no-relay --bind 127.0.0.1:0 \
    >"$dir/pipe.out" 2>"$dir/pipe.err" &
piper=$!
trap 'kill $relay $dnsd $listener $piper 2>/dev/null; rm -rf "$dir"' EXIT
pticket=
for _ in $(seq 100); do
    pticket=$(sed -n 's/^iroh-c: ticket: //p' "$dir/pipe.err")
    [ -n "$pticket" ] && break
    sleep 0.1
done
echo "   stderr: iroh-c: ticket: ${pticket:0:40}..."
echo "Hello from the dialer" | "$bin" connect "$pticket" --no-relay --quiet | sed 's/^/   connect < /'
wait $piper
echo "   listen  < $(cat "$dir/pipe.out")"
