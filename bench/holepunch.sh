#!/usr/bin/env bash
# Holepunching through two NATs (the topology of tests/cli/nat_topo.bash: two hosts behind
# two port-preserving "cone" NATs, our `iroh-c relay` over plain http between them).
# Each pair dials with a relay-only address (relay URL, no direct addresses) and the
# figures are:
#   upgrade   from the start of connect to the first direct path selected, in ms
#   connect   from the start of connect to the connection being up (on the relay), in ms
#             (iroh-c dialers: their first "path selected" line; a fresh `iroh-c connect`
#             process also connects to the relay meanwhile, while the real iroh dialer is
#             online before it dials)
#   upgrade after connect   upgrade minus connect in each run: the time the holepunch
#             itself takes once the connection is up, the fairest comparison
#   fallback  from blackholing the direct path (iptables DROP in the public namespace)
#             mid-transfer to the relay path selected again, in s
#   throughput  HOLEPUNCH_MIB (default 128) MiB from `iroh-c connect` to the dumb pipe of
#             `iroh-c listen` after the upgrade, in MB/s (wall clock of connect)
# Pairs: real iroh -> real iroh (n0's Node.js binding, iroh 1.0.2; paths() polled every
# millisecond), iroh-c -> real iroh, real iroh -> iroh-c, iroh-c -> iroh-c (iroh-c's own
# `--verbose` line "iroh-c: path selected: direct IP:PORT (N ms)"; IROH_C_HOLEPUNCHING=2).
# Every peer is told its public address (NAT address, own port): --external-addr for
# iroh-c, addExternalAddr for iroh (it cannot learn it from a self-signed relay by QAD).
# Medians over RUNS runs (fallback: FALLBACK_RUNS runs, each takes ~20 s with iroh).
# Usage: bench/holepunch.sh [IROH_C] [RUNS] [FALLBACK_RUNS]   (default build/iroh-c 7 2)
# Needs root, iptables and the real iroh peer (scripts/install-deps.sh test); says so and
# exits 0 otherwise.
set -u
bin=${1:-build/iroh-c}
runs=${2:-7}
fruns=${3:-2}
here=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$bin" ] || { echo "holepunch.sh: $bin is not an executable" >&2; exit 2; }
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
source "$here/tests/cli/nat_topo.bash"
why=$(nat_topo_check) || { echo "holepunch.sh: skipped: $why"; exit 0; }
why=$(nat_iroh_check) || { echo "holepunch.sh: skipped: $why"; exit 0; }
dir=$(mktemp -d)
pids=()
# HOLEPUNCH_KEEP=1 keeps the logs (their folder is printed at the end)
trap 'nat_topo_down; if [ -n "${HOLEPUNCH_KEEP:-}" ]; then echo "logs: $dir"; else rm -rf "$dir"; fi' EXIT
trap 'exit 130' INT TERM

# median (and min..max) of the numbers on stdin, printed with FMT (default %.1f); "-"
# for no numbers
median() { sort -g | awk -v f="${1:-%.1f}" '{a[NR]=$1} END {if (NR == 0) print "-"; else if (NR % 2) printf f "\n", a[(NR+1)/2]; else printf f "\n", (a[NR/2]+a[NR/2+1])/2}'; }
minmax() { sort -g | awk -v f="${1:-%.1f}" 'NR==1{lo=$1} {hi=$1} END {if (NR) printf f ".." f, lo, hi; else printf "-"}'; }
fmt() { awk '{printf "%.1f\n", $1}'; }
# record UPGRADE CONNECT: one run's figures (either may be empty or null: not reached)
record() {
  local u=$1 c=$2
  [ "$u" = null ] && u=
  [ "$c" = null ] && c=
  [ -n "$u" ] && fmt <<< "$u" >> "$dir/up"
  [ -n "$c" ] && fmt <<< "$c" >> "$dir/co"
  [ -n "$u" ] && [ -n "$c" ] && awk -v u="$u" -v c="$c" 'BEGIN {printf "%.1f\n", u - c}' >> "$dir/uc"
  return 0
}
# report LABEL: the medians of the runs recorded since the last report
report() {
  printf '%-24s upgrade median %5s ms (%s ms, %d/%d runs direct), connect median %s ms, upgrade after connect median %s ms\n' \
    "$1" "$(median < "$dir/up")" "$(minmax < "$dir/up")" "$(wc -l < "$dir/up")" "$runs" \
    "$(median < "$dir/co")" "$(median < "$dir/uc")"
  : > "$dir/up"; : > "$dir/co"; : > "$dir/uc"
}

