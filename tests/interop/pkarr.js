// An independent JavaScript implementation of what the address lookup tests need (not a
// test itself): z-base-32, the iroh pkarr SignedPacket of spec 4.2 (identity-tickets-
// discovery.md) with its DNS packet as iroh builds it, a small DNS message codec for test
// queries and a test responder, and a network namespace whose resolv.conf names a server
// of the test. Written from the spec, not from iroh-c's C code, so that comparing the
// bytes of the two says something.
'use strict';
const dgram = require('dgram');
const fs = require('fs');
const http = require('http');
const net = require('net');
const { spawnSync } = require('child_process');

// ---- z-base-32 (spec 1.1): MSB-first bits, no padding -----------------------------------
const Z32 = 'ybndrfg8ejkmcpqxot1uwisza345h769';
function z32Encode(bytes) {
  let out = '', acc = 0, bits = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b; bits += 8;
    while (bits >= 5) { bits -= 5; out += Z32[(acc >> bits) & 31]; }
    acc &= (1 << bits) - 1;
  }
  if (bits) out += Z32[(acc << (5 - bits)) & 31];
  return out;
}
function z32Decode(s) {
  const out = []; let acc = 0, bits = 0;
  for (const c of s) {
    const v = Z32.indexOf(c);
    if (v < 0) throw new Error('not z-base-32: ' + s);
    acc = (acc << 5) | v; bits += 5;
    if (bits >= 8) { bits -= 8; out.push((acc >> bits) & 255); acc &= (1 << bits) - 1; }
  }
  return Buffer.from(out);
}

// ---- DNS names and messages (RFC 1035) ------------------------------------------------------
const TYPE = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, TXT: 16, AAAA: 28, SRV: 33, OPT: 41, AXFR: 252, ANY: 255 };
const TYPE_NAME = Object.fromEntries(Object.entries(TYPE).map(([k, v]) => [v, k]));

function encodeName(name) {
  const parts = name.replace(/\.$/, '').split('.').filter((l) => l.length);
  const bufs = [];
  for (const l of parts) {
    const b = Buffer.from(l, 'ascii');
    if (b.length > 63) throw new Error('label too long: ' + l);
    bufs.push(Buffer.from([b.length]), b);
  }
  bufs.push(Buffer.from([0]));
  return Buffer.concat(bufs);
}

// reads a (possibly compressed) name at off: { name, end } (end: after the name in place)
function readName(msg, off) {
  const labels = [];
  let end = -1, jumps = 0;
  for (;;) {
    if (off >= msg.length) throw new Error('name runs past the message');
    const len = msg[off];
    if ((len & 0xc0) === 0xc0) {
      if (off + 1 >= msg.length || ++jumps > 64) throw new Error('bad compression pointer');
      if (end < 0) end = off + 2;
      off = ((len & 0x3f) << 8) | msg[off + 1];
      continue;
    }
    if (len & 0xc0) throw new Error('bad label type');
    if (len === 0) { if (end < 0) end = off + 1; break; }
    if (off + 1 + len > msg.length) throw new Error('label runs past the message');
    labels.push(msg.subarray(off + 1, off + 1 + len).toString('latin1'));
    off += 1 + len;
  }
  return { name: labels.join('.'), end };
}

// character-strings of a TXT RDATA
function txtStrings(rdata) {
  const out = [];
  for (let i = 0; i < rdata.length;) {
    const n = rdata[i];
    if (i + 1 + n > rdata.length) throw new Error('TXT string runs past its record');
    out.push(rdata.subarray(i + 1, i + 1 + n).toString('utf8'));
    i += 1 + n;
  }
  return out;
}

