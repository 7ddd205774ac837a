#!/usr/bin/env bash
# One TCP connection through the tunnel against the plain dumb pipe, same machine, over
# loopback: MiB mebibytes of zeros
#  - pipe:   `iroh-c connect --alpn` stdin -> `iroh-c listen --alpn` stdout -> a counter
#  - tunnel: a TCP client -> `iroh-c connect-tcp` -> `iroh-c listen-tcp` -> a TCP counter
# Each figure is wall clock from the sender's start to the counter's last byte (the
# dial included in both). Prints both MB/s and their ratio per run, then the median
# ratio. Usage: bench/tunnel.sh [IROH_C] [MIB] [RUNS]   (default build/iroh-c 512 3)
set -u
BIN=${1:-build/iroh-c}
MIB=${2:-512}
RUNS=${3:-3}
[ -x "$BIN" ] || { echo "tunnel.sh: $BIN is not an executable" >&2; exit 2; }
command -v node > /dev/null || { echo "tunnel.sh: needs node (the TCP counter)" >&2; exit 2; }
export IROH_C_ADDRESS_LOOKUP=none
BYTES=$((MIB * 1048576))
dir=$(mktemp -d)
bg=()
cleanup() { for p in "${bg[@]}"; do kill "$p" 2> /dev/null; done; wait 2> /dev/null; rm -rf "$dir"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_line() { # file sed-expr
  local v
  for _ in $(seq 1 200); do
    v=$(sed -n "$2" "$1" 2> /dev/null | head -1)
    [ -n "$v" ] && echo "$v" && return 0
    sleep 0.05
  done
  echo "tunnel.sh: nothing matching $2 in $1: $(cat "$1")" >&2
  return 1
}
now() { date +%s.%N; }
mbps() { awk -v s="$1" -v e="$2" -v b="$BYTES" 'BEGIN { printf "%.0f", b / (e - s) / 1e6 }'; }

pipe_run() { # -> MB/s
  rm -f "$dir/fifo" "$dir/count" "$dir/lerr"
  mkfifo "$dir/fifo"
  wc -c < "$dir/fifo" > "$dir/count" &
  local wpid=$!
  "$BIN" listen --alpn bench/pipe --no-relay --bind 127.0.0.1:0 > "$dir/fifo" 2> "$dir/lerr" &
  local lpid=$!
  bg+=($lpid)
  local ticket
  ticket=$(wait_line "$dir/lerr" 's/^iroh-c: ticket: //p') || exit 1
  local s e
  s=$(now)
  head -c "$BYTES" /dev/zero | "$BIN" connect "$ticket" --alpn bench/pipe --no-relay > /dev/null 2> "$dir/cerr"
  wait "$lpid" "$wpid"
  e=$(now)
  [ "$(cat "$dir/count")" = "$BYTES" ] || { echo "tunnel.sh: the pipe delivered $(cat "$dir/count") bytes" >&2; exit 1; }
  mbps "$s" "$e"
}

tunnel_run() { # -> MB/s
  rm -f "$dir/sink" "$dir/lt" "$dir/ct" "$dir/count"
  # the counter: one connection, its byte count into a file at its end
  node -e "
    const fs = require('fs');
    const srv = require('net').createServer((s) => {
      let n = 0;
      s.on('data', (d) => { n += d.length; });
      s.on('end', () => { fs.writeFileSync('$dir/count', String(n)); s.end(); srv.close(); });
    }).listen(0, '127.0.0.1', () => fs.writeFileSync('$dir/sink', String(srv.address().port)));" &
  local spid=$!
  bg+=($spid)
  local sport port
  for _ in $(seq 1 100); do [ -s "$dir/sink" ] && break; sleep 0.05; done
  sport=$(cat "$dir/sink")
  "$BIN" listen-tcp --no-relay --bind 127.0.0.1:0 --host "127.0.0.1:$sport" 2> "$dir/lt" &
  local lpid=$!
  bg+=($lpid)
  local ticket
  ticket=$(wait_line "$dir/lt" 's/^iroh-c: ticket: //p') || exit 1
  "$BIN" connect-tcp --no-relay --addr 127.0.0.1:0 "$ticket" 2> "$dir/ct" &
  local cpid=$!
  bg+=($cpid)
  port=$(wait_line "$dir/ct" 's/^iroh-c: connect-tcp: listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p') || exit 1
  local s e
  s=$(now)
  exec 3<> "/dev/tcp/127.0.0.1/$port"
  head -c "$BYTES" /dev/zero >&3
  exec 3>&-
  wait "$spid"
  e=$(now)
  kill "$lpid" "$cpid" 2> /dev/null
  wait "$lpid" "$cpid" 2> /dev/null
  [ "$(cat "$dir/count" 2> /dev/null)" = "$BYTES" ] ||
    { echo "tunnel.sh: the tunnel delivered $(cat "$dir/count" 2> /dev/null) bytes; $(cat "$dir/lt" "$dir/ct")" >&2; exit 1; }
  mbps "$s" "$e"
}

ratios=()
for run in $(seq 1 "$RUNS"); do
  p=$(pipe_run) || exit 1
  t=$(tunnel_run) || exit 1
  r=$(awk -v t="$t" -v p="$p" 'BEGIN { printf "%.2f", t / p }')
  ratios+=("$r")
  echo "run $run: $MIB MiB: pipe $p MB/s, tunnel (one TCP connection) $t MB/s, ratio $r"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
echo "tunnel / pipe throughput: median ratio $median over $RUNS runs (the issue asks for >= 0.80)"
