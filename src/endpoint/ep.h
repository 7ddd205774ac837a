/* The endpoint: a thin shell (UDP sockets, recvmmsg/sendmmsg/GSO, poll, the relay links,
 * the home relay and QUIC address discovery) around the sans-IO endpoint core
 * (endpoint/ep_core.h: connections, routing, Retry, resets, version negotiation),
 * driven by ir_ep_poll from one thread. The public API (iroh.h) runs this on its I/O
 * thread; the iroh-c command drives it directly. */
#ifndef IR_ENDPOINT_EP_H
#define IR_ENDPOINT_EP_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#include "iroh.h"
#include "quic/conn.h"
#include "endpoint/netreport.h"

typedef struct ir_ep ir_ep;

typedef struct ir_ep_config {
    iroh_secret_key key;
    /* ALPNs accepted from clients, by preference; none: the endpoint accepts nothing */
    const uint8_t *const *alpns;
    const size_t *alpn_lens;
    size_t n_alpns;
    /* bind addresses; family 0 = not used. Neither given: 0.0.0.0:0 and [::]:0 (the
     * latter only where the host has IPv6) */
    iroh_socket_addr bind4, bind6;
    uint64_t keep_alive_ns; /* 0: iroh's 5 s */
    int retry;              /* validate client addresses with a Retry before any state */
    size_t max_connections; /* new incoming connections are dropped at this many; 0: no limit */
    /* Incoming handshakes (half-open: inbound, handshake not complete, state not yet
     * freed). From retry_above of them on, a new client must come back with a Retry token;
     * at half_open_max, new clients are dropped; a handshake not complete after
     * handshake_timeout_ms ends. 0: the defaults (IR_EP_RETRY_ABOVE, IR_EP_HALF_OPEN_MAX,
     * IR_EP_HANDSHAKE_TIMEOUT_MS) */
    size_t retry_above, half_open_max;
    uint64_t handshake_timeout_ms;
    /* transport limits; 0 = iroh's default */
    uint32_t max_streams_bidi, max_streams_uni, stream_window, max_stream_window,
        max_datagram_frame;
    uint64_t idle_timeout_ms; /* 0: iroh's 30 s */
    /* relays (normalized URLs): the home relay is chosen among them by latency */
    const char *const *relay_urls;
    size_t n_relays;
    const char *relay_token; /* NULL or a Bearer token sent to every relay */
    int relays_disabled;     /* relay URLs in peers' addresses are ignored too */
    const char *relay_ca_file; /* https relays: trust these PEM certificates instead of the
                                  system store; NULL: the system store */
    /* QUIC address discovery (spec relay.md 4.3), client side: learn our public address
     * from the home relay (https relays only: its certificate is checked) on UDP qad_port
     * (0: 7842) */
    int qad_client;
    uint16_t qad_port;
    /* the net report (netreport.h) over the configured relays: QAD probes (https relays,
     * on qad_port), HTTPS /ping latency, the captive-portal check (unless
     * no_captive_check) */
    int net_report;
    int no_captive_check;
    /* ... and the relay's side: an X.509 identity (PEM certificate chain and key) instead
     * of the raw public key, ALPN /iroh-qad/0, no streams, each client's address reported */
    const char *x509_cert_file, *x509_key_file;
    int qad_server;
    /* addresses the user says we can be reached at (iroh's add_external_addr), added to
     * the candidates and tickets (ep_core.h); copied */
    const iroh_socket_addr *external_addrs;
    size_t n_external;
    /* transport parameters offered for holepunching: 0 neither (plain QUIC), 1
     * initial_max_path_id (multipath), 2 that and n0 NAT traversal */
    int holepunching;
} ir_ep_config;

#define IR_EP_MAX_RELAYS 8
#define IR_EP_RETRY_ABOVE 64
#define IR_EP_HALF_OPEN_MAX 256
#define IR_EP_HANDSHAKE_TIMEOUT_MS 10000

int ir_ep_new(const ir_ep_config *cfg, ir_ep **out);
void ir_ep_free(ir_ep *ep);

const iroh_endpoint_id *ir_ep_id(const ir_ep *ep);
/* The endpoint's direct addresses for tickets (ir_epc_addrs: the sockets' addresses or,
 * bound to an unspecified address, the interfaces', the public address found by QUIC
 * address discovery, the configured external ones). */
size_t ir_ep_addrs(const ir_ep *ep, iroh_socket_addr *out, size_t max);
/* The candidates the connections are given (ir_epc_local_addrs). */
size_t ir_ep_local_addrs(const ir_ep *ep, iroh_socket_addr *out, size_t max);
/* User-configured addresses on a live endpoint (ir_epc_add_external / _remove_external:
 * IROH_OK or an IROH_ERR_*; remove: 1 removed, 0 not there). */
