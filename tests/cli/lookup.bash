# Shared by the address lookup tests (sourced after common.bash, not a test itself):
# a local `iroh-c dns-server`, a local relay, an echo listener with lookup options, and
# waiting until an id resolves. Everything started is killed on exit (common.bash).

# a command prefix for tools other than $bin (curl) when the test runs inside a
# namespace: (ip netns exec NAME)
ns_prefix=()

# start_dns_server ORIGIN [DNS_IP:PORT] [extra args...]: sets dns_port, http_port,
# pkarr_url, dns_addr; waits until /healthz answers 200
start_dns_server() {
  local origin=$1 fixed=${2:-} host=127.0.0.1 try
  shift; [ $# -gt 0 ] && shift
  for try in 1 2 3 4 5; do
    if [ -n "$fixed" ]; then
      host=${fixed%:*}; dns_port=${fixed##*:}
    else
      dns_port=$((20000 + RANDOM % 30000))
    fi
    http_port=$((20000 + RANDOM % 30000))
    "$bin" dns-server --dns-listen "$host:$dns_port" --http-listen "$host:$http_port" \
      --origin "$origin" --rate-limit disabled "$@" > "$dir/dns.out" 2> "$dir/dns.err" &
    dns_pid=$!
    for _ in $(seq 100); do
      kill -0 $dns_pid 2> /dev/null || break
      [ "$(${ns_prefix[@]+"${ns_prefix[@]}"} curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$host:$http_port/healthz")" = 200 ] && {
        pids+=($dns_pid)
        pkarr_url="http://$host:$http_port/pkarr"
        dns_addr="$host:$dns_port"
        return 0
      }
      sleep 0.1
    done
    kill -9 $dns_pid 2> /dev/null; wait $dns_pid 2> /dev/null
  done
  echo "dns-server did not start: $(cat "$dir/dns.err")" >&2
  return 1
}

# start_relay: an iroh-c relay on a free port; sets relay_url
start_relay() {
  "$bin" relay --listen 127.0.0.1:0 > "$dir/relay.out" 2> "$dir/relay.err" &
  local p=$!
  pids+=($p)
  for _ in $(seq 100); do
    relay_url=$(sed -n 's#^relay listening on \(http://127\.0\.0\.1:[0-9]*\)$#\1#p' "$dir/relay.out")
    [ -n "$relay_url" ] && return 0
    kill -0 $p 2> /dev/null || break
    sleep 0.05
  done
  echo "relay did not start: $(cat "$dir/relay.err")" >&2
  return 1
}

# start_listener NAME ALPN [args...]: `iroh-c listen --echo` in the background; sets
# l_pid, l_ticket, l_json (its ticket decoded) and l_id (hex); its stderr in $dir/NAME.err
start_listener() {
  local name=$1 alpn=$2
  shift 2
  "$bin" listen --echo --alpn "$alpn" "$@" > "$dir/$name.out" 2> "$dir/$name.err" &
  l_pid=$!
  pids+=($l_pid)
  l_ticket=
  for _ in $(seq 300); do
    l_ticket=$(head -1 "$dir/$name.out")
    [ -n "$l_ticket" ] && break
    kill -0 $l_pid 2> /dev/null || break
    sleep 0.05
  done
  [ -n "$l_ticket" ] || { echo "listener $name did not start: $(cat "$dir/$name.err")" >&2; return 1; }
  l_json=$("$bin" ticket decode "$l_ticket")
  l_id=$(sed -n 's/^{"id":"\([0-9a-f]*\)".*/\1/p' <<< "$l_json")
}

# wait_resolved SECS TEXT resolve-args...: runs `iroh-c resolve` until its JSON contains
# TEXT (a fixed string) or SECS pass; sets r_json (the last output) and r_ms (time to success)
wait_resolved() {
  local secs=$1 pred=$2 t0 now
  shift 2
  t0=$(ms)
  while :; do
    r_json=$("$bin" resolve "$@" --timeout 2 2> "$dir/resolve.err")
    now=$(ms)
    if [ -n "$r_json" ] && grep -qF -- "$pred" <<< "$r_json"; then r_ms=$((now - t0)); return 0; fi
    [ $((now - t0)) -ge $((secs * 1000)) ] && return 1
    sleep 0.3
  done
}
