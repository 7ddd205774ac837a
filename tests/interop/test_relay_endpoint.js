// Relayed connections between iroh-c and the real iroh 1.0.2 peer (npm @number0/iroh),
// through our own relay (`iroh-c relay`, plain HTTP on loopback), with addresses that
// hold only the relay URL:
//  - iroh-c connect -> an iroh endpoint homed on the relay (13 B and 1 MiB echoes);
//  - an iroh endpoint -> iroh-c listen homed on the relay (its ticket names the relay);
//  - the relay restarts in the middle of both connections: the endpoints reconnect to
//    it and the same QUIC connections carry on;
//  - two iroh-c endpoints through the relay (a dumb pipe across the restart).
// Relay statistics show the bytes really went through the relay.
'use strict';
const { spawn } = require('child_process');
const { loadIroh, run, check, finish, track, killAll, withTimeout, startRelay, pattern,
  irohEchoServer, irohRelayPeer, irohEcho: echo, pathsText } = require('./peer');
const iroh = loadIroh();
const IROH_C = process.env.IROH_C;
// These connections must stay on the relay (its statistics are checked), so the iroh-c
// processes offer no holepunching (multipath and NAT traversal, on by default) and no
// side opens a direct path; relay-to-direct is tested in test_nat_traversal.js,
// test_cli_paths.js and, through NATs, cli/test_netns_nat_irohc.sh.
process.env.IROH_C_HOLEPUNCHING = '0';
const ALPN = 'iroh-c-test/relayed/0';
const bytes = (s) => Array.from(Buffer.from(s));
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

process.on('uncaughtException', (e) => { console.error('FAIL: ' + e.stack); killAll(); process.exit(1); });
process.on('unhandledRejection', (e) => { console.error('FAIL: ' + (e && e.stack)); killAll(); process.exit(1); });
setTimeout(() => { console.error('FAIL: test timed out'); killAll(); process.exit(1); }, 240000).unref();

const irohPeer = (relay, alpns) => irohRelayPeer(iroh, relay.url, alpns);

// runs iroh-c with the given stdin; resolves { code, out (Buffer), err }
function runIrohC(args, input, ms) {
  return new Promise((resolve) => {
    const p = track(spawn(IROH_C, args, { stdio: ['pipe', 'pipe', 'pipe'] }));
    const out = [];
    let err = '';
    p.stdout.on('data', (d) => out.push(d));
    p.stderr.on('data', (d) => { err += d; });
    const t = setTimeout(() => p.kill('SIGKILL'), ms);
    p.on('close', (code) => { clearTimeout(t); resolve({ code, out: Buffer.concat(out), err }); });
    p.stdin.on('error', () => {});
    if (input !== null) p.stdin.end(input);
  });
}

// iroh-c listen (echo or pipe) homed on the relay; resolves with its ticket: the first
// line of stdout for --echo; for the pipe, stderr's "iroh-c: ticket: ..." (its stdout
// carries the received bytes only, collected in out)
function startListen(relay, extra) {
  return new Promise((resolve, reject) => {
    const p = track(spawn(IROH_C, ['listen', '--alpn', ALPN, '--bind', '127.0.0.1:0',
      '--relay', relay.url, ...extra], { stdio: ['pipe', 'pipe', 'pipe'] }));
    const echo = extra.includes('--echo');
    let buf = '', err = '';
    const out = [];
    const found = (ticket) => resolve({ proc: p, ticket, err: () => err, out });
    p.stderr.on('data', (d) => {
      err += d;
      const m = !echo && err.match(/^iroh-c: ticket: (endpoint[a-z0-9]+)$/m);
      if (m) found(m[1]);
    });
    p.stdout.on('data', (d) => {
      if (!echo) { out.push(d); return; }
      if (buf !== null) {
        buf += d;
        const nl = buf.indexOf('\n');
        if (nl >= 0) {
          found(buf.slice(0, nl).trim());
          buf = null;
        }
      }
    });
    p.on('close', (code) => reject(new Error(`listen exited ${code}: ${err}`)));
  });
}

