// `iroh-c relay` (plain HTTP) with two real iroh 1.0.2 peers (npm @number0/iroh) and raw
// relay clients written here (WebSocket + the challenge handshake with BLAKE3 and
// Ed25519): iroh endpoints go online through it and connect with an address holding only
// the relay URL; raw clients check forwarding byte for byte (single and batch frames,
// ~2 MiB of datagrams), same-EndpointId replacement with Status/Health, EndpointGone, and
// hostile clients (garbage, bad signature, oversized frames, a slow HTTP request, a ping
// flood that never reads) being cut off while the iroh peers keep working.
'use strict';
const net = require('net');
const crypto = require('crypto');
const { loadIroh, check, finish, withTimeout, startRelay, pattern, irohEchoServer, irohRelayPeer,
  irohEcho: echo, pathsText } = require('./peer');
const iroh = loadIroh();
const ALPN = 'iroh-c-test/relay-echo/0';
const bytes = (s) => Array.from(Buffer.from(s));
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

// raw client sockets; processes are peer.js's (killed on exit)
const sockets = new Set();
function killAll() {
  for (const s of sockets) { try { s.destroy(); } catch (e) { /* gone */ } }
  require('./peer').killAll();
}
process.on('exit', killAll);
process.on('uncaughtException', (e) => { console.error('FAIL: ' + e.stack); killAll(); process.exit(1); });
const overall = setTimeout(() => { console.error('FAIL: test timed out'); killAll(); process.exit(1); }, 240000);


// ---- BLAKE3 derive_key for inputs of one block (the handshake's context and challenge) ----
const IV = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
const PERM = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];
const rotr = (x, n) => ((x >>> n) | (x << (32 - n))) >>> 0;
function g(s, a, b, c, d, x, y) {
  s[a] = (s[a] + s[b] + x) >>> 0; s[d] = rotr(s[d] ^ s[a], 16);
  s[c] = (s[c] + s[d]) >>> 0; s[b] = rotr(s[b] ^ s[c], 12);
  s[a] = (s[a] + s[b] + y) >>> 0; s[d] = rotr(s[d] ^ s[a], 8);
  s[c] = (s[c] + s[d]) >>> 0; s[b] = rotr(s[b] ^ s[c], 7);
}
function blake3Block(cv, data, flags) {
  if (data.length > 64) throw new Error('one block only');
  const block = Buffer.alloc(64);
  data.copy(block);
  let m = Array.from({ length: 16 }, (_, i) => block.readUInt32LE(4 * i));
  const s = [...cv, IV[0], IV[1], IV[2], IV[3], 0, 0, data.length, flags | 1 | 2 | 8];
  for (let r = 0; r < 7; r++) {
    g(s, 0, 4, 8, 12, m[0], m[1]); g(s, 1, 5, 9, 13, m[2], m[3]);
    g(s, 2, 6, 10, 14, m[4], m[5]); g(s, 3, 7, 11, 15, m[6], m[7]);
    g(s, 0, 5, 10, 15, m[8], m[9]); g(s, 1, 6, 11, 12, m[10], m[11]);
    g(s, 2, 7, 8, 13, m[12], m[13]); g(s, 3, 4, 9, 14, m[14], m[15]);
    m = PERM.map((i) => m[i]);
  }
  const out = Buffer.alloc(32);
  for (let i = 0; i < 8; i++) out.writeUInt32LE((s[i] ^ s[i + 8]) >>> 0, 4 * i);
  return out;
}
function deriveKey(context, material) {
  const ck = blake3Block(IV, Buffer.from(context), 32);
  return blake3Block(Array.from({ length: 8 }, (_, i) => ck.readUInt32LE(4 * i)), material, 64);
}
const CHALLENGE_CONTEXT = 'iroh-relay handshake v1 challenge signature';

// ---- Ed25519 keys with node's crypto ----
function keyFromSeed(seed) {
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
  const priv = crypto.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  const pub = crypto.createPublicKey(priv).export({ format: 'der', type: 'spki' }).subarray(12);
  return { priv, pub, sign: (msg) => crypto.sign(null, msg, priv) };
}
const newKey = () => keyFromSeed(crypto.randomBytes(32));

