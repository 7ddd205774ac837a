/* The non-blocking TLS client stream (GnuTLS) under the relay client. See tls_stream.h. */
#include "tls_stream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "base/util.h"

enum { ST_HANDSHAKE, ST_OPEN, ST_FAILED };

/* TLS 1.2 and 1.3 only, on top of the system's default priorities. */
#define TLS_VERSIONS "-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

struct ir_tls_stream {
    gnutls_session_t session;
    gnutls_certificate_credentials_t own_cred; /* ca_file or insecure; NULL: system trust */
    int fd;
    int state;
    int started;      /* handshake called at least once */
    int hs_out;       /* the handshake waits to write */
    int write_held;   /* a write returned AGAIN: its record is held, POLLOUT */
    int peer_gone;    /* TCP EOF without close_notify: GnuTLS invalidated the session */
    int read_out;     /* a read returned AGAIN while GnuTLS was writing */
    int sys_errno;    /* the last errno of the socket calls */
    char name[256];   /* server_name without brackets (verification and messages) */
};

/* ---- the shared system-trust credential ------------------------------------------------- */

static pthread_once_t sys_once = PTHREAD_ONCE_INIT;
static gnutls_certificate_credentials_t sys_cred;
static int sys_rc; /* certificates loaded, or a GnuTLS error */

static void sys_load(void)
{
    gnutls_certificate_credentials_t c;
    sys_rc = gnutls_certificate_allocate_credentials(&c);
    if (sys_rc < 0)
        return;
    sys_rc = gnutls_certificate_set_x509_system_trust(c);
    if (sys_rc <= 0) {
        gnutls_certificate_free_credentials(c);
        return;
    }
    sys_cred = c;
}

/* ---- the transport: the caller's socket, never blocking, no SIGPIPE --------------------- */

static ssize_t t_pull(gnutls_transport_ptr_t p, void *buf, size_t len)
{
    ir_tls_stream *s = p;
    ssize_t n;
    do
        n = recv(s->fd, buf, len, MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        s->sys_errno = errno;
        gnutls_transport_set_errno(s->session, errno == EWOULDBLOCK ? EAGAIN : errno);
    }
    return n;
}

static ssize_t t_vec_push(gnutls_transport_ptr_t p, const giovec_t *iov, int iovcnt)
{
    ir_tls_stream *s = p;
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = (struct iovec *)(uintptr_t)iov; /* giovec_t is struct iovec's layout */
    mh.msg_iovlen = (size_t)iovcnt;
    ssize_t n;
    do
        n = sendmsg(s->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        s->sys_errno = errno;
        gnutls_transport_set_errno(s->session, errno == EWOULDBLOCK ? EAGAIN : errno);
    }
    return n;
}

/* Only used by GnuTLS when a timeout is set (none is); never waits. */
static int t_pull_timeout(gnutls_transport_ptr_t p, unsigned int ms)
{
    ir_tls_stream *s = p;
    struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
    int r = poll(&pfd, 1, 0);
    if (r < 0) {
        s->sys_errno = errno;
        gnutls_transport_set_errno(s->session, errno);
    }
    return r;
}

/* ---- setup ------------------------------------------------------------------------------ */

static int is_ip_literal(const char *name)
{
    unsigned char a[16];
    return inet_pton(AF_INET, name, a) == 1 || inet_pton(AF_INET6, name, a) == 1;
}

