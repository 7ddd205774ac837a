/* The relay server's sans-IO core (relay/server.h) fed what hostile clients send, with two
 * honest clients connected so that forwarding, EndpointGone and same-key replacement are
 * reached.
 *
 * Per input: a core (mode byte: bit 0 a receive rate limit, bit 1 an access callback that
 * denies one key and the token "deny", bit 2 small queues), two honest sans-IO relay
 * clients (relay/client.h) that complete their handshake, and one attacker connection. An
 * attacker has a "shadow" relay client whose bytes it may forward, so that the fuzzer gets
 * past the HTTP upgrade and the challenge easily and can then send anything. The rest of
 * the input is a script, each operation a byte and its arguments:
 *
 *   op % 16  what                                                  arguments
 *   0        raw bytes from the attacker (HTTP before the upgrade,   u16 length, bytes
 *            WebSocket after it)
 *   1        forward the attacker's shadow client's pending output   u16 n (0: all)
 *   2        a masked WebSocket frame from the attacker              u8 fin|rsv|opcode, u16 length, bytes
 *   3        a relay frame in a masked binary message: type byte,   u8 type, u8 dst, u16 length, bytes
 *            then (dst < 0x80) the 32-byte id of key dst % 5, then the bytes
 *   4        an honest client (op>>4 & 1) sends datagrams to key    u8 dst, u8 length, u8 segment
 *   5        deliver everything both ways                          u8 rounds
 *   6        advance the clock (ms << (op>>4 & 7)), run timers     u16 ms
 *   7        the attacker's socket writes only part of the output  u16 n
 *   8        the attacker's peer closes (op>>4 & 1: the socket fails) -
 *   9        a new attacker connection; its shadow uses key op>>4 % 4 (3: no shadow)
 *   10       switch to attacker op>>4
 *   11       server shutdown (close_all) at the end of this step
 *   others   as 5
 *
 * (lengths big-endian; the input may end in the middle of an operation). Keys: 0 and 1
 * the honest clients, 2 and 3 attackers, 4 a key nobody holds.
 *
 * Checked: sanitizers and leaks (everything is released and freed per input), that every
 * datagram an honest client receives names the key of an authenticated sender, that what
 * honest clients send each other arrives unchanged, and the core's client counts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay/client.h"
#include "relay/frame.h"
#include "relay/server.h"
#include "relay/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NS_MS 1000000ull
#define MAXP 8
#define NKEYS 5
#define BUF 70000

static uint64_t rng;
static void det_random(void *ctx, uint8_t *buf, size_t len)
{
    (void)ctx;
    for (size_t i = 0; i < len; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        buf[i] = (uint8_t)rng;
    }
}

static iroh_secret_key keys[NKEYS];
static iroh_endpoint_id ids[NKEYS];
static int keys_ready;

static void setup_keys(void)
{
    if (keys_ready)
        return;
    for (int k = 0; k < NKEYS; k++) {
        for (int i = 0; i < 32; i++)
            keys[k].bytes[i] = (uint8_t)(k * 71 + i * 13 + 1);
        iroh_secret_key_public(&keys[k], &ids[k]);
    }
    keys_ready = 1;
}

typedef struct peer {
    ir_relay_client *cl; /* honest client or attacker's shadow (NULL: none) */
    ir_relay_conn *conn; /* NULL once released */
    int honest;
    int key;             /* index into keys, -1 without a shadow */
    uint32_t sent;       /* honest: datagrams sent */
} peer;

static struct {
    ir_relay_core *core;
    peer p[MAXP];
    int np, cur; /* cur: the current attacker */
    uint64_t now;
    int key_stolen[NKEYS]; /* an attacker authenticated with this key */
    int denied_key;        /* access callback: this key is denied (-1: none) */
} W;

static uint8_t buf[BUF];

static int access_cb(void *ctx, const iroh_endpoint_id *id, int version, const char *token,
                     size_t token_len, const char **reason)
{
    (void)ctx;
    (void)version;
    if (token && token_len == 4 && memcmp(token, "deny", 4) == 0) {
        *reason = "token denied";
        return 0;
    }
    if (W.denied_key >= 0 && memcmp(id->bytes, ids[W.denied_key].bytes, 32) == 0)
        return 0; /* reason left NULL: "not authorized" */
    return 1;
}

/* ---- honest datagrams carry a pattern the receiver checks ------------------------------ */

