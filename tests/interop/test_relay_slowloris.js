// `iroh-c relay` under a Slowloris attack (RFC 9000 21.6's and HTTP's): hundreds of TCP
// connections that send a request head one byte at a time and never finish it, and
// hundreds that connect and say nothing. Meanwhile two real iroh peers go online through
// the relay and echo through it; every slow connection is cut off by the header timeout
// (3 s here), and the relay's memory stays small.
'use strict';
const fs = require('fs');
const net = require('net');
const { loadIroh, check, finish, withTimeout, startRelay, irohEchoServer, irohRelayPeer,
  irohEcho } = require('./peer');
const iroh = loadIroh();
const ALPN = 'iroh-c-test/slowloris/0';
const SLOW = 400, SILENT = 200;

const sockets = new Set();
process.on('exit', () => { for (const s of sockets) s.destroy(); });
process.on('uncaughtException', (e) => { console.error('FAIL: ' + e.stack); process.exit(1); });
setTimeout(() => { console.error('FAIL: test timed out'); process.exit(1); }, 120000).unref();

const rssKb = (pid) => Number((fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/) || [])[1]);

// a connection that dribbles a request head (one byte per interval) or stays silent;
// resolves .closed with the time the server cut it off
function attacker(port, dribble) {
  const s = net.connect(port, '127.0.0.1');
  sockets.add(s);
  const head = 'GET /relay HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ' + 'a'.repeat(200);
  let i = 0, timer = null;
  s.on('error', () => {});
  s.on('data', () => {});
  s.on('connect', () => {
    if (!dribble) return;
    timer = setInterval(() => { if (i < head.length) s.write(head[i++]); }, 300);
  });
  s.cutOff = new Promise((res) => s.on('close', () => { clearInterval(timer); sockets.delete(s); res(Date.now()); }));
  return s;
}

async function main() {
  const relay = await startRelay(['--header-timeout', '3']);
  const rss0 = rssKb(relay.proc.pid);
  const t0 = Date.now();
  const conns = [];
  for (let i = 0; i < SLOW; i++) conns.push(attacker(relay.port, true));
  for (let i = 0; i < SILENT; i++) conns.push(attacker(relay.port, false));
  await new Promise((r) => setTimeout(r, 500));

  // honest peers, while every one of those connections is open
  const a = await irohRelayPeer(iroh, relay.url, null);
  const b = await irohRelayPeer(iroh, relay.url, [ALPN]);
  let ok = await withTimeout(Promise.all([a.online(), b.online()]), 20000, 'online').then(() => true, () => false);
  check(ok, 'iroh peers online through the relay during the attack');
  irohEchoServer(b);
  if (ok) {
    const addr = new iroh.EndpointAddr(b.id(), b.addr().relayUrl(), []);
    ok = await withTimeout((async () => irohEcho(await a.connect(addr, Array.from(Buffer.from(ALPN))), 100000, 1))(),
      20000, 'echo').catch(() => false);
    check(ok, 'iroh echo through the relay during the attack');
  }
  const during = Date.now() - t0;
  console.log(`honest peers online and echoed through the relay in ${during} ms with ${SLOW + SILENT} slow connections open`);

  // every slow connection is cut off by the header timeout
  const closedAt = await Promise.all(conns.map((s) => withTimeout(s.cutOff, 15000, 'cut off').catch(() => -1)));
  const open = closedAt.filter((t) => t < 0).length;
  const last = Math.max(...closedAt) - t0;
  check(open === 0, `${open} of ${SLOW + SILENT} slow connections still open 15 s later`);
  if (open === 0) console.log(`all slow connections cut off within ${last} ms`);
  const rss = rssKb(relay.proc.pid);
  check(rss - rss0 < 40 * 1024, `relay VmRSS ${rss} kB, started at ${rss0} kB`);
  const st = await relay.stats();
  check(st.header_timeouts >= SLOW + SILENT, `header timeouts counted: ${st.header_timeouts}`);

  // and the relay still serves
  const c = await irohRelayPeer(iroh, relay.url, null);
  ok = await withTimeout(c.online(), 20000, 'online after').then(() => true, () => false);
  check(ok, 'a new iroh peer goes online after the attack');
  await Promise.all([a.close(), b.close(), c.close()].map((p) => p.catch(() => {})));
  await relay.stop();
  finish();
}

main();
