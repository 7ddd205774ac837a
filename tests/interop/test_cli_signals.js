// What the real iroh peer sees when an iroh-c command is interrupted: SIGINT to an
// `iroh-c listen --echo` with an iroh client connected, and SIGTERM to an `iroh-c
// connect` piping to an iroh server, both close the connection with application code 0
// and the reason "interrupted" (not an idle timeout), and exit with 130 and 143 within
// the 2 s.
'use strict';
const { spawn } = require('child_process');
const { loadIroh, check, finish, track, killAll, withTimeout, irohEchoServer, irohEcho } = require('./peer');
const iroh = loadIroh();
const IROH_C = process.env.IROH_C;
const ALPN = 'iroh-c/signals/0';
const bytes = (s) => Array.from(Buffer.from(s));

async function irohEndpoint(alpns) {
  const b = iroh.Endpoint.builder();
  iroh.presetMinimal(b);
  if (alpns) b.alpns(alpns.map(bytes));
  b.bindAddr('127.0.0.1:0');
  b.relayMode(iroh.RelayMode.disabled());
  return b.bind();
}

// the process's exit { code, sig, ms } after sending it sig
function stop(p, sig) {
  const t0 = Date.now();
  const exited = new Promise((res) => p.on('close', (code, s) => res({ code, sig: s, ms: Date.now() - t0 })));
  p.kill(sig);
  return withTimeout(exited, 10000, 'exit after ' + sig).catch(() => ({ code: -1, ms: -1 }));
}

async function main() {
  // ---- SIGINT to iroh-c listen --echo with an iroh client connected ------------------------
  const lis = track(spawn(IROH_C, ['listen', '--no-relay', '--alpn', ALPN, '--echo', '--bind', '127.0.0.1:0'],
    { stdio: ['ignore', 'pipe', 'pipe'] }));
  let out = '';
  lis.stdout.on('data', (d) => { out += d; });
  await withTimeout((async () => { while (!out.includes('\n')) await new Promise((r) => setTimeout(r, 50)); })(),
    10000, 'listen ticket');
  const client = await irohEndpoint(null);
  const conn = await withTimeout(client.connect(iroh.EndpointTicket.fromString(out.split('\n')[0].trim()).endpointAddr(),
    bytes(ALPN)), 10000, 'iroh -> iroh-c');
  check(await withTimeout(irohEcho(conn, 1000, 1), 10000, 'echo'), 'iroh -> iroh-c listen --echo: echoed');
  const closed = conn.closed();
  const st = await stop(lis, 'SIGINT');
  check(st.code === 130 && st.ms <= 2000, `iroh-c listen after SIGINT: status ${st.code} in ${st.ms} ms (want 130 within 2 s)`);
  const why = await withTimeout(closed, 5000, 'iroh sees the close').catch((e) => e.message);
  check(/^closed by peer: interrupted \(code 0\)$/.test(String(why)),
    `iroh sees an application close with "interrupted", code 0: ${why}`);
  console.log(`iroh's view of the interrupted listener: ${why}`);
  await client.close();

  // ---- SIGTERM to iroh-c connect piping to an iroh server ----------------------------------
  const server = await irohEndpoint([ALPN]);
  let serverConn = null;
  irohEchoServer(server, (c) => { serverConn = c; });
  const ticket = iroh.EndpointTicket.fromAddr(server.addr()).toString();
  const con = track(spawn(IROH_C, ['connect', '--no-relay', ticket, '--alpn', ALPN], { stdio: ['pipe', 'pipe', 'pipe'] }));
  con.stdin.on('error', () => {});
  con.stdin.write('stays open');
  await withTimeout((async () => { while (!serverConn) await new Promise((r) => setTimeout(r, 50)); })(), 10000, 'iroh accepts');
  const sclosed = serverConn.closed();
  const st2 = await stop(con, 'SIGTERM');
  check(st2.code === 143 && st2.ms <= 2000, `iroh-c connect after SIGTERM: status ${st2.code} in ${st2.ms} ms (want 143 within 2 s)`);
  const why2 = await withTimeout(sclosed, 5000, 'iroh server sees the close').catch((e) => e.message);
  check(/^closed by peer: interrupted \(code 0\)$/.test(String(why2)),
    `the iroh server sees an application close with "interrupted", code 0: ${why2}`);
  console.log(`iroh's view of the interrupted client: ${why2}`);
  await server.close();
}

main().then(finish, (e) => { console.error('FAIL: ' + e.stack); killAll(); process.exit(1); });