function parseMessage(msg) {
  if (msg.length < 12) throw new Error('DNS message shorter than its header');
  const h = {
    id: msg.readUInt16BE(0), flags: msg.readUInt16BE(2),
    qd: msg.readUInt16BE(4), an: msg.readUInt16BE(6), ns: msg.readUInt16BE(8), ar: msg.readUInt16BE(10),
  };
  const m = { ...h, rcode: h.flags & 15, tc: !!(h.flags & 0x200), qr: !!(h.flags & 0x8000),
    aa: !!(h.flags & 0x400), questions: [], answers: [], authority: [], additional: [] };
  let off = 12;
  for (let i = 0; i < h.qd; i++) {
    const n = readName(msg, off); off = n.end;
    if (off + 4 > msg.length) throw new Error('question runs past the message');
    m.questions.push({ name: n.name, type: msg.readUInt16BE(off), cls: msg.readUInt16BE(off + 2) });
    off += 4;
  }
  for (const [count, list] of [[h.an, m.answers], [h.ns, m.authority], [h.ar, m.additional]]) {
    for (let i = 0; i < count; i++) {
      const n = readName(msg, off); off = n.end;
      if (off + 10 > msg.length) throw new Error('record runs past the message');
      const type = msg.readUInt16BE(off), cls = msg.readUInt16BE(off + 2), ttl = msg.readUInt32BE(off + 4);
      const rdlen = msg.readUInt16BE(off + 8);
      off += 10;
      if (off + rdlen > msg.length) throw new Error('RDATA runs past the message');
      const rdata = msg.subarray(off, off + rdlen);
      const rr = { name: n.name, type, cls, ttl, rdata, rdataOffset: off };
      if (type === TYPE.TXT) rr.txt = txtStrings(rdata);
      list.push(rr);
      off += rdlen;
    }
  }
  return m;
}

// a query: one question, RD set (as a stub resolver sends it)
function buildQuery(id, name, type) {
  const hdr = Buffer.alloc(12);
  hdr.writeUInt16BE(id, 0); hdr.writeUInt16BE(0x0100, 2); hdr.writeUInt16BE(1, 4);
  const q = Buffer.alloc(4); q.writeUInt16BE(type, 0); q.writeUInt16BE(1, 2);
  return Buffer.concat([hdr, encodeName(name), q]);
}

// a response to query (a Buffer) with answers [{ name, type, ttl, rdata }] and rcode
function buildResponse(query, answers, rcode = 0) {
  const q = parseMessage(query);
  const qEnd = readName(query, 12).end + 4;
  const hdr = Buffer.alloc(12);
  hdr.writeUInt16BE(q.id, 0);
  hdr.writeUInt16BE(0x8000 | 0x0400 | (q.flags & 0x0100) | 0x0080 | rcode, 2);
  hdr.writeUInt16BE(1, 4); hdr.writeUInt16BE(answers.length, 6);
  const parts = [hdr, query.subarray(12, qEnd)];
  for (const a of answers) {
    const f = Buffer.alloc(10);
    f.writeUInt16BE(a.type, 0); f.writeUInt16BE(1, 2); f.writeUInt32BE(a.ttl, 4); f.writeUInt16BE(a.rdata.length, 8);
    parts.push(encodeName(a.name), f, a.rdata);
  }
  return Buffer.concat(parts);
}

function txtRdata(strings) {
  return Buffer.concat(strings.map((s) => {
    const b = Buffer.from(s, 'utf8');
    if (b.length > 255) throw new Error('character-string over 255 bytes');
    return Buffer.concat([Buffer.from([b.length]), b]);
  }));
}

// ---- the iroh record and the pkarr SignedPacket (spec 4.1, 4.2) -----------------------------

// TXT strings of an EndpointInfo in iroh's order: relay, then addr (one per record), then
// user-data
function irohAttrs({ relay, addrs = [], userData } = {}) {
  const out = [];
  if (relay) out.push('relay=' + relay);
  for (const a of addrs) out.push('addr=' + a);
  if (userData !== undefined) out.push('user-data=' + userData);
  return out;
}

// the DNS packet inside a pkarr packet, as iroh (simple-dns) writes it: header 0 / 8000 /
// QD 0 / AN n; owner _iroh.<z32>, written in full once and then as the pointer C0 0C
function pkarrDns(key, strings, ttl = 30) {
  const hdr = Buffer.alloc(12);
  hdr.writeUInt16BE(0x8000, 2); hdr.writeUInt16BE(strings.length, 6);
  const parts = [hdr];
  strings.forEach((s, i) => {
    parts.push(i === 0 ? encodeName('_iroh.' + z32Encode(key)) : Buffer.from([0xc0, 0x0c]));
    const rdata = txtRdata([s]);
    const f = Buffer.alloc(10);
    f.writeUInt16BE(TYPE.TXT, 0); f.writeUInt16BE(1, 2); f.writeUInt32BE(ttl, 4); f.writeUInt16BE(rdata.length, 8);
    parts.push(f, rdata);
  });
  return Buffer.concat(parts);
}

