/* A live QUIC server connection (and its client) fed by the fuzzer. Per input a real
 * client makes its first Initial, the server connection is created from it, and then the
 * input is a script of operations, each an operation byte and its arguments:
 *
 *   op % 16   what                                             arguments
 *   0         raw datagram to the server (from address op>>4,   u16 length, bytes
 *             counted from the client's current one)
 *   1         next client datagram to the server, XORed         u8 count, count x (u16 off, u8 x)
 *   2         deliver pending traffic both ways, normally       u8 rounds
 *   3         advance the clock (ms << (op>>4 & 7))             u16
 *   4         frames sealed with the client's keys -> server    u8 space, u16 length, frames
 *             (space & 7: 0 3 Initial, 1 4 Handshake, 2 5 1-RTT, 6 1-RTT and 7 Handshake
 *             with the reserved header bits set;
 *             0x80: 4-byte pn; 0x40: no Initial padding / spin bit; 0x20: flip the key
 *             phase; (space >> 3) & 3: source address)
 *   5         frames sealed with the server's keys -> client    u8 space, u16 length, frames
 *   6         client application action                         u8 action, u8 length, bytes
 *   7         server application action                         u8 action, u8 length, bytes
 *   8         raw datagram to the client                        u16 length, bytes
 *   9         drop the next datagram (op>>4 & 1: to the client) -
 *   10        next server datagram to the client, XORed         as 1
 *   11        duplicate the next datagram (op>>4 & 1: to client) -
 *   12        the client moves to address op>>4 (NAT rebinding); its next datagram is
 *             delivered from there
 *   13        bulk write (op>>4 & 1: by the server)               u8 stream, u16 length
 *             (stream & 0x80: on a new bidi stream, else on bidi stream (stream & 15);
 *             stream & 0x40: with FIN)
 *   14, 15    as 2
 *
 * (lengths are big-endian; the input ends an operation early when it runs out). Both
 * sides send until they have nothing more, run their timers when due, and read every
 * stream and datagram they are told about; the server echoes what it reads. Checked on
 * the way: sanitizers and leaks (everything is freed at the end of each input), the
 * connections' own bookkeeping, anti-amplification, connection flow control, Initial
 * padding, and that stream data arrives unchanged and in order (see the oracle below).
 *
 * The handshake's TLS randomness comes from GnuTLS, not from the input, so keys and
 * ciphertexts differ from run to run; what an input does (drop, mutate, seal frames)
 * does not depend on them. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quic/conn.h"
#include "quic/conn_internal.h"
#include "quic/packet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifndef FUZZ_CONN_QAD
#define QAD_X509 0
#endif

#define MAX_DGRAM 1500
#define QLEN 32
#define MAX_OPS 400
#define START_NS 1000000000ull

/* ---- one-time setup --------------------------------------------------------------------- */

static int initialized;
static ir_tls_identity *client_ident, *server_ident;
static iroh_endpoint_id server_id;
static const uint8_t *alpns[] = {(const uint8_t *)"fuzz/1", (const uint8_t *)"n0/iroh/0"};
static const size_t alpn_lens[] = {6, 9};

#ifdef FUZZ_CONN_QAD
/* fuzz_qad.c: see fuzz_conn_qad.h, included below */
static unsigned qad_mode;
#define QAD_X509 ((qad_mode >> 4) & 1)
static void qad_setup(void);
static void qad_config(ir_conn_config *cfg, int server);
#endif

static void setup(void)
{
    if (initialized)
        return;
    iroh_secret_key a, b;
    memset(a.bytes, 0x5a, 32);
    memset(b.bytes, 0xa5, 32);
    if (ir_tls_identity_new(&a, &client_ident) != IROH_OK ||
        ir_tls_identity_new(&b, &server_ident) != IROH_OK)
        abort();
    iroh_secret_key_public(&b, &server_id);
#ifdef FUZZ_CONN_QAD
    qad_setup();
#endif
    initialized = 1;
}

