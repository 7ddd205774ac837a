/* The endpoint's relay link (endpoint/relay_link.h: TCP, optional TLS, the relay client,
 * reconnection, the datagram queue) against a hostile relay on 127.0.0.1.
 *
 * The "relay" is this harness: a listening socket, optionally a GnuTLS server session
 * (https URL, the test certificate as the link's CA file), and behind it either the real
 * relay server core (relay/server.h, with an honest sans-IO client of its own as the
 * link's peer) whose bytes the input disturbs, or, in raw mode, the input itself.
 *
 * Mode byte: bit 0 https; bit 1 raw mode (the input's pieces, u16 length each, are the
 * relay's whole answer after it read the request); bit 2 the link is not kept for good
 * (it closes when unused). Core mode script:
 *
 *   op % 16  what                                                    arguments
 *   0        raw bytes from the relay to the link                    u16 length, bytes
 *   1        an unmasked binary WebSocket message to the link         u16 length, bytes
 *   2        the peer sends the link datagrams                       u8 length, u8 count
 *   3        the link sends the peer datagrams                       u8 length, u8 count
 *   4        advance the clock (ms << (op>>4 & 7))                    u16 ms
 *   5        deliver everything                                     u8 rounds
 *   6        the relay closes the TCP connection (op>>4 & 1: only its write side)
 *   7        a WebSocket control frame to the link (opcode 8 + (op>>4 & 3))  u8 length, bytes
 *   others   as 5
 *
 * Checked: sanitizers and leaks; datagrams the link hands to the endpoint come whole
 * (at most 64 KiB), from a 32-byte id, and are exactly what the peer sent while the input
 * injected nothing; the peer receives exactly what the link sent. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <sys/ioctl.h>

#include "endpoint/relay_link.h"
#include "relay/client.h"
#include "relay/server.h"
#include "relay/ws.h"
#include "fuzz_fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NS_MS 1000000ull

static int lfd = -1;
static uint16_t lport;
static gnutls_certificate_credentials_t server_cred;
static iroh_secret_key link_key, peer_key;
static iroh_endpoint_id link_id, peer_id;

static void setup(void)
{
    if (lfd >= 0)
        return;
    fx_make_cert();
    if (gnutls_certificate_allocate_credentials(&server_cred) < 0 ||
        gnutls_certificate_set_x509_key_file(server_cred, fx_cert_file, fx_key_file,
                                             GNUTLS_X509_FMT_PEM) < 0)
        abort();
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sin;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof sin) != 0 || listen(lfd, 64) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sin, &sl) != 0)
        abort();
    lport = ntohs(sin.sin_port);
    memset(link_key.bytes, 0x61, 32);
    memset(peer_key.bytes, 0x62, 32);
    iroh_secret_key_public(&link_key, &link_id);
    iroh_secret_key_public(&peer_key, &peer_id);
}

static struct {
    ir_rlink *link;
    uint64_t now;
    int tls;
    /* the relay's end of the current TCP connection */
    int sfd;
    gnutls_session_t ss;
    int hs_done;
    ir_relay_core *core;
    ir_relay_conn *sconn; /* the core's connection for it */
    /* the peer, an honest client of the core */
    ir_relay_client *peer;
    ir_relay_conn *pconn;
    int tainted;          /* the input injected bytes towards the link */
    uint32_t to_link_seq, to_peer_seq;
    uint32_t link_got;    /* datagrams the link delivered from the peer */
    uint32_t peer_got;    /* datagrams the peer received from the link */
    size_t unread_bytes, unread_records; /* sent to the link since it last read */
    int disturbed;        /* the relay closed, or the input injected anything */
} W;

static uint8_t buf[1 << 17];

static void pattern(uint8_t *out, size_t len, uint32_t seq, int dir)
{
    for (size_t i = 0; i < len; i++)
        out[i] = (uint8_t)(seq * 11 + i * 5 + dir);
}

