// pkarr SignedPackets between iroh-c and the real iroh peer, with an independent
// JavaScript implementation of spec 4.2 (tests/interop/pkarr.js) in the middle:
//   1. the spec 7.3 vector: the JavaScript packet is byte for byte the spec's, and the
//      real peer's SecretKey.sign over its BEP 44 message is the spec's signature;
//   2. iroh-c publishes (`listen --pkarr-relay`, to our `iroh-c dns-server`) within 15 s;
//      the packet is the one JavaScript builds from the listener's ticket, byte for byte,
//      and the real peer's EndpointId.verify accepts its signature; with --publish-addrs
//      the record has its direct addresses as well, one addr= per TXT string;
//   3. the second interop test: the real peer's secret key signs a packet that
//      JavaScript builds for a real iroh endpoint, the test PUTs it to our server (204),
//      and iroh-c connects to that endpoint by id alone, once resolving through the pkarr
//      relay (GET) and once through DNS (our server answering TXT), hex and base32 ids;
//      `iroh-c resolve` prints what it found like `ticket decode`; `connect ID --no-relay`
//      dials the direct addresses found.
'use strict';
const { loadIroh, check, finish, withTimeout, startRelay, irohPeer, irohEchoServer } = require('./peer.js');
const pk = require('./pkarr.js');
const { startDnsServer, irohcListener, waitPublished, runIrohc } = require('./lookup_util.js');
const iroh = loadIroh();
const ALPN = 'lookup/pkarr';
const ORIGIN = 'lookup.test';

const SPEC_DNS = '000080000000000100000000055f69726f683479716f6f787839753361656d68386d6f35776371713136797566' +
  '75366a69746f7571316f347a61373531646765723169676768790000100001' + '0000001e002a29' +
  '72656c61793d68747470733a2f2f757365312d312e72656c61792e6e302e69726f682e6c696e6b2e2f';
const SPEC_SIG = 'da2d9c99895d23c863bce687be1a43deb49d76cdb79bdf65792e8ca389fcffca' +
  'b3b6cba9d8ebe1124b160edf2fb50649df639602a68e6ee80b4e2b6f1c11ef0a';

const signer = (sk) => (msg) => sk.sign(Array.from(msg)).toBytes();
const verifies = (hexId, payload) => {
  const { sig, ts, dns } = pk.parsePayload(payload);
  try {
    iroh.EndpointId.fromString(hexId).verify(Array.from(pk.pkarrSignable(ts, dns)), iroh.Signature.fromBytes(Array.from(sig)));
    return true;
  } catch (e) { return false; }
};

