#!/usr/bin/env bash
# One TCP connection through the tunnel against the plain dumb pipe, same machine, over
# loopback: MiB mebibytes of zeros
#  - pipe:   `iroh-c connect --alpn` stdin -> `iroh-c listen --alpn` stdout -> a counter
#  - tunnel: a TCP client -> `iroh-c connect-tcp` -> `iroh-c listen-tcp` -> a TCP counter
# Each figure is wall clock from the sender's start to the counter's last byte (the
# dial included in both), and the CPU seconds per GB of the two iroh-c processes. Prints
# both MB/s and their ratio per run, then the median ratios. Usage: bench/tunnel.sh [IROH_C] [MIB] [RUNS]   (default build/iroh-c 512 3)
set -u
BIN=${1:-build/iroh-c}
MIB=${2:-512}
RUNS=${3:-3}
[ -x "$BIN" ] || { echo "tunnel.sh: $BIN is not an executable" >&2; exit 2; }
command -v python3 > /dev/null || { echo "tunnel.sh: needs python3 (the TCP counter)" >&2; exit 2; }
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

# the children's CPU seconds (user + system) from the output of the shell builtin times
cpu() { awk 'NR == 2 { split($1, u, /[ms]/); split($2, y, /[ms]/); printf "%.3f", u[1] * 60 + u[2] + y[1] * 60 + y[2] }' "$1"; }

pipe_run() { # -> "MB/s CPU-seconds" (both iroh-c processes)
  rm -f "$dir/fifo" "$dir/in" "$dir/count" "$dir/lerr" "$dir/lcpu" "$dir/ccpu"
  mkfifo "$dir/fifo" "$dir/in"
  wc -c < "$dir/fifo" > "$dir/count" &
  local wpid=$!
  ( "$BIN" listen --alpn bench/pipe --no-relay --bind 127.0.0.1:0 > "$dir/fifo" 2> "$dir/lerr"
    times > "$dir/lcpu" ) &
  local lpid=$!
  bg+=($lpid)
  local ticket
  ticket=$(wait_line "$dir/lerr" 's/^iroh-c: ticket: //p') || exit 1
  local s e
  s=$(now)
  head -c "$BYTES" /dev/zero > "$dir/in" &
  ( "$BIN" connect "$ticket" --alpn bench/pipe --no-relay < "$dir/in" > /dev/null 2> "$dir/cerr"
    times > "$dir/ccpu" )
  wait "$lpid" "$wpid"
  e=$(now)
  [ "$(cat "$dir/count")" = "$BYTES" ] || { echo "tunnel.sh: the pipe delivered $(cat "$dir/count") bytes" >&2; exit 1; }
  echo "$(mbps "$s" "$e") $(awk -v a="$(cpu "$dir/lcpu")" -v b="$(cpu "$dir/ccpu")" 'BEGIN { print a + b }')"
}

tunnel_run() { # -> "MB/s CPU-seconds" (both iroh-c processes)
  rm -f "$dir/sink" "$dir/lt" "$dir/ct" "$dir/count" "$dir/ltcpu" "$dir/ctcpu"
  # the counter: one connection, its byte count into a file at its end (python reading
  # 1 MiB at a time: about as cheap per byte as wc on the pipe's side)
  python3 -c "
import socket
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)
open('$dir/sink', 'w').write(str(s.getsockname()[1]))
c, _ = s.accept(); buf = bytearray(1 << 20); n = 0
while True:
    k = c.recv_into(buf)
    if not k: break
    n += k
open('$dir/count', 'w').write(str(n))" &
  local spid=$!
  bg+=($spid)
  local sport port
  for _ in $(seq 1 100); do [ -s "$dir/sink" ] && break; sleep 0.05; done
  sport=$(cat "$dir/sink")
  # each tunnel end in a subshell that reports its CPU once the end is stopped
  ( "$BIN" listen-tcp --no-relay --bind 127.0.0.1:0 --host "127.0.0.1:$sport" 2> "$dir/lt" &
    echo $! > "$dir/lt.pid"; wait; times > "$dir/ltcpu" ) &
  local lsub=$!
  ticket=$(wait_line "$dir/lt" 's/^iroh-c: ticket: //p') || exit 1
  local lpid
  lpid=$(cat "$dir/lt.pid")
  bg+=($lpid $lsub)
  ( "$BIN" connect-tcp --no-relay --addr 127.0.0.1:0 "$ticket" 2> "$dir/ct" &
    echo $! > "$dir/ct.pid"; wait; times > "$dir/ctcpu" ) &
  local csub=$!
  port=$(wait_line "$dir/ct" 's/^iroh-c: connect-tcp: listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p') || exit 1
  local cpid
  cpid=$(cat "$dir/ct.pid")
  bg+=($cpid $csub)
  local s e
  s=$(now)
  exec 3<> "/dev/tcp/127.0.0.1/$port"
  head -c "$BYTES" /dev/zero >&3
  exec 3>&-
  wait "$spid"
  e=$(now)
  kill "$lpid" "$cpid" 2> /dev/null
  wait "$lsub" "$csub" 2> /dev/null
  [ "$(cat "$dir/count" 2> /dev/null)" = "$BYTES" ] ||
    { echo "tunnel.sh: the tunnel delivered $(cat "$dir/count" 2> /dev/null) bytes; $(cat "$dir/lt" "$dir/ct")" >&2; exit 1; }
  echo "$(mbps "$s" "$e") $(awk -v a="$(cpu "$dir/ltcpu")" -v b="$(cpu "$dir/ctcpu")" 'BEGIN { print a + b }')"
}

ratios=() cratios=()
gb=$(awk -v b="$BYTES" 'BEGIN { print b / 1e9 }')
for run in $(seq 1 "$RUNS"); do
  read -r p pc <<< "$(pipe_run)" || exit 1
  read -r t tc <<< "$(tunnel_run)" || exit 1
  [ -n "$p" ] && [ -n "$t" ] || exit 1
  r=$(awk -v t="$t" -v p="$p" 'BEGIN { printf "%.2f", t / p }')
  cr=$(awk -v t="$tc" -v p="$pc" 'BEGIN { printf "%.2f", (p > 0 ? t / p : 0) }')
  ratios+=("$r")
  cratios+=("$cr")
  awk -v run="$run" -v mib="$MIB" -v p="$p" -v t="$t" -v r="$r" -v pc="$pc" -v tc="$tc" -v gb="$gb" 'BEGIN {
    printf "run %d: %d MiB: pipe %d MB/s, tunnel (one TCP connection) %d MB/s, ratio %.2f; " \
           "CPU of both iroh-c per GB: pipe %.2f s, tunnel %.2f s\n", run, mib, p, t, r, pc / gb, tc / gb }'
done
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
echo "tunnel / pipe: median throughput ratio $(median "${ratios[@]}") over $RUNS runs (the issue" \
  "asks for >= 0.80); median CPU ratio $(median "${cratios[@]}") (wall clock figures" \
  "depend on what else runs on the machine; CPU per GB much less)"
