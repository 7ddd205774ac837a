#!/usr/bin/env bash
# A `listen --echo` process flooded with 20,000 client Initials at 5,000 a second (junk
# that never decrypts; valid Initials from clients that never go on; valid ones whose
# sender also follows every Retry): its VmRSS stays within 40 MB of its start during the
# flood and 10 s after it, and it still echoes for an ordinary client afterwards.
source "$(dirname "$0")/common.bash"
flood=${IROH_FLOOD:?IROH_FLOOD (the initial_flood tool) not set}
limit_kb=$((40 * 1024))

wait_ticket() { # file -> ticket on stdout
  for _ in $(seq 100); do [ -s "$1" ] && head -1 "$1" && return 0; sleep 0.05; done
  return 1
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

"$bin" listen --no-relay --alpn flood/0 --echo --bind 127.0.0.1:0 > "$dir/listen.out" 2> "$dir/listen.err" &
pids+=($!); lpid=$!
ticket=$(wait_ticket "$dir/listen.out") || { bad "listen printed no ticket"; echo "0 passed, 1 failed"; exit 1; }
addr=$("$bin" ticket decode "$ticket" | sed 's/.*"addrs":\["\([^"]*\)".*/\1/')
sleep 0.5
start=$(rss_kb $lpid)
echo "start: VmRSS $start kB"

for mode in junk valid retry; do
  "$flood" "$addr" --mode $mode --count 20000 --rate 5000 > "$dir/flood.out" 2>&1 &
  pids+=($!); fpid=$!
  peak=0
  while kill -0 $fpid 2> /dev/null; do
    r=$(rss_kb $lpid); [ "$r" -gt "$peak" ] && peak=$r
    sleep 0.25
  done
  wait $fpid; st=$?
  [ $st = 0 ] && ok || bad "$mode: the flooder failed: $(cat "$dir/flood.out")"
  sleep 10
  after=$(rss_kb $lpid)
  echo "$mode: $(cat "$dir/flood.out"); VmRSS peak $peak kB, 10 s after $after kB"
  [ $((peak - start)) -le $limit_kb ] && ok || bad "$mode: VmRSS during the flood $peak kB, started at $start kB"
  [ $((after - start)) -le $limit_kb ] && ok || bad "$mode: VmRSS 10 s after the flood $after kB, started at $start kB"
  kill -0 $lpid 2> /dev/null && ok || bad "$mode: the listener died: $(tail -3 "$dir/listen.err")"
  out=$(printf 'still here\n' | timeout 20 "$bin" connect --no-relay "$ticket" --alpn flood/0 2>&1); st=$?
  [ $st = 0 ] && [ "$out" = "still here" ] && ok || bad "$mode: echo after the flood: status $st: $out"
done

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