// ---- WebSocket client framing ----
function wsFrame(opcode, payload, { fin = true, lenOverride } = {}) {
  payload = Buffer.from(payload);
  const len = lenOverride !== undefined ? lenOverride : payload.length;
  let h;
  if (len < 126) { h = Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | len]); }
  else if (len < 65536) { h = Buffer.alloc(4); h[0] = (fin ? 0x80 : 0) | opcode; h[1] = 0x80 | 126; h.writeUInt16BE(len, 2); }
  else { h = Buffer.alloc(10); h[0] = (fin ? 0x80 : 0) | opcode; h[1] = 0x80 | 127; h.writeBigUInt64BE(BigInt(len), 2); }
  const mask = crypto.randomBytes(4);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] ^= mask[i & 3];
  return Buffer.concat([h, mask, body]);
}

// A raw TCP client with a receive buffer.
class Raw {
  constructor(port) {
    this.sock = net.connect(port, '127.0.0.1');
    sockets.add(this.sock);
    this.buf = Buffer.alloc(0);
    this.isClosed = false;
    this.waiters = [];
    this.sock.setNoDelay(true);
    this.ready = new Promise((res, rej) => { this.sock.once('connect', res); this.sock.once('error', rej); });
    this.closed = new Promise((res) => this.sock.on('close', () => {
      this.isClosed = true; sockets.delete(this.sock); this.wake(); res(Date.now());
    }));
    this.sock.on('error', () => {});
    this.msgs = []; // WebSocket messages parsed as they came (once answering pings)
    this.sock.on('data', (d) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      if (this.autoPong) this.parseAll();
      this.wake();
    });
  }
  // A registered client answers the relay's pings when they arrive, as a real client's
  // reader does, not only when the test happens to read from it: a slow (loaded) run of
  // the test must not get its idle raw clients cut off with "pong timeout".
  answerPings() { this.autoPong = true; this.parseAll(); }
  parseAll() {
    for (let m; (m = this.parseOne()) !== undefined;) {
      if (m.opcode === 2 && m.payload[0] === 0x09 && m.payload.length === 9) this.send(wsFrame(2, Buffer.concat([Buffer.from([0x0a]), m.payload.subarray(1)])));
      else this.msgs.push(m);
    }
  }
  // one server WebSocket frame (unmasked) from the buffer, or undefined when incomplete
  parseOne() {
    const b = this.buf;
    if (b.length < 2) return undefined;
    let len = b[1] & 0x7f, off = 2;
    if (len === 126) { if (b.length < 4) return undefined; len = b.readUInt16BE(2); off = 4; }
    else if (len === 127) { if (b.length < 10) return undefined; len = Number(b.readBigUInt64BE(2)); off = 10; }
    if (b.length < off + len) return undefined;
    const msg = { opcode: b[0] & 0x0f, payload: Buffer.from(b.subarray(off, off + len)) };
    this.buf = b.subarray(off + len);
    return msg;
  }
  wake() { const w = this.waiters; this.waiters = []; w.forEach((f) => f()); }
  send(b) { if (!this.isClosed) this.sock.write(Buffer.from(b)); }
  // waits until fn() returns a value other than undefined (or the socket closes: null)
  async until(fn, ms, what) {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = fn();
      if (v !== undefined) return v;
      if (this.isClosed) return null;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timeout: ' + what);
      await new Promise((res) => { const t = setTimeout(res, left); this.waiters.push(() => { clearTimeout(t); res(); }); });
    }
  }
  readHead(ms = 5000) {
    return this.until(() => {
      const i = this.buf.indexOf('\r\n\r\n');
      if (i < 0) return undefined;
      const head = this.buf.subarray(0, i).toString();
      this.buf = this.buf.subarray(i + 4);
      return head;
    }, ms, 'HTTP head');
  }
  // one server WebSocket frame (unmasked), or null once closed
  readMessage(ms = 5000) {
    return this.until(() => (this.msgs.length ? this.msgs.shift() : this.parseOne()), ms, 'WebSocket message');
  }
  close() { this.sock.destroy(); }
}

