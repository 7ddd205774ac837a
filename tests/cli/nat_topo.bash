# Two hosts behind two NAT routers, with a "public" namespace between the routers where
# the relay runs (sourced, not a test itself; tests/cli/test_netns_*.sh and
# bench/holepunch.sh use it). Needs root, iproute2 and iptables.
#
#   host A 10.1.0.2 --- 10.1.0.1 [NAT A] 198.18.1.2 --- 198.18.1.1 [public] 198.18.2.1
#                                                                              |
#   host B 10.2.0.2 --- 10.2.0.1 [NAT B] 198.18.2.2 --------------------------+
#
# The public namespace routes between the two routers' public addresses and holds the
# relay (on 198.18.1.1); it knows no route to the private subnets, so a packet for a
# private address dies there, as on the internet.
#
# NAT modes (nat_topo_up MODE):
#   cone       MASQUERADE: Linux conntrack keeps the source port where it is free
#              (endpoint-independent, port-preserving mapping) and lets in only replies
#              of a flow the inside host opened (port-restricted filtering). A rule in the
#              routers' INPUT chain drops unsolicited UDP to the router itself before its
#              conntrack entry is confirmed, so an early probe from outside cannot occupy
#              the 5-tuple that the inside host's own flow needs (a home router's
#              firewall does the same).
#   symmetric  MASQUERADE --random-fully: every new flow (each destination) gets a
#              random source port, so no address learned from one peer works for another.
#
# Every name lives in namespaces named nat-<tag>-{pub,na,nb,ha,hb} with tag unique per
# process ($$ plus a random number), and the veth pairs are created directly inside those
# namespaces, so parallel runs never collide. nat_topo_down deletes them all (call it from
# the EXIT trap; it is idempotent).

nat_tag=${nat_tag:-$$-$RANDOM}
ns_pub=nat-$nat_tag-pub
ns_na=nat-$nat_tag-na
ns_nb=nat-$nat_tag-nb
ns_ha=nat-$nat_tag-ha
ns_hb=nat-$nat_tag-hb
ip_ha=10.1.0.2 ip_hb=10.2.0.2
ip_na_pub=198.18.1.2 ip_nb_pub=198.18.2.2
ip_relay=198.18.1.1

# nat_topo_check: prints why the topology cannot be built here (and returns 1), or nothing
nat_topo_check() {
  if [ "$(id -u)" != 0 ]; then echo "needs root for network namespaces and iptables"; return 1; fi
  command -v ip > /dev/null || { echo "needs iproute2 (ip)"; return 1; }
  command -v iptables > /dev/null || { echo "needs iptables (scripts/install-deps.sh test installs it)"; return 1; }
  # a namespace with a NAT table must work here (not in every container)
  local probe=nat-$nat_tag-probe r=0
  if ! ip netns add "$probe" 2> /dev/null; then echo "cannot create network namespaces here"; return 1; fi
  ip netns exec "$probe" iptables -t nat -A POSTROUTING -o lo -j MASQUERADE 2> /dev/null ||
    { echo "iptables cannot add a NAT rule in a network namespace here"; r=1; }
  ip netns del "$probe" 2> /dev/null
  return $r
}

nat_topo_down() {
  local n p
  # the caller's background processes first (quietly: no "Killed" job notices)
  for p in ${pids[@]+"${pids[@]}"}; do kill -9 "$p" 2> /dev/null; wait "$p" 2> /dev/null; done
  pids=()
  for n in "$ns_ha" "$ns_hb" "$ns_na" "$ns_nb" "$ns_pub"; do
    # processes still inside (should be none: the tests kill theirs first)
    ip netns pids "$n" 2> /dev/null | xargs -r kill -9 2> /dev/null
    ip netns del "$n" 2> /dev/null
  done
  return 0
}

