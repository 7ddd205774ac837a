// The public C API (through tests/tools/api_tool.c and the examples) against the real
// iroh 1.0.2 peer: the echo protocol both ways, 20 connections at once with 10 streams
// each, datagrams, a peer closing mid-stream, our endpoint closing with connections
// open, and a peer refused by the accept filter.
'use strict';
const path = require('path');
const { spawn } = require('child_process');
const { loadIroh, check, finish, irohEchoServer } = require('./peer');
const iroh = loadIroh();
const API_TOOL = process.env.API_TOOL;
const EXAMPLES = path.join(process.env.IROH_BUILD || '', 'examples');
const ALPN = 'iroh-example/echo/0';
const bytes = (s) => Array.from(Buffer.from(s));

const children = new Set();
function killAll() { for (const c of children) { try { c.kill('SIGKILL'); } catch (e) { /* gone */ } } }
process.on('exit', killAll);
const overall = setTimeout(() => { console.error('FAIL: test timed out'); killAll(); process.exit(1); }, 240000);

function run(cmd, args, timeoutMs, input) {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(p);
    let out = '', err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code) => { clearTimeout(t); children.delete(p); resolve({ code, out, err }); });
    p.stdin.on('error', () => {});
    p.stdin.end(input || '');
  });
}

// a long-running C peer printing its ticket first
function start(cmd, args) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(p);
    let buf = '';
    const lines = [];
    p.stderr.on('data', (d) => process.stderr.write('[' + path.basename(cmd) + '] ' + d));
    p.stdout.on('data', (d) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) { lines.push(buf.slice(0, nl)); buf = buf.slice(nl + 1); }
      if (lines.length === 1) resolve({ proc: p, ticket: lines[0].trim(), lines });
    });
    p.on('close', (code) => { children.delete(p); reject(new Error(cmd + ' exited ' + code)); });
  });
}

async function stop(peer) {
  peer.proc.stdin.end();
  await new Promise((res) => { peer.proc.on('close', res); setTimeout(() => { peer.proc.kill('SIGKILL'); res(); }, 10000); });
}

async function irohEndpoint(alpns) {
  const b = iroh.Endpoint.builder();
  iroh.presetMinimal(b);
  if (alpns) b.alpns(alpns.map(bytes));
  b.bindAddr('127.0.0.1:0');
  b.relayMode(iroh.RelayMode.disabled());
  return b.bind();
}

const pattern = (n, seed) => Array.from({ length: n }, (_, i) => (i * 131 + seed * 17 + (i >> 10)) & 255);

