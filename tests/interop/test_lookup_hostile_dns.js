// DNS answers are untrusted input: `iroh-c resolve ID --dns-server` against a DNS
// responder of this test (tests/interop/pkarr.js) that answers each id's TXT query in a
// hostile way. For every case iroh-c must end with status 1 and one line on stderr (never
// a crash, a hang or a record it should not believe), within its timeout:
//   garbage bytes with the query's ID; a header that promises answers it does not hold; a
//   name compression loop; TC set with nothing on TCP; a correct answer with the wrong ID
//   (spoofed); a correct record for another name; only values that do not parse.
// And the staggered retries survive garbage: garbage first, then the right answer on a
// later attempt, is found. No real iroh here: the JavaScript side writes the records as
// iroh does (spec 4.1).
'use strict';
const { check, finish, freePort } = require('./peer.js');
const pk = require('./pkarr.js');
const { runIrohc } = require('./lookup_util.js');
const crypto = require('crypto');
const ORIGIN = 'hostile.test';

const randomId = () => {
  // a valid EndpointId: the public key of a random secret, through iroh-c itself
  const { spawnSync } = require('child_process');
  const sk = spawnSync(process.env.IROH_C, ['keygen'], { encoding: 'utf8' }).stdout.trim();
  return spawnSync(process.env.IROH_C, ['id', sk], { encoding: 'utf8' }).stdout.trim();
};
const ownerOf = (hex) => `_iroh.${pk.z32Encode(Buffer.from(hex, 'hex'))}.${ORIGIN}`;
const RELAY = 'http://127.0.0.1:3340/';
const good = (q) => ({ answers: [{ name: q.name, type: pk.TYPE.TXT, ttl: 30, rdata: pk.txtRdata(['relay=' + RELAY]) }] });

(async () => {
  const cases = new Map(); // owner (lowercase) -> { name, fn(q, msg, n) }
  const seen = new Map();
  const port = await freePort();
  const dns = await pk.dnsResponder('127.0.0.1', port, (q, msg) => {
    const c = cases.get(q.name.toLowerCase());
    if (!c || q.type !== pk.TYPE.TXT) return { answers: [], rcode: 3 };
    const n = (seen.get(c.name) || 0) + 1;
    seen.set(c.name, n);
    return c.fn(q, msg, n);
  });
  const add = (name, fn) => { const id = randomId(); cases.set(ownerOf(id).toLowerCase(), { name, fn }); return { name, id }; };

  const bad = [
    add('garbage', (q, msg) => ({ raw: Buffer.concat([msg.subarray(0, 2), crypto.randomBytes(300)]) })),
    add('promises answers it lacks', (q, msg) => {
      const r = pk.buildResponse(msg, []);
      r.writeUInt16BE(5, 6); // AN = 5, none there
      return { raw: r };
    }),
    add('compression loop', (q, msg) => {
      const r = pk.buildResponse(msg, []);
      r.writeUInt16BE(1, 6);
      const at = r.length; // the answer's owner: a pointer to itself
      const rr = Buffer.alloc(12);
      rr.writeUInt16BE(0xc000 | at, 0); rr.writeUInt16BE(pk.TYPE.TXT, 2); rr.writeUInt16BE(1, 4);
      rr.writeUInt32BE(30, 6); rr.writeUInt16BE(0, 10);
      return { raw: Buffer.concat([r, rr]) };
    }),
    add('TC and no TCP', (q, msg) => {
      const r = pk.buildResponse(msg, []);
      r.writeUInt16BE(r.readUInt16BE(2) | 0x0200, 2);
      return { raw: r };
    }),
    add('wrong ID', (q, msg) => {
      const r = pk.buildResponse(msg, good(q).answers);
      r.writeUInt16BE((r.readUInt16BE(0) + 1) & 0xffff, 0);
      return { raw: r };
    }),
    add('another name', (q) => ({ answers: [{ name: ownerOf(randomId()), type: pk.TYPE.TXT, ttl: 30, rdata: pk.txtRdata(['relay=' + RELAY]) }] })),
    add('values that do not parse', (q) => ({ answers: ['relay=not a url', 'addr=1.2.3.4', 'addr=[::1]:99999']
      .map((s) => ({ name: q.name, type: pk.TYPE.TXT, ttl: 30, rdata: pk.txtRdata([s]) })) })),
  ];
  const retry = add('garbage, then the answer', (q, msg, n) => (n === 1 ? { raw: crypto.randomBytes(40) } : good(q)));

  const args = (id) => ['resolve', id, '--dns-server', `127.0.0.1:${port}`, '--dns-origin', ORIGIN, '--timeout', '8'];
  const results = await Promise.all([...bad, retry].map((c) => runIrohc(args(c.id), { timeoutMs: 30000 })));
  bad.forEach((c, i) => {
    const r = results[i];
    const lines = r.stderr.split('\n').filter(Boolean);
    check(r.status === 1 && r.stdout === '' && lines.length === 1 && /nothing found/.test(lines[0]) && r.ms < 12000,
      `${c.name}: resolve ends with status 1 and one line within its timeout: status ${r.status} in ${r.ms} ms, ` +
      `stdout ${JSON.stringify(r.stdout)}, stderr ${JSON.stringify(r.stderr)}`);
    check((seen.get(c.name) || 0) >= 1, `${c.name}: the query reached the responder`);
  });
  const r = results[bad.length];
  check(r.status === 0 && r.stdout.trim() === `{"id":"${retry.id}","relay":"${RELAY}","addrs":[]}`,
    `garbage first, then the right answer on a later attempt: found (status ${r.status}): ${r.stdout} ${r.stderr}`);
  check((seen.get(retry.name) || 0) >= 2, 'the right answer came from a second attempt: ' + seen.get(retry.name));
  await dns.close();
  finish();
})().catch((e) => { console.error('FAIL: ' + (e.stack || e)); process.exit(1); });