# nat_topo_up cone|symmetric: builds everything; returns non-zero with a message on stderr
nat_topo_up() {
  local mode=$1 masq=(-j MASQUERADE) n
  [ "$mode" = symmetric ] && masq=(-j MASQUERADE --random-fully)
  for n in "$ns_pub" "$ns_na" "$ns_nb" "$ns_ha" "$ns_hb"; do
    ip netns add "$n" || { echo "nat_topo: cannot create namespace $n" >&2; return 1; }
    ip -n "$n" link set lo up
  done
  # links, created inside their namespaces (no name in the root namespace)
  ip -n "$ns_pub" link add pa type veth peer name wan netns "$ns_na" &&
  ip -n "$ns_pub" link add pb type veth peer name wan netns "$ns_nb" &&
  ip -n "$ns_na" link add lan type veth peer name eth0 netns "$ns_ha" &&
  ip -n "$ns_nb" link add lan type veth peer name eth0 netns "$ns_hb" ||
    { echo "nat_topo: cannot create veth pairs" >&2; return 1; }
  ip -n "$ns_pub" addr add 198.18.1.1/24 dev pa
  ip -n "$ns_pub" addr add 198.18.2.1/24 dev pb
  ip -n "$ns_na" addr add "$ip_na_pub/24" dev wan
  ip -n "$ns_nb" addr add "$ip_nb_pub/24" dev wan
  ip -n "$ns_na" addr add 10.1.0.1/24 dev lan
  ip -n "$ns_nb" addr add 10.2.0.1/24 dev lan
  ip -n "$ns_ha" addr add "$ip_ha/24" dev eth0
  ip -n "$ns_hb" addr add "$ip_hb/24" dev eth0
  for n in "$ns_pub:pa" "$ns_pub:pb" "$ns_na:wan" "$ns_na:lan" "$ns_nb:wan" "$ns_nb:lan" \
           "$ns_ha:eth0" "$ns_hb:eth0"; do
    ip -n "${n%%:*}" link set "${n#*:}" up
  done
  ip -n "$ns_na" route add default via 198.18.1.1
  ip -n "$ns_nb" route add default via 198.18.2.1
  ip -n "$ns_ha" route add default via 10.1.0.1
  ip -n "$ns_hb" route add default via 10.2.0.1
  for n in "$ns_pub" "$ns_na" "$ns_nb"; do
    ip netns exec "$n" sysctl -qw net.ipv4.ip_forward=1 || { echo "nat_topo: no ip_forward" >&2; return 1; }
  done
  for n in "$ns_na" "$ns_nb"; do
    ip netns exec "$n" iptables -t nat -A POSTROUTING -o wan "${masq[@]}" &&
    ip netns exec "$n" iptables -A INPUT -i wan -p udp -m conntrack --ctstate NEW -j DROP ||
      { echo "nat_topo: iptables failed in $n" >&2; return 1; }
  done
  return 0
}

# nat_blackhole_direct on|off: drops (or lets through again) every UDP packet the two
# routers forward between each other's public addresses, i.e. every direct path between
# the hosts, while the relay (TCP to 198.18.1.1) keeps working
nat_blackhole_direct() {
  local op=-I
  [ "$1" = off ] && op=-D
  ip netns exec "$ns_pub" iptables $op FORWARD -p udp -s "$ip_na_pub" -d "$ip_nb_pub" -j DROP &&
  ip netns exec "$ns_pub" iptables $op FORWARD -p udp -s "$ip_nb_pub" -d "$ip_na_pub" -j DROP
}

# The processes below are started in the background and their pids appended to the
# caller's pids array (common.bash kills them on exit); logs go to the caller's $dir.
nat_peer_js=${nat_peer_js:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../interop" && pwd)/nat_peer.js}

# nat_iroh_check: prints why the real iroh peer cannot run here (and returns 1)
nat_iroh_check() {
  command -v node > /dev/null || { echo "needs node for the real iroh peer"; return 1; }
  [ -f "$(dirname "$nat_peer_js")/node_modules/@number0/iroh/package.json" ] ||
    { echo "needs the real iroh peer (scripts/install-deps.sh test installs it)"; return 1; }
  return 0
}

# nat_start_relay [ARGS...]: `iroh-c relay` (plain http) in the public namespace; sets
# relay_url
nat_start_relay() {
  : > "$dir/relay.out"
  ip netns exec "$ns_pub" "$bin" relay --listen "$ip_relay:3340" "$@" \
    > "$dir/relay.out" 2> "$dir/relay.err" &
  pids+=($!)
  relay_url=http://$ip_relay:3340
  local _
  for _ in $(seq 100); do
    [ "$(head -1 "$dir/relay.out" 2> /dev/null)" = "relay listening on $relay_url" ] && return 0
    sleep 0.05
  done
  echo "nat_topo: the relay did not start: $(cat "$dir/relay.err")" >&2
  return 1
}

# nat_start_relay_https: the same over https with a self-signed certificate for
# 198.18.1.1 (which iroh-c trusts with --relay-ca $nat_relay_ca), and so also QUIC address
# discovery on UDP 198.18.1.1:7842; sets relay_url and nat_relay_ca. Needs openssl.
nat_start_relay_https() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$dir/relay-key.pem" -out "$dir/relay-cert.pem" -subj /CN=nat-relay \
    -addext "subjectAltName=IP:$ip_relay" 2> /dev/null ||
    { echo "nat_topo: openssl could not make the relay certificate" >&2; return 1; }
  : > "$dir/relay.out"
  ip netns exec "$ns_pub" "$bin" relay --listen "$ip_relay:3340" --tls-cert "$dir/relay-cert.pem" \
    --tls-key "$dir/relay-key.pem" > "$dir/relay.out" 2> "$dir/relay.err" &
  pids+=($!)
  relay_url=https://$ip_relay:3340
  nat_relay_ca=$dir/relay-cert.pem
  local _
  for _ in $(seq 100); do
    [ "$(head -1 "$dir/relay.out" 2> /dev/null)" = "relay listening on $relay_url" ] && return 0
    sleep 0.05
  done
  echo "nat_topo: the https relay did not start: $(cat "$dir/relay.err")" >&2
  return 1
}
nat_relay_ca=

