// dumbpipe's protocol on the real iroh peer (n0's Node.js binding), for the interop
// tests: ALPN "DUMBPIPEV0"; the side that opens a bidirectional stream writes the 5
// bytes "hello" first, the accepting side reads and checks them before any data.
//
//   const dp = require('./dumbpipe_peer');
//   const ep = await dp.endpoint(iroh);                 // loopback, no relay
//   dp.listen(ep, { input })      -> { remoteId, received }    accept, read hello, pipe
//   dp.connect(ep, addr, { input }) -> { received }            open_bi, write hello, pipe
//   dp.serveStream(bi, local) / dp.openStream(conn, local): the same for one stream of a
//   connection the caller holds (a tunnel: one stream per TCP connection)
//
// The local side of the pipe is either a Buffer (`input`: written, then the stream is
// finished; what comes back is collected into `received`) or a Node stream (`socket`:
// a net.Socket or any Duplex; its data goes out on the stream, its end finishes the
// stream, and the stream's data and end go into it), so a tunnel test can forward a TCP
// connection over one stream.
'use strict';

const { irohPeer } = require('./peer.js');

const ALPN = 'DUMBPIPEV0';
const HELLO = Buffer.from('hello');
const bytes = (b) => Array.from(Buffer.isBuffer(b) ? b : Buffer.from(b));
const CHUNK = 64 * 1024;

// an iroh endpoint that accepts dumbpipe's ALPN (and any extra ones), bound to
// 127.0.0.1:0; relayUrl: home on that relay instead of none
const endpoint = (iroh, { relayUrl, alpns = [ALPN], secretKey } = {}) =>
  irohPeer(iroh, { relayUrl, alpns, secretKey });

// Pipes a bidirectional stream (bi: { send, recv }) to the local side: a Buffer
// (local.input; resolves to { received: Buffer }) or a Node stream (local.socket;
// resolves to {} once both directions ended).
async function pipe(bi, local) {
  const received = [];
  const out = (async () => {
    if (local.socket) {
      try {
        for await (const chunk of local.socket) await bi.send.writeAll(bytes(chunk));
      } catch (e) { // the socket failed (a reset): so does the stream
        await bi.send.reset(0n).catch(() => {});
        throw e;
      }
    } else if (local.input && local.input.length) {
      for (let i = 0; i < local.input.length; i += CHUNK)
        await bi.send.writeAll(bytes(local.input.subarray(i, i + CHUNK)));
    }
    await bi.send.finish();
  })();
  const back = (async () => {
    for (;;) {
      const chunk = await bi.recv.read(CHUNK);
      if (!chunk.length) break; // the end of the stream
      if (local.socket) {
        if (!local.socket.write(Buffer.from(chunk)))
          await new Promise((res) => local.socket.once('drain', res));
      } else {
        received.push(Buffer.from(chunk));
      }
    }
    if (local.socket) local.socket.end();
  })();
  await Promise.all([out, back]);
  return local.socket ? {} : { received: Buffer.concat(received) };
}

// One accepted stream (bi from conn.acceptBi()): reads and checks the hello, then pipes.
// Resolves to { hello, received? }; rejects on other bytes (the stream is stopped and
// reset with code 2; the connection is left to the caller).
async function serveStream(bi, local = {}) {
  const hello = Buffer.from(await bi.recv.readExact(HELLO.length));
  if (!hello.equals(HELLO)) {
    await bi.recv.stop(2n).catch(() => {});
    await bi.send.reset(2n).catch(() => {});
    throw new Error(`invalid handshake: ${JSON.stringify(hello.toString('latin1'))}`);
  }
  return Object.assign({ hello }, await pipe(bi, local));
}

// One stream opened on conn: writes the hello (or `hello`), then pipes. Resolves to
// { received? }.
async function openStream(conn, local = {}, { hello = HELLO } = {}) {
  const bi = await conn.openBi();
  await bi.send.writeAll(bytes(hello));
  return pipe(bi, local);
}

// The accepting side of dumbpipe's listen: takes the endpoint's next connection,
// accepts its first bidirectional stream, reads the hello (rejects on other bytes,
// after closing the connection with code 2) and pipes. Resolves to { conn, remoteId,
// hello, received }. closeAfter (default true): close the connection once the pipe is
// done; dumbpipe's listener exits then, which closes it too.
async function listen(ep, local = {}, { closeAfter = true, waitClosedMs = 0 } = {}) {
  const inc = await ep.acceptNext();
  if (!inc) throw new Error('the endpoint closed');
  const conn = await (await inc.accept()).connect();
  const remoteId = conn.remoteId().toString();
  const bi = await conn.acceptBi();
  let r;
  try {
    r = await serveStream(bi, local);
  } catch (e) {
    if (/invalid handshake/.test(e.message)) conn.close(2n, bytes('invalid handshake'));
    throw new Error(`${e.message} (from ${remoteId})`);
  }
  // the connecting side reads last and closes; wait for that a little, then close
  if (waitClosedMs) await Promise.race([conn.closed(), new Promise((res) => setTimeout(res, waitClosedMs))]);
  if (closeAfter) conn.close(0n, bytes('done'));
  return Object.assign({ conn, remoteId }, r);
}

// The connecting side: dials addr (an EndpointAddr) with dumbpipe's ALPN, opens a
// bidirectional stream, writes the hello (or `hello`, to test a listener's check) and
// pipes. Resolves to { conn, received }; the connection is closed at the end, as
// dumbpipe's connect does when it exits.
async function connect(ep, addr, local = {}, { hello = HELLO, closeAfter = true } = {}) {
  const conn = await ep.connect(addr, bytes(ALPN));
  const r = await openStream(conn, local, { hello });
  if (closeAfter) conn.close(0n, bytes('bye'));
  return Object.assign({ conn }, r);
}

module.exports = { ALPN, HELLO, endpoint, pipe, serveStream, openStream, listen, connect };