// the BEP 44 message that is signed: "3:seqi<ts>e1:v<len>:" || dns
function pkarrSignable(tsUs, dns) {
  return Buffer.concat([Buffer.from(`3:seqi${BigInt(tsUs)}e1:v${dns.length}:`, 'ascii'), dns]);
}

function tsBytes(tsUs) {
  const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(tsUs)); return b;
}

// the relay payload (PUT body) sig || ts || dns, signed by sign(message: Buffer) -> 64 bytes
function pkarrPayload(sign, tsUs, dns) {
  const sig = Buffer.from(sign(pkarrSignable(tsUs, dns)));
  if (sig.length !== 64) throw new Error('a signature is 64 bytes');
  return Buffer.concat([sig, tsBytes(tsUs), dns]);
}

// splits a relay payload; no verification
function parsePayload(body) {
  if (body.length < 72) throw new Error('pkarr payload shorter than sig || ts');
  return { sig: body.subarray(0, 64), ts: body.readBigUInt64BE(64), dns: body.subarray(72) };
}

// the iroh attributes found in a DNS message (a pkarr packet or a resolver answer) for
// the owner name given: { relay, addrs, userData, strings }
function irohInfo(msg, owner) {
  const m = parseMessage(msg);
  const out = { relay: null, addrs: [], userData: null, strings: [] };
  for (const rr of m.answers) {
    if (rr.type !== TYPE.TXT || rr.name.toLowerCase() !== owner.toLowerCase().replace(/\.$/, '')) continue;
    const s = rr.txt.join('');
    out.strings.push(s);
    const [k, v] = s.split('=');
    if (k === 'relay' && !out.relay) out.relay = v;
    else if (k === 'addr') out.addrs.push(v);
    else if (k === 'user-data' && out.userData === null) out.userData = v;
  }
  return out;
}

// ---- a small DNS client and a test responder over UDP (and TCP for the client) ------------

function udpQuery(server, port, name, type, timeoutMs = 3000) {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket(net.isIPv6(server) ? 'udp6' : 'udp4');
    const id = (Math.random() * 65536) | 0;
    const t = setTimeout(() => { s.close(); reject(new Error(`no DNS answer from ${server}:${port} for ${name}`)); }, timeoutMs);
    s.on('message', (msg) => {
      if (msg.length < 2 || msg.readUInt16BE(0) !== id) return;
      clearTimeout(t); s.close(); resolve(msg);
    });
    s.on('error', (e) => { clearTimeout(t); s.close(); reject(e); });
    s.send(buildQuery(id, name, type), port, server);
  });
}

function tcpQuery(server, port, name, type, timeoutMs = 3000) {
  return new Promise((resolve, reject) => {
    const q = buildQuery(7, name, type);
    const len = Buffer.alloc(2); len.writeUInt16BE(q.length);
    const s = net.connect(port, server);
    let got = Buffer.alloc(0);
    const t = setTimeout(() => { s.destroy(); reject(new Error('no DNS answer over TCP')); }, timeoutMs);
    s.on('connect', () => s.write(Buffer.concat([len, q])));
    s.on('data', (d) => {
      got = Buffer.concat([got, d]);
      if (got.length >= 2 && got.length >= 2 + got.readUInt16BE(0)) {
        clearTimeout(t); s.destroy(); resolve(got.subarray(2, 2 + got.readUInt16BE(0)));
      }
    });
    s.on('error', (e) => { clearTimeout(t); reject(e); });
  });
}

// a UDP DNS responder on host:port; answer(question, queryBuffer, rinfo) returns
// { answers: [...], rcode }, { raw: Buffer or [Buffer...] } (sent as they are) or null
// (no reply). Every query is logged in .log.
function dnsResponder(host, port, answer) {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    const r = { socket: s, log: [], close: () => new Promise((res) => s.close(res)) };
    s.on('message', (msg, rinfo) => {
      let m;
      try { m = parseMessage(msg); } catch (e) { r.log.push({ bad: e.message }); return; }
      const q = m.questions[0];
      if (!q) return;
      r.log.push({ name: q.name, type: TYPE_NAME[q.type] || q.type, from: rinfo.address });
      const a = answer(q, msg, rinfo);
      if (a && a.raw) for (const r of [].concat(a.raw)) s.send(r, rinfo.port, rinfo.address);
      else if (a) s.send(buildResponse(msg, a.answers || [], a.rcode || 0), rinfo.port, rinfo.address);
    });
    s.once('error', reject);
    s.bind(port, host, () => resolve(r));
  });
}