async function main() {
  let relay = await startRelay(['--ping-interval', '2']);
  const relayUrl = relay.url + '/';
  console.log(`relay at ${relay.url}`);

  // ---- iroh-c connect -> iroh, relay only --------------------------------------------------
  const srv = await irohPeer(relay, [ALPN]);
  await withTimeout(srv.online(), 20000, 'iroh online');
  check(srv.addr().relayUrl() === relayUrl, `iroh is homed on our relay: ${srv.addr().relayUrl()}`);
  irohEchoServer(srv);
  const t = run(['ticket', 'encode', srv.id().toString(), '--relay', relay.url]);
  check(t.status === 0, 'relay-only ticket for iroh');
  const rticket = t.stdout.trim();
  let before = await relay.stats();
  let t0 = Date.now();
  let r = await runIrohC(['connect', rticket, '--alpn', ALPN, '--relay', relay.url], Buffer.from('Hello, relay!'), 30000);
  check(r.code === 0 && r.out.toString() === 'Hello, relay!', `iroh-c -> iroh through the relay: ${r.code} '${r.out}' ${r.err}`);
  console.log(`iroh-c -> iroh, 13 bytes through the relay in ${Date.now() - t0} ms (with process start)`);
  const big = pattern(1 << 20, 3);
  t0 = Date.now();
  r = await runIrohC(['connect', rticket, '--alpn', ALPN, '--relay', relay.url, '--stats'], big, 60000);
  check(r.code === 0 && r.out.equals(big), `iroh-c -> iroh: 1 MiB echoed through the relay (${r.code}, ${r.out.length} bytes) ${r.err}`);
  check(r.err.includes(`path relay ${relayUrl}`), `the connection's path is the relay: ${r.err.trim()}`);
  console.log(`iroh-c -> iroh, 1 MiB echoed through the relay in ${Date.now() - t0} ms`);
  let after = await relay.stats();
  check(after.bytes_relayed - before.bytes_relayed >= 2 << 20,
    `the relay carried both directions: ${after.bytes_relayed - before.bytes_relayed} bytes, ${after.frames_relayed - before.frames_relayed} frames`);

  // a relay that cannot be reached does not stand in the way of a direct connection
  const direct = iroh.EndpointTicket.fromAddr(new iroh.EndpointAddr(srv.id(), null, srv.addr().directAddresses())).toString();
  r = await runIrohC(['connect', direct, '--alpn', ALPN, '--relay', 'http://127.0.0.1:1', '--stats'], Buffer.from('direct'), 30000);
  check(r.code === 0 && r.out.toString() === 'direct' && /path direct /.test(r.err),
    `direct connection while the own relay is unreachable: ${r.code} ${r.err.trim()}`);

  // without --relay, the relay of the ticket is dialed on demand; with --no-relay it is not
  r = await runIrohC(['connect', rticket, '--alpn', ALPN, '--no-relay', '--timeout', '2'], Buffer.from('x'), 30000);
  check(r.code !== 0 && /no direct address/.test(r.err), `--no-relay refuses a relay-only ticket: ${r.code} ${r.err.trim()}`);

  // ---- iroh -> iroh-c listen, relay only -------------------------------------------------
  const lis = await startListen(relay, ['--echo']);
  const dec = JSON.parse(run(['ticket', 'decode', lis.ticket]).stdout);
  check(dec.relay === relayUrl, `iroh-c's ticket names its home relay: ${dec.relay}`);
  const cli = await irohPeer(relay, null);
  await withTimeout(cli.online(), 20000, 'iroh client online');
  const addr = new iroh.EndpointAddr(iroh.EndpointId.fromString(dec.id), relayUrl, []);
  before = await relay.stats();
  t0 = Date.now();
  const conn = await withTimeout(cli.connect(addr, bytes(ALPN)), 20000, 'iroh -> iroh-c through the relay');
  console.log(`iroh -> iroh-c connected through the relay in ${Date.now() - t0} ms`);
  check(await withTimeout(echo(conn, 13, 1), 20000, 'small echo'), 'iroh -> iroh-c: 13 bytes echoed');
  t0 = Date.now();
  check(await withTimeout(echo(conn, 1 << 20, 2), 60000, '1 MiB echo'), 'iroh -> iroh-c: 1 MiB echoed');
  console.log(`iroh -> iroh-c, 1 MiB echoed in ${Date.now() - t0} ms; paths ${pathsText(conn)}`);
  check(conn.paths().some((p) => p.isRelay && p.isSelected), `iroh's path to iroh-c is the relay: ${pathsText(conn)}`);
  after = await relay.stats();
  check(after.bytes_relayed - before.bytes_relayed >= 2 << 20,
    `the relay carried it: ${after.bytes_relayed - before.bytes_relayed} bytes`);

  // ---- both a relay and direct addresses: the first flight goes to all, the first answer wins
  // iroh -> iroh-c: iroh sends its Initial over the relay and UDP; iroh-c answers the first copy
  const full = new iroh.EndpointAddr(iroh.EndpointId.fromString(dec.id), relayUrl, dec.addrs.filter((x) => x.startsWith('127.')));
  const both = await withTimeout(cli.connect(full, bytes(ALPN)), 20000, 'iroh -> iroh-c, relay + direct');
  check(await withTimeout(echo(both, 4096, 4), 20000, 'echo relay+direct'), `iroh -> iroh-c with relay and direct addresses: ${pathsText(both)}`);
  console.log(`iroh -> iroh-c with relay and direct addresses: paths ${pathsText(both)}`);
  both.close(0n, bytes('bye'));
  // iroh-c -> iroh with iroh's full address (relay and direct)
  const fullTicket = iroh.EndpointTicket.fromAddr(srv.addr()).toString();
  r = await runIrohC(['connect', fullTicket, '--alpn', ALPN, '--relay', relay.url], Buffer.from('both ways'), 30000);
  check(r.code === 0 && r.out.toString() === 'both ways', `iroh-c -> iroh with relay and direct addresses: ${r.code} '${r.out}' ${r.err}`);

  // ---- iroh-c <-> iroh-c through the relay, a dumb pipe across a relay restart ------------
  const pipe = await startListen(relay, []);
  pipe.proc.stdin.end(); /* nothing goes back: connect exits once its input is through */
  const pid = JSON.parse(run(['ticket', 'decode', pipe.ticket]).stdout).id;
  const pticket = run(['ticket', 'encode', pid, '--relay', relay.url]).stdout.trim();
  const part1 = pattern(200000, 5), part2 = pattern(300000, 6);
  const pc = track(spawn(IROH_C, ['connect', pticket, '--alpn', ALPN, '--relay', relay.url], { stdio: ['pipe', 'pipe', 'pipe'] }));
  let pcErr = '';
  pc.stderr.on('data', (d) => { pcErr += d; });
  const pcDone = new Promise((res) => pc.on('close', (code) => res(code)));
  pc.stdin.write(part1);
  const got1 = await withTimeout((async () => {
    while (Buffer.concat(pipe.out).length < part1.length) await sleep(50);
  })(), 30000, 'first part through the relay').then(() => true, () => false);
  check(got1, `iroh-c -> iroh-c: first part arrived through the relay (${Buffer.concat(pipe.out).length} bytes) ${pcErr}`);

  // ---- the relay restarts --------------------------------------------------------------------
  const port = relay.port;
  const st = await relay.stop();
  check(st.code === 143, `relay stopped cleanly (status 143 after SIGTERM): ${JSON.stringify(st)}`);
  await sleep(1000);
  relay = await startRelay(['--ping-interval', '2'], port);
  t0 = Date.now();
  // iroh -> iroh-c keeps working over the same QUIC connection
  const again = await withTimeout(echo(conn, 65536, 9), 45000, 'echo after the relay restart').catch((e) => { console.error(e.message); return false; });
  check(again, `iroh -> iroh-c: the connection survived the relay restart (${Date.now() - t0} ms)`);
  // iroh-c -> iroh-c: the rest of the pipe goes through, then stdin ends
  pc.stdin.end(part2);
  const code = await withTimeout(pcDone, 60000, 'pipe connect exit').catch(() => -1);
  check(code === 0, `iroh-c connect finished after the restart: ${code} ${pcErr}`);
  const want = Buffer.concat([part1, part2]);
  // acknowledged by the listener's QUIC stack is not yet written to its stdout: give it time
  for (let i = 0; i < 200 && Buffer.concat(pipe.out).length < want.length; i++) await sleep(50);
  const have = Buffer.concat(pipe.out);
  check(have.equals(want), `iroh-c -> iroh-c: ${have.length} of ${want.length} bytes intact across the relay restart`);
  const st2 = await relay.stats();
  check(st2.handshakes >= 4, `the endpoints reconnected to the restarted relay: ${st2.handshakes} handshakes`);
  check(st2.bytes_relayed >= part2.length, `the restarted relay carried the rest: ${st2.bytes_relayed} bytes`);

  conn.close(0n, bytes('done'));
  lis.proc.kill('SIGTERM');
  pipe.proc.kill('SIGTERM');
  await Promise.race([Promise.all([srv.close(), cli.close()]), sleep(5000)]);
  await relay.stop();
}

main().then(finish, (e) => { console.error('FAIL: ' + e.stack); killAll(); process.exit(1); });
