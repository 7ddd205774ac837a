/* The blocking network steps of address lookup, each run on a job thread of the lookup
 * shell (lookup_shell.c), never on the endpoint's I/O thread: an HTTP request to the
 * pkarr relay (lookup_http.c) and one DNS exchange, UDP then TCP when truncated
 * (lookup_dnsio.c). Each is bounded by a deadline (ns, ir_now_ns) and ends early when
 * *stop becomes non-zero. */
#ifndef IR_ENDPOINT_LOOKUP_JOBS_H
#define IR_ENDPOINT_LOOKUP_JOBS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "dns/endpoint_info.h"
#include "endpoint/lookup.h"
#include "iroh.h"

/* getaddrinfo(host, port (0: none), hints of socktype and flags) on a thread of its own,
 * so that the caller gives up at the deadline or when *stop (may be NULL) is set while the
 * system's resolver still waits for its servers (lookup_http.c): 0 and *res
 * (freeaddrinfo), an EAI_* code (EAI_AGAIN also when the deadline passed), or -1 when
 * stop was set. */
struct addrinfo;
int ir_lookup_getaddrinfo(const char *host, uint16_t port, int socktype, int flags,
                          uint64_t deadline, const atomic_int *stop, struct addrinfo **res);
/* Waits until fd is ready for events: 1, or 0 when the deadline passed or *stop (may be
 * NULL) became non-zero, looked at every 50 ms. */
int ir_lookup_wait_fd(int fd, short events, uint64_t deadline, const atomic_int *stop);
/* A TCP connection (non-blocking socket, TCP_NODELAY) to ss within the deadline: IROH_OK
 * and *fd, or IROH_ERR_IO / IROH_ERR_TIMEOUT with the reason in why (no detail set). */
int ir_lookup_tcp_connect(const struct sockaddr_storage *ss, socklen_t len, uint64_t deadline,
                          const atomic_int *stop, int *fd, char *why, size_t whylen);

/* a pkarr answer is at most 1104 bytes; error bodies are short JSON */
#define IR_LOOKUP_HTTP_MAX_BODY 4096

typedef struct ir_lookup_http_answer {
    int status;
    size_t len;
    uint8_t body[IR_LOOKUP_HTTP_MAX_BODY];
} ir_lookup_http_answer;

/* method url with body (body_len 0: none) over http:// or https:// (certificates checked
 * against ca_file, or the system's store when NULL). IROH_OK with the answer's status
 * and body (any status), or IROH_ERR_IO / _TIMEOUT / _HANDSHAKE / _TOO_LONG (a body
 * over IR_LOOKUP_HTTP_MAX_BODY) / _INVALID_ADDR with iroh_last_error. */
int ir_lookup_http(const char *url, const char *method, const uint8_t *body, size_t body_len,
                   const char *ca_file, uint64_t deadline, const atomic_int *stop,
                   ir_lookup_http_answer *ans);

/* The answer's reading, sans-IO (ir_lookup_http uses it; the fuzz target too): feed the
 * bytes as they come: 0 more needed, 1 complete (ans holds status and body; bytes after
 * the body are ignored), < 0 an error with a detail (a head over 16 KiB or malformed, a
 * bad Content-Length, Transfer-Encoding, a body over IR_LOOKUP_HTTP_MAX_BODY). At the end
 * of the connection _eof: 1 when the answer is complete (a body without Content-Length
 * ends there), else an error. */
#include "relay/http.h"
typedef struct ir_lookup_http_reader {
    ir_http_reader head;
    int state; /* 0 head, 1 body, 2 done, 3 failed */
    long clen; /* Content-Length; -1: to the end of the connection */
    ir_lookup_http_answer *ans;
} ir_lookup_http_reader;
void ir_lookup_http_reader_init(ir_lookup_http_reader *r, ir_lookup_http_answer *ans);
int ir_lookup_http_reader_feed(ir_lookup_http_reader *r, const uint8_t *data, size_t len);
int ir_lookup_http_reader_eof(ir_lookup_http_reader *r);

/* A pkarr relay's answer to GET <base>/<z32 of id> (spec 4.3): 1 and *out when it is a
 * 200 with a signed packet that verifies for id and names a relay or an address, 0 when
 * it says nothing (404, an empty record), < 0 when it is bad (another status, a packet
 * that does not verify or parse) with a detail. */
int ir_lookup_pkarr_answer(const uint8_t id[32], const ir_lookup_http_answer *ans,
                           ir_endpoint_info *out);

/* The nameservers of /etc/resolv.conf (path: another file, for tests), port 53, at most
 * cap; none found: 127.0.0.1:53 as the C library does. Returns how many. */
size_t ir_lookup_resolv_conf(const char *path, iroh_socket_addr *out, size_t cap);

/* One DNS exchange with server: the query over UDP (from a fresh connected socket: a
 * random port, only the server's datagrams), again over TCP when the response is
 * truncated. classify says what a datagram is: < 0 not the response to this query (it is
 * ignored and the wait goes on), 0 the response, 1 the response with TC set. IROH_OK and
 * *len bytes of the response in out, or IROH_ERR_TIMEOUT / _IO / _TOO_LONG. */
#define IR_LOOKUP_DNS_MAX 65535
typedef int (*ir_lookup_dns_classify)(void *ctx, const uint8_t *msg, size_t len);
int ir_lookup_dns_exchange(const iroh_socket_addr *server, const uint8_t *query, size_t qlen,
                           ir_lookup_dns_classify classify, void *ctx, uint64_t deadline,
                           const atomic_int *stop, uint8_t *out, size_t cap, size_t *len);

#endif
