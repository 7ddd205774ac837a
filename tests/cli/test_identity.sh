#!/usr/bin/env bash
# Identity and relay access of listen and connect: --secret-file on both, IROH_SECRET
# (hex or base32; a flag wins over it), key files others may read refused as ssh does,
# and --relay-token for a relay that requires a token (iroh-c relay --token).
source "$(dirname "$0")/common.bash"

pipe_ticket() { # file... -> a pipe listener's ticket ("iroh-c: ticket: ..." on stderr)
  local t
  for _ in $(seq 200); do
    t=$(sed -n 's/^\(iroh-c: ticket: \)\{0,1\}\(endpoint[a-z0-9]*\)$/\2/p' "$@" | head -1)
    [ -n "$t" ] && echo "$t" && return 0
    sleep 0.05
  done
  return 1
}
ticket_id() { "$bin" ticket decode "$1" | sed -n 's/^{"id":"\([0-9a-f]*\)".*/\1/p'; }
ticket_relay() { "$bin" ticket decode "$1" | sed -n 's/.*"relay":"\([^"]*\)".*/\1/p'; }
# one_line STATUS OUTPUT: a usage error is exactly one line and status 2
one_line() { [ "$1" = 2 ] && [ -n "$2" ] && [ "$(printf '%s\n' "$2" | wc -l)" = 1 ]; }

SK=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
SK32=aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dypq
ID=03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8
"$bin" keygen --output "$dir/client.key"
cid=$("$bin" id --secret-file "$dir/client.key")
"$bin" keygen --output "$dir/server.key"
sid=$("$bin" id --secret-file "$dir/server.key")

# --- key files group or others may access are refused, wherever one is read ---
printf '%s\n' $SK > "$dir/open.key"
for mode in 644 640 604 660; do
  chmod $mode "$dir/open.key"
  out=$("$bin" id --secret-file "$dir/open.key" 2>&1); st=$?
  one_line $st "$out" && [[ "$out" == *"permissions 0$mode"*"chmod 600"* ]] && ok || bad "id, a key file with mode $mode: $st $out"
done
chmod 644 "$dir/open.key"
out=$(timeout -k 5 10 "$bin" listen --no-relay --alpn id/0 --bind 127.0.0.1:0 --secret-file "$dir/open.key" 2>&1 < /dev/null); st=$?
one_line $st "$out" && [[ "$out" == *"0644"*"chmod 600"* ]] && ok || bad "listen, a key file with mode 644: $st $out"
t=$("$bin" ticket encode $ID --addr 127.0.0.1:9)
out=$(timeout -k 5 10 "$bin" connect "$t" --no-relay --alpn id/0 --secret-file "$dir/open.key" 2>&1 < /dev/null); st=$?
one_line $st "$out" && [[ "$out" == *"0644"*"chmod 600"* ]] && ok || bad "connect, a key file with mode 644: $st $out"
chmod 600 "$dir/open.key"
[ "$("$bin" id --secret-file "$dir/open.key")" = $ID ] && ok || bad "a key file with mode 600 is read"
chmod 400 "$dir/open.key"
[ "$("$bin" id --secret-file "$dir/open.key")" = $ID ] && ok || bad "a key file with mode 400 is read"

# --- listen: --secret-file, IROH_SECRET in hex and base32, the flag wins ---
listen_id() { # [env...] -- listen args: the EndpointId of the ticket a pipe listener prints
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done; shift
  env "${envs[@]}" "$bin" listen --no-relay --alpn id/0 --bind 127.0.0.1:0 "$@" < /dev/null > "$dir/li.out" 2> "$dir/li.err" &
  local p=$!
  local t; t=$(pipe_ticket "$dir/li.err" "$dir/li.out")
  kill -TERM $p; wait $p
  [ -n "$t" ] && ticket_id "$t"
}
[ "$(listen_id -- --secret-file "$dir/server.key")" = "$sid" ] && ok || bad "listen --secret-file"
[ "$(listen_id IROH_SECRET=$SK --)" = $ID ] && ok || bad "listen with IROH_SECRET (hex): $(cat "$dir/li.err")"
[ "$(listen_id IROH_SECRET=$SK32 --)" = $ID ] && ok || bad "listen with IROH_SECRET (base32): $(cat "$dir/li.err")"
[ "$(listen_id IROH_SECRET=$SK -- --secret-file "$dir/server.key")" = "$sid" ] && ok || bad "--secret-file wins over IROH_SECRET"
r1=$(listen_id IROH_SECRET= --); r2=$(listen_id --)
[ -n "$r1" ] && [ -n "$r2" ] && [ "$r1" != "$r2" ] && [ "$r1" != $ID ] && ok || bad "no key: a new random one each time ($r1, $r2)"
out=$(IROH_SECRET=nonsense timeout -k 5 10 "$bin" listen --no-relay --alpn id/0 --bind 127.0.0.1:0 2>&1 < /dev/null); st=$?
one_line $st "$out" && [[ "$out" == *IROH_SECRET* ]] && ok || bad "listen with a bad IROH_SECRET: $st $out"

