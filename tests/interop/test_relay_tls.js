// iroh-c relay over HTTPS (a throwaway self-signed certificate made with openssl): the
// HTTP endpoints over TLS, the WebSocket upgrade, and both handshakes of relay.md
// section 2: the challenge, and the TLS keying-material header (section 2.3) that skips
// it, computed here with node's own TLS exporter and Ed25519 (independent of our code).
'use strict';
const { spawn, spawnSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');
const tls = require('tls');
const { check, finish } = require('./peer');

const IROH_C = process.env.IROH_C;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iroh-c-relay-tls-'));
let relay = null;
function cleanup() {
  if (relay) { try { relay.kill('SIGKILL'); } catch (e) { /* gone */ } }
  fs.rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanup);
const overall = setTimeout(() => { console.error('FAIL: test timed out'); cleanup(); process.exit(1); }, 60000);

const gen = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
  '-nodes', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'), '-days', '1',
  '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1'], { encoding: 'utf8' });
if (gen.status !== 0) {
  console.error('FAIL: openssl could not make a test certificate: ' + gen.stderr);
  process.exit(1);
}

function startRelay() {
  return new Promise((resolve, reject) => {
    relay = spawn(IROH_C, ['relay', '--listen', '127.0.0.1:0', '--tls-cert', path.join(dir, 'cert.pem'),
      '--tls-key', path.join(dir, 'key.pem')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    relay.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/relay listening on https:\/\/127\.0\.0\.1:(\d+)/);
      if (m) resolve(Number(m[1]));
    });
    relay.stderr.on('data', (d) => { if (!/^relay stats/.test(String(d))) process.stderr.write('[relay] ' + d); });
    relay.on('close', (code) => reject(new Error('relay exited ' + code)));
  });
}

// Ed25519 from a 32-byte seed, and the raw public key
function keyFromSeed(seed) {
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
  const priv = crypto.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  const pub = crypto.createPublicKey(priv).export({ format: 'der', type: 'spki' }).subarray(12);
  return { priv, pub };
}

function connect(port) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => resolve(s));
    s.on('error', reject);
  });
}

// reads the HTTP head and then the payload of the first WebSocket frame
function upgradeAndFirstFrame(sock, extraHeaders) {
  return new Promise((resolve) => {
    const key = crypto.randomBytes(16).toString('base64');
    sock.write('GET /relay HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nsec-websocket-protocol: iroh-relay-v2\r\n` +
      (extraHeaders || '') + '\r\n');
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => resolve({ head: buf.toString(), frame: null }), 5000);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString();
      const rest = buf.subarray(end + 4);
      if (rest.length >= 2 && rest.length >= 2 + (rest[1] & 0x7f)) {
        clearTimeout(timer);
        resolve({ head, frame: rest.subarray(2, 2 + (rest[1] & 0x7f)) });
      }
    });
  });
}

function get(port, p) {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () =>
      s.write(`GET ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`));
    let out = '';
    s.on('data', (d) => { out += d; });
    s.on('end', () => resolve(out));
    s.on('error', () => resolve(out));
  });
}

async function main() {
  const port = await startRelay();
  const ping = await get(port, '/ping');
  check(/^HTTP\/1\.1 200/.test(ping), `GET /ping over TLS: ${ping.split('\r\n')[0]}`);

  // 1. no header: the challenge comes first
  let s = await connect(port);
  let r = await upgradeAndFirstFrame(s);
  check(/^HTTP\/1\.1 101/.test(r.head) && r.frame && r.frame[0] === 0x00 && r.frame.length === 17,
    `challenge over TLS: ${r.head.split('\r\n')[0]} first frame ${r.frame && r.frame.toString('hex')}`);
  s.destroy();

  // 2. the keying-material header: the server confirms at once (02), no challenge
  const { priv, pub } = keyFromSeed(crypto.randomBytes(32));
  s = await connect(port);
  const km = s.exportKeyingMaterial(32, 'iroh-relay handshake v1', pub);
  const sig = crypto.sign(null, km.subarray(0, 16), priv);
  const header = Buffer.concat([pub, Buffer.from([0x40]), sig, km.subarray(16)]).toString('base64url');
  r = await upgradeAndFirstFrame(s, `x-iroh-relay-client-auth-v1: ${header}\r\n`);
  check(/^HTTP\/1\.1 101/.test(r.head) && r.frame && r.frame.length === 1 && r.frame[0] === 0x02,
    `keying-material header accepted: first frame ${r.frame && r.frame.toString('hex')}`);
  s.destroy();

  // 3. a header with a bad signature falls back to the challenge
  s = await connect(port);
  const km2 = s.exportKeyingMaterial(32, 'iroh-relay handshake v1', pub);
  const bad = Buffer.from(crypto.sign(null, km2.subarray(0, 16), priv));
  bad[5] ^= 1;
  const header2 = Buffer.concat([pub, Buffer.from([0x40]), bad, km2.subarray(16)]).toString('base64url');
  r = await upgradeAndFirstFrame(s, `x-iroh-relay-client-auth-v1: ${header2}\r\n`);
  check(r.frame && r.frame[0] === 0x00, `bad header signature falls back to the challenge: ${r.frame && r.frame.toString('hex')}`);
  s.destroy();

  // 4. a plain-HTTP client on the TLS port is cut off, the relay keeps serving
  const net = require('net');
  await new Promise((res) => {
    const p = net.connect(port, '127.0.0.1', () => p.write('GET /ping HTTP/1.1\r\nHost: x\r\n\r\n'));
    p.on('data', () => {});
    p.on('close', res);
    p.on('error', res);
    setTimeout(res, 8000);
  });
  const again = await get(port, '/ping');
  check(/^HTTP\/1\.1 200/.test(again), 'still serving after a plain-HTTP client');

  relay.kill('SIGTERM');
  const code = await new Promise((res) => relay.on('close', res));
  check(code === 143, `relay exit status after SIGTERM (143): ${code}`);
  relay = null;
  clearTimeout(overall);
}

main().then(finish, (e) => { console.error('FAIL: ' + (e.stack || e)); cleanup(); process.exit(1); });
