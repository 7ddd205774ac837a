/* The non-blocking TLS client stream (src/relay/tls_stream.h) against our own relay server
 * with HTTPS (in-process, on a thread) and against a small GnuTLS test server (a thread,
 * blocking sockets) that reports what it saw: SNI, the TLS version, its exporter output.
 * The certificates are made here with GnuTLS (self-signed, ECDSA P-256). Every wait is
 * bounded by a poll timeout. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "relay/server.h"
#include "relay/tls_stream.h"
#include "test.h"
#include "test_cert.h"

#define LABEL "iroh-relay handshake v1"

static char dir[64];
static char cert_file[128], key_file[128];   /* CN=localhost, SAN localhost + 127.0.0.1 */
static char other_cert[128], other_key[128]; /* another one, CN=other.test */
static char same_dn[128], same_dn_key[128];   /* another one, CN=localhost too */
static char junk_file[128];                  /* not PEM */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- our relay server, HTTPS or plain, on a thread ------------------------------------- */

typedef struct relay {
    ir_relay_server *srv;
    pthread_t th;
    uint16_t port;
} relay;

/* The servers' threads never take SIGPIPE (our relay server's TLS shell writes through
 * GnuTLS's default transport, without MSG_NOSIGNAL; the applications ignore SIGPIPE). The
 * main thread, where the stream runs, keeps the default action: a write of the stream
 * that raised SIGPIPE would end the test. */
