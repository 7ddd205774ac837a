/* The non-blocking TLS client stream of https relays (relay/tls_stream.h) against a hostile
 * server, over a socketpair.
 *
 * Mode byte: bits 0-1 and 6 the server name the client wants ("localhost", "127.0.0.1",
 * "[::1]", "other.test", then "local\rhost", "localhost\t", "loc\x7falhost", "LOCALHOST";
 * the server's certificate carries the first two and the last: GnuTLS itself would also
 * match the ones with control characters, which the stream must refuse); bit 2 the
 * client skips verification (insecure_skip_verify); bit 3 raw mode; bit 4 the server
 * speaks TLS 1.2 only; bit 5 the client trusts the system store instead of the server's
 * certificate.
 *
 * Raw mode: the rest of the input is what "the server" sends, in pieces of u16 length;
 * the client's handshake runs between them (its output is read and dropped).
 *
 * Otherwise a real GnuTLS server (in this thread, non-blocking) answers with a
 * self-signed certificate for localhost and 127.0.0.1. The input first gives up to seven
 * (u16 offset, u8 xor) changes to what the server sends during the handshake (u8
 * count first), then a script:
 *
 *   op % 16  what                                                 arguments
 *   0        the server sends a record                            u16 length, bytes
 *   1        raw bytes into the connection                        u16 length, bytes
 *   2        the client reads                                     u16 capacity
 *   3        the client writes (a known pattern); the server reads u16 length
 *   4        the server's close_notify
 *   5        the server's TCP write side closes
 *   6        the server updates its keys (TLS 1.3; op>>4 & 1: asks the client too)
 *   7        both ends export keying material (RFC 5705), compared  u8 context length
 *   8        the server sends an alert (op>>4 & 1: fatal)         u8 description
 *   9        the server's socket closes
 *   others   the server reads what the client sent
 *
 * Checked: sanitizers and leaks; raw bytes never complete a handshake; a verified
 * handshake only for a name the certificate carries, and an undisturbed one always
 * succeeds; the client reads exactly what the server sent while nobody injected bytes;
 * the server reads exactly what the client wrote; both ends export the same bytes. */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relay/tls_stream.h"
#include "fuzz_fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXREC 16384

static gnutls_certificate_credentials_t server_cred;

static void setup(void)
{
    if (server_cred)
        return;
    fx_make_cert();
    if (gnutls_certificate_allocate_credentials(&server_cred) < 0 ||
        gnutls_certificate_set_x509_key_file(server_cred, fx_cert_file, fx_key_file,
                                             GNUTLS_X509_FMT_PEM) < 0)
        abort();
}

/* ---- the server's side of the socketpair ----------------------------------------------- */

static struct {
    int fd;            /* the server's end, -1 once closed */
    size_t sent;       /* bytes the server sent so far */
    uint16_t off[7];
    uint8_t x[7];
    unsigned nmut;
    int mutating;      /* during the handshake */
    /* what the server sent as records and the client has not read yet */
    uint8_t expect[1 << 17];
    size_t exp_len, exp_off;
    int tainted;       /* raw bytes, alerts or mutations: no more comparisons */
    uint32_t wseq;     /* the client's pattern position */
    uint32_t rseq;     /* the server's read position in it */
} S;

static ssize_t s_push(gnutls_transport_ptr_t p, const void *buf, size_t len)
{
    gnutls_session_t s = p;
    uint8_t tmp[MAXREC + 2048];
    if (len > sizeof tmp)
        len = sizeof tmp;
    memcpy(tmp, buf, len);
    if (S.mutating)
        for (unsigned i = 0; i < S.nmut; i++)
            if (S.off[i] >= S.sent && S.off[i] < S.sent + len)
                tmp[S.off[i] - S.sent] ^= S.x[i];
    ssize_t n = send(S.fd, tmp, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
        gnutls_transport_set_errno(s, errno == EWOULDBLOCK ? EAGAIN : errno);
        return -1;
    }
    S.sent += (size_t)n;
    return n;
}

static ssize_t s_pull(gnutls_transport_ptr_t p, void *buf, size_t len)
{
    gnutls_session_t s = p;
    ssize_t n = recv(S.fd, buf, len, MSG_DONTWAIT);
    if (n < 0)
        gnutls_transport_set_errno(s, errno == EWOULDBLOCK ? EAGAIN : errno);
    return n;
}

static uint8_t pattern_at(uint32_t i)
{
    return (uint8_t)(i * 131 + (i >> 9));
}

