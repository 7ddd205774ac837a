#!/usr/bin/env bash
# iroh-c dns-server, the contract of issue 13: pkarr PUT/GET with iroh-dns-server's status
# codes (204 first PUT, 400 bad signature / key not matching the path / bad key / bad
# payload / stale timestamp, nothing stored or replaced then; 404 unknown key; an older
# packet never replaces a newer one), DNS over UDP and TCP (answers re-rooted under the
# origin, NXDOMAIN with the SOA, SOA/NS from the command line, REFUSED outside the zone and
# for AXFR, FORMERR for junk, truncation with TC over UDP), DoH GET and POST, /healthz,
# metrics, the SQLite file surviving a restart, --config with iroh-dns-server's keys, and
# the PUT rate limit (429) while everyone else is still served. Loopback only; ports from
# the kernel (port 0). Needs curl and the test tools dns_query and pkarr_tool.
command -v curl > /dev/null || { echo "SKIP: no curl"; exit 0; }
source "$(dirname "$0")/common.bash"
dq=${DNS_QUERY:?DNS_QUERY not set}
pt=${PKARR_TOOL:?PKARR_TOOL not set}

# start ARGS...: sets spid, dns (IP:PORT) and http (base URL of /pkarr)
start() {
  : > "$dir/s.out"; : > "$dir/s.err"
  "$bin" dns-server --dns-listen 127.0.0.1:0 "$@" > "$dir/s.out" 2> "$dir/s.err" &
  spid=$!
  pids+=($spid)
  for _ in $(seq 200); do
    grep -q '^pkarr relay listening' "$dir/s.out" && break
    kill -0 $spid 2> /dev/null || break
    sleep 0.05
  done
  dns=$(sed -n 's/^dns-server listening on udp+tcp //p' "$dir/s.out")
  http=$(sed -n 's#^pkarr relay listening on \(http://.*\)/pkarr$#\1#p' "$dir/s.out")
  [ -n "$dns" ] && [ -n "$http" ]
}
stop() { kill -TERM $spid; wait_exit $spid 10; }
code() { curl -s -o "$dir/body" -w '%{http_code}' --max-time 10 "$@"; }
put() { code -X PUT --data-binary @"$1" "$http/pkarr/$2" "${@:3}"; }
now_us() { echo $(( $(date +%s%N) / 1000 )); }

sk1=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
sk2=9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60
z1=$("$pt" z32 $sk1)   # yqooxx9u3aemh8mo5wcqq16yufu6jitouq1o4za751dger1igghy (spec 7.1)
z2=$("$pt" z32 $sk2)
[ "$z1" = yqooxx9u3aemh8mo5wcqq16yufu6jitouq1o4za751dger1igghy ] && ok || bad "z32 of the spec key: $z1"
t=$(now_us)
"$pt" payload $sk1 $t --relay https://relay-a.example./ --addr 192.0.2.1:1234 > "$dir/a1"
"$pt" payload $sk1 $((t + 1000)) --relay https://relay-b.example./ > "$dir/a2"
"$pt" payload $sk1 $((t - 1000)) --relay https://relay-old.example./ > "$dir/a0"
"$pt" payload $sk2 $t --relay https://relay-2.example./ > "$dir/b1"

start --http-listen 127.0.0.1:0 --origin dns.iroh.link --origin other.example. --rate-limit disabled \
  --ns ns1.dns.iroh.link --db "$dir/db.sqlite" --metrics-listen 127.0.0.1:0 ||
  { echo "FAIL: the server did not start: $(cat "$dir/s.out" "$dir/s.err")"; exit 1; }
mport=$(sed -n 's#^metrics listening on http://127\.0\.0\.1:\([0-9]*\)/metrics$#\1#p' "$dir/s.out")

