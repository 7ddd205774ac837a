#!/usr/bin/env bash
# The dumb pipe over loopback: `iroh-c connect` sends MiB mebibytes of zeros to
# `iroh-c listen`, which writes them to a counter. Prints MB/s (wall clock, from the
# connect's start to the listener's last byte) and the CPU seconds per GB of each side
# (user + system). Usage: bench/pipe.sh [IROH_C] [MIB] [RUNS]   (default build/iroh-c 512 3)
set -u
BIN=${1:-build/iroh-c}
MIB=${2:-512}
RUNS=${3:-3}
[ -x "$BIN" ] || { echo "pipe.sh: $BIN is not an executable" >&2; exit 2; }
dir=$(mktemp -d)
lpid=
cleanup() { [ -n "$lpid" ] && kill "$lpid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

for run in $(seq 1 "$RUNS"); do
    rm -f "$dir"/*
    mkfifo "$dir/fifo"
    wc -c <"$dir/fifo" >"$dir/count" &
    wpid=$!
    ( TIMEFORMAT='%U %S'; { time "$BIN" listen --alpn bench/pipe --no-relay \
        --bind 127.0.0.1:0 2>"$dir/lerr" >"$dir/fifo"; } 2>"$dir/ltime" ) &
    lpid=$!
    ticket=
    for _ in $(seq 1 100); do
        ticket=$(sed -n 's/^iroh-c: ticket: //p' "$dir/lerr" 2>/dev/null)
        [ -n "$ticket" ] && break
        sleep 0.05
    done
    [ -n "$ticket" ] || { echo "pipe.sh: the listener printed no ticket" >&2; cat "$dir/lerr" >&2; exit 1; }
    start=$(date +%s.%N)
    TIMEFORMAT='%U %S'
    { time "$BIN" connect "$ticket" --alpn bench/pipe --no-relay \
        < <(head -c $((MIB * 1048576)) /dev/zero) >/dev/null 2>"$dir/cerr"; } 2>"$dir/ctime"
    wait "$lpid" "$wpid"
    lpid=
    end=$(date +%s.%N)
    got=$(cat "$dir/count")
    if [ "$got" != "$((MIB * 1048576))" ]; then
        echo "pipe.sh: the listener received $got bytes of $((MIB * 1048576))" >&2
        cat "$dir/cerr" >&2
        exit 1
    fi
    awk -v s="$start" -v e="$end" -v mib="$MIB" -v run="$run" -v ct="$(cat "$dir/ctime")" \
        -v lt="$(cat "$dir/ltime")" 'BEGIN {
        split(ct, c, " "); split(lt, l, " "); secs = e - s; gb = mib * 1.048576 / 1000;
        printf "run %d: %d MiB in %.2f s: %.0f MB/s; CPU per GB: connect %.2f s, listen %.2f s\n",
               run, mib, secs, gb * 1000 / secs, (c[1] + c[2]) / gb, (l[1] + l[2]) / gb }'
done
