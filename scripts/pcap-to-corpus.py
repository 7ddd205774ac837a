#!/usr/bin/env python3
"""Turns a loopback capture (tcpdump -w, see scripts/record-corpus.sh) into fuzz inputs.

    scripts/pcap-to-corpus.py CAPTURE.pcap OUTDIR

UDP payloads that look like QUIC become inputs of fuzz/packet (the datagram) and fuzz/ep
(the datagram injected from the harness's address, with and without Retry). TCP streams
of the relay protocol (a client's stream starts with "GET /relay", a server's with
"HTTP/1.1 101") become inputs of fuzz/relay_http (the request head, core mode; other
GET and HEAD heads also for the metrics listener),
fuzz/relay_server (the client's stream as an attacker's raw bytes), fuzz/relay_client (the
server's stream after its 101), fuzz/relay_ws (either stream) and fuzz/relay_frame (each
relay frame inside). Inputs are capped at 4000 bytes (the ctest cases use -max_len=4096)
and named by their SHA-1, so running it twice adds nothing twice. A bulk transfer
captures hundreds of thousands of datagrams alike: at most a few of each kind (header
form and type, version, length in steps of 100) are kept, and of relay frames a few per
type and length step. OUTDIR/<target>/ is
meant to be merged into tests/fuzz/corpus/<target>/ with libFuzzer's -merge=1, which keeps
only what adds coverage. Standard library only."""
import hashlib
import os
import struct
import sys

CAP = 4000