int ir_tls_stream_new(int fd, const ir_tls_stream_config *cfg, ir_tls_stream **out)
{
    if (!out)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "TLS stream: no output pointer");
    *out = NULL;
    if (fd < 0 || !cfg || !cfg->server_name || !cfg->server_name[0])
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "TLS stream: needs a socket and a server name");

    const char *n = cfg->server_name;
    size_t nlen = strlen(n);
    if (n[0] == '[' && nlen >= 2 && n[nlen - 1] == ']') {
        n++;
        nlen -= 2;
    }
    ir_tls_stream *s = calloc(1, sizeof *s);
    if (!s)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    /* a host name or IP literal: printable ASCII only (GnuTLS's name check would skip
     * control characters, matching "local\rhost" to a certificate for localhost) */
    int printable = 1;
    for (size_t i = 0; i < nlen; i++)
        printable &= n[i] > 0x20 && n[i] < 0x7f;
    if (nlen == 0 || nlen >= sizeof s->name || !printable) {
        free(s);
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "TLS stream: bad server name");
    }
    memcpy(s->name, n, nlen);
    s->name[nlen] = '\0';
    s->fd = fd;
    s->state = ST_HANDSHAKE;
    int ip = is_ip_literal(s->name);

    int rc = IROH_ERR_HANDSHAKE, grc;
    gnutls_certificate_credentials_t cred = NULL;
    if (cfg->insecure_skip_verify || cfg->ca_file) {
        if ((grc = gnutls_certificate_allocate_credentials(&s->own_cred)) < 0) {
            rc = ir_fail(IROH_ERR_NO_MEMORY, "TLS credentials: %s", gnutls_strerror(grc));
            goto fail;
        }
        if (!cfg->insecure_skip_verify) {
            grc = gnutls_certificate_set_x509_trust_file(s->own_cred, cfg->ca_file,
                                                         GNUTLS_X509_FMT_PEM);
            if (grc <= 0) {
                rc = ir_fail(IROH_ERR_HANDSHAKE, "TLS CA file %s: %s", cfg->ca_file,
                             grc < 0 ? gnutls_strerror(grc) : "no certificate in it");
                goto fail;
            }
        }
        cred = s->own_cred;
    } else {
        pthread_once(&sys_once, sys_load);
        if (!sys_cred) {
            rc = ir_fail(IROH_ERR_HANDSHAKE, "TLS: no system trust store: %s",
                         sys_rc < 0 ? gnutls_strerror(sys_rc) : "no certificates in it");
            goto fail;
        }
        cred = sys_cred;
    }

    const char *err_pos = NULL;
    if ((grc = gnutls_init(&s->session, GNUTLS_CLIENT | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL)) < 0) {
        s->session = NULL;
        rc = ir_fail(IROH_ERR_NO_MEMORY, "TLS session: %s", gnutls_strerror(grc));
        goto fail;
    }
    if ((grc = gnutls_set_default_priority_append(s->session, TLS_VERSIONS, &err_pos, 0)) < 0 ||
        (grc = gnutls_credentials_set(s->session, GNUTLS_CRD_CERTIFICATE, cred)) < 0 ||
        (!ip && (grc = gnutls_server_name_set(s->session, GNUTLS_NAME_DNS, s->name, nlen)) < 0)) {
        rc = ir_fail(IROH_ERR_HANDSHAKE, "TLS session setup: %s", gnutls_strerror(grc));
        goto fail;
    }
    if (!cfg->insecure_skip_verify) /* chain and name (DNS SAN, or IP SAN for an IP literal) */
        gnutls_session_set_verify_cert(s->session, s->name, 0);
    gnutls_handshake_set_timeout(s->session, 0); /* the caller bounds the time */
    gnutls_transport_set_ptr(s->session, s);
    gnutls_transport_set_pull_function(s->session, t_pull);
    gnutls_transport_set_vec_push_function(s->session, t_vec_push);
    gnutls_transport_set_pull_timeout_function(s->session, t_pull_timeout);
    *out = s;
    return IROH_OK;

fail:
    if (s->session)
        gnutls_deinit(s->session);
    if (s->own_cred)
        gnutls_certificate_free_credentials(s->own_cred);
    free(s);
    return rc;
}

/* ---- errors ----------------------------------------------------------------------------- */

static void append(char *buf, size_t cap, size_t *len, const char *text)
{
    int w = snprintf(buf + *len, cap - *len, "%s%s", *len ? ", " : "", text);
    if (w > 0)
        *len = *len + (size_t)w < cap ? *len + (size_t)w : cap - 1;
}

