#!/usr/bin/env bash
# dumbpipe's tunnels on loopback: listen-tcp in front of local services (node, in
# tunnel_helper.js), connect-tcp in front of a ticket. curl through the tunnel, 100
# concurrent requests (one stream each of one connection), a reader that never reads
# stalling nobody else, half-close both ways, a reset both ways, the connection opened
# again after the listener restarts, an ssh session (root with sshd installed), unix
# sockets, a wrong hello, usage errors and Ctrl-C.
source "$(dirname "$0")/common.bash"
helper="$(dirname "$0")/tunnel_helper.js"
export IROH_C_ADDRESS_LOOKUP=none

# waits for a line matching the sed expression in a file; prints the capture
wait_line() { # file sed-expr [tries]
  local v
  for _ in $(seq "${3:-200}"); do
    v=$(sed -n "$2" "$1" | head -1)
    [ -n "$v" ] && echo "$v" && return 0
    sleep 0.05
  done
  return 1
}
ticket_of() { wait_line "$1" 's/^iroh-c: ticket: \(endpoint[a-z0-9]*\)$/\1/p'; }
port_of() { wait_line "$1" 's/^iroh-c: connect-[a-z]*: listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p'; }
json() { node -e "console.log(JSON.parse(require('fs').readFileSync('$1','utf8'))['$2'])"; }

node "$helper" servers "$dir/ports" "$dir/web.sock" &
pids+=($!)
for _ in $(seq 100); do [ -s "$dir/ports" ] && break; sleep 0.05; done
http_port=$(json "$dir/ports" http) half_port=$(json "$dir/ports" half)
rst_port=$(json "$dir/ports" rst)

"$bin" keygen --output "$dir/key" > /dev/null || bad "keygen failed"
start_listener() { # KEYFILE BINDPORT HOSTPORT -> $lpid, $ticket
  "$bin" listen-tcp --no-relay --secret-file "$1" --bind "127.0.0.1:$2" --host "$3" 2> "$dir/lt.err" &
  lpid=$!; pids+=($lpid)
  ticket=$(ticket_of "$dir/lt.err") || bad "listen-tcp printed no ticket: $(cat "$dir/lt.err")"
}

# --- one web server through listen-tcp / connect-tcp --------------------------------
start_listener "$dir/key" 0 "127.0.0.1:$http_port"
grep -q "forwarding incoming streams to 127.0.0.1:$http_port" "$dir/lt.err" && ok || bad "listen-tcp did not say where it forwards: $(cat "$dir/lt.err")"
"$bin" connect-tcp --no-relay --addr 127.0.0.1:0 "$ticket" 2> "$dir/ct.err" &
cpid=$!; pids+=($cpid)
port=$(port_of "$dir/ct.err") || bad "connect-tcp did not say its port: $(cat "$dir/ct.err")"
out=$(curl -sS --max-time 20 "http://127.0.0.1:$port/hello" 2>&1)
[ "$out" = "hello world" ] && ok || bad "curl through the tunnel: '$out'; $(cat "$dir/lt.err" "$dir/ct.err")"
curl -sS --max-time 30 -o "$dir/big.out" "http://127.0.0.1:$port/bytes/5000000" &&
  node -e "const b=require('fs').readFileSync('$dir/big.out');let ok=b.length===5000000;for(let i=0;ok&&i<b.length;i++)ok=b[i]===i%251;process.exit(ok?0:1)" &&
  ok || bad "5 MB through the tunnel did not arrive intact ($(wc -c < "$dir/big.out") bytes)"

# --- 100 concurrent requests: each its own TCP connection and stream ------------------
urls=()
for i in $(seq 100); do urls+=(-o "$dir/par.$i" "http://127.0.0.1:$port/bytes/$((1000 + i))"); done
t0=$(ms)
curl -sS --max-time 60 --parallel --parallel-immediate --parallel-max 100 -H 'Connection: close' "${urls[@]}" 2> "$dir/par.err"
status=$?
n_ok=0
for i in $(seq 100); do [ "$(wc -c < "$dir/par.$i" 2> /dev/null)" = $((1000 + i)) ] && n_ok=$((n_ok + 1)); done
[ $status = 0 ] && [ $n_ok = 100 ] && ok || bad "100 parallel requests: curl $status, $n_ok complete: $(head -3 "$dir/par.err")"
stats=$(curl -sS --max-time 10 "http://127.0.0.1:$port/stats")
peak=$(echo "$stats" | node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>console.log(JSON.parse(s).peak))")
[ "${peak:-0}" -ge 50 ] && ok || bad "the requests did not run concurrently through the tunnel (peak $peak open at once; $stats)"
echo "100 parallel requests in $(( $(ms) - t0 )) ms, peak $peak at once"

