// A hostile relay (a few lines of WebSocket written here) against an iroh-c endpoint:
// after the handshake it sends a datagram for an unknown connection (which makes the
// endpoint answer with a stateless reset through the same relay, from inside its
// receive path) immediately followed by an undecodable frame, single and batched, then
// garbage and a closed connection. The endpoint must survive all of it (it once crashed
// here: the failure freed the relay client while its events were in use), keep retrying
// the relay, and still serve a direct connection.
'use strict';
const net = require('net');
const crypto = require('crypto');
const { spawn } = require('child_process');
const { check, finish, track, killAll, withTimeout, freePort } = require('./peer');
const IROH_C = process.env.IROH_C;
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

process.on('uncaughtException', (e) => { console.error('FAIL: ' + e.stack); killAll(); process.exit(1); });
setTimeout(() => { console.error('FAIL: test timed out'); killAll(); process.exit(1); }, 120000).unref();

function ws(payload) {
  const n = payload.length;
  const h = n < 126 ? Buffer.from([0x82, n]) : Buffer.from([0x82, 126, n >> 8, n & 255]);
  return Buffer.concat([h, payload]);
}

// one scenario per accepted connection, in turn
function hostileRelay(port, scenarios) {
  let k = 0;
  const sockets = [];
  const srv = net.createServer((c) => {
    sockets.push(c);
    let mode;
    let req = Buffer.alloc(0);
    let upgraded = false;
    c.on('error', () => {});
    c.on('data', async (d) => {
      if (upgraded) return; // ClientAuth, pings: ignored
      req = Buffer.concat([req, d]);
      if (!req.includes('\r\n\r\n')) return;
      upgraded = true;
      // the endpoint's net report asks GET /ping and /generate_204 too: not a relay
      // connection, no scenario spent on it
      if (!/sec-websocket-key:/i.test(req.toString())) {
        c.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
        return;
      }
      mode = scenarios[Math.min(k++, scenarios.length - 1)];
      if (mode === 'garbage') { c.end(crypto.randomBytes(300)); return; }
      const key = /sec-websocket-key: *([^\r\n]+)/i.exec(req.toString())[1];
      const acc = crypto.createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
      c.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n' +
        `sec-websocket-accept: ${acc}\r\nsec-websocket-protocol: iroh-relay-v2\r\n\r\n`);
      c.write(ws(Buffer.from([0x02]))); // confirmed: no challenge
      await sleep(200);
      const src = crypto.randomBytes(32);
      src[31] &= 0x7f;
      const pkt = Buffer.concat([Buffer.from([0x41]), crypto.randomBytes(48)]); // unknown DCID
      const dgram = mode === 'batch'
        ? ws(Buffer.concat([Buffer.from([0x07]), src, Buffer.from([0, 0, 49]), pkt, pkt, pkt]))
        : ws(Buffer.concat([Buffer.from([0x06]), src, Buffer.from([0]), pkt]));
      c.write(Buffer.concat([dgram, ws(Buffer.from([0x42]))])); // then an undecodable frame
      setTimeout(() => c.destroy(), 500);
    });
  });
  return new Promise((res) => srv.listen(port, '127.0.0.1', () => res({ srv, sockets, accepted: () => k })));
}

async function main() {
  const port = await freePort();
  const relay = await hostileRelay(port, ['single', 'batch', 'garbage', 'single']);
  const url = `http://127.0.0.1:${port}`;
  const p = track(spawn(IROH_C, ['listen', '--alpn', 'hostile/0', '--echo', '--bind', '127.0.0.1:0', '--relay', url],
    { stdio: ['ignore', 'pipe', 'pipe'], env: Object.assign({}, process.env, { IROH_LOG: 'debug' }) }));
  let out = '', err = '';
  p.stdout.on('data', (d) => { out += d; });
  p.stderr.on('data', (d) => { err += d; });
  const exited = new Promise((res) => p.on('close', (code, sig) => res({ code, sig })));
  // the listener prints its ticket after its 5 s wait for a home relay
  await withTimeout((async () => { while (!out.includes('\n')) await sleep(50); })(), 20000, 'ticket')
    .catch(() => {});
  const alive = p.exitCode === null && p.signalCode === null;
  check(alive, `the endpoint survived the hostile relay (exit ${p.exitCode} ${p.signalCode}): ${err.slice(-500)}`);
  check(relay.accepted() >= 4, `it kept reconnecting to the relay: ${relay.accepted()} connections`);
  check(/bad relay frame/.test(err), 'the bad frame was named in the log');
  const ticket = out.split('\n')[0].trim();
  if (alive && ticket) {
    // a direct connection still works
    const r = await new Promise((res) => {
      const c = track(spawn(IROH_C, ['connect', ticket, '--alpn', 'hostile/0', '--no-relay'], { stdio: ['pipe', 'pipe', 'pipe'] }));
      let o = '';
      c.stdout.on('data', (d) => { o += d; });
      c.on('close', (code) => res({ code, o }));
      c.stdin.end('still here');
    });
    check(r.code === 0 && r.o === 'still here', `direct connection after the hostile relay: ${r.code} '${r.o}'`);
  }
  p.kill('SIGTERM');
  const st = await withTimeout(exited, 10000, 'listen exit').catch(() => ({ code: -1 }));
  check(st.code === 143, `clean exit on SIGTERM (status 143): ${JSON.stringify(st)}`);
  for (const s of relay.sockets) s.destroy();
  relay.srv.close();
}

main().then(finish, (e) => { console.error('FAIL: ' + e.stack); killAll(); process.exit(1); });