# ---- pkarr PUT / GET
[ "$(code "$http/pkarr/$z1")" = 404 ] && ok || bad "GET of an unknown key: not 404"
[ "$(code "$http/pkarr/nonsense")" = 400 ] && ok || bad "GET of a bad key: not 400"
[ "$(put "$dir/a1" $z1)" = 204 ] && ok || bad "first valid PUT: not 204 ($(cat "$dir/body"))"
[ "$(code -D "$dir/head" "$http/pkarr/$z1")" = 200 ] && cmp -s "$dir/body" "$dir/a1" && ok ||
  bad "GET does not give the stored payload"
grep -qi '^content-type: application/x-pkarr-signed-packet' "$dir/head" && ok || bad "GET content type: $(cat "$dir/head")"
# a newer packet replaces, an older one does not (204 either way, as iroh)
[ "$(put "$dir/a2" $z1)" = 204 ] && ok || bad "newer PUT: not 204"
[ "$(put "$dir/a0" $z1)" = 204 ] && ok || bad "older PUT: not 204"
code "$http/pkarr/$z1" > /dev/null; cmp -s "$dir/body" "$dir/a2" && ok || bad "an older packet replaced the newer one"
# refused: bad signature, key not matching the path, bad key, junk, too short, stale
cp "$dir/a2" "$dir/badsig"; printf '\x01' | dd of="$dir/badsig" bs=1 seek=3 conv=notrunc 2> /dev/null
"$pt" payload $sk1 $((t + 5000)) --relay https://relay-evil.example./ > "$dir/a3"
cp "$dir/a3" "$dir/badsig2"; printf 'X' | dd of="$dir/badsig2" bs=1 seek=100 conv=notrunc 2> /dev/null
[ "$(put "$dir/badsig" $z1)" = 400 ] && ok || bad "bad signature: not 400"
[ "$(put "$dir/badsig2" $z1)" = 400 ] && ok || bad "changed DNS bytes: not 400"
grep -q '"status":"400"' "$dir/body" && ok || bad "error body: $(cat "$dir/body")"
[ "$(put "$dir/b1" $z1)" = 400 ] && ok || bad "key not matching the path: not 400"
[ "$(put "$dir/a3" $z2)" = 400 ] && ok || bad "key not matching the path (2): not 400"
[ "$(put "$dir/a3" not-a-key)" = 400 ] && ok || bad "bad key: not 400"
head -c 50 "$dir/a3" > "$dir/short"
[ "$(put "$dir/short" $z1)" = 400 ] && ok || bad "short payload: not 400"
# a valid signature over bytes that are no DNS message
"$pt" rawdns $sk1 $((t + 6000)) 00112233445566 > "$dir/notdns"
[ "$(put "$dir/notdns" $z1)" = 400 ] && ok || bad "signed non-DNS payload: not 400"
"$pt" payload $sk1 $((t - 8 * 86400 * 1000000)) --relay https://relay-stale.example./ > "$dir/stale"
"$pt" payload $sk2 $((t - 8 * 86400 * 1000000)) --relay https://relay-stale.example./ > "$dir/stale2"
[ "$(put "$dir/stale2" $z2)" = 400 ] && ok || bad "a timestamp beyond the 7-day expiry: not 400"
[ "$(code "$http/pkarr/$z2")" = 404 ] && ok || bad "the stale packet was stored"
head -c 1300 /dev/urandom > "$dir/big"
[ "$(put "$dir/big" $z1)" = 400 ] && ok || bad "a 1300-byte payload: not 400"
head -c 70000 /dev/zero > "$dir/huge"
[ "$(put "$dir/huge" $z1)" = 413 ] && ok || bad "a 70000-byte body: not 413"
code "$http/pkarr/$z1" > /dev/null; cmp -s "$dir/body" "$dir/a2" && ok || bad "a refused PUT changed the stored packet"
[ "$(code -X DELETE "$http/pkarr/$z1")" = 405 ] && ok || bad "DELETE: not 405"
[ "$(code "$http/healthz")" = 200 ] && ok || bad "/healthz: not 200"
[ "$(code "$http/nothing")" = 404 ] && ok || bad "unknown path: not 404"

