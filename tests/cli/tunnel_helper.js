// The local services and clients of tests/cli/test_tunnel.sh (not a test itself).
//   node tunnel_helper.js servers PORTFILE [UNIXPATH]
//       starts the services on 127.0.0.1 (and an HTTP server on the unix socket UNIXPATH)
//       and writes their ports to PORTFILE as JSON {http, half, rst} (and the half
//       server on the unix socket UNIXPATH.half too):
//       http: GET /hello -> "hello world\n"; GET /bytes/N -> N bytes (pattern i % 251),
//             answered after 300 ms so that parallel requests overlap; GET /stats -> JSON
//             {conns, peak}: the TCP connections seen and the most open at once
//       half: reads to the end of the client's data, then writes "got N" and ends
//       rst:  the first byte 'R': resets the connection (RST) at once; 'W': waits and
//             writes "reset" or "end" to PORTFILE.rst for how the client's side ended
//   node tunnel_helper.js half PORT N       sends N bytes, half-closes, prints the answer
//                                           (PORT: a port on 127.0.0.1 or a unix socket)
//   node tunnel_helper.js expect-reset PORT prints "reset" (exit 0) if the server's RST
//                                           arrives as a reset, else what came (exit 1)
//   node tunnel_helper.js send-reset PORT   connects, sends 'W', resets after 300 ms
//   node tunnel_helper.js stall PORT PATH   sends GET PATH, never reads the answer (until
//                                           killed); prints "connected"
'use strict';
const net = require('net');
const http = require('http');
const fs = require('fs');

const [mode, a1, a2] = process.argv.slice(2);

function pattern(n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = i % 251;
  return b;
}

function listen(server) {
  return new Promise((res) => server.listen(0, '127.0.0.1', () => res(server.address().port)));
}

async function servers(portfile, unixPath) {
  let open = 0, peak = 0, conns = 0;
  const handler = (req, res) => {
    let m;
    if (req.url === '/hello') {
      res.end('hello world\n');
    } else if (req.url === '/stats') {
      res.end(JSON.stringify({ conns, peak }));
    } else if ((m = /^\/bytes\/(\d+)$/.exec(req.url))) {
      setTimeout(() => res.end(pattern(Number(m[1]))), 300);
    } else {
      res.statusCode = 404;
      res.end('no\n');
    }
  };
  const web = http.createServer(handler);
  web.keepAliveTimeout = 1000;
  web.on('connection', (s) => {
    conns++; open++; peak = Math.max(peak, open);
    s.on('close', () => open--);
  });
  const halfServer = (s) => {
    let n = 0;
    s.on('data', (d) => { n += d.length; });
    s.on('end', () => s.end('got ' + n + '\n'));
    s.on('error', () => {});
  };
  const half = net.createServer(halfServer);
  const rst = net.createServer((s) => {
    s.once('data', (d) => {
      if (d[0] === 0x52 /* R */) {
        s.resetAndDestroy();
        return;
      }
      let said = false;
      const say = (what) => { if (!said) { said = true; fs.writeFileSync(portfile + '.rst', what + '\n'); } };
      s.on('error', (e) => say(e.code === 'ECONNRESET' ? 'reset' : 'error ' + e.code));
      s.on('end', () => { say('end'); s.end(); });
    });
    s.on('error', () => {});
  });
  const ports = { http: await listen(web), half: await listen(net.createServer(halfServer)),
    rst: await listen(rst) };
  if (unixPath) {
    const u = http.createServer(handler);
    await new Promise((res) => u.listen(unixPath, res));
    await new Promise((res) => half.listen(unixPath + '.half', res));
  }
  fs.writeFileSync(portfile + '.tmp', JSON.stringify(ports));
  fs.renameSync(portfile + '.tmp', portfile);
}

function half(port, n) {
  const where = /^\d+$/.test(port) ? [Number(port), '127.0.0.1'] : [port];
  const s = net.connect(...where, () => {
    s.end(pattern(Number(n)));
  });
  let got = '';
  s.on('data', (d) => { got += d; });
  s.on('end', () => { process.stdout.write(got); process.exit(0); });
  s.on('error', (e) => { console.log('error ' + e.code); process.exit(1); });
}

function expectReset(port) {
  const s = net.connect(Number(port), '127.0.0.1', () => s.write('R'));
  s.on('data', () => {});
  s.on('end', () => { console.log('end'); process.exit(1); });
  s.on('error', (e) => {
    console.log(e.code === 'ECONNRESET' ? 'reset' : 'error ' + e.code);
    process.exit(e.code === 'ECONNRESET' ? 0 : 1);
  });
}

function sendReset(port) {
  const s = net.connect(Number(port), '127.0.0.1', () => {
    s.write('W');
    setTimeout(() => { s.resetAndDestroy(); setTimeout(() => process.exit(0), 100); }, 300);
  });
  s.on('error', (e) => { console.log('error ' + e.code); process.exit(1); });
}

function stall(port, path) {
  const s = net.connect(Number(port), '127.0.0.1', () => {
    s.pause();
    s.write('GET ' + path + ' HTTP/1.0\r\n\r\n');
    console.log('connected');
  });
  s.on('error', () => process.exit(1));
  // a paused socket keeps no event loop alive: without this node exits (closing the
  // socket) as soon as the request is written, and nothing stalls
  setInterval(() => {}, 1 << 30);
}

if (mode === 'servers') servers(a1, a2);
else if (mode === 'half') half(a1, a2);
else if (mode === 'expect-reset') expectReset(a1);
else if (mode === 'send-reset') sendReset(a1);
else if (mode === 'stall') stall(a1, a2);
else { console.error('tunnel_helper: unknown mode ' + mode); process.exit(2); }