static void check_dgram(const uint8_t *d, size_t len, int dir)
{
    if (len < 4)
        abort();
    uint32_t seq = (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
    uint8_t want[70000];
    if (len - 4 > sizeof want)
        abort();
    pattern(want, len - 4, seq, dir);
    if (memcmp(d + 4, want, len - 4) != 0)
        abort();
}

static void link_recv(void *ctx, unsigned idx, const uint8_t src[32], uint8_t *data, size_t len,
                      uint64_t now)
{
    if (idx != 7 || len > 65536)
        abort();
    if (!W.tainted && memcmp(src, peer_id.bytes, 32) == 0) {
        check_dgram(data, len, 1);
        W.link_got++;
    }
}

/* ---- the relay's socket ------------------------------------------------------------------ */

static ssize_t s_push(gnutls_transport_ptr_t p, const void *b, size_t len)
{
    ssize_t n = send(W.sfd, b, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0)
        gnutls_transport_set_errno(W.ss, errno == EWOULDBLOCK ? EAGAIN : errno);
    return n;
}

static ssize_t s_pull(gnutls_transport_ptr_t p, void *b, size_t len)
{
    ssize_t n = recv(W.sfd, b, len, MSG_DONTWAIT);
    if (n < 0)
        gnutls_transport_set_errno(W.ss, errno == EWOULDBLOCK ? EAGAIN : errno);
    return n;
}

static void relay_close(int write_only)
{
    if (W.sfd < 0)
        return;
    if (write_only) {
        if (W.ss && W.hs_done)
            (void)gnutls_bye(W.ss, GNUTLS_SHUT_WR);
        shutdown(W.sfd, SHUT_WR);
        return;
    }
    if (W.ss)
        gnutls_deinit(W.ss);
    W.ss = NULL;
    close(W.sfd);
    W.sfd = -1;
    if (W.sconn) {
        ir_relay_core_abort(W.core, W.sconn, "closed", W.now);
        while (ir_relay_core_next_changed(W.core))
            ;
        ir_relay_core_release(W.core, W.sconn);
        W.sconn = NULL;
    }
}

static void relay_accept(void)
{
    if (W.sfd >= 0)
        return;
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    W.sfd = fd;
    int one = 1; /* as the relay server: no Nagle delay for small frames */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    W.hs_done = !W.tls;
    if (W.tls) {
        if (gnutls_init(&W.ss, GNUTLS_SERVER | GNUTLS_NONBLOCK) < 0 ||
            gnutls_set_default_priority(W.ss) < 0 ||
            gnutls_credentials_set(W.ss, GNUTLS_CRD_CERTIFICATE, server_cred) < 0)
            abort();
        gnutls_transport_set_push_function(W.ss, s_push);
        gnutls_transport_set_pull_function(W.ss, s_pull);
    }
    if (W.core) {
        W.sconn = ir_relay_core_accept(W.core, W.now);
        if (!W.sconn)
            abort();
    }
}

/* plaintext to the link; 0 or -1 */
static int relay_send(const uint8_t *d, size_t len)
{
    if (W.sfd < 0 || !W.hs_done)
        return -1;
    size_t off = 0;
    for (int k = 0; off < len && k < 1000; k++) {
        ssize_t n = W.ss ? gnutls_record_send(W.ss, d + off, len - off)
                         : send(W.sfd, d + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            W.unread_bytes += (size_t)n;
            W.unread_records += ((size_t)n + 16383) / 16384;
            continue;
        }
        if (W.ss ? n != GNUTLS_E_AGAIN : (errno != EAGAIN && errno != EWOULDBLOCK))
            return -1;
        /* the link's socket buffer is full: let it read */
        struct pollfd pf;
        if (ir_rlink_pollfd(W.link, &pf))
            ir_rlink_process(W.link, POLLIN, W.now);
        W.unread_bytes = W.unread_records = 0;
    }
    return off == len ? 0 : -1;
}

/* plaintext from the link; its length, 0 for nothing, -1 at the end */
static ssize_t relay_recv(uint8_t *b, size_t cap)
{
    if (W.sfd < 0)
        return -1;
    if (!W.hs_done) {
        int rc = gnutls_handshake(W.ss);
        if (rc == 0)
            W.hs_done = 1;
        else if (gnutls_error_is_fatal(rc))
            return -1;
        return 0;
    }
    ssize_t n = W.ss ? gnutls_record_recv(W.ss, b, cap) : recv(W.sfd, b, cap, MSG_DONTWAIT);
    if (n > 0)
        return n;
    if (W.ss ? (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
             : (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)))
        return 0;
    return -1;
}

/* ---- moving bytes --------------------------------------------------------------------------- */

static void link_step(void)
{
    struct pollfd pf;
    short rev = 0;
    if (ir_rlink_pollfd(W.link, &pf)) {
        if (poll(&pf, 1, 0) > 0)
            rev = pf.revents;
    }
    uint64_t t = ir_rlink_timeout(W.link);
    int up = ir_rlink_established(W.link);
    size_t bytes = W.unread_bytes, records = W.unread_records;
    if ((rev & POLLIN) && bytes) {
        /* loopback TCP may hand over the bytes a moment after send returned: wait (a
         * little) until all of them are there, so that the check below is fair */
        for (int k = 0; k < 200; k++) {
            int avail = 0;
            if (ioctl(pf.fd, FIONREAD, &avail) != 0 || (size_t)avail >= bytes)
                break;
            usleep(100);
        }
    }
    if (rev || (t && t <= W.now))
        ir_rlink_process(W.link, rev, W.now);
    if (!(rev & POLLIN))
        return;
    W.unread_bytes = W.unread_records = 0;
    /* an established link reads what a readable socket holds in one go (a few TLS
     * records, less than its 64 KiB buffer), not one record per poll round */
    if (up && ir_rlink_established(W.link) && (W.tls ? records <= 8 : bytes < 60000) &&
        ir_rlink_pollfd(W.link, &pf) && poll(&pf, 1, 0) > 0 && (pf.revents & POLLIN))
        abort();
}

static void peer_events(void)
{
    ir_relay_client_event ev;
    uint64_t t = ir_relay_client_timeout(W.peer);
    if (t && t <= W.now)
        ir_relay_client_on_timeout(W.peer, W.now);
    while (ir_relay_client_poll(W.peer, &ev)) {
        if (ev.kind != IR_RELAY_EV_DATAGRAM)
            continue;
        if (memcmp(ev.id.bytes, link_id.bytes, 32) != 0)
            abort(); /* only the link talks to the peer */
        ir_relay_dgram_iter it;
        ir_relay_dgram_iter_init(&it, &ev.dgrams);
        const uint8_t *d;
        size_t l;
        while (ir_relay_dgram_iter_next(&it, &d, &l)) {
            check_dgram(d, l, 2);
            W.peer_got++;
        }
    }
}

static void core_round(void)
{
    if (!W.core)
        return;
    /* the relay reads the link */
    if (W.sconn) {
        for (int k = 0; k < 16; k++) {
            if (!(ir_relay_conn_status(W.sconn) & IR_RELAY_WANT_READ))
                break;
            ssize_t n = relay_recv(buf, sizeof buf);
            if (n < 0) {
                relay_close(0);
                break;
            }
            if (n == 0)
                break;
            ir_relay_core_recv(W.core, W.sconn, buf, (size_t)n, W.now);
        }
    }
    /* the peer, in memory */
    const uint8_t *d;
    size_t n = ir_relay_client_pending(W.peer, &d);
    if (n && W.pconn && (ir_relay_conn_status(W.pconn) & IR_RELAY_WANT_READ)) {
        memcpy(buf, d, n);
        ir_relay_client_consumed(W.peer, n);
        ir_relay_core_recv(W.core, W.pconn, buf, n, W.now);
    }
    uint64_t t = ir_relay_core_next_timeout(W.core);
    if (t && t <= W.now)
        ir_relay_core_on_timeout(W.core, W.now);
    /* the relay writes */
    struct iovec iov[32];
    size_t k;
    while (W.pconn && (k = ir_relay_conn_output(W.pconn, iov, 32)) > 0) {
        size_t total = 0;
        for (size_t i = 0; i < k; i++) {
            ir_relay_client_recv(W.peer, iov[i].iov_base, iov[i].iov_len, W.now);
            total += iov[i].iov_len;
        }
        ir_relay_core_sent(W.core, W.pconn, total, W.now);
    }
    while (W.sconn && W.hs_done && (k = ir_relay_conn_output(W.sconn, iov, 32)) > 0) {
        size_t total = 0;
        int ok = 1;
        for (size_t i = 0; i < k && ok; i++) {
            ok = relay_send(iov[i].iov_base, iov[i].iov_len) == 0;
            if (ok)
                total += iov[i].iov_len;
        }
        if (total)
            ir_relay_core_sent(W.core, W.sconn, total, W.now);
        if (!ok) {
            relay_close(0);
            break;
        }
    }
    while (ir_relay_core_next_changed(W.core))
        ;
    if (W.sconn && (ir_relay_conn_status(W.sconn) & IR_RELAY_CLOSED))
        relay_close(0);
    if (W.pconn && (ir_relay_conn_status(W.pconn) & IR_RELAY_CLOSED)) {
        ir_relay_core_release(W.core, W.pconn);
        W.pconn = NULL;
    }
    peer_events();
}

static void pump(unsigned rounds)
{
    for (unsigned r = 0; r < rounds; r++) {
        link_step();
        relay_accept();
        core_round();
        link_step();
    }
}

static void send_ws(uint8_t opcode, const uint8_t *payload, size_t len)
{
    static uint8_t frame[IR_WS_MAX_HEADER + 65536];
    if (len > 65536)
        len = 65536;
    size_t h = ir_ws_write_header(frame, 1, opcode, len, NULL);
    memcpy(frame + h, payload, len);
    W.tainted = 1;
    if (relay_send(frame, h + len) != 0)
        relay_close(0);
}

static void dgrams(int from_peer, uint8_t len, uint8_t count)
{
    if (from_peer && ir_relay_client_state(W.peer) != IR_RELAY_CLIENT_READY)
        return;
    uint8_t d[8 * 260];
    size_t seg = 4u + len, total = 0;
    unsigned c = (count & 7u) + 1;
    for (unsigned i = 0; i < c; i++) {
        uint32_t seq = from_peer ? W.to_link_seq++ : W.to_peer_seq++;
        d[total] = (uint8_t)(seq >> 24);
        d[total + 1] = (uint8_t)(seq >> 16);
        d[total + 2] = (uint8_t)(seq >> 8);
        d[total + 3] = (uint8_t)seq;
        pattern(d + total + 4, len, seq, from_peer ? 1 : 2);
        total += seg;
    }
    if (from_peer) {
        if (c == 1)
            (void)ir_relay_client_send(W.peer, link_id.bytes, 0, d, total);
        else
            (void)ir_relay_client_send_batch(W.peer, link_id.bytes, 0, (uint16_t)seg, d, total);
    } else {
        ir_rlink_send(W.link, peer_id.bytes, d, total, seg, W.now);
    }
}

static void raw_mode(fx_rd *r)
{
    /* wait for the link's request (and the TLS handshake) */
    for (int k = 0; k < 200 && (W.sfd < 0 || !W.hs_done); k++) {
        link_step();
        relay_accept();
        if (W.sfd >= 0 && relay_recv(buf, sizeof buf) < 0)
            relay_close(0);
        W.now += NS_MS;
    }
    while (r->pos < r->len) {
        size_t n;
        const uint8_t *b = fx_bytes(r, fx_u16(r), &n);
        link_step();
        relay_accept();
        while (W.sfd >= 0 && relay_recv(buf, sizeof buf) > 0)
            ;
        if (relay_send(b, n) != 0)
            relay_close(0);
        link_step();
        W.now += 300 * NS_MS;
    }
    link_step();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    setup();
    memset(&W, 0, sizeof W);
    W.sfd = -1;
    uint8_t mode = data[0];
    fx_rd r = {data, size, 1};
    W.tls = mode & 1;
    W.now = 1000 * 1000 * NS_MS;
    /* a connection left from an earlier input would be taken for this one's */
    for (int fd; (fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0;)
        close(fd);

    char url[64];
    snprintf(url, sizeof url, "%s://127.0.0.1:%u/", W.tls ? "https" : "http", lport);
    ir_rlink_config lc;
    memset(&lc, 0, sizeof lc);
    lc.url = url;
    lc.idx = 7;
    lc.key = link_key;
    lc.ca_file = fx_cert_file;
    lc.recv = link_recv;
    if (ir_rlink_new(&lc, &W.link) != IROH_OK)
        abort();
    ir_rlink_want(W.link, (mode & 4) ? 0 : 1, W.now);

    if (mode & 2) {
        raw_mode(&r);
    } else {
        ir_relay_server_config cfg;
        ir_relay_server_config_init(&cfg);
        if (ir_relay_core_new(&cfg, fx_random, NULL, &W.core) != IROH_OK)
            abort();
        ir_relay_client_config cc;
        ir_relay_client_config_init(&cc);
        cc.secret_key = peer_key;
        cc.host = "127.0.0.1";
        cc.random = fx_random;
        cc.now = W.now;
        if (ir_relay_client_new(&cc, &W.peer) != IROH_OK)
            abort();
        W.pconn = ir_relay_core_accept(W.core, W.now);
        for (int k = 0; k < 100 && (!ir_rlink_established(W.link) ||
                                    ir_relay_client_state(W.peer) != IR_RELAY_CLIENT_READY);
             k++) {
            pump(1);
            W.now += NS_MS;
        }
        if (!ir_rlink_established(W.link) || ir_relay_client_state(W.peer) != IR_RELAY_CLIENT_READY)
            abort(); /* the link did not come up with an honest relay */
        for (int ops = 0; ops < 200 && r.pos < r.len; ops++) {
            uint8_t op = fx_u8(&r);
            unsigned hi = op >> 4;
            switch (op & 15) {
            case 0: {
                size_t n;
                const uint8_t *b = fx_bytes(&r, fx_u16(&r), &n);
                W.tainted = 1;
                if (relay_send(b, n) != 0)
                    relay_close(0);
                link_step();
                break;
            }
            case 1: {
                size_t n;
                const uint8_t *b = fx_bytes(&r, fx_u16(&r), &n);
                send_ws(IR_WS_OP_BINARY, b, n);
                link_step();
                break;
            }
            case 2: {
                uint8_t len = fx_u8(&r), count = fx_u8(&r);
                dgrams(1, len, count);
                break;
            }
            case 3: {
                uint8_t len = fx_u8(&r), count = fx_u8(&r);
                dgrams(0, len, count);
                break;
            }
            case 4: {
                uint64_t step = ((uint64_t)fx_u16(&r) * NS_MS) << (hi & 7);
                if (mode & 4)
                    W.disturbed = 1; /* the link may close when unused */
                while (step) {
                    uint64_t s = step < 2000 * NS_MS ? step : 2000 * NS_MS;
                    W.now += s;
                    step -= s;
                    pump(1);
                }
                break;
            }
            case 6:
                W.disturbed = 1;
                relay_close(hi & 1);
                link_step();
                break;
            case 7: {
                size_t n;
                const uint8_t *b = fx_bytes(&r, fx_u8(&r) % 126u, &n);
                send_ws((uint8_t)(8 + (hi & 3)), b, n);
                link_step();
                break;
            }
            default:
                pump(1u + (fx_u8(&r) & 7u));
                break;
            }
        }
        pump(4);
        /* nothing disturbed: every datagram arrived, both ways */
        if (!W.disturbed && !W.tainted &&
            (W.link_got != W.to_link_seq || W.peer_got != W.to_peer_seq)) {
            fprintf(stderr, "link got %u of %u datagrams, the peer %u of %u\n", W.link_got,
                    W.to_link_seq, W.peer_got, W.to_peer_seq);
            abort();
        }
    }
    ir_rlink_free(W.link);
    relay_close(0);
    if (W.core) {
        ir_relay_client_free(W.peer);
        ir_relay_core_free(W.core);
    }
    return 0;
}