def packets(path):
    """(linktype, frame bytes) for every record of a pcap file."""
    with open(path, 'rb') as f:
        data = f.read()
    magic = data[:4]
    if magic in (b'\xd4\xc3\xb2\xa1', b'\x4d\x3c\xb2\xa1'):
        end = '<'
    elif magic in (b'\xa1\xb2\xc3\xd4', b'\xa1\xb2\x3c\x4d'):
        end = '>'
    else:
        sys.exit('not a pcap file (use tcpdump -w, not pcapng)')
    linktype = struct.unpack(end + 'I', data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(end + 'IIII', data[off:off + 16])
        off += 16
        yield linktype, data[off:off + incl]
        off += incl


def ip_payload(linktype, frame):
    """(proto, src, dst, payload) of an IPv4/IPv6 packet, or None."""
    if linktype == 1:  # Ethernet (Linux loopback)
        if len(frame) < 14:
            return None
        etype = struct.unpack('>H', frame[12:14])[0]
        pkt = frame[14:]
    elif linktype == 113:  # Linux cooked
        etype = struct.unpack('>H', frame[14:16])[0]
        pkt = frame[16:]
    elif linktype == 276:  # Linux cooked v2
        etype = struct.unpack('>H', frame[0:2])[0]
        pkt = frame[20:]
    elif linktype in (0, 108):  # null / loop
        fam = struct.unpack('<I', frame[:4])[0]
        etype = 0x0800 if fam == 2 else 0x86dd
        pkt = frame[4:]
    else:
        return None
    if etype == 0x0800 and len(pkt) >= 20:
        ihl = (pkt[0] & 15) * 4
        total = struct.unpack('>H', pkt[2:4])[0]
        return pkt[9], pkt[12:16], pkt[16:20], pkt[ihl:total]
    if etype == 0x86dd and len(pkt) >= 40:
        plen = struct.unpack('>H', pkt[4:6])[0]
        return pkt[6], pkt[8:24], pkt[24:40], pkt[40:40 + plen]
    return None


def looks_quic(d):
    if len(d) < 21:
        return False
    if d[0] & 0x80:
        return (d[0] & 0x40) != 0 or d[1:5] == b'\0\0\0\0'
    return (d[0] & 0x40) != 0


def ws_messages(stream, masked):
    """Payloads of the WebSocket frames in a stream (unmasked), as far as they parse."""
    out = []
    i = 0
    while i + 2 <= len(stream):
        b0, b1 = stream[i], stream[i + 1]
        n = b1 & 0x7f
        j = i + 2
        if n == 126:
            if j + 2 > len(stream):
                break
            n = struct.unpack('>H', stream[j:j + 2])[0]
            j += 2
        elif n == 127:
            if j + 8 > len(stream):
                break
            n = struct.unpack('>Q', stream[j:j + 8])[0]
            j += 8
        key = None
        if b1 & 0x80:
            key = stream[j:j + 4]
            j += 4
        if j + n > len(stream):
            break
        p = bytearray(stream[j:j + n])
        if key:
            for k in range(len(p)):
                p[k] ^= key[k % 4]
        out.append((b0 & 0x0f, bytes(p)))
        i = j + n
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    cap, outdir = sys.argv[1], sys.argv[2]
    written = {}

    def put(target, data):
        data = data[:CAP]
        d = os.path.join(outdir, target)
        os.makedirs(d, exist_ok=True)
        name = hashlib.sha1(data).hexdigest()
        path = os.path.join(d, name)
        if not os.path.exists(path):
            with open(path, 'wb') as f:
                f.write(data)
            written[target] = written.get(target, 0) + 1

    kinds = {}

    def few(kind, n=3):
        kinds[kind] = kinds.get(kind, 0) + 1
        return kinds[kind] <= n

    flows = {}  # (src, sport, dst, dport) -> {seq: payload}
    base = {}
    seen_udp = 0
    for lt, frame in packets(cap):
        r = ip_payload(lt, frame)
        if not r:
            continue
        proto, src, dst, body = r
        if proto == 17 and len(body) >= 8:
            payload = body[8:]
            if looks_quic(payload) and len(payload) <= 1500:
                seen_udp += 1
                form = payload[0] & 0xf0 if payload[0] & 0x80 else 0x40
                if not few(('udp', form, payload[1:5] if form & 0x80 else b'',
                            len(payload) // 100)):
                    continue
                put('packet', payload)
                head = struct.pack('>BH', 0, len(payload))
                put('ep', b'\x00' + head + payload + b'\x02\x08')
                if payload[0] & 0xf0 == 0xc0:  # an Initial: also with Retry required
                    put('ep', b'\x01' + head + payload + b'\x02\x08')
        elif proto == 6 and len(body) >= 20:
            sport, dport, seq = struct.unpack('>HHI', body[:8])
            doff = (body[12] >> 4) * 4
            flags = body[13]
            key = (src, sport, dst, dport)
            if flags & 0x02:  # SYN
                base[key] = seq + 1
            payload = body[doff:]
            if payload:
                flows.setdefault(key, {})[seq] = payload

    for key, segs in flows.items():
        start = base.get(key, min(segs))
        buf = bytearray()
        for seq in sorted(segs, key=lambda s: (s - start) & 0xffffffff):
            off = (seq - start) & 0xffffffff
            p = segs[seq]
            if off > len(buf) or off > 1 << 24:
                break  # a gap: keep what is contiguous
            buf[off:off + len(p)] = p
        stream = bytes(buf)
        if stream.startswith(b'GET /relay'):
            end = stream.find(b'\r\n\r\n')
            if end < 0:
                continue
            head, rest = stream[:end + 4], stream[end + 4:]
            put('relay_http', b'\x1c' + head)
            ops = b''
            for i in range(0, min(len(stream), CAP), 1400):
                piece = stream[i:i + 1400]
                ops += struct.pack('>BH', 0, len(piece)) + piece
            put('relay_server', b'\x00' + ops + b'\x05\x03')
            put('relay_ws', b'\x40\x07\x02\x40' + rest)
            for op, m in ws_messages(rest, True)[:64]:
                if op == 2 and m and few(('frame', m[0], len(m) // 64), 2):
                    put('relay_frame', m)
        elif stream[:4] in (b'GET ', b'HEAD') and b'\r\n\r\n' in stream:
            # other requests (pages, /metrics): the relay's core and the metrics listener
            head = stream[:stream.find(b'\r\n\r\n') + 4]
            put('relay_http', b'\x1c' + head)
            put('relay_http', b'\x1e' + head)
        elif stream.startswith(b'HTTP/1.1 101'):
            end = stream.find(b'\r\n\r\n')
            if end < 0:
                continue
            rest = stream[end + 4:]
            put('relay_client', b'\x01' + rest)  # after a valid 101, raw server bytes
            put('relay_client', b'\x15' + rest)  # the same in 7-byte pieces
            put('relay_ws', b'\x40\x40\x40\x40' + stream)
            for op, m in ws_messages(rest, False)[:64]:
                if op == 2 and m and few(('frame', m[0], len(m) // 64), 2):
                    put('relay_frame', m)
    print('capture: %d QUIC datagrams, %d TCP flows' % (seen_udp, len(flows)))
    for t in sorted(written):
        print('  %-14s %d new inputs' % (t, written[t]))


if __name__ == '__main__':
    main()
