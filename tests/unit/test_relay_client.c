/* The sans-IO relay client (src/relay/client.h): pure tests against hand-built server
 * bytes (101 + challenge in one read and byte by byte, ClientAuth verification, deny,
 * bad Sec-WebSocket-Accept, unknown frame, pings, pong timeout, send limits), then a
 * small poll shell against the in-process relay server (two clients exchanging
 * datagrams and batches, a drop to an absent id, server pings answered, EndpointGone,
 * a corrupted ClientAuth signature refused). */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

#include "relay/client.h"
#include "relay/handshake.h"
#include "relay/http.h"
#include "relay/server.h"
#include "relay/ws.h"
#include "test.h"

#define NS_PER_MS 1000000ull

static void rnd(void *ctx, uint8_t *buf, size_t len)
{
    (void)ctx;
    while (len) {
        ssize_t n = getrandom(buf, len, 0);
        if (n <= 0)
            abort();
        buf += n;
        len -= (size_t)n;
    }
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void make_key(iroh_secret_key *k, uint8_t seed)
{
    for (int i = 0; i < 32; i++)
        k->bytes[i] = (uint8_t)(seed * 31 + i * 7 + 1);
}

static ir_relay_client *new_client(uint8_t seed, uint64_t now)
{
    ir_relay_client_config cfg;
    ir_relay_client_config_init(&cfg);
    make_key(&cfg.secret_key, seed);
    cfg.host = "127.0.0.1:3340";
    cfg.random = rnd;
    cfg.now = now;
    ir_relay_client *c = NULL;
    int rc = ir_relay_client_new(&cfg, &c);
    CHECK_EQ_INT(rc, IROH_OK);
    return c;
}

/* ---- a fake server for the sans-IO tests --------------------------------------------- */

/* Takes the client's pending request and returns the 101 for it (key_override: answer as
 * if the key were that one, to get a wrong accept). */
static size_t fake_101(ir_relay_client *c, const char *key_override, char *out, size_t cap)
{
    const uint8_t *p;
    size_t n = ir_relay_client_pending(c, &p);
    CHECK(n > 0);
    static ir_http_reader r;
    ir_http_reader_init(&r);
    size_t used = 0;
    CHECK_EQ_INT(ir_http_reader_feed(&r, p, n, &used), 1);
    CHECK_EQ_INT(used, n); /* nothing after the head */
    CHECK(memmem(p, n, "GET /relay HTTP/1.1\r\nHost: 127.0.0.1:3340\r\n", 43) == p);
    ir_relay_client_consumed(c, n);
    static ir_http_request req;
    CHECK_EQ_INT(ir_http_parse_request(r.buf, r.len, &req), IROH_OK);
    ir_ws_upgrade u;
    memset(&u, 0, sizeof u);
    CHECK_EQ_INT(ir_ws_check_upgrade(&req, &u), IROH_OK);
    CHECK_EQ_INT(u.version, IR_RELAY_V2);
    if (key_override) {
        u.key = key_override;
        u.key_len = strlen(key_override);
    }
    size_t w = 0;
    CHECK_EQ_INT(ir_ws_build_response_101(&u, out, cap, &w), IROH_OK);
    return w;
}

/* Appends one unmasked server frame carrying relay frame f. */
static size_t server_frame(const ir_relay_frame *f, uint8_t *out, size_t cap)
{
    uint8_t body[70000];
    size_t n = 0, w = 0;
    CHECK_EQ_INT(ir_relay_frame_encode(f, body, sizeof body, &n), IROH_OK);
    CHECK_EQ_INT(ir_ws_write_frame(out, cap, IR_WS_OP_BINARY, body, n, NULL, &w), IROH_OK);
    return w;
}

static size_t server_raw(const uint8_t *body, size_t n, uint8_t *out, size_t cap)
{
    size_t w = 0;
    CHECK_EQ_INT(ir_ws_write_frame(out, cap, IR_WS_OP_BINARY, body, n, NULL, &w), IROH_OK);
    return w;
}

/* Reads the client's pending output as the server would: one masked message, decoded as a
 * relay frame of the allowed types. Returns the number of frames read into fs. */
static int client_frames(ir_relay_client *c, uint32_t allowed, ir_relay_frame *fs, int max,
                         uint8_t *keep, size_t keepcap)
{
    const uint8_t *p;
    size_t n = ir_relay_client_pending(c, &p);
    if (n > keepcap)
        return -1;
    memcpy(keep, p, n);
    ir_relay_client_consumed(c, n);
    ir_ws_parser ps;
    ir_ws_parser_init(&ps, IR_WS_ROLE_SERVER, IR_RELAY_MAX_FRAME_SIZE);
    size_t off = 0;
    int count = 0;
    while (off < n && count < max) {
        size_t used = 0;
        ir_ws_message m;
        int rc = ir_ws_parser_feed(&ps, keep + off, n - off, &used, &m);
        off += used;
        if (rc < 0) {
            count = -1;
            break;
        }
        if (rc == 0)
            break;
        CHECK_EQ_INT(m.opcode, IR_WS_OP_BINARY);
        if (ir_relay_frame_decode(m.data, m.len, allowed, NULL, &fs[count]) < 0) {
            count = -1;
            break;
        }
        count++;
    }
    ir_ws_parser_free(&ps);
    return count;
}

static void feed(ir_relay_client *c, const uint8_t *data, size_t len, int bytewise, uint64_t now)
{
    if (!bytewise) {
        ir_relay_client_recv(c, data, len, now);
        return;
    }
    for (size_t i = 0; i < len; i++)
        ir_relay_client_recv(c, data + i, 1, now);
}

/* Drives a client to READY through a fake server; returns the challenge frame it signed. */
static void to_ready(ir_relay_client *c, int bytewise, uint64_t now)
{
    static uint8_t in[4096];
    size_t n = fake_101(c, NULL, (char *)in, sizeof in);
    uint8_t challenge[16];
    for (int i = 0; i < 16; i++)
        challenge[i] = (uint8_t)(0xa0 + i);
    ir_relay_frame f;
    ir_relay_challenge_frame(challenge, &f);
    n += server_frame(&f, in + n, sizeof in - n);
    feed(c, in, n, bytewise, now);
    CHECK_EQ_INT(ir_relay_client_state(c), IR_RELAY_CLIENT_HANDSHAKE);
    CHECK_EQ_INT(ir_relay_client_version(c), IR_RELAY_V2);

    ir_relay_frame fs[4];
    static uint8_t keep[4096];
    CHECK_EQ_INT(client_frames(c, IR_RELAY_HS_FROM_CLIENT, fs, 4, keep, sizeof keep), 1);
    CHECK_EQ_INT(fs[0].type, IR_RELAY_FT_CLIENT_AUTH);
    CHECK_EQ_INT(ir_relay_client_auth_verify(&fs[0], challenge), IROH_OK);
    CHECK_MEM(fs[0].u.client_auth.key.bytes, ir_relay_client_id(c)->bytes, 32);

    uint8_t confirm = IR_RELAY_FT_SERVER_CONFIRMS_AUTH;
    n = server_raw(&confirm, 1, in, sizeof in);
    feed(c, in, n, bytewise, now);
    CHECK_EQ_INT(ir_relay_client_state(c), IR_RELAY_CLIENT_READY);
    ir_relay_client_event ev;
    CHECK_EQ_INT(ir_relay_client_poll(c, &ev), 1);
    CHECK_EQ_INT(ev.kind, IR_RELAY_EV_READY);
    CHECK_EQ_INT(ir_relay_client_poll(c, &ev), 0);
}

TEST(test_handshake_one_read)
{
    uint64_t t0 = 1000 * NS_PER_MS;
    ir_relay_client *c = new_client(1, t0);
    uint8_t dst[32] = {0};
    CHECK_EQ_INT(ir_relay_client_send(c, dst, 0, (const uint8_t *)"x", 1), IROH_ERR_STATE);
    CHECK_EQ_INT(ir_relay_client_timeout(c), t0 + 10000 * NS_PER_MS);
    to_ready(c, 0, t0);
    /* a Ping right after READY */
    ir_relay_frame fs[4];
    static uint8_t keep[4096];
    CHECK_EQ_INT(client_frames(c, IR_RELAY_FROM_CLIENT, fs, 4, keep, sizeof keep), 1);
    CHECK_EQ_INT(fs[0].type, IR_RELAY_FT_PING);
    /* its pong deadline is 5 s */
    CHECK_EQ_INT(ir_relay_client_timeout(c), t0 + 5000 * NS_PER_MS);
    static uint8_t in[4096];
    ir_relay_frame pong;
    memset(&pong, 0, sizeof pong);
    pong.type = IR_RELAY_FT_PONG;
    memcpy(pong.u.ping, fs[0].u.ping, 8);
    size_t n = server_frame(&pong, in, sizeof in);
    ir_relay_client_recv(c, in, n, t0 + NS_PER_MS);
    ir_relay_client_stats st;
    ir_relay_client_stats_get(c, &st);
    CHECK_EQ_INT(st.pongs_recv, 1);
    /* next ping 15 s after the last received frame */
    CHECK_EQ_INT(ir_relay_client_timeout(c), t0 + NS_PER_MS + 15000 * NS_PER_MS);
    ir_relay_client_on_timeout(c, t0 + 16000 * NS_PER_MS);
    CHECK_EQ_INT(client_frames(c, IR_RELAY_FROM_CLIENT, fs, 4, keep, sizeof keep), 1);
    CHECK_EQ_INT(fs[0].type, IR_RELAY_FT_PING);

    /* a server Ping is answered with a Pong at once */
    ir_relay_frame ping;
    memset(&ping, 0, sizeof ping);
    ping.type = IR_RELAY_FT_PING;
    memcpy(ping.u.ping, "abcdefgh", 8);
    n = server_frame(&ping, in, sizeof in);
    ir_relay_client_recv(c, in, n, t0 + 16001 * NS_PER_MS);
    CHECK_EQ_INT(client_frames(c, IR_RELAY_FROM_CLIENT, fs, 4, keep, sizeof keep), 1);
    CHECK_EQ_INT(fs[0].type, IR_RELAY_FT_PONG);
    CHECK_MEM(fs[0].u.ping, "abcdefgh", 8);

    /* a datagram batch arrives as one event; EndpointGone, Status */
    iroh_endpoint_id src = *ir_relay_client_id(c);
    uint8_t payload[10];
    for (int i = 0; i < 10; i++)
        payload[i] = (uint8_t)i;
    ir_relay_frame d;
    memset(&d, 0, sizeof d);
    d.type = IR_RELAY_FT_R2C_DATAGRAM_BATCH;
    d.u.dgram.id = src;
    d.u.dgram.d.ecn = 2;
    d.u.dgram.d.segment_size = 4;
    d.u.dgram.d.contents = payload;
    d.u.dgram.d.len = 10;
    n = server_frame(&d, in, sizeof in);
    uint8_t gone[33] = {IR_RELAY_FT_ENDPOINT_GONE};
    memcpy(gone + 1, src.bytes, 32);
    n += server_raw(gone, 33, in + n, sizeof in - n);
    uint8_t status[2] = {IR_RELAY_FT_STATUS, 1};
    n += server_raw(status, 2, in + n, sizeof in - n);
    ir_relay_client_recv(c, in, n, t0 + 16002 * NS_PER_MS);
    ir_relay_client_event ev;
    CHECK_EQ_INT(ir_relay_client_poll(c, &ev), 1);
    CHECK_EQ_INT(ev.kind, IR_RELAY_EV_DATAGRAM);
    CHECK_MEM(ev.id.bytes, src.bytes, 32);
    CHECK_EQ_INT(ev.dgrams.ecn, 2);
    CHECK_EQ_INT(ev.dgrams.segment_size, 4);
    CHECK_EQ_INT(ev.dgrams.len, 10);
    CHECK_MEM(ev.dgrams.contents, payload, 10);
    CHECK_EQ_INT(ir_relay_dgram_count(&ev.dgrams), 3);
    CHECK_EQ_INT(ir_relay_client_poll(c, &ev), 1);
    CHECK_EQ_INT(ev.kind, IR_RELAY_EV_ENDPOINT_GONE);
    CHECK_MEM(ev.id.bytes, src.bytes, 32);
    CHECK_EQ_INT(ir_relay_client_poll(c, &ev), 1);
    CHECK_EQ_INT(ev.kind, IR_RELAY_EV_STATUS);
    CHECK_EQ_INT(ev.status, 1);
    CHECK_EQ_INT(ir_relay_client_poll(c, &ev), 0);

    /* sending: 04 and 05 frames as the server decodes them */
    CHECK_EQ_INT(ir_relay_client_send(c, src.bytes, 1, payload, 10), IROH_OK);
    CHECK_EQ_INT(ir_relay_client_send_batch(c, src.bytes, 0, 3, payload, 10), IROH_OK);
    CHECK_EQ_INT(ir_relay_client_send(c, src.bytes, 0, payload, 0), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(ir_relay_client_send(c, src.bytes, 4, payload, 1), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(client_frames(c, IR_RELAY_FROM_CLIENT, fs, 4, keep, sizeof keep), 2);
    CHECK_EQ_INT(fs[0].type, IR_RELAY_FT_C2R_DATAGRAM);
    CHECK_EQ_INT(fs[0].u.dgram.d.ecn, 1);
    CHECK_EQ_INT(fs[0].u.dgram.d.len, 10);
    CHECK_MEM(fs[0].u.dgram.d.contents, payload, 10);
    CHECK_EQ_INT(fs[1].type, IR_RELAY_FT_C2R_DATAGRAM_BATCH);
    CHECK_EQ_INT(fs[1].u.dgram.d.segment_size, 3);
    CHECK_MEM(fs[1].u.dgram.d.contents, payload, 10);

    /* the output bound: sends are refused past ~1 MiB of unwritten output */
    static uint8_t big[60000];
    int refused = 0, i;
    for (i = 0; i < 40; i++) {
        int rc = ir_relay_client_send(c, src.bytes, 0, big, sizeof big);
        if (rc == IROH_ERR_BUFFER_TOO_SMALL) {
            refused = 1;
            break;
        }
        CHECK_EQ_INT(rc, IROH_OK);
    }
    CHECK(refused);
    CHECK(i >= 16 && i <= 18);
    const uint8_t *p;
    size_t q = ir_relay_client_pending(c, &p);
    CHECK(q <= 1024 * 1024);
    ir_relay_client_consumed(c, q);
    CHECK_EQ_INT(ir_relay_client_send(c, src.bytes, 0, big, sizeof big), IROH_OK);
    CHECK_EQ_INT(ir_relay_client_state(c), IR_RELAY_CLIENT_READY);

    /* an unknown frame type fails the client */
    uint8_t unknown[3] = {0x0e, 1, 2};
    n = server_raw(unknown, 3, in, sizeof in);
    ir_relay_client_recv(c, in, n, t0 + 17000 * NS_PER_MS);
    CHECK_EQ_INT(ir_relay_client_state(c), IR_RELAY_CLIENT_FAILED);
    CHECK_EQ_INT(ir_relay_client_poll(c, &ev), 1);
    CHECK_EQ_INT(ev.kind, IR_RELAY_EV_FAILED);
    CHECK(strstr(ev.reason, "bad relay frame") != NULL);
    CHECK_EQ_INT(ir_relay_client_pending(c, &p), 0);
    CHECK_EQ_INT(ir_relay_client_timeout(c), 0);
    CHECK_EQ_INT(ir_relay_client_send(c, src.bytes, 0, payload, 1), IROH_ERR_STATE);
    ir_relay_client_free(c);
}

TEST(test_handshake_bytewise)
{
    ir_relay_client *c = new_client(2, 5);
    to_ready(c, 1, 5);
    /* a server-only frame type from the server (ClientToRelayDatagram) is fatal too */
    static uint8_t in[256];
    uint8_t body[40] = {IR_RELAY_FT_C2R_DATAGRAM};
    memcpy(body + 1, ir_relay_client_id(c)->bytes, 32);
    size_t n = server_raw(body, 40, in, sizeof in);
    ir_relay_client_recv(c, in, n, 6);
    CHECK_EQ_INT(ir_relay_client_state(c), IR_RELAY_CLIENT_FAILED);
    ir_relay_client_free(c);
}

TEST(test_pong_timeout)
{
    uint64_t t0 = 77;
    ir_relay_client *c = new_client(3, t0);
    to_ready(c, 0, t0);
    CHECK_EQ_INT(ir_relay_client_timeout(c), t0 + 5000 * NS_PER_MS);
    ir_relay_client_on_timeout(c, t0 + 4999 * NS_PER_MS);
    CHECK_EQ_INT(ir_relay_client_state(c), IR_RELAY_CLIENT_READY);
    ir_relay_client_on_timeout(c, t0 + 5000 * NS_PER_MS);
    CHECK_EQ_INT(ir_relay_client_state(c), IR_RELAY_CLIENT_FAILED);
    CHECK(strstr(ir_relay_client_failure(c), "pong") != NULL);
    ir_relay_client_free(c);
}

TEST(test_handshake_timeout)
{
    ir_relay_client *c = new_client(3, 100);
    ir_relay_client_on_timeout(c, 100 + 10000 * NS_PER_MS);
    CHECK_EQ_INT(ir_relay_client_state(c), IR_RELAY_CLIENT_FAILED);
    ir_relay_client_event ev;
    CHECK_EQ_INT(ir_relay_client_poll(c, &ev), 1);
    CHECK_EQ_INT(ev.kind, IR_RELAY_EV_FAILED);
    ir_relay_client_free(c);
}

TEST(test_deny)
{
    ir_relay_client *c = new_client(4, 0);
    static uint8_t in[4096];
    size_t n = fake_101(c, NULL, (char *)in, sizeof in);
    uint8_t challenge[16] = {1, 2, 3};
    ir_relay_frame f;
    ir_relay_challenge_frame(challenge, &f);
    n += server_frame(&f, in + n, sizeof in - n);
    ir_relay_client_recv(c, in, n, 0);
    const uint8_t *p;
    CHECK_EQ_INT(ir_relay_client_pending(c, &p), 104); /* 2 + 4 + 98 */
    ir_relay_client_consumed(c, 104);
    ir_relay_deny_frame(NULL, &f);
    n = server_frame(&f, in, sizeof in);
    ir_relay_client_recv(c, in, n, 0);
    CHECK_EQ_INT(ir_relay_client_state(c), IR_RELAY_CLIENT_FAILED);
    CHECK(strstr(ir_relay_client_failure(c), "not authorized") != NULL);
    ir_relay_client_event ev;
    CHECK_EQ_INT(ir_relay_client_poll(c, &ev), 1);
    CHECK_EQ_INT(ev.kind, IR_RELAY_EV_FAILED);
    CHECK(strstr(ev.reason, "not authorized") != NULL);
    ir_relay_client_free(c);

    /* a deny before any challenge, and a second challenge after ClientAuth */
    c = new_client(4, 0);
    n = fake_101(c, NULL, (char *)in, sizeof in);
    ir_relay_deny_frame("go away", &f);
    n += server_frame(&f, in + n, sizeof in - n);
    ir_relay_client_recv(c, in, n, 0);
    CHECK(strstr(ir_relay_client_failure(c), "go away") != NULL);
    ir_relay_client_free(c);

    c = new_client(4, 0);
    n = fake_101(c, NULL, (char *)in, sizeof in);
    ir_relay_challenge_frame(challenge, &f);
    n += server_frame(&f, in + n, sizeof in - n);
    n += server_frame(&f, in + n, sizeof in - n);
    ir_relay_client_recv(c, in, n, 0);
    CHECK_EQ_INT(ir_relay_client_state(c), IR_RELAY_CLIENT_FAILED);
    ir_relay_client_free(c);
}

TEST(test_bad_accept)
{
    ir_relay_client *c = new_client(5, 0);
    static uint8_t in[4096];
    size_t n = fake_101(c, "dGhlIHNhbXBsZSBub25jZQ==", (char *)in, sizeof in);
    ir_relay_client_recv(c, in, n, 0);
    CHECK_EQ_INT(ir_relay_client_state(c), IR_RELAY_CLIENT_FAILED);
    CHECK(strstr(ir_relay_client_failure(c), "upgrade refused") != NULL);
    ir_relay_client_free(c);

    /* a non-101 answer */
    c = new_client(5, 0);
    const uint8_t *p;
    ir_relay_client_consumed(c, ir_relay_client_pending(c, &p));
    const char *resp = "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
    ir_relay_client_recv(c, (const uint8_t *)resp, strlen(resp), 0);
    CHECK_EQ_INT(ir_relay_client_state(c), IR_RELAY_CLIENT_FAILED);
    CHECK(strstr(ir_relay_client_failure(c), "400") != NULL);
    ir_relay_client_free(c);

    /* bad arguments */
    ir_relay_client_config cfg;
    ir_relay_client_config_init(&cfg);
    cfg.host = "a\r\nb";
    cfg.random = rnd;
    CHECK_EQ_INT(ir_relay_client_new(&cfg, &c), IROH_ERR_INVALID_ARGUMENT);
    cfg.host = NULL;
    CHECK_EQ_INT(ir_relay_client_new(&cfg, &c), IROH_ERR_INVALID_ARGUMENT);
}

/* ---- against the in-process relay server ----------------------------------------------- */

#define MAXDG 64
typedef struct peer {
    ir_relay_client *c;
    int fd;
    int corrupt; /* flip a signature byte of the ClientAuth frame on its way out */
    int ready, failed;
    char reason[320];
    int ndg;
    uint8_t dg_src[MAXDG][32];
    uint8_t dg_ecn[MAXDG];
    size_t dg_len[MAXDG];
    uint8_t *dg[MAXDG];
    int ngone;
    uint8_t gone[8][32];
} peer;

static void *server_thread(void *arg)
{
    ir_relay_server_run((ir_relay_server *)arg);
    return NULL;
}

static int peer_open(peer *pp, uint16_t port, uint8_t seed, int corrupt)
{
    memset(pp, 0, sizeof *pp);
    pp->corrupt = corrupt;
    pp->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (pp->fd < 0)
        return -1;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(0x7f000001);
    if (connect(pp->fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        return -1;
    int one = 1;
    setsockopt(pp->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(pp->fd, F_SETFL, fcntl(pp->fd, F_GETFL) | O_NONBLOCK);
    pp->c = new_client(seed, now_ns());
    return pp->c ? 0 : -1;
}

static void peer_close(peer *pp)
{
    if (pp->fd >= 0)
        close(pp->fd);
    pp->fd = -1;
    ir_relay_client_free(pp->c);
    pp->c = NULL;
    for (int i = 0; i < pp->ndg; i++)
        free(pp->dg[i]);
    pp->ndg = 0;
}

static void peer_events(peer *pp)
{
    ir_relay_client_event ev;
    while (ir_relay_client_poll(pp->c, &ev)) {
        switch (ev.kind) {
        case IR_RELAY_EV_READY:
            pp->ready = 1;
            break;
        case IR_RELAY_EV_FAILED:
            pp->failed = 1;
            snprintf(pp->reason, sizeof pp->reason, "%s", ev.reason);
            break;
        case IR_RELAY_EV_ENDPOINT_GONE:
            if (pp->ngone < 8)
                memcpy(pp->gone[pp->ngone++], ev.id.bytes, 32);
            break;
        case IR_RELAY_EV_DATAGRAM: {
            ir_relay_dgram_iter it;
            ir_relay_dgram_iter_init(&it, &ev.dgrams);
            const uint8_t *d;
            size_t len;
            while (ir_relay_dgram_iter_next(&it, &d, &len) && pp->ndg < MAXDG) {
                int i = pp->ndg++;
                memcpy(pp->dg_src[i], ev.id.bytes, 32);
                pp->dg_ecn[i] = ev.dgrams.ecn;
                pp->dg_len[i] = len;
                pp->dg[i] = malloc(len);
                memcpy(pp->dg[i], d, len);
            }
            break;
        }
        default:
            break;
        }
    }
}

/* One round of the shell: write what is pending, wait (poll, bounded by the clients'
 * deadlines and max_ms) for input, read it, fire timers, collect events. */
static void step(peer **ps, int n, int max_ms)
{
    struct pollfd pfd[8];
    uint64_t now = now_ns();
    int wait_ms = max_ms;
    for (int i = 0; i < n; i++) {
        peer *pp = ps[i];
        pfd[i].fd = -1;
        pfd[i].events = 0;
        if (!pp->c || pp->fd < 0 || ir_relay_client_state(pp->c) == IR_RELAY_CLIENT_FAILED)
            continue;
        const uint8_t *p;
        size_t len = ir_relay_client_pending(pp->c, &p);
        while (len) {
            static uint8_t copy[2 * 1024 * 1024];
            size_t take = len < sizeof copy ? len : sizeof copy;
            memcpy(copy, p, take);
            /* the masked ClientAuth frame: 82 e2 mask[4] 01 key[32] 40 sig[64]; flipping a
             * masked bit flips the same plaintext bit */
            if (pp->corrupt && ir_relay_client_state(pp->c) == IR_RELAY_CLIENT_HANDSHAKE &&
                take >= 104 && copy[0] == 0x82 && copy[1] == (0x80 | 98)) {
                copy[2 + 4 + 1 + 32 + 1 + 10] ^= 0x01;
                pp->corrupt = 0;
            }
            ssize_t w = write(pp->fd, copy, take);
            if (w <= 0)
                break;
            ir_relay_client_consumed(pp->c, (size_t)w);
            len = ir_relay_client_pending(pp->c, &p);
        }
        pfd[i].fd = pp->fd;
        pfd[i].events = POLLIN | (len ? POLLOUT : 0);
        uint64_t t = ir_relay_client_timeout(pp->c);
        if (t) {
            int ms = t <= now ? 0 : (int)((t - now) / NS_PER_MS) + 1;
            if (ms < wait_ms)
                wait_ms = ms;
        }
    }
    poll(pfd, (nfds_t)n, wait_ms);
    now = now_ns();
    for (int i = 0; i < n; i++) {
        peer *pp = ps[i];
        if (pfd[i].fd < 0)
            continue;
        if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) {
            static uint8_t buf[65536];
            for (;;) {
                ssize_t r = read(pp->fd, buf, sizeof buf);
                if (r > 0) {
                    ir_relay_client_recv(pp->c, buf, (size_t)r, now);
                    continue;
                }
                if (r == 0)
                    ir_relay_client_eof(pp->c, "relay closed the connection");
                else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                    ir_relay_client_eof(pp->c, "read error");
                break;
            }
        }
        uint64_t t = ir_relay_client_timeout(pp->c);
        if (t && now >= t)
            ir_relay_client_on_timeout(pp->c, now);
        peer_events(pp);
    }
}

typedef int (*cond_fn)(peer **ps);

static int run_until(peer **ps, int n, cond_fn cond, int max_ms)
{
    uint64_t end = now_ns() + (uint64_t)max_ms * NS_PER_MS;
    while (!cond(ps)) {
        if (now_ns() >= end)
            return 0;
        step(ps, n, 50);
    }
    return 1;
}

static int both_ready(peer **ps)
{
    return ps[0]->ready && ps[1]->ready;
}
static int b_has_7(peer **ps)
{
    return ps[1]->ndg >= 7;
}
static int b_has_8(peer **ps)
{
    return ps[1]->ndg >= 8;
}
static int a_has_1(peer **ps)
{
    return ps[0]->ndg >= 1;
}
static int a_server_ping(peer **ps)
{
    ir_relay_client_stats st;
    ir_relay_client_stats_get(ps[0]->c, &st);
    return st.pongs_sent >= 1 && ps[0]->failed == 0;
}
static int a_gone(peer **ps)
{
    return ps[0]->ngone >= 1;
}
static int c_failed(peer **ps)
{
    return ps[0]->failed;
}

static int check_dg(peer *pp, int i, const uint8_t *src, const uint8_t *data, size_t len)
{
    return i < pp->ndg && pp->dg_len[i] == len && memcmp(pp->dg_src[i], src, 32) == 0 &&
           memcmp(pp->dg[i], data, len) == 0;
}

TEST(test_against_server)
{
    ir_relay_server_config scfg;
    ir_relay_server_config_init(&scfg);
    scfg.listen = "127.0.0.1:0";
    scfg.ping_interval_ms = 100; /* pings every 1.1 .. 5.1 s */
    ir_relay_server *srv = NULL;
    int rc = ir_relay_server_new(&scfg, &srv);
    CHECK_EQ_INT(rc, IROH_OK);
    if (rc != IROH_OK)
        return;
    iroh_socket_addr la;
    ir_relay_server_local_addr(srv, &la);
    pthread_t th;
    CHECK_EQ_INT(pthread_create(&th, NULL, server_thread, srv), 0);

    static peer a, b, cc;
    peer *ps[2] = {&a, &b};
    CHECK_EQ_INT(peer_open(&a, la.port, 10, 0), 0);
    CHECK_EQ_INT(peer_open(&b, la.port, 11, 0), 0);
    CHECK(run_until(ps, 2, both_ready, 5000));
    const uint8_t *ida = ir_relay_client_id(a.c)->bytes;
    uint8_t idb[32];
    memcpy(idb, ir_relay_client_id(b.c)->bytes, 32);

    /* A -> B: three datagrams (one of 1200 bytes) and a batch of three segments */
    uint8_t d1[1200], d2[7], d3[500], batch[1300];
    for (size_t i = 0; i < sizeof d1; i++)
        d1[i] = (uint8_t)(i * 13);
    memcpy(d2, "hello B", 7);
    for (size_t i = 0; i < sizeof d3; i++)
        d3[i] = (uint8_t)(255 - i);
    for (size_t i = 0; i < sizeof batch; i++)
        batch[i] = (uint8_t)(i ^ 0x5a);
    CHECK_EQ_INT(ir_relay_client_send(a.c, idb, 2, d1, sizeof d1), IROH_OK);
    CHECK_EQ_INT(ir_relay_client_send(a.c, idb, 0, d2, sizeof d2), IROH_OK);
    CHECK_EQ_INT(ir_relay_client_send(a.c, idb, 0, d3, sizeof d3), IROH_OK);
    CHECK_EQ_INT(ir_relay_client_send_batch(a.c, idb, 0, 500, batch, sizeof batch), IROH_OK);
    /* to an absent id: silently dropped */
    iroh_secret_key other;
    make_key(&other, 99);
    iroh_endpoint_id absent;
    iroh_secret_key_public(&other, &absent);
    CHECK_EQ_INT(ir_relay_client_send(a.c, absent.bytes, 0, d2, sizeof d2), IROH_OK);
    CHECK_EQ_INT(ir_relay_client_send(a.c, idb, 0, d2, 3), IROH_OK);
    CHECK(run_until(ps, 2, b_has_7, 5000));
    CHECK_EQ_INT(b.ndg, 7);
    CHECK(check_dg(&b, 0, ida, d1, sizeof d1));
    CHECK_EQ_INT(b.dg_ecn[0], 2);
    CHECK(check_dg(&b, 1, ida, d2, sizeof d2));
    CHECK(check_dg(&b, 2, ida, d3, sizeof d3));
    CHECK(check_dg(&b, 3, ida, batch, 500));
    CHECK(check_dg(&b, 4, ida, batch + 500, 500));
    CHECK(check_dg(&b, 5, ida, batch + 1000, 300));
    CHECK(check_dg(&b, 6, ida, d2, 3));
    CHECK_EQ_INT(ir_relay_client_state(a.c), IR_RELAY_CLIENT_READY);
    CHECK_EQ_INT(ir_relay_client_state(b.c), IR_RELAY_CLIENT_READY);

    /* B -> A (so that A hears of B's departure), and B still receives */
    CHECK_EQ_INT(ir_relay_client_send(b.c, ida, 0, d3, 100), IROH_OK);
    CHECK(run_until(ps, 2, a_has_1, 5000));
    CHECK(check_dg(&a, 0, idb, d3, 100));
    CHECK_EQ_INT(ir_relay_client_send(a.c, idb, 0, d2, 1), IROH_OK);
    CHECK(run_until(ps, 2, b_has_8, 5000));

    /* the server's ping (every 1.1 .. 5.1 s here) is answered, our own pings too */
    CHECK(run_until(ps, 2, a_server_ping, 8000));
    ir_relay_client_stats st;
    ir_relay_client_stats_get(a.c, &st);
    CHECK(st.pings_recv >= 1);
    CHECK(st.pings_sent >= 1 && st.pongs_recv >= 1);
    CHECK_EQ_INT(ir_relay_client_state(a.c), IR_RELAY_CLIENT_READY);

    /* B leaves: A gets EndpointGone(B) */
    peer_close(&b);
    b.fd = -1;
    peer *pa[1] = {&a};
    CHECK(run_until(pa, 1, a_gone, 5000));
    CHECK_MEM(a.gone[0], idb, 32);
    CHECK_EQ_INT(ir_relay_client_state(a.c), IR_RELAY_CLIENT_READY);

    /* a corrupted ClientAuth signature is refused */
    CHECK_EQ_INT(peer_open(&cc, la.port, 12, 1), 0);
    peer *pc[1] = {&cc};
    CHECK(run_until(pc, 1, c_failed, 5000));
    CHECK(!cc.ready);
    CHECK(strstr(cc.reason, "signature invalid") != NULL);
    if (!strstr(cc.reason, "signature invalid"))
        fprintf(stderr, "reason: %s\n", cc.reason);

    peer_close(&cc);
    peer_close(&a);
    ir_relay_server_stop(srv);
    pthread_join(th, NULL);
    ir_relay_server_free(srv);
}

int main(void)
{
    RUN(test_handshake_one_read);
    RUN(test_handshake_bytewise);
    RUN(test_pong_timeout);
    RUN(test_handshake_timeout);
    RUN(test_deny);
    RUN(test_bad_accept);
    RUN(test_against_server);
    TEST_EXIT();
}
