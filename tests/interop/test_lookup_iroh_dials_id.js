// The first interop test: real iroh resolving through our server. In a network
// namespace whose /etc/netns/NAME/resolv.conf names `iroh-c dns-server` (on 127.0.0.1:53,
// origin dns.iroh.link, n0's), an iroh-c listener publishes its record to that server
// (`--pkarr-relay`), and a real iroh endpoint with n0's preset (presetN0: its DNS lookup of
// `_iroh.<z32>.dns.iroh.link` through the system resolver; its relay mode pointed at our
// local relay, since n0's relays are out of reach) dials the iroh-c endpoint by id alone:
//   1. the record names the home relay only (iroh's default): the dial goes through it;
//   2. `--publish-addrs --no-relay` and real iroh without relays: the dial goes to the
//      published direct address;
//   3. the other way on the same ground: the real peer's key signs its record (built in
//      JavaScript, PUT to our server, as real iroh cannot reach an http pkarr relay), and
//      iroh-c with its defaults only (n0's origin through the system resolver) dials the
//      real peer by id.
'use strict';
const pk = require('./pkarr.js');
pk.runInNetns('dials', ['127.0.0.1']);

const { loadIroh, check, finish, withTimeout, startRelay, irohPeer, irohEcho, irohEchoServer } = require('./peer.js');
const { startDnsServer, irohcListener, waitPublished, runIrohc, irohcEnv } = require('./lookup_util.js');
const iroh = loadIroh();
const ALPN = 'lookup/dials';
const alpnBytes = Array.from(Buffer.from(ALPN));
const ORIGIN = 'dns.iroh.link';

const n0Endpoint = (relayUrl) => irohPeer(iroh, { relayUrl, alpns: [ALPN], n0: true });

async function dialById(ep, hex, what) {
  const t0 = Date.now();
  try {
    const conn = await withTimeout(ep.connect(new iroh.EndpointAddr(iroh.EndpointId.fromString(hex), null, []), alpnBytes),
      20000, what);
    const ms = Date.now() - t0;
    check(await withTimeout(irohEcho(conn, 4000, 3), 10000, 'echo'), what + ': echo');
    return { conn, ms };
  } catch (e) {
    check(false, what + ': ' + e.message);
    return null;
  }
}

(async () => {
  const server = await startDnsServer(ORIGIN, { dnsPort: 53 });
  const relay = await startRelay();

  // 1. relay only
  {
    const l = await irohcListener(ALPN, ['--relay', relay.url, '--bind', '127.0.0.1:0', '--pkarr-relay', server.pkarrUrl]);
    const pub = await waitPublished(server.pkarrUrl, l.info.id, 15000);
    check(pub.payload, 'iroh-c published within 15 s: ' + l.err());
    const name = `_iroh.${pk.z32Encode(Buffer.from(l.info.id, 'hex'))}.${ORIGIN}`;
    const ans = pk.parseMessage(await pk.udpQuery('127.0.0.1', 53, name, pk.TYPE.TXT));
    check(ans.rcode === 0 && ans.qr, 'our server answers the TXT query of the record: rcode ' + ans.rcode);
    const txt = ans.answers.filter((a) => a.type === pk.TYPE.TXT).map((a) => a.txt.join(''));
    check(txt.length === 1 && txt[0] === 'relay=' + l.info.relay, `the DNS answer is relay=<home relay>: ${JSON.stringify(txt)}`);
    const ep = await n0Endpoint(relay.url);
    const r = await dialById(ep, l.info.id, 'real iroh (presetN0) dials the iroh-c id through our DNS server');
    if (r) {
      console.log(`real iroh dialed by id (DNS lookup + relay) in ${r.ms} ms`);
      r.conn.close(0n, Array.from(Buffer.from('bye')));
    }
    await ep.close();
    l.proc.kill('SIGTERM');
  }

  // 2. direct addresses only
  {
    const l = await irohcListener(ALPN, ['--no-relay', '--bind', '127.0.0.1:0', '--pkarr-relay', server.pkarrUrl, '--publish-addrs']);
    const pub = await waitPublished(server.pkarrUrl, l.info.id, 15000);
    check(pub.payload, 'iroh-c --publish-addrs --no-relay published within 15 s: ' + l.err());
    const ep = await n0Endpoint(null);
    const r = await dialById(ep, l.info.id, 'real iroh without relays dials the iroh-c id at its published address');
    if (r) {
      check(r.conn.paths().some((p) => p.isIp && l.info.addrs.includes(p.remoteAddr)),
        'the path is the published direct address: ' + JSON.stringify(r.conn.paths().map((p) => p.remoteAddr)));
      r.conn.close(0n, Array.from(Buffer.from('bye')));
    }
    await ep.close();
    l.proc.kill('SIGTERM');
  }
  // 3. iroh-c (defaults only) dials a real iroh endpoint whose record the test published
  {
    const ep = await irohPeer(iroh, { relayUrl: relay.url, alpns: [ALPN] });
    await withTimeout(ep.online(), 10000, 'real iroh online');
    irohEchoServer(ep);
    const key = Buffer.from(ep.id().toBytes());
    const dns = pk.pkarrDns(key, pk.irohAttrs({ relay: ep.addr().relayUrl() }), 30);
    const body = pk.pkarrPayload((msg) => ep.secretKey().sign(Array.from(msg)).toBytes(), BigInt(Date.now()) * 1000n, dns);
    const put = await pk.httpRequest('PUT', `${server.pkarrUrl}/${pk.z32Encode(key)}`, body);
    check(put.status === 204, 'PUT of the real peer\'s record: ' + put.status);
    const input = 'iroh-c dials real iroh by id\n';
    const r = await runIrohc(['connect', ep.id().toString(), '--alpn', ALPN, '--timeout', '20'], { input, env: irohcEnv(true) });
    check(r.status === 0 && r.stdout === input,
      `iroh-c connect ID with its defaults (resolv.conf, dns.iroh.link) reaches the real peer (status ${r.status}): ${r.stderr}`);
    await ep.close();
  }
  await relay.stop();
  await server.stop();
  finish();
})().catch((e) => { console.error('FAIL: ' + (e.stack || e)); process.exit(1); });