/* The reasons of a rejected certificate, as text. */
static void verify_reasons(unsigned status, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    if (status & GNUTLS_CERT_SIGNER_NOT_FOUND)
        append(buf, cap, &len, "not trusted: signer not found");
    if (status & GNUTLS_CERT_SIGNER_NOT_CA)
        append(buf, cap, &len, "not trusted: signer is not a CA");
    if (status & GNUTLS_CERT_SIGNER_CONSTRAINTS_FAILURE)
        append(buf, cap, &len, "not trusted: signer constraints violated");
    if (status & GNUTLS_CERT_SIGNATURE_FAILURE)
        append(buf, cap, &len, "bad signature");
    if (status & GNUTLS_CERT_INSECURE_ALGORITHM)
        append(buf, cap, &len, "insecure algorithm");
    if (status & GNUTLS_CERT_REVOKED)
        append(buf, cap, &len, "revoked");
    if (status & GNUTLS_CERT_EXPIRED)
        append(buf, cap, &len, "expired");
    if (status & GNUTLS_CERT_NOT_ACTIVATED)
        append(buf, cap, &len, "not yet valid");
    if (status & GNUTLS_CERT_UNEXPECTED_OWNER)
        append(buf, cap, &len, "name mismatch");
    if (status & GNUTLS_CERT_PURPOSE_MISMATCH)
        append(buf, cap, &len, "not for TLS servers");
    if (len == 0) {
        gnutls_datum_t d = {NULL, 0};
        if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &d, 0) == 0 &&
            d.data) {
            append(buf, cap, &len, (const char *)d.data);
            gnutls_free(d.data);
        } else {
            append(buf, cap, &len, "verification failed");
        }
    }
}

/* Records a fatal GnuTLS error of `what` ("handshake", "read", "write") and returns the
 * IROH_ERR_* for it; the stream is dead afterwards. */
static int fail_gnutls(ir_tls_stream *s, int grc, const char *what)
{
    s->state = ST_FAILED;
    if (grc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
        char why[160];
        verify_reasons(gnutls_session_get_verify_cert_status(s->session), why, sizeof why);
        return ir_fail(IROH_ERR_HANDSHAKE, "relay certificate for %s rejected: %s", s->name, why);
    }
    if (grc == GNUTLS_E_FATAL_ALERT_RECEIVED)
        return ir_fail(IROH_ERR_HANDSHAKE, "TLS %s with %s: the server sent alert \"%s\"", what,
                       s->name, gnutls_alert_get_name(gnutls_alert_get(s->session)));
    if (grc == GNUTLS_E_PUSH_ERROR || grc == GNUTLS_E_PULL_ERROR)
        return ir_fail(IROH_ERR_IO, "TLS %s with %s: %s", what, s->name,
                       s->sys_errno ? strerror(s->sys_errno) : gnutls_strerror(grc));
    if (grc == GNUTLS_E_PREMATURE_TERMINATION)
        return ir_fail(IROH_ERR_HANDSHAKE, "TLS %s with %s: the server closed the connection",
                       what, s->name);
    if (grc == GNUTLS_E_UNEXPECTED_PACKET_LENGTH || grc == GNUTLS_E_UNEXPECTED_PACKET)
        return ir_fail(IROH_ERR_HANDSHAKE, "TLS %s with %s: %s (not a TLS server?)", what,
                       s->name, gnutls_strerror(grc));
    if (grc == GNUTLS_E_UNSUPPORTED_VERSION_PACKET)
        return ir_fail(IROH_ERR_HANDSHAKE, "TLS %s with %s: %s (no TLS 1.2 or 1.3?)", what,
                       s->name, gnutls_strerror(grc));
    return ir_fail(IROH_ERR_HANDSHAKE, "TLS %s with %s: %s", what, s->name, gnutls_strerror(grc));
}

/* ---- the stream ------------------------------------------------------------------------- */

int ir_tls_stream_handshake(ir_tls_stream *s)
{
    if (!s)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "TLS stream: NULL");
    if (s->state == ST_OPEN)
        return IROH_OK;
    if (s->state == ST_FAILED)
        return ir_fail(IROH_ERR_STATE, "TLS stream to %s: failed before", s->name);
    s->started = 1;
    for (int k = 0; k < 16; k++) {
        int grc = gnutls_handshake(s->session);
        if (grc == GNUTLS_E_SUCCESS) {
            s->state = ST_OPEN;
            s->hs_out = 0;
            return IROH_OK;
        }
        if (grc == GNUTLS_E_AGAIN) {
            s->hs_out = gnutls_record_get_direction(s->session) == 1;
            return 1;
        }
        if (grc == GNUTLS_E_INTERRUPTED || !gnutls_error_is_fatal(grc))
            continue; /* e.g. a warning alert: go on (a bounded number of times) */
        return fail_gnutls(s, grc, "handshake");
    }
    s->hs_out = gnutls_record_get_direction(s->session) == 1;
    return 1;
}

