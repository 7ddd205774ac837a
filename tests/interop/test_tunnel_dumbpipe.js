// iroh-c's TCP tunnels against the real iroh peer speaking dumbpipe's protocol
// (dumbpipe_tcp_peer.js), both ways on loopback, in front of a local web server:
//  - a dumbpipe-style connect-tcp on the real peer -> `iroh-c listen-tcp`: 20 concurrent
//    requests (one connection and stream each, as dumbpipe dials), a 3 MB answer;
//  - `iroh-c connect-tcp` -> a listen-tcp forwarder on the real peer that takes every
//    stream of a connection: 20 concurrent requests over the one connection iroh-c
//    opens; then -> one that serves the first stream of each connection and closes it
//    (dumbpipe 0.39's listen-tcp): back-to-back requests, iroh-c finding out and giving
//    each local connection a connection of its own, then concurrent requests; and
//    --connection-per-stream from the start.
'use strict';
const http = require('http');
const { spawn } = require('child_process');
const { loadIroh, check, finish, track, killAll, pattern } = require('./peer');
const dt = require('./dumbpipe_tcp_peer');
const iroh = loadIroh();
const IROH_C = process.env.IROH_C;

process.on('uncaughtException', (e) => { console.error('FAIL: ' + e.stack); killAll(); process.exit(1); });
process.on('unhandledRejection', (e) => { console.error('FAIL: ' + (e && e.stack)); killAll(); process.exit(1); });
setTimeout(() => { console.error('FAIL: test timed out'); killAll(); process.exit(1); }, 240000).unref();

const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

// iroh-c in the background; resolves with the process and the first match of re on stderr
function irohC(args, re) {
  const p = track(spawn(IROH_C, args, { stdio: ['ignore', 'ignore', 'pipe'],
    env: Object.assign({}, process.env, { IROH_C_ADDRESS_LOOKUP: 'none', IROH_SECRET: '' }) }));
  let err = '';
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`iroh-c ${args[0]} said nothing matching ${re}: ${err}`)), 20000);
    p.stderr.on('data', (d) => {
      err += d;
      const m = re.exec(err);
      if (m) { clearTimeout(t); resolve({ proc: p, m, stderr: () => err }); }
    });
    p.on('close', (code) => reject(new Error(`iroh-c ${args[0]} exited ${code}: ${err}`)));
  });
}

function get(port, path) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: 30000 }, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => resolve(Buffer.concat(parts)));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

async function getAll(port, n, size) {
  const want = pattern(size, 5);
  const got = await Promise.all(Array.from({ length: n }, () => get(port, `/bytes/${size}`).catch((e) => e)));
  return got.filter((b) => Buffer.isBuffer(b) && b.equals(want)).length;
}