# --- connect: --secret-file and IROH_SECRET (the listener names the peer) ---
connect_as() { # [env...] -- connect args: the EndpointId the pipe listener saw
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done; shift
  "$bin" listen --no-relay --alpn id/0 --bind 127.0.0.1:0 < /dev/null > "$dir/l.out" 2> "$dir/l.err" &
  local p=$!
  local t; t=$(pipe_ticket "$dir/l.err" "$dir/l.out")
  echo hi | env "${envs[@]}" timeout -k 5 30 "$bin" connect "$t" --no-relay --alpn id/0 "$@" > /dev/null 2> "$dir/c.err"
  wait_exit $p 10
  sed -n 's/^iroh-c: connection from \([0-9a-f]*\)$/\1/p' "$dir/l.err"
}
[ "$(connect_as -- --secret-file "$dir/client.key")" = "$cid" ] && ok || bad "connect --secret-file: $(cat "$dir/c.err")"
[ "$(connect_as IROH_SECRET=$SK --)" = $ID ] && ok || bad "connect with IROH_SECRET: $(cat "$dir/c.err")"
[ "$(connect_as IROH_SECRET=$SK -- --secret-file "$dir/client.key")" = "$cid" ] && ok || bad "connect: --secret-file wins over IROH_SECRET"
out=$(echo x | IROH_SECRET=abc timeout -k 5 10 "$bin" connect "$t" --no-relay --alpn id/0 2>&1); st=$?
one_line $st "$out" && [[ "$out" == *IROH_SECRET* ]] && ok || bad "connect with a bad IROH_SECRET: $st $out"
out=$(echo x | timeout -k 5 10 "$bin" connect "$t" --no-relay --alpn id/0 --secret-file "$dir/missing" 2>&1); st=$?
one_line $st "$out" && [[ "$out" == *missing* ]] && ok || bad "connect with a missing key file: $st $out"

# --- --relay-token: a relay that admits only clients with a token ---
"$bin" relay --listen 127.0.0.1:0 --token s3cret > "$dir/relay.out" 2> "$dir/relay.err" &
pids+=($!)
for _ in $(seq 100); do [ -s "$dir/relay.out" ] && break; sleep 0.05; done
url=$(sed -n 's#^relay listening on \(http://127\.0\.0\.1:[0-9]*\)$#\1#p' "$dir/relay.out")
[ -n "$url" ] || bad "the relay did not start: $(cat "$dir/relay.err")"
"$bin" listen --alpn tok/0 --echo --bind 127.0.0.1:0 --relay "$url" --relay-token s3cret > "$dir/tl.out" 2> "$dir/tl.err" &
pids+=($!); tpid=$!
for _ in $(seq 200); do [ -s "$dir/tl.out" ] && break; sleep 0.05; done
lticket=$(head -1 "$dir/tl.out")
[ -n "$lticket" ] && [ "$(ticket_relay "$lticket")" = "$url/" ] && ok ||
  bad "listen --relay-token: the ticket does not name the relay: $(cat "$dir/tl.err")"
rticket=$("$bin" ticket encode "$(ticket_id "$lticket")" --relay "$url")
out=$(echo "with token" | timeout -k 5 30 "$bin" connect "$rticket" --alpn tok/0 --relay "$url" --relay-token s3cret 2> "$dir/tc.err")
[ "$out" = "with token" ] && ok || bad "connect --relay-token through the relay: '$out' $(cat "$dir/tc.err")"
out=$(echo "no token" | timeout -k 5 30 "$bin" connect "$rticket" --alpn tok/0 --relay "$url" --timeout 2 2>&1); st=$?
[ $st = 1 ] && [[ "$out" == *"not authorized"* ]] && ok || bad "connect without the token: $st $out"
out=$(timeout -k 5 10 "$bin" listen --alpn tok/0 --relay "$url" --relay-token 'two words' 2>&1 < /dev/null); st=$?
one_line $st "$out" && ok || bad "a token with a space: $st $out"
kill -TERM $tpid; wait_exit $tpid 10

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
