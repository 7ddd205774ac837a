// Processes the address lookup tests start (not a test itself): `iroh-c dns-server`,
// `iroh-c listen --echo` with lookup options, and waiting for a record to be published.
// Every process is tracked (peer.js), so it is killed when the test ends, also on failure.
'use strict';
const { spawn, spawnSync } = require('child_process');
const { track, withTimeout, freePort } = require('./peer.js');
const pk = require('./pkarr.js');

const IROH_C = process.env.IROH_C;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// `iroh-c dns-server` for origin on 127.0.0.1 (DNS on dnsPort, or a free port; HTTP on a
// free port): resolves to { proc, dnsPort, httpPort, pkarrUrl, url, stop() } once /healthz
// answers 200. Extra arguments (--db FILE, --config FILE) go last.
async function startDnsServer(origin, { dnsPort = 0, host = '127.0.0.1', extra = [] } = {}) {
  for (let attempt = 0; attempt < 5; attempt++) {
    const dp = dnsPort || await freePort();
    const hp = await freePort();
    const args = ['dns-server', '--dns-listen', `${host}:${dp}`, '--http-listen', `${host}:${hp}`,
      '--origin', origin, '--rate-limit', 'disabled', ...extra];
    const p = track(spawn(IROH_C, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    const s = { proc: p, dnsPort: dp, httpPort: hp, host, url: `http://${host}:${hp}`,
      pkarrUrl: `http://${host}:${hp}/pkarr`, out: '', err: '' };
    p.stdout.on('data', (d) => { s.out += d; });
    p.stderr.on('data', (d) => { s.err += d; });
    s.exited = new Promise((res) => p.on('close', (code, sig) => res({ code, sig })));
    s.stop = async () => { p.kill('SIGTERM'); return withTimeout(s.exited, 10000, 'dns-server exit'); };
    let up = false;
    for (let i = 0; i < 100 && p.exitCode === null && p.signalCode === null; i++) {
      try {
        const r = await pk.httpRequest('GET', `${s.url}/healthz`);
        if (r.status === 200) { up = true; break; }
      } catch (e) { /* not listening yet */ }
      await sleep(100);
    }
    if (up) return s;
    p.kill('SIGKILL');
    if (attempt === 4) throw new Error(`iroh-c dns-server did not start: ${args.join(' ')}: ${s.err}`);
  }
  return null;
}

// `iroh-c listen --echo --alpn ALPN ...args`: resolves to { proc, ticket, info, err() }
// (info: `ticket decode` of its ticket) once the ticket is out
async function irohcListener(alpn, args, env = process.env) {
  const p = track(spawn(IROH_C, ['listen', '--echo', '--alpn', alpn, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env }));
  let err = '';
  p.stderr.on('data', (d) => { err += d; });
  const ticket = await withTimeout(new Promise((res, rej) => {
    let out = '';
    p.stdout.on('data', (d) => { out += d; if (out.includes('\n')) res(out.split('\n')[0].trim()); });
    p.on('close', (code) => rej(new Error(`listen exited with ${code}: ${err}`)));
  }), 30000, 'listener ticket');
  const dec = spawnSync(IROH_C, ['ticket', 'decode', ticket], { encoding: 'utf8' });
  return { proc: p, ticket, info: JSON.parse(dec.stdout), err: () => err };
}

// GET <pkarrUrl>/<z32 of hex id> until it answers 200 or timeoutMs pass: resolves to
// { ms, payload, status } (payload: the body, null when never found)
async function waitPublished(pkarrUrl, hexId, timeoutMs, pred = () => true) {
  const t0 = Date.now();
  const url = `${pkarrUrl}/${pk.z32Encode(Buffer.from(hexId, 'hex'))}`;
  let last = null;
  while (Date.now() - t0 < timeoutMs) {
    try {
      last = await pk.httpRequest('GET', url);
      if (last.status === 200 && pred(last.body)) return { ms: Date.now() - t0, payload: last.body, status: 200 };
    } catch (e) { /* retry */ }
    await sleep(100);
  }
  return { ms: Date.now() - t0, payload: null, status: last && last.status };
}

// runs iroh-c to completion with input on stdin (ended at once, or holdStdinMs later):
// { status, stdout, stderr, ms }
function runIrohc(args, { input = '', env = process.env, timeoutMs = 60000, holdStdinMs = 0 } = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const p = track(spawn(IROH_C, args, { stdio: ['pipe', 'pipe', 'pipe'], env }));
    let out = '', err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code, sig) => { clearTimeout(t); resolve({ status: code === null ? 128 + 9 : code, sig, stdout: out, stderr: err, ms: Date.now() - t0 }); });
    p.stdin.on('error', () => {});
    if (holdStdinMs) {
      p.stdin.write(input);
      setTimeout(() => p.stdin.end(), holdStdinMs);
    } else {
      p.stdin.end(input);
    }
  });
}

// the environment of the tests (tests/CMakeLists.txt turns the n0 lookup defaults off);
// withDefaults: without that switch, so iroh-c uses its built-in defaults
function irohcEnv(withDefaults) {
  const env = { ...process.env };
  if (withDefaults) delete env.IROH_C_ADDRESS_LOOKUP;
  return env;
}

module.exports = { startDnsServer, irohcListener, waitPublished, runIrohc, irohcEnv, sleep };