int ir_ep_add_external_addr(ir_ep *ep, const iroh_socket_addr *a);
int ir_ep_remove_external_addr(ir_ep *ep, const iroh_socket_addr *a);
/* Network changes. The shell reads the interfaces at start and whenever the kernel reports
 * an address or link change (rtnetlink; without it every 5 s); ir_ep_network_change reads
 * them now. ir_ep_rebind opens new sockets on the addresses first asked for (port 0: a
 * new port), closes the old ones, updates the candidates, and moves every connection to
 * a fresh connection id of the peer, so that the peer validates the new address at
 * once. IROH_OK or IROH_ERR_IO (the old sockets stay for those not rebound). */
void ir_ep_network_change(ir_ep *ep);
int ir_ep_rebind(ir_ep *ep);

/* Starts a connection to addr's direct addresses with one ALPN. The connection belongs to
 * the endpoint; release it with ir_ep_release when done. */
int ir_ep_connect(ir_ep *ep, const iroh_endpoint_addr *addr, const uint8_t *alpn,
                  size_t alpn_len, ir_conn **out);
/* The same offering several ALPNs, by preference (the server picks by its own). */
int ir_ep_connect_alpns(ir_ep *ep, const iroh_endpoint_addr *addr, const uint8_t *const *alpns,
                        const size_t *alpn_lens, size_t n_alpns, ir_conn **out);

/* Addresses found by a lookup after c began: new paths (Backup) to those that are none
 * of c's yet, with multipath; returns how many were opened (ep.c). */
int ir_ep_add_candidates(ir_ep *ep, ir_conn *c, const iroh_endpoint_addr *addr, uint64_t now);

/* Waits up to timeout_ms (-1: until something happens) for datagrams, timers or the extra
 * descriptors, and processes what is due; sends what the connections have queued.
 * Returns the number of extra descriptors ready (their revents set), or -1. */
int ir_ep_poll(ir_ep *ep, int timeout_ms, struct pollfd *extra, size_t nextra);

/* The same in two halves, for a loop that polls other descriptors itself (the I/O
 * thread of the public API): ir_ep_prepare fills at most IR_EP_MAX_FDS entries of pf
 * with the sockets, returns their count, and lowers *timeout_ms (-1 = none) to the next
 * timer; after poll(2), ir_ep_process handles what is ready and due. */
#define IR_EP_MAX_FDS (4 + IR_EP_MAX_RELAYS) /* sockets, relay links, netlink, net report */
int ir_ep_prepare(ir_ep *ep, struct pollfd *pf, int *timeout_ms);
void ir_ep_process(ir_ep *ep, const struct pollfd *pf);

/* ir_ep_process in its steps, for a caller that wants its lock only around the core
 * (the datagram routing and the connections, endpoint/ep_core.h):
 *   ir_ep_read(ep, i)      system calls only: one recvmmsg of up to 32 datagrams from
 *                          socket i (pf[i] of ir_ep_prepare) into the shell's buffers;
 *                          returns how many the kernel gave (32: read again)
 *   ir_ep_deliver(ep, now) the core: those datagrams routed and processed (decryption,
 *                          connection state; Retry/reset/VN answers are sent from here)
 * Relay links and timers: the rest of ir_ep_process. */
#define IR_EP_READ_MAX 32
int ir_ep_read(ir_ep *ep, int i);
void ir_ep_deliver(ir_ep *ep, uint64_t now);
/* The sockets are pf[0 .. ir_ep_socket_count - 1] of ir_ep_prepare; ir_ep_process_rest is
 * ir_ep_process after the caller read and delivered them itself (relay links, timers). */
int ir_ep_socket_count(const ir_ep *ep);
void ir_ep_process_rest(ir_ep *ep, const struct pollfd *pf);

/* Sends without the caller's lock. While deferral is on (ir_ep_defer_sends(ep, 1), for the
 * caller's own ir_ep_prepare), the UDP datagrams the core hands out are copied into a queue
 * (up to IR_EP_SENDQ_MAX bytes; beyond that, and relayed ones, go out at once);
 * ir_ep_send_deferred sends the queue and returns how many batches it sent: system calls
 * only, so one thread may call it without the lock as long as deferral is off meanwhile
 * (other threads' flushes then send directly and never touch the queue) and nobody
 * frees the endpoint. */
