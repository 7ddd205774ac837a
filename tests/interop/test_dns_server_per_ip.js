// `iroh-c dns-server`: one client IP may hold at most 128 connections of each kind (DNS
// over TCP, HTTP), so that one host cannot take the server's 1024 slots. 200 DNS-over-TCP
// connections from 127.0.0.1: the server keeps 128 and closes the rest at accept; a
// DNS-over-TCP query from another address (127.0.0.2) is answered meanwhile, and so is
// HTTP from 127.0.0.1 (another kind). Once they close, 127.0.0.1 is served again.
'use strict';
const net = require('net');
const { check, finish } = require('./peer');
const { startDnsServer, sleep } = require('./lookup_util');
const pk = require('./pkarr');

const HELD = 200, PER_IP = 128;
const sockets = [];
process.on('exit', () => { for (const s of sockets) s.destroy(); });
process.on('uncaughtException', (e) => { console.error('FAIL: ' + e.stack); process.exit(1); });
setTimeout(() => { console.error('FAIL: test timed out'); process.exit(1); }, 60000).unref();

// a DNS query over TCP from localAddress: resolves to the answer's RCODE
function tcpQueryFrom(localAddress, port, name) {
  return new Promise((resolve, reject) => {
    const q = pk.buildQuery(7, name, pk.TYPE.SOA);
    const len = Buffer.alloc(2); len.writeUInt16BE(q.length);
    const s = net.connect({ port, host: '127.0.0.1', localAddress });
    let got = Buffer.alloc(0);
    const t = setTimeout(() => { s.destroy(); reject(new Error('no DNS answer over TCP from ' + localAddress)); }, 5000);
    s.on('connect', () => s.write(Buffer.concat([len, q])));
    s.on('data', (d) => {
      got = Buffer.concat([got, d]);
      if (got.length >= 2 && got.length >= 2 + got.readUInt16BE(0)) {
        clearTimeout(t); s.destroy(); resolve(got[5] & 0x0f);
      }
    });
    s.on('close', () => { clearTimeout(t); reject(new Error('closed without an answer (from ' + localAddress + ')')); });
    s.on('error', () => {});
  });
}

async function main() {
  const srv = await startDnsServer('perip.test');
  try {
    const state = [];
    for (let i = 0; i < HELD; i++) {
      const s = net.connect(srv.dnsPort, srv.host);
      state[i] = 'connecting';
      s.on('connect', () => { if (state[i] === 'connecting') state[i] = 'open'; });
      s.on('close', () => { state[i] = 'closed'; });
      s.on('error', () => {});
      sockets.push(s);
    }
    await sleep(2000);
    const open = state.filter((x) => x === 'open').length;
    check(open === PER_IP, `of ${HELD} DNS-over-TCP connections from one address the server keeps ${PER_IP}: ${open} open, ${state.filter((x) => x === 'closed').length} closed`);
    let rc = null;
    try { rc = await tcpQueryFrom('127.0.0.2', srv.dnsPort, 'perip.test'); } catch (e) { rc = e.message; }
    check(rc === 0, `DNS over TCP from another address meanwhile: ${rc}`);
    let st = null;
    try { st = (await pk.httpRequest('GET', `${srv.url}/healthz`)).status; } catch (e) { st = e.message; }
    check(st === 200, `HTTP from the same address meanwhile: ${st}`);
    for (const s of sockets) s.destroy();
    await sleep(500);
    rc = null;
    try { rc = await tcpQueryFrom('127.0.0.1', srv.dnsPort, 'perip.test'); } catch (e) { rc = e.message; }
    check(rc === 0, `DNS over TCP from 127.0.0.1 once its connections closed: ${rc}`);
  } finally {
    for (const s of sockets) s.destroy();
    await srv.stop();
  }
  finish();
}
main();