/* deterministic randomness for connection ids, challenges and grease */
static uint64_t rng_state;
static void fuzz_random(void *ctx, uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        buf[i] = (uint8_t)rng_state;
    }
}

static void config(ir_conn_config *cfg, int server)
{
    ir_conn_config_defaults(cfg);
    cfg->identity = server ? server_ident : client_ident;
    cfg->alpns = alpns;
    cfg->alpn_lens = alpn_lens;
    cfg->n_alpns = 2;
    cfg->remote_id = server ? NULL : &server_id;
    cfg->random = fuzz_random;
    memset(cfg->reset_key, server ? 0x22 : 0x11, 32);
    cfg->tp.max_datagram_frame_size = 1200;
    cfg->tp.initial_max_streams_bidi = 8;
    cfg->tp.initial_max_streams_uni = 4;
    /* small windows, so that flow control and its updates happen within an input */
    cfg->tp.initial_max_data = 48 << 10;
    cfg->tp.initial_max_stream_data_bidi_local = 16 << 10;
    cfg->tp.initial_max_stream_data_bidi_remote = 16 << 10;
    cfg->tp.initial_max_stream_data_uni = 16 << 10;
    cfg->max_stream_window = 64 << 10;
    cfg->max_conn_window = 256 << 10;
    cfg->max_stream_send_buffer = 1 << 16;
#ifdef FUZZ_CONN_QAD
    qad_config(cfg, server);
#endif
}

/* ---- the input ---------------------------------------------------------------------------- */

typedef struct rd {
    const uint8_t *p;
    size_t len, pos;
} rd;

static int rd_u8(rd *r, uint8_t *v)
{
    if (r->pos >= r->len)
        return -1;
    *v = r->p[r->pos++];
    return 0;
}

static int rd_u16(rd *r, uint16_t *v)
{
    if (r->len - r->pos < 2)
        return -1;
    *v = (uint16_t)(r->p[r->pos] << 8 | r->p[r->pos + 1]);
    r->pos += 2;
    return 0;
}

/* up to n bytes (fewer at the end of the input) */
static const uint8_t *rd_bytes(rd *r, size_t n, size_t *got)
{
    size_t left = r->len - r->pos;
    if (n > left)
        n = left;
    const uint8_t *p = r->p + r->pos;
    r->pos += n;
    *got = n;
    return p;
}

/* ---- the network ---------------------------------------------------------------------------- */

typedef struct dg {
    size_t len;
    uint8_t data[MAX_DGRAM];
} dg;

typedef struct queue {
    dg q[QLEN];
    size_t head, n;
} queue;

typedef struct world {
    ir_conn *c[2]; /* 0 client, 1 server */
    queue to[2];   /* datagrams waiting for side i */
    uint64_t now;
    ir_netaddr addr[4]; /* [0] the client, [1] [2] others, [3] empty */
    unsigned client_at; /* the client's current address (NAT rebinding moves it) */
    ir_netaddr server_addr;
} world;

static world W;

/* ---- an oracle for stream data ----------------------------------------------------------------
 * What the client writes on its bidirectional streams must reach the server's reads
 * unchanged and in order, and the server's echo must come back the same, however the
 * datagrams are lost, duplicated, reordered or corrupted on the way. Frames the fuzzer
 * seals itself can put anything on a stream, so they end the check for that direction. */

#define TRACKED 16
#define TRACK_BYTES 131072

typedef struct track {
    uint8_t w[TRACK_BYTES];
    size_t wlen;     /* bytes the client's writes took */
    size_t srv_read; /* bytes the server read (and echoed) */
    size_t echoed;   /* bytes the server's echo writes took */
    size_t cli_read; /* echo bytes the client read */
    int overflow, echo_broken;
} track;

static track T[TRACKED];
static int taint_c2s, taint_s2c;
static int disturbed; /* streams were reset or stopped, or a side closed */

static track *tracked(uint64_t id)
{
    if ((id & 3) != 0 || (id >> 2) >= TRACKED)
        return NULL;
    return &T[id >> 2];
}

