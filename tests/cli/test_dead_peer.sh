#!/usr/bin/env bash
# A peer that stops answering (SIGSTOP) ends the transfer after the idle timeout (30 s)
# with the library's reason in the error line, on both sides of a pipe: connect whose
# listener died, and a listener whose client died. Both pairs run at once (about 35 s).
source "$(dirname "$0")/common.bash"

pipe_ticket() { # file... -> a pipe listener's ticket
  local t
  for _ in $(seq 200); do
    t=$(sed -n 's/^\(iroh-c: ticket: \)\{0,1\}\(endpoint[a-z0-9]*\)$/\2/p' "$@" | head -1)
    [ -n "$t" ] && echo "$t" && return 0
    sleep 0.05
  done
  return 1
}
mkfifo "$dir/quiet"
exec 7<> "$dir/quiet"

start_pair() { # NAME: a pipe listener and its client, both with stdin open
  "$bin" listen --no-relay --alpn dead/0 --bind 127.0.0.1:0 < "$dir/quiet" > "$dir/$1.lout" 2> "$dir/$1.lerr" &
  lpid=$!; pids+=($lpid)
  local t; t=$(pipe_ticket "$dir/$1.lerr" "$dir/$1.lout") || bad "$1: no ticket: $(cat "$dir/$1.lerr")"
  "$bin" connect --no-relay "$t" --alpn dead/0 < "$dir/quiet" > /dev/null 2> "$dir/$1.cerr" &
  cpid=$!; pids+=($cpid)
  for _ in $(seq 200); do grep -q "connection from" "$dir/$1.lerr" && break; sleep 0.05; done
}
start_pair a; a_l=$lpid a_c=$cpid
start_pair b; b_l=$lpid b_c=$cpid
kill -STOP $a_l $b_c
t0=$(ms)
wait_exit $a_c 60; a_st=$st
wait_exit $b_l 60; b_st=$st
echo "the survivors ended after $(( $(ms) - t0 )) ms"
want="iroh-c: connection lost: timed out: no packets from the peer for 30 s"
[ $a_st = 1 ] && [ "$(cat "$dir/a.cerr")" = "$want" ] && ok ||
  bad "connect whose listener died: status $a_st: $(cat "$dir/a.cerr")"
[ $b_st = 1 ] && [ "$(tail -1 "$dir/b.lerr")" = "$want" ] && ok ||
  bad "listen whose client died: status $b_st: $(cat "$dir/b.lerr")"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
