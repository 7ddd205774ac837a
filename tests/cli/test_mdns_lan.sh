#!/usr/bin/env bash
# mDNS (src/dns/mdns_io.h) between two hosts on a LAN of their own: two network
# namespaces joined by a veth pair, each running tests/tools/mdns_tool on UDP 5353 with
# 224.0.0.251 / ff02::fb. Each must find the other's id with the address, relay and user
# data it announced; when one stops, the other must report it expired (swarm-discovery:
# 2.1 s for a swarm of two, plus the ~0.9 s sweep; checked with a generous 15 s).
# Needs root for the namespaces: skipped otherwise.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/common.bash"
tool=${IROH_MDNS_TOOL:-$(dirname "$bin")/tests/mdns_tool}
if [ "$(id -u)" != 0 ]; then echo "SKIP: needs root for network namespaces"; exit 0; fi
[ -x "$tool" ] || { echo "FAIL: no mdns_tool at $tool" >&2; exit 1; }
na=mdnsa$$ nb=mdnsb$$
cleanup_extra() {
  for n in $na $nb; do
    ip netns pids "$n" 2> /dev/null | xargs -r kill -9 2> /dev/null
    ip netns del "$n" 2> /dev/null
  done
}
ip netns add $na && ip netns add $nb || { echo "SKIP: cannot create network namespaces"; exit 0; }
ip -n $na link add eth0 type veth peer name eth0 netns $nb &&
for n in $na $nb; do
  ip -n $n link set lo up && ip -n $n link set eth0 up || exit 1
done &&
ip -n $na addr add 10.77.0.1/24 dev eth0 && ip -n $nb addr add 10.77.0.2/24 dev eth0 &&
ip -n $na addr add fd77::1/64 dev eth0 nodad && ip -n $nb addr add fd77::2/64 dev eth0 nodad &&
# a LAN host has a default route: the group joins and sends follow it
ip -n $na route add default dev eth0 && ip -n $nb route add default dev eth0 &&
ip -n $na -6 route add default dev eth0 && ip -n $nb -6 route add default dev eth0 || {
  echo "FAIL: namespace setup" >&2; exit 1; }

# waits up to 15 s for a line matching $2 in file $1
wait_line() {
  for _ in $(seq 150); do grep -q "$2" "$1" && return 0; sleep 0.1; done
  return 1
}

# 1. both find each other (each keeps running, waiting for the other to expire)
ip netns exec $na "$tool" --seed 1 --want-seed 2 --addr 10.77.0.1:4001 \
  --relay https://relay-a.example./ --timeout 30 --expire > "$dir/a.out" 2> "$dir/a.err" &
pa=$!; pids+=($pa)
ip netns exec $nb "$tool" --seed 2 --want-seed 1 --addr 10.77.0.2:4002 --addr '[fd77::2]:4002' \
  --user-data hello-b --timeout 30 --expire > "$dir/b.out" 2> "$dir/b.err" &
pb=$!; pids+=($pb)
t0=$(ms)
if wait_line "$dir/b.out" "^found .* relay=https://relay-a.example./ user-data= addrs=10.77.0.1:4001$"; then ok
else bad "b did not find a: $(cat "$dir/b.out" "$dir/b.err")"; fi
# a sees b with both addresses (IPv4 first) and its user data
if wait_line "$dir/a.out" "^found .* relay= user-data=hello-b addrs=10.77.0.2:4002,\[fd77::2\]:4002$"; then ok
else bad "a did not find b: $(cat "$dir/a.out" "$dir/a.err")"; fi
echo "found each other in $(( $(ms) - t0 )) ms"

# 2. b stops: a reports it expired
{ kill -9 $pb; wait $pb; } 2> /dev/null
t1=$(ms)
wait_exit $pa 15
if [ "$st" = 0 ] && grep -q '^expired$' "$dir/a.out"; then ok
else bad "a did not expire b: status $st, $(cat "$dir/a.out" "$dir/a.err")"; fi
echo "expired $(( $(ms) - t1 )) ms after b stopped"

# 3. IPv6 alone works too
ip netns exec $na "$tool" --seed 3 --want-seed 4 --addr '[fd77::1]:5003' --no-ipv4 --timeout 30 \
  --expire > "$dir/c.out" 2>&1 &
pc=$!; pids+=($pc)
ip netns exec $nb "$tool" --seed 4 --want-seed 3 --addr '[fd77::2]:5004' --no-ipv4 --timeout 30 \
  --expire > "$dir/d.out" 2>&1 &
pd=$!; pids+=($pd)
if wait_line "$dir/c.out" 'addrs=\[fd77::2\]:5004$' && wait_line "$dir/d.out" 'addrs=\[fd77::1\]:5003$'; then ok
else bad "IPv6 only: $(cat "$dir/c.out" "$dir/d.out")"; fi
{ kill -9 $pc $pd; wait $pc $pd; } 2> /dev/null

echo "mdns lan: $pass passed, $fail failed"
[ "$fail" = 0 ]