static void client_wrote(uint64_t id, const uint8_t *d, long n)
{
    track *t = tracked(id);
    if (!t || n <= 0 || t->overflow)
        return;
    if (t->wlen + (size_t)n > TRACK_BYTES) {
        t->overflow = 1;
        return;
    }
    memcpy(t->w + t->wlen, d, (size_t)n);
    t->wlen += (size_t)n;
}

static void check_read(int side, uint64_t id, const uint8_t *d, size_t n)
{
    track *t = tracked(id);
    if (!t || t->overflow)
        return;
    if (side == 1) {
        if (!taint_c2s && (t->srv_read + n > t->wlen || memcmp(t->w + t->srv_read, d, n) != 0))
            abort(); /* the server read what the client never wrote there */
        t->srv_read += n;
    } else {
        if (!taint_c2s && !taint_s2c && !t->echo_broken &&
            (t->cli_read + n > t->echoed || memcmp(t->w + t->cli_read, d, n) != 0))
            abort(); /* the echo came back different */
        t->cli_read += n;
    }
}

static void q_push(queue *q, const uint8_t *d, size_t len)
{
    if (q->n == QLEN) { /* full: drop the oldest */
        q->head = (q->head + 1) % QLEN;
        q->n--;
    }
    dg *e = &q->q[(q->head + q->n) % QLEN];
    e->len = len;
    memcpy(e->data, d, len);
    q->n++;
}

static dg *q_front(queue *q)
{
    return q->n ? &q->q[q->head] : NULL;
}

static void q_pop(queue *q)
{
    if (q->n) {
        q->head = (q->head + 1) % QLEN;
        q->n--;
    }
}

/* ---- driving the connections ---------------------------------------------------------------- */

static void check_conn(const ir_conn *c)
{
    /* what the connection reports stays within its own limits */
    if (c->ev_n > c->ev_cap || c->paths[0]->cids.nlcid > MAX_LOCAL_CIDS || c->paths[0]->cids.nrcid > MAX_REMOTE_CIDS ||
        c->paths[0]->cids.active_rcid >= (c->paths[0]->cids.nrcid ? c->paths[0]->cids.nrcid : 1) || c->dg_in_n > DGRAM_QUEUE ||
        c->dg_out_n > DGRAM_QUEUE || 2 * c->streams.n > c->streams.cap)
        abort();
    /* anti-amplification (RFC 9000 8.1): at most 3x what an unvalidated address sent */
    if (c->is_server && !c->paths[0]->validated && c->paths[0]->bytes_sent > 3 * c->paths[0]->bytes_recv)
        abort();
    for (int s = 0; s < SP_COUNT; s++)
        if (PNS(c, c->paths[0], s).nsent > PNS(c, c->paths[0], s).capsent ||
            PNS(c, c->paths[0], s).nframes > PNS(c, c->paths[0], s).capframes)
            abort();
    /* multipath (both offer it, iroh's defaults): every path slot within its limits, at
     * most IR_CONN_MAX_PATHS, the path data goes on an open one while any is open, and
     * path ids within both sides' limits */
    int open = 0, sending_open = 0;
    for (size_t i = 0; i < IR_MAX_PATHS; i++) {
        const qpath *p = c->paths[i];
        if (p->cids.nlcid > MAX_LOCAL_CIDS || p->cids.nrcid > MAX_REMOTE_CIDS || p->nresp > IR_MAX_RESPONSES ||
            (p->cids.nrcid && p->cids.active_rcid >= p->cids.nrcid) || p->app.nsent > p->app.capsent ||
            p->app.nframes > p->app.capframes)
            abort();
        if (p->state == PS_OPEN) {
            open++;
            sending_open |= p == c->send_path;
            if (c->multipath && p->id > c->local_max_path_id)
                abort();
            if (c->is_server && !p->validated && !p->initiated && p->bytes_sent > 3 * p->bytes_recv)
                abort();
        }
    }
    if ((!c->multipath && c->npaths != 1) || (c->state == IR_CONN_ESTABLISHED && open && !sending_open))
        abort();
    /* connection flow control (RFC 9000 4.1, 4.5): what the peer's streams used, final
     * sizes of reset streams included, stays within what we allowed, unless we closed */
    if (c->state < IR_CONN_CLOSING && c->recv_data > c->max_data_local)
        abort();
}