# --- a local reader that never reads stalls no other stream of the connection ---------
node "$helper" stall "$port" /bytes/50000000 > "$dir/stall.out" &
stallpid=$!; pids+=($stallpid)
for _ in $(seq 100); do [ -s "$dir/stall.out" ] && break; sleep 0.05; done
sleep 1 # the server writes into the stalled stream until its window is full
for i in 1 2 3; do
  out=$(curl -sS --max-time 10 "http://127.0.0.1:$port/hello" 2>&1)
  [ "$out" = "hello world" ] && ok || bad "a request next to a stalled stream: '$out'"
done
kill $stallpid 2> /dev/null; wait $stallpid 2> /dev/null

# --- half-close both ways: the client's FIN reaches the server, whose answer and FIN come back
"$bin" listen-tcp --no-relay --bind 127.0.0.1:0 --host "127.0.0.1:$half_port" 2> "$dir/lh.err" &
pids+=($!); lhpid=$!
hticket=$(ticket_of "$dir/lh.err") || bad "no ticket: $(cat "$dir/lh.err")"
"$bin" connect-tcp --no-relay --addr 127.0.0.1:0 "$hticket" 2> "$dir/ch.err" &
pids+=($!); chpid=$!
hport=$(port_of "$dir/ch.err") || bad "no port: $(cat "$dir/ch.err")"
out=$(timeout 20 node "$helper" half "$hport" 300000 2>&1)
[ "$out" = "got 300000" ] && ok || bad "half-close through the tunnel: '$out'"
out=$(timeout 20 node "$helper" half "$hport" 0 2>&1)
[ "$out" = "got 0" ] && ok || bad "half-close without data through the tunnel: '$out'"
kill $chpid $lhpid 2> /dev/null

# --- a reset both ways -------------------------------------------------------------------
"$bin" listen-tcp --no-relay --bind 127.0.0.1:0 --host "127.0.0.1:$rst_port" 2> "$dir/lr.err" &
pids+=($!); lrpid=$!
rticket=$(ticket_of "$dir/lr.err") || bad "no ticket: $(cat "$dir/lr.err")"
"$bin" connect-tcp --no-relay --addr 127.0.0.1:0 "$rticket" 2> "$dir/cr.err" &
pids+=($!); crpid=$!
rport=$(port_of "$dir/cr.err") || bad "no port: $(cat "$dir/cr.err")"
out=$(timeout 20 node "$helper" expect-reset "$rport" 2>&1)
[ "$out" = reset ] && ok || bad "the server's reset reached the client as '$out'"
rm -f "$dir/ports.rst"
timeout 20 node "$helper" send-reset "$rport"
for _ in $(seq 100); do [ -s "$dir/ports.rst" ] && break; sleep 0.05; done
[ "$(cat "$dir/ports.rst" 2> /dev/null)" = reset ] && ok || bad "the client's reset reached the server as '$(cat "$dir/ports.rst" 2> /dev/null)'"
kill $crpid $lrpid 2> /dev/null

# --- a target that refuses: the stream is reset, so the client sees a reset ----------
dead_port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
"$bin" listen-tcp --no-relay --bind 127.0.0.1:0 --host "127.0.0.1:$dead_port" 2> "$dir/ld.err" &
pids+=($!); ldpid=$!
dticket=$(ticket_of "$dir/ld.err") || bad "no ticket: $(cat "$dir/ld.err")"
"$bin" connect-tcp --no-relay --addr 127.0.0.1:0 "$dticket" 2> "$dir/cd.err" &
pids+=($!); cdpid=$!
dport=$(port_of "$dir/cd.err") || bad "no port: $(cat "$dir/cd.err")"
out=$(timeout 20 node "$helper" expect-reset "$dport" 2>&1)
[ "$out" = reset ] && ok || bad "a refused target reached the client as '$out'"
grep -q "cannot connect to 127.0.0.1:$dead_port: Connection refused (stream reset)" "$dir/ld.err" && ok ||
  bad "listen-tcp did not say the target refused: $(cat "$dir/ld.err")"
