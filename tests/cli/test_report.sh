#!/usr/bin/env bash
# iroh-c report: the net report against our own relays. Two https relays (127.0.0.1 and
# 127.0.0.2, QUIC address discovery on the same UDP port of each IP): UDP over IPv4, the
# public address QAD saw (the endpoint's own socket), the mapping does not vary on
# loopback, QUIC and HTTPS latencies of both, a preferred relay; --json parsed by node
# with iroh's Report field names. One relay down: the report still ends, the live one is
# preferred. IPv6 over [::1] when the host has it. The captive-portal check against a
# plain-HTTP relay (no portal) and against a fake portal (node, 200 to everything).
source "$(dirname "$0")/common.bash"

if ! command -v openssl >/dev/null; then
  echo "SKIP: openssl is not installed (scripts/install-deps.sh test installs it)"; exit 0
fi
if ! command -v node >/dev/null; then
  echo "SKIP: node is not installed"; exit 0
fi
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -keyout "$dir/key.pem" -out "$dir/cert.pem" -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:127.0.0.2,IP:::1" 2>/dev/null ||
  { echo "FAIL: openssl"; exit 1; }

wait_url() { # file -> the relay's URL
  for _ in $(seq 100); do
    grep -q "relay listening on" "$1" 2>/dev/null && { sed -n 's/^relay listening on //p' "$1" | head -1; return 0; }
    sleep 0.05
  done
  return 1
}

qport=$((20000 + RANDOM % 30000))
# start_relay name listen qad-listen [more options]: the relay's URL in $url. Runs in this
# shell, not in $(...), so that its pid reaches pids and the cleanup stops it.
start_relay() {
  local name=$1 listen=$2 qad=$3; shift 3
  "$bin" relay --listen "$listen" --tls-cert "$dir/cert.pem" --tls-key "$dir/key.pem" \
    --qad-listen "$qad" --http-listen "${listen%:*}:0" "$@" > "$dir/$name.out" 2> "$dir/$name.err" &
  pids+=($!)
  url=$(wait_url "$dir/$name.out") || { bad "relay $name did not start: $(cat "$dir/$name.err")"; return 1; }
  for _ in $(seq 50); do grep -q "QUIC address discovery on" "$dir/$name.out" && break; sleep 0.05; done
}
start_relay r1 127.0.0.1:0 "127.0.0.1:$qport" || exit 1
url1=$url
start_relay r2 127.0.0.2:0 "127.0.0.2:$qport" || exit 1
url2=$url
common=(--relay-ca "$dir/cert.pem" --relay-quic-port "$qport" --no-captive-check)

# ---- two relays, JSON --------------------------------------------------------------------
lport=$((20000 + RANDOM % 30000))
t0=$(ms)
"$bin" report --relay "$url1" --relay "$url2" "${common[@]}" --bind "127.0.0.1:$lport" --json \
  > "$dir/two.json" 2> "$dir/two.err"; st=$?
