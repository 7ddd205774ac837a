#!/usr/bin/env bash
# Paths on the command line: --external-addr (repeatable, in the ticket; a bad one is a
# usage error, status 2, on both commands), --verbose ("iroh-c: path selected: direct
# IP:PORT (N ms)" / "relay URL (N ms)" on both sides), and connect --stats naming the
# selected path, for a direct connection and for one through a local relay.
source "$(dirname "$0")/common.bash"

# usage errors: status 2, nothing on stdout, one line on stderr
for cmd in "listen --alpn x" "connect endpointaab2cb576phbbpq5odorrz2lycmwpzgwgcn2kdk7dxoimzaskuy3qaa --alpn x"; do
  for bad_addr in nope 1.2.3.4 198.51.100.1:0 0.0.0.0:7000 '[::]:7000' '[2001:db8::1]'; do
    # shellcheck disable=SC2086
    out=$(timeout -k 5 10 "$bin" $cmd --no-relay --external-addr "$bad_addr" 2> "$dir/err" < /dev/null); st=$?
    if [ $st = 2 ] && [ -z "$out" ] && [ "$(wc -l < "$dir/err")" = 1 ] &&
       grep -q -- "--external-addr: '$(sed 's/[][]/\\&/g' <<< "$bad_addr")' is not an IP:PORT address" "$dir/err"; then
      ok
    else
      bad "$cmd --external-addr $bad_addr: status $st, stdout '$out', stderr $(cat "$dir/err")"
    fi
  done
done
out=$(timeout -k 5 10 "$bin" listen --alpn x --no-relay --external-addr 2> "$dir/err" < /dev/null); st=$?
[ $st = 2 ] && grep -q -- '--external-addr needs a value' "$dir/err" && ok || bad "--external-addr without a value: $st $(cat "$dir/err")"

# wait_line FILE REGEX [SECS]: waits until a line of FILE matches
wait_line() {
  local n=$(( ${3:-10} * 20 ))
  for _ in $(seq $n); do grep -Eq -- "$2" "$1" 2> /dev/null && return 0; sleep 0.05; done
  return 1
}

# ---- direct ----
"$bin" listen --alpn paths/0 --echo --no-relay --bind 127.0.0.1:0 --verbose \
  --external-addr 198.51.100.1:7000 --external-addr '[2001:db8::1]:7001' \
  > "$dir/l.out" 2> "$dir/l.err" &
lpid=$!; pids+=($lpid)
wait_line "$dir/l.out" '^endpoint' || bad "no ticket: $(cat "$dir/l.err")"
ticket=$(head -1 "$dir/l.out")
json=$("$bin" ticket decode "$ticket")
lport=$(sed -n 's/.*"127\.0\.0\.1:\([0-9]*\)".*/\1/p' <<< "$json")
grep -q '"198.51.100.1:7000"' <<< "$json" && grep -q '"\[2001:db8::1\]:7001"' <<< "$json" && [ -n "$lport" ] \
  && ok || bad "the ticket lacks the external addresses: $json"
out=$(echo "hello direct" | timeout -k 5 20 "$bin" connect "$ticket" --alpn paths/0 --no-relay \
  --bind 127.0.0.1:0 --verbose --stats 2> "$dir/c.err"); st=$?
[ $st = 0 ] && [ "$out" = "hello direct" ] && ok || bad "direct connect: status $st, '$out', $(cat "$dir/c.err")"
grep -Eq "^iroh-c: path selected: direct 127\.0\.0\.1:$lport \([0-9]+ ms\)$" "$dir/c.err" \
  && ok || bad "connect --verbose, direct: $(cat "$dir/c.err")"
[ "$(grep -c 'path selected' "$dir/c.err")" = 1 ] && ok || bad "one path line expected: $(cat "$dir/c.err")"
grep -Eq "^iroh-c: connection stats: path direct 127\.0\.0\.1:$lport, rtt " "$dir/c.err" \
  && ok || bad "connect --stats, direct: $(cat "$dir/c.err")"
wait_line "$dir/l.err" '^iroh-c: path selected: direct 127\.0\.0\.1:[0-9]+ \([0-9]+ ms\)$' \
  && ok || bad "listen --verbose, direct: $(cat "$dir/l.err")"
kill $lpid; wait_exit $lpid 10