# ---- DNS over UDP and TCP
a=$("$dq" "$dns" _iroh.$z1.dns.iroh.link TXT)
grep -q '^rcode=NOERROR tc=0 aa=1 .* an=1 ' <<< "$a" && ok || bad "UDP answer: $a"
grep -qF "_iroh.$z1.dns.iroh.link.	30	IN	TXT	\"relay=https://relay-b.example./\"" <<< "$a" && ok ||
  bad "UDP answer record: $a"
a=$("$dq" --tcp "$dns" _IROH.$z1.Dns.Iroh.Link TXT)
grep -qF "\"relay=https://relay-b.example./\"" <<< "$a" && grep -q '^rcode=NOERROR' <<< "$a" && ok || bad "TCP answer (mixed case): $a"
a=$("$dq" "$dns" _iroh.$z1.other.example TXT)
grep -qF "_iroh.$z1.other.example.	30	IN	TXT" <<< "$a" && ok || bad "second origin: $a"
a=$("$dq" "$dns" _iroh.$z2.dns.iroh.link TXT)
grep -q '^rcode=NXDOMAIN .* an=0 ns=1 ' <<< "$a" && grep -q 'IN	SOA' <<< "$a" && ok || bad "unknown key: $a"
a=$("$dq" "$dns" _iroh.notakey.dns.iroh.link TXT)
grep -q '^rcode=NXDOMAIN' <<< "$a" && ok || bad "a label that is no key: $a"
a=$("$dq" "$dns" _iroh.$z1.dns.iroh.link A)
grep -q '^rcode=NOERROR .* an=0 ns=1 ' <<< "$a" && ok || bad "existing name, other type (NODATA): $a"
a=$("$dq" "$dns" other.$z1.dns.iroh.link TXT)
grep -q '^rcode=NXDOMAIN' <<< "$a" && ok || bad "a name the packet lacks: $a"
a=$("$dq" "$dns" dns.iroh.link SOA)
grep -q '^rcode=NOERROR .* an=1 ' <<< "$a" && grep -q 'IN	SOA	irohdns.example. hostmaster.irohdns.example. 0 10800 3600 604800 3600' <<< "$a" && ok ||
  bad "SOA: $a"
a=$("$dq" "$dns" dns.iroh.link NS)
grep -q 'IN	NS	ns1.dns.iroh.link.' <<< "$a" && ok || bad "NS: $a"
a=$("$dq" "$dns" www.example.com A)
grep -q '^rcode=REFUSED' <<< "$a" && ok || bad "outside the zone: $a"
a=$("$dq" --tcp "$dns" dns.iroh.link AXFR)
grep -q '^rcode=REFUSED' <<< "$a" && ok || bad "AXFR: $a"
a=$("$dq" --raw abcd01000001000000000000ff "$dns")
grep -q '^rcode=FORMERR .* id=43981 ' <<< "$a" && ok || bad "junk query: $a"
"$dq" --raw abcd0100 "$dns" > /dev/null; [ $? = 3 ] && ok || bad "a 4-byte message got an answer"
a=$("$dq" --raw abcd81800001000000000000 "$dns"); [ $? = 3 ] && ok || bad "a response got an answer: $a"
# truncation: a record over 512 bytes
addrs=(); for i in $(seq 1 14); do addrs+=(--addr "[2001:db8::$i]:$((40000 + i))"); done
"$pt" payload $sk2 $t --relay https://relay-2.example./ "${addrs[@]}" > "$dir/b2"
[ "$(put "$dir/b2" $z2)" = 204 ] && ok || bad "PUT of a big record: not 204"
a=$("$dq" "$dns" _iroh.$z2.dns.iroh.link TXT)
grep -q '^rcode=NOERROR tc=1 .* an=0 ' <<< "$a" && ok || bad "UDP without EDNS, over 512 bytes: not truncated: $a"
a=$("$dq" --edns 1232 "$dns" _iroh.$z2.dns.iroh.link TXT)
grep -q '^rcode=NOERROR tc=0 .* an=15 ' <<< "$a" && ok || bad "UDP with EDNS 1232: $a"
a=$("$dq" --tcp "$dns" _iroh.$z2.dns.iroh.link TXT)
grep -q '^rcode=NOERROR tc=0 .* an=15 ' <<< "$a" && ok || bad "TCP, over 512 bytes: $a"

