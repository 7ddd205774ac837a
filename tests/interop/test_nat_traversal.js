// n0 NAT traversal (QNT) negotiated between iroh-c and the real iroh 1.0.2 in both roles,
// with IROH_C_HOLEPUNCHING=2 (multipath and NAT traversal offered): iroh logs "n0's nat
// traversal negotiated" and, as the client, starts a holepunching round when the
// connection comes up (its REACH_OUT frames reach iroh-c's server, which probes the
// address); iroh's QNT frames (ADD_ADDRESS from an iroh server, REACH_OUT from an iroh
// client) are taken by iroh-c without a protocol error, echoes move data both ways, and
// iroh logs no protocol error and no "not negotiated" warning. The iroh side runs in a
// child process (this file with --peer) so that its debug log can be read.
'use strict';
const { spawn } = require('child_process');
const { loadIroh, check, finish, pattern, irohEchoServer, irohEcho, pathsText } = require('./peer');
const iroh = loadIroh();
const IROH_C = process.env.IROH_C;
const ALPN = 'iroh-example/echo/0';
const bytes = (s) => Array.from(Buffer.from(s));

async function irohEndpoint(alpns) {
  const b = iroh.Endpoint.builder();
  iroh.presetMinimal(b);
  if (alpns) b.alpns(alpns.map(bytes));
  b.bindAddr('127.0.0.1:0');
  b.relayMode(iroh.RelayMode.disabled());
  return b.bind();
}

// ---- the iroh side, in a child process ----------------------------------------------------
async function peerMain(role, ticket) {
  iroh.setLogLevel('Debug');
  if (role === 'server') {
    const ep = await irohEndpoint([ALPN]);
    irohEchoServer(ep);
    console.log('TICKET ' + iroh.EndpointTicket.fromAddr(ep.addr()).toString());
    process.stdin.resume();
    await new Promise((res) => process.stdin.on('end', res));
    await ep.close();
    process.exit(0);
  }
  const ep = await irohEndpoint(null);
  const conn = await ep.connect(iroh.EndpointTicket.fromString(ticket).endpointAddr(), bytes(ALPN));
  const small = await irohEcho(conn, 13, 1);
  const big = await irohEcho(conn, 2 << 20, 2);
  const both = await Promise.all([irohEcho(conn, 300000, 3), irohEcho(conn, 500000, 4)]);
  // more than one keep-alive interval: the path stays up on PINGs and PATH_ACKs
  await new Promise((r) => setTimeout(r, 6000));
  const after = await irohEcho(conn, 100000, 5);
  console.log(`ECHO ${small && big && both[0] && both[1] && after ? 'OK' : 'FAIL'} ${pathsText(conn)}`);
  conn.close(0n, bytes('bye'));
  await ep.close();
  process.exit(0);
}

if (process.argv[2] === '--peer') {
  peerMain(process.argv[3], process.argv[4]).catch((e) => { console.log('PEER ERROR ' + e); process.exit(1); });
  return;
}

// ---- the test -------------------------------------------------------------------------------
const children = new Set();
function killAll() { for (const c of children) { try { c.kill('SIGKILL'); } catch (e) { /* gone */ } } }
process.on('exit', killAll);
process.on('uncaughtException', (e) => { console.error('FAIL: ' + e.stack); killAll(); process.exit(1); });
setTimeout(() => { console.error('FAIL: test timed out'); killAll(); process.exit(1); }, 240000).unref();

// a child process with its output collected; ready resolves on the first line matching re
function start(cmd, args, env, readyRe) {
  const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: Object.assign({}, process.env, env) });
  children.add(p);
  const r = { proc: p, out: '', err: '' };
  let onLine = null;
  r.ready = new Promise((res) => { onLine = res; });
  p.stdout.on('data', (d) => {
    r.out += d;
    const m = readyRe && r.out.match(readyRe);
    if (m) onLine(m);
  });
  p.stderr.on('data', (d) => { r.err += d; });
  r.exited = new Promise((res) => p.on('close', (code, sig) => { children.delete(p); res({ code, sig }); }));
  r.exited.then(() => onLine(null));
  p.stdin.on('error', () => {});
  return r;
}