nat_topo_up cone || exit 1
nat_start_relay || exit 1
export ns_pub ip_na_pub ip_nb_pub
blackhole="ip netns exec $ns_pub iptables -I FORWARD -p udp -s $ip_na_pub -d $ip_nb_pub -j DROP &&
  ip netns exec $ns_pub iptables -I FORWARD -p udp -s $ip_nb_pub -d $ip_na_pub -j DROP"
unblackhole() {
  while ip netns exec "$ns_pub" iptables -D FORWARD -p udp -s "$ip_na_pub" -d "$ip_nb_pub" -j DROP 2> /dev/null; do :; done
  while ip netns exec "$ns_pub" iptables -D FORWARD -p udp -s "$ip_nb_pub" -d "$ip_na_pub" -j DROP 2> /dev/null; do :; done
}
stop_peers() { # kills every process but the relay (pids[0])
  local p
  for p in "${pids[@]:1}"; do kill -9 "$p" 2> /dev/null; wait "$p" 2> /dev/null; done
  pids=("${pids[0]}")
}

echo "== holepunch: upgrade to a direct path through two cone NATs via our relay ($runs runs)"

# ---- real iroh -> real iroh ----
: > "$dir/up"; : > "$dir/co"; : > "$dir/uc"
for i in $(seq "$runs"); do
  nat_iroh_accept "$ns_hb" "$ip_hb" "$ip_nb_pub" acc || exit 1
  res=$(nat_iroh_dial "$ns_ha" "$ip_ha" "$ip_na_pub" "$peer_id" dial --wait-direct 10000 --bytes 1024)
  record "$(json_field "$res" directMs)" "$(json_field "$res" connectMs)"
  stop_peers
done
report "real iroh -> real iroh"

: > "$dir/fb"
for i in $(seq "$fruns"); do
  nat_iroh_accept "$ns_hb" "$ip_hb" "$ip_nb_pub" acc || exit 1
  res=$(nat_iroh_dial "$ns_ha" "$ip_ha" "$ip_na_pub" "$peer_id" dial --wait-direct 10000 \
        --bytes 1024 --fallback-wait 40000 --fallback-cmd "$blackhole")
  f=$(json_field "$res" fallbackMs)
  ok=$(json_field "$res" streamOk)
  [ -n "$f" ] && [ "$f" != null ] && awk '{printf "%.2f\n", $1 / 1000}' <<< "$f" >> "$dir/fb"
  [ "$ok" = true ] || echo "  (fallback run $i: the stream did not deliver every byte: $res)"
  unblackhole
  stop_peers
done
printf '%-24s fallback median %s s (%s s, %d/%d runs fell back)\n' "real iroh -> real iroh" \
  "$(median %.2f < "$dir/fb")" "$(minmax %.2f < "$dir/fb")" "$(wc -l < "$dir/fb")" "$fruns"

# ---- iroh-c pairs: the upgrade as iroh-c's --verbose reports it ----
if ! nat_irohc_has --verbose || ! nat_irohc_has --external-addr; then
  echo "iroh-c pairs: skipped: this iroh-c has no --verbose / --external-addr"
  exit 0
