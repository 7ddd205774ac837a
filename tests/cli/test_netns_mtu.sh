#!/usr/bin/env bash
# Path MTU discovery over a real link: two network namespaces joined by a veth pair. With
# MTU 1500 the connection moves to 1452-byte datagrams; with MTU 1300 the probe cannot
# leave (the sockets never fragment) and the connection stays at 1200 bytes; a 1 MiB echo
# is intact either way. Needs root (network namespaces); skips otherwise.
source "$(dirname "$0")/common.bash"
if [ "$(id -u)" != 0 ] || ! command -v ip > /dev/null; then
  echo "SKIP: needs root and iproute2 for network namespaces"; exit 0
fi
a=irohc-a-$$ b=irohc-b-$$
if ! ip netns add "$a" 2> /dev/null; then
  echo "SKIP: cannot create network namespaces here"; exit 0
fi
ip netns add "$b"
cleanup_extra() {
  ip netns del "$a" 2> /dev/null
  ip netns del "$b" 2> /dev/null
}

ip link add va-$$ type veth peer name vb-$$ || { echo "FAIL: veth"; exit 1; }
ip link set va-$$ netns "$a"
ip link set vb-$$ netns "$b"
ip -n "$a" addr add 10.201.0.1/24 dev va-$$
ip -n "$b" addr add 10.201.0.2/24 dev vb-$$
ip -n "$a" link set lo up
ip -n "$b" link set lo up
ip -n "$a" link set va-$$ up
ip -n "$b" link set vb-$$ up

head -c 1048576 /dev/urandom > "$dir/in"

run_case() { # mtu expected-path-mtu
  local mtu=$1 want=$2
  ip -n "$a" link set va-$$ mtu "$mtu"
  ip -n "$b" link set vb-$$ mtu "$mtu"
  ip netns exec "$b" "$bin" listen --no-relay --alpn mtu/0 --echo --bind 10.201.0.2:0 \
    > "$dir/l.out" 2> "$dir/l.err" &
  local lp=$!
  pids+=($lp)
  local ticket=""
  for _ in $(seq 100); do [ -s "$dir/l.out" ] && ticket=$(head -1 "$dir/l.out") && break; sleep 0.05; done
  [ -n "$ticket" ] || { bad "MTU $mtu: listen printed no ticket: $(cat "$dir/l.err")"; kill $lp; return; }
  timeout 60 ip netns exec "$a" "$bin" connect "$ticket" --alpn mtu/0 --no-relay --stats \
    < "$dir/in" > "$dir/out" 2> "$dir/c.err"
  local st=$?
  [ $st = 0 ] && cmp -s "$dir/in" "$dir/out" && ok || bad "MTU $mtu: 1 MiB echo: status $st $(cat "$dir/c.err")"
  grep -q "path mtu $want," "$dir/c.err" && ok || bad "MTU $mtu: want path mtu $want: $(cat "$dir/c.err")"
  kill $lp 2> /dev/null
  wait $lp 2> /dev/null
  : > "$dir/l.out"
}

run_case 1500 1452
run_case 1300 1200

echo "$pass passed, $fail failed"
[ $fail = 0 ]
