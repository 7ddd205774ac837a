/* The endpoint core's datagram demux (endpoint/ep_core.c, reached through the shell
 * ep.c): routing by connection id, new connections from client Initials, Retry and its
 * tokens, stateless resets and version negotiation, fed through the test hook
 * ir_ep_inject_datagram (no socket reads). The endpoint's stateless replies (Retry,
 * Version Negotiation, stateless reset) still leave
 * through its UDP socket, to a socket of this harness on 127.0.0.1 (address A), where they
 * are read back and checked; the connections' own output is pulled here with
 * ir_conn_send and handed to a real client connection (quic/conn.h) in memory, with a
 * virtual clock.
 *
 * Input: a mode byte (bit 0: the endpoint requires Retry; bit 1: at most 2 connections;
 * bit 2: no ALPN, the endpoint accepts nothing; bit 3: the QUIC address discovery server
 * (X.509 certificate, ALPN /iroh-qad/0, OBSERVED_ADDRESS to each client) with an X.509
 * client; bit 4: the client dials by IP name, not DNS), then a script:
 *
 *   op % 16  what                                                 arguments
 *   0        a raw datagram from address op>>4 & 3                u16 length, bytes
 *            (0 A, 1 127.0.0.1:9, 2 a relay path, 3 [::1]:5: no socket of that family)
 *   1        the client's next datagram, XORed at a few places    u8 count, count x (u16 off, u8 x)
 *   2        deliver everything (client, connections, replies)    u8 rounds
 *   3        a long-header packet: u8 f (version f & 7: v1, 0, v2, a draft, a reserved
 *            one, u32 from the input; type f >> 3 & 3; from address f >> 5 & 3; f & 0x80:
 *            DCID = the SCID of the last Retry), u8 dcid length, dcid, u8 scid length,
 *            scid, u8 token length (0xff: the last Retry token), token, u16 datagram
 *            length, bytes (zeros after them)
 *   4        a short-header packet: u8 sel (DCID: sel & 3: 0 the client's current one,
 *            1 eight input bytes, 2 the client's original one, 3 twenty input bytes;
 *            from address sel >> 2 & 3), u16 length, bytes
 *   5        advance the clock (ms << (op>>4 & 7)) and run timers   u16 ms
 *   6        accept; op>>4 & 1: release connection u8 % count      (u8)
 *   7        the client opens a stream and writes (op>>4 & 1: closes instead)  u8 length
 *   8        the client's last datagram again, from address op>>4 & 3
 *   others   as 2
 *
 * Checked: sanitizers, leaks; a stateless reset is shorter than its trigger and sent
 * only for short headers with our CID length; a Version Negotiation answers only
 * full-size datagrams of another version and lists version 1; a Retry answers only a
 * full-size v1 Initial without a token, when Retry is on; and a client that is not
 * disturbed (only deliveries, stream writes, mutation-free sends) gets connected, with its
 * address reported in the address-discovery mode. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "endpoint/ep.h"
#include "endpoint/qad.h"
#include "endpoint/relay_link.h"
#include "net/udp.h"
#include "quic/conn.h"
#include "quic/conn_internal.h"
#include "quic/packet.h"
#include "fuzz_fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXD 1500
#define NS_MS 1000000ull

static int hsock = -1;
static ir_netaddr addr[4]; /* A (our socket), B, relay, v6 */
static iroh_socket_addr addr_a;
static ir_tls_identity *raw_ident, *x509_ident;