fi
head -c 1024 /dev/urandom > "$dir/small"
# irohc_dialer LABEL SERVER: iroh-c connect to SERVER (iroh: real iroh accept; irohc:
# iroh-c listen); upgrade = its first "path selected: direct" (N ms from the start of the
# handshake), connect = its first "path selected" line
irohc_dialer() {
  local label=$1 server=$2 i t u c
  for i in $(seq "$runs"); do
    if [ "$server" = iroh ]; then
      nat_iroh_accept "$ns_hb" "$ip_hb" "$ip_nb_pub" acc || return 1
      t=$("$bin" ticket encode "$peer_id" --relay "$relay_url")
    else
      nat_irohc_listen "$ns_hb" "$ip_hb" "$ip_nb_pub" lis || return 1
      t=$relay_ticket
    fi
    { cat "$dir/small"; sleep 3; } | nat_irohc_connect "$ns_ha" "$ip_ha" "$ip_na_pub" "$t" con
    u=$(nat_selected_ms "$dir/con.err" direct)
    c=$(sed -n 's/^iroh-c: path selected: .* (\([0-9.]*\) ms)$/\1/p' "$dir/con.err" | head -1)
    record "$u" "$c"
    cmp -s "$dir/small" "$dir/con.data" || echo "  ($label run $i: the echo differs; connect: $(tail -2 "$dir/con.err" | tr '\n' ' '))"
    stop_peers
  done
  report "$label"
}
irohc_dialer "iroh-c -> real iroh" iroh
# real iroh dialing iroh-c: the figures as the real iroh dialer sees them
for i in $(seq "$runs"); do
  nat_irohc_listen "$ns_hb" "$ip_hb" "$ip_nb_pub" lis || exit 1
  res=$(nat_iroh_dial "$ns_ha" "$ip_ha" "$ip_na_pub" "$peer_id" dial --wait-direct 10000 --bytes 1024)
  record "$(json_field "$res" directMs)" "$(json_field "$res" connectMs)"
  [ "$(json_field "$res" echoOk)" = true ] || echo "  (real iroh -> iroh-c run $i: echo failed: $res)"
  stop_peers
done
report "real iroh -> iroh-c"
irohc_dialer "iroh-c -> iroh-c" irohc

# fallback: iroh-c dialing, a paced stream, the direct path blackholed
irohc_fallback() {
  local label=$1 server=$2 i t
  : > "$dir/fb"
  for i in $(seq "$fruns"); do
    if [ "$server" = iroh ]; then
      nat_iroh_accept "$ns_hb" "$ip_hb" "$ip_nb_pub" acc || return 1
      t=$("$bin" ticket encode "$peer_id" --relay "$relay_url")
    else
      nat_irohc_listen "$ns_hb" "$ip_hb" "$ip_nb_pub" lis || return 1
      t=$relay_ticket
    fi
    nat_irohc_fallback "$ns_ha" "$ip_ha" "$ip_na_pub" "$t" fb 20
    [ -n "$fb_ms" ] && awk '{printf "%.2f\n", $1 / 1000}' <<< "$fb_ms" >> "$dir/fb"
    [ "$fb_direct" = 1 ] || echo "  ($label fallback run $i: never direct)"
    cmp -s "$dir/fb.sent" "$dir/fb.data" || echo "  ($label fallback run $i: the stream lost data; status $fb_status: $(tail -2 "$dir/fb.err" | tr '\n' ' '))"
    stop_peers
  done
  printf '%-24s fallback median %s s (%s s, %d/%d runs fell back)\n' "$label" \
    "$(median %.2f < "$dir/fb")" "$(minmax %.2f < "$dir/fb")" "$(wc -l < "$dir/fb")" "$fruns"
}
irohc_fallback "iroh-c -> real iroh" iroh
irohc_fallback "iroh-c -> iroh-c" irohc
# the real iroh dialing iroh-c: as the real iroh dialer sees it
: > "$dir/fb"
for i in $(seq "$fruns"); do
  nat_irohc_listen "$ns_hb" "$ip_hb" "$ip_nb_pub" lis || exit 1
  res=$(nat_iroh_dial "$ns_ha" "$ip_ha" "$ip_na_pub" "$peer_id" dial --wait-direct 10000 \
        --bytes 1024 --fallback-wait 40000 --fallback-cmd "$blackhole")
  f=$(json_field "$res" fallbackMs)
  [ -n "$f" ] && [ "$f" != null ] && awk '{printf "%.2f\n", $1 / 1000}' <<< "$f" >> "$dir/fb"
  [ "$(json_field "$res" streamOk)" = true ] || echo "  (real iroh -> iroh-c fallback run $i: the stream did not deliver every byte: $res)"
  unblackhole
  stop_peers
