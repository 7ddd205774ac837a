// Direct QUIC connections over UDP on loopback between iroh-c and the real iroh 1.0.2
// peer, both directions: echoes of a few bytes and of 4 MiB, several streams at once,
// datagrams, and the failures (wrong EndpointId, wrong ALPN) ending cleanly.
'use strict';
const { spawn } = require('child_process');
const { loadIroh, check, finish, pattern, irohEchoServer, irohEcho } = require('./peer');
const iroh = loadIroh();
const IROH_C = process.env.IROH_C;
const ALPN = 'iroh-example/echo/0';
const bytes = (s) => Array.from(Buffer.from(s));

const children = new Set();
function killAll() { for (const c of children) { try { c.kill('SIGKILL'); } catch (e) { /* gone */ } } }
process.on('exit', killAll);
process.on('uncaughtException', (e) => { console.error('FAIL: ' + e.stack); killAll(); process.exit(1); });
const overall = setTimeout(() => { console.error('FAIL: test timed out'); killAll(); process.exit(1); }, 240000);

function runIrohC(args, input, timeoutMs) {
  return new Promise((resolve) => {
    // relays off: these connections are direct (the relayed ones: test_relay_endpoint.js)
    if (args[0] === 'connect') args = ['connect', '--no-relay'].concat(args.slice(1));
    const p = spawn(IROH_C, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(p);
    const out = [], err = [];
    p.stdout.on('data', (d) => out.push(d));
    p.stderr.on('data', (d) => err.push(d));
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code, sig) => {
      clearTimeout(t);
      children.delete(p);
      resolve({ code, sig, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() });
    });
    p.stdin.on('error', () => {});
    p.stdin.end(input);
  });
}

function startIrohCListen(bind, secretFile, extra, env) {
  return new Promise((resolve, reject) => {
    const args = ['listen', '--no-relay', '--alpn', ALPN, '--echo', '--bind', bind || '127.0.0.1:0'].concat(extra || []);
    if (secretFile) args.push('--secret-file', secretFile);
    const p = spawn(IROH_C, args, { stdio: ['ignore', 'pipe', 'pipe'], env: Object.assign({}, process.env, env || {}) });
    children.add(p);
    let buf = '', err = '';
    p.stderr.on('data', (d) => { err += d; if (!env) process.stderr.write('[iroh-c listen] ' + d); });
    p.stdout.on('data', (d) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) resolve({ proc: p, ticket: buf.slice(0, nl).trim(), stderr: () => err });
    });
    p.on('close', (code) => { children.delete(p); reject(new Error('listen exited ' + code)); });
  });
}

async function irohEndpoint(alpns) {
  const b = iroh.Endpoint.builder();
  iroh.presetMinimal(b);
  if (alpns) b.alpns(alpns.map(bytes));
  b.bindAddr('127.0.0.1:0');
  b.relayMode(iroh.RelayMode.disabled());
  return b.bind();
}