static void read_streams(int side, uint64_t id)
{
    ir_conn *c = W.c[side];
    uint8_t buf[2048];
    for (int k = 0; k < 64; k++) {
        uint64_t code = 0;
        long n = ir_conn_stream_read(c, id, buf, sizeof buf, &code);
        if (n > (long)sizeof buf)
            abort();
        if (n > 0) {
            check_read(side, id, buf, (size_t)n);
            /* the server echoes what it reads on bidirectional streams */
            if (side == 1 && !(id & 2)) {
                long w = ir_conn_stream_write(c, id, buf, (size_t)n, 0);
                track *t = tracked(id);
                if (t && w != n)
                    t->echo_broken = 1;
                else if (t)
                    t->echoed += (size_t)n;
            }
            continue;
        }
        if (n == 0 && side == 1 && !(id & 2))
            ir_conn_stream_write(c, id, NULL, 0, 1); /* echo the FIN */
        break;
    }
}

static void poll_events(int side)
{
    ir_conn *c = W.c[side];
    ir_event ev;
    uint8_t buf[1500];
    for (int k = 0; k < 256 && ir_conn_poll_event(c, &ev); k++) {
        switch (ev.type) {
        case IR_EV_CONNECTED: {
            iroh_endpoint_id id;
            size_t alen = 0;
            if ((ir_conn_peer_id(c, &id) != 0 && !QAD_X509) || !ir_conn_alpn(c, &alen) ||
                alen == 0)
                abort();
            break;
        }
        case IR_EV_STREAM_OPENED:
        case IR_EV_STREAM_READABLE:
            read_streams(side, ev.stream_id);
            break;
        case IR_EV_DATAGRAM:
            for (int j = 0; j < DGRAM_QUEUE + 1; j++) {
                long n = ir_conn_datagram_recv(c, buf, sizeof buf);
                if (n < 0)
                    break;
                if (n > (long)sizeof buf)
                    abort();
                if (side == 1)
                    ir_conn_datagram_send(c, buf, (size_t)n);
            }
            break;
        default:
            break;
        }
    }
}

/* timers due, then everything the side has to send, until it has nothing more */
static void service(int side)
{
    ir_conn *c = W.c[side];
    uint8_t buf[MAX_DGRAM];
    for (int round = 0; round < 8; round++) {
        if (ir_conn_timeout(c) <= W.now)
            ir_conn_on_timeout(c, W.now);
        int sent = 0;
        for (int k = 0; k < 64; k++) {
            ir_netaddr to;
            ir_conn_state before = ir_conn_get_state(c);
            size_t n = ir_conn_send(c, buf, sizeof buf, &to, W.now);
            if (!n)
                break;
            if (n > sizeof buf || to.len > sizeof to.data)
                abort();
            /* datagrams with an Initial are padded to 1200 bytes (RFC 9000 14.1) */
            if (before < IR_CONN_CLOSING && (buf[0] & 0xf0) == 0xc0 && buf[1] == 0 &&
                buf[2] == 0 && buf[3] == 0 && buf[4] == 1 && n < IR_MIN_INITIAL_SIZE)
                abort();
            q_push(&W.to[1 - side], buf, n);
            sent = 1;
        }
        poll_events(side);
        check_conn(c);
        if (!sent && ir_conn_timeout(c) > W.now)
            break;
    }
}

static void service_all(void)
{
    service(1);
    service(0);
}

/* hands a datagram to a side (copied: the connection decrypts in place) */
static void deliver(int side, const ir_netaddr *from, const uint8_t *d, size_t len)
{
    uint8_t *p = malloc(len ? len : 1);
    if (!p)
        abort();
    if (len)
        memcpy(p, d, len);
    ir_conn_recv(W.c[side], from, p, len, W.now);
    free(p);
    poll_events(side);
    check_conn(W.c[side]);
}

