#!/usr/bin/env bash
# The iroh-c command's contract: outputs, files, exit statuses and messages.
set -u
bin=${IROH_C:?IROH_C not set}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

# expect STATUS STDOUT-REGEX STDERR-REGEX -- command...
expect() {
  local want_status=$1 want_out=$2 want_err=$3; shift 4
  local out err status
  out=$("$bin" "$@" 2>"$dir/err"); status=$?
  err=$(cat "$dir/err")
  if [ "$status" != "$want_status" ]; then bad "iroh-c $*: status $status, want $want_status ($err)"; return; fi
  if ! [[ "$out" =~ $want_out ]]; then bad "iroh-c $*: stdout '$out' !~ '$want_out'"; return; fi
  if ! [[ "$err" =~ $want_err ]]; then bad "iroh-c $*: stderr '$err' !~ '$want_err'"; return; fi
  ok
}

SK=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
ID=03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8
T5=endpointaab2cb576phbbpq5odorrz2lycmwpzgwgcn2kdk7dxoimzaskuy3qbaaenuhi5dqom5c6l3fovrtcljrfzzgk3dbpexg4mbonfzg62bonruw42zof4aqacqaaaaqcaiabiaaaax774bqcaiaaaaaaaaaaaaaaaaaaaaaaaaba4

# keygen
expect 0 '^[0-9a-f]{64}$' '^$' -- keygen
k1=$("$bin" keygen); k2=$("$bin" keygen)
[ "$k1" != "$k2" ] && ok || bad "two keygens gave the same key"
expect 0 '^$' '^$' -- keygen --output "$dir/k"
mode=$(stat -c %a "$dir/k"); [ "$mode" = 600 ] && ok || bad "key file mode $mode"
grep -qE '^[0-9a-f]{64}$' "$dir/k" && ok || bad "key file content"
before=$(cat "$dir/k")
expect 2 '^$' '^iroh-c: keygen: cannot create .*File exists$' -- keygen --output "$dir/k"
[ "$(cat "$dir/k")" = "$before" ] && ok || bad "keygen overwrote a file"
expect 2 '^$' '^iroh-c: ' -- keygen --bogus

# id
expect 0 "^$ID\$" '^$' -- id $SK
expect 0 "^$ID\$" '^$' -- id aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dypq
printf '%s\n' $SK > "$dir/sk"
chmod 600 "$dir/sk"
expect 0 "^$ID\$" '^$' -- id --secret-file "$dir/sk"
expect 0 "^$("$bin" id "$(cat "$dir/k")")\$" '^$' -- id --secret-file "$dir/k"
expect 2 '^$' '^iroh-c: secret key: invalid key: failed to decode hex string$' -- id "${SK^^}"
expect 2 '^$' '^iroh-c: secret key: invalid key: invalid length$' -- id abc
expect 2 '^$' '^iroh-c: cannot open ' -- id --secret-file "$dir/missing"
printf 'not a key\n' > "$dir/junk"
chmod 600 "$dir/junk"
expect 2 '^$' '^iroh-c: .*junk: invalid key' -- id --secret-file "$dir/junk"
expect 2 '^$' '^iroh-c: ' -- id
expect 2 '^$' '^iroh-c: ' -- id $SK extra

# ticket encode / decode
expect 0 "^$T5\$" '^$' -- ticket encode $ID --relay https://euc1-1.relay.n0.iroh.link./ --addr '[::1]:7' --addr 10.0.0.2:65535 --addr 10.0.0.1:1
expect 0 '^\{"id":"'$ID'","relay":"https://euc1-1.relay.n0.iroh.link./","addrs":\["10.0.0.1:1","10.0.0.2:65535","\[::1\]:7"\]\}$' '^$' -- ticket decode $T5
expect 0 '^\{"id":"'$ID'","relay":null,"addrs":\[\]\}$' '^$' -- ticket decode endpointaab2cb576phbbpq5odorrz2lycmwpzgwgcn2kdk7dxoimzaskuy3qaa
expect 0 '"relay":"https://example.com/"' '^$' -- ticket decode "$("$bin" ticket encode $ID --relay HTTPS://Example.COM:443)"
expect 2 '^$' '^iroh-c: endpoint id: invalid key' -- ticket encode 0200000000000000000000000000000000000000000000000000000000000000
expect 2 '^$' "^iroh-c: address '1.2.3.4': " -- ticket encode $ID --addr 1.2.3.4
expect 2 '^$' '^iroh-c: relay url: invalid address: ' -- ticket encode $ID --relay abc
expect 2 '^$' '^iroh-c: ' -- ticket encode $ID --relay
expect 2 '^$' '^iroh-c: ' -- ticket encode
expect 2 '^$' '^iroh-c: ticket: invalid ticket: wrong prefix, expected endpoint$' -- ticket decode ENDPOINTaab2cb576phbbpq5odorrz2lycmwpzgwgcn2kdk7dxoimzaskuy3qaa
expect 2 '^$' '^iroh-c: ticket: invalid ticket: invalid base32: invalid symbol at ' -- ticket decode "${T5%?}="
expect 2 '^$' '^iroh-c: ticket: invalid ticket: ' -- ticket decode "${T5:0:60}"
expect 2 '^$' '^iroh-c: ' -- ticket decode
expect 2 '^$' '^iroh-c: ' -- ticket frobnicate