# nat_iroh_accept NS IP EXTERNAL-IP LOGNAME: a real iroh echo peer in NS bound to IP:0,
# advertising EXTERNAL-IP:<its port>; sets peer_id (empty if it did not come online)
nat_iroh_accept() {
  local ns=$1 ip=$2 ext=$3 name=$4 _
  : > "$dir/$name.out"   # emptied now: the background redirection may come late
  ip netns exec "$ns" node "$nat_peer_js" accept --relay "$relay_url" --bind "$ip:0" \
    ${ext:+--external "$ext"} > "$dir/$name.out" 2> "$dir/$name.err" &
  pids+=($!)
  peer_id=
  for _ in $(seq 300); do
    peer_id=$(sed -n 's/^NAT_PEER_RESULT {"id":"\([0-9a-f]\{64\}\)".*/\1/p' "$dir/$name.out" 2> /dev/null)
    [ -n "$peer_id" ] && return 0
    sleep 0.05
  done
  echo "nat_topo: the iroh peer $name did not come online: $(cat "$dir/$name.err")" >&2
  return 1
}

# nat_iroh_dial NS IP EXTERNAL-IP ID LOGNAME [ARGS...]: a real iroh peer in NS dials ID
# with a relay-only address and prints its JSON result line (see nat_peer.js) on stdout;
# its whole stdout (with iroh's log, IROH_NODE_LOG) is kept in $dir/LOGNAME.out
nat_iroh_dial() {
  local ns=$1 ip=$2 ext=$3 id=$4 name=$5
  shift 5
  timeout 120 ip netns exec "$ns" node "$nat_peer_js" dial --relay "$relay_url" \
    --bind "$ip:0" ${ext:+--external "$ext"} --id "$id" "$@" 2> "$dir/$name.err" |
    tee "$dir/$name.out" | sed -n 's/^NAT_PEER_RESULT //p' | tail -1
}

