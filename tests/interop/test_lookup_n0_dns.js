// What real iroh's n0 preset asks of DNS when it dials an EndpointId alone, and that it
// dials an iroh-c endpoint from a record in iroh's format (spec 4.1), the ground the other
// lookup tests stand on. The real peer (presetN0, its relay mode pointed at our local
// relay) runs in a network namespace whose /etc/netns/NAME/resolv.conf names a small DNS
// responder of this test (tests/interop/pkarr.js) on 127.0.0.1:53, which logs every
// question and answers the TXT query of the iroh-c endpoint with the records written here
// in JavaScript. Checked:
//   - the question is TXT _iroh.<z32 id>.dns.iroh.link, sent to the resolver of resolv.conf;
//   - with relay= only, real iroh reaches iroh-c through the relay; with addr= only (and
//     relays off on both sides), directly; an echo goes through either way;
//   - NXDOMAIN for an unknown id ends the dial with an error, not a hang.
'use strict';
const pk = require('./pkarr.js');
pk.runInNetns('n0dns', ['127.0.0.1']);

const { loadIroh, check, finish, withTimeout, startRelay, irohPeer, irohEcho } = require('./peer.js');
const { irohcListener } = require('./lookup_util.js');
const iroh = loadIroh();
const ALPN = 'lookup/n0';
const alpnBytes = Array.from(Buffer.from(ALPN));
const ORIGIN = 'dns.iroh.link';

const n0Endpoint = (relayUrl) => irohPeer(iroh, { relayUrl, alpns: [ALPN], n0: true });

(async () => {
  const records = new Map(); // lowercase owner name -> TXT strings
  const dns = await pk.dnsResponder('127.0.0.1', 53, (q) => {
    const strings = q.type === pk.TYPE.TXT && records.get(q.name.toLowerCase());
    if (!strings) return { answers: [], rcode: 3 };
    return { answers: strings.map((s) => ({ name: q.name, type: pk.TYPE.TXT, ttl: 30, rdata: pk.txtRdata([s]) })) };
  });
  const relay = await startRelay();
  const owner = (hex) => `_iroh.${pk.z32Encode(Buffer.from(hex, 'hex'))}.${ORIGIN}`;

  // 1. relay= only: real iroh dials the id, finds the relay, connects through it
  {
    const l = await irohcListener(ALPN, ['--relay', relay.url, '--bind', '127.0.0.1:0']);
    check(l.info.relay === relay.url + '/', 'the listener is homed on our relay: ' + JSON.stringify(l.info));
    const name = owner(l.info.id);
    records.set(name.toLowerCase(), pk.irohAttrs({ relay: l.info.relay }));
    const ep = await n0Endpoint(relay.url);
    const id = iroh.EndpointId.fromString(l.info.id);
    try {
      const conn = await withTimeout(ep.connect(new iroh.EndpointAddr(id, null, []), alpnBytes), 20000, 'dial by id (relay)');
      check(await irohEcho(conn, 3000, 1), 'echo over the connection dialed by id through the relay record');
      conn.close(0n, Array.from(Buffer.from('bye')));
    } catch (e) {
      check(false, 'real iroh dials an iroh-c id found as relay= in DNS: ' + e.message);
    }
    const asked = dns.log.filter((q) => q.name.toLowerCase() === name.toLowerCase());
    check(asked.length >= 1 && asked.every((q) => q.type === 'TXT'),
      'real iroh asked TXT ' + name + ' through resolv.conf: ' + JSON.stringify(dns.log.slice(0, 8)));
    await ep.close();
    l.proc.kill('SIGTERM');
  }

  // 2. addr= only, relays off on both sides: a direct connection
  {
    const l = await irohcListener(ALPN, ['--no-relay', '--bind', '127.0.0.1:0']);
    const name = owner(l.info.id);
    check(l.info.addrs.length >= 1, 'the listener has a direct address: ' + JSON.stringify(l.info));
    records.set(name.toLowerCase(), pk.irohAttrs({ addrs: l.info.addrs }));
    const ep = await n0Endpoint(null);
    const id = iroh.EndpointId.fromString(l.info.id);
    try {
      const conn = await withTimeout(ep.connect(new iroh.EndpointAddr(id, null, []), alpnBytes), 20000, 'dial by id (direct)');
      check(await irohEcho(conn, 2000, 2), 'echo over the connection dialed by id through addr=');
      check(conn.paths().some((p) => p.isIp && l.info.addrs.includes(p.remoteAddr)),
        'the direct path is the published address: ' + JSON.stringify(conn.paths().map((p) => p.remoteAddr)));
      conn.close(0n, Array.from(Buffer.from('bye')));
    } catch (e) {
      check(false, 'real iroh dials an iroh-c id found as addr= in DNS: ' + e.message);
    }
    await ep.close();
    l.proc.kill('SIGTERM');
  }

  // 3. an id nobody published: NXDOMAIN, and the dial fails (within iroh's staggered
  // retries, about 3 s) instead of hanging
  {
    const ep = await n0Endpoint(null);
    const id = iroh.SecretKey.generate().public();
    let err = null;
    try {
      await withTimeout(ep.connect(new iroh.EndpointAddr(id, null, []), alpnBytes), 30000, 'dial of an unknown id');
    } catch (e) { err = e.message; }
    check(err && !err.startsWith('timeout:') && /address lookup|addressing information/i.test(err),
      'dialing an unpublished id fails with a lookup error: ' + err);
    await ep.close();
  }
  await relay.stop();
  await dns.close();
  finish();
})().catch((e) => { console.error('FAIL: ' + (e.stack || e)); process.exit(1); });
