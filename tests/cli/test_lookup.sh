#!/usr/bin/env bash
# The command line of address lookup (issue 13), against a local `iroh-c dns-server` and a
# local relay on loopback:
#   - usage: resolve and connect refuse a malformed id or option with status 2 and one line;
#   - a listener with --pkarr-relay publishes within 15 s; its record names its home relay
#     (resolve prints {"id":HEX,"relay":URL,"addrs":[]} like ticket decode), through the
#     pkarr relay and through DNS (--dns-server, --dns-origin) alike; with --publish-addrs
#     its direct addresses too; with --no-lookup nothing;
#   - connect ID (hex and base32) reaches the listener through either lookup; connect ID
#     --no-relay dials the direct addresses found;
#   - an unknown id: resolve exits 1 with one line and nothing on stdout, connect exits 1
#     saying the lookup found nothing.
source "$(dirname "$0")/common.bash"
source "$(dirname "$0")/lookup.bash"

# one_line STATUS PATTERN -- ARGS...: iroh-c ARGS exits with STATUS and says PATTERN in
# exactly one line on stderr, nothing on stdout
one_line() {
  local want=$1 pat=$2
  shift 3
  "$bin" "$@" > "$dir/o.out" 2> "$dir/o.err" < /dev/null
  local st=$?
  if [ $st = "$want" ] && [ ! -s "$dir/o.out" ] && [ "$(wc -l < "$dir/o.err")" = 1 ] &&
     grep -q -- "$pat" "$dir/o.err"; then ok; else
    bad "iroh-c $*: status $st (want $want), stderr: $(cat "$dir/o.err"), stdout: $(head -c 200 "$dir/o.out")"
  fi
}

ID=3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29
# ---- usage -------------------------------------------------------------------------------
one_line 2 "an EndpointId is needed" -- resolve
one_line 2 "endpoint id" -- resolve nonsense
one_line 2 "endpoint id" -- resolve 0200000000000000000000000000000000000000000000000000000000000000
one_line 2 "endpoint id" -- connect 0200000000000000000000000000000000000000000000000000000000000000 --alpn x
one_line 2 "unexpected argument" -- resolve $ID $ID
one_line 2 "publishes nothing" -- resolve $ID --publish-addrs
one_line 2 "nothing to ask" -- resolve $ID --no-lookup
one_line 2 "--no-lookup excludes" -- connect $ID --alpn x --no-lookup --pkarr-relay http://127.0.0.1:1/pkarr
one_line 2 "--no-lookup excludes" -- listen --alpn x --no-lookup --mdns
one_line 2 "--dns-server: 'nonsense' is not an IP:PORT" -- resolve $ID --dns-server nonsense
one_line 2 "--dns-server: '127.0.0.1:0' is not an IP:PORT" -- connect $ID --alpn x --dns-server 127.0.0.1:0
one_line 2 "--pkarr-relay: 'not a url' is not" -- resolve $ID --pkarr-relay "not a url"
one_line 2 "--pkarr-relay needs a value" -- connect $ID --alpn x --pkarr-relay
one_line 2 "--dns-origin needs a value" -- listen --alpn x --dns-origin
"$bin" resolve --help | grep -q -- "--pkarr-relay URL" && ok || bad "resolve --help names --pkarr-relay"
"$bin" connect --help | grep -q -- "connect ID \[--alpn ALPN\]" && ok || bad "connect --help names the bare id form"
"$bin" --help | grep -q "^  resolve " && ok || bad "iroh-c --help lists resolve"
# an id and no lookup: nothing to dial, said at once
t0=$(ms)
one_line 1 "" -- connect $ID --alpn x --no-lookup --no-relay --timeout 20
[ $(( $(ms) - t0 )) -lt 10000 ] && ok || bad "connect ID --no-lookup took $(( $(ms) - t0 )) ms"

# ---- a server, a relay, listeners ---------------------------------------------------------
ORIGIN=lookup.test
start_dns_server $ORIGIN || { echo "FAIL: no dns-server"; exit 1; }
start_relay || { echo "FAIL: no relay"; exit 1; }
DNS=(--dns-server "$dns_addr" --dns-origin $ORIGIN)

# relay only (iroh's default): published within 15 s of start
t0=$(ms)
start_listener a lookup/a --relay "$relay_url" --bind 127.0.0.1:0 --pkarr-relay "$pkarr_url" || exit 1
if wait_resolved 15 "\"relay\":\"$relay_url/\"" $l_id --pkarr-relay "$pkarr_url"; then
  ok; echo "published and resolved $(( $(ms) - t0 )) ms after the listener started"
else
  bad "listen --pkarr-relay: not resolvable through the pkarr relay within 15 s: $r_json $(cat "$dir/resolve.err") $(cat "$dir/a.err")"
fi
[ "$r_json" = "{\"id\":\"$l_id\",\"relay\":\"$relay_url/\",\"addrs\":[]}" ] && ok ||
  bad "resolve --pkarr-relay prints the ticket decode form with the relay only: $r_json"
r2=$("$bin" resolve $l_id "${DNS[@]}" 2> "$dir/r2.err"); st=$?
[ $st = 0 ] && [ "$r2" = "$r_json" ] && ok || bad "resolve through DNS: status $st '$r2' (want '$r_json'): $(cat "$dir/r2.err")"
a_id=$l_id a_pid=$l_pid

# --verbose says what the lookup found
echo verbose | "$bin" connect $a_id --alpn lookup/a --pkarr-relay "$pkarr_url" --verbose --timeout 20 > /dev/null 2> "$dir/v.err"
grep -q "^iroh-c: lookup: pkarr found ${a_id:0:10}: relay $relay_url/ ([0-9]* ms)$" "$dir/v.err" && ok ||
  bad "connect ID --verbose names what the pkarr lookup found: $(cat "$dir/v.err")"

