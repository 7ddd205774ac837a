// `iroh-c dns-server` while one client holds more DNS-over-TCP connections than the
// server's connection limit (1024): the pkarr relay and DoH (HTTP) stay reachable,
// because DNS over TCP may take only three quarters of the slots.
'use strict';
const net = require('net');
const { check, finish } = require('./peer');
const { startDnsServer, sleep } = require('./lookup_util');
const pk = require('./pkarr');

const FLOOD = 1100;
const sockets = [];
process.on('exit', () => { for (const s of sockets) s.destroy(); });
process.on('uncaughtException', (e) => { console.error('FAIL: ' + e.stack); process.exit(1); });
setTimeout(() => { console.error('FAIL: test timed out'); process.exit(1); }, 60000).unref();

async function main() {
  const srv = await startDnsServer('flood.test');
  try {
    let open = 0;
    for (let i = 0; i < FLOOD; i++) {
      const s = net.connect(srv.dnsPort, srv.host, () => { open++; });
      s.on('error', () => {});
      sockets.push(s);
    }
    await sleep(1500);
    check(open >= 1000, `${FLOOD} DNS-over-TCP connections made (${open} connected)`);
    const ok = [];
    for (let i = 0; i < 3; i++) {
      try {
        const r = await pk.httpRequest('GET', `${srv.url}/healthz`);
        ok.push(r.status);
      } catch (e) { ok.push(String(e.message || e)); }
    }
    check(ok.every((s) => s === 200), `HTTP answers during the flood (${ok.join(', ')})`);
  } finally {
    for (const s of sockets) s.destroy();
    await srv.stop();
  }
  finish();
}
main();