# json_field JSON NAME: the value of a top-level number/bool/null field
json_field() { sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" <<< "$1"; }

# ---- iroh-c peers (the command under test, $bin) ----
# Each binds a fixed port (free: its namespace is its own) so that it can name its public
# address, NAT-IP:PORT (the cone NAT keeps the port), with --external-addr before it
# starts. IROH_C_HOLEPUNCHING=2 offers multipath and n0 NAT traversal; --verbose prints
# "iroh-c: path selected: direct IP:PORT (N ms)" / "... relay URL (N ms)" lines.
nat_alpn=netns/nat/0
nat_port() { echo $((20000 + RANDOM % 30000)); }
# nat_irohc_has OPTION: 1 if both listen and connect document OPTION in their --help
nat_irohc_has() {
  "$bin" listen --help 2>&1 | grep -q -- "$1" && "$bin" connect --help 2>&1 | grep -q -- "$1"
}
# the flags this build has (a build without them still runs the relayed cases)
nat_irohc_ext() { nat_irohc_has --external-addr && echo "--external-addr $1"; }
nat_irohc_verbose() { nat_irohc_has --verbose && echo --verbose; }

# nat_irohc_listen NS IP EXTERNAL-IP LOGNAME: `iroh-c listen --echo` homed on the relay;
# sets peer_id and relay_ticket (the relay URL only, no direct addresses)
nat_irohc_listen() {
  local ns=$1 ip=$2 ext=$3 name=$4 port _ t
  port=$(nat_port)
  : > "$dir/$name.out"   # emptied now: the background redirection may come late
  IROH_C_HOLEPUNCHING=${IROH_C_HOLEPUNCHING:-2} ip netns exec "$ns" "$bin" listen --echo \
    --alpn "$nat_alpn" --relay "$relay_url" ${nat_relay_ca:+--relay-ca "$nat_relay_ca"} --bind "$ip:$port" \
    ${ext:+$(nat_irohc_ext "$ext:$port")} $(nat_irohc_verbose) > "$dir/$name.out" 2> "$dir/$name.err" &
  pids+=($!)
  peer_id= relay_ticket=
  for _ in $(seq 200); do
    t=$(head -1 "$dir/$name.out" 2> /dev/null)
    [ -n "$t" ] && break
    sleep 0.05
  done
  [ -n "$t" ] || { echo "nat_topo: iroh-c listen $name printed no ticket: $(cat "$dir/$name.err")" >&2; return 1; }
  peer_id=$("$bin" ticket decode "$t" | sed -n 's/^{"id":"\([0-9a-f]*\)".*/\1/p')
  relay_ticket=$("$bin" ticket encode "$peer_id" --relay "$relay_url")
  [ -n "$relay_ticket" ]
}

# nat_irohc_connect NS IP EXTERNAL-IP TICKET LOGNAME [ARGS...]: `iroh-c connect` with
# stdin from the caller; stdout to $dir/LOGNAME.data, stderr to $dir/LOGNAME.err; its
# exit status is returned
nat_irohc_connect() {
  local ns=$1 ip=$2 ext=$3 ticket=$4 name=$5 port
  shift 5
  port=$(nat_port)
  IROH_C_HOLEPUNCHING=${IROH_C_HOLEPUNCHING:-2} timeout 120 ip netns exec "$ns" "$bin" connect \
    "$ticket" --alpn "$nat_alpn" --relay "$relay_url" ${nat_relay_ca:+--relay-ca "$nat_relay_ca"} --bind "$ip:$port" \
    ${ext:+$(nat_irohc_ext "$ext:$port")} $(nat_irohc_verbose) --stats "$@" \
    > "$dir/$name.data" 2> "$dir/$name.err"
}

# nat_selected_ms LOGFILE direct|relay: N of the first "path selected: KIND ... (N ms)"
# line (empty when none)
nat_selected_ms() {
  sed -n "s/^iroh-c: path selected: $2 .* (\([0-9.]*\) ms)$/\1/p" "$1" | head -1
}

# nat_paced SECS FILE: writes 16 KiB random chunks every 20 ms for about SECS seconds on
# stdout, keeping a copy in FILE (what a paced transfer must deliver)
nat_paced() {
  local n=$(( $1 * 40 )) i
  for i in $(seq "$n"); do head -c 16384 /dev/urandom; sleep 0.02; done | tee "$2"
}

# nat_wait_line FILE REGEX SECS: waits until FILE has a line matching REGEX (0) or SECS
# pass (1)
nat_wait_line() {
  local end=$(( $(date +%s%N) / 1000000 + $3 * 1000 ))
  while [ $(( $(date +%s%N) / 1000000 )) -lt $end ]; do
    grep -q -- "$2" "$1" 2> /dev/null && return 0
    sleep 0.005
  done
  return 1
}

# nat_wait_more FILE REGEX K SECS: waits until FILE has more than K lines matching REGEX
nat_wait_more() {
  local end=$(( $(date +%s%N) / 1000000 + $4 * 1000 )) n
  while [ $(( $(date +%s%N) / 1000000 )) -lt $end ]; do
    n=$(grep -c -- "$2" "$1" 2> /dev/null)
    [ "${n:-0}" -gt "$3" ] && return 0
    sleep 0.005
  done
  return 1
}

# nat_irohc_fallback NS IP EXTERNAL-IP TICKET LOGNAME SECS: `iroh-c connect` with a paced
# SECS-second stream; once it reports a direct path, blackholes the direct paths and
# waits for a relay path to be selected again. Sets fb_ms (blackhole to relay selected,
# empty if it never came), fb_direct (1 if it was direct at all) and fb_status (connect's
# exit status); the sent copy is $dir/LOGNAME.sent, the echo $dir/LOGNAME.data. The
# blackhole is lifted before it returns.
nat_irohc_fallback() {
  local ns=$1 ip=$2 ext=$3 ticket=$4 name=$5 secs=$6 cpid k tb
  fb_ms= fb_direct=0 fb_status=
  : > "$dir/$name.err"
  nat_paced "$secs" "$dir/$name.sent" | nat_irohc_connect "$ns" "$ip" "$ext" "$ticket" "$name" &
  cpid=$!
  pids+=($cpid)
  if nat_wait_line "$dir/$name.err" '^iroh-c: path selected: direct' 15; then
    fb_direct=1
    sleep 1
    k=$(grep -c '^iroh-c: path selected: relay' "$dir/$name.err")
    tb=$(( $(date +%s%N) / 1000000 ))
    nat_blackhole_direct on
    nat_wait_more "$dir/$name.err" '^iroh-c: path selected: relay' "$k" $(( secs + 30 )) &&
      fb_ms=$(( $(date +%s%N) / 1000000 - tb ))
  fi
  wait $cpid
  fb_status=$?
  nat_blackhole_direct off 2> /dev/null
  return 0
}
