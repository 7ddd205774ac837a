// Honest clients while `iroh-c listen --echo` is flooded with 5,000 client Initials a
// second on loopback (tests/tools/initial_flood): junk that never decrypts, then valid
// Initials from clients that never go on (which fill the half-open handshakes, so new
// clients are asked for a Retry). The real iroh peer and `iroh-c connect` each connect
// and get their echo within 3 s, several times over, and the listener is still small.
'use strict';
const fs = require('fs');
const { spawn } = require('child_process');
const { loadIroh, check, finish, track, killAll, withTimeout, pattern, irohEcho } = require('./peer');
const iroh = loadIroh();
const IROH_C = process.env.IROH_C;
const FLOOD = process.env.IROH_FLOOD;
const ALPN = 'flood/echo/0';
const LIMIT_MS = 3000;

process.on('uncaughtException', (e) => { console.error('FAIL: ' + e.stack); killAll(); process.exit(1); });
setTimeout(() => { console.error('FAIL: test timed out'); killAll(); process.exit(1); }, 240000).unref();

if (!FLOOD) { console.error('interop: IROH_FLOOD (the initial_flood tool) is not set; run through ctest'); process.exit(1); }

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rssKb = (pid) => Number((fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/) || [])[1]);

function startListen() {
  return new Promise((resolve, reject) => {
    const p = track(spawn(IROH_C, ['listen', '--no-relay', '--alpn', ALPN, '--echo', '--bind', '127.0.0.1:0'],
      { stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    p.stderr.on('data', () => {});
    p.stdout.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve({ proc: p, ticket: out.slice(0, nl).trim() });
    });
    p.on('close', (code) => reject(new Error('listen exited ' + code)));
  });
}

function startFlood(addr, mode) {
  const p = track(spawn(FLOOD, [addr, '--mode', mode, '--rate', '5000', '--duration', '120'],
    { stdio: ['ignore', 'pipe', 'pipe'] }));
  p.out = '';
  p.stdout.on('data', (d) => { p.out += d; });
  p.stderr.on('data', (d) => { p.out += d; });
  p.done = new Promise((r) => p.on('close', r));
  return p;
}

function runConnect(ticket, input) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    // (--verbose: when the handshake ended shows in a failure's message, apart from the
    // process's start)
    const p = track(spawn(IROH_C, ['connect', '--no-relay', '--verbose', ticket, '--alpn', ALPN, '--timeout', '10'],
      { stdio: ['pipe', 'pipe', 'pipe'] }));
    const out = [], err = [];
    p.stdout.on('data', (d) => out.push(d));
    p.stderr.on('data', (d) => err.push(d));
    const t = setTimeout(() => p.kill('SIGKILL'), 20000);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, ms: Date.now() - t0, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() });
    });
    p.stdin.on('error', () => {});
    p.stdin.end(input);
  });
}

async function irohClient() {
  const b = iroh.Endpoint.builder();
  iroh.presetMinimal(b);
  b.bindAddr('127.0.0.1:0');
  b.relayMode(iroh.RelayMode.disabled());
  return b.bind();
}

async function main() {
  const listener = await startListen();
  const addr = iroh.EndpointTicket.fromString(listener.ticket).endpointAddr();
  const udp = addr.directAddresses().find((a) => a.startsWith('127.0.0.1:'));
  const rss0 = rssKb(listener.proc.pid);

  for (const mode of ['junk', 'valid']) {
    const flood = startFlood(udp, mode);
    await sleep(2000); // the flood is on (10,000 Initials) before anyone connects
    for (let round = 0; round < 3; round++) {
      // the real iroh peer: connect and echo a stream
      const ep = await irohClient();
      const t0 = Date.now();
      let ok = false, why = '';
      try {
        const conn = await withTimeout(ep.connect(addr, Array.from(Buffer.from(ALPN))), LIMIT_MS, 'connect');
        ok = await withTimeout(irohEcho(conn, 1000, round), LIMIT_MS, 'echo');
      } catch (e) { why = e.message; }
      const ms = Date.now() - t0;
      check(ok && ms <= LIMIT_MS, `${mode} flood: iroh connect + echo: ok=${ok} in ${ms} ms ${why}`);
      console.log(`${mode} flood: iroh -> iroh-c ${ok ? 'connected and echoed' : 'failed'} in ${ms} ms`);
      await ep.close().catch(() => {});

      // iroh-c connect
      const input = pattern(1000, round);
      const r = await runConnect(listener.ticket, input);
      check(r.code === 0 && r.stdout.equals(input) && r.ms <= LIMIT_MS,
        `${mode} flood: iroh-c connect: exit ${r.code} in ${r.ms} ms, ${r.stdout.length} bytes back, ${r.stderr.trim()}`);
      console.log(`${mode} flood: iroh-c connect exit ${r.code} in ${r.ms} ms`);
    }
    const rss = rssKb(listener.proc.pid);
    check(rss - rss0 <= 40 * 1024, `${mode} flood: listener VmRSS ${rss} kB, started at ${rss0} kB`);
    console.log(`${mode} flood: listener VmRSS ${rss0} -> ${rss} kB`);
    flood.kill('SIGTERM');
    await withTimeout(flood.done, 5000, 'flooder exit');
    // the flood was on, and the listener answered it as it should: junk gets nothing,
    // Initials that decrypt get Retries (the half-open handshakes are full)
    const m = flood.out.match(/sent (\d+) datagrams in ([\d.]+) s; received (\d+) Retries and (\d+) other/);
    console.log(`${mode} flood: ${flood.out.trim()}`);
    check(m && Number(m[1]) / Number(m[2]) > 4000, `${mode} flood: the flooder's rate: ${flood.out.trim()}`);
    if (mode === 'junk') check(m && m[3] === '0' && m[4] === '0', `junk flood answered: ${flood.out.trim()}`);
    else check(m && Number(m[3]) > 1000, `valid flood: the listener sent no Retries: ${flood.out.trim()}`);
  }
  listener.proc.kill('SIGTERM');
  finish();
}

main();
