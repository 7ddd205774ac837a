#!/bin/bash
# bench_mem: bad arguments get the usage line and status 2; a short run brings up every
# scenario (each connection pair with its paths validated) and exits 0.
# Usage: bench_mem.sh PATH_TO_BENCH_MEM
b=$1
err=$(mktemp)
trap 'rm -f "$err"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
for a in 0 10001 x 1x -5 '' 99999999999999999999; do
    "$b" "$a" >/dev/null 2>"$err"
    s=$?
    [ $s -eq 2 ] || fail "bench_mem '$a': status $s, want 2"
    grep -q '^usage: bench_mem' "$err" || fail "bench_mem '$a': no usage line"
done
"$b" 1 2 >/dev/null 2>"$err"
s=$?
[ $s -eq 2 ] || fail "bench_mem 1 2: status $s, want 2"
out=$("$b" 3) || fail "bench_mem 3: status $?: $out"
for want in "mode 0 (no multipath), 1 path:" "mode 1 (multipath), 1 path:" \
            "mode 1 (multipath), 3 paths:" "mode 2 (multipath + QNT), 1 path:"; do
    grep -qF "$want" <<<"$out" || fail "bench_mem 3: no line '$want'"
done
echo "ok"