static const ir_netaddr *from_addr(int side, unsigned pick)
{
    return side == 1 ? &W.addr[(W.client_at + pick) & 3] : &W.server_addr;
}

static void deliver_pending(unsigned rounds)
{
    for (unsigned r = 0; r < rounds; r++) {
        int any = 0;
        for (int side = 1; side >= 0; side--) {
            dg *d;
            while ((d = q_front(&W.to[side]))) {
                dg copy = *d;
                q_pop(&W.to[side]);
                deliver(side, from_addr(side, 0), copy.data, copy.len);
                any = 1;
            }
        }
        service_all();
        if (!any && !W.to[0].n && !W.to[1].n)
            break;
    }
}

static void advance(uint64_t ns)
{
    W.now += ns;
    service_all();
}

/* the next datagram for `side`, XORed at a few input-chosen places (the arguments are
 * read first, so that the script stays in step when there is nothing to mutate) */
static void mutate_next(rd *r, int side, const ir_netaddr *from)
{
    uint8_t count = 0, x[7] = {0};
    uint16_t off[7] = {0};
    unsigned n = 0;
    rd_u8(r, &count);
    while (n < (count & 7u) && rd_u16(r, &off[n]) == 0 && rd_u8(r, &x[n]) == 0)
        n++;
    if (!W.to[side].n)
        service(1 - side);
    dg *d = q_front(&W.to[side]);
    if (!d)
        return;
    dg copy = *d;
    q_pop(&W.to[side]);
    for (unsigned i = 0; i < n && copy.len; i++)
        copy.data[off[i] % copy.len] ^= x[i];
    deliver(side, from, copy.data, copy.len);
}

/* Seals input bytes as the frames of a packet that `sender`'s keys protect (its next
 * packet number, its CIDs), and delivers it to the other side. */
static void sealed(rd *r, int sender)
{
    if (sender == 0)
        taint_c2s = 1;
    else
        taint_s2c = 1;
    uint8_t space_b = 0;
    uint16_t want = 0;
    rd_u8(r, &space_b);
    rd_u16(r, &want);
    size_t len;
    const uint8_t *frames = rd_bytes(r, want % 1100u, &len);
    ir_conn *c = W.c[sender];
    static const int space_of[8] = {SP_INITIAL, SP_HANDSHAKE, SP_APP, SP_INITIAL,
                                    SP_HANDSHAKE, SP_APP, SP_APP, SP_HANDSHAKE};
    int s = space_of[space_b & 7], reserved = (space_b & 7) >= 6;
    pn_space *sp = &PNS(c, c->paths[0], s);
    qepoch *e = &c->epoch[s];
    if (!e->have_tx || sp->discarded || c->paths[0]->cids.nrcid == 0)
        return;
    uint8_t buf[MAX_DGRAM];
    uint64_t pn = sp->next_pn++;
    size_t pn_len = ir_pn_encode_len(pn, sp->largest_acked);
    if (space_b & 0x80)
        pn_len = 4;
    size_t lo = 0, h;
    const ir_cid *dcid = &c->paths[0]->cids.rcid[c->paths[0]->cids.active_rcid].cid;
    if (s == SP_APP)
        h = ir_pkt_write_short(buf, sizeof buf, dcid, c->ku.key_phase ^ ((space_b >> 5) & 1),
                               (space_b >> 6) & 1, pn, pn_len);
    else
        h = ir_pkt_write_long(buf, sizeof buf, s == SP_INITIAL ? IR_PT_INITIAL : IR_PT_HANDSHAKE,
                              IR_QUIC_V1, dcid, &c->paths[0]->cids.lcid[0].cid, NULL, 0, pn, pn_len, &lo);
    if (!h || h + len + 4 + IR_AEAD_TAG_LEN > sizeof buf)
        return;
    if (reserved) /* under header protection, like the packet number length */
        buf[0] |= s == SP_APP ? 0x18 : 0x0c;
    memcpy(buf + h, frames, len);
    size_t payload = len;
    while (payload + pn_len < 4) /* room for the header protection sample */
        buf[h + payload++] = 0;
    /* padded to 1200 bytes like a client's Initial datagram, unless 0x40 */
    if (s == SP_INITIAL && !(space_b & 0x40))
        while (h + payload + IR_AEAD_TAG_LEN < IR_MIN_INITIAL_SIZE)
            buf[h + payload++] = 0;
    size_t total = ir_pkt_protect(buf, h, pn_len, lo, payload, &e->tx, 0, pn);
    unsigned pick = (space_b >> 3) & 3;
    deliver(1 - sender, from_addr(1 - sender, sender == 0 ? pick : 0), buf, total);
}