// ---- HTTP to the pkarr relay --------------------------------------------------------------

function httpRequest(method, url, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = http.request({ method, hostname: u.hostname, port: u.port, path: u.pathname + u.search,
      headers: { ...headers, ...(body ? { 'content-length': body.length } : {}) } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.setTimeout(10000, () => req.destroy(new Error('HTTP timeout: ' + url)));
    if (body) req.write(body);
    req.end();
  });
}

// ---- a network namespace whose resolv.conf names a server of the test ----------------------

// why a namespace cannot be made here (a string), or null
function netnsUnavailable() {
  if (process.getuid && process.getuid() !== 0) return 'needs root for network namespaces';
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return 'needs iproute2 (ip netns)';
  return null;
}

// a namespace with its loopback up and /etc/netns/NAME/resolv.conf listing nameservers;
// .del() removes both (and kills what is still inside); registered to run on exit
function makeNetns(tag, nameservers) {
  const name = `lk-${tag}-${process.pid}`;
  const sh = (args) => spawnSync('ip', args, { encoding: 'utf8' });
  let r = sh(['netns', 'add', name]);
  if (r.status !== 0) throw new Error(`ip netns add ${name}: ${r.stderr.trim()}`);
  const etc = `/etc/netns/${name}`;
  const ns = {
    name, etc,
    del() {
      const p = sh(['netns', 'pids', name]);
      for (const pid of (p.stdout || '').split(/\s+/).filter(Boolean)) {
        try { process.kill(Number(pid), 'SIGKILL'); } catch (e) { /* gone */ }
      }
      sh(['netns', 'del', name]);
      fs.rmSync(etc, { recursive: true, force: true });
    },
    // argv prefix that runs a command inside
    exec: (argv) => ['ip', ['netns', 'exec', name, ...argv]],
  };
  process.on('exit', () => ns.del());
  fs.mkdirSync(etc, { recursive: true });
  fs.writeFileSync(`${etc}/resolv.conf`, nameservers.map((n) => `nameserver ${n}\n`).join(''));
  r = sh(['-n', name, 'link', 'set', 'lo', 'up']);
  if (r.status !== 0) { ns.del(); throw new Error(`lo up in ${name}: ${r.stderr.trim()}`); }
  return ns;
}

// Runs the calling test script inside a new namespace whose resolv.conf names
// nameservers: the first call (outside) makes the namespace, runs this same script in it
// through `ip netns exec` (which mounts /etc/netns/NAME/resolv.conf over /etc/resolv.conf),
// removes the namespace and exits with the script's status; inside it returns the
// namespace's name. Without root: prints SKIP and exits 0.
function runInNetns(tag, nameservers, timeoutMs = 400000) {
  if (process.env.IROH_LOOKUP_NETNS) return process.env.IROH_LOOKUP_NETNS;
  const why = netnsUnavailable();
  if (why) { console.log('SKIP: ' + why); process.exit(0); }
  let ns;
  try { ns = makeNetns(tag, nameservers); } catch (e) { console.log('SKIP: cannot create network namespaces here: ' + e.message); process.exit(0); }
  const r = spawnSync('ip', ['netns', 'exec', ns.name, process.execPath, process.argv[1], ...process.argv.slice(2)],
    { stdio: 'inherit', timeout: timeoutMs, env: { ...process.env, IROH_LOOKUP_NETNS: ns.name } });
  ns.del();
  if (r.error) { console.error('FAIL: ' + r.error.message); process.exit(1); }
  process.exit(r.status === null ? 1 : r.status);
}

module.exports = { runInNetns,  Z32, z32Encode, z32Decode, TYPE, TYPE_NAME, encodeName, readName, parseMessage,
  buildQuery, buildResponse, txtRdata, txtStrings, irohAttrs, pkarrDns, pkarrSignable, tsBytes,
  pkarrPayload, parsePayload, irohInfo, udpQuery, tcpQuery, dnsResponder, httpRequest,
  netnsUnavailable, makeNetns };
