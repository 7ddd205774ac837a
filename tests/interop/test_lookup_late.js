// "Addresses found later are added as candidates to the connection in progress" (issue
// 13), seen from the command line: `iroh-c connect ID --verbose` asks two lookups at once.
// The pkarr relay (our dns-server) answers at once with the listener's relay only; a DNS
// responder of this test answers 1.5 s later with its direct address only. The listener
// offers no NAT traversal (IROH_C_HOLEPUNCHING=1: multipath only), so it advertises no
// address and the late lookup answer is the only way the dialer can learn the direct
// address; the dialer keeps the default (mode 2), whose path selection prefers a
// validated direct path over the relay, as iroh's does. The
// connection must start on the relay and then select the direct path, with the echo
// intact; and `resolve` waits for both and prints the union.
//
// Until the endpoint kept a connection's lookup running after iroh_endpoint_connect
// returned, this failed: the DNS answer was dropped and the connection stayed relayed.
'use strict';
const { check, finish, freePort, startRelay } = require('./peer.js');
const pk = require('./pkarr.js');
const { startDnsServer, irohcListener, waitPublished, runIrohc } = require('./lookup_util.js');
const ORIGIN = 'late.test';
const DELAY_MS = 1500;

(async () => {
  const env = { ...process.env, IROH_C_HOLEPUNCHING: '1' }; // the listener's
  const denv = { ...process.env };
  delete denv.IROH_C_HOLEPUNCHING; // the dialer's: the default
  const relay = await startRelay();
  const server = await startDnsServer('pkarr.test');
  const l = await irohcListener('lookup/late', ['--relay', relay.url, '--bind', '127.0.0.1:0', '--pkarr-relay', server.pkarrUrl], env);
  const pub = await waitPublished(server.pkarrUrl, l.info.id, 15000);
  check(pub.payload, 'the listener published its relay record: ' + l.err());
  const addr = l.info.addrs[0];

  const port = await freePort();
  const owner = `_iroh.${pk.z32Encode(Buffer.from(l.info.id, 'hex'))}.${ORIGIN}`.toLowerCase();
  const dns = await pk.dnsResponder('127.0.0.1', port, (q, msg, rinfo) => {
    if (q.name.toLowerCase() !== owner || q.type !== pk.TYPE.TXT) return { answers: [], rcode: 3 };
    const reply = pk.buildResponse(msg, [{ name: q.name, type: pk.TYPE.TXT, ttl: 30, rdata: pk.txtRdata(['addr=' + addr]) }]);
    setTimeout(() => dns.socket.send(reply, rinfo.port, rinfo.address), DELAY_MS);
    return null; // answered later, above
  });
  const lookups = ['--pkarr-relay', server.pkarrUrl, '--dns-server', `127.0.0.1:${port}`, '--dns-origin', ORIGIN];

  // connect: relay first (pkarr), then the direct address (DNS, 1.5 s later)
  const input = 'first line\n';
  const r = await runIrohc(['connect', l.info.id, '--alpn', 'lookup/late', '--relay', relay.url, '--bind', '127.0.0.1:0',
    '--verbose', '--timeout', '20', ...lookups], { input, env: denv, timeoutMs: 40000, holdStdinMs: 8000 });
  const lines = r.stderr.split('\n').filter(Boolean);
  const iFound = lines.findIndex((x) => x.startsWith('iroh-c: lookup: pkarr found'));
  const iRelay = lines.findIndex((x) => x.startsWith('iroh-c: path selected: relay'));
  const iDns = lines.findIndex((x) => x.startsWith('iroh-c: lookup: dns found') && x.includes('direct ' + addr));
  const iDirect = lines.findIndex((x) => x === `iroh-c: path selected: direct ${addr}` || x.startsWith(`iroh-c: path selected: direct ${addr} `));
  check(r.status === 0 && r.stdout === input, `the echo came back (status ${r.status}): ${r.stdout} ${r.stderr}`);
  check(iFound >= 0 && iRelay > iFound, 'the connection started on the relay the pkarr lookup found: ' + JSON.stringify(lines));
  check(iDns > iRelay, 'the DNS answer came later, while connected: ' + JSON.stringify(lines));
  check(iDirect > iDns, `then the direct address it named was selected (${addr}): ` + JSON.stringify(lines));

  // resolve: the union of both
  const res = await runIrohc(['resolve', l.info.id, ...lookups, '--timeout', '8'], { env });
  check(res.status === 0 && res.stdout.trim() === `{"id":"${l.info.id}","relay":"${relay.url}/","addrs":["${addr}"]}`,
    `resolve prints the union of both lookups: ${res.stdout} ${res.stderr}`);
  await dns.close();
  await server.stop();
  await relay.stop();
  finish();
})().catch((e) => { console.error('FAIL: ' + (e.stack || e)); process.exit(1); });