static void app_action(rd *r, int side)
{
    uint8_t action = 0, blen = 0;
    rd_u8(r, &action);
    rd_u8(r, &blen);
    size_t len;
    const uint8_t *bytes = rd_bytes(r, blen, &len);
    ir_conn *c = W.c[side];
    uint64_t id = ((uint64_t)(action >> 3) << 2) | (side ? 1u : 0u) | ((action & 4) ? 2u : 0u);
    switch (action & 7) {
    case 0:
    case 1: { /* open a stream (bidi or uni) and write, maybe with FIN */
        uint64_t sid;
        if (ir_conn_stream_open(c, !(action & 1), &sid) == 0) {
            long w = ir_conn_stream_write(c, sid, bytes, len, (action >> 4) & 1);
            if (side == 0)
                client_wrote(sid, bytes, w);
        }
        break;
    }
    case 2: { /* write more on one of our streams, or the peer's bidi stream */
        uint64_t sid = id ^ ((action & 0x80) ? 1u : 0u);
        long w = ir_conn_stream_write(c, sid, bytes, len, (action >> 6) & 1);
        if (side == 0)
            client_wrote(sid, bytes, w);
        else if (tracked(sid) && w > 0)
            tracked(sid)->echo_broken = 1; /* the server adds to the client's stream */
        break;
    }
    case 3:
        ir_conn_datagram_send(c, bytes, len);
        break;
    case 4:
        disturbed = 1;
        ir_conn_stream_reset(c, id ^ ((action & 0x80) ? 1u : 0u), blen);
        break;
    case 5:
        disturbed = 1;
        ir_conn_stream_stop(c, id ^ 1u, blen);
        break;
    case 6: { /* (action >> 3) & 3: key update, or multipath: open a path (the client;
               * to the server's address or another), set a status, abandon a path */
        uint64_t pid = (action >> 5) & 7, got;
        switch ((action >> 3) & 3) {
        case 0:
            ir_conn_initiate_key_update(c);
            break;
        case 1:
            ir_conn_open_path(c, (action & 0x80) ? &W.addr[1] : &W.server_addr, (action >> 6) & 1, W.now, &got);
            break;
        case 2:
            ir_conn_path_set_status(c, pid, blen & 1);
            break;
        default:
            /* (data in flight on it is sent again elsewhere: nothing is lost) */
            ir_conn_path_abandon(c, pid, blen, W.now);
            break;
        }
        ir_conn_path_info pi[IR_CONN_MAX_PATHS];
        if (ir_conn_paths(c, pi, IR_CONN_MAX_PATHS) > IR_CONN_MAX_PATHS)
            abort();
        break;
    }
    case 7:
        if (action & 0x80) {
            disturbed = 1;
            char reason[64];
            size_t n = len < sizeof reason - 1 ? len : sizeof reason - 1;
            memcpy(reason, bytes, n);
            reason[n] = 0;
            ir_conn_close(c, (action >> 6) & 1, blen, reason, W.now);
        } else {
            ir_conn_stream_send_done(c, id);
            ir_conn_stats st;
            ir_conn_get_stats(c, &st);
            (void)ir_conn_datagram_max(c);
        }
        break;
    }
    service(side);
}

