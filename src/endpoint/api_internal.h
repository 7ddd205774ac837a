/* What the public API's files share (api.c: endpoints, connections, streams; api_path.c:
 * addresses and paths): the handles' structures. Internal to src/endpoint. */
#ifndef IR_ENDPOINT_API_INTERNAL_H
#define IR_ENDPOINT_API_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "endpoint/ep.h"
#include "endpoint/ep_core.h"
#include "endpoint/lookup.h"
#include "iroh.h"

#define MAX_ALPNS 16
#define DEFAULT_CONNECT_TIMEOUT_MS 10000
/* connections whose handshake completed wait for iroh_endpoint_accept; beyond this many
 * new ones are refused (CONNECTION_REFUSED), as a listen(2) backlog */
#define ACCEPT_BACKLOG 128

struct iroh_endpoint_builder {
    iroh_secret_key key;
    char *alpns[MAX_ALPNS];
    size_t n_alpns;
    iroh_socket_addr bind4, bind6;
    uint32_t keep_alive_ms, idle_timeout_ms, connect_timeout_ms;
    int retry;
    uint32_t max_bidi, max_uni, window, max_window, max_dgram;
    iroh_accept_filter filter;
    void *filter_ctx;
    iroh_event_callback event_cb;
    void *event_ctx;
    iroh_relay_mode relay_mode;
    char *relays[IR_EP_MAX_RELAYS];
    size_t n_relays;
    char *relay_token;
    char *relay_ca_file;
    int relay_quic_port; /* QUIC address discovery port of https relays; -1: 7842 */
    int holepunching;    /* 0, 1, 2; -1: IROH_C_HOLEPUNCHING */
    int net_report;      /* IROH_NET_REPORT_*; builder_new sets ON */
    iroh_socket_addr external[IR_EPC_MAX_EXTERNAL]; /* iroh_endpoint_builder_external_addr */
    size_t n_external;
    ir_lookup_config lookup; /* address lookup (lookup_api.c) */
};

/* what a blocked call waits for (waiter.kind) */
enum {
    W_READ = 1 << 0,     /* data, the end or a reset on stream `id` */
    W_WRITE = 1 << 1,    /* room in stream `id`'s send buffer, or the peer's STOP_SENDING */
    W_FLUSHED = 1 << 2,  /* the sending of stream `id` settled (acknowledged, stopped, reset) */
    W_OPEN = 1 << 3,     /* the peer allows more streams */
    W_ACCEPT = 1 << 4,   /* the peer opened a stream */
    W_DATAGRAM = 1 << 5, /* a datagram arrived */
    W_STATE = 1 << 6,    /* the handshake completed or the connection closed */
    W_INCOMING = 1 << 7, /* (endpoint) a connection joined the accept queue */
    W_ONLINE = 1 << 8,   /* (endpoint) the home relay connected */
    W_ADDR = 1 << 9,     /* (endpoint) the own address changed (api_obs.c) */
    W_NET_REPORT = 1 << 10, /* (endpoint) a new net report */
};
#define W_STREAM (W_READ | W_WRITE | W_FLUSHED)

/* one blocked call, on its thread's stack, in a list of its connection or endpoint */
typedef struct waiter {
    struct waiter *prev, *next;
    pthread_cond_t cv;
    unsigned kind;
    uint64_t id;        /* the stream, for the W_STREAM kinds */
    const void *handle; /* the stream handle it blocks on (its free, stop or reset wakes it) */
} waiter;