static ssize_t check_open(const ir_tls_stream *s)
{
    if (!s)
        return ir_fail(IROH_ERR_STATE, "TLS stream: NULL");
    if (s->state == ST_HANDSHAKE)
        return ir_fail(IROH_ERR_STATE, "TLS stream to %s: the handshake is not complete", s->name);
    if (s->state == ST_FAILED)
        return ir_fail(IROH_ERR_STATE, "TLS stream to %s: failed before", s->name);
    return 0;
}

ssize_t ir_tls_stream_read(ir_tls_stream *s, uint8_t *buf, size_t len)
{
    ssize_t rc = check_open(s);
    if (rc)
        return rc;
    if (!buf || !len)
        return ir_fail(IROH_ERR_STATE, "TLS read: no buffer");
    if (s->peer_gone)
        return 0;
    /* non-fatal results (a TLS 1.2 renegotiation request, which is ignored, a warning
     * alert) are skipped; a bounded number, then it is left for the next call */
    for (int k = 0; k < 16; k++) {
        ssize_t r = gnutls_record_recv(s->session, buf, len);
        if (r >= 0) {
            s->read_out = 0;
            return r;
        }
        if (r == GNUTLS_E_AGAIN) {
            s->read_out = gnutls_record_get_direction(s->session) == 1;
            return IR_TLS_STREAM_AGAIN;
        }
        if (r == GNUTLS_E_PREMATURE_TERMINATION) { /* TCP EOF without close_notify */
            s->read_out = 0;
            s->peer_gone = 1;
            return 0;
        }
        if (r == GNUTLS_E_INTERRUPTED || !gnutls_error_is_fatal((int)r))
            continue;
        return fail_gnutls(s, (int)r, "read");
    }
    return IR_TLS_STREAM_AGAIN;
}

ssize_t ir_tls_stream_write(ir_tls_stream *s, const uint8_t *buf, size_t len)
{
    ssize_t rc = check_open(s);
    if (rc)
        return rc;
    if (!len)
        return 0;
    if (!buf)
        return ir_fail(IROH_ERR_STATE, "TLS write: no buffer");
    if (s->peer_gone)
        return ir_fail(IROH_ERR_CONNECTION_CLOSED,
                       "TLS write to %s: the server closed the connection", s->name);
    for (;;) {
        ssize_t w = gnutls_record_send(s->session, buf, len);
        if (w >= 0) {
            s->write_held = 0;
            return w;
        }
        if (w == GNUTLS_E_AGAIN) {
            s->write_held = 1;
            return IR_TLS_STREAM_AGAIN;
        }
        if (w == GNUTLS_E_INTERRUPTED)
            continue; /* the same data again, as GnuTLS asks */
        return fail_gnutls(s, (int)w, "write");
    }
}

short ir_tls_stream_poll_events(const ir_tls_stream *s)
{
    if (!s || s->state == ST_FAILED)
        return 0;
    if (s->state == ST_HANDSHAKE)
        return (!s->started || s->hs_out) ? POLLOUT : POLLIN;
    return (short)(POLLIN | ((s->write_held || s->read_out) ? POLLOUT : 0));
}

size_t ir_tls_stream_pending(const ir_tls_stream *s)
{
    if (!s || s->state != ST_OPEN)
        return 0;
    return gnutls_record_check_pending(s->session);
}

int ir_tls_stream_export(ir_tls_stream *s, const char *label, const uint8_t *context,
                         size_t context_len, uint8_t *out, size_t out_len)
{
    if (!s || !label || !out || !out_len || (context_len && !context))
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "TLS export: bad arguments");
    if (s->state != ST_OPEN)
        return ir_fail(IROH_ERR_STATE, "TLS export: the handshake is not complete");
    int grc = gnutls_prf_rfc5705(s->session, strlen(label), label, context_len,
                                 (const char *)context, out_len, (char *)out);
    if (grc < 0)
        return ir_fail(IROH_ERR_HANDSHAKE, "TLS export: %s", gnutls_strerror(grc));
    return IROH_OK;
}

void ir_tls_stream_free(ir_tls_stream *s)
{
    if (!s)
        return;
    if (s->state == ST_OPEN && !s->peer_gone)
        (void)gnutls_bye(s->session, GNUTLS_SHUT_WR); /* one try: AGAIN is fine */
    gnutls_deinit(s->session);
    if (s->own_cred)
        gnutls_certificate_free_credentials(s->own_cred);
    free(s);
}