/* everything the client wrote was read by the server, and the echo came back */
static int settled(void)
{
    for (int i = 0; i < TRACKED; i++) {
        const track *t = &T[i];
        if (t->overflow)
            continue;
        if (t->srv_read < t->wlen || (!t->echo_broken && t->cli_read < t->echoed))
            return 0;
    }
    return 1;
}

static int both_established(void)
{
    return ir_conn_get_state(W.c[0]) == IR_CONN_ESTABLISHED &&
           ir_conn_get_state(W.c[1]) == IR_CONN_ESTABLISHED;
}

/* Liveness: once the script is over and the network delivers everything, the stream
 * data gets through (lost packets are sent again, flow control windows open up), as
 * long as both sides stay established and nothing but loss, duplication, corruption or
 * a change of address got in the way. */
static void check_liveness(void)
{
    if (taint_c2s || taint_s2c || disturbed)
        return;
    for (int k = 0; k < 400 && !settled(); k++) {
        if (!both_established())
            return;
        deliver_pending(4);
        if (settled())
            break;
        uint64_t t0 = ir_conn_timeout(W.c[0]), t1 = ir_conn_timeout(W.c[1]);
        uint64_t t = t0 < t1 ? t0 : t1;
        if (t == UINT64_MAX)
            break;
        W.now = t > W.now ? t : W.now + NS_PER_MS;
        service_all();
    }
    if (both_established() && !settled())
        abort(); /* stream data stuck on an established connection */
}

static void bulk(rd *r, int side)
{
    static uint8_t pat[65536];
    uint8_t sel = 0;
    uint16_t n = 0;
    rd_u8(r, &sel);
    rd_u16(r, &n);
    ir_conn *c = W.c[side];
    uint64_t sid = ((uint64_t)(sel & 15) << 2) | (side ? 1u : 0u);
    if ((sel & 0x80) && ir_conn_stream_open(c, 1, &sid) != 0)
        return;
    for (size_t i = 0; i < n; i++)
        pat[i] = (uint8_t)(i * 7 + sel + (i >> 8));
    long w = ir_conn_stream_write(c, sid, pat, n, (sel >> 6) & 1);
    if (side == 0)
        client_wrote(sid, pat, w);
    service(side);
}

#ifdef FUZZ_CONN_QAD
#include "fuzz_conn_qad.h"
#endif

/* ---- the target --------------------------------------------------------------------------- */