kill $cdpid $ldpid 2> /dev/null

# --- a peer that is gone: local connections that come one after another during the
# dial are accepted meanwhile, wait for that one dial and fail with it, each with a reset
# (not one dial timeout after another, nor each a dial of its own after the first failed)
"$bin" listen-tcp --no-relay --bind 127.0.0.1:0 --host "127.0.0.1:$http_port" 2> "$dir/lg.err" &
lgpid=$!; pids+=($lgpid)
gticket=$(ticket_of "$dir/lg.err") || bad "no ticket: $(cat "$dir/lg.err")"
kill -9 $lgpid; wait $lgpid 2> /dev/null
"$bin" connect-tcp --no-relay --timeout 4 --addr 127.0.0.1:0 "$gticket" 2> "$dir/cg.err" &
cgpid=$!; pids+=($cgpid)
gport=$(port_of "$dir/cg.err") || bad "no port: $(cat "$dir/cg.err")"
t0=$(ms)
gpids=()
for i in 1 2 3 4 5 6 7 8; do
  timeout 60 node "$helper" expect-reset "$gport" > "$dir/g.$i" 2>&1 &
  gpids+=($!)
  sleep 0.3
done
wait "${gpids[@]}"
elapsed=$(( $(ms) - t0 ))
n_reset=$(cat "$dir"/g.* | grep -c '^reset$')
n_dials=$(grep -c "timed out" "$dir/cg.err")
[ "$n_reset" = 8 ] && ok || bad "clients of a gone peer: $n_reset of 8 saw a reset: $(cat "$dir"/g.* | sort | uniq -c)"
# the clients come within ~2.4 s, during the first 4 s dial: one dial (two if the machine
# is slow to start them) for all; dials one after another would take 32 s
[ "$n_dials" -le 2 ] && ok || bad "8 clients of a gone peer: $n_dials dials (one after another) where one was due"
[ $elapsed -lt 14000 ] && ok || bad "8 clients of a gone peer took $elapsed ms ($n_dials dials): the dial was not shared"
grep -q "timed out" "$dir/cg.err" && ok || bad "connect-tcp did not say the dial timed out: $(cat "$dir/cg.err")"
kill $cgpid 2> /dev/null

# --- out of file descriptors: accept fails with EMFILE while the clients wait for a dial
# (the gone peer again); said once for the episode, not every 200 ms
(ulimit -n 48; exec "$bin" connect-tcp --no-relay --timeout 30 --addr 127.0.0.1:0 "$gticket") 2> "$dir/ce.err" &
cepid=$!; pids+=($cepid)
eport=$(port_of "$dir/ce.err") || bad "no port: $(cat "$dir/ce.err")"
node -e "const a=[];for(let i=0;i<80;i++){const s=require('net').connect($eport,'127.0.0.1');s.on('error',()=>{});a.push(s)}setTimeout(()=>process.exit(0),3000)"
n_acc=$(grep -c "accept: Too many open files" "$dir/ce.err")
[ "$n_acc" = 1 ] && ok || bad "EMFILE said $n_acc times in 3 s (once is due): $(head -3 "$dir/ce.err")"
kill $cepid 2> /dev/null

# --- a forward waiting on a local client that neither reads nor sends notices that the
# connection ended (the listener stopped) within a few seconds, not when the client acts
"$bin" listen-tcp --no-relay --bind 127.0.0.1:0 --host "127.0.0.1:$http_port" 2> "$dir/ls.err" &
lspid=$!; pids+=($lspid)
sticket=$(ticket_of "$dir/ls.err") || bad "no ticket: $(cat "$dir/ls.err")"
"$bin" connect-tcp --no-relay --verbose --addr 127.0.0.1:0 "$sticket" 2> "$dir/cs.err" &
cspid=$!; pids+=($cspid)
sport=$(port_of "$dir/cs.err") || bad "no port: $(cat "$dir/cs.err")"
node "$helper" stall "$sport" /bytes/50000000 > "$dir/stall2.out" &
stallpid=$!; pids+=($stallpid)
for _ in $(seq 100); do [ -s "$dir/stall2.out" ] && break; sleep 0.05; done
sleep 1.5 # the answer fills the client's socket: the forward waits to write
kill -TERM $lspid; wait_exit $lspid 10
ended=no
for _ in $(seq 200); do
  grep -q "connect-tcp: stream [0-9]* reset by the peer" "$dir/cs.err" && ended=yes && break
  sleep 0.05
