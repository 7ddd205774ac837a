#!/usr/bin/env bash
# The main job: an identity, its EndpointId and a ticket; then a local relay, and two
# endpoints connecting by public key through it (and directly); last, a dumb pipe.
set -euo pipefail
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

say "6. A local relay server (iroh-c relay, plain HTTP on loopback):"
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
trap 'kill $relay $listener 2>/dev/null; rm -rf "$dir"' EXIT
echo "   $(head -1 "$relay_out")"

say "7. An endpoint homed on that relay, echoing iroh-example/echo/0:"
out="$dir/listen.out"
listener=
"$bin" listen --alpn iroh-example/echo/0 --echo --bind 127.0.0.1:0 --relay "$relay_url" \
    --secret-file "$dir/secret.key" >"$out" 2>/dev/null &
listener=$!
for _ in $(seq 100); do [ -s "$out" ] && break; sleep 0.1; done
lticket=$(head -1 "$out")
echo "   EndpointId $id"
echo "   its ticket (home relay and direct addresses): $("$bin" ticket decode "$lticket")"

say "8. A second endpoint dials it by public key alone, through the relay:"
rticket=$("$bin" ticket encode "$id" --relay "$relay_url")
echo "   ticket with only the id and the relay: $rticket"
echo "   connect, send 'Hello, iroh!', and again a moment later, and read the echoes;"
echo "   --verbose shows the connection start on the relay and holepunch to a direct path:"
(echo "Hello, iroh!"; sleep 0.5; echo "Hello again, now directly!") \
  | "$bin" connect "$rticket" --alpn iroh-example/echo/0 --relay "$relay_url" --verbose 2>&1 \
  | grep -v '^iroh-c: connected\|^iroh-c: ticket' | sed 's/^/   < /'
kill -USR1 $relay
sleep 0.2
stats=$(grep 'relay stats' "$dir/relay.err" | tail -1)
echo "   the relay forwarded $(echo "$stats" | sed -n 's/.*frames_relayed=\([0-9]*\).*/\1/p') datagram frames ($(echo "$stats" | sed -n 's/.*bytes_relayed=\([0-9]*\).*/\1/p') bytes) for it"

say "9. The same two endpoints directly (the ticket's direct addresses, no relay):"
echo "Hello, iroh!" | "$bin" connect "$lticket" --alpn iroh-example/echo/0 --no-relay | sed 's/^/   < /'

say "10. A dumb pipe: listen's stdout carries only the bytes it receives (its ticket is on stderr):"
echo "Hello from the listener" | "$bin" listen --alpn demo/pipe/0 --no-relay --bind 127.0.0.1:0 \
    >"$dir/pipe.out" 2>"$dir/pipe.err" &
piper=$!
trap 'kill $relay $listener $piper 2>/dev/null; rm -rf "$dir"' EXIT
pticket=
for _ in $(seq 100); do
    pticket=$(sed -n 's/^iroh-c: ticket: //p' "$dir/pipe.err")
    [ -n "$pticket" ] && break
    sleep 0.1
done
echo "   stderr: iroh-c: ticket: ${pticket:0:40}..."
echo "Hello from the dialer" | "$bin" connect "$pticket" --alpn demo/pipe/0 --no-relay | sed 's/^/   connect < /'
wait $piper
echo "   listen  < $(cat "$dir/pipe.out")"