async function main() {
  const web = http.createServer((req, res) => {
    const m = /^\/bytes\/(\d+)$/.exec(req.url);
    if (m) setTimeout(() => res.end(pattern(Number(m[1]), 5)), 100);
    else res.end('hello world\n');
  });
  await new Promise((res) => web.listen(0, '127.0.0.1', res));
  const webPort = web.address().port;

  // --- the real peer dials (dumbpipe connect-tcp) -> iroh-c listen-tcp -> web ---------
  const lt = await irohC(['listen-tcp', '--no-relay', '--bind', '127.0.0.1:0', '--host', `127.0.0.1:${webPort}`],
    /^iroh-c: ticket: (endpoint[a-z0-9]+)$/m);
  const ep = await dt.endpoint(iroh);
  const ct = await dt.connectTcp(ep, iroh.EndpointTicket.fromString(lt.m[1]).endpointAddr());
  check((await get(ct.port, '/hello')).toString() === 'hello world\n', 'real peer -> iroh-c listen-tcp: /hello');
  const n1 = await getAll(ct.port, 20, 10000);
  check(n1 === 20, `real peer -> iroh-c listen-tcp: ${n1} of 20 concurrent requests intact: ${lt.stderr()}`);
  const big = await get(ct.port, '/bytes/3000000');
  check(big.equals(pattern(3000000, 5)), `real peer -> iroh-c listen-tcp: 3 MB answer intact (${big.length} bytes)`);
  ct.server.close();

  // --- iroh-c connect-tcp -> the real peer (every stream of a connection) -> web ------
  const ep2 = await dt.endpoint(iroh);
  const state = dt.listenTcp(ep2, webPort);
  const ticket2 = iroh.EndpointTicket.fromAddr(ep2.addr()).toString();
  const c2 = await irohC(['connect-tcp', '--no-relay', '--addr', '127.0.0.1:0', ticket2],
    /^iroh-c: connect-tcp: listening on 127\.0\.0\.1:(\d+)$/m);
  const port2 = Number(c2.m[1]);
  check((await get(port2, '/hello')).toString() === 'hello world\n', `iroh-c connect-tcp -> real peer: /hello: ${c2.stderr()}`);
  const n2 = await getAll(port2, 20, 10000);
  check(n2 === 20, `iroh-c connect-tcp -> real peer: ${n2} of 20 concurrent requests intact: ${c2.stderr()}`);
  check(state.conns === 1 && state.streams === 21 && state.badHello === 0,
    `iroh-c connect-tcp used one connection with a stream each: ${JSON.stringify(state)}`);

  // --- iroh-c connect-tcp -> dumbpipe 0.39's listen-tcp (one stream per connection) ---
  const ep3 = await dt.endpoint(iroh);
  const state3 = dt.listenTcp(ep3, webPort, { perConnection: true });
  const ticket3 = iroh.EndpointTicket.fromAddr(ep3.addr()).toString();
  const c3 = await irohC(['connect-tcp', '--no-relay', '--addr', '127.0.0.1:0', ticket3],
    /^iroh-c: connect-tcp: listening on 127\.0\.0\.1:(\d+)$/m);
  // back to back: the peer's close of the first connection may come after the second
  // request went out on it (that one is reset); from then on each local connection
  // gets a connection of its own
  let seq = 0;
  for (let i = 0; i < 8; i++) {
    const b = await get(Number(c3.m[1]), '/hello').catch((e) => Buffer.from(String(e)));
    if (b.toString() === 'hello world\n') seq++;
  }
  check(seq >= 7, `iroh-c connect-tcp -> one-stream listener, back to back: ${seq} of 8: ${c3.stderr()}`);
  check(/serves one stream per connection/.test(c3.stderr()), `connect-tcp did not switch to a connection per stream: ${c3.stderr()}`);
  const n3 = await getAll(Number(c3.m[1]), 10, 10000);
  check(n3 === 10, `iroh-c connect-tcp -> one-stream listener: ${n3} of 10 concurrent requests: ${c3.stderr()}`);
  // --connection-per-stream from the start: concurrent requests work at once
  const ep4 = await dt.endpoint(iroh);
  const state4 = dt.listenTcp(ep4, webPort, { perConnection: true });
  const c4 = await irohC(['connect-tcp', '--no-relay', '--connection-per-stream', '--addr', '127.0.0.1:0',
    iroh.EndpointTicket.fromAddr(ep4.addr()).toString()], /^iroh-c: connect-tcp: listening on 127\.0\.0\.1:(\d+)$/m);
  const n4 = await getAll(Number(c4.m[1]), 10, 10000);
  check(n4 === 10 && state4.conns === 10, `connect-tcp --connection-per-stream -> one-stream listener: ${n4} of 10, ` +
    `${state4.conns} connections: ${c4.stderr()}`);

  for (const c of [lt, c2, c3, c4]) c.proc.kill('SIGINT');
  await Promise.all([lt, c2, c3, c4].map((c) => new Promise((res) => {
    if (c.proc.exitCode !== null) res(); else c.proc.on('close', res);
  })));
  check([lt, c2, c3, c4].every((c) => c.proc.exitCode === 130), 'the tunnels exit 130 on SIGINT: ' +
    [lt, c2, c3, c4].map((c) => c.proc.exitCode).join(','));
  web.close();
  await ep.close();
  await ep2.close();
  await ep3.close();
  await ep4.close();
}

main().then(finish);
