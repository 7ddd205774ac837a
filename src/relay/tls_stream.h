/* A small non-blocking TLS client stream over a connected TCP socket (GnuTLS), for the
 * connections to https relays (spec relay.md 1.1, 1.5, 2.3). It moves plaintext bytes
 * between the caller (the sans-IO relay client, client.h) and the socket; it never blocks
 * and never waits: the caller owns the socket, polls it for ir_tls_stream_poll_events and
 * bounds every step with its own timeouts.
 *
 * TLS 1.2 and 1.3, no ALPN, SNI = the server name when it is a DNS name (none for an IP
 * literal). The certificate is verified during the handshake against the system trust
 * store or the given CA file, including the name (DNS SAN, or IP SAN for an IP literal),
 * unless insecure_skip_verify is set (tests only).
 *
 *     ir_tls_stream_config cfg = {.server_name = "relay.example.org"};
 *     ir_tls_stream *s;
 *     if (ir_tls_stream_new(fd, &cfg, &s) != IROH_OK) fail (iroh_last_error());
 *     while ((rc = ir_tls_stream_handshake(s)) == 1)
 *         poll fd for ir_tls_stream_poll_events(s) (with a deadline);
 *     rc < 0: fail (iroh_last_error());
 *     loop:
 *         n = ir_tls_stream_write(s, p, len);     n > 0: p += n ...;
 *                                                  IR_TLS_STREAM_AGAIN: same p later
 *         n = ir_tls_stream_read(s, buf, cap);    repeat while ir_tls_stream_pending(s)
 *         poll fd for ir_tls_stream_poll_events(s) (plus POLLOUT while there is more to write)
 *     ir_tls_stream_free(s); close(fd);
 *
 * One stream is used by one thread at a time; different streams are independent. The
 * only shared state is the system-trust credential, loaded once (pthread_once). */
#ifndef IR_RELAY_TLS_STREAM_H
#define IR_RELAY_TLS_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "iroh.h"

typedef struct ir_tls_stream ir_tls_stream;

typedef struct ir_tls_stream_config {
    /* The host of the relay URL without port: a DNS name (sent as SNI, and the name the
     * certificate must carry) or an IP literal (IPv6 with or without brackets: no SNI,
     * the certificate must carry the address as an IP SAN). Required; printable ASCII
     * only (GnuTLS's own name check ignores control characters). */
    const char *server_name;
    /* NULL: the system trust store. Else a PEM file of CA (or self-signed server)
     * certificates trusted instead of the system store. */
    const char *ca_file;
    /* Tests only: accept any certificate, for any name. */
    int insecure_skip_verify;
} ir_tls_stream_config;

/* Returned by ir_tls_stream_read / ir_tls_stream_write when the socket is not ready: the
 * relay layer's own status, far below every IROH_ERR_* so that it is never taken for
 * one (the errors these calls return are IROH_ERR_* with iroh_last_error). */
#define IR_TLS_STREAM_AGAIN (-2001)

/* Makes a client session on fd, a connected non-blocking TCP socket that stays the
 * caller's (never closed here). Nothing is sent yet. Errors: IROH_ERR_INVALID_ARGUMENT
 * (NULL, fd < 0, empty server_name), IROH_ERR_HANDSHAKE (a CA file that cannot be read or
 * holds no certificate, no usable system trust store), IROH_ERR_NO_MEMORY; each with
 * iroh_last_error. */
int ir_tls_stream_new(int fd, const ir_tls_stream_config *cfg, ir_tls_stream **out);

/* Drives the handshake as far as the socket allows: IROH_OK once it is complete (again
 * IROH_OK on later calls), 1 when it must wait for the socket (poll for
 * ir_tls_stream_poll_events, then call again), or a negative error with iroh_last_error
 * set: IROH_ERR_HANDSHAKE for a certificate that is rejected ("relay certificate for
 * NAME rejected: not trusted: signer not found", "...: name mismatch", expired, ...), an
 * alert from the server, the server closing the connection or not speaking TLS;
 * IROH_ERR_IO when the socket fails. After an error the stream can only be freed. */
int ir_tls_stream_handshake(ir_tls_stream *s);

/* After the handshake: > 0 plaintext bytes read into buf, 0 at the end of the stream
 * (close_notify, or TCP EOF without it: relay frames delimit themselves; after the
 * latter, read keeps returning 0 and write fails with IROH_ERR_CONNECTION_CLOSED),
 * IR_TLS_STREAM_AGAIN when nothing can be read now, or an error (IROH_ERR_IO,
 * IROH_ERR_HANDSHAKE for a TLS error or alert, IROH_ERR_STATE before the handshake is
 * complete or after an error) with iroh_last_error. After IR_TLS_STREAM_AGAIN, read
 * ir_tls_stream_pending first (normally 0), then poll. */
ssize_t ir_tls_stream_read(ir_tls_stream *s, uint8_t *buf, size_t len);

/* After the handshake: > 0 bytes of buf accepted (possibly fewer than len, at most one
 * TLS record), IR_TLS_STREAM_AGAIN when the socket is full: the data is held inside
 * and the caller must call again with the same buf and len once
 * ir_tls_stream_poll_events asks for POLLOUT; otherwise an error as for read. len 0
 * returns 0. */
ssize_t ir_tls_stream_write(ir_tls_stream *s, const uint8_t *buf, size_t len);

/* What the stream waits for from the socket, POLLIN and/or POLLOUT: during the handshake
 * the direction GnuTLS is blocked in (POLLOUT before the first call); after it POLLIN,
 * plus POLLOUT while a write (or a TLS message the stream must send) is held after
 * IR_TLS_STREAM_AGAIN. 0 after an error. */
short ir_tls_stream_poll_events(const ir_tls_stream *s);

/* Plaintext bytes already decrypted and held inside the stream (a read returns them
 * without touching the socket): read them before polling again. */
size_t ir_tls_stream_pending(const ir_tls_stream *s);

/* Keying material exporter (RFC 5705 for TLS 1.2, RFC 8446 7.5 for TLS 1.3) after the
 * handshake: fills out[out_len] from label and context (relay.md 2.3: label
 * "iroh-relay handshake v1", the 32-byte public key as context, 32 bytes out). The same
 * inputs give the same bytes on both ends of the connection. IROH_OK, or
 * IROH_ERR_STATE before the handshake, IROH_ERR_INVALID_ARGUMENT, IROH_ERR_HANDSHAKE. */
int ir_tls_stream_export(ir_tls_stream *s, const char *label, const uint8_t *context,
                         size_t context_len, uint8_t *out, size_t out_len);

/* Sends close_notify if the handshake completed and no error happened (best effort: one
 * non-blocking attempt), then frees the session. The socket is left open. NULL is fine. */
void ir_tls_stream_free(ir_tls_stream *s);

#endif