/* per-connection state kept by the API layer */
struct iroh_connection {
    iroh_endpoint *ep;
    ir_conn *c;
    int inbound;
    int refs;          /* the application's handle + its stream handles not yet released */
    int users;         /* threads inside a blocking call on the connection */
    int handle_freed;  /* the application freed the connection handle (inbound: set
                          until accept hands it out, since nobody owns it before) */
    int queued;        /* waiting in the endpoint's accept queue */
    struct iroh_connection *next_queued;
    int timeout_ms;    /* time limit of open_bi / open_uni; -1: none */
    int connected;     /* handshake complete */
    int endpoint_closed_it; /* still open when iroh_endpoint_close closed it */
    iroh_endpoint_id peer;
    uint64_t accepted[2]; /* the peer's streams handed out by accept, [0] bidi, [1] uni */
    waiter *waiters;      /* calls blocked on the connection or one of its streams */
    uint64_t hints_dropped; /* the core's count when the I/O thread last looked */
    int close_seen;       /* the I/O thread woke the waiters for the close */
    uint64_t started_ns;  /* the handshake began (connect call, or the first packet) */
    struct connect_lookup *late; /* the lookup that dialed it by id, while it goes on
                                    (api.c): cleared on either side's end (ep->mu) */
    int sel_known;        /* the selected path the last PATH_SELECTED event named */
    uint64_t sel_id;
    ir_netaddr sel_addr;
    int obs_opened;       /* counted in the metrics as opened (api_obs.c) */
    int obs_direct;       /* ... and as direct (a direct path was selected once) */
};

/* what both kinds of stream handle share (their first member) */
typedef struct stream_handle {
    iroh_connection *conn;
    uint64_t id;
    int users; /* threads inside a call on the stream */
    int freed; /* the application freed it: released when the last user leaves */
    int timeout_ms; /* time limit of each blocking call (flushed has its own); -1: none */
    int held;       /* a send handle: the connection keeps how the sending ended for it */
} stream_handle;

struct iroh_send_stream {
    stream_handle h;
    int finished, reset;
    int writers; /* threads inside write / write_all: a free meanwhile cuts them short */
};

struct iroh_recv_stream {
    stream_handle h;
    int ended;   /* its end (FIN) was read */
    int stopped; /* we stopped it before its end: reads fail */
    uint64_t reset_code;
};

struct iroh_incoming {
    iroh_connection *conn;
};

struct iroh_endpoint {
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* only for iroh_endpoint_close / _free (close_done, users) */
    pthread_condattr_t cva; /* CLOCK_MONOTONIC, for the waiters' condition variables */
    /* held by the I/O thread while it sends its deferred datagrams without `mu`, and by a
     * thread that sends directly what must not overtake them (the endpoint close's
     * CONNECTION_CLOSEs after the last ACKs); taken after `mu`, never before */
    pthread_mutex_t send_mu;
    waiter *waiters;        /* accept and online */
    ir_ep *ep;
    iroh_endpoint_id id;
    pthread_t io;
    int io_started;
    int wake_fd;
    int stop;
    int closed;     /* iroh_endpoint_close has begun */
    int close_done; /* ... and finished */
    int users;      /* threads inside blocking calls (iroh_endpoint_free waits for them) */
    uint32_t connect_timeout_ms;
    iroh_accept_filter filter;
    void *filter_ctx;
    iroh_event_callback event_cb;
    void *event_ctx;
    uint64_t nr_generation; /* the net report's last generation told (api_netreport.c) */
    iroh_connection **conns;
    size_t nconns, capconns;
    /* inbound connections whose handshake completed (and that the accept filter let
     * through), in order, for iroh_endpoint_accept: a list through the handles, so
     * queueing never allocates */
    iroh_connection *queue_head, *queue_tail;
    size_t nqueued;
    int backlog_warned; /* said once that the backlog is full (again once it drained) */
    ir_lookup *lookup;  /* address lookup: publishing and resolving (lookup_shell.c) */
    /* lookup events waiting for the I/O thread, which calls the application with them
     * (lookup_api.c); a ring, the oldest dropped when full */
    struct lookup_event {
        iroh_event_kind kind;
        iroh_endpoint_id peer;
        const char *service;
        uint64_t code, elapsed_us;
        iroh_socket_addr path;
        char relay[256];
    } lk_events[32];
    unsigned lk_head, lk_count;
    /* what the endpoint sees (api_obs.c): the own-address watcher's last look, the remote
     * table, the API's metric counters */
    uint64_t addr_gen;
    size_t addr_n;
    iroh_socket_addr addr_last[32];
    char addr_relay[256];
    struct ir_remotes *remotes;
    struct ir_api_counters {
        uint64_t conns_opened, conns_closed, conns_direct;
        uint64_t paths_direct, paths_relay;
        uint64_t ip_paths_added, ip_paths_removed, relay_paths_added, relay_paths_removed;
        uint64_t holepunch_closed; /* holepunching rounds of connections now closed */
    } mc;
};