done
[ $ended = yes ] && ok || bad "a forward stalled on its local client did not see the connection end within 10 s: $(cat "$dir/cs.err")"
kill $stallpid $cspid 2> /dev/null; wait $stallpid 2> /dev/null

# --- one peer cannot take every forward of a listener: a quarter each (8 in all here,
# so 2 per peer); the third stream of one peer is reset, another peer is still served
IROH_C_TUNNEL_MAX_FORWARDS=8 "$bin" listen-tcp --no-relay --bind 127.0.0.1:0 --host "127.0.0.1:$http_port" 2> "$dir/lq.err" &
lqpid=$!; pids+=($lqpid)
qticket=$(ticket_of "$dir/lq.err") || bad "no ticket: $(cat "$dir/lq.err")"
"$bin" connect-tcp --no-relay --addr 127.0.0.1:0 "$qticket" 2> "$dir/cq1.err" &
cq1pid=$!; pids+=($cq1pid)
q1port=$(port_of "$dir/cq1.err") || bad "no port: $(cat "$dir/cq1.err")"
qstall=()
for i in 1 2; do
  node "$helper" stall "$q1port" /bytes/50000000 > "$dir/qs.$i" &
  qstall+=($!); pids+=($!)
  for _ in $(seq 100); do [ -s "$dir/qs.$i" ] && break; sleep 0.05; done
done
sleep 1 # both forwards running
out=$(timeout 20 node "$helper" expect-reset "$q1port" 2>&1)
[ "$out" = reset ] && ok || bad "a peer's third stream over its share: '$out' (want a reset): $(cat "$dir/lq.err")"
grep -q "has 2 streams being forwarded: refusing more of its streams" "$dir/lq.err" && ok ||
  bad "listen-tcp did not say it refused a peer over its share: $(cat "$dir/lq.err")"
"$bin" connect-tcp --no-relay --addr 127.0.0.1:0 "$qticket" 2> "$dir/cq2.err" &
cq2pid=$!; pids+=($cq2pid)
q2port=$(port_of "$dir/cq2.err") || bad "no port: $(cat "$dir/cq2.err")"
out=$(curl -sS --max-time 20 "http://127.0.0.1:$q2port/hello" 2>&1)
[ "$out" = "hello world" ] && ok || bad "another peer next to one at its share: '$out'"
kill "${qstall[@]}" $cq1pid $cq2pid $lqpid 2> /dev/null

# --- the connection is dialed again after the listener went away ---------------------
lport=$("$bin" ticket decode "$ticket" | node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>console.log(JSON.parse(s).addrs[0].split(':').pop()))")
kill -TERM $lpid; wait_exit $lpid 10
[ $st = 143 ] && ok || bad "listen-tcp after SIGTERM: status $st"
start_listener "$dir/key" "$lport" "127.0.0.1:$http_port"
out=$(curl -sS --max-time 20 "http://127.0.0.1:$port/hello" 2>&1)
[ "$out" = "hello world" ] && ok || bad "after the listener restarted: '$out': $(cat "$dir/ct.err")"
grep -q "the connection ended.*dialing again" "$dir/ct.err" && ok || bad "connect-tcp did not say it dialed again: $(cat "$dir/ct.err")"

# --- ssh through the tunnel --------------------------------------------------------------
if [ "$(id -u)" != 0 ] || [ ! -x /usr/sbin/sshd ] || ! command -v ssh > /dev/null; then
  echo "SKIP: ssh through the tunnel needs root and openssh-server/-client (scripts/install-deps.sh test)"