# ---- DoH (RFC 8484)
q=$("$dq" --hex _iroh.$z1.dns.iroh.link TXT)
q64=$(xxd -r -p <<< "$q" | base64 -w0 | tr '+/' '-_' | tr -d '=')
[ "$(code -D "$dir/head" -H 'accept: application/dns-message' "$http/dns-query?dns=$q64")" = 200 ] && ok || bad "DoH GET: not 200"
a=$("$dq" --parse "$dir/body")
grep -qF '"relay=https://relay-b.example./"' <<< "$a" && ok || bad "DoH GET answer: $a"
grep -qi '^cache-control: s-maxage=30' "$dir/head" && ok || bad "DoH cache-control: $(cat "$dir/head")"
xxd -r -p <<< "$q" > "$dir/q.bin"
[ "$(code -X POST -H 'content-type: application/dns-message' --data-binary @"$dir/q.bin" "$http/dns-query")" = 200 ] && ok ||
  bad "DoH POST: not 200"
grep -qF '"relay=https://relay-b.example./"' <<< "$("$dq" --parse "$dir/body")" && ok || bad "DoH POST answer"
[ "$(code -X POST -H 'content-type: text/plain' --data-binary @"$dir/q.bin" "$http/dns-query")" = 415 ] && ok ||
  bad "DoH POST of another type: not 415"
[ "$(code "$http/dns-query?dns=%%%")" = 400 ] && ok || bad "DoH GET with bad base64url: not 400"
[ "$(code -H 'accept: text/html' "$http/dns-query?dns=$q64")" = 406 ] && ok || bad "DoH GET accepting html: not 406"