static void block_sigpipe(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static void *relay_thread(void *arg)
{
    block_sigpipe();
    ir_relay_server_run((ir_relay_server *)arg);
    return NULL;
}

static int relay_start(relay *r, int tls)
{
    ir_relay_server_config cfg;
    ir_relay_server_config_init(&cfg);
    cfg.listen = "127.0.0.1:0";
    cfg.header_timeout_ms = 1000; /* a ClientHello never completes a request head */
    if (tls) {
        cfg.tls_cert_file = cert_file;
        cfg.tls_key_file = key_file;
    }
    if (ir_relay_server_new(&cfg, &r->srv) != IROH_OK) {
        fprintf(stderr, "relay server: %s\n", iroh_last_error());
        return -1;
    }
    iroh_socket_addr la;
    ir_relay_server_local_addr(r->srv, &la);
    r->port = la.port;
    if (pthread_create(&r->th, NULL, relay_thread, r->srv) != 0) {
        ir_relay_server_free(r->srv);
        return -1;
    }
    return 0;
}

static void relay_stop(relay *r)
{
    ir_relay_server_stop(r->srv);
    pthread_join(r->th, NULL);
    ir_relay_server_free(r->srv);
}

/* ---- a GnuTLS test server: one connection, blocking, on a thread ------------------------ */

enum { M_TLS_ECHO, M_TLS_ECHO_NO_NOTIFY, M_RAW_CLOSE, M_RAW_HTTP };

typedef struct mini {
    int lfd;
    uint16_t port;
    int mode;
    const char *prio;  /* GnuTLS priority string (TLS versions) */
    size_t echo_bytes; /* echo this many bytes, then end the connection */
    pthread_t th;
    /* results */
    int handshake_ok;
    int version;  /* gnutls_protocol_t */
    int sni_rc;   /* gnutls_server_name_get: 0, or GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE */
    char sni[256];
    uint8_t exported[32];
    size_t echoed;
    int gated;        /* the server waits after accept until a byte comes on gate[0] */
    int gate[2];
} mini;

static const uint8_t ctx_a[32] = {0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
                                  0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
                                  0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
                                  0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42};

static void *mini_thread(void *arg)
{
    mini *m = arg;
    block_sigpipe();
    struct pollfd pfd = {.fd = m->lfd, .events = POLLIN};
    if (poll(&pfd, 1, 5000) != 1)
        return NULL;
    int fd = accept(m->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    if (m->gated) {
        struct pollfd g = {.fd = m->gate[0], .events = POLLIN};
        if (poll(&g, 1, 5000) != 1) {
            close(fd);
            return NULL;
        }
    }
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (m->mode == M_RAW_CLOSE || m->mode == M_RAW_HTTP) {
        if (m->mode == M_RAW_HTTP) { /* a plain HTTP server: the ClientHello is a bad request */
            char junk[4096];
            static const char resp[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
            if (recv(fd, junk, sizeof junk, 0) > 0)
                (void)!send(fd, resp, sizeof resp - 1, MSG_NOSIGNAL);
            shutdown(fd, SHUT_WR);
            while (recv(fd, junk, sizeof junk, 0) > 0) {
            }
        }
        close(fd);
        return NULL;
    }
    gnutls_certificate_credentials_t cred = NULL;
    gnutls_session_t s = NULL;
    if (gnutls_certificate_allocate_credentials(&cred) < 0 ||
        gnutls_certificate_set_x509_key_file(cred, cert_file, key_file, GNUTLS_X509_FMT_PEM) < 0 ||
        gnutls_init(&s, GNUTLS_SERVER | GNUTLS_NO_SIGNAL) < 0 ||
        gnutls_priority_set_direct(s, m->prio, NULL) < 0 ||
        gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred) < 0)
        goto out;
    gnutls_transport_set_int(s, fd);
    int rc;
    do
        rc = gnutls_handshake(s);
    while (rc < 0 && !gnutls_error_is_fatal(rc) && rc != GNUTLS_E_AGAIN);
    if (rc < 0)
        goto out;
    m->handshake_ok = 1;
    m->version = gnutls_protocol_get_version(s);
    size_t sl = sizeof m->sni - 1;
    unsigned type = 0;
    m->sni_rc = gnutls_server_name_get(s, m->sni, &sl, &type, 0);
    gnutls_prf_rfc5705(s, strlen(LABEL), LABEL, sizeof ctx_a, (const char *)ctx_a,
                       sizeof m->exported, (char *)m->exported);
    static _Thread_local uint8_t buf[65536];
    while (m->echoed < m->echo_bytes) {
        ssize_t r = gnutls_record_recv(s, buf, sizeof buf);
        if (r == GNUTLS_E_INTERRUPTED)
            continue;
        if (r <= 0)
            break;
        for (ssize_t off = 0; off < r;) {
            ssize_t w = gnutls_record_send(s, buf + off, (size_t)(r - off));
            if (w == GNUTLS_E_INTERRUPTED)
                continue;
            if (w < 0)
                goto out;
            off += w;
        }
        m->echoed += (size_t)r;
    }
    if (m->mode == M_TLS_ECHO)
        gnutls_bye(s, GNUTLS_SHUT_WR);
out:
    if (s)
        gnutls_deinit(s);
    if (cred)
        gnutls_certificate_free_credentials(cred);
    close(fd);
    return NULL;
}

static int listen_any(uint16_t *port, int small_buffers)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && small_buffers) { /* inherited by the accepted socket */
        int sz = 8192;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 4) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

static int mini_start_keep(mini *m, int mode, const char *prio, size_t echo_bytes, int gated)
{
    memset(m, 0, sizeof *m);
    if (gated) {
        if (pipe(m->gate) != 0)
            return -1;
        m->gated = 1;
    }
    m->mode = mode;
    m->prio = prio;
    m->echo_bytes = echo_bytes;
    m->sni_rc = 1;
    m->lfd = listen_any(&m->port, mode == M_TLS_ECHO && echo_bytes > 65536);
    if (m->lfd < 0)
        return -1;
    if (pthread_create(&m->th, NULL, mini_thread, m) != 0) {
        close(m->lfd);
        return -1;
    }
    return 0;
}

static int mini_start(mini *m, int mode, const char *prio, size_t echo_bytes)
{
    return mini_start_keep(m, mode, prio, echo_bytes, 0);
}

/* mini_start, with the server held after accept until mini_open_gate */
static int mini_start_gated(mini *m, int mode, const char *prio, size_t echo_bytes)
{
    return mini_start_keep(m, mode, prio, echo_bytes, 1);
}

static void mini_open_gate(mini *m)
{
    (void)!write(m->gate[1], "g", 1);
}

static void mini_join(mini *m)
{
    pthread_join(m->th, NULL);
    close(m->lfd);
    if (m->gated) {
        close(m->gate[0]);
        close(m->gate[1]);
    }
}

/* ---- the client side -------------------------------------------------------------------- */

/* A connected non-blocking TCP socket to 127.0.0.1:port; small buffers when asked. */
static int tcp_connect(uint16_t port, int small_buffers)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (small_buffers) {
        int sz = 8192;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    int err = 0;
    socklen_t el = sizeof err;
    if (poll(&pfd, 1, 5000) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Drives the handshake; IROH_ERR_TIMEOUT after ms. Counts the calls that returned 1. */
static int drive_handshake(ir_tls_stream *s, int fd, int ms, int *waits)
{
    uint64_t end = now_ms() + (uint64_t)ms;
    for (;;) {
        int rc = ir_tls_stream_handshake(s);
        if (rc != 1)
            return rc;
        if (waits)
            (*waits)++;
        short ev = ir_tls_stream_poll_events(s);
        if (ev != POLLIN && ev != POLLOUT)
            return -100; /* exactly one direction during the handshake */
        uint64_t t = now_ms();
        if (t >= end)
            return IROH_ERR_TIMEOUT;
        struct pollfd pfd = {.fd = fd, .events = ev};
        if (poll(&pfd, 1, (int)(end - t)) == 0)
            return IROH_ERR_TIMEOUT;
    }
}

/* Reads until cap bytes, the end of the stream (returns the count so far), an error
 * (returned), or the deadline (IROH_ERR_TIMEOUT). *eof tells whether the end was seen. */
static ssize_t read_until(ir_tls_stream *s, int fd, uint8_t *buf, size_t cap, const char *stop,
                          int ms, int *eof)
{
    uint64_t end = now_ms() + (uint64_t)ms;
    size_t got = 0;
    *eof = 0;
    while (got < cap) {
        ssize_t r = ir_tls_stream_read(s, buf + got, cap - got);
        if (r > 0) {
            got += (size_t)r;
            if (stop && got < cap) {
                buf[got] = 0;
                if (strstr((char *)buf, stop))
                    return (ssize_t)got;
            }
            continue;
        }
        if (r == 0) {
            *eof = 1;
            return (ssize_t)got;
        }
        if (r != IR_TLS_STREAM_AGAIN)
            return r;
        if (ir_tls_stream_pending(s))
            return -200; /* AGAIN with decrypted bytes held: must not happen */
        uint64_t t = now_ms();
        if (t >= end)
            return IROH_ERR_TIMEOUT;
        struct pollfd pfd = {.fd = fd, .events = ir_tls_stream_poll_events(s)};
        if (poll(&pfd, 1, (int)(end - t)) == 0)
            return IROH_ERR_TIMEOUT;
    }
    return (ssize_t)got;
}

static int write_all(ir_tls_stream *s, int fd, const uint8_t *p, size_t len, int ms)
{
    uint64_t end = now_ms() + (uint64_t)ms;
    while (len) {
        ssize_t w = ir_tls_stream_write(s, p, len);
        if (w > 0) {
            p += w;
            len -= (size_t)w;
            continue;
        }
        if (w != IR_TLS_STREAM_AGAIN)
            return (int)w;
        uint64_t t = now_ms();
        if (t >= end)
            return IROH_ERR_TIMEOUT;
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        if (poll(&pfd, 1, (int)(end - t)) == 0)
            return IROH_ERR_TIMEOUT;
    }
    return 0;
}

/* Connects, makes a stream and drives the handshake; the stream (NULL if new failed) and
 * the socket are returned for the caller to free and close. */
static int connect_tls(uint16_t port, const char *name, const char *ca, int insecure,
                       int *fd_out, ir_tls_stream **s_out)
{
    *s_out = NULL;
    *fd_out = tcp_connect(port, 0);
    if (*fd_out < 0)
        return -300;
    ir_tls_stream_config cfg = {.server_name = name, .ca_file = ca,
                                .insecure_skip_verify = insecure};
    int rc = ir_tls_stream_new(*fd_out, &cfg, s_out);
    if (rc != IROH_OK)
        return rc;
    return drive_handshake(*s_out, *fd_out, 5000, NULL);
}

/* GET /ping over the stream; 1 if a 200 response came back. */
static int ping(ir_tls_stream *s, int fd)
{
    static const char req[] = "GET /ping HTTP/1.1\r\nHost: localhost\r\n\r\n";
    if (write_all(s, fd, (const uint8_t *)req, sizeof req - 1, 5000) != 0)
        return 0;
    uint8_t resp[2048];
    int eof;
    ssize_t n = read_until(s, fd, resp, sizeof resp - 1, "\r\n\r\n", 5000, &eof);
    if (n <= 0)
        return 0;
    resp[n] = 0;
    return strncmp((char *)resp, "HTTP/1.1 200 ", 13) == 0;
}

static int contains(const char *hay, const char *needle)
{
    return hay && strstr(hay, needle) != NULL;
}

/* ---- the tests -------------------------------------------------------------------------- */

TEST(test_arguments)
{
    ir_tls_stream *s = (ir_tls_stream *)1;
    ir_tls_stream_config cfg = {.server_name = "localhost", .ca_file = cert_file};
    CHECK_EQ_INT(ir_tls_stream_new(-1, &cfg, &s), IROH_ERR_INVALID_ARGUMENT);
    CHECK(s == NULL);
    CHECK_EQ_INT(ir_tls_stream_new(0, NULL, &s), IROH_ERR_INVALID_ARGUMENT);
    ir_tls_stream_config empty = {.server_name = "", .insecure_skip_verify = 1};
    CHECK_EQ_INT(ir_tls_stream_new(0, &empty, &s), IROH_ERR_INVALID_ARGUMENT);
    ir_tls_stream_config brackets = {.server_name = "[]", .insecure_skip_verify = 1};
    CHECK_EQ_INT(ir_tls_stream_new(0, &brackets, &s), IROH_ERR_INVALID_ARGUMENT);

    ir_tls_stream_config missing = {.server_name = "localhost", .ca_file = "/nonexistent/ca.pem"};
    CHECK_EQ_INT(ir_tls_stream_new(0, &missing, &s), IROH_ERR_HANDSHAKE);
    CHECK(contains(iroh_last_error(), "/nonexistent/ca.pem"));
    ir_tls_stream_config junk = {.server_name = "localhost", .ca_file = junk_file};
    CHECK_EQ_INT(ir_tls_stream_new(0, &junk, &s), IROH_ERR_HANDSHAKE);
    CHECK(contains(iroh_last_error(), junk_file));

    /* a fresh stream: nothing before the handshake; an IPv6 literal in brackets is taken */
    ir_tls_stream_config v6 = {.server_name = "[::1]", .ca_file = cert_file};
    CHECK_EQ_INT(ir_tls_stream_new(0, &v6, &s), IROH_OK);
    if (s) {
        uint8_t b[8] = {0};
        CHECK_EQ_INT(ir_tls_stream_poll_events(s), POLLOUT);
        CHECK_EQ_INT(ir_tls_stream_read(s, b, sizeof b), IROH_ERR_STATE);
        CHECK_EQ_INT(ir_tls_stream_write(s, b, sizeof b), IROH_ERR_STATE);
        CHECK_EQ_INT(ir_tls_stream_export(s, LABEL, ctx_a, 32, b, sizeof b), IROH_ERR_STATE);
        CHECK_EQ_INT(ir_tls_stream_pending(s), 0);
        ir_tls_stream_free(s); /* sends nothing: fd 0 is never touched */
    }
    ir_tls_stream_free(NULL);
}

TEST(test_relay_https_dns_name)
{
    relay r;
    CHECK_EQ_INT(relay_start(&r, 1), 0);
    int fd;
    ir_tls_stream *s;
    int rc = connect_tls(r.port, "localhost", cert_file, 0, &fd, &s);
    CHECK_EQ_INT(rc, IROH_OK);
    if (rc != IROH_OK)
        fprintf(stderr, "  %s\n", iroh_last_error());
    if (rc == IROH_OK) {
        CHECK(ir_tls_stream_poll_events(s) & POLLIN);
        CHECK_EQ_INT(ir_tls_stream_handshake(s), IROH_OK); /* again: still done */
        CHECK(ping(s, fd));
        CHECK(ping(s, fd)); /* keep-alive: a second request on the same stream */
    }
    ir_tls_stream_free(s);
    if (fd >= 0)
        close(fd);
    relay_stop(&r);
}

TEST(test_relay_https_ip_literal)
{
    relay r;
    CHECK_EQ_INT(relay_start(&r, 1), 0);
    int fd;
    ir_tls_stream *s;
    int rc = connect_tls(r.port, "127.0.0.1", cert_file, 0, &fd, &s);
    CHECK_EQ_INT(rc, IROH_OK);
    if (rc != IROH_OK)
        fprintf(stderr, "  %s\n", iroh_last_error());
    if (rc == IROH_OK)
        CHECK(ping(s, fd));
    ir_tls_stream_free(s);
    if (fd >= 0)
        close(fd);

    /* another address is not in the certificate */
    rc = connect_tls(r.port, "127.0.0.2", cert_file, 0, &fd, &s);
    CHECK_EQ_INT(rc, IROH_ERR_HANDSHAKE);
    CHECK(contains(iroh_last_error(), "name mismatch"));
    CHECK(contains(iroh_last_error(), "127.0.0.2"));
    CHECK(!contains(iroh_last_error(), "not trusted"));
    CHECK_EQ_INT(ir_tls_stream_poll_events(s), 0);
    CHECK_EQ_INT(ir_tls_stream_handshake(s), IROH_ERR_STATE);
    ir_tls_stream_free(s);
    if (fd >= 0)
        close(fd);
    relay_stop(&r);
}

TEST(test_untrusted_certificate)
{
    relay r;
    CHECK_EQ_INT(relay_start(&r, 1), 0);
    int fd;
    ir_tls_stream *s;
    int rc = connect_tls(r.port, "localhost", other_cert, 0, &fd, &s);
    CHECK_EQ_INT(rc, IROH_ERR_HANDSHAKE);
    printf("  untrusted: %s\n", iroh_last_error());
    CHECK(contains(iroh_last_error(), "not trusted: signer not found"));
    CHECK(contains(iroh_last_error(), "localhost"));
    CHECK(!contains(iroh_last_error(), "name mismatch"));
    CHECK_EQ_INT(ir_tls_stream_poll_events(s), 0);
    uint8_t b[4];
    CHECK_EQ_INT(ir_tls_stream_read(s, b, sizeof b), IROH_ERR_STATE);
    ir_tls_stream_free(s);
    if (fd >= 0)
        close(fd);

    /* a trusted certificate with the server's issuer name but another key: the signature
     * does not verify with it */
    rc = connect_tls(r.port, "localhost", same_dn, 0, &fd, &s);
    CHECK_EQ_INT(rc, IROH_ERR_HANDSHAKE);
    printf("  same issuer name: %s\n", iroh_last_error());
    CHECK(contains(iroh_last_error(), "not trusted"));
    ir_tls_stream_free(s);
    if (fd >= 0)
        close(fd);

    /* the system trust store does not know a self-signed certificate either */
    rc = connect_tls(r.port, "localhost", NULL, 0, &fd, &s);
    CHECK_EQ_INT(rc, IROH_ERR_HANDSHAKE);
    printf("  system trust: %s\n", iroh_last_error());
    CHECK(contains(iroh_last_error(), "not trusted: signer not found"));
    ir_tls_stream_free(s);
    if (fd >= 0)
        close(fd);
    relay_stop(&r);
}

TEST(test_name_mismatch)
{
    relay r;
    CHECK_EQ_INT(relay_start(&r, 1), 0);
    int fd;
    ir_tls_stream *s;
    int rc = connect_tls(r.port, "relay.example.org", cert_file, 0, &fd, &s);
    CHECK_EQ_INT(rc, IROH_ERR_HANDSHAKE);
    printf("  mismatch: %s\n", iroh_last_error());
    CHECK(contains(iroh_last_error(), "name mismatch"));
    CHECK(contains(iroh_last_error(), "relay.example.org"));
    CHECK(!contains(iroh_last_error(), "not trusted"));
    ir_tls_stream_free(s);
    if (fd >= 0)
        close(fd);

    /* both wrong: both reasons */
    rc = connect_tls(r.port, "relay.example.org", other_cert, 0, &fd, &s);
    CHECK_EQ_INT(rc, IROH_ERR_HANDSHAKE);
    CHECK(contains(iroh_last_error(), "name mismatch"));
    CHECK(contains(iroh_last_error(), "not trusted"));
    ir_tls_stream_free(s);
    if (fd >= 0)
        close(fd);
    relay_stop(&r);
}

TEST(test_insecure_skip_verify)
{
    relay r;
    CHECK_EQ_INT(relay_start(&r, 1), 0);
    int fd;
    ir_tls_stream *s;
    /* the wrong name and no trust at all (the CA file is ignored) */
    int rc = connect_tls(r.port, "relay.example.org", other_cert, 1, &fd, &s);
    CHECK_EQ_INT(rc, IROH_OK);
    if (rc == IROH_OK)
        CHECK(ping(s, fd));
    ir_tls_stream_free(s);
    if (fd >= 0)
        close(fd);
    relay_stop(&r);
}

/* SNI, the exporter (equal to the server's), echo and close_notify, for one TLS version */
static void exporter_and_sni(const char *prio, int version)
{
    mini m;
    CHECK_EQ_INT(mini_start(&m, M_TLS_ECHO, prio, 5), 0);
    int fd;
    ir_tls_stream *s;
    int rc = connect_tls(m.port, "localhost", cert_file, 0, &fd, &s);
    CHECK_EQ_INT(rc, IROH_OK);
    if (rc == IROH_OK) {
        uint8_t e1[32], e2[32], e3[32], e4[32], ctx_b[32];
        memcpy(ctx_b, ctx_a, 32);
        ctx_b[31] ^= 1;
        CHECK_EQ_INT(ir_tls_stream_export(s, LABEL, ctx_a, 32, e1, 32), IROH_OK);
        CHECK_EQ_INT(ir_tls_stream_export(s, LABEL, ctx_a, 32, e2, 32), IROH_OK);
        CHECK_EQ_INT(ir_tls_stream_export(s, LABEL, ctx_b, 32, e3, 32), IROH_OK);
        CHECK_EQ_INT(ir_tls_stream_export(s, "iroh-relay handshake v2", ctx_a, 32, e4, 32),
                     IROH_OK);
        CHECK_EQ_INT(ir_tls_stream_export(s, NULL, ctx_a, 32, e4, 32), IROH_ERR_INVALID_ARGUMENT);
        CHECK_MEM(e1, e2, 32);
        CHECK(memcmp(e1, e3, 32) != 0);
        CHECK(memcmp(e1, e4, 32) != 0);
        uint8_t zero[32] = {0};
        CHECK(memcmp(e1, zero, 32) != 0);

        const uint8_t hello[5] = {'h', 'e', 'l', 'l', 'o'};
        CHECK_EQ_INT(write_all(s, fd, hello, 5, 5000), 0);
        uint8_t back[16];
        int eof = 0;
        ssize_t n = read_until(s, fd, back, sizeof back, NULL, 5000, &eof);
        CHECK_EQ_INT(n, 5); /* then close_notify: the end of the stream */
        CHECK(eof);
        CHECK_MEM(back, hello, 5);
        mini_join(&m);
        CHECK(m.handshake_ok);
        CHECK_EQ_INT(m.version, version);
        CHECK_MEM(e1, m.exported, 32); /* both ends agree */
        CHECK_EQ_INT(m.sni_rc, 0);
        CHECK_STR(m.sni, "localhost");
    } else {
        fprintf(stderr, "  %s\n", iroh_last_error());
        mini_join(&m);
    }
    ir_tls_stream_free(s);
    if (fd >= 0)
        close(fd);

    /* an IP literal: no SNI at all */
    CHECK_EQ_INT(mini_start(&m, M_TLS_ECHO, prio, 0), 0);
    rc = connect_tls(m.port, "127.0.0.1", cert_file, 0, &fd, &s);
    CHECK_EQ_INT(rc, IROH_OK);
    mini_join(&m);
    CHECK(m.handshake_ok);
    CHECK_EQ_INT(m.sni_rc, GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE);
    ir_tls_stream_free(s);
    if (fd >= 0)
        close(fd);
}

TEST(test_exporter_sni_tls13)
{
    exporter_and_sni("NORMAL:-VERS-ALL:+VERS-TLS1.3", GNUTLS_TLS1_3);
}

TEST(test_exporter_sni_tls12)
{
    exporter_and_sni("NORMAL:-VERS-ALL:+VERS-TLS1.2", GNUTLS_TLS1_2);
}

TEST(test_old_tls_refused)
{
    /* a server that only speaks TLS 1.1: no common version */
    mini m;
    CHECK_EQ_INT(mini_start(&m, M_TLS_ECHO, "NORMAL:-VERS-ALL:+VERS-TLS1.1", 0), 0);
    int fd;
    ir_tls_stream *s;
    int rc = connect_tls(m.port, "localhost", cert_file, 0, &fd, &s);
    CHECK(rc < 0 && rc != IROH_ERR_TIMEOUT);
    printf("  TLS 1.1 server: %s\n", iroh_last_error());
    ir_tls_stream_free(s);
    if (fd >= 0)
        close(fd);
    mini_join(&m);
    CHECK(!m.handshake_ok);
}

TEST(test_eof_without_close_notify)
{
    mini m;
    CHECK_EQ_INT(mini_start(&m, M_TLS_ECHO_NO_NOTIFY, "NORMAL", 3), 0);
    int fd;
    ir_tls_stream *s;
    int rc = connect_tls(m.port, "localhost", cert_file, 0, &fd, &s);
    CHECK_EQ_INT(rc, IROH_OK);
    if (rc == IROH_OK) {
        CHECK_EQ_INT(write_all(s, fd, (const uint8_t *)"abc", 3, 5000), 0);
        uint8_t back[8];
        int eof = 0;
        CHECK_EQ_INT(read_until(s, fd, back, sizeof back, NULL, 5000, &eof), 3);
        CHECK(eof);
        CHECK_EQ_INT(ir_tls_stream_read(s, back, sizeof back), 0); /* the end stays */
        CHECK_EQ_INT(ir_tls_stream_write(s, back, 3), IROH_ERR_CONNECTION_CLOSED);
    }
    mini_join(&m);
    ir_tls_stream_free(s);
    if (fd >= 0)
        close(fd);

    /* the server is gone (its end not read yet): writing fails once the reset is back,
     * without SIGPIPE */
    CHECK_EQ_INT(mini_start(&m, M_TLS_ECHO_NO_NOTIFY, "NORMAL", 3), 0);
    rc = connect_tls(m.port, "localhost", cert_file, 0, &fd, &s);
    CHECK_EQ_INT(rc, IROH_OK);
    if (rc == IROH_OK) {
        CHECK_EQ_INT(write_all(s, fd, (const uint8_t *)"abc", 3, 5000), 0);
        uint8_t back[3];
        int eof = 0;
        CHECK_EQ_INT(read_until(s, fd, back, sizeof back, NULL, 5000, &eof), 3);
        mini_join(&m);
        ssize_t w = 0;
        for (int i = 0; i < 50 && (w >= 0 || w == IR_TLS_STREAM_AGAIN); i++) {
            w = ir_tls_stream_write(s, (const uint8_t *)"more", 4);
            if (w >= 0 || w == IR_TLS_STREAM_AGAIN)
                usleep(10000);
        }
        CHECK_EQ_INT(w, IROH_ERR_IO);
        printf("  write after close: %s\n", iroh_last_error());
        CHECK_EQ_INT(ir_tls_stream_poll_events(s), 0);
    } else {
        mini_join(&m);
    }
    ir_tls_stream_free(s);
    if (fd >= 0)
        close(fd);
}

/* A lot of data through small socket buffers: writes must return -1 (held) and be
 * repeated with the same bytes, reads drain pending bytes; everything comes back intact. */
TEST(test_would_block_echo)
{
    enum { TOTAL = 2 * 1024 * 1024 };
    mini m;
    /* the server is held after accept, so the handshake must wait for it: its first
     * step returns "again" whatever the scheduling */
    CHECK_EQ_INT(mini_start_gated(&m, M_TLS_ECHO, "NORMAL", TOTAL), 0);
    int fd = tcp_connect(m.port, 1);
    CHECK(fd >= 0);
    ir_tls_stream_config cfg = {.server_name = "localhost", .ca_file = cert_file};
    ir_tls_stream *s = NULL;
    CHECK_EQ_INT(ir_tls_stream_new(fd, &cfg, &s), IROH_OK);
    int waits = 0;
    if (s && ir_tls_stream_handshake(s) == 1) /* the ClientHello out, no answer yet */
        waits++;
    mini_open_gate(&m);
    int rc = s ? drive_handshake(s, fd, 5000, &waits) : -1;
    CHECK_EQ_INT(rc, IROH_OK);
    CHECK(waits >= 1); /* the handshake waited for the server at least once */
    uint8_t *out = malloc(TOTAL), *in = malloc(TOTAL);
    CHECK(out && in);
    if (rc == IROH_OK && out && in) {
        for (size_t i = 0; i < TOTAL; i++)
            out[i] = (uint8_t)(i * 7 + (i >> 11));
        size_t sent = 0, got = 0;
        int held = 0, pollout_seen = 0, eof = 0, bad = 0;
        uint64_t end = now_ms() + 20000;
        while (!eof && !bad && now_ms() < end) {
            while (sent < TOTAL) { /* write until the socket is full */
                size_t chunk = TOTAL - sent < 30000 ? TOTAL - sent : 30000;
                ssize_t w = ir_tls_stream_write(s, out + sent, chunk);
                if (w > 0) {
                    sent += (size_t)w;
                    continue;
                }
                if (w == IR_TLS_STREAM_AGAIN) {
                    held++;
                    if (ir_tls_stream_poll_events(s) & POLLOUT)
                        pollout_seen++;
                } else {
                    bad = 1;
                    fprintf(stderr, "  write: %s\n", iroh_last_error());
                }
                break;
            }
            for (;;) {
                uint8_t extra[64]; /* after everything: only the end may come */
                ssize_t r = got < TOTAL ? ir_tls_stream_read(s, in + got, TOTAL - got)
                                        : ir_tls_stream_read(s, extra, sizeof extra);
                if (r > 0) {
                    got += (size_t)r;
                    if (got > TOTAL)
                        bad = 1;
                    continue;
                }
                if (r == 0)
                    eof = 1;
                else if (r != IR_TLS_STREAM_AGAIN)
                    bad = 1;
                break;
            }
            if (eof || bad)
                break;
            short ev = ir_tls_stream_poll_events(s);
            if (sent < TOTAL)
                ev |= POLLOUT;
            struct pollfd pfd = {.fd = fd, .events = ev};
            poll(&pfd, 1, 1000);
        }
        CHECK(!bad);
        CHECK(eof);
        CHECK_EQ_INT(sent, TOTAL);
        CHECK_EQ_INT(got, TOTAL);
        CHECK(got == TOTAL && memcmp(in, out, TOTAL) == 0);
        CHECK(held > 0);
        CHECK_EQ_INT(pollout_seen, held);
        printf("  %d writes held\n", held);
    }
    free(out);
    free(in);
    mini_join(&m);
    CHECK_EQ_INT(m.echoed, TOTAL);
    ir_tls_stream_free(s);
    if (fd >= 0)
        close(fd);
}

TEST(test_not_a_tls_server)
{
    /* our relay server without TLS answers the ClientHello as a bad HTTP request */
    relay r;
    CHECK_EQ_INT(relay_start(&r, 0), 0);
    int fd;
    ir_tls_stream *s;
    uint64_t t0 = now_ms();
    int rc = connect_tls(r.port, "localhost", cert_file, 0, &fd, &s);
    CHECK(rc < 0 && rc != IROH_ERR_TIMEOUT);
    CHECK(now_ms() - t0 < 4000);
    printf("  plain relay: %s\n", iroh_last_error());
    CHECK(contains(iroh_last_error(), "localhost"));
    ir_tls_stream_free(s);
    if (fd >= 0)
        close(fd);
    relay_stop(&r);

    /* a plain HTTP server that answers at once */
    mini m;
    CHECK_EQ_INT(mini_start(&m, M_RAW_HTTP, NULL, 0), 0);
    t0 = now_ms();
    rc = connect_tls(m.port, "localhost", cert_file, 0, &fd, &s);
    CHECK_EQ_INT(rc, IROH_ERR_HANDSHAKE);
    CHECK(now_ms() - t0 < 2000);
    printf("  plain HTTP: %s\n", iroh_last_error());
    CHECK(contains(iroh_last_error(), "not a TLS server"));
    ir_tls_stream_free(s);
    if (fd >= 0)
        close(fd);
    mini_join(&m);

    /* a server that closes at once */
    CHECK_EQ_INT(mini_start(&m, M_RAW_CLOSE, NULL, 0), 0);
    rc = connect_tls(m.port, "localhost", cert_file, 0, &fd, &s);
    CHECK(rc == IROH_ERR_HANDSHAKE || rc == IROH_ERR_IO);
    printf("  closed at once: %s\n", iroh_last_error());
    ir_tls_stream_free(s);
    if (fd >= 0)
        close(fd);
    mini_join(&m);

    /* a server that never answers: every call returns at once, the caller's poll times out */
    uint16_t port;
    int lfd = listen_any(&port, 0);
    CHECK(lfd >= 0);
    fd = tcp_connect(port, 0);
    CHECK(fd >= 0);
    ir_tls_stream_config cfg = {.server_name = "localhost", .ca_file = cert_file};
    s = NULL;
    CHECK_EQ_INT(ir_tls_stream_new(fd, &cfg, &s), IROH_OK);
    if (s) {
        t0 = now_ms();
        CHECK_EQ_INT(drive_handshake(s, fd, 300, NULL), IROH_ERR_TIMEOUT);
        CHECK(now_ms() - t0 < 2000);
        CHECK_EQ_INT(ir_tls_stream_poll_events(s), POLLIN); /* the ClientHello went out */
        CHECK_EQ_INT(ir_tls_stream_handshake(s), 1);
    }
    ir_tls_stream_free(s);
    if (fd >= 0)
        close(fd);
    if (lfd >= 0)
        close(lfd);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/iroh-tls-test-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(cert_file, sizeof cert_file, "%s/cert.pem", dir);
    snprintf(key_file, sizeof key_file, "%s/key.pem", dir);
    snprintf(other_cert, sizeof other_cert, "%s/other.pem", dir);
    snprintf(other_key, sizeof other_key, "%s/other-key.pem", dir);
    snprintf(junk_file, sizeof junk_file, "%s/junk.pem", dir);
    snprintf(same_dn, sizeof same_dn, "%s/same-dn.pem", dir);
    snprintf(same_dn_key, sizeof same_dn_key, "%s/same-dn-key.pem", dir);
    int ok = make_cert(cert_file, key_file, "localhost", "localhost", "127.0.0.1", 1) == 0 &&
             make_cert(other_cert, other_key, "other.test", "localhost", "127.0.0.1", 2) == 0 &&
             make_cert(same_dn, same_dn_key, "localhost", "localhost", "127.0.0.1", 3) == 0 &&
             write_file(junk_file, "not a certificate\n", 18) == 0;
    CHECK(ok);
    if (ok) {
        RUN(test_arguments);
        RUN(test_relay_https_dns_name);
        RUN(test_relay_https_ip_literal);
        RUN(test_untrusted_certificate);
        RUN(test_name_mismatch);
        RUN(test_insecure_skip_verify);
        RUN(test_exporter_sni_tls13);
        RUN(test_exporter_sni_tls12);
        RUN(test_old_tls_refused);
        RUN(test_eof_without_close_notify);
        RUN(test_would_block_echo);
        RUN(test_not_a_tls_server);
    }
    unlink(cert_file);
    unlink(key_file);
    unlink(other_cert);
    unlink(other_key);
    unlink(junk_file);
    unlink(same_dn);
    unlink(same_dn_key);
    rmdir(dir);
    TEST_EXIT();
}