static void world_free(void)
{
    ir_conn_free(W.c[0]);
    ir_conn_free(W.c[1]);
    W.c[0] = W.c[1] = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    memset(&W, 0, sizeof W);
    for (int i = 0; i < TRACKED; i++) {
        T[i].wlen = T[i].srv_read = T[i].echoed = T[i].cli_read = 0;
        T[i].overflow = T[i].echo_broken = 0;
    }
    taint_c2s = taint_s2c = disturbed = 0;
    rng_state = 0x9e3779b97f4a7c15ull;
    W.now = START_NS;
    W.addr[0].len = 6;
    memcpy(W.addr[0].data, "client", 6);
    W.addr[1].len = 7;
    memcpy(W.addr[1].data, "client2", 7);
    W.addr[2].len = 31;
    memset(W.addr[2].data, 0xee, 31);
    W.addr[3].len = 0;
    W.server_addr.len = 6;
    memcpy(W.server_addr.data, "server", 6);
#ifdef FUZZ_CONN_QAD
    if (size < 1)
        return 0;
    qad_start(data[0]);
    data++;
    size--;
#endif

    ir_conn_config ccfg, scfg;
    config(&ccfg, 0);
    config(&scfg, 1);
    if (ir_conn_client_new(&ccfg, &W.server_addr, W.now, &W.c[0]) != IROH_OK)
        abort();
    uint8_t first[MAX_DGRAM];
    ir_netaddr to;
    size_t n = ir_conn_send(W.c[0], first, sizeof first, &to, W.now);
    if (n < IR_MIN_INITIAL_SIZE || !ir_netaddr_eq(&to, &W.server_addr))
        abort();
    ir_pkt_hdr h;
    if (ir_pkt_parse(first, n, 8, &h) != 0 || h.type != IR_PT_INITIAL)
        abort();
    if (ir_conn_server_new(&scfg, &h, &W.addr[0], W.now, &W.c[1]) != IROH_OK)
        abort();
    deliver(1, &W.addr[0], first, n);
    service_all();

    rd r = {data, size, 0};
    for (int ops = 0; ops < MAX_OPS && r.pos < r.len; ops++) {
        uint8_t op;
        rd_u8(&r, &op);
        unsigned hi = op >> 4;
        switch (op & 15) {
        case 0:
        case 8: {
            uint16_t want = 0;
            rd_u16(&r, &want);
            size_t len;
            const uint8_t *d = rd_bytes(&r, want % (MAX_DGRAM + 1u), &len);
            int side = (op & 15) == 0 ? 1 : 0;
            deliver(side, from_addr(side, hi), d, len);
            service(side);
            break;
        }
        case 1:
            mutate_next(&r, 1, from_addr(1, 0));
            service_all();
            break;
        case 10:
            mutate_next(&r, 0, from_addr(0, 0));
            service_all();
            break;
        case 3: {
            uint16_t ms = 0;
            rd_u16(&r, &ms);
            advance(((uint64_t)ms * NS_PER_MS) << (hi & 7));
            break;
        }
        case 4:
            sealed(&r, 0);
            service_all();
            break;
        case 5:
            sealed(&r, 1);
            service_all();
            break;
        case 6:
            app_action(&r, 0);
            break;
        case 7:
            app_action(&r, 1);
            break;
        case 9:
            q_pop(&W.to[hi & 1]);
            break;
        case 11: {
            dg *d = q_front(&W.to[hi & 1]);
            if (d) {
                dg copy = *d;
                q_push(&W.to[hi & 1], copy.data, copy.len);
            }
            break;
        }
        case 12: {
            W.client_at = hi & 3;
            dg *d = q_front(&W.to[1]);
            if (d) {
                dg copy = *d;
                q_pop(&W.to[1]);
                deliver(1, from_addr(1, 0), copy.data, copy.len);
                service_all();
            }
            break;
        }
        case 13:
            bulk(&r, hi & 1);
            break;
        default: { /* 2, 14, 15 */
            uint8_t rounds = 8;
            rd_u8(&r, &rounds);
            deliver_pending(1u + (rounds & 15u));
            break;
        }
        }
        if (ir_conn_get_state(W.c[0]) == IR_CONN_CLOSED &&
            ir_conn_get_state(W.c[1]) == IR_CONN_CLOSED)
            break;
    }
    check_liveness();
#ifdef FUZZ_CONN_QAD
    qad_check();
#endif
#ifdef FUZZ_CONN_TRACE
    for (int i = 0; i < 2; i++) {
        ir_conn_stats st;
        ir_conn_get_stats(W.c[i], &st);
        const ir_close_info *ci = ir_conn_close_info(W.c[i]);
        fprintf(stderr, "%s: state %d hs %d/%d sent %llu recv %llu lost %llu ku %llu close %llx %s\n",
                i ? "server" : "client", (int)ir_conn_get_state(W.c[i]), W.c[i]->handshake_complete,
                W.c[i]->handshake_confirmed, (unsigned long long)st.pkts_sent,
                (unsigned long long)st.pkts_recv, (unsigned long long)st.pkts_lost,
                (unsigned long long)st.key_updates, (unsigned long long)ci->code, ci->reason);
    }
    for (int i = 0; i < TRACKED; i++)
        if (T[i].wlen)
            fprintf(stderr, "stream %d: written %zu server read %zu echoed %zu client read %zu%s\n",
                    4 * i, T[i].wlen, T[i].srv_read, T[i].echoed, T[i].cli_read,
                    T[i].echo_broken ? " (echo broken)" : "");
#endif
    /* let the clock run out: closing connections reach CLOSED */
    for (int k = 0; k < 4; k++)
        advance(60000 * NS_PER_MS);
    world_free();
    return 0;
}