# ---- relayed: a relay-only ticket, holepunching off (IROH_C_HOLEPUNCHING=0), so the
# connection stays on the relay (with it on, the next case, it moves to a direct path) ----
"$bin" relay --listen 127.0.0.1:0 > "$dir/r.out" 2> "$dir/r.err" &
pids+=($!)
wait_line "$dir/r.out" '^relay listening on ' || bad "the relay did not start: $(cat "$dir/r.err")"
url=$(sed -n 's/^relay listening on //p' "$dir/r.out" | head -1)
IROH_C_HOLEPUNCHING=0 "$bin" listen --alpn paths/0 --echo --relay "$url" --bind 127.0.0.1:0 \
  --verbose > "$dir/l2.out" 2> "$dir/l2.err" &
lpid=$!; pids+=($lpid)
wait_line "$dir/l2.out" '^endpoint' || bad "no ticket: $(cat "$dir/l2.err")"
id=$("$bin" ticket decode "$(head -1 "$dir/l2.out")" | sed -n 's/.*"id":"\([0-9a-f]*\)".*/\1/p')
rticket=$("$bin" ticket encode "$id" --relay "$url")
out=$(echo "hello relay" | IROH_C_HOLEPUNCHING=0 timeout -k 5 20 "$bin" connect "$rticket" --alpn paths/0 --relay "$url" \
  --bind 127.0.0.1:0 --verbose --stats 2> "$dir/c2.err"); st=$?
[ $st = 0 ] && [ "$out" = "hello relay" ] && ok || bad "relayed connect: status $st, '$out', $(cat "$dir/c2.err")"
grep -Eq "^iroh-c: path selected: relay $url/ \([0-9]+ ms\)$" "$dir/c2.err" \
  && ok || bad "connect --verbose, relayed: $(cat "$dir/c2.err")"
grep -Eq "^iroh-c: connection stats: path relay $url/, rtt " "$dir/c2.err" \
  && ok || bad "connect --stats, relayed: $(cat "$dir/c2.err")"
wait_line "$dir/l2.err" "^iroh-c: path selected: relay $url/ \([0-9]+ ms\)$" \
  && ok || bad "listen --verbose, relayed: $(cat "$dir/l2.err")"
kill $lpid; wait_exit $lpid 10

# ---- holepunching on (IROH_C_HOLEPUNCHING=2): relay first, then direct ----
IROH_C_HOLEPUNCHING=2 "$bin" listen --alpn paths/0 --echo --relay "$url" --bind 127.0.0.1:0 --verbose \
  > "$dir/l3.out" 2> "$dir/l3.err" &
lpid=$!; pids+=($lpid)
wait_line "$dir/l3.out" '^endpoint' || bad "no ticket: $(cat "$dir/l3.err")"
json=$("$bin" ticket decode "$(head -1 "$dir/l3.out")")
id=$(sed -n 's/.*"id":"\([0-9a-f]*\)".*/\1/p' <<< "$json")
lport=$(sed -n 's/.*"127\.0\.0\.1:\([0-9]*\)".*/\1/p' <<< "$json")
rticket=$("$bin" ticket encode "$id" --relay "$url")
# stdin stays open a moment so that the connection lives past the upgrade
out=$( (echo "hello"; sleep 1; echo "holepunch") | IROH_C_HOLEPUNCHING=2 timeout -k 5 20 "$bin" connect \
  "$rticket" --alpn paths/0 --relay "$url" --bind 127.0.0.1:0 --verbose --stats 2> "$dir/c3.err"); st=$?
[ $st = 0 ] && [ "$out" = "hello
holepunch" ] && ok || bad "holepunched connect: status $st, '$out', $(cat "$dir/c3.err")"
sel=$(grep '^iroh-c: path selected: ' "$dir/c3.err")
first=$(head -1 <<< "$sel"); last=$(tail -1 <<< "$sel")
grep -Eq "^iroh-c: path selected: relay $url/ \([0-9]+ ms\)$" <<< "$first" \
  && ok || bad "holepunching: the relay first: $(cat "$dir/c3.err")"
grep -Eq "^iroh-c: path selected: direct 127\.0\.0\.1:$lport \([0-9]+ ms\)$" <<< "$last" \
  && ok || bad "holepunching: then direct: $(cat "$dir/c3.err")"
grep -Eq "^iroh-c: connection stats: path direct 127\.0\.0\.1:$lport, rtt " "$dir/c3.err" \
  && ok || bad "connect --stats names the direct path at the end: $(cat "$dir/c3.err")"
wait_line "$dir/l3.err" '^iroh-c: path selected: direct 127\.0\.0\.1:[0-9]+ \([0-9]+ ms\)$' \
  && ok || bad "listen --verbose, holepunched: $(cat "$dir/l3.err")"
kill $lpid; wait_exit $lpid 10

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