t1=$(ms)
[ $st = 0 ] && ok || bad "report with two relays: status $st: $(cat "$dir/two.err")"
# iroh's timeouts: the report is complete within 5 s (generous: 15 s on a loaded machine)
[ $((t1 - t0)) -lt 15000 ] && ok || bad "report took $((t1 - t0)) ms"
check=$(node -e '
const fs = require("fs");
const [file, u1, u2, lport] = process.argv.slice(1);
const r = JSON.parse(fs.readFileSync(file, "utf8"));
const want = ["udp_v4","udp_v6","mapping_varies_by_dest_ipv4","mapping_varies_by_dest_ipv6",
  "preferred_relay","relay_latency","global_v4","global_v6","captive_portal"];
const errs = [];
if (JSON.stringify(Object.keys(r)) !== JSON.stringify(want)) errs.push("keys " + Object.keys(r));
if (r.udp_v4 !== true) errs.push("udp_v4 " + r.udp_v4);
if (r.global_v4 !== "127.0.0.1:" + lport) errs.push("global_v4 " + r.global_v4);
if (r.mapping_varies_by_dest_ipv4 !== false) errs.push("varies_v4 " + r.mapping_varies_by_dest_ipv4);
if (r.captive_portal !== null) errs.push("captive " + r.captive_portal);
const n1 = u1 + "/", n2 = u2 + "/";
for (const u of [n1, n2]) {
  for (const k of ["ipv4", "https"]) {
    const d = r.relay_latency[k][u];
    if (!d || typeof d.secs !== "number" || typeof d.nanos !== "number" || d.secs * 1e9 + d.nanos <= 0)
      errs.push("latency " + k + " of " + u + ": " + JSON.stringify(d));
  }
}
if (r.preferred_relay !== n1 && r.preferred_relay !== n2) errs.push("preferred " + r.preferred_relay);
console.log(errs.length ? errs.join("; ") : "ok");
' "$dir/two.json" "$url1" "$url2" "$lport" 2>&1)
[ "$check" = ok ] && ok || bad "report --json: $check: $(cat "$dir/two.json")"

# ---- the same as text ---------------------------------------------------------------------
"$bin" report --relay "$url1" --relay "$url2" "${common[@]}" > "$dir/two.txt" 2> "$dir/two.err"; st=$?
[ $st = 0 ] && ok || bad "report (text): status $st: $(cat "$dir/two.err")"
grep -q "^UDP over IPv4: yes, public address 127\.0\.0\.1:[0-9]*$" "$dir/two.txt" && ok ||
  bad "text: UDP over IPv4: $(cat "$dir/two.txt")"
grep -q "^mapping varies by destination: IPv4 no" "$dir/two.txt" && ok || bad "text: mapping: $(cat "$dir/two.txt")"
grep -q "^preferred relay: https://127\.0\.0\.[12]:" "$dir/two.txt" && ok || bad "text: preferred: $(cat "$dir/two.txt")"
[ "$(grep -c "^  https://127\.0\.0\.[12]:[0-9]*/  [0-9.]* ms  .*  [0-9.]* ms$" "$dir/two.txt")" = 2 ] && ok ||
  bad "text: latencies: $(cat "$dir/two.txt")"

# ---- one relay down (nothing at 127.0.0.3): the report ends, the live relay preferred ----
t0=$(ms)
"$bin" report --relay "$url1" --relay "https://127.0.0.3:1" "${common[@]}" --json \
  > "$dir/down.json" 2> "$dir/down.err"; st=$?
t1=$(ms)
[ $st = 0 ] && ok || bad "report with a relay down: status $st: $(cat "$dir/down.err")"
[ $((t1 - t0)) -lt 15000 ] && ok || bad "report with a relay down took $((t1 - t0)) ms"
check=$(node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const u1 = process.argv[2] + "/", down = "https://127.0.0.3:1/";
const errs = [];
if (r.udp_v4 !== true) errs.push("udp_v4");
if (r.preferred_relay !== u1) errs.push("preferred " + r.preferred_relay);
if (r.mapping_varies_by_dest_ipv4 !== null) errs.push("varies " + r.mapping_varies_by_dest_ipv4);
for (const k of ["ipv4", "ipv6", "https"]) if (r.relay_latency[k][down]) errs.push("latency of the dead relay");
if (!r.relay_latency.ipv4[u1]) errs.push("no QUIC latency of the live relay");
console.log(errs.length ? errs.join("; ") : "ok");
' "$dir/down.json" "$url1" 2>&1)
[ "$check" = ok ] && ok || bad "report with a relay down: $check: $(cat "$dir/down.json")"

# every relay down: a report that found nothing (status 0); a timeout too short: status 1
"$bin" report --relay "https://127.0.0.3:1" "${common[@]}" --json > "$dir/none.json" 2> "$dir/none.err"; st=$?
[ $st = 0 ] && ok || bad "report, no relay answers: status $st: $(cat "$dir/none.err")"
grep -q '^{"udp_v4":false,"udp_v6":false,.*"preferred_relay":null,"relay_latency":{"ipv4":{},"ipv6":{},"https":{}},"global_v4":null,"global_v6":null,"captive_portal":null}$' \
  "$dir/none.json" && ok || bad "report, no relay answers: $(cat "$dir/none.json")"
"$bin" report --relay "https://127.0.0.3:1" "${common[@]}" --timeout 0.2 > /dev/null 2> "$dir/short.err"; st=$?
[ $st = 1 ] && grep -q "iroh-c: report: no new net report within 200 ms" "$dir/short.err" && ok ||
  bad "report --timeout 0.2: status $st: $(cat "$dir/short.err")"

# ---- IPv6 ----------------------------------------------------------------------------------
if ip -6 addr show dev lo 2>/dev/null | grep -q "::1/128"; then
  start_relay r3 "[::1]:0" "[::1]:$qport" || exit 1
  url3=$url
  "$bin" report --relay "$url1" --relay "$url3" "${common[@]}" --json > "$dir/v6.json" 2> "$dir/v6.err"; st=$?
  check=$(node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const u3 = process.argv[2] + "/";
const errs = [];
if (r.udp_v4 !== true || r.udp_v6 !== true) errs.push("udp " + r.udp_v4 + " " + r.udp_v6);
if (!/^\[::1\]:\d+$/.test(r.global_v6 || "")) errs.push("global_v6 " + r.global_v6);
if (!r.relay_latency.ipv6[u3]) errs.push("no IPv6 latency");
console.log(errs.length ? errs.join("; ") : "ok");
' "$dir/v6.json" "$url3" 2>&1)
  [ $st = 0 ] && [ "$check" = ok ] && ok || bad "report over IPv6: $st $check: $(cat "$dir/v6.json" "$dir/v6.err")"
else
  echo "note: no ::1 on lo, IPv6 part skipped"
fi

# ---- the captive-portal check --------------------------------------------------------------
# a plain-HTTP relay answers /generate_204 with the challenge: no portal
"$bin" relay --listen 127.0.0.1:0 > "$dir/h.out" 2> "$dir/h.err" &
pids+=($!)
hurl=$(wait_url "$dir/h.out") || bad "plain relay did not start: $(cat "$dir/h.err")"
"$bin" report --relay "$hurl" --json > "$dir/h.json" 2> "$dir/h.err2"; st=$?
[ $st = 0 ] && grep -q '"captive_portal":false}$' "$dir/h.json" && ok ||
  bad "captive check against our relay: $st $(cat "$dir/h.json" "$dir/h.err2")"
# an http relay has no QUIC address discovery, but its /ping latency counts
grep -q "\"udp_v4\":false,.*\"https\":{\"$hurl/\":{\"secs\":0,\"nanos\":[0-9]*}}" "$dir/h.json" && ok ||
  bad "http relay: $(cat "$dir/h.json")"
# a portal answers every request with a page of its own
node -e '
const srv = require("http").createServer((q, s) => { s.writeHead(200, {"Content-Type": "text/html"}); s.end("<html>log in</html>"); });
srv.listen(0, "127.0.0.1", () => console.log(srv.address().port));
' > "$dir/portal.out" &
pids+=($!)
for _ in $(seq 100); do [ -s "$dir/portal.out" ] && break; sleep 0.05; done
pport=$(head -1 "$dir/portal.out")
"$bin" report --relay "http://127.0.0.1:$pport" --json > "$dir/p.json" 2> "$dir/p.err"; st=$?
[ $st = 0 ] && grep -q '"captive_portal":true}$' "$dir/p.json" && ok ||
  bad "captive check against a portal: $st $(cat "$dir/p.json" "$dir/p.err")"

# ---- usage ---------------------------------------------------------------------------------
out=$("$bin" report --no-relay 2>&1); st=$?
[ $st = 2 ] && [[ "$out" == *"needs relays"* ]] && ok || bad "report --no-relay: $st $out"
out=$("$bin" report --frobnicate 2>&1); st=$?
[ $st = 2 ] && [[ "$out" == *"unexpected argument '--frobnicate'"* ]] && ok || bad "report --frobnicate: $st $out"
out=$("$bin" report --timeout x 2>&1); st=$?
[ $st = 2 ] && ok || bad "report --timeout x: $st $out"
"$bin" report --help | grep -q "^usage: iroh-c report" && ok || bad "report --help"

echo "$pass passed, $fail failed"
[ $fail = 0 ]
