#!/usr/bin/env bash
# bench/connect_by_id.sh [IROH_C] [RUNS]: the time from the start of `iroh-c connect` to
# connected (its first "path selected" line under --verbose) when it dials an EndpointId
# that must first be resolved, against the same dial with a ticket; and to the end of
# the whole command (one line echoed, connection closed). Everything on loopback: a local `iroh-c dns-server` (pkarr
# relay and DNS), a local relay, and an echo listener that publishes its record there.
# Four ways, RUNS times each (default 10), median and min/max in milliseconds:
#   ticket          connect TICKET (the listener's direct addresses and relay)
#   id via pkarr    connect ID --pkarr-relay URL (HTTP GET of the signed packet)
#   id via dns      connect ID --dns-server IP:PORT --dns-origin O (TXT over UDP)
#   id via both     both at once (the first answer wins)
# The listener publishes its direct addresses too (--publish-addrs), so that every way
# ends on the same direct path and the difference is the lookup. Figures only; nothing
# is asserted.
set -u
bin=${1:-build/iroh-c}
runs=${2:-10}
dir=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill -9 $p 2> /dev/null; wait $p 2> /dev/null; done; rm -rf "$dir"' EXIT
export IROH_C_ADDRESS_LOOKUP=none # nothing to n0's servers: only the lookups given below
ms() { echo $(( $(date +%s%N) / 1000000 )); }

# the dns-server on free ports (retries when a port is taken)
for _ in 1 2 3 4 5; do
  dport=$((20000 + RANDOM % 30000)) hport=$((20000 + RANDOM % 30000))
  "$bin" dns-server --dns-listen 127.0.0.1:$dport --http-listen 127.0.0.1:$hport --origin bench.test --rate-limit disabled \
    > "$dir/dns.out" 2> "$dir/dns.err" &
  dpid=$!
  up=
  for _ in $(seq 50); do
    kill -0 $dpid 2> /dev/null || break
    if (exec 3<> /dev/tcp/127.0.0.1/$hport) 2> /dev/null; then up=1; break; fi
    sleep 0.1
  done
  [ -n "$up" ] && { pids+=($dpid); break; }
  kill -9 $dpid 2> /dev/null; wait $dpid 2> /dev/null
done
[ -n "$up" ] || { echo "the dns-server did not start: $(cat "$dir/dns.err")"; exit 1; }
pkarr=http://127.0.0.1:$hport/pkarr

"$bin" relay --listen 127.0.0.1:0 > "$dir/relay.out" 2> /dev/null &
pids+=($!)
for _ in $(seq 100); do
  relay=$(sed -n 's#^relay listening on \(http://.*\)$#\1#p' "$dir/relay.out"); [ -n "$relay" ] && break; sleep 0.05
done

"$bin" listen --echo --alpn bench/id --bind 127.0.0.1:0 --relay "$relay" --pkarr-relay "$pkarr" --publish-addrs \
  > "$dir/l.out" 2> "$dir/l.err" &
pids+=($!)
for _ in $(seq 200); do [ -s "$dir/l.out" ] && break; sleep 0.05; done
ticket=$(head -1 "$dir/l.out")
id=$("$bin" ticket decode "$ticket" | sed -n 's/^{"id":"\([0-9a-f]*\)".*/\1/p')
# wait until the record (with the address) is published
for _ in $(seq 150); do
  "$bin" resolve "$id" --pkarr-relay "$pkarr" --timeout 2 2> /dev/null | grep -q '"addrs":\["' && break
  sleep 0.1
done

run() { # label args...: RUNS timed connects, one line of figures
  local label=$1 t0 t st fails=0
  shift
  local conn=() total=() look=()
  for _ in $(seq "$runs"); do
    rm -f "$dir/t"
    t0=$(date +%s%N)
    out=$(echo ping | "$bin" connect "$@" --alpn bench/id --bind 127.0.0.1:0 --timeout 20 --verbose \
      2> >(while IFS= read -r l; do
             case $l in *"path selected"*) [ -e "$dir/t" ] || echo $(( ($(date +%s%N) - t0) / 1000000 )) > "$dir/t";; esac
             echo "$l"
           done > "$dir/c.err")); st=$?
    t=$(( ($(date +%s%N) - t0) / 1000000 ))
    for _ in $(seq 20); do [ -s "$dir/t" ] && break; sleep 0.01; done
    if [ $st = 0 ] && [ "$out" = ping ] && [ -s "$dir/t" ]; then conn+=($(cat "$dir/t")); total+=($t); else fails=$((fails + 1)); fi
    # the first answer's time as the library reports it (--verbose: "lookup: X found ... (N ms)")
    local lk=$(sed -n 's/^iroh-c: lookup: .* found .* (\([0-9]*\) ms)$/\1/p' "$dir/c.err" | head -1)
    [ -n "$lk" ] && look+=($lk)
  done
  if [ ${#conn[@]} = 0 ]; then
    printf '%-14s all %d runs failed: %s\n' "$label" "$runs" "$(tail -1 "$dir/c.err")"; return
  fi
  local c=($(printf '%s\n' "${conn[@]}" | sort -n)) w=($(printf '%s\n' "${total[@]}" | sort -n))
  local n=${#c[@]} lkm=-
  if [ ${#look[@]} -gt 0 ]; then
    local l=($(printf '%s\n' "${look[@]}" | sort -n)); lkm=${l[$((${#l[@]} / 2))]}
  fi
  printf '%-14s connected: median %4d ms (min %4d, max %4d)   first lookup answer: median %3s ms   whole command: median %4d ms   (%d runs%s)\n' \
    "$label" "${c[$((n / 2))]}" "${c[0]}" "${c[$((n - 1))]}" "$lkm" "${w[$((n / 2))]}" "$n" \
    "$([ $fails -gt 0 ] && echo ", $fails failed")"
}

echo "iroh-c connect on loopback, from its start ($runs runs each; the record has the direct address,"
echo "so every way ends on the same direct path and the difference is the lookup):"
run "ticket" "$ticket" --relay "$relay"
run "id via pkarr" "$id" --relay "$relay" --pkarr-relay "$pkarr"
run "id via dns" "$id" --relay "$relay" --dns-server 127.0.0.1:$dport --dns-origin bench.test
run "id via both" "$id" --relay "$relay" --pkarr-relay "$pkarr" --dns-server 127.0.0.1:$dport --dns-origin bench.test