# ---- junk on the sockets; the server still answers
head -c 3000 /dev/urandom > "$dir/junk"
curl -s --max-time 5 -o /dev/null "telnet://$dns" < "$dir/junk" 2> /dev/null
printf 'GARBAGE\r\n\r\n' | curl -s --max-time 5 -o /dev/null "telnet://${http#http://}" 2> /dev/null
a=$("$dq" "$dns" _iroh.$z1.dns.iroh.link TXT)
grep -q '^rcode=NOERROR .* an=1 ' <<< "$a" && ok || bad "after junk: $a"
# an oversized junk datagram and TCP message: FORMERR, not a crash
big=abcd01000001000000000000$(head -c 3000 /dev/zero | xxd -p | tr -d '\n' | tr 0 f)
a=$("$dq" --raw "$big" "$dns"); grep -q '^rcode=FORMERR' <<< "$a" && ok || bad "3 KB junk over UDP: $a"
a=$("$dq" --tcp --raw "$big" "$dns"); grep -q '^rcode=FORMERR' <<< "$a" && ok || bad "3 KB junk over TCP: $a"
# clients that stop halfway (an HTTP body, a DNS message over TCP) hold nobody else up
hp=${http#http://}
exec 3<> "/dev/tcp/${hp%:*}/${hp##*:}"
printf 'PUT /pkarr/%s HTTP/1.1\r\nContent-Length: 196\r\n\r\nabc' $z1 >&3
exec 4<> "/dev/tcp/${dns%:*}/${dns##*:}"
printf '\x00\x40\xab' >&4
a=$("$dq" --tcp "$dns" _iroh.$z1.dns.iroh.link TXT)
grep -q '^rcode=NOERROR .* an=1 ' <<< "$a" && [ "$(code "$http/pkarr/$z1")" = 200 ] && ok || bad "a stalled client held others up: $a"
exec 3>&- 4>&-
# a client that pipelines 20,000 queries over TCP and reads no answer: others are served,
# the server does not buffer without bound (it stops reading that client)
q=$("$dq" --hex _iroh.$z1.dns.iroh.link TXT)
python3 - "${dns%:*}" "${dns##*:}" "$q" > "$dir/flood.out" 2>&1 <<'PY' &
import socket, struct, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.setblocking(False)
m = bytes.fromhex(sys.argv[3]); one = struct.pack(">H", len(m)) + m
data = one * 20000; sent = 0; t = time.time() + 5
while sent < len(data) and time.time() < t:
    try: sent += s.send(data[sent:])
    except BlockingIOError: time.sleep(0.01)
print("sent", sent // len(one)); sys.stdout.flush()
time.sleep(3)
PY
fpid=$!; pids+=($fpid)
sleep 1
a=$("$dq" "$dns" _iroh.$z1.dns.iroh.link TXT)
grep -q '^rcode=NOERROR .* an=1 ' <<< "$a" && ok || bad "a TCP flood held UDP up: $a"
a=$("$dq" --tcp "$dns" _iroh.$z1.dns.iroh.link TXT)
grep -q '^rcode=NOERROR .* an=1 ' <<< "$a" && ok || bad "a TCP flood held TCP up: $a"
wait_exit $fpid 15
rss=$(awk '/VmRSS/ {print $2}' /proc/$spid/status)
[ "$rss" -lt 200000 ] && ok || bad "server RSS after the flood: $rss kB"

# ---- metrics
m=$(curl -s --max-time 10 "http://127.0.0.1:$mport/metrics")
for n in dns_server_dns_requests_total dns_server_dns_requests_udp_total dns_server_dns_requests_https_total \
    dns_server_pkarr_publish_update_total dns_server_pkarr_publish_noop_total dns_server_dns_lookup_success_total \
    dns_server_dns_lookup_notfound_total irohc_dns_truncated_total; do
  v=$(sed -n "s/^$n \\([0-9]*\\)\$/\\1/p" <<< "$m")
  [ -n "$v" ] && [ "$v" -gt 0 ] && ok || bad "metric $n: '$v'"
done
[ "$(tail -1 <<< "$m")" = "# EOF" ] && ok || bad "metrics: no # EOF"

# ---- restart on the SQLite file: the records are still there
stop
[ "$st" = 143 ] && ok || bad "SIGTERM exit: $st"
start --http-listen 127.0.0.1:0 --origin dns.iroh.link --db "$dir/db.sqlite" ||
  { echo "FAIL: no restart: $(cat "$dir/s.err")"; exit 1; }
code "$http/pkarr/$z1" > /dev/null; cmp -s "$dir/body" "$dir/a2" && ok || bad "after a restart: GET differs"
a=$("$dq" "$dns" _iroh.$z1.dns.iroh.link TXT)
grep -qF '"relay=https://relay-b.example./"' <<< "$a" && ok || bad "after a restart: DNS $a"
[ "$(put "$dir/a0" $z1)" = 204 ] && code "$http/pkarr/$z1" > /dev/null && cmp -s "$dir/body" "$dir/a2" && ok ||
  bad "after a restart an older packet replaced the stored one"
command -v sqlite3 > /dev/null && { [ "$(sqlite3 "$dir/db.sqlite" 'select count(*) from signed_packets')" = 2 ] && ok || bad "rows in the file"; }

# ---- the PUT rate limit (iroh's: burst 2, a token every 4 s), others still served; the
# PUT just above took the first token of the burst
codes=""; for i in 1 2 3; do codes+="$(put "$dir/a2" $z1) "; done
[ "$codes" = "204 429 429 " ] && grep -q '"status":"429"' "$dir/body" && ok || bad "rate limit: $codes"
a=$("$dq" "$dns" _iroh.$z1.dns.iroh.link TXT)
grep -q '^rcode=NOERROR .* an=1 ' <<< "$a" && [ "$(code "$http/pkarr/$z1")" = 200 ] && ok || bad "limited PUTs stopped other answers"
stop
# smart mode: the X-Forwarded-For client is limited, another one is not
start --http-listen 127.0.0.1:0 --rate-limit smart || { echo "FAIL: no start"; exit 1; }
codes=""; for i in 1 2 3; do codes+="$(put "$dir/a2" $z1 -H 'x-forwarded-for: 198.51.100.7') "; done
codes+="$(put "$dir/a2" $z1 -H 'x-forwarded-for: 198.51.100.8')"
[ "$codes" = "204 204 429 204" ] && ok || bad "smart rate limit: $codes"
stop

# ---- --config: iroh-dns-server's keys
cat > "$dir/c.toml" <<'TOML'
[http]
port = 0
bind_addr = "127.0.0.1"
rate_limit = "disabled"

[dns]
port = 0
bind_addr = "127.0.0.1"
default_soa = "ns.cfg.example hostmaster.cfg.example 7 10800 3600 604800 60"
default_ttl = 900
origins = ["cfg.example."]
rr_ns = "ns1.cfg.example."
rr_a = "192.0.2.53"

[mainline]
enabled = false
TOML
: > "$dir/s.out"
"$bin" dns-server --config "$dir/c.toml" > "$dir/s.out" 2> "$dir/s.err" &
spid=$!; pids+=($spid)
for _ in $(seq 200); do grep -q '^pkarr relay' "$dir/s.out" && break; sleep 0.05; done
dns=$(sed -n 's/^dns-server listening on udp+tcp //p' "$dir/s.out")
http=$(sed -n 's#^pkarr relay listening on \(http://.*\)/pkarr$#\1#p' "$dir/s.out")
[ -n "$dns" ] && [ -n "$http" ] && ok || bad "--config: $(cat "$dir/s.out" "$dir/s.err")"
a=$("$dq" "$dns" cfg.example SOA)
grep -q 'IN	SOA	ns.cfg.example. hostmaster.cfg.example. 7 ' <<< "$a" && ok || bad "config SOA: $a"
a=$("$dq" "$dns" cfg.example A)
grep -q 'IN	A	192.0.2.53' <<< "$a" && ok || bad "config rr_a: $a"
a=$("$dq" "$dns" _iroh.$z1.cfg.example TXT)
# the negative answer's SOA has TTL min(SOA TTL, MINIMUM) = 60 (RFC 2308)
grep -q '^rcode=NXDOMAIN' <<< "$a" && grep -q '^cfg.example.	60	IN	SOA' <<< "$a" && ok || bad "config origin: $a"
stop
printf '[dns]\nport = 5300\nbogus = 1\n' > "$dir/bad.toml"
"$bin" dns-server --config "$dir/bad.toml" > /dev/null 2> "$dir/err"; st=$?
[ $st = 2 ] && grep -q "line 3: unknown key 'dns.bogus'" "$dir/err" && ok || bad "bad config: $st $(cat "$dir/err")"
"$bin" dns-server --config "$dir/none.toml" > /dev/null 2> "$dir/err"; st=$?
[ $st = 2 ] && grep -q "config file '$dir/none.toml' does not exist" "$dir/err" && ok || bad "missing config: $st $(cat "$dir/err")"
printf '[https]\nport = 8443\n[http]\nport = 0\nbind_addr = "127.0.0.1"\n[dns]\nport = 0\nbind_addr = "127.0.0.1"\n' > "$dir/https.toml"
"$bin" dns-server --config "$dir/https.toml" > "$dir/out" 2> "$dir/err" &
spid=$!; pids+=($spid)
for _ in $(seq 200); do grep -q '^pkarr relay' "$dir/out" && break; sleep 0.05; done
grep -q "https.toml: line 2: 'https.port' ignored (no HTTPS here" "$dir/err" && ok || bad "[https] note: $(cat "$dir/err")"
stop
"$bin" dns-server --rate-limit sometimes > /dev/null 2> "$dir/err"; st=$?
[ $st = 2 ] && ok || bad "bad --rate-limit: $st"
"$bin" dns-server --dns-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --origin 'bad..origin' > /dev/null 2> "$dir/err"; st=$?
[ $st = 2 ] && ok || bad "bad origin: $st $(cat "$dir/err")"
"$bin" dns-server --dns-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --db /nonexistent/dir/x.db > /dev/null 2> "$dir/err"; st=$?
[ $st = 1 ] && grep -q 'cannot open database' "$dir/err" && ok || bad "unopenable --db: $st $(cat "$dir/err")"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
