// Shared helpers for the interop tests: loads the real iroh peer (n0's Node.js binding,
// pinned in package.json), runs the iroh-c command, and a seeded random generator so a
// failing case can be replayed (IROH_TEST_SEED).
'use strict';
const path = require('path');
const { spawnSync } = require('child_process');

function loadIroh() {
  try {
    return require(path.join(__dirname, 'node_modules', '@number0', 'iroh'));
  } catch (e) {
    console.error('interop: the iroh test peer is not installed; run `make test` ' +
      '(scripts/install-deps.sh test installs it): ' + e.message);
    process.exit(1);
  }
}

const IROH_C = process.env.IROH_C;
if (!IROH_C) {
  console.error('interop: IROH_C (path of the iroh-c command) is not set; run through ctest');
  process.exit(1);
}

function run(args) {
  const r = spawnSync(IROH_C, args, { encoding: 'utf8', timeout: 20000 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

// xorshift128+ on BigInt-free 32-bit halves; enough for test data
function rng(seed) {
  let s = [seed >>> 0 || 1, 0x9e3779b9, 0x7f4a7c15, 0x85ebca6b];
  function next() {
    let t = s[3];
    let x = s[0];
    s[3] = s[2]; s[2] = s[1]; s[1] = x;
    t ^= t << 11; t ^= t >>> 8;
    s[0] = (t ^ x ^ (x >>> 19)) >>> 0;
    return s[0];
  }
  for (let i = 0; i < 16; i++) next();
  return {
    u32: next,
    int: (n) => next() % n,
    pick: (arr) => arr[next() % arr.length],
    bytes: (n) => Array.from({ length: n }, () => next() & 0xff),
  };
}

let passed = 0, failed = 0;
function check(cond, what) {
  if (cond) { passed++; return true; }
  failed++;
  if (failed <= 30) console.error('FAIL: ' + what);
  return false;
}
function finish() {
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

// ---- processes a test starts: all killed when the test ends, also on failure ----
const { spawn } = require('child_process');
const net = require('net');
const children = new Set();
function killAll() {
  for (const c of children) { try { c.kill('SIGKILL'); } catch (e) { /* gone */ } }
}
process.on('exit', killAll);
function track(p) {
  children.add(p);
  p.on('close', () => children.delete(p));
  return p;
}

function withTimeout(p, ms, what) {
  let t;
  return Promise.race([p, new Promise((_, rej) => { t = setTimeout(() => rej(new Error('timeout: ' + what)), ms); })])
    .finally(() => clearTimeout(t));
}

function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); });
  });
}

// `iroh-c relay` on 127.0.0.1 (a free port, or the given one): resolves to
// { proc, port, url, stats() } once it prints its "relay listening" line.
async function startRelay(extra = [], fixedPort = 0) {
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = fixedPort || await freePort();
    const p = track(spawn(IROH_C, ['relay', '--listen', `127.0.0.1:${port}`, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] }));
    const relay = { proc: p, port, url: `http://127.0.0.1:${port}`, stderr: '', waiters: [] };
    let partial = '';
    p.stderr.on('data', (d) => {
      const lines = (partial + d).split('\n');
      partial = lines.pop();
      for (const line of lines) {
        if (!line.startsWith('relay stats: ')) { relay.stderr += line + '\n'; continue; }
        relay.lastStats = line;
        const w = relay.waiters; relay.waiters = []; w.forEach((f) => f(line));
      }
    });
    relay.exited = new Promise((res) => p.on('close', (code, sig) => res({ code, sig })));
    relay.stats = async () => {
      const got = new Promise((res) => relay.waiters.push(res));
      p.kill('SIGUSR1');
      const line = await withTimeout(got, 5000, 'relay stats');
      const st = {};
      for (const m of line.matchAll(/(\w+)=(\d+)/g)) st[m[1]] = Number(m[2]);
      return st;
    };
    relay.stop = async () => { p.kill('SIGTERM'); return withTimeout(relay.exited, 10000, 'relay exit'); };
    const line = await new Promise((res) => {
      let out = '';
      p.stdout.on('data', (d) => { out += d; if (out.includes('\n')) res(out.split('\n')[0]); });
      relay.exited.then(() => res(null));
    });
    if (line === `relay listening on ${relay.url}`) return relay;
    p.kill('SIGKILL');
    if (fixedPort) { await new Promise((r) => setTimeout(r, 300)); continue; }
  }
  throw new Error('the relay did not start');
}

// deterministic test data
function pattern(n, seed) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7 + (i >> 9)) & 255;
  return b;
}

// echoes every bidirectional stream and every datagram of every connection an iroh
// endpoint accepts; onConn(conn), if given, takes over each connection instead
function irohEchoServer(ep, onConn) {
  (async () => {
    for (;;) {
      const inc = await ep.acceptNext();
      if (!inc) return;
      (async () => {
        const conn = await (await inc.accept()).connect();
        if (onConn) return onConn(conn);
        (async () => { for (;;) conn.sendDatagram(await conn.readDatagram()); })().catch(() => {});
        for (;;) {
          const bi = await conn.acceptBi();
          (async () => {
            const data = await bi.recv.readToEnd(64 << 20);
            await bi.send.writeAll(data);
            await bi.send.finish();
          })().catch(() => {});
        }
      })().catch(() => {});
    }
  })().catch(() => {});
}

// an iroh endpoint (iroh = the loaded binding) on 127.0.0.1:0: homed on our relay at
// relayUrl, or with relays off when there is none; alpns: strings; n0: iroh's n0 preset
// (its address lookup) instead of the minimal one; secretKey: its identity
async function irohPeer(iroh, { relayUrl = null, alpns = null, n0 = false, secretKey = null } = {}) {
  const b = iroh.Endpoint.builder();
  if (n0) iroh.presetN0(b);
  else iroh.presetMinimal(b);
  if (alpns) b.alpns(alpns.map((a) => Array.from(Buffer.from(a))));
  b.bindAddr('127.0.0.1:0');
  if (secretKey) b.secretKey(secretKey);
  if (relayUrl) {
    const m = iroh.RelayMap.empty();
    m.insert({ url: relayUrl });
    b.relayMode(iroh.RelayMode.custom(m));
  } else {
    b.relayMode(iroh.RelayMode.disabled());
  }
  return b.bind();
}

// an iroh endpoint on loopback homed on our relay at url
const irohRelayPeer = (iroh, url, alpns) => irohPeer(iroh, { relayUrl: url, alpns });

// sends n bytes of pattern(n, seed) on a new stream of an iroh connection; true if they
// all come back
async function irohEcho(conn, n, seed) {
  const data = pattern(n, seed);
  const bi = await conn.openBi();
  await bi.send.writeAll(Array.from(data));
  await bi.send.finish();
  const back = Buffer.from(await bi.recv.readToEnd(n + 1));
  return back.equals(data);
}

const pathsText = (conn) => JSON.stringify(conn.paths().map((p) =>
  ({ relay: p.isRelay, ip: p.isIp, selected: p.isSelected, addr: p.remoteAddr })));

module.exports = { loadIroh, run, rng, check, finish, track, killAll, withTimeout, freePort,
  startRelay, pattern, irohEchoServer, irohPeer, irohRelayPeer, irohEcho, pathsText };
