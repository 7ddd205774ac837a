#!/usr/bin/env bash
# iroh-c holepunching through two NATs (tests/cli/nat_topo.bash) with `iroh-c relay` as
# the meeting point, relay-only tickets, IROH_C_HOLEPUNCHING=2:
#  - cone NATs, http relay, each side told its public address (--external-addr /
#    addExternalAddr): iroh-c dialing the real iroh, the real iroh dialing iroh-c, and
#    iroh-c dialing iroh-c all end on a direct path, with the data intact and no
#    multipath / NAT-traversal warning in the real iroh's log;
#  - cone NATs, https relay: two iroh-c endpoints learn their public addresses by QUIC
#    address discovery from the relay (no --external-addr) and go direct;
#  - symmetric NATs: iroh-c with the real iroh and with iroh-c stays relayed, data intact;
#  - the direct path blackholed mid-transfer (iptables): the relay path is selected again
#    and every byte of a paced stream arrives (iroh-c dialing the real iroh and iroh-c,
#    the real iroh dialing iroh-c).
# Needs root, iptables, openssl and the real iroh peer; skips with a message otherwise.
source "$(dirname "$0")/common.bash"
source "$(dirname "$0")/nat_topo.bash"
why=$(nat_topo_check) || { echo "SKIP: $why"; exit 0; }
why=$(nat_iroh_check) || { echo "SKIP: $why"; exit 0; }
command -v openssl > /dev/null || { echo "SKIP: needs openssl (scripts/install-deps.sh test)"; exit 0; }
cleanup_extra() { nat_topo_down; }
export IROH_C_HOLEPUNCHING=2 IROH_NODE_LOG=Warn
head -c 1048576 /dev/urandom > "$dir/in"

fresh() { # MODE [https]
  nat_topo_down
  nat_relay_ca=
  nat_topo_up "$1" || { bad "$1: topology"; return 1; }
  if [ "${2:-}" = https ]; then nat_start_relay_https; else nat_start_relay; fi ||
    { bad "$1: relay"; return 1; }
}
# the 1 MiB echo through `iroh-c connect` (held open 3 s more), checks and the selected path
irohc_echo() { # LABEL NS IP EXT TICKET NAME want(direct|relay)
  local label=$1 name=$6 want=$7
  { cat "$dir/in"; sleep 3; } | nat_irohc_connect "$2" "$3" "$4" "$5" "$name"
  local st=$?
  [ $st = 0 ] && cmp -s "$dir/in" "$dir/$name.data" && ok ||
    bad "$label: 1 MiB echo: status $st: $(tail -3 "$dir/$name.err")"
  if [ "$want" = direct ]; then
    [ -n "$(nat_selected_ms "$dir/$name.err" direct)" ] && ok ||
      bad "$label: no direct path selected: $(grep iroh-c: "$dir/$name.err" | tail -5)"
    grep -q '^iroh-c: connection stats: path direct ' "$dir/$name.err" && ok ||
      bad "$label: not direct at the end: $(grep 'connection stats' "$dir/$name.err")"
  else
    [ -z "$(nat_selected_ms "$dir/$name.err" direct)" ] && ok ||
      bad "$label: a direct path through symmetric NATs: $(grep iroh-c: "$dir/$name.err")"
    grep -q '^iroh-c: connection stats: path relay ' "$dir/$name.err" && ok ||
      bad "$label: not relayed at the end: $(grep 'connection stats' "$dir/$name.err")"
  fi
}
no_warnings() { # LABEL LOG: the real iroh negotiated multipath and NAT traversal with us
  # (its log, at Warn, is on the node peer's stdout)
  if grep -q -i -E 'MultipathNotNegotiated|nat traversal was not negotiated|ExtensionNotNegotiated' "$2"; then
    bad "$1: the real iroh warns: $(grep -i -E 'negotiated' "$2" | head -3)"
  else ok; fi
}

# ---- cone NATs, http relay, configured public addresses ----
if fresh cone; then
  nat_iroh_accept "$ns_hb" "$ip_hb" "$ip_nb_pub" acc1 || bad "real iroh accept"
  t=$("$bin" ticket encode "$peer_id" --relay "$relay_url")
  irohc_echo "iroh-c -> real iroh (cone)" "$ns_ha" "$ip_ha" "$ip_na_pub" "$t" c1 direct
  no_warnings "iroh-c -> real iroh (cone)" "$dir/acc1.out"
  # the real iroh's side selected the direct path too (nat_peer.js logs its paths)
  grep -q '"ip":true,"sel":true' "$dir/acc1.err" && ok ||
    bad "iroh-c -> real iroh (cone): the real iroh never selected a direct path: $(grep paths "$dir/acc1.err" | tail -3)"

  nat_irohc_listen "$ns_hb" "$ip_hb" "$ip_nb_pub" l2 || bad "iroh-c listen"
  res=$(nat_iroh_dial "$ns_ha" "$ip_ha" "$ip_na_pub" "$peer_id" d2 --wait-direct 10000)
  echo "real iroh -> iroh-c (cone): $res"
  [ "$(json_field "$res" echoOk)" = true ] && ok || bad "real iroh -> iroh-c (cone): echo: $res $(tail -3 "$dir/d2.err")"
  d=$(json_field "$res" directMs)
  [ -n "$d" ] && [ "$d" != null ] && ok || bad "real iroh -> iroh-c (cone): not direct within 10 s: $res; iroh-c: $(grep iroh-c: "$dir/l2.err" | tail -5)"
  no_warnings "real iroh -> iroh-c (cone)" "$dir/d2.out"
  [ -n "$(nat_selected_ms "$dir/l2.err" direct)" ] && ok ||
    bad "real iroh -> iroh-c (cone): iroh-c listen never selected a direct path: $(grep iroh-c: "$dir/l2.err")"

  irohc_echo "iroh-c -> iroh-c (cone)" "$ns_ha" "$ip_ha" "$ip_na_pub" "$relay_ticket" c3 direct
