#!/usr/bin/env bash
# --mdns on the command line: two iroh-c endpoints on a LAN of their own (two network
# namespaces joined by a veth pair, 10.213.0.1 and 10.213.0.2, multicast on) find each
# other by mDNS alone (no relay, no pkarr, no DNS: IROH_C_ADDRESS_LOOKUP=none, as the
# test suite sets it):
#   - `resolve ID --mdns` on host B prints host A's listener with its LAN address;
#   - `connect ID --mdns --no-relay` from host B reaches it and the echo comes back;
#   - without --mdns on the listener, resolve --mdns finds nothing (exit 1).
# Needs root (network namespaces); skips otherwise.
source "$(dirname "$0")/common.bash"
source "$(dirname "$0")/lookup.bash"

if [ "$(id -u)" != 0 ] || ! command -v ip > /dev/null; then
  echo "SKIP: needs root and iproute2 for network namespaces"; exit 0
fi
tag=$$-$RANDOM
na=lkmA-$tag nb=lkmB-$tag
if ! ip netns add "$na" 2> /dev/null; then echo "SKIP: cannot create network namespaces here"; exit 0; fi
cleanup_extra() {
  for n in "$na" "$nb"; do
    ip netns pids "$n" 2> /dev/null | xargs -r kill -9 2> /dev/null
    ip netns del "$n" 2> /dev/null
  done
}
ip netns add "$nb" || { echo "FAIL: cannot create $nb"; exit 1; }
ip -n "$na" link add eth0 type veth peer name eth0 netns "$nb" || { echo "FAIL: no veth pair"; exit 1; }
ip -n "$na" addr add 10.213.0.1/24 dev eth0
ip -n "$nb" addr add 10.213.0.2/24 dev eth0
for n in "$na" "$nb"; do
  ip -n "$n" link set lo up
  ip -n "$n" link set eth0 up multicast on
  # the LAN is the way to everywhere (also to the multicast groups)
  ip -n "$n" route add default dev eth0
done
export IROH_C_ADDRESS_LOOKUP=none

# listener on host A, announced by mDNS
ip netns exec "$na" "$bin" listen --echo --alpn lookup/mdns --no-relay --mdns > "$dir/a.out" 2> "$dir/a.err" &
pids+=($!)
for _ in $(seq 200); do [ -s "$dir/a.out" ] && break; sleep 0.05; done
ticket=$(head -1 "$dir/a.out")
[ -n "$ticket" ] || { echo "FAIL: the listener did not start: $(cat "$dir/a.err")"; exit 1; }
json=$("$bin" ticket decode "$ticket")
id=$(sed -n 's/^{"id":"\([0-9a-f]*\)".*/\1/p' <<< "$json")
port=$(sed -n 's/.*"10\.213\.0\.1:\([0-9]*\)".*/\1/p' <<< "$json")
[ -n "$port" ] && ok || bad "the listener's ticket names its LAN address 10.213.0.1: $json"

# host B resolves it by mDNS
t0=$(ms)
found=
for _ in $(seq 10); do
  found=$(ip netns exec "$nb" "$bin" resolve "$id" --mdns --timeout 3 2> "$dir/r.err") && break
  sleep 0.5
done
el=$(( $(ms) - t0 ))
grep -q "\"10\.213\.0\.1:$port\"" <<< "$found" && grep -q "^{\"id\":\"$id\"" <<< "$found" && ok ||
  bad "resolve ID --mdns on host B: '$found' after $el ms: $(cat "$dir/r.err")"
echo "resolved by mDNS in $el ms: $found"

out=$(echo "over mdns" | ip netns exec "$nb" "$bin" connect "$id" --alpn lookup/mdns --mdns --no-relay --stats \
  --timeout 20 2> "$dir/c.err"); st=$?
[ $st = 0 ] && [ "$out" = "over mdns" ] && grep -q "path direct 10\.213\.0\.1:$port" "$dir/c.err" && ok ||
  bad "connect ID --mdns --no-relay from host B: status $st '$out': $(cat "$dir/c.err")"

# a listener without --mdns is not found that way
ip netns exec "$na" "$bin" listen --echo --alpn lookup/mdns2 --no-relay > "$dir/q.out" 2> "$dir/q.err" &
pids+=($!)
for _ in $(seq 200); do [ -s "$dir/q.out" ] && break; sleep 0.05; done
qid=$("$bin" ticket decode "$(head -1 "$dir/q.out")" | sed -n 's/^{"id":"\([0-9a-f]*\)".*/\1/p')
ip netns exec "$nb" "$bin" resolve "$qid" --mdns --timeout 4 > "$dir/r.out" 2> "$dir/r.err"; st=$?
[ $st = 1 ] && [ ! -s "$dir/r.out" ] && ok || bad "a listener without --mdns was found by mDNS: $st $(cat "$dir/r.out")"

echo "$pass passed, $fail failed"
[ $fail = 0 ]