for how in pkarr dns; do
  if [ $how = pkarr ]; then args=(--pkarr-relay "$pkarr_url"); target=$a_id; else
    args=("${DNS[@]}")
    # the base32 form of the same id
    target=$(printf '%b' "$(sed 's/../\\x&/g' <<< "$a_id")" | base32 -w0 | tr -d '=')
  fi
  out=$(printf 'by id %s\n' $how | "$bin" connect "$target" --alpn lookup/a "${args[@]}" --timeout 20 2> "$dir/c.err"); st=$?
  [ $st = 0 ] && [ "$out" = "by id $how" ] && ok || bad "connect ID through $how: status $st '$out': $(cat "$dir/c.err")"
done

# --publish-addrs: the direct addresses as well; connect --no-relay dials them
start_listener b lookup/b --relay "$relay_url" --bind 127.0.0.1:0 --pkarr-relay "$pkarr_url" --publish-addrs || exit 1
addr=$(sed -n 's/.*"addrs":\["\([^"]*\)".*/\1/p' <<< "$l_json")
# (its first record may come before the relay is connected: addresses only; then one
# with both)
want="{\"id\":\"$l_id\",\"relay\":\"$relay_url/\",\"addrs\":[\"$addr\"]}"
if wait_resolved 15 "$want" $l_id "${DNS[@]}"; then ok; else
  bad "listen --publish-addrs: not resolvable through DNS as $want within 15 s: $r_json $(cat "$dir/resolve.err")"
fi
out=$(echo direct | "$bin" connect $l_id --alpn lookup/b --no-relay --bind 127.0.0.1:0 --pkarr-relay "$pkarr_url" \
  --stats --timeout 20 2> "$dir/c.err"); st=$?
[ $st = 0 ] && [ "$out" = direct ] && grep -q "path direct $addr" "$dir/c.err" && ok ||
  bad "connect ID --no-relay dials the published address $addr: status $st '$out': $(cat "$dir/c.err")"

# listen --verbose says when its record is published
start_listener v lookup/v --relay "$relay_url" --bind 127.0.0.1:0 --pkarr-relay "$pkarr_url" --verbose || exit 1
for _ in $(seq 150); do grep -q "published our record" "$dir/v.err" && break; sleep 0.1; done
grep -q "^iroh-c: published our record to the pkarr relay (HTTP 204)$" "$dir/v.err" && ok ||
  bad "listen --verbose says its record was published: $(cat "$dir/v.err")"

# --no-lookup: nothing is published
start_listener c lookup/c --relay "$relay_url" --bind 127.0.0.1:0 --no-lookup || exit 1
sleep 3
"$bin" resolve $l_id --pkarr-relay "$pkarr_url" --timeout 2 > "$dir/r.out" 2> /dev/null; st=$?
[ $st = 1 ] && [ ! -s "$dir/r.out" ] && ok || bad "listen --no-lookup published nothing: resolve says $st $(cat "$dir/r.out")"

# an id nobody published
NOBODY=$("$bin" id "$("$bin" keygen)")
one_line 1 "nothing found for $NOBODY" -- resolve $NOBODY --pkarr-relay "$pkarr_url" "${DNS[@]}" --timeout 5
t0=$(ms)
"$bin" connect $NOBODY --alpn x --pkarr-relay "$pkarr_url" "${DNS[@]}" --timeout 20 < /dev/null > "$dir/c.out" 2> "$dir/c.err"; st=$?
el=$(( $(ms) - t0 ))
[ $st = 1 ] && [ "$(wc -l < "$dir/c.err")" = 1 ] && grep -qi "lookup\|no address\|not found" "$dir/c.err" && ok ||
  bad "connect to an unknown id: status $st after $el ms: $(cat "$dir/c.err")"

# a DNS server that never answers (a QUIC endpoint's UDP port drops the queries): the
# connect timeout covers the lookup, said in one line
silent=$(sed -n 's/.*"addrs":\["\([^"]*\)".*/\1/p' <<< "$("$bin" ticket decode "$(head -1 "$dir/a.out")")")
t0=$(ms)
one_line 1 "timed out after 2 s looking up the EndpointId" -- connect $NOBODY --alpn x --dns-server "$silent" \
  --dns-origin $ORIGIN --timeout 2
el=$(( $(ms) - t0 ))
[ $el -lt 6000 ] && ok || bad "connect ID --timeout 2 with a silent DNS server took $el ms"

# signals end connect and resolve while they wait for lookups (the silent DNS server)
for cmd in connect resolve; do
  for sig in INT TERM; do
    args=($NOBODY --dns-server "$silent" --dns-origin $ORIGIN --timeout 20)
    [ $cmd = connect ] && args+=(--alpn x)
    "$bin" $cmd "${args[@]}" < /dev/null > "$dir/s.out" 2> "$dir/s.err" &
    p=$!
    sleep 0.7
    t0=$(ms)
    kill -$sig $p
    wait_exit $p 5
    el=$(( $(ms) - t0 ))
    want=$([ $sig = INT ] && echo 130 || echo 143)
    [ $st = $want ] && [ $el -lt 2000 ] && [ ! -s "$dir/s.out" ] && ok ||
      bad "$cmd during a lookup, SIG$sig: status $st after $el ms (want $want within 2 s): $(cat "$dir/s.err")"
  done
done

echo "$pass passed, $fail failed"
[ $fail = 0 ]