fi

# ---- cone NATs, https relay: public addresses by QUIC address discovery ----
if fresh cone https; then
  nat_irohc_listen "$ns_hb" "$ip_hb" "" l4 || bad "iroh-c listen (https)"
  irohc_echo "iroh-c -> iroh-c (cone, QAD)" "$ns_ha" "$ip_ha" "" "$relay_ticket" c4 direct
fi

# ---- symmetric NATs: relayed, intact ----
if fresh symmetric; then
  nat_iroh_accept "$ns_hb" "$ip_hb" "$ip_nb_pub" acc5 || bad "real iroh accept"
  t=$("$bin" ticket encode "$peer_id" --relay "$relay_url")
  irohc_echo "iroh-c -> real iroh (symmetric)" "$ns_ha" "$ip_ha" "$ip_na_pub" "$t" c5 relay
  nat_irohc_listen "$ns_hb" "$ip_hb" "$ip_nb_pub" l6 || bad "iroh-c listen"
  res=$(nat_iroh_dial "$ns_ha" "$ip_ha" "$ip_na_pub" "$peer_id" d6 --wait-direct 8000)
  [ "$(json_field "$res" echoOk)" = true ] && [ "$(json_field "$res" directMs)" = null ] && ok ||
    bad "real iroh -> iroh-c (symmetric): $res"
  irohc_echo "iroh-c -> iroh-c (symmetric)" "$ns_ha" "$ip_ha" "$ip_na_pub" "$relay_ticket" c7 relay
fi

# ---- the direct path blackholed mid-transfer ----
fallback() { # LABEL TICKET NAME
  nat_irohc_fallback "$ns_ha" "$ip_ha" "$ip_na_pub" "$2" "$3" 20
  [ "$fb_direct" = 1 ] && ok || bad "$1: never direct: $(grep iroh-c: "$dir/$3.err" | tail -5)"
  [ -n "$fb_ms" ] && ok || bad "$1: the relay path was not selected again: $(grep iroh-c: "$dir/$3.err" | tail -5)"
  [ "$fb_status" = 0 ] && cmp -s "$dir/$3.sent" "$dir/$3.data" && ok ||
    bad "$1: the stream lost data: status $fb_status, sent $(wc -c < "$dir/$3.sent"), got $(wc -c < "$dir/$3.data"): $(tail -3 "$dir/$3.err")"
  echo "$1: fallback after ${fb_ms:-?} ms"
}
if fresh cone; then
  nat_iroh_accept "$ns_hb" "$ip_hb" "$ip_nb_pub" acc8 || bad "real iroh accept"
  fallback "iroh-c -> real iroh (blackholed)" "$("$bin" ticket encode "$peer_id" --relay "$relay_url")" f8
  nat_irohc_listen "$ns_hb" "$ip_hb" "$ip_nb_pub" l9 || bad "iroh-c listen"
  fallback "iroh-c -> iroh-c (blackholed)" "$relay_ticket" f9
  # the real iroh dialing iroh-c, its paced stream running when the direct path dies
  nat_irohc_listen "$ns_hb" "$ip_hb" "$ip_nb_pub" l10 || bad "iroh-c listen"
  res=$(nat_iroh_dial "$ns_ha" "$ip_ha" "$ip_na_pub" "$peer_id" d10 --wait-direct 10000 \
    --bytes 1024 --fallback-wait 40000 --fallback-cmd \
    "ip netns exec $ns_pub iptables -I FORWARD -p udp -s $ip_na_pub -d $ip_nb_pub -j DROP &&
     ip netns exec $ns_pub iptables -I FORWARD -p udp -s $ip_nb_pub -d $ip_na_pub -j DROP")
  f=$(json_field "$res" fallbackMs)
  [ -n "$f" ] && [ "$f" != null ] && ok || bad "real iroh -> iroh-c (blackholed): no fallback: $res $(grep iroh-c: "$dir/l10.err")"
  [ "$(json_field "$res" streamOk)" = true ] && ok || bad "real iroh -> iroh-c (blackholed): the stream lost data: $res"
  grep -A100 '^iroh-c: path selected: direct' "$dir/l10.err" | grep -q '^iroh-c: path selected: relay' && ok ||
    bad "real iroh -> iroh-c (blackholed): iroh-c did not select the relay again: $(grep iroh-c: "$dir/l10.err")"
  echo "real iroh -> iroh-c (blackholed): fallback after ${f:-?} ms (the real iroh's view)"
fi

echo "$pass passed, $fail failed"
[ $fail = 0 ]
