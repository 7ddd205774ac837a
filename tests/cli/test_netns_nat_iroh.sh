#!/usr/bin/env bash
# Our relay as the meeting point of two real iroh peers (n0's Node.js binding, iroh
# 1.0.2) behind two NATs (tests/cli/nat_topo.bash): `iroh-c relay` runs in the public
# namespace over plain http, one peer accepts behind NAT B, the other dials it behind
# NAT A with a relay-only address (the relay URL, no direct addresses).
#  - cone NATs: the connection starts on the relay and ends on a direct path
#    (paths(): isIp && isSelected) within 10 s; a 1 MiB echo is intact;
#  - the direct path blackholed mid-transfer (iptables in the public namespace): the
#    relay path is selected again and every byte of the running stream arrives;
#  - symmetric NATs: the connection stays on the relay and a 1 MiB echo is intact.
# Each peer is told its public address (the NAT's address with its own port, which the
# cone NAT preserves) with addExternalAddr: iroh learns it no other way here, since its
# QUIC address discovery trusts only the public web roots (no self-signed relay).
# Needs root, iptables and the real iroh peer; skips with a message otherwise.
source "$(dirname "$0")/common.bash"
source "$(dirname "$0")/nat_topo.bash"
why=$(nat_topo_check) || { echo "SKIP: $why"; exit 0; }
why=$(nat_iroh_check) || { echo "SKIP: $why"; exit 0; }
cleanup_extra() { nat_topo_down; }

# one round: MODE (cone|symmetric), then the dialer's extra arguments
round() {
  local mode=$1
  shift
  nat_topo_down
  nat_topo_up "$mode" || { bad "$mode: topology"; return 1; }
  nat_start_relay || { bad "$mode: relay"; return 1; }
  nat_iroh_accept "$ns_hb" "$ip_hb" "$ip_nb_pub" acc-$mode || { bad "$mode: accept peer"; return 1; }
  res=$(nat_iroh_dial "$ns_ha" "$ip_ha" "$ip_na_pub" "$peer_id" dial-$mode "$@")
  echo "$mode: $res"
}

# cone: relay first, then direct
round cone --wait-direct 10000
[ "$(json_field "$res" echoOk)" = true ] && ok || bad "cone: 1 MiB echo: $res $(cat "$dir/dial-cone.err")"
d=$(json_field "$res" directMs)
[ -n "$d" ] && [ "$d" != null ] && ok || bad "cone: no direct path selected within 10 s: $res $(tail -5 "$dir/dial-cone.err")"

# cone, the direct path blackholed mid-transfer: back to the relay, no byte lost
export ns_pub ip_na_pub ip_nb_pub
round cone --wait-direct 10000 --fallback-wait 40000 --fallback-cmd \
  "ip netns exec $ns_pub iptables -I FORWARD -p udp -s $ip_na_pub -d $ip_nb_pub -j DROP &&
   ip netns exec $ns_pub iptables -I FORWARD -p udp -s $ip_nb_pub -d $ip_na_pub -j DROP"
d=$(json_field "$res" directMs)
if [ -n "$d" ] && [ "$d" != null ]; then
  f=$(json_field "$res" fallbackMs)
  [ -n "$f" ] && [ "$f" != null ] && ok || bad "blackhole: the relay path was not selected again within 40 s: $res $(tail -5 "$dir/dial-cone.err")"
  [ "$(json_field "$res" streamOk)" = true ] && ok || bad "blackhole: the stream lost data: $res"
else
  bad "blackhole: never direct: $res"
fi

# symmetric: stays on the relay, data intact
round symmetric --wait-direct 8000
[ "$(json_field "$res" echoOk)" = true ] && ok || bad "symmetric: 1 MiB echo: $res $(cat "$dir/dial-symmetric.err")"
[ "$(json_field "$res" directMs)" = null ] && ok || bad "symmetric: a direct path through symmetric NATs: $res"
grep -q '"relay\\":true,\\"ip\\":false,\\"sel\\":true' <<< "$res" && ok || bad "symmetric: the relay path is not selected: $res"

echo "$pass passed, $fail failed"
[ $fail = 0 ]