else
  ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key"
  ssh-keygen -q -t ed25519 -N '' -f "$dir/user_key"
  cp "$dir/user_key.pub" "$dir/authorized_keys"
  mkdir -p /run/sshd
  sshd_port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
  /usr/sbin/sshd -D -e -p "$sshd_port" -o ListenAddress=127.0.0.1 -h "$dir/host_key" \
    -o AuthorizedKeysFile="$dir/authorized_keys" -o StrictModes=no -o UsePAM=no \
    -o PermitRootLogin=prohibit-password -o PidFile=none 2> "$dir/sshd.err" &
  pids+=($!)
  "$bin" listen-tcp --no-relay --bind 127.0.0.1:0 --host "127.0.0.1:$sshd_port" 2> "$dir/ls.err" &
  pids+=($!)
  sticket=$(ticket_of "$dir/ls.err") || bad "no ticket: $(cat "$dir/ls.err")"
  "$bin" connect-tcp --no-relay --addr 127.0.0.1:0 "$sticket" 2> "$dir/cs.err" &
  pids+=($!)
  sport=$(port_of "$dir/cs.err") || bad "no port: $(cat "$dir/cs.err")"
  head -c 1000000 /dev/urandom > "$dir/ssh.in"
  out=$(timeout 60 ssh -p "$sport" -i "$dir/user_key" -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR root@127.0.0.1 \
    'echo ssh-ok; sha256sum' < "$dir/ssh.in" 2> "$dir/ssh.err")
  want="ssh-ok
$(sha256sum < "$dir/ssh.in")"
  [ "$out" = "$want" ] && ok || bad "ssh through the tunnel: '$out': $(cat "$dir/ssh.err" "$dir/sshd.err" | tail -5)"
fi

