// iroh-c's command line with holepunching on (IROH_C_HOLEPUNCHING=2) against the real
// iroh 1.0.2 (npm @number0/iroh), both homed on `iroh-c relay` on loopback, each dialing
// the other with a relay-only address: the connection starts on the relay and moves to a
// direct path; `--verbose` prints the relay line then the direct line, `connect --stats`
// names the direct path, and iroh's own Connection::paths() shows the relay path kept as
// a backup and a direct path selected. Data goes through intact.
'use strict';
const { spawn } = require('child_process');
const { loadIroh, run, check, finish, track, withTimeout, startRelay, irohRelayPeer,
  irohEchoServer, irohEcho, pathsText } = require('./peer');

const iroh = loadIroh();
const ALPN = 'iroh-c-test/paths/0';
const bytes = (s) => Array.from(Buffer.from(s));
const env = { ...process.env, IROH_C_HOLEPUNCHING: '2' };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function selectedLines(text) {
  return text.split('\n').filter((l) => l.startsWith('iroh-c: path selected: '));
}

async function main() {
  const relay = await startRelay();
  const url = relay.url + '/';

  // ---- real iroh dials iroh-c listen ----
  const l = track(spawn(process.env.IROH_C, ['listen', '--alpn', ALPN, '--echo', '--relay', relay.url,
    '--bind', '127.0.0.1:0', '--verbose'], { env, stdio: ['ignore', 'pipe', 'pipe'] }));
  let lerr = '';
  l.stderr.on('data', (d) => { lerr += d; });
  const ticket = await withTimeout(new Promise((res) => {
    let o = '';
    l.stdout.on('data', (d) => { o += d; if (o.includes('\n')) res(o.split('\n')[0]); });
  }), 20000, 'the listener\'s ticket');
  const dec = JSON.parse(run(['ticket', 'decode', ticket]).stdout);
  check(dec.relay === url, `the listener's ticket names the relay: ${dec.relay}`);
  const lport = (dec.addrs.find((a) => a.startsWith('127.0.0.1:')) || '').split(':')[1];
  const a = await irohRelayPeer(iroh, relay.url);
  await withTimeout(a.online(), 20000, 'iroh online');
  const relayOnly = iroh.EndpointTicket.fromString(run(['ticket', 'encode', dec.id, '--relay', url]).stdout.trim()).endpointAddr();
  const conn = await withTimeout(a.connect(relayOnly, bytes(ALPN)), 20000, 'iroh connects to iroh-c');
  check(await withTimeout(irohEcho(conn, 1000, 1), 20000, 'echo'), 'echo through iroh-c');
  // the upgrade: iroh selects a direct path to iroh-c's port
  let direct = false;
  for (let i = 0; i < 100 && !direct; i++) {
    direct = conn.paths().some((p) => p.isIp && p.isSelected && p.remoteAddr === `127.0.0.1:${lport}`);
    if (!direct) await sleep(50);
  }
  check(direct, `iroh selected a direct path to iroh-c: ${pathsText(conn)}`);
  check(conn.paths().some((p) => p.isRelay && !p.isSelected), `iroh keeps the relay path: ${pathsText(conn)}`);
  check(await withTimeout(irohEcho(conn, 200000, 2), 20000, 'echo after the upgrade'), '200 kB echo after the upgrade');
  for (let i = 0; i < 100 && selectedLines(lerr).length < 2; i++) await sleep(50);
  let lines = selectedLines(lerr);
  check(lines.length >= 2 && /^iroh-c: path selected: relay http:\/\/127\.0\.0\.1:\d+\/ \(\d+ ms\)$/.test(lines[0]),
    `listen --verbose: the relay first: ${lerr}`);
  check(lines.length >= 2 && /^iroh-c: path selected: direct 127\.0\.0\.1:\d+ \(\d+ ms\)$/.test(lines[lines.length - 1]),
    `listen --verbose: then direct: ${lerr}`);
  if (lines.length >= 2) console.log(`iroh -> iroh-c: ${lines.join(' / ')}`);
  conn.close(0n, bytes('bye'));
  l.kill('SIGTERM');

  // ---- iroh-c connect dials real iroh ----
  const b = await irohRelayPeer(iroh, relay.url, [ALPN]);
  await withTimeout(b.online(), 20000, 'iroh online (b)');
  irohEchoServer(b);
  const rt = run(['ticket', 'encode', b.id().toString(), '--relay', url]).stdout.trim();
  const c = track(spawn(process.env.IROH_C, ['connect', rt, '--alpn', ALPN, '--relay', relay.url,
    '--bind', '127.0.0.1:0', '--verbose', '--stats'], { env, stdio: ['pipe', 'pipe', 'pipe'] }));
  let cerr = '', cout = '';
  c.stderr.on('data', (d) => { cerr += d; });
  c.stdout.on('data', (d) => { cout += d; });
  const closed = new Promise((r) => c.on('close', (code) => r(code)));
  c.stdin.write('hello\n');
  for (let i = 0; i < 100 && selectedLines(cerr).length < 2; i++) await sleep(50);
  c.stdin.end('holepunched\n');
  const code = await withTimeout(closed, 20000, 'iroh-c connect ends');
  check(code === 0 && cout === 'hello\nholepunched\n', `connect: status ${code}, ${JSON.stringify(cout)}, ${cerr}`);
  lines = selectedLines(cerr);
  check(lines.length >= 2 && /^iroh-c: path selected: relay http:\/\/127\.0\.0\.1:\d+\/ \(\d+ ms\)$/.test(lines[0]),
    `connect --verbose: the relay first: ${cerr}`);
  check(lines.length >= 2 && /^iroh-c: path selected: direct 127\.0\.0\.1:\d+ \(\d+ ms\)$/.test(lines[lines.length - 1]),
    `connect --verbose: then direct: ${cerr}`);
  check(/^iroh-c: connection stats: path direct 127\.0\.0\.1:\d+, rtt /m.test(cerr), `connect --stats names the direct path: ${cerr}`);
  if (lines.length >= 2) console.log(`iroh-c -> iroh: ${lines.join(' / ')}`);
  finish();
}

main().catch((e) => { console.error('FAIL:', e); process.exit(1); });