/* the server reads what the client sent and checks the pattern */
static void server_read(gnutls_session_t s)
{
    if (S.fd < 0)
        return;
    uint8_t b[MAXREC];
    for (int k = 0; k < 64; k++) {
        ssize_t n = gnutls_record_recv(s, b, sizeof b);
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            if (b[i] != pattern_at(S.rseq++))
                abort(); /* the client sent what it was never given */
    }
}

/* the client reads; while untainted, exactly what the server sent */
static void client_read(ir_tls_stream *c, size_t cap)
{
    uint8_t b[MAXREC];
    if (cap > sizeof b)
        cap = sizeof b;
    if (!cap)
        cap = 1;
    for (int k = 0; k < 16; k++) {
        ssize_t n = ir_tls_stream_read(c, b, cap);
        if (n > (ssize_t)cap)
            abort();
        if (n <= 0)
            break;
        if (!S.tainted) {
            if (S.exp_off + (size_t)n > S.exp_len || memcmp(S.expect + S.exp_off, b, (size_t)n) != 0)
                abort();
            S.exp_off += (size_t)n;
        }
        if (!ir_tls_stream_pending(c))
            break;
    }
}

static void raw_mode(ir_tls_stream *c, fx_rd *r)
{
    uint8_t junk[65536];
    while (r->pos < r->len) {
        int rc = ir_tls_stream_handshake(c);
        if (rc == IROH_OK)
            abort(); /* made of the input alone: no handshake can complete */
        if (rc < 0)
            return;
        while (recv(S.fd, junk, sizeof junk, MSG_DONTWAIT) > 0)
            ;
        size_t n;
        const uint8_t *b = fx_bytes(r, fx_u16(r), &n);
        if (n && send(S.fd, b, n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
            return;
    }
    if (ir_tls_stream_handshake(c) == IROH_OK)
        abort();
}

static void script(ir_tls_stream *c, gnutls_session_t s, fx_rd *r, int tls13)
{
    for (int ops = 0; ops < 200 && r->pos < r->len; ops++) {
        uint8_t op = fx_u8(r);
        unsigned hi = op >> 4;
        switch (op & 15) {
        case 0: {
            size_t n;
            const uint8_t *b = fx_bytes(r, fx_u16(r), &n);
            if (S.fd < 0 || !n)
                break;
            ssize_t w = gnutls_record_send(s, b, n);
            if (w == GNUTLS_E_AGAIN) /* the socket is full: drop what is held */
                S.tainted = 1;
            if (w > 0 && S.exp_len + (size_t)w <= sizeof S.expect) {
                memcpy(S.expect + S.exp_len, b, (size_t)w);
                S.exp_len += (size_t)w;
            } else if (w > 0) {
                S.tainted = 1;
            }
            break;
        }
        case 1: {
            size_t n;
            const uint8_t *b = fx_bytes(r, fx_u16(r), &n);
            if (S.fd >= 0 && n)
                (void)send(S.fd, b, n, MSG_DONTWAIT | MSG_NOSIGNAL);
            S.tainted = 1;
            break;
        }
        case 2:
            client_read(c, fx_u16(r));
            break;
        case 3: {
            uint16_t len = fx_u16(r);
            uint8_t b[65536];
            for (uint16_t i = 0; i < len; i++)
                b[i] = pattern_at(S.wseq + i);
            ssize_t w = ir_tls_stream_write(c, b, len);
            if (w > (ssize_t)len)
                abort();
            if (w > 0)
                S.wseq += (uint32_t)w;
            /* AGAIN: the record is held inside; the same bytes are given again */
            for (int k = 0; k < 8 && w == IR_TLS_STREAM_AGAIN; k++) {
                server_read(s);
                w = ir_tls_stream_write(c, b, len);
                if (w > 0)
                    S.wseq += (uint32_t)w;
            }
            server_read(s);
            break;
        }
        case 4:
            if (S.fd >= 0)
                (void)gnutls_bye(s, GNUTLS_SHUT_WR);
            break;
        case 5:
            if (S.fd >= 0)
                shutdown(S.fd, SHUT_WR);
            break;
        case 6:
            if (S.fd >= 0 && tls13)
                (void)gnutls_session_key_update(s, (hi & 1) ? GNUTLS_KU_PEER : 0);
            break;
        case 7: {
            uint8_t ctx[255], a[32], b[32];
            uint8_t n = fx_u8(r);
            for (unsigned i = 0; i < n; i++)
                ctx[i] = (uint8_t)(i * 7);
            int rc = ir_tls_stream_export(c, "iroh-relay handshake v1", ctx, n, a, sizeof a);
            if (rc == IROH_OK &&
                gnutls_prf_rfc5705(s, 23, "iroh-relay handshake v1", n, (const char *)ctx,
                                   sizeof b, (char *)b) == 0 &&
                memcmp(a, b, sizeof a) != 0)
                abort(); /* the two ends disagree on the keying material */
            break;
        }
        case 8:
            if (S.fd >= 0)
                (void)gnutls_alert_send(s, (hi & 1) ? GNUTLS_AL_FATAL : GNUTLS_AL_WARNING,
                                        (gnutls_alert_description_t)fx_u8(r));
            S.tainted = 1;
            break;
        case 9:
            if (S.fd >= 0) {
                close(S.fd);
                S.fd = -1;
            }
            break;
        default:
            server_read(s);
            break;
        }
    }
    client_read(c, MAXREC);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    setup();
    memset(&S, 0, sizeof S);
    uint8_t mode = data[0];
    fx_rd r = {data, size, 1};
    static const char *names[8] = {"localhost",   "127.0.0.1",     "[::1]",
                                   "other.test",  "local\rhost",  "localhost\t",
                                   "loc\177alhost", "LOCALHOST"};
    int name = (mode & 3) | ((mode >> 4) & 4), insecure = (mode >> 2) & 1, raw = (mode >> 3) & 1,
        tls12 = (mode >> 4) & 1, system = (mode >> 5) & 1;

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    S.fd = sv[1];
    ir_tls_stream_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.server_name = names[name];
    cfg.ca_file = system ? NULL : fx_cert_file;
    cfg.insecure_skip_verify = insecure;
    ir_tls_stream *c = NULL;
    int rc = ir_tls_stream_new(sv[0], &cfg, &c);
    if (rc == IROH_OK && name >= 4 && name <= 6 && !insecure)
        abort(); /* a name with control characters is not a host name */
    if (rc != IROH_OK) {
        close(sv[0]);
        close(sv[1]);
        return 0;
    }

    if (raw) {
        raw_mode(c, &r);
    } else {
        gnutls_session_t s;
        if (gnutls_init(&s, GNUTLS_SERVER | GNUTLS_NONBLOCK) < 0 ||
            gnutls_priority_set_direct(s, tls12 ? "NORMAL:-VERS-ALL:+VERS-TLS1.2" : "NORMAL",
                                       NULL) < 0 ||
            gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, server_cred) < 0)
            abort();
        gnutls_transport_set_ptr(s, s);
        gnutls_transport_set_push_function(s, s_push);
        gnutls_transport_set_pull_function(s, s_pull);
        S.nmut = fx_u8(&r) & 7u;
        for (unsigned i = 0; i < S.nmut; i++) {
            S.off[i] = fx_u16(&r);
            S.x[i] = fx_u8(&r);
            if (S.x[i])
                S.tainted = 1;
        }
        int disturbed = S.tainted;
        S.mutating = 1;
        int crc = 1, src = GNUTLS_E_AGAIN;
        for (int k = 0; k < 64 && crc == 1; k++) {
            crc = ir_tls_stream_handshake(c);
            if (src == GNUTLS_E_AGAIN || src == GNUTLS_E_INTERRUPTED ||
                (src < 0 && !gnutls_error_is_fatal(src)))
                src = gnutls_handshake(s);
        }
        for (int k = 0; k < 8 && crc == IROH_OK && src == GNUTLS_E_AGAIN; k++)
            src = gnutls_handshake(s); /* TLS 1.3: the client's Finished */
        S.mutating = 0;
        if (crc == 1 && !disturbed)
            abort(); /* the handshake neither finished nor failed with both ends live */
        int name_ok = insecure || ((name < 2 || name == 7) && !system);
        if (crc == IROH_OK && !insecure && !name_ok && !disturbed)
            abort(); /* a certificate accepted for a name it does not carry */
        if (crc == IROH_OK && !name_ok)
            abort();
        if (crc != IROH_OK && name_ok && !disturbed)
            abort(); /* a good handshake refused */
        if (crc == IROH_OK && src == 0)
            script(c, s, &r, gnutls_protocol_get_version(s) == GNUTLS_TLS1_3);
        gnutls_deinit(s);
    }
    ir_tls_stream_free(c);
    close(sv[0]);
    if (S.fd >= 0)
        close(S.fd);
    return 0;
}
