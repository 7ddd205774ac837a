// A real iroh peer (n0's Node.js binding) for the network-namespace NAT tests and the
// holepunch benchmark (tests/cli/test_netns_nat_*.sh, bench/holepunch.sh). Not a test by
// itself: the shell test runs one of these in each host namespace.
//
//   node nat_peer.js accept --relay URL [--bind IP:PORT] [--external IP]
//     Homes on the relay, prints one JSON line {"id":HEX,"port":N} on stdout once online,
//     then echoes every bidirectional stream of every connection until killed. With
//     --external IP it adds IP:<its own UDP port> as an external address (what a
//     port-preserving NAT maps it to): iroh then advertises it to its peers.
//
//   node nat_peer.js dial --relay URL --id HEX [--bind IP:PORT] [--external IP]
//                    [--bytes N] [--wait-direct MS] [--fallback-cmd CMD] [--fallback-wait MS]
//     Dials HEX with a relay-only address (the relay URL, no direct addresses), waits up
//     to MS (default 10000) for a direct path to be selected (paths(): isIp && isSelected,
//     polled every millisecond), then echoes N bytes (default 1 MiB) and checks them.
//     With --fallback-cmd it keeps a paced echo stream running, runs CMD (a shell
//     command, e.g. one that blackholes the direct path) once the path is direct, and
//     measures how long until the relay path is selected again; the stream must still
//     deliver every byte. Prints one JSON line with the figures on stdout:
//     {"connectMs", "directMs" (null when never direct), "echoOk", "paths",
//      "fallbackMs", "streamOk", "streamBytes"}.
//
// The JSON lines start with "NAT_PEER_RESULT " (iroh's own log, IROH_NODE_LOG=Warn|Debug|..,
// goes to stdout too). The peer exits on its own (dial) or when killed (accept); the
// shell test kills it on exit, also on failure.
'use strict';
const path = require('path');
const { execSync } = require('child_process');

let iroh;
try {
  iroh = require(path.join(__dirname, 'node_modules', '@number0', 'iroh'));
} catch (e) {
  console.error('nat_peer: the iroh test peer is not installed (scripts/install-deps.sh test): ' + e.message);
  process.exit(3);
}
if (process.env.IROH_NODE_LOG) iroh.setLogLevel(process.env.IROH_NODE_LOG);

const ALPN = Array.from(Buffer.from('netns/nat/0'));
const argv = process.argv.slice(2);
const mode = argv.shift();
const opt = {};
for (let i = 0; i < argv.length; i += 2) {
  if (!argv[i].startsWith('--') || i + 1 >= argv.length) {
    console.error(`nat_peer: bad argument ${argv[i]}`);
    process.exit(2);
  }
  opt[argv[i].slice(2)] = argv[i + 1];
}
if ((mode !== 'accept' && mode !== 'dial') || !opt.relay || (mode === 'dial' && !opt.id)) {
  console.error('usage: nat_peer.js accept|dial --relay URL [--id HEX] [options] (see the file)');
  process.exit(2);
}

const now = () => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (s) => process.stderr.write(`nat_peer ${mode}: ${s}\n`);
function pattern(n, seed) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7 + (i >> 9)) & 255;
  return b;
}
const pathsText = (conn) => JSON.stringify(conn.paths().map((p) =>
  ({ id: p.id, relay: p.isRelay, ip: p.isIp, sel: p.isSelected, addr: p.remoteAddr, rtt: p.rttMs })));
const selectedIp = (conn) => conn.paths().some((p) => p.isIp && p.isSelected);
const selectedRelay = (conn) => conn.paths().some((p) => p.isRelay && p.isSelected);

async function bindPeer() {
  const b = iroh.Endpoint.builder();
  iroh.presetMinimal(b);
  b.alpns([ALPN]);
  b.bindAddr(opt.bind || '0.0.0.0:0');
  const m = iroh.RelayMap.empty();
  const rc = { url: opt.relay };
  if (opt['quic-port']) rc.quicPort = Number(opt['quic-port']);
  m.insert(rc);
  b.relayMode(iroh.RelayMode.custom(m));
  const ep = await b.bind();
  const sock = ep.boundSockets().find((s) => !s.startsWith('['));
  const port = Number(sock.split(':').pop());
  if (opt.external) await ep.addExternalAddr(`${opt.external}:${port}`);
  await Promise.race([ep.online(), sleep(10000).then(() => { throw new Error('not online after 10 s'); })]);
  return { ep, port };
}

