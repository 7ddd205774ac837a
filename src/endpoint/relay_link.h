/* One relay server as the endpoint sees it (spec relay.md 1, 3.3, 6): a WebSocket over
 * TCP (TLS for https/wss URLs) to the URL's /relay, run by the sans-IO relay client
 * (relay/client.h), with name resolution, reconnection with backoff, a short queue for
 * datagrams sent while it is (re)connecting, and the latency of its keepalive pings.
 *
 * Driven from the endpoint's I/O loop like the UDP sockets: ir_rlink_pollfd gives the
 * descriptor and events to wait for, ir_rlink_timeout the next deadline, and
 * ir_rlink_process does what is due and hands received datagrams to the callback.
 *
 * This file is the I/O shell (name resolution on a thread, TCP, TLS); the state machine
 * (relay client, backoff, queue, unused close, latency) is relay_link_core.h, which the
 * simulator drives over virtual streams.
 *
 * Relay paths in QUIC: a datagram from or to a peer through relay link `idx` has the
 * ir_netaddr { len 35, data = 'R', idx (u16 BE), EndpointId (32) }. */
#ifndef IR_ENDPOINT_RELAY_LINK_H
#define IR_ENDPOINT_RELAY_LINK_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#include "endpoint/relay_link_core.h" /* the state machine; ir_rlink_recv_fn */
#include "iroh.h"
#include "quic/conn.h"

#define IR_NETADDR_RELAY 'R'
#define IR_NETADDR_RELAY_LEN 35

void ir_netaddr_relay(ir_netaddr *out, unsigned idx, const uint8_t id[32]);
/* 1 and the link index / peer id if a is a relay path, else 0. */
int ir_netaddr_is_relay(const ir_netaddr *a, unsigned *idx, const uint8_t **id);

typedef struct ir_rlink ir_rlink;

typedef struct ir_rlink_config {
    const char *url;               /* a normalized relay URL */
    unsigned idx;                  /* the endpoint's index for it (in relay netaddrs) */
    iroh_secret_key key;           /* our identity, for the relay handshake */
    const char *auth_token;        /* NULL or a Bearer token */
    const char *ca_file;           /* TLS: NULL for the system trust store */
    int insecure_skip_verify;      /* TLS: tests only */
    ir_rlink_recv_fn recv;
    void *recv_ctx;
} ir_rlink_config;

/* IROH_ERR_INVALID_ADDR for a URL it cannot dial. Nothing happens until ir_rlink_want. */
int ir_rlink_new(const ir_rlink_config *cfg, ir_rlink **out);
void ir_rlink_free(ir_rlink *l);

const char *ir_rlink_url(const ir_rlink *l);

/* Keep the link connected (reconnecting with backoff) from now on; it is closed once
 * unused for 60 s unless kept for good. forever: 1 keep it for good (the home relay),
 * -1 no longer, 0 no change. */
void ir_rlink_want(ir_rlink *l, int forever, uint64_t now);

/* Queues datagrams to peer dst: len bytes in pieces of seg bytes (the last may be
 * shorter; seg >= len: one datagram). Before the link is up they wait (at most 3 s and
 * 64 datagrams); beyond that, or when the relay's queue is full, they are dropped, as UDP
 * would. Starts connecting if needed. */
void ir_rlink_send(ir_rlink *l, const uint8_t dst[32], const uint8_t *data, size_t len,
                   size_t seg, uint64_t now);

/* 1 if it has a descriptor to wait on (pf->fd and pf->events set). */
int ir_rlink_pollfd(const ir_rlink *l, struct pollfd *pf);
/* The next deadline (ns), 0 for none. */
uint64_t ir_rlink_timeout(const ir_rlink *l);
/* Handles readiness (revents of its descriptor, 0 if none) and deadlines. */
void ir_rlink_process(ir_rlink *l, short revents, uint64_t now);

/* 1 once authenticated by the relay and its first keepalive Pong arrived. */
int ir_rlink_established(const ir_rlink *l);
/* Latency (ns) of the last keepalive round trip; 0 if none yet. */
uint64_t ir_rlink_latency(const ir_rlink *l);
/* Why the last attempt failed ("" if none). */
const char *ir_rlink_last_error(const ir_rlink *l);
/* The relay's host (as in the URL, without brackets) and whether the link uses TLS. */
const char *ir_rlink_host(const ir_rlink *l);
int ir_rlink_is_tls(const ir_rlink *l);
/* The address of the relay the link is connected to: 0, or -1 when not connected. */
int ir_rlink_remote_ip(const ir_rlink *l, iroh_socket_addr *out);
/* Times the link came up (authenticated); for tests and stats. */
uint64_t ir_rlink_connects(const ir_rlink *l);
/* ir_rlc_counts */
void ir_rlink_counts(const ir_rlink *l, uint64_t *failures, uint64_t *closes);

#endif