static void setup(void)
{
    if (hsock >= 0)
        return;
    fx_make_cert();
    hsock = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sin;
    int big = 4 << 20;
    setsockopt(hsock, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    if (hsock < 0 || bind(hsock, (struct sockaddr *)&sin, sizeof sin) != 0 ||
        getsockname(hsock, (struct sockaddr *)&sin, &sl) != 0)
        abort();
    ir_netaddr_from_sockaddr(&addr[0], (struct sockaddr *)&sin);
    if (ir_netaddr_to_socket_addr(&addr[0], &addr_a) != 0)
        abort();
    iroh_socket_addr b;
    if (iroh_socket_addr_parse("127.0.0.1:9", &b) != IROH_OK)
        abort();
    ir_netaddr_from_socket_addr(&addr[1], &b);
    uint8_t rid[32];
    memset(rid, 0x42, 32);
    ir_netaddr_relay(&addr[2], 0, rid);
    if (iroh_socket_addr_parse("[::1]:5", &b) != IROH_OK)
        abort();
    ir_netaddr_from_socket_addr(&addr[3], &b);
    iroh_secret_key ck;
    memset(ck.bytes, 0x33, 32);
    if (ir_tls_identity_new(&ck, &raw_ident) != IROH_OK ||
        ir_tls_identity_new_x509_client(fx_cert_file, &x509_ident) != IROH_OK)
        abort();
}

/* ---- the world of one input ------------------------------------------------------------- */

typedef struct pkt_t {
    size_t len;
    uint8_t d[MAXD];
} pkt_t;

#define QN 64
static struct {
    ir_ep *ep;
    ir_netaddr ep_addr;
    ir_conn *cl;
    int qad, retry;
    uint64_t now;
    pkt_t replies[QN]; /* read from our socket, for the client */
    int nreplies;
    pkt_t last;        /* the client's last datagram */
    uint8_t token[256];
    size_t token_len;  /* the last Retry's token */
    ir_cid retry_scid;
    ir_cid odcid;      /* the DCID of the client's first Initial */
    int pending_first; /* that Initial was taken from the client but not delivered yet */
    int disturbed;
} W;

static uint8_t scratch[MAXD + 64];

static void inject(const ir_netaddr *from, const uint8_t *d, size_t len)
{
    if (len > MAXD)
        len = MAXD;
    memcpy(scratch, d, len);
    ir_ep_inject_datagram(W.ep, from, scratch, len, W.now);
}

/* Reads what the endpoint sent to A since the last call; returns how many. */
static int read_replies(void)
{
    int got = 0;
    for (;;) {
        uint8_t b[2048];
        ssize_t n = recv(hsock, b, sizeof b, MSG_DONTWAIT);
        if (n < 0)
            break;
        if (n > MAXD)
            abort(); /* larger than any datagram the endpoint may send */
        got++;
        if (W.nreplies == QN)
            continue;
        pkt_t *r = &W.replies[W.nreplies++];
        r->len = (size_t)n;
        memcpy(r->d, b, (size_t)n);
        /* a Retry: keep its token and SCID */
        if (n > 7 && (b[0] & 0xf0) == 0xf0 && b[1] == 0 && b[2] == 0 && b[3] == 0 && b[4] == 1) {
            size_t o = 5;
            size_t dl = b[o++];
            o += dl;
            if (o < (size_t)n) {
                size_t sl = b[o++];
                if (sl <= IR_MAX_CID_LEN && o + sl + 16 <= (size_t)n) {
                    W.retry_scid.len = (uint8_t)sl;
                    memcpy(W.retry_scid.data, b + o, sl);
                    o += sl;
                    size_t tl = (size_t)n - 16 - o;
                    if (tl <= sizeof W.token) {
                        memcpy(W.token, b + o, tl);
                        W.token_len = tl;
                    }
                }
            }
        }
    }
    return got;
}

/* the replies read last, checked against the datagram that triggered them */
static void check_replies(int first, const uint8_t *trig, size_t tlen, int from_a)
{
    if (!from_a)
        return;
    for (int i = first; i < W.nreplies; i++) {
        const pkt_t *r = &W.replies[i];
        if (!(r->d[0] & 0x80)) {
            /* a stateless reset: only for a short header of our CID length, shorter */
            if ((trig[0] & 0x80) || r->len >= tlen || r->len < 21)
                abort();
            continue;
        }
        uint32_t v = (uint32_t)r->d[1] << 24 | (uint32_t)r->d[2] << 16 |
                     (uint32_t)r->d[3] << 8 | r->d[4];
        uint32_t tv = tlen >= 5 ? ((uint32_t)trig[1] << 24 | (uint32_t)trig[2] << 16 |
                                   (uint32_t)trig[3] << 8 | trig[4])
                                : 0;
        if (tlen < IR_MIN_INITIAL_SIZE || !(trig[0] & 0x80))
            abort(); /* no long-header reply to a short or small datagram */
        if (v == 0) {
            /* Version Negotiation for another version, listing version 1 */
            if (tv == IR_QUIC_V1)
                abort();
            int has_v1 = 0;
            size_t o = 5;
            o += 1 + r->d[o];
            if (o >= r->len)
                abort();
            o += 1 + r->d[o];
            for (; o + 4 <= r->len; o += 4)
                has_v1 |= r->d[o] == 0 && r->d[o + 1] == 0 && r->d[o + 2] == 0 && r->d[o + 3] == 1;
            if (!has_v1)
                abort();
        } else if ((r->d[0] & 0xf0) == 0xf0) {
            /* a Retry: only when asked for, to a v1 Initial */
            if (!W.retry || tv != IR_QUIC_V1 || (trig[0] & 0x30) != 0 || r->len > 3 * tlen)
                abort();
        } else {
            abort(); /* nothing else leaves the endpoint statelessly */
        }
    }
}

static void inject_checked(const ir_netaddr *from, const uint8_t *d, size_t len, int from_idx)
{
    read_replies();
    int first = W.nreplies;
    inject(from, d, len);
    read_replies();
    check_replies(first, d, len > MAXD ? MAXD : len, from_idx == 0);
}

static void timers(void)
{
    for (size_t i = 0; i < ir_ep_conn_count(W.ep); i++) {
        ir_conn *c = ir_ep_conn_at(W.ep, i);
        if (ir_conn_timeout(c) <= W.now)
            ir_conn_on_timeout(c, W.now);
    }
    if (ir_conn_timeout(W.cl) <= W.now)
        ir_conn_on_timeout(W.cl, W.now);
}

static void drain_events(void)
{
    ir_event ev;
    for (size_t i = 0; i < ir_ep_conn_count(W.ep); i++) {
        ir_conn *c = ir_ep_conn_at(W.ep, i);
        while (ir_conn_poll_event(c, &ev)) {
            if (ev.type == IR_EV_STREAM_OPENED || ev.type == IR_EV_STREAM_READABLE) {
                uint8_t b[4096];
                uint64_t code;
                while (ir_conn_stream_read(c, ev.stream_id, b, sizeof b, &code) > 0)
                    ;
            }
        }
    }
    while (ir_conn_poll_event(W.cl, &ev))
        ;
}

/* one round: the client's datagrams to the endpoint, the connections' to the client,
 * the replies read from our socket to the client */
static int round_trip(void)
{
    int moved = 0;
    uint8_t b[MAXD];
    ir_netaddr to;
    size_t n;
    timers();
    if (W.pending_first) {
        W.pending_first = 0;
        inject_checked(&addr[0], W.last.d, W.last.len, 0);
        moved = 1;
    }
    while ((n = ir_conn_send(W.cl, b, sizeof b, &to, W.now)) > 0) {
        W.last.len = n;
        memcpy(W.last.d, b, n);
        inject_checked(&addr[0], b, n, 0);
        moved = 1;
    }
    for (size_t i = 0; i < ir_ep_conn_count(W.ep); i++) {
        ir_conn *c = ir_ep_conn_at(W.ep, i);
        while ((n = ir_conn_send(c, b, sizeof b, &to, W.now)) > 0) {
            if (ir_netaddr_eq(&to, &addr[0]))
                ir_conn_recv(W.cl, &W.ep_addr, b, n, W.now);
            moved = 1;
        }
    }
    read_replies();
    for (int i = 0; i < W.nreplies; i++) {
        ir_conn_recv(W.cl, &W.ep_addr, W.replies[i].d, W.replies[i].len, W.now);
        moved = 1;
    }
    W.nreplies = 0;
    drain_events();
    return moved;
}

static void pump(unsigned rounds)
{
    for (unsigned r = 0; r < rounds; r++) {
        if (!round_trip()) {
            /* nothing moved: let the next timer fire */
            uint64_t t = ir_conn_timeout(W.cl);
            for (size_t i = 0; i < ir_ep_conn_count(W.ep); i++) {
                uint64_t u = ir_conn_timeout(ir_ep_conn_at(W.ep, i));
                if (u < t)
                    t = u;
            }
            if (t == UINT64_MAX || t > W.now + 2000 * NS_MS)
                break;
            if (t > W.now)
                W.now = t;
        }
    }
}

static void crafted_long(fx_rd *r)
{
    uint8_t f = fx_u8(r);
    static const uint32_t versions[5] = {IR_QUIC_V1, 0, 0x6b3343cfu, 0xff00001du, 0x1a2a3a4au};
    uint32_t v;
    if ((f & 7) < 5) {
        v = versions[f & 7];
    } else if ((f & 7) == 5) {
        v = (uint32_t)fx_u16(r) << 16;
        v |= fx_u16(r);
    } else {
        v = IR_QUIC_V1;
    }
    uint8_t p[MAXD];
    memset(p, 0, sizeof p);
    size_t o = 0;
    p[o++] = (uint8_t)(0xc0 | ((f >> 3) & 3) << 4 | (f & 0x40 ? 0x03 : 0x00));
    p[o++] = (uint8_t)(v >> 24);
    p[o++] = (uint8_t)(v >> 16);
    p[o++] = (uint8_t)(v >> 8);
    p[o++] = (uint8_t)v;
    size_t got, dl = fx_u8(r);
    const uint8_t *b;
    if (f & 0x80) {
        fx_bytes(r, dl, &got);
        p[o++] = W.retry_scid.len;
        memcpy(p + o, W.retry_scid.data, W.retry_scid.len);
        o += W.retry_scid.len;
    } else {
        b = fx_bytes(r, dl % 24, &got);
        p[o++] = (uint8_t)dl; /* the length says what the input says */
        memcpy(p + o, b, got);
        o += got;
    }
    size_t sl = fx_u8(r) % 24;
    b = fx_bytes(r, sl, &got);
    p[o++] = (uint8_t)got;
    memcpy(p + o, b, got);
    o += got;
    if (((f >> 3) & 3) == 0) { /* Initial: a token */
        size_t tl = fx_u8(r);
        if (tl == 0xff) {
            p[o++] = (uint8_t)(0x40 | (W.token_len >> 8));
            p[o++] = (uint8_t)W.token_len;
            memcpy(p + o, W.token, W.token_len);
            o += W.token_len;
        } else {
            b = fx_bytes(r, tl, &got);
            p[o++] = (uint8_t)(0x40 | (got >> 8));
            p[o++] = (uint8_t)got;
            memcpy(p + o, b, got);
            o += got;
        }
    }
    size_t total = fx_u16(r) % (MAXD + 1);
    if (total < o)
        total = o;
    /* the Length field (2-byte varint) covers the rest; then the input's bytes */
    size_t rest = total - o >= 2 ? total - o - 2 : 0;
    p[o++] = (uint8_t)(0x40 | ((rest >> 8) & 0x3f));
    p[o++] = (uint8_t)rest;
    b = fx_bytes(r, total > o ? total - o : 0, &got);
    memcpy(p + o, b, got);
    if (total < o)
        total = o;
    unsigned from = (f >> 5) & 3;
    inject_checked(&addr[from], p, total, (int)from);
}

static void crafted_short(fx_rd *r)
{
    uint8_t sel = fx_u8(r);
    uint16_t want = fx_u16(r);
    uint8_t p[MAXD];
    size_t o = 0, got;
    p[o++] = 0x40 | (sel & 0x80 ? 0x3f : 0x01);
    const ir_cid *cid = NULL;
    ir_conn *c = W.cl;
    switch (sel & 3) {
    case 0:
        if (c->paths[0]->cids.nrcid)
            cid = &c->paths[0]->cids.rcid[c->paths[0]->cids.active_rcid].cid;
        break;
    case 2:
        cid = &W.odcid;
        break;
    default: {
        const uint8_t *b = fx_bytes(r, (sel & 3) == 1 ? 8 : 20, &got);
        memcpy(p + o, b, got);
        o += got;
    }
    }
    if (cid) {
        memcpy(p + o, cid->data, cid->len);
        o += cid->len;
    }
    const uint8_t *b = fx_bytes(r, want % (MAXD - o + 1), &got);
    memcpy(p + o, b, got);
    o += got;
    unsigned from = (sel >> 2) & 3;
    inject_checked(&addr[from], p, o, (int)from);
}

static void mutate_next(fx_rd *r)
{
    uint8_t count = fx_u8(r), x[7] = {0};
    uint16_t off[7] = {0};
    unsigned n = 0;
    while (n < (count & 7u) && r->pos < r->len) {
        off[n] = fx_u16(r);
        x[n] = fx_u8(r);
        n++;
    }
    uint8_t b[MAXD];
    ir_netaddr to;
    timers();
    size_t len;
    if (W.pending_first) {
        W.pending_first = 0;
        len = W.last.len;
        memcpy(b, W.last.d, len);
    } else {
        len = ir_conn_send(W.cl, b, sizeof b, &to, W.now);
    }
    if (!len)
        return;
    for (unsigned i = 0; i < n; i++) {
        b[off[i] % len] ^= x[i];
        if (x[i])
            W.disturbed = 1;
    }
    W.last.len = len;
    memcpy(W.last.d, b, len);
    inject_checked(&addr[0], b, len, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    setup();
    memset(&W, 0, sizeof W);
    fx_rng = 0x9e3779b97f4a7c15ull;
    uint8_t mode = data[0];
    fx_rd r = {data, size, 1};
    W.qad = (mode >> 3) & 1;

    static const uint8_t alpn[] = "fuzz/1", qad_alpn[] = IR_QAD_ALPN;
    const uint8_t *alpns[1] = {W.qad ? qad_alpn : alpn};
    size_t lens[1] = {W.qad ? sizeof qad_alpn - 1 : sizeof alpn - 1};
    ir_ep_config cfg;
    memset(&cfg, 0, sizeof cfg);
    memset(cfg.key.bytes, 0x44, 32);
    cfg.alpns = alpns;
    cfg.alpn_lens = lens;
    cfg.n_alpns = (mode & 4) ? 0 : 1;
    if (iroh_socket_addr_parse("127.0.0.1:0", &cfg.bind4) != IROH_OK)
        abort();
    cfg.retry = W.retry = mode & 1;
    cfg.max_connections = (mode & 2) ? 2 : 0;
    if (W.qad) {
        cfg.x509_cert_file = fx_cert_file;
        cfg.x509_key_file = fx_key_file;
        cfg.qad_server = 1;
    }
    if (ir_ep_new(&cfg, &W.ep) != IROH_OK)
        abort();
    iroh_socket_addr ea;
    if (ir_ep_addrs(W.ep, &ea, 1) != 1)
        abort();
    ir_netaddr_from_socket_addr(&W.ep_addr, &ea);
    read_replies();
    W.nreplies = 0;
    W.now = 1000 * 1000 * NS_MS; /* not the endpoint's clock: only what the hook is told */

    ir_conn_config cc;
    ir_conn_config_defaults(&cc);
    cc.alpns = alpns;
    cc.alpn_lens = lens;
    cc.n_alpns = 1;
    cc.random = fx_random;
    memset(cc.reset_key, 0x55, 32);
    if (W.qad) {
        cc.identity = x509_ident;
        cc.tls_server_name = (mode & 16) ? "127.0.0.1" : "localhost";
        cc.tp.has_observed_address = 1;
        cc.tp.observed_address_role = 1;
        cc.tp.initial_max_streams_bidi = cc.tp.initial_max_streams_uni = 0;
    } else {
        cc.identity = raw_ident;
        cc.remote_id = ir_ep_id(W.ep);
    }
    if (ir_conn_client_new(&cc, &W.ep_addr, W.now, &W.cl) != IROH_OK)
        abort();
    {
        /* the first Initial waits in the client: its DCID is the original one */
        uint8_t b[MAXD];
        ir_netaddr to;
        ir_pkt_hdr h;
        size_t n = ir_conn_send(W.cl, b, sizeof b, &to, W.now);
        if (!n || ir_pkt_parse(b, n, 8, &h) != 0)
            abort();
        W.odcid = h.dcid;
        W.last.len = n;
        memcpy(W.last.d, b, n);
        W.pending_first = 1;
    }

    for (int ops = 0; ops < 300 && r.pos < r.len; ops++) {
        uint8_t op = fx_u8(&r);
        unsigned hi = op >> 4;
        switch (op & 15) {
        case 0: {
            size_t n;
            const uint8_t *b = fx_bytes(&r, fx_u16(&r) % (MAXD + 1u), &n);
            inject_checked(&addr[hi & 3], b, n, (int)(hi & 3));
            W.disturbed = 1;
            break;
        }
        case 1:
            mutate_next(&r);
            break;
        case 3:
            crafted_long(&r);
            W.disturbed = 1;
            break;
        case 4:
            crafted_short(&r);
            W.disturbed = 1;
            break;
        case 5:
            W.now += ((uint64_t)fx_u16(&r) * NS_MS) << (hi & 7);
            timers();
            W.disturbed = 1;
            break;
        case 6:
            (void)ir_ep_accept(W.ep);
            if (hi & 1) {
                uint8_t k = fx_u8(&r);
                size_t n = ir_ep_conn_count(W.ep);
                if (n)
                    ir_ep_release_quiet(W.ep, ir_ep_conn_at(W.ep, k % n), 1);
                W.disturbed = 1;
            }
            break;
        case 7: {
            uint8_t len = fx_u8(&r);
            if (hi & 1) {
                ir_conn_close(W.cl, 1, len, "bye", W.now);
                W.disturbed = 1;
            } else {
                uint64_t sid;
                uint8_t b[256];
                memset(b, 'x', sizeof b);
                if (ir_conn_stream_open(W.cl, 1, &sid) == 0)
                    (void)ir_conn_stream_write(W.cl, sid, b, len, 1);
            }
            break;
        }
        case 8:
            if (W.last.len)
                inject_checked(&addr[hi & 3], W.last.d, W.last.len, (int)(hi & 3));
            W.disturbed = 1;
            break;
        default:
            pump(1u + (fx_u8(&r) & 15u));
            break;
        }
    }
    pump(16);
    if (!W.disturbed && !(mode & 4)) {
        /* an undisturbed client gets in (through a Retry when asked) */
        if (ir_conn_get_state(W.cl) != IR_CONN_ESTABLISHED)
            abort();
        if (W.qad) {
            iroh_socket_addr seen;
            if (ir_conn_observed_addr(W.cl, &seen) != 0 || seen.family != 4 ||
                seen.port != addr_a.port || memcmp(seen.ip, addr_a.ip, 4) != 0)
                abort();
        }
    }
    ir_conn_free(W.cl);
    ir_ep_free(W.ep);
    return 0;
}