/* ---- api.c for api_path.c ---------------------------------------------------------------- */

/* wakes the I/O thread (something to send) */
void ir_api_wake(iroh_endpoint *ep);

/* ---- api_path.c -------------------------------------------------------------------------- */

/* the path application data goes out on (ir_conn_paths' sending one, else the first
 * open one): 1 and *out, 0 if none */
int ir_api_selected_path(const ir_conn *c, ir_conn_path_info *out);
/* after a round's events: a PATH_SELECTED event if the selected path changed since the
 * last one (the first once connected) */
void ir_api_check_selected(iroh_endpoint *ep, iroh_connection *h);

/* The I/O thread, for each path event of a connection (IR_EV_PATH_*): the public event
 * and, for the selected path, the handle's record of it. */
void ir_api_path_event(iroh_endpoint *ep, iroh_connection *h, const ir_event *ev);
/* The builder's external addresses into an endpoint configuration. */
void ir_api_builder_externals(const iroh_endpoint_builder *b, ir_ep_config *cfg);

/* ---- api_obs.c: watchers, remote info, metrics (the endpoint's mutex held) ---------------- */

/* The I/O thread after each round: the own address compared with the last look; on a
 * change (returns 1) IROH_EVENT_ADDR_CHANGED and the lookup's publisher told. */
int ir_api_obs_round(iroh_endpoint *ep);
/* What an address given to connect (IROH_ADDR_SOURCE_APP) or found by a lookup
 * (IROH_ADDR_SOURCE_LOOKUP, service) says of its peer, into the remote table. */
void ir_api_remote_note_addr(iroh_endpoint *ep, const iroh_endpoint_addr *a, unsigned source,
                             const char *service);
/* The I/O thread, for each connection event: its paths into the remote table, the
 * metrics' counters (kind: IR_EV_CONNECTED, IR_EV_CLOSED, IR_EV_PATH_OPENED,
 * IR_EV_PATH_ABANDONED; 0 for path news without a count). */
void ir_api_obs_conn(iroh_endpoint *ep, iroh_connection *h, int kind, uint64_t path_id);
/* iroh_endpoint_free: the remote table goes. */
void ir_api_obs_free(iroh_endpoint *ep);

/* ---- lookup_api.c ------------------------------------------------------------------------ */

/* A lookup event (lookup_shell.c, without the endpoint's mutex): queued for the I/O
 * thread. a: what a LOOKUP_FOUND found (its first direct address and its relay). */
void ir_api_lookup_event(iroh_endpoint *ep, iroh_event_kind kind, const iroh_endpoint_id *peer,
                         const char *service, uint64_t code, const iroh_endpoint_addr *a,
                         uint64_t elapsed_us);
/* The I/O thread (the endpoint's mutex held): the queued lookup events to the callback. */
void ir_api_lookup_dispatch(iroh_endpoint *ep);
/* IROH_EVENT_NET_REPORT when the net report's generation grew (api_netreport.c); on the
 * I/O thread with ep->mu held */
void ir_api_net_report_dispatch(iroh_endpoint *ep);
/* iroh_endpoint_bind, once the I/O thread runs: the builder's lookups start (none
 * configured: ep->lookup stays NULL). */
int ir_api_lookup_start(iroh_endpoint *ep, const iroh_endpoint_builder *b);

#endif