static void pattern(uint8_t *out, size_t len, int from, uint32_t seq)
{
    for (size_t i = 0; i < len; i++)
        out[i] = (uint8_t)(from * 29 + seq * 7 + i * 3);
}

static int key_of(const uint8_t id[32])
{
    for (int k = 0; k < NKEYS; k++)
        if (memcmp(id, ids[k].bytes, 32) == 0)
            return k;
    return -1;
}

static void check_datagrams(const ir_relay_client_event *ev)
{
    int src = key_of(ev->id.bytes);
    /* the relay names the authenticated sender: one of the keys somebody holds */
    if (src < 0 || src == 4)
        abort();
    if (src > 1 || W.key_stolen[src])
        return; /* an attacker may send anything */
    /* from an honest client: [seq u32][pattern], every segment */
    ir_relay_dgram_iter it;
    ir_relay_dgram_iter_init(&it, &ev->dgrams);
    const uint8_t *d;
    size_t l;
    uint8_t want[BUF];
    while (ir_relay_dgram_iter_next(&it, &d, &l)) {
        if (l < 4)
            abort();
        uint32_t seq = (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
        pattern(want, l - 4, src, seq);
        if (memcmp(d + 4, want, l - 4) != 0)
            abort();
    }
}

static void poll_client(peer *p)
{
    if (!p->cl)
        return;
    uint64_t t = ir_relay_client_timeout(p->cl);
    if (t && t <= W.now)
        ir_relay_client_on_timeout(p->cl, W.now);
    ir_relay_client_event ev;
    while (ir_relay_client_poll(p->cl, &ev)) {
        if (ev.kind == IR_RELAY_EV_DATAGRAM && p->honest)
            check_datagrams(&ev);
    }
}

/* ---- the "sockets" ------------------------------------------------------------------------ */

static void reap(void)
{
    while (ir_relay_core_next_changed(W.core))
        ;
    for (int i = 0; i < W.np; i++) {
        peer *p = &W.p[i];
        if (p->conn && (ir_relay_conn_status(p->conn) & IR_RELAY_CLOSED)) {
            ir_relay_core_release(W.core, p->conn);
            p->conn = NULL;
            if (p->cl)
                ir_relay_client_eof(p->cl, "closed");
        }
    }
}

/* bytes from a peer to the core, if the core reads now */
static void to_core(peer *p, const uint8_t *d, size_t len)
{
    if (!p->conn || !(ir_relay_conn_status(p->conn) & IR_RELAY_WANT_READ))
        return;
    if (len > BUF)
        len = BUF;
    memmove(buf, d, len); /* the core unmasks in place */
    ir_relay_core_recv(W.core, p->conn, buf, len, W.now);
    reap();
}

/* up to max bytes of the core's output to the peer (its client sees them) */
static void from_core(peer *p, size_t max, int feed)
{
    if (!p->conn)
        return;
    struct iovec iov[16];
    size_t n = ir_relay_conn_output(p->conn, iov, 16), total = 0;
    for (size_t i = 0; i < n && total < max; i++) {
        size_t l = iov[i].iov_len < max - total ? iov[i].iov_len : max - total;
        if (feed && p->cl)
            ir_relay_client_recv(p->cl, iov[i].iov_base, l, W.now);
        total += l;
    }
    if (total)
        ir_relay_core_sent(W.core, p->conn, total, W.now);
    reap();
}

/* the client's pending output into the core, at most max bytes (0: all) */
static void forward(peer *p, size_t max)
{
    if (!p->cl || !p->conn)
        return;
    const uint8_t *d;
    size_t n = ir_relay_client_pending(p->cl, &d);
    if (max && n > max)
        n = max;
    if (!n || !(ir_relay_conn_status(p->conn) & IR_RELAY_WANT_READ))
        return;
    size_t rm = ir_relay_conn_read_max(p->conn);
    if (p->honest && n > rm)
        n = rm;
    if (!n)
        return;
    memcpy(buf, d, n);
    ir_relay_client_consumed(p->cl, n);
    ir_relay_core_recv(W.core, p->conn, buf, n, W.now);
    reap();
}

static void timers(void)
{
    uint64_t t = ir_relay_core_next_timeout(W.core);
    if (t && t <= W.now)
        ir_relay_core_on_timeout(W.core, W.now);
    reap();
    for (int i = 0; i < W.np; i++)
        poll_client(&W.p[i]);
}

static void pump(unsigned rounds)
{
    for (unsigned r = 0; r < rounds; r++) {
        for (int i = 0; i < W.np; i++) {
            peer *p = &W.p[i];
            if (p->honest)
                forward(p, 0);
            from_core(p, SIZE_MAX, 1);
            poll_client(p);
        }
        timers();
    }
}

static void check_counts(void)
{
    ir_relay_server_stats st;
    ir_relay_core_stats(W.core, &st);
    int live = 0;
    for (int i = 0; i < W.np; i++)
        live += W.p[i].conn != NULL;
    if (st.clients_inactive > st.clients || st.clients > (uint64_t)live)
        abort();
}

static int add_peer(int key, int honest)
{
    if (W.np == MAXP)
        return -1;
    peer *p = &W.p[W.np];
    memset(p, 0, sizeof *p);
    p->conn = ir_relay_core_accept(W.core, W.now);
    if (!p->conn)
        abort();
    p->honest = honest;
    p->key = key;
    if (!honest && key >= 0)
        W.key_stolen[key] = 1; /* whatever it sends then comes from this key */
    if (key >= 0) {
        ir_relay_client_config cc;
        ir_relay_client_config_init(&cc);
        cc.secret_key = keys[key];
        cc.host = "relay.fuzz:3340";
        cc.random = det_random;
        cc.now = W.now;
        if (!honest && key == 3)
            cc.auth_token = "deny";
        if (ir_relay_client_new(&cc, &p->cl) != IROH_OK)
            abort();
    }
    return W.np++;
}

/* ---- the input ---------------------------------------------------------------------------- */

typedef struct rd {
    const uint8_t *p;
    size_t len, pos;
} rd;

static uint8_t rd_u8(rd *r)
{
    return r->pos < r->len ? r->p[r->pos++] : 0;
}

static uint16_t rd_u16(rd *r)
{
    uint16_t hi = rd_u8(r);
    return (uint16_t)(hi << 8 | rd_u8(r));
}

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

static void masked_frame(peer *p, uint8_t b0, const uint8_t *payload, size_t len)
{
    static uint8_t frame[BUF];
    if (len > BUF - IR_WS_MAX_HEADER)
        len = BUF - IR_WS_MAX_HEADER;
    uint8_t mask[4];
    det_random(NULL, mask, 4);
    size_t h = ir_ws_write_header(frame, 1, b0 & 0x0f, len, mask);
    frame[0] = (uint8_t)((frame[0] & 0x0f) | (b0 & 0xf0)); /* fin and rsv from the input */
    memcpy(frame + h, payload, len);
    ir_ws_mask(frame + h, len, mask, 0);
    to_core(p, frame, h + len);
}

static void relay_frame(peer *p, uint8_t type, uint8_t dst, const uint8_t *body, size_t len)
{
    static uint8_t msg[BUF];
    size_t n = 0;
    msg[n++] = type;
    if (dst < 0x80) {
        memcpy(msg + n, ids[dst % NKEYS].bytes, 32);
        n += 32;
    }
    if (len > BUF - n - IR_WS_MAX_HEADER)
        len = BUF - n - IR_WS_MAX_HEADER;
    memcpy(msg + n, body, len);
    masked_frame(p, 0x80 | IR_WS_OP_BINARY, msg, n + len);
}

static void honest_send(int from, uint8_t dst, uint8_t len, uint8_t seg)
{
    peer *p = &W.p[from];
    if (!p->cl || ir_relay_client_state(p->cl) != IR_RELAY_CLIENT_READY)
        return;
    uint8_t d[4 * 260];
    size_t total = 0, segsz = 4u + len;
    int count = (seg & 3) + 1;
    for (int i = 0; i < count; i++) {
        uint32_t seq = p->sent++;
        d[total] = (uint8_t)(seq >> 24);
        d[total + 1] = (uint8_t)(seq >> 16);
        d[total + 2] = (uint8_t)(seq >> 8);
        d[total + 3] = (uint8_t)seq;
        pattern(d + total + 4, len, from, seq);
        total += segsz;
    }
    if (count == 1)
        (void)ir_relay_client_send(p->cl, ids[dst % NKEYS].bytes, seg >> 6, d, total);
    else
        (void)ir_relay_client_send_batch(p->cl, ids[dst % NKEYS].bytes, seg >> 6,
                                         (uint16_t)segsz, d, total);
    forward(p, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    setup_keys();
    memset(&W, 0, sizeof W);
    rng = 0x2545f4914f6cdd1dull;
    W.now = 1000 * NS_MS;
    uint8_t mode = data[0];
    rd r = {data, size, 1};

    ir_relay_server_config cfg;
    ir_relay_server_config_init(&cfg);
    if (mode & 1) {
        cfg.rx_bytes_per_second = 20000;
        cfg.rx_max_burst_bytes = (mode & 8) ? 0 : 3000;
    }
    W.denied_key = -1;
    if (mode & 2) {
        cfg.access = access_cb;
        W.denied_key = (mode & 16) ? 2 : -1; /* key 3 is denied by its token */
    }
    if (mode & 4) {
        cfg.queue_datagrams = 4;
        cfg.queue_control = 4;
        cfg.queue_bytes = 3000;
    }
    if (ir_relay_core_new(&cfg, det_random, NULL, &W.core) != IROH_OK)
        abort();
    add_peer(0, 1);
    add_peer(1, 1);
    for (int i = 0; i < 40; i++) {
        pump(1);
        W.now += NS_MS;
    }
    for (int i = 0; i < 2; i++)
        if (ir_relay_client_state(W.p[i].cl) != IR_RELAY_CLIENT_READY)
            abort(); /* an honest client could not register */
    W.cur = add_peer(2, 0);

    int shutdown = 0;
    for (int ops = 0; ops < 300 && r.pos < r.len && !shutdown; ops++) {
        uint8_t op = rd_u8(&r);
        unsigned hi = op >> 4;
        peer *a = &W.p[W.cur];
        switch (op & 15) {
        case 0: {
            size_t n;
            const uint8_t *b = rd_bytes(&r, rd_u16(&r), &n);
            to_core(a, b, n);
            break;
        }
        case 1:
            forward(a, rd_u16(&r));
            break;
        case 2: {
            uint8_t b0 = rd_u8(&r);
            size_t n;
            const uint8_t *b = rd_bytes(&r, rd_u16(&r), &n);
            masked_frame(a, b0, b, n);
            break;
        }
        case 3: {
            uint8_t type = rd_u8(&r), dst = rd_u8(&r);
            size_t n;
            const uint8_t *b = rd_bytes(&r, rd_u16(&r), &n);
            relay_frame(a, type, dst, b, n);
            break;
        }
        case 4: {
            uint8_t dst = rd_u8(&r), len = rd_u8(&r), seg = rd_u8(&r);
            honest_send((int)(hi & 1), dst, len, seg);
            break;
        }
        case 6: {
            uint16_t ms = rd_u16(&r);
            uint64_t step = ((uint64_t)ms * NS_MS) << (hi & 7);
            /* in steps, so that honest clients answer pings as a live peer would */
            while (step) {
                uint64_t s = step < 1000 * NS_MS ? step : 1000 * NS_MS;
                W.now += s;
                step -= s;
                pump(1);
            }
            break;
        }
        case 7:
            from_core(a, rd_u16(&r), 0);
            break;
        case 8:
            if (a->conn) {
                if (hi & 1)
                    ir_relay_core_abort(W.core, a->conn, "reset by peer", W.now);
                else
                    ir_relay_core_eof(W.core, a->conn, W.now);
                reap();
            }
            break;
        case 9: {
            int k = (int)(hi % 4);
            int i = add_peer(k == 3 ? -1 : k == 2 ? 0 : (int)(2 + (hi >> 2) % 2), 0);
            if (i >= 0)
                W.cur = i;
            break;
        }
        case 10: {
            int i = (int)hi % W.np;
            if (!W.p[i].honest)
                W.cur = i;
            break;
        }
        case 11:
            shutdown = 1;
            break;
        default:
            pump(1u + (rd_u8(&r) & 7u));
            break;
        }
        check_counts();
    }
    if (shutdown) {
        ir_relay_core_close_all(W.core, W.now);
        pump(2);
        W.now += 5000 * NS_MS;
        timers();
    } else {
        pump(4);
    }
    check_counts();
    for (int i = 0; i < W.np; i++)
        ir_relay_client_free(W.p[i].cl);
    ir_relay_core_free(W.core); /* frees the connections still held */
    return 0;
}