// what iroh's log says about NAT traversal
function irohLogCheck(log, what, irohClient) {
  const all = log.replace(/\x1b\[[0-9;]*m/g, '');
  check(/n0's nat traversal negotiated/.test(all), `${what}: iroh logs "n0's nat traversal negotiated"`);
  const lines = all.split('\n');
  const notNegotiated = lines.filter((l) => /ExtensionNotNegotiated|nat traversal was not negotiated|MultipathNotNegotiated/.test(l));
  check(notNegotiated.length === 0, `${what}: iroh logs no "not negotiated": ${notNegotiated.slice(0, 2).join(' | ')}`);
  const bad = lines.filter((l) => /PROTOCOL_VIOLATION|ProtocolViolation|\bERROR\b|FRAME_ENCODING|TransportError/.test(l));
  check(bad.length === 0, `${what}: iroh logs no protocol error: ${bad.slice(0, 3).join(' | ')}`);
  if (irohClient) {
    // iroh's client starts a round when the connection comes up (REACH_OUT for its candidates)
    const init = lines.filter((l) => /_events::qnt::init/.test(l));
    check(init.length >= 1, `${what}: iroh started a holepunching round: ${init.length}`);
  }
}

// iroh-c's close line: "multipath was on: PATH_ACK sent A received B, PATH_NEW_CONNECTION_ID sent C received D, ..."
function irohCCheck(stderr, what, expectMultipath) {
  const m = stderr.match(/multipath was on: PATH_ACK sent (\d+) received (\d+), PATH_NEW_CONNECTION_ID sent (\d+) received (\d+)/);
  if (!expectMultipath) {
    check(!m, `${what}: iroh-c did not use multipath: ${m ? m[0] : ''}`);
    return;
  }
  check(m && +m[1] > 0 && +m[2] > 0 && +m[3] > 0 && +m[4] > 0,
    `${what}: iroh-c sent and received PATH_ACK and PATH_NEW_CONNECTION_ID: ${m ? m[0] : stderr.trim()}`);
  if (m) console.log(`${what}: ${m[0]}`);
}

async function irohCConnects(mode) {
  const what = `iroh-c -> iroh (IROH_C_HOLEPUNCHING=${mode})`;
  const peer = start(process.execPath, [__filename, '--peer', 'server'], {}, /TICKET (\S+)/);
  const m = await peer.ready;
  check(m, `${what}: the iroh server started: ${peer.out} ${peer.err}`);
  if (!m) return;
  const input = pattern(3 << 20, 9);
  const c = start(IROH_C, ['connect', '--no-relay', m[1], '--alpn', ALPN, '--stats'],
    { IROH_C_HOLEPUNCHING: String(mode), IROH_LOG: 'info' });
  c.proc.stdin.end(input);
  const out = [];
  c.proc.stdout.removeAllListeners('data');
  c.proc.stdout.on('data', (d) => out.push(d));
  const ex = await c.exited;
  const got = Buffer.concat(out);
  check(ex.code === 0 && got.equals(input), `${what}: 3 MiB echo: exit ${ex.code}, ${got.length} bytes back, ${c.err.trim()}`);
  irohCCheck(c.err, what, mode > 0);
  peer.proc.stdin.end();
  await peer.exited;
  irohLogCheck(peer.out + peer.err, what, false);
}

async function irohConnects(mode) {
  const what = `iroh -> iroh-c (IROH_C_HOLEPUNCHING=${mode})`;
  const l = start(IROH_C, ['listen', '--no-relay', '--alpn', ALPN, '--echo', '--bind', '127.0.0.1:0'],
    { IROH_C_HOLEPUNCHING: String(mode), IROH_LOG: 'info' }, /^(\S+)\n/);
  const t = await l.ready;
  check(t, `${what}: iroh-c listens: ${l.err}`);
  if (!t) return;
  const peer = start(process.execPath, [__filename, '--peer', 'client', t[1]], {}, /ECHO (OK|FAIL)/);
  const e = await peer.ready;
  check(e && e[1] === 'OK', `${what}: echoes of 13 B, 2 MiB, 300 kB + 500 kB at once, and 100 kB after 6 s idle: ${e ? e[0] : peer.out.slice(-2000)}`);
  await peer.exited;
  irohLogCheck(peer.out + peer.err, what, true);
  // the listener logs the connection's close
  for (let i = 0; i < 50 && !/closed by the peer/.test(l.err); i++) await new Promise((r) => setTimeout(r, 100));
  irohCCheck(l.err, what, mode > 0);
  l.proc.kill('SIGTERM');
  await l.exited;
}

(async () => {
  await irohCConnects(2);
  await irohConnects(2);
  finish();
})().catch((e) => { console.error('FAIL: ' + e.stack); killAll(); process.exit(1); });
