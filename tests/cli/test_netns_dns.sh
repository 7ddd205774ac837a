#!/usr/bin/env bash
# iroh-c's own address lookup defaults, as iroh's n0 preset: DNS TXT _iroh.<z32>.dns.iroh.link
# through the system resolver (/etc/resolv.conf). In a network namespace whose
# /etc/netns/NAME/resolv.conf names our `iroh-c dns-server` (127.0.0.1:53, origin
# dns.iroh.link), a listener publishes to that server (--pkarr-relay) and `resolve ID` and
# `connect ID` with no lookup option at all (the environment's IROH_C_ADDRESS_LOOKUP=none
# removed) find it. n0's pkarr relay (https://dns.iroh.link/pkarr) is out of reach here:
# its name resolves through our server to nothing, which must not hold the DNS answer up.
# Needs root (network namespaces); skips otherwise.
source "$(dirname "$0")/common.bash"
source "$(dirname "$0")/lookup.bash"

if [ "$(id -u)" != 0 ] || ! command -v ip > /dev/null; then
  echo "SKIP: needs root and iproute2 for network namespaces"; exit 0
fi
ns=lkdns-$$-$RANDOM
if ! ip netns add "$ns" 2> /dev/null; then echo "SKIP: cannot create network namespaces here"; exit 0; fi
cleanup_extra() {
  ip netns pids "$ns" 2> /dev/null | xargs -r kill -9 2> /dev/null
  ip netns del "$ns" 2> /dev/null
  rm -rf "/etc/netns/$ns"
}
mkdir -p "/etc/netns/$ns"
echo "nameserver 127.0.0.1" > "/etc/netns/$ns/resolv.conf"
ip -n "$ns" link set lo up

# everything below runs inside the namespace: a wrapper around the binary
cat > "$dir/in-ns" << EOF
#!/bin/sh
exec ip netns exec $ns "$bin" "\$@"
EOF
chmod +x "$dir/in-ns"
bin=$dir/in-ns
ns_prefix=(ip netns exec "$ns")

start_dns_server dns.iroh.link 127.0.0.1:53 || { echo "FAIL: no dns-server on port 53 in the namespace"; exit 1; }
start_relay || { echo "FAIL: no relay"; exit 1; }
start_listener a lookup/ns --relay "$relay_url" --bind 127.0.0.1:0 --pkarr-relay "$pkarr_url" || exit 1

# resolve with the defaults only: through resolv.conf to our server
export -n IROH_C_ADDRESS_LOOKUP
unset IROH_C_ADDRESS_LOOKUP
if wait_resolved 15 "\"relay\":\"$relay_url/\"" $l_id; then
  ok; echo "resolved through /etc/resolv.conf in $r_ms ms after the first try"
else
  bad "resolve ID with the defaults (system resolver, dns.iroh.link): $r_json $(cat "$dir/resolve.err") / listener: $(cat "$dir/a.err")"
fi
[ "$r_json" = "{\"id\":\"$l_id\",\"relay\":\"$relay_url/\",\"addrs\":[]}" ] && ok || bad "resolve output: $r_json"

t0=$(ms)
out=$(echo "by id, system resolver" | "$bin" connect $l_id --alpn lookup/ns --timeout 20 2> "$dir/c.err"); st=$?
[ $st = 0 ] && [ "$out" = "by id, system resolver" ] && ok ||
  bad "connect ID with the defaults: status $st '$out': $(cat "$dir/c.err")"
echo "connect ID (default lookups, resolv.conf) and echo took $(( $(ms) - t0 )) ms"

# the same with lookups off: the id alone cannot be dialed
"$bin" connect $l_id --alpn lookup/ns --no-lookup --timeout 5 < /dev/null > /dev/null 2> "$dir/c.err"; st=$?
[ $st = 1 ] && ok || bad "connect ID --no-lookup in the namespace: status $st: $(cat "$dir/c.err")"

echo "$pass passed, $fail failed"
[ $fail = 0 ]