// logs each change of a connection's paths on stderr, polled every 5 ms (the binding's
// watchPathEvents panics: "there is no reactor running", iroh-js/src/watch.rs:103)
function watchEvents(conn, t0) {
  let last = '';
  const t = setInterval(() => {
    let s;
    try { s = pathsText(conn); } catch (e) { clearInterval(t); return; }
    const key = s.replace(/"rtt":[0-9.]+/g, "");
    if (key !== last) { last = key; log(`+${(now() - t0).toFixed(1)} ms paths ${s}`); }
  }, 5);
  t.unref();
  return t;
}

async function accept() {
  const { ep, port } = await bindPeer();
  log(`addr ${ep.addr().toString()}`);
  process.stdout.write('NAT_PEER_RESULT ' + JSON.stringify({ id: ep.id().toString(), port }) + '\n');
  for (;;) {
    const inc = await ep.acceptNext();
    if (!inc) return;
    (async () => {
      const t0 = now();
      const conn = await (await inc.accept()).connect();
      watchEvents(conn, t0);
      for (;;) {
        const bi = await conn.acceptBi();
        (async () => {
          // echo as it arrives (the fallback stream is long and paced)
          for (;;) {
            const chunk = await bi.recv.read(65536);
            if (!chunk || chunk.length === 0) break;
            await bi.send.writeAll(chunk);
          }
          await bi.send.finish();
        })().catch((e) => log(`stream: ${e.message || e}`));
      }
    })().catch((e) => log(`connection: ${e.message || e}`));
  }
}

// a paced echo stream: writes `chunk` bytes every `gapMs` until stop() and reads the echo
// back, comparing it with what was sent; resolves to {ok, bytes}
function pacedStream(conn, chunk, gapMs) {
  let stopping = false;
  const done = (async () => {
    const bi = await conn.openBi();
    let sent = 0;
    const writer = (async () => {
      while (!stopping) {
        await bi.send.writeAll(Array.from(pattern(chunk, sent / chunk)));
        sent += chunk;
        await sleep(gapMs);
      }
      await bi.send.finish();
    })();
    let got = 0, ok = true;
    for (;;) {
      const part = await bi.recv.read(65536);
      if (!part || part.length === 0) break;
      for (let i = 0; i < part.length; i++) {
        const at = got + i, seed = Math.floor(at / chunk), off = at % chunk;
        if (part[i] !== ((off * 31 + seed * 7 + (off >> 9)) & 255)) { ok = false; break; }
      }
      got += part.length;
    }
    await writer;
    return { ok: ok && got === sent, bytes: got, sent };
  })();
  return { stop: () => { stopping = true; }, done };
}

async function dial() {
  const { ep } = await bindPeer();
  const addr = new iroh.EndpointAddr(iroh.EndpointId.fromString(opt.id), opt.relay, []);
  const res = { connectMs: null, directMs: null, echoOk: null, paths: null };
  const t0 = now();
  const conn = await ep.connect(addr, ALPN);
  res.connectMs = now() - t0;
  watchEvents(conn, t0);
  const waitDirect = Number(opt['wait-direct'] || 10000);
  while (now() - t0 < waitDirect) {
    if (selectedIp(conn)) { res.directMs = now() - t0; break; }
    await sleep(1);
  }
  res.paths = pathsText(conn);
  log(`after ${(now() - t0).toFixed(1)} ms: ${res.paths}`);
  const n = Number(opt.bytes || 1048576);
  const data = pattern(n, 5);
  const bi = await conn.openBi();
  await bi.send.writeAll(Array.from(data));
  await bi.send.finish();
  res.echoOk = Buffer.from(await bi.recv.readToEnd(n + 1)).equals(data);
  if (opt['fallback-cmd'] && res.directMs !== null) {
    const s = pacedStream(conn, 16384, 20);
    await sleep(1000);
    const tb = now();
    execSync(opt['fallback-cmd'], { stdio: 'inherit' });
    log('direct path blackholed');
    const limit = Number(opt['fallback-wait'] || 40000);
    while (now() - tb < limit) {
      if (selectedRelay(conn) && !selectedIp(conn)) { res.fallbackMs = now() - tb; break; }
      await sleep(2);
    }
    log(`fallback: ${res.fallbackMs} ms: ${pathsText(conn)}`);
    await sleep(2000);   // more data over the relay, then the stream ends
    s.stop();
    const st = await Promise.race([s.done, sleep(60000).then(() => ({ ok: false, bytes: -1 }))]);
    res.streamOk = st.ok;
    res.streamBytes = st.bytes;
  }
  res.stats = conn.stats();
  process.stdout.write('NAT_PEER_RESULT ' + JSON.stringify(res) + '\n');
  conn.close(0n, []);
  await Promise.race([ep.close(), sleep(2000)]);
  process.exit(0);
}

(mode === 'accept' ? accept() : dial()).catch((e) => {
  console.error(`nat_peer ${mode}: ${e.stack || e}`);
  process.exit(1);
});