async function main() {
  // ---- iroh-c connects to iroh --------------------------------------------------------
  const server = await irohEndpoint([ALPN]);
  irohEchoServer(server);
  const ticket = iroh.EndpointTicket.fromAddr(server.addr()).toString();

  for (const n of [13, 4 << 20]) {
    const input = pattern(n, 1);
    const t0 = Date.now();
    const r = await runIrohC(['connect', ticket, '--alpn', ALPN, '--stats'], input, 60000);
    check(r.code === 0 && r.stdout.equals(input),
      `iroh-c connect echo of ${n} bytes: exit ${r.code} ${r.sig || ''}, got ${r.stdout.length} bytes, ${r.stderr.trim()}`);
    // iroh acknowledged our path MTU probe: the transfer used 1452-byte datagrams. The
    // path at the end is a direct one, not necessarily 127.0.0.1: with holepunching (on by
    // default) iroh advertises its interface addresses too, and iroh's selection (which
    // iroh-c follows) prefers an IPv6 one by 3 ms
    if (n > 13)
      check(/path direct \S+, rtt [\d.]+ ms, path mtu 1452,/.test(r.stderr),
        `path MTU probe acknowledged by iroh: ${r.stderr.trim()}`);
    console.log(`iroh-c -> iroh: ${n} bytes echoed in ${Date.now() - t0} ms`);
  }

  // all direct addresses at once: a dead address sorts first in the ticket
  const withDead = iroh.EndpointTicket.fromAddr(new iroh.EndpointAddr(server.addr().id(), null,
    ['127.0.0.1:9'].concat(server.addr().directAddresses()))).toString();
  const dr = await runIrohC(['connect', withDead, '--alpn', ALPN, '--timeout', '5'], Buffer.from('fan-out'), 30000);
  check(dr.code === 0 && dr.stdout.toString() === 'fan-out', `dead address first in the ticket: ${dr.code} ${dr.stderr.trim()}`);

  // several ALPNs offered: iroh picks the one it speaks
  const two = await runIrohC(['connect', ticket, '--alpn', 'iroh-example/echo/9', '--alpn', ALPN], Buffer.from('v?'), 30000);
  check(two.code === 0 && two.stdout.toString() === 'v?', `two ALPNs offered to iroh: ${two.code} ${two.stderr.trim()}`);

  // wrong EndpointId: a ticket with iroh's address but another key
  const other = iroh.SecretKey.generate().public();
  const wrong = iroh.EndpointTicket.fromAddr(new iroh.EndpointAddr(other, null, server.addr().directAddresses())).toString();
  let t0 = Date.now();
  let r = await runIrohC(['connect', wrong, '--alpn', ALPN, '--timeout', '10'], Buffer.from('x'), 30000);
  check(r.code === 1 && /wrong key|unknown_ca/.test(r.stderr),
    `wrong EndpointId: exit ${r.code}, stderr ${r.stderr.trim()}`);
  console.log(`wrong EndpointId refused in ${Date.now() - t0} ms: ${r.stderr.trim()}`);

  // wrong ALPN
  t0 = Date.now();
  r = await runIrohC(['connect', ticket, '--alpn', 'not-this/0', '--timeout', '10'], Buffer.from('x'), 30000);
  check(r.code === 1 && /no_application_protocol|ALPN/.test(r.stderr),
    `wrong ALPN: exit ${r.code}, stderr ${r.stderr.trim()}`);
  console.log(`wrong ALPN refused in ${Date.now() - t0} ms: ${r.stderr.trim()}`);

  // Retry: an iroh server that asks every new client to prove its address first
  const retrying = await irohEndpoint([ALPN]);
  let retriesSent = 0;
  (async () => {
    for (;;) {
      const inc = await retrying.acceptNext();
      if (!inc) return;
      if (!(await inc.remoteAddrValidated())) { retriesSent++; await inc.retry(); continue; }
      (async () => {
        const conn = await (await inc.accept()).connect();
        const bi = await conn.acceptBi();
        await bi.send.writeAll(await bi.recv.readToEnd(1 << 20));
        await bi.send.finish();
      })().catch(() => {});
    }
  })().catch(() => {});
  const rticket = iroh.EndpointTicket.fromAddr(retrying.addr()).toString();
  r = await runIrohC(['connect', rticket, '--alpn', ALPN], Buffer.from('after a retry'), 30000);
  check(r.code === 0 && r.stdout.toString() === 'after a retry' && retriesSent === 1,
    `iroh-c follows iroh's Retry: exit ${r.code}, ${retriesSent} retries, ${r.stderr.trim()}`);
  await retrying.close();

  // nobody there: a clear timeout, no hang
  const dead = iroh.EndpointTicket.fromAddr(new iroh.EndpointAddr(other, null, ['127.0.0.1:9'])).toString();
  r = await runIrohC(['connect', dead, '--alpn', ALPN, '--timeout', '2'], Buffer.from('x'), 30000);
  check(r.code === 1 && /timed out/.test(r.stderr), `unreachable peer: exit ${r.code}, stderr ${r.stderr.trim()}`);
  await server.close();

  // ---- iroh connects to iroh-c -----------------------------------------------------------
  const listener = await startIrohCListen();
  const client = await irohEndpoint(null);
  const addr = iroh.EndpointTicket.fromString(listener.ticket).endpointAddr();
  t0 = Date.now();
  const conn = await client.connect(addr, bytes(ALPN));
  console.log(`iroh -> iroh-c: connected in ${Date.now() - t0} ms`);
  check(conn.remoteId().toString() === addr.id().toString(), 'iroh sees the EndpointId of the ticket');

  const echo = (n, seed) => irohEcho(conn, n, seed);
  check(await echo(13, 2), 'iroh -> iroh-c: 13-byte echo');
  t0 = Date.now();
  check(await echo(4 << 20, 3), 'iroh -> iroh-c: 4 MiB echo');
  console.log(`iroh -> iroh-c: 4 MiB echoed in ${Date.now() - t0} ms`);
  // several streams at once
  const many = await Promise.all(Array.from({ length: 8 }, (_, k) => echo(1000 + k * 5000, 10 + k)));
  check(many.every((x) => x), `8 concurrent streams: ${many}`);
  // datagrams
  let dgOk = 0;
  for (let k = 0; k < 5; k++) {
    const d = Array.from(pattern(100 + k, k));
    conn.sendDatagram(d);
    const back = await Promise.race([conn.readDatagram(), new Promise((res) => setTimeout(() => res(null), 3000))]);
    if (back && Buffer.from(back).equals(Buffer.from(d))) dgOk++;
  }
  check(dgOk >= 4, `datagram echoes: ${dgOk} of 5 came back`);
  conn.close(0n, bytes('bye!'));
  await client.close();

  // an iroh-c listener that validates clients with a Retry first
  const rlistener = await startIrohCListen('127.0.0.1:0', null, ['--retry'], { IROH_LOG: 'debug' });
  const client4 = await irohEndpoint(null);
  const conn4 = await client4.connect(iroh.EndpointTicket.fromString(rlistener.ticket).endpointAddr(), bytes(ALPN));
  const bi4 = await conn4.openBi();
  await bi4.send.writeAll(bytes('retried'));
  await bi4.send.finish();
  const back4 = Buffer.from(await bi4.recv.readToEnd(100)).toString();
  check(back4 === 'retried' && /Retry sent/.test(rlistener.stderr()), `iroh follows iroh-c's Retry: ${back4}`);
  conn4.close(0n, bytes('bye!'));
  await client4.close();
  rlistener.proc.kill('SIGTERM');
  await new Promise((res) => { rlistener.proc.on('close', res); setTimeout(res, 3000); });

  // iroh dialing iroh-c with the wrong key fails cleanly
  const badAddr = new iroh.EndpointAddr(other, null, addr.directAddresses());
  const client2 = await irohEndpoint(null);
  let failed = false;
  try { await client2.connect(badAddr, bytes(ALPN)); } catch (e) { failed = true; }
  check(failed, 'iroh refuses iroh-c when the EndpointId does not match');
  await client2.close();

  listener.proc.kill('SIGTERM');
  await new Promise((res) => { listener.proc.on('close', res); setTimeout(res, 3000); });

  // stateless reset: the listener dies and comes back on the same port with the same
  // key; iroh's next packet on the old connection is answered with a stateless reset
  const fs = require('fs'), os = require('os'), path = require('path');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iroh-c-reset-'));
  const keyFile = path.join(dir, 'key');
  fs.writeFileSync(keyFile, Buffer.from(iroh.SecretKey.generate().toBytes()).toString('hex') + '\n', { mode: 0o600 });
  const first = await startIrohCListen('127.0.0.1:0', keyFile);
  const firstAddr = iroh.EndpointTicket.fromString(first.ticket).endpointAddr();
  const port = firstAddr.directAddresses()[0].split(':').pop();
  const client3 = await irohEndpoint(null);
  const conn3 = await client3.connect(firstAddr, bytes(ALPN));
  const closed3 = conn3.closed();
  first.proc.kill('SIGKILL');
  await new Promise((res) => first.proc.on('close', res));
  const second = await startIrohCListen('127.0.0.1:' + port, keyFile);
  check(second.ticket === first.ticket, 'the restarted listener has the same ticket');
  try {
    const bi = await conn3.openBi();
    await bi.send.writeAll([1, 2, 3]);
    await bi.send.finish();
    await bi.recv.readToEnd(10);
  } catch (e) { /* the reset ends the stream */ }
  const why = await Promise.race([closed3, new Promise((res) => setTimeout(() => res('no close'), 20000))]);
  check(/reset/i.test(String(why)), `iroh's connection ends with a stateless reset: ${why}`);
  // iroh's Endpoint.close() sometimes never returns after its connection was reset
  // (seen in about 1 run of 3 with the 1.1.0 binding); do not let that hang the test
  await Promise.race([client3.close(), new Promise((res) => setTimeout(res, 5000))]);
  second.proc.kill('SIGTERM');
  await new Promise((res) => { second.proc.on('close', res); setTimeout(res, 3000); });
  fs.rmSync(dir, { recursive: true, force: true });
  clearTimeout(overall);
}

main().then(finish, (e) => { console.error('FAIL: ' + (e.stack || e)); killAll(); process.exit(1); });