function upgradeRequest(port, key, proto = 'iroh-relay-v2, iroh-relay-v1', extra = '') {
  return `GET /relay HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nsec-websocket-protocol: ${proto}\r\n${extra}\r\n`;
}

// Upgrade and handshake; returns { r, key, first } where first is the frame after ClientAuth.
async function relayClient(port, { key = newKey(), proto, badSig = false, authFrame, extraHeaders } = {}) {
  const r = new Raw(port);
  await r.ready;
  const wsKey = crypto.randomBytes(16).toString('base64');
  r.send(upgradeRequest(port, wsKey, proto, extraHeaders));
  const head = await r.readHead();
  if (!head || !/^HTTP\/1\.1 101 /.test(head)) throw new Error('no 101: ' + head);
  const accept = crypto.createHash('sha1').update(wsKey + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  const h = Object.fromEntries(head.split('\r\n').slice(1).map((l) => { const i = l.indexOf(':'); return [l.slice(0, i).toLowerCase(), l.slice(i + 1).trim()]; }));
  if (h['sec-websocket-accept'] !== accept) throw new Error('bad accept: ' + head);
  r.version = h['sec-websocket-protocol'];
  const ch = await r.readMessage();
  if (!ch || ch.opcode !== 2 || ch.payload.length !== 17 || ch.payload[0] !== 0) throw new Error('no challenge');
  const sig = key.sign(deriveKey(CHALLENGE_CONTEXT, ch.payload.subarray(1)));
  if (badSig) sig[10] ^= 1;
  r.send(wsFrame(2, authFrame || Buffer.concat([Buffer.from([1]), key.pub, Buffer.from([0x40]), sig])));
  const first = await r.readMessage();
  r.answerPings();
  return { r, key, first };
}

const dgramFrame = (dst, payload, ecn = 0) => wsFrame(2, Buffer.concat([Buffer.from([4]), dst, Buffer.from([ecn]), Buffer.from(payload)]));
const batchFrame = (dst, seg, payload, ecn = 0) => {
  const s = Buffer.alloc(2); s.writeUInt16BE(seg);
  return wsFrame(2, Buffer.concat([Buffer.from([5]), dst, Buffer.from([ecn]), s, Buffer.from(payload)]));
};
// the next binary message that is not a Ping (answering pings, as clients must)
async function nextRelayFrame(c, ms = 5000) {
  for (;;) {
    const m = await c.r.readMessage(ms);
    if (!m) return null;
    if (m.opcode === 2 && m.payload[0] === 0x09) { c.r.send(wsFrame(2, Buffer.concat([Buffer.from([0x0a]), m.payload.subarray(1)]))); continue; }
    return m;
  }
}

// ---- iroh peers ----
const irohPeer = (relay, alpns) => irohRelayPeer(iroh, relay.url, alpns);

async function main() {
  // vectors of the handshake helpers (spec relay.md section 7)
  const k42 = keyFromSeed(Buffer.alloc(32, 42));
  check(k42.pub.toString('hex') === '197f6b23e16c8532c6abc838facd5ea789be0c76b2920334039bfa8b3d368d61', 'Ed25519 vector key');
  const msg = deriveKey(CHALLENGE_CONTEXT, Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex'));
  check(msg.toString('hex') === 'b7b16e505d2cb5dbaf494800092c3b05a6c45d8d3fd4f1b888c6a77240b876c0', 'BLAKE3 derive_key vector');
  check(deriveKey('BLAKE3 2019-12-27 16:29:52 test vectors context', Buffer.alloc(0)).toString('hex') ===
    '2cc39783c223154fea8dfb7c1b1660f2ac2dcbd1c1de8277b0b0dd39b7e50d7d', 'BLAKE3 empty-input vector');
  check(k42.sign(msg).toString('hex').startsWith('a28b5ebc6a930b5d80ad5aca2a8e48ad'), 'ClientAuth signature vector');

  // short pings so that real clients answer a few within the test; short header timeout
  const relay = await startRelay(['--ping-interval', '1', '--header-timeout', '3']);
  const port = relay.port;
  console.log(`relay at ${relay.url}`);

  // ---- two real iroh peers through the relay ----------------------------------------------
  let t0 = Date.now();
  const a = await irohPeer(relay, null);
  const b = await irohPeer(relay, [ALPN]);
  await withTimeout(Promise.all([a.online(), b.online()]), 20000, 'iroh endpoints online');
  console.log(`iroh endpoints online in ${Date.now() - t0} ms`);
  const relayUrl = b.addr().relayUrl();
  check(relayUrl === relay.url + '/', `iroh's home relay is ours: ${relayUrl}`);
  irohEchoServer(b);
  const before = await relay.stats();
  const addr = new iroh.EndpointAddr(b.id(), relayUrl, []);
  t0 = Date.now();
  const conn = await withTimeout(a.connect(addr, bytes(ALPN)), 20000, 'iroh connect through the relay');
  console.log(`iroh connected through the relay in ${Date.now() - t0} ms`);
  check(await withTimeout(echo(conn, 13, 1), 20000, 'small echo'), 'iroh echo of 13 bytes');
  t0 = Date.now();
  check(await withTimeout(echo(conn, 1 << 20, 2), 60000, '1 MiB echo'), 'iroh echo of 1 MiB');
  console.log(`iroh: 1 MiB echoed in ${Date.now() - t0} ms; paths ${pathsText(conn)}`);
  check(conn.paths().some((p) => p.isRelay && p.remoteAddr === relayUrl), `the connection has a relay path: ${pathsText(conn)}`);
  const after = await relay.stats();
  // the connection was set up through the relay (a dial with only the relay URL): QUIC
  // packets went both ways through it. On one machine iroh then holepunches to a direct
  // loopback path, so the bulk may leave the relay; the raw clients below carry bulk.
  check(after.frames_relayed - before.frames_relayed >= 4 && after.bytes_relayed - before.bytes_relayed >= 2400,
    `the relay carried the iroh connection: ${after.frames_relayed - before.frames_relayed} frames, ` +
    `${after.bytes_relayed - before.bytes_relayed} bytes`);
  check(after.handshakes >= 2 && after.clients >= 2, `both iroh endpoints registered: ${after.handshakes} handshakes, ${after.clients} clients`);

  // ---- raw clients: the handshake and forwarding ------------------------------------------
  const c1 = await relayClient(port);
  check(c1.r.version === 'iroh-relay-v2', `v2 negotiated: ${c1.r.version}`);
  check(c1.first && c1.first.opcode === 2 && c1.first.payload.equals(Buffer.from([2])), 'ServerConfirmsAuth is 02');
  const c2 = await relayClient(port);
  // Ping -> Pong
  c1.r.send(wsFrame(2, Buffer.from('092a2a2a2a2a2a2a2a', 'hex')));
  let m = await nextRelayFrame(c1);
  check(m && m.payload.equals(Buffer.from('0a2a2a2a2a2a2a2a2a', 'hex')), 'Ping answered with Pong');
  // a WebSocket ping is answered with a WebSocket pong
  c1.r.send(wsFrame(9, Buffer.from('hi')));
  m = await c1.r.readMessage();
  check(m && m.opcode === 10 && m.payload.toString() === 'hi', 'WebSocket ping answered');
  // single datagram: 04 dst ecn data -> 06 src ecn data
  c1.r.send(dgramFrame(c2.key.pub, 'hello', 3));
  m = await nextRelayFrame(c2);
  check(m && m.payload.equals(Buffer.concat([Buffer.from([6]), c1.key.pub, Buffer.from([3]), Buffer.from('hello')])),
    'datagram forwarded as 06 with the source id and ECN');
  // batch -> 07, segment size kept; batch with segment size 0 -> 06
  c1.r.send(batchFrame(c2.key.pub, 6, 'Hello World!', 2));
  m = await nextRelayFrame(c2);
  check(m && m.payload.equals(Buffer.concat([Buffer.from([7]), c1.key.pub, Buffer.from([2, 0, 6]), Buffer.from('Hello World!')])),
    'batch forwarded as 07');
  c1.r.send(batchFrame(c2.key.pub, 0, 'one'));
  m = await nextRelayFrame(c2);
  check(m && m.payload.equals(Buffer.concat([Buffer.from([6]), c1.key.pub, Buffer.from([0]), Buffer.from('one')])),
    'batch with segment size 0 forwarded as 06');
  // empty and oversized (body 65536: decodable, not re-encodable) are dropped, not forwarded,
  // and the sender stays connected
  c1.r.send(dgramFrame(c2.key.pub, ''));
  c1.r.send(dgramFrame(c2.key.pub, Buffer.alloc(65536 - 33, 1)));
  c1.r.send(dgramFrame(c2.key.pub, Buffer.alloc(65536 - 34, 2))); // the largest forwardable
  c1.r.send(dgramFrame(c2.key.pub, 'after'));
  m = await nextRelayFrame(c2);
  check(m && m.payload.length === 65536 && m.payload[0] === 6 && m.payload[65535] === 2, `largest datagram forwarded (${m && m.payload.length})`);
  m = await nextRelayFrame(c2);
  check(m && m.payload.subarray(34).toString() === 'after', 'empty and oversized datagrams were dropped, the next one arrives');
  // a datagram for nobody is dropped silently
  c1.r.send(dgramFrame(newKey().pub, 'void'));

  // bulk: ~2 MiB in 1200-byte datagrams c1 -> c2, paced by echoes of a marker
  t0 = Date.now();
  const N = 1800, SZ = 1200;
  let recvd = 0, intact = 0;
  const sink = (async () => {
    while (recvd < N) {
      const f = await nextRelayFrame(c2, 10000);
      if (!f) break;
      const p = f.payload;
      if (p[0] !== 6) continue;
      recvd++;
      const i = p.readUInt32BE(34);
      if (p.length === 34 + SZ && p.subarray(34).equals(bulkPayload(i))) intact++;
    }
  })();
  function bulkPayload(i) { const p = pattern(SZ, i); p.writeUInt32BE(i, 0); return p; }
  for (let i = 0; i < N; i++) {
    c1.r.send(dgramFrame(c2.key.pub, bulkPayload(i)));
    if (i % 256 === 255) await sleep(5); // stay under the 512-frame queue on average
  }
  await withTimeout(sink, 30000, 'bulk datagrams');
  const ms = Date.now() - t0;
  check(recvd === N && intact === N, `bulk: ${intact} of ${N} datagrams intact (${recvd} received)`);
  console.log(`raw clients: ${N} x ${SZ} bytes through the relay in ${ms} ms (${Math.round(N / (ms / 1000))} datagrams/s)`);

  // ---- same EndpointId: replacement, Status / Health, promotion ---------------------------
  const kx = newKey();
  const x1 = await relayClient(port, { key: kx, proto: 'iroh-relay-v1' });
  check(x1.r.version === 'iroh-relay-v1', `v1 negotiated when offered alone: ${x1.r.version}`);
  const x2 = await relayClient(port, { key: kx });
  m = await nextRelayFrame(x1);
  check(m && m.payload[0] === 0x0b && m.payload.subarray(1).toString() ===
    'Another endpoint connected with the same endpoint id. No more messages will be received.',
  'the replaced v1 connection gets the Health text');
  c1.r.send(dgramFrame(kx.pub, 'to-x'));
  m = await nextRelayFrame(x2);
  check(m && m.payload.subarray(34).toString() === 'to-x', 'datagrams go to the newest connection');
  x1.r.send(dgramFrame(c2.key.pub, 'from-inactive'));
  m = await nextRelayFrame(c2);
  check(m && m.payload.subarray(34).toString() === 'from-inactive' && m.payload.subarray(1, 33).equals(kx.pub),
    'the inactive connection can still send');
  const x3 = await relayClient(port, { key: kx });
  m = await nextRelayFrame(x2);
  check(m && m.payload.equals(Buffer.from([0x0d, 1])), 'the replaced v2 connection gets Status 1');
  x3.r.close();
  m = await nextRelayFrame(x2);
  check(m && m.payload.equals(Buffer.from([0x0d, 0])), 'the most recent inactive connection is promoted with Status 0');
  c1.r.send(dgramFrame(kx.pub, 'to-x2'));
  m = await nextRelayFrame(x2);
  check(m && m.payload.subarray(34).toString() === 'to-x2', 'the promoted connection receives again');
  // EndpointGone: kx sent to c2; once kx's last connection leaves, c2 hears of it
  x2.r.close();
  await sleep(100);
  x1.r.close();
  m = await nextRelayFrame(c2);
  check(m && m.payload.equals(Buffer.concat([Buffer.from([8]), kx.pub])), 'EndpointGone after the last connection of an id left');

  // ---- hostile clients, while the iroh peers keep working ----------------------------------
  const echoes = (async () => {
    let ok = 0;
    for (let i = 0; i < 4; i++) if (await echo(conn, 200000, 10 + i)) ok++;
    return ok;
  })();

  // a bad signature: 03 11 "signature invalid", then the connection ends
  const bad = await relayClient(port, { badSig: true });
  check(bad.first && bad.first.payload.equals(Buffer.concat([Buffer.from([3, 0x11]), Buffer.from('signature invalid')])),
    `bad signature denied with 03 11 "signature invalid": ${bad.first && bad.first.payload.toString('hex')}`);
  check(await withTimeout(bad.r.closed, 5000, 'close after deny').then(() => true, () => false), 'connection closed after the deny');
  // wrong handshake type: closed without a deny frame
  const wrong = await relayClient(port, { authFrame: Buffer.from('092a2a2a2a2a2a2a2a', 'hex') });
  check(wrong.first === null, 'a Ping instead of ClientAuth: closed without a frame');

  // garbage after the upgrade
  const garbage = new Raw(port);
  await garbage.ready;
  garbage.send(upgradeRequest(port, crypto.randomBytes(16).toString('base64')));
  await garbage.readHead();
  garbage.send(crypto.randomBytes(4096));
  check(await withTimeout(garbage.closed, 5000, 'garbage close').then(() => true, () => false), 'garbage after the upgrade: cut off');

  // garbage relay frames and oversized ones from authenticated clients
  const g1 = await relayClient(port);
  g1.r.send(wsFrame(2, Buffer.from([0x0e, 1, 2, 3])));
  check(await withTimeout(g1.r.closed, 5000, 'unknown type').then(() => true, () => false), 'unknown frame type: cut off');
  const g2 = await relayClient(port);
  g2.r.send(wsFrame(2, Buffer.concat([Buffer.from([4]), c2.key.pub, Buffer.from([0]), Buffer.alloc(70000)])));
  check(await withTimeout(g2.r.closed, 5000, 'oversized').then(() => true, () => false), 'relay frame over 65536 bytes: cut off');
  const g3 = await relayClient(port);
  g3.r.send(wsFrame(2, Buffer.alloc(8), { lenOverride: 2 << 20 }));
  check(await withTimeout(g3.r.closed, 5000, 'huge ws').then(() => true, () => false), 'WebSocket frame announcing 2 MiB: cut off');
  const g4 = await relayClient(port);
  g4.r.send(Buffer.from([0x82, 0x05, 1, 2, 3, 4, 5])); // unmasked client frame
  check(await withTimeout(g4.r.closed, 5000, 'unmasked').then(() => true, () => false), 'unmasked WebSocket frame: cut off');

  // bytes sent before the 101 are refused
  const eager = new Raw(port);
  await eager.ready;
  eager.send(upgradeRequest(port, crypto.randomBytes(16).toString('base64')) + 'x');
  const eagerHead = await eager.readHead();
  check(eagerHead && /^HTTP\/1\.1 400 /.test(eagerHead), `client talking before the 101: ${eagerHead && eagerHead.split('\r\n')[0]}`);

  // a slow HTTP request that never ends (header timeout 3 s here)
  const slow = new Raw(port);
  await slow.ready;
  t0 = Date.now();
  slow.send('GET /ping HTTP/1.1\r\nHost: x\r\n');
  const slowClosed = withTimeout(slow.closed, 10000, 'slow request').then((t) => t - t0, () => -1);

  // a flood: an authenticated client sending pings and datagrams without ever reading
  const flood = await relayClient(port);
  flood.r.sock.pause();
  let sent = 0;
  const floodStart = Date.now();
  const nobody = newKey().pub;
  const floodChunk = Buffer.concat(Array.from({ length: 2048 }, (_, i) =>
    i % 2 ? wsFrame(2, Buffer.from('09' + '00'.repeat(8), 'hex')) : dgramFrame(nobody, Buffer.alloc(100))));
  while (!flood.r.isClosed && Date.now() - floodStart < 30000 && sent < (512 << 20)) {
    if (!flood.r.sock.write(floodChunk)) await Promise.race([new Promise((res) => flood.r.sock.once('drain', res)), flood.r.closed, sleep(200)]);
    sent += floodChunk.length;
  }
  const floodMs = await withTimeout(flood.r.closed, 15000, 'flood cut off').then((t) => t - floodStart, () => -1);
  check(floodMs >= 0, `a flooding client that does not read is cut off (after ${floodMs} ms, ${sent >> 20} MiB sent)`);

  const slowMs = await slowClosed;
  check(slowMs >= 2000 && slowMs < 10000, `slow HTTP request cut off after ${slowMs} ms`);

  const ok = await withTimeout(echoes, 90000, 'echoes during the hostile clients');
  check(ok === 4, `iroh echoes while hostile clients were served: ${ok} of 4`);
  check(await withTimeout(echo(conn, 1 << 20, 20), 60000, 'echo after'), 'iroh echo of 1 MiB after the hostile clients');
  // the raw clients still work too
  c2.r.send(dgramFrame(c1.key.pub, 'still here'));
  m = await nextRelayFrame(c1);
  check(m && m.payload.subarray(34).toString() === 'still here', 'raw clients still served');

  // a fresh dial through the relay after all that
  const a2 = await irohPeer(relay, null);
  await withTimeout(a2.online(), 20000, 'third endpoint online');
  const conn2 = await withTimeout(a2.connect(addr, bytes(ALPN)), 20000, 'second connect');
  check(await withTimeout(echo(conn2, 5000, 30), 20000, 'echo on a new connection'), 'a new iroh connection through the relay works');

  // server pings come every 1 s + 1..5 s here (the timer restarts on any frame from the
  // client); with the raw clients gone only iroh endpoints are left, and they answer
  // (QUIC traffic of open connections restarts that timer too, so they are closed first;
  // one answered ping is the proof, more depend on timing)
  for (const c of [c1, c2]) c.r.close();
  try { conn.close(0n, bytes('done')); conn2.close(0n, bytes('done')); } catch (e) { /* closed */ }
  await sleep(200);
  const base = await relay.stats();
  let st = base;
  for (let i = 0; i < 25 && st.pongs_recv - base.pongs_recv < 1; i++) {
    await sleep(1000);
    st = await relay.stats();
  }
  console.log('relay stats: ' + relay.lastStats.replace('relay stats: ', ''));
  check(st.pongs_recv - base.pongs_recv >= 1 && st.pong_timeouts === base.pong_timeouts && st.clients === 3,
    `server pings answered by the iroh endpoints: ${st.pings_sent - base.pings_sent} sent, ` +
    `${st.pongs_recv - base.pongs_recv} answered, ${st.pong_timeouts - base.pong_timeouts} timeouts, ${st.clients} clients`);
  const conn3 = await withTimeout(a2.connect(addr, bytes(ALPN)), 20000, 'connect after pings');
  check(await withTimeout(echo(conn3, 1000, 40), 20000, 'echo after pings'), 'iroh still reachable through the relay after answering pings');
  conn3.close(0n, bytes('bye'));
  check(st.header_timeouts >= 1, `header timeout counted: ${st.header_timeouts}`);
  check(st.write_timeouts >= 1, `write timeout counted: ${st.write_timeouts}`);
  check(st.protocol_errors >= 4, `protocol errors counted: ${st.protocol_errors}`);
  check(st.dropped_invalid >= 2 && st.dropped_absent >= 1, `drops: invalid ${st.dropped_invalid}, absent ${st.dropped_absent}`);
  check(st.endpoint_gone_sent >= 1 && st.clients_replaced >= 2, `EndpointGone ${st.endpoint_gone_sent}, replaced ${st.clients_replaced}`);

  await Promise.race([Promise.all([a.close(), b.close(), a2.close()]), sleep(5000)]);

  // SIGTERM: exit 0, the port closed
  relay.proc.kill('SIGTERM');
  const ex = await withTimeout(relay.exited, 10000, 'relay exit');
  check(ex.code === 143, `relay exit status after SIGTERM (143): ${ex.code} ${ex.sig || ''}`);
  // (interop tests run the gcc build only: the relay's stderr is shown, not searched for
  // sanitizer reports that cannot appear there)
  const rest = relay.stderr.trim();
  if (rest) console.log('relay stderr: ' + rest.slice(0, 2000));
  const refused = await new Promise((res) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => { s.destroy(); res(false); });
    s.on('error', () => res(true));
  });
  check(refused, 'the port is closed after exit');

  // access control (relay.md 2.4): an allow list, a deny list, and Bearer tokens
  const ka = newKey(), kb = newKey();
  const hex = (k) => k.pub.toString('hex');
  const denied = (c) => c.first && c.first.payload.equals(Buffer.from('030e6e6f7420617574686f72697a6564', 'hex'));
  const allowed = (c) => c.first && c.first.payload.length === 1 && c.first.payload[0] === 0x02;
  const acl = await startRelay(['--allow', hex(ka)]);
  let ca = await relayClient(acl.port, { key: ka });
  let cb = await relayClient(acl.port, { key: kb });
  check(allowed(ca) && denied(cb), '--allow: the listed id gets in, another gets 03 "not authorized"');
  ca.r.close(); cb.r.close();
  acl.proc.kill('SIGTERM');
  await withTimeout(acl.exited, 10000, 'relay exit');
  const deny = await startRelay(['--deny', hex(kb)]);
  ca = await relayClient(deny.port, { key: ka });
  cb = await relayClient(deny.port, { key: kb });
  check(allowed(ca) && denied(cb), '--deny: the listed id is refused, others get in');
  ca.r.close(); cb.r.close();
  deny.proc.kill('SIGTERM');
  await withTimeout(deny.exited, 10000, 'relay exit');
  const tok = await startRelay(['--token', 's3cret']);
  ca = await relayClient(tok.port, { key: ka, extraHeaders: 'authorization: Bearer s3cret\r\n' });
  cb = await relayClient(tok.port, { key: kb, extraHeaders: 'authorization: Bearer wrong\r\n' });
  const cc = await relayClient(tok.port, { key: newKey() });
  check(allowed(ca) && denied(cb) && denied(cc), '--token: the right Bearer token gets in, a wrong or missing one does not');
  ca.r.close(); cb.r.close(); cc.r.close();
  tok.proc.kill('SIGTERM');
  await withTimeout(tok.exited, 10000, 'relay exit');
  clearTimeout(overall);
}

main().then(finish, (e) => { console.error('FAIL: ' + (e.stack || e)); killAll(); process.exit(1); });