(async () => {
  // ---- 1. the spec vector ----------------------------------------------------------------
  const sk0 = iroh.SecretKey.fromBytes(Array.from({ length: 32 }, (_, i) => i));
  const key0 = Buffer.from(sk0.public().toBytes());
  check(pk.z32Encode(key0) === 'yqooxx9u3aemh8mo5wcqq16yufu6jitouq1o4za751dger1igghy', 'z-base-32 of the 0..31 key');
  const dns0 = pk.pkarrDns(key0, ['relay=https://use1-1.relay.n0.iroh.link./'], 30);
  check(dns0.toString('hex') === SPEC_DNS, 'the JavaScript DNS packet is spec 7.3 byte for byte: ' + dns0.toString('hex'));
  check(pk.pkarrSignable(1700000000000000n, dns0).subarray(0, 30).toString() === '3:seqi1700000000000000e1:v124:',
    'the signed message prefix is the spec\'s');
  const body0 = pk.pkarrPayload(signer(sk0), 1700000000000000n, dns0);
  check(body0.length === 196 && body0.subarray(0, 64).toString('hex') === SPEC_SIG &&
    body0.subarray(64, 72).toString('hex') === '00060a24181e4000', 'the real peer signs the spec\'s signature');
  check(verifies(sk0.public().toString(), body0), 'the real peer verifies the spec packet');

  const relay = await startRelay();
  const server = await startDnsServer(ORIGIN);
  const pkarrUrl = server.pkarrUrl;
  const dnsServer = `127.0.0.1:${server.dnsPort}`;

  // ---- 2. iroh-c publishes; the bytes are the JavaScript ones ----------------------------
  {
    const l = await irohcListener(ALPN, ['--relay', relay.url, '--bind', '127.0.0.1:0', '--pkarr-relay', pkarrUrl]);
    const pub = await waitPublished(pkarrUrl, l.info.id, 15000);
    check(pub.payload, `iroh-c listen --pkarr-relay published within 15 s (last status ${pub.status}): ${l.err()}`);
    if (pub.payload) {
      const { ts, dns } = pk.parsePayload(pub.payload);
      const want = pk.pkarrDns(Buffer.from(l.info.id, 'hex'), pk.irohAttrs({ relay: l.info.relay }), 30);
      check(dns.equals(want), `iroh-c's packet is the one JavaScript builds (relay only, TTL 30):\n ours ${dns.toString('hex')}\n want ${want.toString('hex')}`);
      check(verifies(l.info.id, pub.payload), 'the real peer verifies iroh-c\'s signature');
      const now = BigInt(Date.now()) * 1000n;
      check(ts <= now + 5000000n && ts >= now - 60000000n, 'the timestamp is now, in microseconds: ' + ts);
      console.log(`iroh-c listen published its record ${pub.ms} ms after its ticket`);
    }
    l.proc.kill('SIGTERM');
  }
  {
    const l = await irohcListener(ALPN, ['--relay', relay.url, '--bind', '127.0.0.1:0', '--pkarr-relay', pkarrUrl, '--publish-addrs']);
    // (the first record may come before the home relay is connected: addresses only)
    const pub = await waitPublished(pkarrUrl, l.info.id, 15000, (b) => {
      const i = pk.irohInfo(pk.parsePayload(b).dns, '_iroh.' + pk.z32Encode(Buffer.from(l.info.id, 'hex')));
      return i.addrs.length > 0 && i.relay;
    });
    check(pub.payload, '--publish-addrs: published with addresses within 15 s: ' + l.err());
    if (pub.payload) {
      const owner = '_iroh.' + pk.z32Encode(Buffer.from(l.info.id, 'hex'));
      const info = pk.irohInfo(pk.parsePayload(pub.payload).dns, owner);
      check(info.relay === l.info.relay, '--publish-addrs: relay= is still there: ' + JSON.stringify(info));
      check(l.info.addrs.every((a) => info.addrs.includes(a)),
        `--publish-addrs: every direct address of the ticket is published, one per TXT string: ${JSON.stringify(info.strings)} vs ${JSON.stringify(l.info.addrs)}`);
      check(info.strings[0].startsWith('relay=') && info.strings.slice(1).every((s) => s.startsWith('addr=')),
        'iroh\'s order: relay= first, then addr=: ' + JSON.stringify(info.strings));
      const want = pk.pkarrDns(Buffer.from(l.info.id, 'hex'), pk.irohAttrs({ relay: l.info.relay, addrs: l.info.addrs }), 30);
      check(pk.parsePayload(pub.payload).dns.equals(want),
        `--publish-addrs: the packet is the JavaScript one byte for byte: ${pk.parsePayload(pub.payload).dns.toString('hex')}`);
      check(verifies(l.info.id, pub.payload), '--publish-addrs: the real peer verifies the signature');
    }
    l.proc.kill('SIGTERM');
  }

  // ---- 3. the real peer's key signs, we PUT, iroh-c connects by id -----------------------
  {
    const ep = await irohPeer(iroh, { relayUrl: relay.url, alpns: [ALPN] });
    await withTimeout(ep.online(), 10000, 'real iroh online');
    irohEchoServer(ep);
    const hex = ep.id().toString();
    const key = Buffer.from(ep.id().toBytes());
    const z32 = pk.z32Encode(key);
    const addrs = ep.addr().directAddresses();
    const relayUrl = ep.addr().relayUrl();
    check(relayUrl && addrs.length > 0, 'the real peer has a relay and a direct address: ' + ep.addr().toString());

    // relay only first: iroh-c must go through the relay
    const ts1 = BigInt(Date.now()) * 1000n;
    const body1 = pk.pkarrPayload(signer(ep.secretKey()), ts1, pk.pkarrDns(key, pk.irohAttrs({ relay: relayUrl }), 30));
    let r = await pk.httpRequest('PUT', `${pkarrUrl}/${z32}`, body1);
    check(r.status === 204, 'PUT of the real peer\'s packet: 204, got ' + r.status + ' ' + r.body);
    r = await pk.httpRequest('GET', `${pkarrUrl}/${z32}`);
    check(r.status === 200 && r.body.equals(body1), 'GET gives the PUT body back');

    const input = 'hello real iroh, by id\n';
    const viaPkarr = await runIrohc(['connect', hex, '--alpn', ALPN, '--pkarr-relay', pkarrUrl, '--timeout', '20'], { input });
    check(viaPkarr.status === 0 && viaPkarr.stdout === input,
      `connect ID --pkarr-relay: echoed through the relay record (status ${viaPkarr.status}): ${viaPkarr.stderr}`);
    const b32 = Buffer.from(key); // RFC 4648 base32 of the id, the other form connect takes
    const base32 = (() => {
      const A = 'abcdefghijklmnopqrstuvwxyz234567'; let o = '', acc = 0, bits = 0;
      for (const x of b32) { acc = (acc << 8) | x; bits += 8; while (bits >= 5) { bits -= 5; o += A[(acc >> bits) & 31]; } acc &= (1 << bits) - 1; }
      if (bits) o += A[(acc << (5 - bits)) & 31];
      return o;
    })();
    const viaDns = await runIrohc(['connect', base32.toUpperCase(), '--alpn', ALPN, '--dns-server', dnsServer,
      '--dns-origin', ORIGIN, '--timeout', '20'], { input });
    check(viaDns.status === 0 && viaDns.stdout === input,
      `connect BASE32-ID --dns-server: echoed through DNS (status ${viaDns.status}): ${viaDns.stderr}`);

    // resolve prints what was found, in ticket decode's form
    const res = await runIrohc(['resolve', hex, '--pkarr-relay', pkarrUrl]);
    let js = null;
    try { js = JSON.parse(res.stdout); } catch (e) { /* checked below */ }
    check(res.status === 0 && js && js.id === hex && js.relay === relayUrl && Array.isArray(js.addrs) && js.addrs.length === 0,
      `resolve --pkarr-relay prints {"id","relay","addrs"}: status ${res.status} ${res.stdout} ${res.stderr}`);
    const resDns = await runIrohc(['resolve', hex, '--dns-server', dnsServer, '--dns-origin', ORIGIN]);
    check(resDns.status === 0 && resDns.stdout === res.stdout,
      `resolve through DNS says the same as through pkarr: ${resDns.stdout} ${resDns.stderr}`);

    // a newer packet with the direct addresses: connect --no-relay dials them
    const ts2 = ts1 + 1000n;
    const body2 = pk.pkarrPayload(signer(ep.secretKey()), ts2, pk.pkarrDns(key, pk.irohAttrs({ relay: relayUrl, addrs }), 30));
    r = await pk.httpRequest('PUT', `${pkarrUrl}/${z32}`, body2);
    check(r.status === 204, 'PUT of a newer packet: 204, got ' + r.status);
    const res2 = await runIrohc(['resolve', hex, '--pkarr-relay', pkarrUrl]);
    try { js = JSON.parse(res2.stdout); } catch (e) { js = null; }
    check(res2.status === 0 && js && addrs.every((a) => js.addrs.includes(a)),
      `resolve lists the direct addresses: ${res2.stdout} ${res2.stderr}`);
    const direct = await runIrohc(['connect', hex, '--alpn', ALPN, '--no-relay', '--pkarr-relay', pkarrUrl,
      '--bind', '127.0.0.1:0', '--stats', '--timeout', '20'], { input });
    check(direct.status === 0 && direct.stdout === input && /path direct 127\.0\.0\.1:/.test(direct.stderr),
      `connect ID --no-relay dials the direct address found (status ${direct.status}): ${direct.stderr}`);

    // nothing published for an id: resolve exits 1, connect fails with a clear line
    const nobody = iroh.SecretKey.generate().public().toString();
    const none = await runIrohc(['resolve', nobody, '--pkarr-relay', pkarrUrl, '--dns-server', dnsServer, '--dns-origin', ORIGIN]);
    check(none.status === 1 && none.stdout === '' && none.stderr.split('\n').filter(Boolean).length === 1,
      `resolve of an unknown id: exit 1, one line: ${none.status} ${JSON.stringify(none.stderr)}`);
    const noconn = await runIrohc(['connect', nobody, '--alpn', ALPN, '--pkarr-relay', pkarrUrl, '--timeout', '20']);
    check(noconn.status === 1 && noconn.ms < 15000 && /no address|not found|lookup/i.test(noconn.stderr),
      `connect to an unknown id fails with a lookup error (status ${noconn.status}, ${noconn.ms} ms): ${noconn.stderr}`);
    await ep.close();
  }
  await server.stop();
  await relay.stop();
  finish();
})().catch((e) => { console.error('FAIL: ' + (e.stack || e)); process.exit(1); });