#define IR_EP_SENDQ_MAX (1024 * 1024)
void ir_ep_defer_sends(ir_ep *ep, int on);
int ir_ep_send_deferred(ir_ep *ep);

/* Sends whatever the connections have ready (call after writing to streams). */
void ir_ep_flush(ir_ep *ep);

/* Connections the peer opened since the last call, one at a time; NULL if none. */
ir_conn *ir_ep_accept(ir_ep *ep);

/* All live connections (for event polling). */
size_t ir_ep_conn_count(const ir_ep *ep);
ir_conn *ir_ep_conn_at(const ir_ep *ep, size_t i);

/* Forgets and frees a connection (closing it first, without waiting, if still open). */
void ir_ep_release(ir_ep *ep, ir_conn *c);
/* The same; with quiet set nothing is sent (an "ignored" incoming connection). */
void ir_ep_release_quiet(ir_ep *ep, ir_conn *c, int quiet);
/* The address a connection started with: 0 and *out for a direct one; 1 and *relay_url
 * (the relay's URL, valid while the endpoint lives) for a relayed one; -1 if unknown. */
int ir_ep_conn_remote(const ir_ep *ep, const ir_conn *c, iroh_socket_addr *out,
                      const char **relay_url);
/* The same for any path address. */
int ir_ep_path_info(const ir_ep *ep, const ir_netaddr *a, iroh_socket_addr *out,
                    const char **relay_url);

/* The home relay's URL once connected to it, else NULL (valid while the endpoint lives). */
const char *ir_ep_home_relay(const ir_ep *ep);
/* 1 and a relay that is wanted but not connected, with the reason of its last failure;
 * 0 if there is none. */
int ir_ep_relay_problem(const ir_ep *ep, const char **url, const char **why);
/* The number of relays configured. */
size_t ir_ep_relay_count(const ir_ep *ep);

/* The net report: the last complete report (NULL: none yet, or no net report), its
 * generation (0: none), the relays' URLs (urls: IR_EP_MAX_RELAYS entries, valid while
 * the endpoint lives) and their number; the report's relay indexes refer to them. */
const ir_nr_report *ir_ep_net_report(const ir_ep *ep, uint64_t *generation, const char **urls,
                                     size_t *n);
/* The net report's QAD probes (netreport_shell.c): an internal connection to ip (its
 * port replaced by the QAD port) checked for host's certificate; closed and freed by
 * ir_ep_qad_probe_close. */
int ir_ep_qad_probe_open(ir_ep *ep, const char *host, const iroh_socket_addr *ip, uint64_t now,
                         ir_conn **out);
void ir_ep_qad_probe_close(ir_ep *ep, ir_conn *c, uint64_t now);

/* What became of datagrams that would have started a connection. */
typedef struct ir_ep_counters {
    uint64_t initials_undecryptable; /* did not open under their DCID's Initial keys */
    uint64_t retries_sent;           /* answered with a Retry (configured or load) */
    uint64_t bad_tokens;             /* a token that is not a valid Retry token of ours */
    uint64_t initials_full;          /* dropped: half_open_max or max_connections reached */
    uint64_t incoming;               /* connections started */
    size_t half_open;                /* now */
    uint64_t trims;                  /* malloc_trim calls after bursts of frees */
} ir_ep_counters;
void ir_ep_get_counters(const ir_ep *ep, ir_ep_counters *out);

/* What the shell counts for the endpoint's metrics (iroh's socket metrics group, see
 * api_obs.c): UDP payload bytes by family and relayed datagram bytes, each way; QUIC
 * datagrams received; home relay changes (the first choice included); relay links that
 * came up; interface change events read. Kept with relaxed atomics: the deferred sends
 * run without the caller's lock. */
typedef struct ir_ep_metrics {
    uint64_t send_ipv4, send_ipv6, send_relay;
    uint64_t recv_data_ipv4, recv_data_ipv6, recv_data_relay;
    uint64_t recv_datagrams;
    uint64_t relay_home_change;
    uint64_t relay_conns_success, relay_conns_failed, relay_conns_closed;
    uint64_t link_change;
} ir_ep_metrics;
void ir_ep_get_metrics(const ir_ep *ep, ir_ep_metrics *out);


uint64_t ir_now_ns(void);

/* Test hook for the fuzzer: hands one datagram to the endpoint's demux (routing by CID,
 * Retry, stateless resets, version negotiation, new connections) as if it had been read
 * from a socket; data may be modified. Replies still go out through the sockets. */
void ir_ep_inject_datagram(ir_ep *ep, const ir_netaddr *from, uint8_t *data, size_t len,
                           uint64_t now);

#endif