async function main() {
  // ---- C clients against iroh ------------------------------------------------------------
  const server = await irohEndpoint([ALPN]);
  irohEchoServer(server);
  const ticket = iroh.EndpointTicket.fromAddr(server.addr()).toString();
  let r = await run(path.join(EXAMPLES, 'connect'), [ticket, 'Hello, world!', 'iroh-example/echo/0', 'none'], 30000);
  check(r.code === 0 && r.out === 'Hello, world!\n', `examples/connect to iroh: ${r.code} ${r.out} ${r.err}`);
  let t0 = Date.now();
  r = await run(API_TOOL, ['clients', ticket, ALPN, '20', '10', '20000'], 120000);
  check(r.code === 0 && /20 of 20 connections intact/.test(r.out), `20x10 streams to iroh: ${r.out} ${r.err}`);
  console.log(`C -> iroh: 20 connections x 10 streams x 20 kB echoed in ${Date.now() - t0} ms`);
  r = await run(API_TOOL, ['datagrams', ticket, ALPN, '20'], 60000);
  check(r.code === 0, `datagrams to iroh: ${r.out} ${r.err}`);
  console.log('C -> iroh: ' + r.out.trim().replace(/\n/g, '; '));
  await server.close();

  // ---- a peer that closes mid-stream ---------------------------------------------------
  const closer = await irohEndpoint([ALPN]);
  irohEchoServer(closer, async (conn) => {
    const bi = await conn.acceptBi();
    await bi.recv.read(7);
    await bi.send.writeAll(pattern(5000, 1));
    await new Promise((res) => setTimeout(res, 200));
    conn.close(7n, bytes('going away'));
  });
  r = await run(API_TOOL, ['read-until-closed', iroh.EndpointTicket.fromAddr(closer.addr()).toString(), ALPN], 30000);
  check(r.code === 0 && /connection closed/.test(r.out) && /by_peer 1 code 7 reason 'going away'/.test(r.out),
    `peer closing mid-stream: ${r.code} ${r.out} ${r.err}`);
  await closer.close();

  // ---- iroh against the C router --------------------------------------------------------
  const svc = await start(API_TOOL, ['serve', ALPN]);
  const addr = iroh.EndpointTicket.fromString(svc.ticket).endpointAddr();
  const clientEp = await irohEndpoint(null);
  t0 = Date.now();
  const results = await Promise.all(Array.from({ length: 20 }, async (_, c) => {
    const conn = await clientEp.connect(addr, bytes(ALPN));
    const oks = await Promise.all(Array.from({ length: 10 }, async (_, s) => {
      const data = pattern(3000 + s * 100, c * 10 + s);
      const bi = await conn.openBi();
      await bi.send.writeAll(data);
      await bi.send.finish();
      const back = await bi.recv.readToEnd(1 << 20);
      return back.length === data.length && back.every((v, k) => v === data[k]);
    }));
    conn.close(0n, bytes('bye!'));
    return oks.every((x) => x);
  }));
  check(results.every((x) => x), `iroh -> C router: 20 connections x 10 streams: ${results}`);
  console.log(`iroh -> C router: 20 connections x 10 streams echoed in ${Date.now() - t0} ms`);
  const dconn = await clientEp.connect(addr, bytes(ALPN));
  let dg = 0;
  for (let k = 0; k < 10; k++) {
    const d = pattern(50 + k, k);
    dconn.sendDatagram(d);
    const back = await Promise.race([dconn.readDatagram(), new Promise((res) => setTimeout(() => res(null), 2000))]);
    if (back && back.length === d.length && back.every((v, i) => v === d[i])) dg++;
  }
  check(dg >= 9, `iroh -> C router: ${dg} of 10 datagrams echoed`);
  dconn.close(0n, bytes('bye!'));
  await clientEp.close();
  await stop(svc);

  // ---- the accept filter refuses a peer by EndpointId -------------------------------------
  const banned = iroh.SecretKey.generate();
  const guarded = await start(API_TOOL, ['serve', ALPN, '--refuse', banned.public().toString()]);
  const b = iroh.Endpoint.builder();
  iroh.presetMinimal(b);
  b.secretKey(banned.toBytes());
  b.bindAddr('127.0.0.1:0');
  b.relayMode(iroh.RelayMode.disabled());
  const bannedEp = await b.bind();
  let refusedWhy = null;
  try {
    const conn = await bannedEp.connect(iroh.EndpointTicket.fromString(guarded.ticket).endpointAddr(), bytes(ALPN));
    refusedWhy = await Promise.race([conn.closed(), new Promise((res) => setTimeout(() => res('not closed'), 10000))]);
  } catch (e) { refusedWhy = e.message; }
  check(/403/.test(String(refusedWhy)), `a refused peer sees code 403: ${refusedWhy}`);
  await bannedEp.close();
  await stop(guarded);

  // ---- our endpoint closes with connections open --------------------------------------------
  const closing = await start(API_TOOL, ['serve', ALPN, '--close-after', '1500']);
  const ep2 = await irohEndpoint(null);
  const conn2 = await ep2.connect(iroh.EndpointTicket.fromString(closing.ticket).endpointAddr(), bytes(ALPN));
  const why2 = await Promise.race([conn2.closed(), new Promise((res) => setTimeout(() => res('not closed'), 15000))]);
  check(/^closed by peer: (0|.*\(code 0\))$/.test(String(why2)), `endpoint close seen by iroh as code 0: ${why2}`);
  await ep2.close();
  await new Promise((res) => { closing.proc.on('close', res); setTimeout(res, 10000); });

  // ---- the listen example with an iroh client ---------------------------------------------
  const lis = await start(path.join(EXAMPLES, 'listen'), [ALPN, '127.0.0.1:0', 'none']);
  const ep3 = await irohEndpoint(null);
  const conn3 = await ep3.connect(iroh.EndpointTicket.fromString(lis.ticket).endpointAddr(), bytes(ALPN));
  const bi3 = await conn3.openBi();
  await bi3.send.writeAll(bytes('Hello, world!'));
  await bi3.send.finish();
  const back3 = Buffer.from(await bi3.recv.readToEnd(1000)).toString();
  check(back3 === 'Hello, world!', `examples/listen echo for iroh: ${back3}`);
  conn3.close(0n, bytes('bye!'));
  await ep3.close();
  lis.proc.kill('SIGTERM');
  clearTimeout(overall);
}

main().then(finish, (e) => { console.error('FAIL: ' + (e.stack || e)); killAll(); process.exit(1); });