# generic
expect 2 '^$' '^iroh-c: missing command' --
expect 2 '^$' "^iroh-c: unknown command 'nope'" -- nope
expect 0 'keygen' '^$' -- help
expect 0 '^iroh-c [0-9]+\.[0-9]+\.[0-9]+$' '^$' -- version

# --help and -h: every command's usage on stdout, status 0
for cmd in keygen id ticket listen connect resolve relay version; do
  for h in --help -h; do
    expect 0 "^usage: iroh-c $cmd" '^$' -- $cmd $h
  done
  expect 0 "^usage: iroh-c $cmd" '^$' -- help $cmd
done
expect 0 '^usage: iroh-c ticket encode' '^$' -- ticket encode --help
expect 0 '^usage: iroh-c ticket' '^$' -- ticket decode -h
expect 0 '^usage: iroh-c listen' '^$' -- listen --alpn x --help
expect 0 '^usage: iroh-c <command>' '^$' -- --help
expect 2 '^$' "^iroh-c: help: unknown command 'nope'" -- help nope
# the environment and exit statuses are documented
for cmd in "--help" "listen --help" "connect --help"; do
  out=$("$bin" $cmd)
  [[ "$out" == *IROH_LOG* && "$out" == *IROH_SECRET* ]] && ok || bad "iroh-c $cmd does not document IROH_LOG and IROH_SECRET"
done
out=$("$bin" --help)
[[ "$out" == *130*143* ]] && ok || bad "iroh-c --help does not document the exit statuses"

# bad flags and values: status 2 and exactly one line on stderr saying what is wrong
one_line() { # WANT-REGEX -- command...: status 2, nothing on stdout, one matching line on stderr
  local want=$1; shift 2
  local out status lines
  out=$(timeout -k 5 10 "$bin" "$@" 2> "$dir/err" < /dev/null); status=$?
  lines=$(wc -l < "$dir/err")
  if [ $status != 2 ] || [ -n "$out" ] || [ "$lines" != 1 ] || ! grep -Eq -- "$want" "$dir/err"; then
    bad "iroh-c $*: status $status, $lines lines on stderr, want 2 and one line ~ '$want': $(cat "$dir/err")"
  else
    ok
  fi
}
one_line "unexpected argument '--bogus'" -- keygen --bogus
one_line "--output needs a value" -- keygen --output
one_line "unexpected argument '--bogus'" -- id --bogus
one_line "--secret-file needs a value" -- id --secret-file
one_line "unexpected argument 'extra'" -- id --secret-file "$dir/sk" extra
one_line "unexpected argument '--bogus'" -- ticket encode $ID --bogus
one_line "--relay needs a value" -- ticket encode $ID --relay
one_line "unexpected argument 'b'" -- ticket decode a b
one_line "unknown subcommand 'bogus'" -- ticket bogus
one_line "unexpected argument 'x'" -- version x
one_line "unexpected argument '--bogus'" -- listen --bogus
one_line "--recv-only and --stats are for the pipe" -- listen --echo --recv-only
one_line "--recv-only and --stats are for the pipe" -- listen --alpn x --echo --stats
one_line "--alpn needs a value" -- listen --alpn
one_line "'nonsense' is not an IP:PORT" -- listen --alpn x --bind nonsense
one_line "--relay-quic-port takes a port" -- listen --alpn x --relay-quic-port 70000
one_line "--relay and --no-relay" -- listen --alpn x --relay http://127.0.0.1:1 --no-relay
one_line "'x' is not a relay URL" -- listen --alpn x --relay x
one_line "unexpected argument '--bogus'" -- connect $T5 --alpn x --bogus
one_line "a TICKET or an EndpointId is needed" -- connect --alpn x
one_line "--recv-only and --streams exclude each other" -- connect $T5 --recv-only --streams 2
one_line "--timeout takes" -- connect $T5 --alpn x --timeout 5x
one_line "--timeout takes" -- connect $T5 --alpn x --timeout 0
one_line "--streams takes" -- connect $T5 --alpn x --streams 2x
one_line "invalid ticket" -- connect nonsense --alpn x
one_line "unexpected argument '--bogus'" -- relay --bogus
one_line "--listen needs a value" -- relay --listen
one_line "invalid listen address 'nonsense'" -- relay --listen nonsense
one_line "invalid number of seconds" -- relay --ping-interval 0
one_line "TLS certificate $dir/missing.pem: No such file" -- relay --listen 127.0.0.1:0 --tls-cert "$dir/missing.pem" --tls-key "$dir/missing.key"
# a missing --relay-ca file is an error at the start, not a relay timeout later
one_line "--relay-ca $dir/missing.pem: No such file or directory" -- listen --alpn x --bind 127.0.0.1:0 --relay https://127.0.0.1:1 --relay-ca "$dir/missing.pem"
one_line "--relay-ca $dir/missing.pem: No such file or directory" -- connect $T5 --alpn x --relay https://127.0.0.1:1 --relay-ca "$dir/missing.pem"
one_line "--relay-ca $dir: Is a directory" -- connect $T5 --alpn x --relay https://127.0.0.1:1 --relay-ca "$dir"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
