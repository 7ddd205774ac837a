// dumbpipe's protocol between iroh-c and the real iroh peer (dumbpipe_peer.js), both
// ways on loopback: `iroh-c listen` and `iroh-c connect` without --alpn speak
// DUMBPIPEV0 with the hello; data both ways; connect --recv-only; the echo service on
// DUMBPIPEV0 (streams of one connection, one without the hello); a peer whose stream
// does not start with "hello" is refused (iroh-c exits 1, the peer sees the close);
// --alpn keeps the raw pipe (no hello); IROH_SECRET in hex and in base32 gives the
// EndpointId iroh derives from that key.
'use strict';
const { spawn } = require('child_process');
const { loadIroh, check, finish, track, killAll, withTimeout, pattern } = require('./peer');
const dp = require('./dumbpipe_peer');
const iroh = loadIroh();
const IROH_C = process.env.IROH_C;

process.on('uncaughtException', (e) => { console.error('FAIL: ' + e.stack); killAll(); process.exit(1); });
process.on('unhandledRejection', (e) => { console.error('FAIL: ' + (e && e.stack)); killAll(); process.exit(1); });
setTimeout(() => { console.error('FAIL: test timed out'); killAll(); process.exit(1); }, 180000).unref();

const hexOf = (b) => Buffer.from(b).toString('hex');
function base32(buf) { // RFC 4648, lowercase, unpadded
  const a = 'abcdefghijklmnopqrstuvwxyz234567';
  let bits = 0, v = 0, out = '';
  for (const byte of buf) {
    v = (v << 8) | byte; bits += 8;
    while (bits >= 5) { out += a[(v >>> (bits - 5)) & 31]; bits -= 5; }
  }
  if (bits) out += a[(v << (5 - bits)) & 31];
  return out;
}

// runs iroh-c; resolves when it exits: { code, stdout: Buffer, stderr }; onStderr(text so
// far) sees stderr as it comes
function irohC(args, { input, env, onStderr, timeoutMs = 60000 } = {}) {
  const p = track(spawn(IROH_C, args, { stdio: ['pipe', 'pipe', 'pipe'],
    env: Object.assign({}, process.env, { IROH_SECRET: '' }, env || {}) }));
  const out = [];
  let err = '';
  p.stdout.on('data', (d) => out.push(d));
  p.stderr.on('data', (d) => { err += d; if (onStderr) onStderr(err); });
  p.stdin.on('error', () => {});
  if (input === null) { /* stdin stays open */ } else p.stdin.end(input || Buffer.alloc(0));
  const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
  const done = new Promise((res) => p.on('close', (code, sig) => {
    clearTimeout(t);
    res({ code, sig, stdout: Buffer.concat(out), stderr: err });
  }));
  return { proc: p, done };
}

// `iroh-c listen` (a dumb pipe): resolves to { ticket, addr, done } once it printed
// its ticket on stderr
function irohCListen(extra, opts = {}) {
  return new Promise((resolve, reject) => {
    let got = false;
    const r = irohC(['listen', '--no-relay', '--bind', '127.0.0.1:0', ...extra], Object.assign({}, opts, {
      onStderr: (err) => {
        const m = /^iroh-c: ticket: (endpoint[a-z0-9]+)$/m.exec(err);
        if (m && !got) {
          got = true;
          resolve({ ticket: m[1], addr: iroh.EndpointTicket.fromString(m[1]).endpointAddr(), done: r.done });
        }
      },
    }));
    r.done.then((x) => { if (!got) reject(new Error(`listen exited ${x.code}: ${x.stderr}`)); });
  });
}

