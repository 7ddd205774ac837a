#!/usr/bin/env bash
# iroh-c dns-server --dns-listen IP:0 takes one port for UDP and TCP: the kernel picks the
# UDP port, and when TCP has that port in use another one is picked, so the server starts.
# Made certain in a network namespace of its own whose ephemeral range holds two ports,
# the first taken by a TCP listener: six starts in a row must all come up (before the
# retry about half of them failed with "Address already in use"). Needs root (network
# namespaces); skips otherwise.
source "$(dirname "$0")/common.bash"
if [ "$(id -u)" != 0 ] || ! command -v ip > /dev/null || ! command -v python3 > /dev/null; then
  echo "SKIP: needs root, iproute2 and python3"; exit 0
fi
ns=irohc-dnsport-$$
if ! ip netns add "$ns" 2> /dev/null; then
  echo "SKIP: cannot create network namespaces here"; exit 0
fi
hold=""
cleanup_extra() {
  [ -n "$hold" ] && { kill "$hold" 2> /dev/null; wait "$hold" 2> /dev/null; }
  ip netns del "$ns" 2> /dev/null
}
ip -n "$ns" link set lo up
ip netns exec "$ns" sysctl -q -w net.ipv4.ip_local_port_range="40000 40001" ||
  { echo "SKIP: cannot narrow the port range"; exit 0; }
# TCP 40000 taken for the whole test
ip netns exec "$ns" python3 -c '
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 40000)); s.listen(1); print("ready", flush=True); time.sleep(120)' > "$dir/hold" &
hold=$!
for _ in $(seq 100); do grep -q ready "$dir/hold" && break; sleep 0.05; done
for i in 1 2 3 4 5 6; do
  : > "$dir/out"
  ip netns exec "$ns" "$bin" dns-server --dns-listen 127.0.0.1:0 --http-listen none > "$dir/out" 2> "$dir/err" &
  p=$!; pids+=($p)
  for _ in $(seq 100); do grep -q '^dns-server listening' "$dir/out" && break; kill -0 $p 2> /dev/null || break; sleep 0.05; done
  if grep -q '^dns-server listening on udp+tcp 127.0.0.1:40001$' "$dir/out"; then ok
  else bad "start $i: $(cat "$dir/out" "$dir/err")"; fi
  kill -TERM $p 2> /dev/null; wait_exit $p 10
done
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
