// dumbpipe's TCP tunnels on the real iroh peer (n0's Node.js binding), for the interop
// tests of iroh-c's listen-tcp / connect-tcp: each TCP connection is one bidirectional
// stream speaking dumbpipe's protocol (ALPN "DUMBPIPEV0"; the opener writes "hello"
// first, the acceptor reads and checks it before any data).
//
//   const dt = require('./dumbpipe_tcp_peer');
//   const ep = await dt.endpoint(iroh);                  // loopback, no relay
//   const srv = await dt.connectTcp(ep, addr);          // as `dumbpipe connect-tcp`:
//       srv.port: a TCP port on 127.0.0.1; each TCP connection dials addr (its own
//       connection, as dumbpipe does), opens a stream, writes the hello, forwards
//   dt.listenTcp(ep, port, { perConnection })            // as `dumbpipe listen-tcp`:
//       each incoming stream (after its hello) to a new TCP connection to
//       127.0.0.1:port; perConnection: only the first stream of each connection, and
//       the connection closed when it is done, exactly as dumbpipe 0.39 does
'use strict';
const net = require('net');

const { ALPN, HELLO, endpoint } = require('./dumbpipe_peer.js');
const CHUNK = 64 * 1024;
const bytes = (b) => Array.from(Buffer.isBuffer(b) ? b : Buffer.from(b));

// a TCP socket <-> a stream pair, both directions with their ends (half-close); resolves
// when both are done; a failure on one side destroys the other
async function forward(socket, bi) {
  const up = (async () => {
    for await (const chunk of socket) await bi.send.writeAll(bytes(chunk));
    await bi.send.finish();
  })();
  const down = (async () => {
    for (;;) {
      const chunk = await bi.recv.read(CHUNK);
      if (!chunk || !chunk.length) break;
      if (!socket.write(Buffer.from(chunk))) await new Promise((res) => socket.once('drain', res));
    }
    socket.end();
  })();
  try {
    await Promise.all([up, down]);
  } catch (e) {
    socket.destroy();
    bi.send.reset(0n).catch(() => {});
    bi.recv.stop(0n).catch(() => {});
  }
}

function connectTcp(ep, addr) {
  const server = net.createServer(async (socket) => {
    socket.on('error', () => {});
    socket.pause();
    try {
      const conn = await ep.connect(addr, bytes(ALPN));
      const bi = await conn.openBi();
      await bi.send.writeAll(bytes(HELLO));
      socket.resume();
      await forward(socket, bi);
      // dumbpipe drops the connection when the forward is done; wait for our FIN's ack
      await new Promise((res) => setTimeout(res, 100));
      conn.close(0n, []);
    } catch (e) {
      socket.destroy();
    }
  });
  return new Promise((res) => server.listen(0, '127.0.0.1', () => res({ server, port: server.address().port })));
}

async function serveStream(bi, port, state) {
  const hello = Buffer.from(await bi.recv.readExact(HELLO.length));
  if (!hello.equals(HELLO)) {
    state.badHello++;
    throw new Error('invalid handshake');
  }
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await new Promise((res, rej) => { socket.once('connect', res); socket.once('error', rej); });
  state.streams++;
  await forward(socket, bi);
}

// accepts until the endpoint closes; returns the counters { conns, streams, badHello }
function listenTcp(ep, port, { perConnection = false } = {}) {
  const state = { conns: 0, streams: 0, badHello: 0 };
  (async () => {
    for (;;) {
      const inc = await ep.acceptNext().catch(() => null);
      if (!inc) return;
      (async () => {
        const conn = await (await inc.accept()).connect();
        state.conns++;
        if (perConnection) {
          const bi = await conn.acceptBi();
          await serveStream(bi, port, state).catch(() => {});
          conn.close(0n, []); // as dropping it: code 0, no reason
          return;
        }
        for (;;) {
          const bi = await conn.acceptBi().catch(() => null);
          if (!bi) return;
          serveStream(bi, port, state).catch(() => {});
        }
      })().catch(() => {});
    }
  })();
  return state;
}

module.exports = { ALPN, HELLO, endpoint, forward, connectTcp, listenTcp };