async function main() {
  const client = await dp.endpoint(iroh);

  // ---- iroh-c listen <- the iroh peer connects: hello, data both ways ------------------
  {
    const down = pattern(300000, 1), up = pattern(200000, 2);
    const key = iroh.SecretKey.generate();
    const keyHex = hexOf(key.toBytes());
    const l = await irohCListen([], { input: down, env: { IROH_SECRET: keyHex } });
    const r = await withTimeout(dp.connect(client, l.addr, { input: up }), 60000, 'connect to iroh-c listen');
    check(r.received.equals(down), `iroh peer -> iroh-c listen: got ${r.received.length} bytes of listen's stdin, want ${down.length}`);
    const res = await withTimeout(l.done, 20000, 'iroh-c listen exit');
    check(res.code === 0, `iroh-c listen exited ${res.code}: ${res.stderr}`);
    check(res.stdout.equals(up), `iroh-c listen's stdout: ${res.stdout.length} bytes, want the peer's ${up.length}`);
    check(res.stderr.includes('connection from ' + hexOf(client.id().toBytes())), `listen did not name the iroh peer: ${res.stderr}`);
    // IROH_SECRET in hex: the EndpointId iroh derives from that key
    const ticketId = hexOf(iroh.EndpointTicket.fromString(l.ticket).endpointAddr().id().toBytes());
    check(ticketId === hexOf(key.public().toBytes()), `IROH_SECRET (hex): listen's id ${ticketId}, iroh derives ${hexOf(key.public().toBytes())}`);
    check(!res.stderr.includes('using secret key'), `listen with IROH_SECRET still made a key: ${res.stderr}`);
  }

  // ---- the iroh peer listens (dumbpipe) <- iroh-c connect: hello checked, both ways ----
  const server = await dp.endpoint(iroh);
  const serverTicket = iroh.EndpointTicket.fromAddr(server.addr()).toString();
  {
    const down = pattern(250000, 3), up = pattern(400000, 4);
    const key = iroh.SecretKey.generate();
    const served = dp.listen(server, { input: down }, { waitClosedMs: 5000 });
    const c = irohC(['connect', '--no-relay', serverTicket], { input: up, env: { IROH_SECRET: base32(key.toBytes()) } });
    const s = await withTimeout(served, 60000, 'the iroh dumbpipe listener');
    const res = await withTimeout(c.done, 20000, 'iroh-c connect exit');
    check(s.hello.equals(dp.HELLO), `iroh-c connect's stream started with ${JSON.stringify(s.hello.toString())}`);
    check(s.received.equals(up), `iroh-c connect -> iroh peer: got ${s.received.length} bytes, want ${up.length}`);
    check(res.code === 0, `iroh-c connect exited ${res.code}: ${res.stderr}`);
    check(res.stdout.equals(down), `iroh-c connect's stdout: ${res.stdout.length} bytes, want ${down.length}`);
    // IROH_SECRET in base32: the peer sees the id iroh derives from the key
    check(s.remoteId && hexOf(s.conn.remoteId().toBytes()) === hexOf(key.public().toBytes()),
      `IROH_SECRET (base32): the peer saw ${hexOf(s.conn.remoteId().toBytes())}, iroh derives ${hexOf(key.public().toBytes())}`);
  }

  // ---- connect --recv-only: nothing sent (stdin never read), the answer arrives -------
  {
    const down = pattern(100000, 5);
    const served = dp.listen(server, { input: down }, { waitClosedMs: 5000 });
    // stdin stays open: --recv-only must not wait for it
    const c = irohC(['connect', '--no-relay', '--recv-only', serverTicket], { input: null });
    const s = await withTimeout(served, 60000, 'the iroh dumbpipe listener (recv-only)');
    const res = await withTimeout(c.done, 20000, 'iroh-c connect --recv-only exit');
    check(s.received.length === 0, `connect --recv-only sent ${s.received.length} bytes`);
    check(res.code === 0 && res.stdout.equals(down), `connect --recv-only: exit ${res.code}, ${res.stdout.length} bytes of ${down.length}: ${res.stderr}`);
    // without IROH_SECRET, stderr not a terminal: a new key, not shown (the note on a
    // terminal: tests/cli/test_dumbpipe.sh)
    check(res.stderr === '', `connect --recv-only printed: ${res.stderr}`);
  }

  // ---- a wrong hello: iroh-c listen refuses it, exits 1; the peer sees why -------------
  {
    const l = await irohCListen([], { input: Buffer.from('never sent') });
    let err = null;
    try {
      await withTimeout(dp.connect(client, l.addr, { input: Buffer.from('data') }, { hello: 'HELO!' }), 20000, 'wrong hello');
    } catch (e) { err = e; }
    const res = await withTimeout(l.done, 20000, 'iroh-c listen exit after a wrong hello');
    check(res.code === 1, `listen after a wrong hello exited ${res.code}: ${res.stderr}`);
    check(/does not speak dumbpipe's protocol .*"hello".*connection closed/.test(res.stderr),
      `listen's message for a wrong hello: ${res.stderr}`);
    check(res.stdout.length === 0, `listen wrote ${res.stdout.length} bytes of a peer with a wrong hello`);
    check(err && /invalid handshake/.test(String(err.message || err)), `the peer was not told: ${err}`);
  }

  // ---- the echo service on dumbpipe's protocol: streams of one connection --------------
  {
    const e = irohC(['listen', '--no-relay', '--bind', '127.0.0.1:0', '--echo'], { input: null });
    const ticket = await withTimeout(new Promise((res) => {
      let out = '';
      e.proc.stdout.on('data', (d) => { out += d; if (out.includes('\n')) res(out.split('\n')[0]); });
    }), 20000, 'the echo ticket');
    const conn = await client.connect(iroh.EndpointTicket.fromString(ticket).endpointAddr(), Array.from(Buffer.from(dp.ALPN)));
    const inputs = [pattern(1000, 6), pattern(70000, 7), pattern(5, 8)];
    const backs = await withTimeout(Promise.all(inputs.map((input) => dp.openStream(conn, { input }))), 30000, 'echo streams');
    check(backs.every((b, i) => b.received.equals(inputs[i])), `echo (dumbpipe) over 3 streams: ${backs.map((b) => b.received.length)}`);
    let err = null;
    try {
      await withTimeout(dp.openStream(conn, { input: Buffer.from('x') }, { hello: 'howdy' }), 20000, 'a stream without the hello');
    } catch (x) { err = x; }
    check(err !== null, 'the echo service echoed a stream that did not start with the hello');
    const again = await withTimeout(dp.openStream(conn, { input: Buffer.from('still here') }), 20000, 'echo after a bad stream');
    check(again.received.toString() === 'still here', `echo after a bad stream: ${again.received}`);
    conn.close(0n, Array.from(Buffer.from('bye')));
    e.proc.kill('SIGTERM');
    const res = await withTimeout(e.done, 10000, 'the echo listener exit');
    check(res.code === 143, `the echo listener after SIGTERM: ${res.code}: ${res.stderr}`);
  }

  // ---- --alpn: the raw pipe, no hello, for other protocols ------------------------------
  {
    const ALPN = 'raw/0';
    const rawServer = await dp.endpoint(iroh, { alpns: [ALPN] });
    const up = Buffer.from('raw bytes, no hello');
    const served = (async () => {
      const inc = await rawServer.acceptNext();
      const conn = await (await inc.accept()).connect();
      const bi = await conn.acceptBi();
      const got = Buffer.from(await bi.recv.readToEnd(1 << 20));
      await bi.send.writeAll(Array.from(Buffer.from('back')));
      await bi.send.finish();
      await Promise.race([conn.closed(), new Promise((r) => setTimeout(r, 5000))]);
      return got;
    })();
    const c = irohC(['connect', '--no-relay', '--alpn', ALPN, iroh.EndpointTicket.fromAddr(rawServer.addr()).toString()], { input: up });
    const got = await withTimeout(served, 30000, 'the raw server');
    const res = await withTimeout(c.done, 20000, 'iroh-c connect --alpn exit');
    check(got.equals(up), `connect --alpn sent ${JSON.stringify(got.toString())}, want the bytes alone`);
    check(res.code === 0 && res.stdout.toString() === 'back', `connect --alpn: exit ${res.code}, ${JSON.stringify(res.stdout.toString())}: ${res.stderr}`);
    // and a dumbpipe peer cannot reach a raw listener: the ALPNs differ
    const l = await irohCListen(['--alpn', ALPN], { input: null });
    let err = null;
    try { await withTimeout(client.connect(l.addr, Array.from(Buffer.from(dp.ALPN))), 20000, 'alpn mismatch'); } catch (e) { err = e; }
    check(err !== null, 'a dumbpipe peer connected to listen --alpn raw/0');
    l.done.then(() => {}); // killed at the end
  }

  finish();
}

main().catch((e) => { console.error('FAIL: ' + (e && e.stack)); killAll(); process.exit(1); });