done
printf '%-24s fallback median %s s (%s s, %d/%d runs fell back)\n' "real iroh -> iroh-c" \
  "$(median %.2f < "$dir/fb")" "$(minmax %.2f < "$dir/fb")" "$(wc -l < "$dir/fb")" "$fruns"

# throughput after the upgrade: MIB mebibytes of zeros from `iroh-c connect` (host A) to
# the dumb pipe of `iroh-c listen` (host B) through the NATs, wall clock from the start
# of connect to its end; the path at the end from connect's --stats line
mib=${HOLEPUNCH_MIB:-128}
: > "$dir/tp"
for i in $(seq 3); do
  port=$(nat_port)
  : > "$dir/tl.err"
  ( IROH_C_HOLEPUNCHING=2 ip netns exec "$ns_hb" "$bin" listen --alpn "$nat_alpn" \
      --relay "$relay_url" --bind "$ip_hb:$port" --external-addr "$ip_nb_pub:$port" \
      < /dev/null 2> "$dir/tl.err" | wc -c > "$dir/tl.count" ) &
  pids+=($!)
  nat_wait_line "$dir/tl.err" '^iroh-c: ticket: ' 10 || { echo "throughput: listen printed no ticket"; break; }
  t=$(sed -n 's/^iroh-c: ticket: //p' "$dir/tl.err" | head -1)
  id=$("$bin" ticket decode "$t" | sed -n 's/^{"id":"\([0-9a-f]*\)".*/\1/p')
  t=$("$bin" ticket encode "$id" --relay "$relay_url")
  t0=$(( $(date +%s%N) / 1000 ))
  head -c "${mib}M" /dev/zero | nat_irohc_connect "$ns_ha" "$ip_ha" "$ip_na_pub" "$t" tc
  t1=$(( $(date +%s%N) / 1000 ))
  wait "${pids[-1]}" 2> /dev/null
  got=$(cat "$dir/tl.count" 2> /dev/null)
  path=$(sed -n 's/^iroh-c: connection stats: path \([a-z]*\) .*/\1/p' "$dir/tc.err")
  if [ "${got:-0}" = $(( mib * 1048576 )) ]; then
    awk -v b="$got" -v us=$(( t1 - t0 )) -v p="$path" '{} END {printf "%.1f %s\n", b / us, p}' < /dev/null >> "$dir/tp"
  else
    echo "  (throughput run $i: the listener got ${got:-nothing} of $(( mib * 1048576 )) bytes: $(tail -2 "$dir/tc.err" | tr '\n' ' '))"
  fi
  stop_peers
done
printf '%-24s throughput median %s MB/s (%s MB/s, %d/3 runs, path at the end: %s)\n' \
  "iroh-c -> iroh-c ($mib MiB)" "$(cut -d' ' -f1 "$dir/tp" | median)" \
  "$(cut -d' ' -f1 "$dir/tp" | minmax)" "$(wc -l < "$dir/tp")" "$(cut -d' ' -f2 "$dir/tp" | sort | uniq -c | tr -s ' ' | tr '\n' ' ')"
