#!/usr/bin/env bash
# The main job, as far as iroh-c goes today: an identity, its EndpointId and a ticket,
# decoded again. Later steps make this connect two endpoints through a local relay.
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

say "6. Two endpoints connecting by public key over QUIC (direct, on loopback; relays come next):"
set -e
out=$(mktemp)
"$bin" listen --alpn iroh-example/echo/0 --echo --bind 127.0.0.1:0 --secret-file "$dir/secret.key" >"$out" 2>/dev/null &
listener=$!
trap 'kill $listener 2>/dev/null; rm -rf "$dir" "$out"' EXIT
for _ in $(seq 50); do [ -s "$out" ] && break; sleep 0.1; done
lticket=$(head -1 "$out")
echo "   listener $id"
echo "   its ticket: $lticket"
echo "   connect, send 'Hello, iroh!' and read the echo:"
echo "Hello, iroh!" | "$bin" connect "$lticket" --alpn iroh-example/echo/0 | sed 's/^/   < /'
kill $listener 2>/dev/null || true