# --- unix sockets: listen-unix to a web server on a socket, connect-unix for curl -----
"$bin" listen-unix --no-relay --bind 127.0.0.1:0 --path "$dir/web.sock" 2> "$dir/lu.err" &
pids+=($!); lupid=$!
uticket=$(ticket_of "$dir/lu.err") || bad "listen-unix printed no ticket: $(cat "$dir/lu.err")"
"$bin" connect-unix --no-relay --path "$dir/c.sock" "$uticket" 2> "$dir/cu.err" &
pids+=($!); cupid=$!
for _ in $(seq 100); do [ -S "$dir/c.sock" ] && break; sleep 0.05; done
out=$(curl -sS --max-time 20 --unix-socket "$dir/c.sock" http://x/hello 2>&1)
[ "$out" = "hello world" ] && ok || bad "curl over unix sockets through the tunnel: '$out': $(cat "$dir/lu.err" "$dir/cu.err")"
# half-close over unix sockets both ways
"$bin" listen-unix --no-relay --bind 127.0.0.1:0 --path "$dir/web.sock.half" 2> "$dir/luh.err" &
pids+=($!); luhpid=$!
uhticket=$(ticket_of "$dir/luh.err") || bad "no ticket: $(cat "$dir/luh.err")"
"$bin" connect-unix --no-relay --path "$dir/ch.sock" "$uhticket" 2> "$dir/cuh.err" &
pids+=($!); cuhpid=$!
for _ in $(seq 100); do [ -S "$dir/ch.sock" ] && break; sleep 0.05; done
out=$(timeout 20 node "$helper" half "$dir/ch.sock" 200000 2>&1)
[ "$out" = "got 200000" ] && ok || bad "half-close over unix sockets through the tunnel: '$out'"
kill $luhpid $cuhpid 2> /dev/null
# an existing socket file: a clear error, not a takeover
"$bin" connect-unix --no-relay --path "$dir/c.sock" "$uticket" 2> "$dir/cu2.err"
status=$?
[ $status = 1 ] && grep -q "cannot listen on $dir/c.sock: Address already in use" "$dir/cu2.err" && ok ||
  bad "connect-unix on a path in use: status $status: $(cat "$dir/cu2.err")"
kill -INT $cupid; wait_exit $cupid 5
[ $st = 130 ] && ok || bad "connect-unix after SIGINT: status $st: $(cat "$dir/cu.err")"
[ ! -e "$dir/c.sock" ] && ok || bad "connect-unix left its socket file behind"
kill $lupid 2> /dev/null

# --- a peer that does not say dumbpipe's hello: a clear error, the listener goes on ----
"$bin" listen-tcp --no-relay --bind 127.0.0.1:0 --host "127.0.0.1:$http_port" 2> "$dir/lw.err" &
pids+=($!); lwpid=$!
wticket=$(ticket_of "$dir/lw.err") || bad "no ticket: $(cat "$dir/lw.err")"
printf 'GET /hello HTTP/1.0\r\n\r\n' | timeout 20 "$bin" connect --no-relay --alpn DUMBPIPEV0 "$wticket" > "$dir/w.out" 2> "$dir/w.err"
grep -q "invalid handshake" "$dir/lw.err" && ok || bad "listen-tcp did not report the wrong hello: $(cat "$dir/lw.err")"
! grep -q "hello world" "$dir/w.out" && ok || bad "data went through without the hello"
out=$(printf 'hello' | cat - <(printf 'GET /hello HTTP/1.0\r\n\r\n') |
  timeout 20 "$bin" connect --no-relay --alpn DUMBPIPEV0 "$wticket" 2> "$dir/w2.err" | tail -1)
[ "$out" = "hello world" ] && ok || bad "the listener after a wrong hello: '$out': $(cat "$dir/w2.err" "$dir/lw.err")"
# a peer that opens a stream and never finishes its hello holds it 10 s at most
(printf 'he'; sleep 15) | timeout 20 "$bin" connect --no-relay --alpn DUMBPIPEV0 "$wticket" > /dev/null 2> "$dir/w3.err" &
w3pid=$!; pids+=($w3pid)
t0=$(ms)
wait_line "$dir/lw.err" 's/.*\(no hello within 10 s: stream reset\)$/\1/p' 400 > /dev/null && ok ||
  bad "listen-tcp did not give up on a hello that never came: $(cat "$dir/lw.err")"
wait_exit $w3pid 10
[ $st = 1 ] && grep -q "the peer reset the stream" "$dir/w3.err" && ok || bad "the silent peer was not reset: status $st: $(cat "$dir/w3.err")"
kill $lwpid 2> /dev/null

# --- usage errors ------------------------------------------------------------------------
"$bin" listen-tcp --no-relay 2> "$dir/u.err"; st=$?
[ $st = 2 ] && grep -q -- "--host HOST:PORT is needed" "$dir/u.err" && ok || bad "listen-tcp without --host: $st $(cat "$dir/u.err")"
"$bin" listen-tcp --no-relay --host 127.0.0.1 2> "$dir/u.err"; st=$?
[ $st = 2 ] && grep -q -- "--host takes HOST:PORT" "$dir/u.err" && ok || bad "listen-tcp --host without port: $st $(cat "$dir/u.err")"
"$bin" listen-tcp --no-relay --host ::1:80 2> "$dir/u.err"; st=$?
[ $st = 2 ] && ok || bad "listen-tcp --host ::1:80 (ambiguous): $st $(cat "$dir/u.err")"
"$bin" connect-tcp --no-relay --addr 127.0.0.1:0 2> "$dir/u.err"; st=$?
[ $st = 2 ] && grep -q "a TICKET or an EndpointId is needed" "$dir/u.err" && ok || bad "connect-tcp without ticket: $st $(cat "$dir/u.err")"
"$bin" connect-tcp --no-relay --addr 127.0.0.1:99999 "$ticket" 2> "$dir/u.err"; st=$?
[ $st = 2 ] && ok || bad "connect-tcp --addr with port 99999: $st $(cat "$dir/u.err")"
"$bin" connect-tcp --no-relay --addr 127.0.0.1:0 notaticket 2> "$dir/u.err"; st=$?
[ $st = 2 ] && ok || bad "connect-tcp with a bad ticket: $st $(cat "$dir/u.err")"
"$bin" listen-unix --no-relay --path "" 2> "$dir/u.err"; st=$?
[ $st = 2 ] && ok || bad "listen-unix --path '': $st $(cat "$dir/u.err")"
"$bin" listen-tcp --help | grep -q "usage: iroh-c listen-tcp --host HOST:PORT" && ok || bad "listen-tcp --help"
"$bin" --help | grep -q "connect-tcp" && ok || bad "iroh-c --help does not list connect-tcp"

# --- Ctrl-C with a forward open: both ends exit promptly ------------------------------
node "$helper" stall "$port" /bytes/50000000 > /dev/null &
stallpid=$!; pids+=($stallpid)
sleep 0.5
t0=$(ms)
kill -INT $cpid; wait_exit $cpid 5
[ $st = 130 ] && ok || bad "connect-tcp after SIGINT with a forward open: status $st: $(cat "$dir/ct.err")"
[ $(( $(ms) - t0 )) -lt 3000 ] && ok || bad "connect-tcp took $(( $(ms) - t0 )) ms to end after SIGINT"
kill -INT $lpid; wait_exit $lpid 5
[ $st = 130 ] && ok || bad "listen-tcp after SIGINT: status $st: $(cat "$dir/lt.err")"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
