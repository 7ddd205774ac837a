/* The public, blocking, thread-safe API of include/iroh.h on top of the endpoint core.
 *
 * One I/O thread per endpoint runs the core (ir_ep) under the endpoint mutex, releasing it
 * only while it sleeps in poll(2). Application threads take the same mutex, act on the
 * sans-IO connection state directly, and wake the I/O thread (an eventfd) when they queued
 * something to send.
 *
 * Keyed waits. A blocked call sleeps on a condition variable of its own (a `waiter` on its
 * stack), linked into the list of what it waits on: its connection's for a call on the
 * connection or one of its streams, the endpoint's for accept and online. What changes
 * something signals only the waiters concerned: the I/O thread after each round, from the
 * core's events (data on stream 4 wakes the reads of stream 4, a datagram the datagram
 * reads) and from state it looks at (a send settled, the connection closing, the home
 * relay); a call that frees, stops, resets or closes something wakes who waits on that.
 * Hints the core could not queue (out of memory) wake every waiter of that connection.
 *
 * Lifetimes. A thread inside a blocking call is a "user" of the handle it blocks on and of
 * the endpoint: freeing a handle marks it freed and wakes the waiters, who see the mark
 * and return IROH_ERR_CLOSED; the memory goes when the last user leaves. A stream handle
 * holds a reference on its connection until its memory goes, so the connection (and the
 * endpoint's core connection) outlive every thread still using one of its streams. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "endpoint/api_status.h"
#include "endpoint/ep.h"
#include "net/udp.h"
#include "tls/quic_errors.h"

#include "endpoint/api_internal.h"

/* n0's public relays (iroh 1.0's N0 preset, iroh/src/defaults.rs prod; spec section 6) */
static const char *const n0_relays[] = {
    "https://use1-1.relay.n0.iroh.link./",
    "https://usw1-1.relay.n0.iroh.link./",
    "https://euc1-1.relay.n0.iroh.link./",
    "https://aps1-1.relay.n0.iroh.link./",
};

/* ---- helpers ---------------------------------------------------------------------------- */

static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 8;
    void *p = realloc(*arr, nc * elem);
    if (!p)
        return -1;
    *arr = p;
    *cap = nc;
    return 0;
}

static void wake(iroh_endpoint *ep)
{
    uint64_t one = 1;
    ssize_t n = write(ep->wake_fd, &one, sizeof one);
    (void)n;
}

void ir_api_wake(iroh_endpoint *ep)
{
    wake(ep);
}

/* the time limit of one blocking call: ms < 0 means none */
typedef struct deadline {
    int ms;
    struct timespec at;
} deadline;

static deadline deadline_in(int ms)
{
    deadline d;
    d.ms = ms;
    clock_gettime(CLOCK_MONOTONIC, &d.at);
    if (ms > 0) {
        d.at.tv_sec += ms / 1000;
        d.at.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (d.at.tv_nsec >= 1000000000L) {
            d.at.tv_sec++;
            d.at.tv_nsec -= 1000000000L;
        }
    }
    return d;
}

/* Waits once (the endpoint's mutex held), linked into *list as a waiter of `kind` (and
 * stream id, handle): 0 when signalled (or spuriously: callers look again), or
 * IROH_ERR_TIMEOUT once the deadline has passed (the caller writes the detail). */
static int wait_on(iroh_endpoint *ep, waiter **list, unsigned kind, uint64_t id,
                   const void *handle, const deadline *d)
{
    waiter w;
    w.kind = kind;
    w.id = id;
    w.handle = handle;
    pthread_cond_init(&w.cv, &ep->cva);
    w.prev = NULL;
    w.next = *list;
    if (*list)
        (*list)->prev = &w;
    *list = &w;
    int rc = 0;
    if (d->ms < 0)
        pthread_cond_wait(&w.cv, &ep->mu);
    else if (pthread_cond_timedwait(&w.cv, &ep->mu, &d->at) == ETIMEDOUT)
        rc = IROH_ERR_TIMEOUT;
    if (w.prev)
        w.prev->next = w.next;
    else
        *list = w.next;
    if (w.next)
        w.next->prev = w.prev;
    pthread_cond_destroy(&w.cv);
    return rc;
}

/* wakes the waiters in list of any of `kinds` */
static void wake_kinds(waiter *list, unsigned kinds)
{
    for (waiter *w = list; w; w = w->next)
        if (w->kind & kinds)
            pthread_cond_signal(&w->cv);
}

/* ... of any of `kinds` on stream id */
static void wake_stream(waiter *list, unsigned kinds, uint64_t id)
{
    for (waiter *w = list; w; w = w->next)
        if ((w->kind & kinds) && w->id == id)
            pthread_cond_signal(&w->cv);
}

/* ... blocked on a stream handle */
static void wake_handle(waiter *list, const void *handle)
{
    for (waiter *w = list; w; w = w->next)
        if (w->handle == handle)
            pthread_cond_signal(&w->cv);
}

#define W_ALL (~0u)

/* every blocked call of the endpoint (it closes) */
static void wake_everyone(iroh_endpoint *ep)
{
    wake_kinds(ep->waiters, W_ALL);
    for (size_t i = 0; i < ep->nconns; i++)
        wake_kinds(ep->conns[i]->waiters, W_ALL);
}

/* A thread enters and leaves a blocking call of the endpoint (the mutex held):
 * iroh_endpoint_free waits until every such thread has left. */
static void ep_enter(iroh_endpoint *ep)
{
    ep->users++;
}

static void ep_leave(iroh_endpoint *ep)
{
    if (--ep->users == 0)
        pthread_cond_broadcast(&ep->cv);
}

static int endpoint_closed_error(void)
{
    return ir_fail(IROH_ERR_CLOSED, "the endpoint was closed");
}

/* the arguments of a call that takes a timeout_ms: its pointers (ok: none is NULL) and a
 * time limit of -1 (none) or more */
static int check_args(int ok, int timeout_ms)
{
    if (!ok)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    if (timeout_ms < -1)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "a time limit is -1 (none) or more, not %d",
                       timeout_ms);
    return IROH_OK;
}

/* A close code for messages: "application code 0x2a", or a transport code with its RFC
 * 9000 name, "transport code 0xa (PROTOCOL_VIOLATION)". */
static const char *close_code_text(const ir_close_info *ci, char *buf, size_t cap)
{
    const char *name = ci->application ? NULL : ir_qerr_name(ci->code);
    snprintf(buf, cap, "%s code 0x%llx%s%s%s", ci->application ? "application" : "transport",
             (unsigned long long)ci->code, name ? " (" : "", name ? name : "", name ? ")" : "");
    return buf;
}

/* A QUIC layer status (ir_quic_status) as the public error it stands for, with a detail
 * message; what: the operation, for the detail. */
static int quic_fail(long st, const char *what)
{
    switch (st) {
    case IR_QUIC_STREAM_STOPPED:
        return ir_fail(IROH_ERR_STREAM_STOPPED, "the peer stopped the stream");
    case IR_QUIC_NO_MEMORY:
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory (%s)", what);
    default:
        return ir_fail(ir_api_status_from_quic(st), "cannot %s now", what);
    }
}

static int conn_error(const iroh_connection *h)
{
    if (h->endpoint_closed_it) /* else how it ended before (a timeout, a code) stands */
        return ir_fail(IROH_ERR_CONNECTION_CLOSED, "the endpoint was closed");
    const ir_close_info *ci = ir_conn_close_info(h->c);
    if (ci->idle_timeout) /* "timed out: no packets from the peer for 30 s" */
        return ir_fail(IROH_ERR_CONNECTION_CLOSED, "%s", ci->reason);
    if (ci->reset)
        return ir_fail(IROH_ERR_CONNECTION_CLOSED, "connection reset by the peer");
    char code[80];
    return ir_fail(IROH_ERR_CONNECTION_CLOSED, "connection closed %s with %s%s%s",
                   ci->by_peer ? "by the peer" : "locally",
                   close_code_text(ci, code, sizeof code), ci->reason[0] ? ": " : "", ci->reason);
}

static int is_closed(const iroh_connection *h)
{
    return ir_conn_get_state(h->c) >= IR_CONN_CLOSING;
}

/* A call on a connection or one of its streams can go on waiting: IROH_OK, or the error
 * that ends it (the handle was freed, the connection closed). */
static int conn_check(const iroh_connection *h)
{
    if (h->handle_freed)
        return ir_fail(IROH_ERR_CLOSED, "the connection was freed");
    if (is_closed(h))
        return conn_error(h);
    return IROH_OK;
}

static int stream_check(const stream_handle *s)
{
    if (s->freed)
        return ir_fail(IROH_ERR_CLOSED, "the stream was freed");
    if (is_closed(s->conn))
        return conn_error(s->conn);
    return IROH_OK;
}

/* One wait of a blocking call on a connection or stream (kind, stream id and handle as
 * for wait_on): IROH_OK to check again, or IROH_ERR_TIMEOUT (what names the awaited thing
 * in the message). */
static int wait_conn(iroh_connection *h, unsigned kind, uint64_t id, const void *handle,
                     const deadline *d, const char *what)
{
    if (wait_on(h->ep, &h->waiters, kind, id, handle, d) != 0)
        return ir_fail(IROH_ERR_TIMEOUT, "%s within %d ms", what, d->ms);
    return IROH_OK;
}

/* the application's last reference to a connection is gone: close it as dropping it does
 * in iroh, and let the I/O thread free it once closed */
static void unref(iroh_connection *h)
{
    if (--h->refs > 0)
        return;
    if (!is_closed(h))
        ir_conn_close(h->c, 1, 0, "", ir_now_ns());
    wake(h->ep);
}

static void conn_enter(iroh_connection *h)
{
    h->users++;
    ep_enter(h->ep);
}

static void conn_leave(iroh_connection *h)
{
    iroh_endpoint *ep = h->ep;
    if (--h->users == 0 && h->refs == 0 && h->handle_freed)
        wake(ep); /* the I/O thread may free it now */
    ep_leave(ep);
}

static void stream_enter(stream_handle *s)
{
    s->users++;
    ep_enter(s->conn->ep);
}

/* the stream handle's memory goes, and with it its reference on the connection */
static void stream_release(stream_handle *s)
{
    iroh_connection *h = s->conn;
    if (s->held)
        ir_conn_stream_hold(h->c, s->id, 0);
    free(s);
    unref(h);
}

/* the handle may be gone when this returns */
static void stream_leave(stream_handle *s)
{
    iroh_endpoint *ep = s->conn->ep;
    if (--s->users == 0 && s->freed)
        stream_release(s);
    ep_leave(ep);
}

/* the application frees a stream handle: threads blocked on it wake and leave */
static void stream_free(stream_handle *s)
{
    s->freed = 1;
    if (s->users)
        wake_handle(s->conn->waiters, s);
    else
        stream_release(s);
}

/* ---- the I/O thread ---------------------------------------------------------------------- */

static void emit(iroh_endpoint *ep, iroh_event_kind kind, iroh_connection *h)
{
    if (!ep->event_cb)
        return;
    iroh_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = kind;
    ev.peer = h->peer;
    ev.inbound = h->inbound;
    ir_conn_path_info sel;
    if (ir_api_selected_path(h->c, &sel) &&
        ir_ep_path_info(ep->ep, &sel.addr, &ev.path, &ev.relay_url) < 0)
        memset(&ev.path, 0, sizeof ev.path);
    ev.elapsed_us = (ir_now_ns() - h->started_ns) / 1000;
    if (kind == IROH_EVENT_CLOSED) {
        const ir_close_info *ci = ir_conn_close_info(h->c);
        ev.code = ci->code;
        ev.by_peer = ci->by_peer;
    }
    ep->event_cb(ep->event_ctx, &ev);
}

static iroh_connection *new_handle(iroh_endpoint *ep, ir_conn *c, int inbound)
{
    if (grow((void **)&ep->conns, &ep->capconns, ep->nconns, sizeof *ep->conns) != 0)
        return NULL;
    iroh_connection *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->ep = ep;
    h->c = c;
    h->inbound = inbound;
    h->timeout_ms = -1;
    h->started_ns = ir_now_ns();
    ep->conns[ep->nconns++] = h;
    return h;
}

/* A connect call's lookup (iroh.h "Address lookup"): what services find after the first
 * answer becomes candidates of the connection, once its handshake is done, also after the
 * connect call returned, until every service has ended (ir_lookup_keep). Allocated by the
 * call; freed by it when the connect fails, else by the lookup's last word (found NULL). */
typedef struct connect_lookup {
    iroh_endpoint *ep;
    iroh_connection *h;        /* the connection, once made, until its handle is freed
                                  (ep->mu) */
    int kept;                  /* the connect call returned it connected (ep->mu) */
    iroh_endpoint_addr *later; /* found before its handshake completed (ep->mu) */
} connect_lookup;

static void free_handle(iroh_connection *h)
{
    if (h->late) /* its lookup goes on: nothing it finds later has a connection now */
        h->late->h = NULL;
    free(h);
}

static void enqueue(iroh_endpoint *ep, iroh_connection *h)
{
    h->queued = 1;
    h->next_queued = NULL;
    if (ep->queue_tail)
        ep->queue_tail->next_queued = h;
    else
        ep->queue_head = h;
    ep->queue_tail = h;
    ep->nqueued++;
}

static iroh_connection *dequeue(iroh_endpoint *ep)
{
    iroh_connection *h = ep->queue_head;
    if (!h)
        return NULL;
    ep->queue_head = h->next_queued;
    if (!ep->queue_head)
        ep->queue_tail = NULL;
    ep->nqueued--;
    if (ep->nqueued < ACCEPT_BACKLOG / 2)
        ep->backlog_warned = 0;
    h->queued = 0;
    h->next_queued = NULL;
    return h;
}

/* an inbound connection finished its handshake: the filter decides, then it waits for
 * iroh_endpoint_accept; 0 if it was refused */
static int admit(iroh_endpoint *ep, iroh_connection *h)
{
    if (ep->filter) {
        size_t alen = 0;
        const uint8_t *alpn = ir_conn_alpn(h->c, &alen);
        uint64_t code = ep->filter(ep->filter_ctx, &h->peer, alpn, alen);
        if (code) {
            ir_conn_close(h->c, 1, code, "refused", ir_now_ns());
            return 0;
        }
    }
    if (ep->nqueued >= ACCEPT_BACKLOG) {
        if (!ep->backlog_warned)
            IR_LOG(IR_LOG_WARN, "%d connections wait to be accepted: refusing new ones",
                   ACCEPT_BACKLOG);
        ep->backlog_warned = 1;
        ir_conn_close(h->c, 0, IR_QERR_CONNECTION_REFUSED,
                      "too many connections waiting to be accepted", ir_now_ns());
        return 0;
    }
    enqueue(ep, h);
    wake_kinds(ep->waiters, W_INCOMING);
    return 1;
}

/* after the events of a round: the waiters of h whose wait no event ends */
static void wake_by_state(iroh_connection *h)
{
    uint64_t dropped = ir_conn_hints_dropped(h->c);
    if (dropped != h->hints_dropped || (is_closed(h) && !h->close_seen)) {
        /* hints were lost (look again at everything), or it closed */
        h->hints_dropped = dropped;
        h->close_seen = is_closed(h);
        wake_kinds(h->waiters, W_ALL);
        return;
    }
    for (waiter *w = h->waiters; w; w = w->next) {
        uint64_t code;
        if ((w->kind & W_FLUSHED) &&
            ir_conn_stream_send_result(h->c, w->id, &code) != IR_SEND_OPEN)
            pthread_cond_signal(&w->cv); /* acknowledged, stopped or reset */
    }
}

static void dispatch(iroh_endpoint *ep)
{
    ir_conn *nc;
    /* new incoming connections: the I/O thread runs their handshakes; nobody owns them
     * until accept hands them out, so they are freed once closed */
    while ((nc = ir_ep_accept(ep->ep)) != NULL) {
        iroh_connection *h = new_handle(ep, nc, 1);
        if (!h) {
            ir_ep_release(ep->ep, nc); /* out of memory: closed and forgotten */
            continue;
        }
        h->handle_freed = 1;
    }
    for (size_t i = 0; i < ep->nconns;) {
        iroh_connection *h = ep->conns[i];
        ir_event ev;
        int path_news = 0; /* the selected path may have changed (ir_api_check_selected) */
        while (ir_conn_poll_event(h->c, &ev)) {
            switch (ev.type) {
            case IR_EV_CONNECTED:
                path_news = 1;
                h->connected = 1;
                wake_kinds(h->waiters, W_STATE);
                ir_conn_peer_id(h->c, &h->peer);
                if (ir_log_enabled(IR_LOG_INFO)) {
                    char id[IROH_ID_SHORT_LEN];
                    size_t alen = 0;
                    const uint8_t *alpn = ir_conn_alpn(h->c, &alen);
                    iroh_endpoint_id_fmt_short(&h->peer, id, sizeof id);
                    ir_log(IR_LOG_INFO, "connection %s %s established (ALPN %.*s)",
                           h->inbound ? "from" : "to", id, (int)alen, alpn ? (const char *)alpn : "");
                }
                if (h->inbound && !admit(ep, h))
                    break;
                ir_api_obs_conn(ep, h, IR_EV_CONNECTED, 0);
                emit(ep, IROH_EVENT_CONNECTED, h);
                break;
            case IR_EV_PATH_CHANGED:
            case IR_EV_PATH_VALIDATED:
            case IR_EV_PATH_OPENED:
            case IR_EV_PATH_ABANDONED:
            case IR_EV_PATH_SELECTED:
                path_news = 1;
                ir_api_path_event(ep, h, &ev);
                if (ev.type == IR_EV_PATH_OPENED || ev.type == IR_EV_PATH_ABANDONED)
                    ir_api_obs_conn(ep, h, ev.type, ev.stream_id);
                break;
            case IR_EV_CLOSED:
                if (ir_log_enabled(IR_LOG_INFO)) {
                    const ir_close_info *ci = ir_conn_close_info(h->c);
                    char id[IROH_ID_SHORT_LEN];
                    iroh_endpoint_id_fmt_short(&h->peer, id, sizeof id);
                    char code[80];
                    ir_log(IR_LOG_INFO, "connection %s %s closed%s: %s%s %s%s%s",
                           h->inbound ? "from" : "to", h->connected ? id : "(handshake)",
                           ci->by_peer ? " by the peer" : "",
                           ci->idle_timeout ? "idle timeout, "
                           : ci->reset      ? "stateless reset, "
                                            : "",
                           close_code_text(ci, code, sizeof code), ci->reason[0] ? "(" : "",
                           ci->reason, ci->reason[0] ? ")" : "");
                }
                if (ir_log_enabled(IR_LOG_INFO) && ir_conn_multipath(h->c)) {
                    ir_conn_stats st;
                    ir_conn_get_stats(h->c, &st);
                    ir_log(IR_LOG_INFO, "multipath was on: PATH_ACK sent %llu received %llu, "
                           "PATH_NEW_CONNECTION_ID sent %llu received %llu, paths opened %llu "
                           "abandoned %llu", (unsigned long long)st.path_acks_sent,
                           (unsigned long long)st.path_acks_recv, (unsigned long long)st.path_cids_sent,
                           (unsigned long long)st.path_cids_recv, (unsigned long long)st.paths_opened,
                           (unsigned long long)st.paths_abandoned);
                }
                wake_kinds(h->waiters, W_ALL);
                ir_api_obs_conn(ep, h, IR_EV_CLOSED, 0);
                emit(ep, IROH_EVENT_CLOSED, h);
                break;
            case IR_EV_STREAM_OPENED:
                wake_kinds(h->waiters, W_ACCEPT);
                break;
            case IR_EV_STREAM_READABLE:
                wake_stream(h->waiters, W_READ, ev.stream_id);
                break;
            case IR_EV_STREAM_WRITABLE:
                wake_stream(h->waiters, W_WRITE, ev.stream_id);
                break;
            case IR_EV_STREAM_STOPPED:
                wake_stream(h->waiters, W_WRITE | W_FLUSHED, ev.stream_id);
                break;
            case IR_EV_STREAMS_AVAILABLE:
                wake_kinds(h->waiters, W_OPEN);
                break;
            case IR_EV_DATAGRAM:
                wake_kinds(h->waiters, W_DATAGRAM);
                break;
            default:
                break;
            }
        }
        /* (events the core could not queue count as news too) */
        if (path_news || ir_conn_hints_dropped(h->c) != h->hints_dropped) {
            ir_api_check_selected(ep, h);
            ir_api_obs_conn(ep, h, 0, 0); /* its paths into the remote table */
        }
        if (h->waiters)
            wake_by_state(h);
        /* the application is done with it (or never had it) and the connection is over:
         * free it */
        if (h->refs == 0 && h->users == 0 && h->handle_freed && !h->queued &&
            ir_conn_get_state(h->c) == IR_CONN_CLOSED) {
            ir_ep_release(ep->ep, h->c);
            free_handle(h);
            ep->conns[i] = ep->conns[--ep->nconns];
            continue;
        }
        i++;
    }
}

static void *io_main(void *arg)
{
    iroh_endpoint *ep = arg;
    pthread_mutex_lock(&ep->mu);
    int nsock = ir_ep_socket_count(ep->ep);
    /* the first look at the own address, before any wait (a caller may already wait) */
    if (ir_api_obs_round(ep) && ep->waiters)
        wake_kinds(ep->waiters, W_ADDR);
    while (!ep->stop) {
        struct pollfd pf[IR_EP_MAX_FDS + 1];
        int timeout = -1;
        /* the connections' packets are built (and sealed) under the lock, and sent after
         * it: an application thread can go on meanwhile */
        ir_ep_defer_sends(ep->ep, 1);
        int n = ir_ep_prepare(ep->ep, pf, &timeout);
        ir_ep_defer_sends(ep->ep, 0);
        pf[n].fd = ep->wake_fd;
        pf[n].events = POLLIN;
        pf[n].revents = 0;
        pthread_mutex_lock(&ep->send_mu);
        pthread_mutex_unlock(&ep->mu);
        ir_ep_send_deferred(ep->ep);
        pthread_mutex_unlock(&ep->send_mu);
        poll(pf, (nfds_t)n + 1, timeout);
        if (pf[n].revents & POLLIN) {
            uint64_t v;
            ssize_t r = read(ep->wake_fd, &v, sizeof v);
            (void)r;
        }
        /* batches of datagrams: read without the lock, processed (opened) under it */
        pthread_mutex_lock(&ep->mu);
        for (int i = 0; i < nsock; i++) {
            if (!(pf[i].revents & POLLIN))
                continue;
            for (int round = 0; round < 16; round++) { /* then the others get a turn */
                pthread_mutex_unlock(&ep->mu);
                int got = ir_ep_read(ep->ep, i);
                pthread_mutex_lock(&ep->mu);
                ir_ep_deliver(ep->ep, ir_now_ns());
                if (got < IR_EP_READ_MAX)
                    break;
            }
        }
        ir_ep_process_rest(ep->ep, pf);
        /* the own address: IROH_EVENT_ADDR_CHANGED, iroh_endpoint_addr_wait */
        if (ir_api_obs_round(ep) && ep->waiters)
            wake_kinds(ep->waiters, W_ADDR);
        /* lookup events first: one queued before this round's connection events (a find
         * that a connection then used) is told before them */
        ir_api_lookup_dispatch(ep);
        dispatch(ep);
        ir_api_net_report_dispatch(ep);
        if (ep->waiters && (!ir_ep_relay_count(ep->ep) || ir_ep_home_relay(ep->ep)))
            wake_kinds(ep->waiters, W_ONLINE);
    }
    pthread_mutex_unlock(&ep->mu);
    return NULL;
}

/* ---- builder --------------------------------------------------------------------------- */

iroh_endpoint_builder *iroh_endpoint_builder_new(void)
{
    iroh_endpoint_builder *b = calloc(1, sizeof *b);
    if (!b) {
        ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    if (iroh_secret_key_generate(&b->key) != IROH_OK) {
        free(b);
        return NULL;
    }
    b->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    b->relay_quic_port = -1;
    b->holepunching = -1;
    b->net_report = IROH_NET_REPORT_ON;
    return b;
}

void iroh_endpoint_builder_free(iroh_endpoint_builder *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n_alpns; i++)
        free(b->alpns[i]);
    for (size_t i = 0; i < b->n_relays; i++)
        free(b->relays[i]);
    free(b->relay_token);
    free(b->relay_ca_file);
    ir_lookup_config_clear(&b->lookup);
    memset(&b->key, 0, sizeof b->key);
    free(b);
}

int iroh_endpoint_builder_secret_key(iroh_endpoint_builder *b, const iroh_secret_key *key)
{
    if (!b || !key)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    b->key = *key;
    return IROH_OK;
}

int iroh_endpoint_builder_alpn(iroh_endpoint_builder *b, const char *alpn)
{
    if (!b || !alpn || !*alpn || strlen(alpn) > 255)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "an ALPN has 1 to 255 bytes");
    if (b->n_alpns == MAX_ALPNS)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "at most %d ALPNs", MAX_ALPNS);
    b->alpns[b->n_alpns] = strdup(alpn);
    if (!b->alpns[b->n_alpns])
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    b->n_alpns++;
    return IROH_OK;
}

int iroh_endpoint_builder_bind_addr(iroh_endpoint_builder *b, const char *addr)
{
    iroh_socket_addr a;
    if (!b || !addr)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    int rc = iroh_socket_addr_parse(addr, &a);
    if (rc != IROH_OK)
        return rc;
    if (a.family == 4)
        b->bind4 = a;
    else
        b->bind6 = a;
    return IROH_OK;
}

int iroh_endpoint_builder_keep_alive_ms(iroh_endpoint_builder *b, uint32_t ms)
{
    if (!b)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    b->keep_alive_ms = ms;
    return IROH_OK;
}

int iroh_endpoint_builder_idle_timeout_ms(iroh_endpoint_builder *b, uint32_t ms)
{
    if (!b)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    b->idle_timeout_ms = ms;
    return IROH_OK;
}

int iroh_endpoint_builder_connect_timeout_ms(iroh_endpoint_builder *b, uint32_t ms)
{
    if (!b || !ms)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "a connect timeout must be positive");
    b->connect_timeout_ms = ms;
    return IROH_OK;
}

int iroh_endpoint_builder_max_streams(iroh_endpoint_builder *b, uint32_t bidi, uint32_t uni)
{
    if (!b || !bidi || !uni)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "stream limits must be positive");
    b->max_bidi = bidi;
    b->max_uni = uni;
    return IROH_OK;
}

int iroh_endpoint_builder_stream_window(iroh_endpoint_builder *b, uint32_t initial, uint32_t max)
{
    if (!b || initial < 1024 || max < initial)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "windows: 1024 <= initial <= max");
    b->window = initial;
    b->max_window = max;
    return IROH_OK;
}

int iroh_endpoint_builder_max_datagram_size(iroh_endpoint_builder *b, uint32_t size)
{
    if (!b || !size)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "the datagram size limit must be positive");
    b->max_dgram = size;
    return IROH_OK;
}

int iroh_endpoint_builder_retry(iroh_endpoint_builder *b, int on)
{
    if (!b)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    b->retry = on != 0;
    return IROH_OK;
}

int iroh_endpoint_builder_holepunching(iroh_endpoint_builder *b, int mode)
{
    if (!b)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    if (mode < 0 || mode > 2)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "holepunching mode %d is not 0, 1 or 2", mode);
    b->holepunching = mode;
    return IROH_OK;
}

int iroh_endpoint_builder_accept_filter(iroh_endpoint_builder *b, iroh_accept_filter fn, void *ctx)
{
    if (!b)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    b->filter = fn;
    b->filter_ctx = ctx;
    return IROH_OK;
}

int iroh_endpoint_builder_event_callback(iroh_endpoint_builder *b, iroh_event_callback fn,
                                         void *ctx)
{
    if (!b)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    b->event_cb = fn;
    b->event_ctx = ctx;
    return IROH_OK;
}

/* ---- endpoint ------------------------------------------------------------------------- */

int iroh_endpoint_builder_relay_mode(iroh_endpoint_builder *b, iroh_relay_mode mode)
{
    if (!b || (mode != IROH_RELAY_MODE_DEFAULT && mode != IROH_RELAY_MODE_DISABLED &&
               mode != IROH_RELAY_MODE_CUSTOM))
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "bad relay mode");
    b->relay_mode = mode;
    return IROH_OK;
}

int iroh_endpoint_builder_relay_url(iroh_endpoint_builder *b, const char *url)
{
    if (!b || !url)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    char norm[512];
    int rc = iroh_relay_url_normalize(url, norm, sizeof norm);
    if (rc != IROH_OK)
        return rc;
    for (size_t i = 0; i < b->n_relays; i++)
        if (strcmp(b->relays[i], norm) == 0)
            goto done;
    if (b->n_relays == IR_EP_MAX_RELAYS)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "at most %d relays", IR_EP_MAX_RELAYS);
    if (!(b->relays[b->n_relays] = strdup(norm)))
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    b->n_relays++;
done:
    b->relay_mode = IROH_RELAY_MODE_CUSTOM;
    return IROH_OK;
}

int iroh_endpoint_builder_relay_auth_token(iroh_endpoint_builder *b, const char *token)
{
    if (!b)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    for (const char *p = token; p && *p; p++)
        if ((unsigned char)*p < 0x21 || *p == 0x7f)
            return ir_fail(IROH_ERR_INVALID_ARGUMENT, "the token has a space or control character");
    char *copy = token ? strdup(token) : NULL;
    if (token && !copy)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    free(b->relay_token);
    b->relay_token = copy;
    return IROH_OK;
}

int iroh_endpoint_builder_relay_ca_file(iroh_endpoint_builder *b, const char *path)
{
    if (!b)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    char *copy = path ? strdup(path) : NULL;
    if (path && !copy)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    free(b->relay_ca_file);
    b->relay_ca_file = copy;
    return IROH_OK;
}

int iroh_endpoint_builder_relay_quic_port(iroh_endpoint_builder *b, uint16_t port)
{
    if (!b)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    b->relay_quic_port = port;
    return IROH_OK;
}

int iroh_endpoint_bind(const iroh_endpoint_builder *b, iroh_endpoint **out)
{
    if (!b || !out)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    iroh_endpoint *ep = calloc(1, sizeof *ep);
    if (!ep)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    ep->wake_fd = -1;
    ir_ep_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.key = b->key;
    const uint8_t *alpns[MAX_ALPNS];
    size_t lens[MAX_ALPNS];
    for (size_t i = 0; i < b->n_alpns; i++) {
        alpns[i] = (const uint8_t *)b->alpns[i];
        lens[i] = strlen(b->alpns[i]);
    }
    cfg.alpns = alpns;
    cfg.alpn_lens = lens;
    cfg.n_alpns = b->n_alpns;
    cfg.bind4 = b->bind4;
    cfg.bind6 = b->bind6;
    cfg.keep_alive_ns = (uint64_t)b->keep_alive_ms * 1000000ull;
    cfg.idle_timeout_ms = b->idle_timeout_ms;
    cfg.retry = b->retry;
    cfg.holepunching = b->holepunching >= 0 ? b->holepunching : ir_env_holepunching();
    cfg.max_streams_bidi = b->max_bidi;
    cfg.max_streams_uni = b->max_uni;
    cfg.stream_window = b->window;
    cfg.max_stream_window = b->max_window;
    cfg.max_datagram_frame = b->max_dgram;
    if (b->relay_mode == IROH_RELAY_MODE_DEFAULT) {
        cfg.relay_urls = n0_relays;
        cfg.n_relays = sizeof n0_relays / sizeof n0_relays[0];
    } else if (b->relay_mode == IROH_RELAY_MODE_CUSTOM) {
        cfg.relay_urls = (const char *const *)b->relays;
        cfg.n_relays = b->n_relays;
    }
    cfg.relay_token = b->relay_token;
    cfg.relay_ca_file = b->relay_ca_file;
    cfg.qad_client = b->relay_quic_port != 0;
    cfg.qad_port = b->relay_quic_port > 0 ? (uint16_t)b->relay_quic_port : 0;
    cfg.net_report = b->net_report != IROH_NET_REPORT_OFF;
    cfg.no_captive_check = b->net_report == IROH_NET_REPORT_NO_CAPTIVE;
    ir_api_builder_externals(b, &cfg);
    cfg.relays_disabled = b->relay_mode == IROH_RELAY_MODE_DISABLED;
    ep->connect_timeout_ms = b->connect_timeout_ms;
    ep->filter = b->filter;
    ep->filter_ctx = b->filter_ctx;
    ep->event_cb = b->event_cb;
    ep->event_ctx = b->event_ctx;
    int rc = ir_ep_new(&cfg, &ep->ep);
    if (rc != IROH_OK) {
        free(ep);
        return rc;
    }
    iroh_secret_key_public(&b->key, &ep->id);
    pthread_condattr_init(&ep->cva);
    pthread_condattr_setclock(&ep->cva, CLOCK_MONOTONIC);
    pthread_cond_init(&ep->cv, &ep->cva);
    pthread_mutex_init(&ep->mu, NULL);
    pthread_mutex_init(&ep->send_mu, NULL);
    ep->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ep->wake_fd < 0 || pthread_create(&ep->io, NULL, io_main, ep) != 0) {
        rc = ir_fail(IROH_ERR_IO, "cannot start the I/O thread: %s", strerror(errno));
        iroh_endpoint_free(ep);
        return rc;
    }
    ep->io_started = 1;
    if ((rc = ir_api_lookup_start(ep, b)) != IROH_OK) {
        char saved[256];
        snprintf(saved, sizeof saved, "%s", iroh_last_error());
        iroh_endpoint_free(ep);
        return ir_fail(rc, "%s", saved);
    }
    if (ir_log_enabled(IR_LOG_INFO)) {
        char id[IROH_ID_HEX_LEN];
        iroh_endpoint_id_to_hex(&ep->id, id, sizeof id);
        ir_log(IR_LOG_INFO, "endpoint %s bound", id);
    }
    *out = ep;
    return IROH_OK;
}

void iroh_endpoint_get_id(const iroh_endpoint *ep, iroh_endpoint_id *out)
{
    *out = ep->id;
}

int iroh_endpoint_get_addr(iroh_endpoint *ep, iroh_endpoint_addr **out)
{
    iroh_endpoint_addr *a = iroh_endpoint_addr_new(&ep->id);
    if (!a)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    iroh_socket_addr addrs[32];
    pthread_mutex_lock(&ep->mu);
    size_t n = ir_ep_addrs(ep->ep, addrs, 32);
    const char *home = ir_ep_home_relay(ep->ep);
    int rc = home ? iroh_endpoint_addr_add_relay(a, home) : IROH_OK;
    pthread_mutex_unlock(&ep->mu);
    for (size_t i = 0; i < n && rc == IROH_OK; i++)
        rc = iroh_endpoint_addr_add_ip(a, &addrs[i]);
    if (rc != IROH_OK) {
        iroh_endpoint_addr_free(a);
        return rc;
    }
    *out = a;
    return IROH_OK;
}

int iroh_endpoint_home_relay(iroh_endpoint *ep, char *buf, size_t len)
{
    if (!ep || !buf)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    pthread_mutex_lock(&ep->mu);
    const char *home = ir_ep_home_relay(ep->ep);
    int rc;
    if (!home)
        rc = ir_fail(IROH_ERR_STATE, "no home relay (yet)");
    else if (strlen(home) >= len)
        rc = ir_fail(IROH_ERR_BUFFER_TOO_SMALL, "the buffer is too small");
    else {
        strcpy(buf, home);
        rc = IROH_OK;
    }
    pthread_mutex_unlock(&ep->mu);
    return rc;
}

/* " (relay URL: why it is not connected)" when a relay is down, else "" (the endpoint's
 * mutex is held; the text lives until the next call on this thread) */
static const char *relay_problem(iroh_endpoint *ep)
{
    static _Thread_local char text[600];
    const char *url, *why;
    if (!ir_ep_relay_problem(ep->ep, &url, &why))
        return "";
    snprintf(text, sizeof text, " (relay %s: %s)", url, why);
    return text;
}

int iroh_endpoint_online(iroh_endpoint *ep, int timeout_ms)
{
    int rc = check_args(ep != NULL, timeout_ms);
    if (rc != IROH_OK)
        return rc;
    deadline d = deadline_in(timeout_ms);
    pthread_mutex_lock(&ep->mu);
    ep_enter(ep);
    for (;;) {
        if (ep->closed) { /* also with no relay to wait for: later calls fail */
            rc = endpoint_closed_error();
            break;
        }
        if (!ir_ep_relay_count(ep->ep) || ir_ep_home_relay(ep->ep))
            break;
        if (wait_on(ep, &ep->waiters, W_ONLINE, 0, NULL, &d) != 0) {
            rc = ir_fail(IROH_ERR_TIMEOUT, "no relay connected within %d ms%s", timeout_ms,
                         relay_problem(ep));
            break;
        }
    }
    ep_leave(ep);
    pthread_mutex_unlock(&ep->mu);
    return rc;
}

/* ---- the net report ------------------------------------------------------------------ */

static int copy_net_report(iroh_endpoint *ep, iroh_net_report *out)
{
    const char *urls[IR_EP_MAX_RELAYS];
    size_t n;
    uint64_t gen;
    const ir_nr_report *r = ir_ep_net_report(ep->ep, &gen, urls, &n);
    if (!n)
        return ir_fail(IROH_ERR_STATE, "no net report (no relays, or turned off)");
    if (!r)
        return ir_fail(IROH_ERR_STATE, "the first net report has not completed yet");
    memset(out, 0, sizeof *out);
    out->generation = gen;
    out->udp_v4 = r->udp_v4;
    out->udp_v6 = r->udp_v6;
    out->mapping_varies_by_dest_ipv4 = r->varies_v4;
    out->mapping_varies_by_dest_ipv6 = r->varies_v6;
    out->has_global_v4 = r->has_global_v4;
    out->has_global_v6 = r->has_global_v6;
    out->global_v4 = r->global_v4;
    out->global_v6 = r->global_v6;
    out->preferred_relay = r->preferred >= 0 ? urls[r->preferred] : NULL;
    out->captive_portal = r->captive;
    out->n_relays = n;
    for (size_t i = 0; i < n && i < IROH_NET_REPORT_MAX_RELAYS; i++) {
        out->relays[i].url = urls[i];
        out->relays[i].latency_ipv4_us = (r->lat_v4[i] + 999) / 1000;
        out->relays[i].latency_ipv6_us = (r->lat_v6[i] + 999) / 1000;
        out->relays[i].latency_https_us = (r->lat_https[i] + 999) / 1000;
    }
    return IROH_OK;
}

int iroh_endpoint_net_report_wait(iroh_endpoint *ep, uint64_t after, int timeout_ms,
                                  iroh_net_report *out)
{
    int rc = check_args(ep != NULL && out != NULL, timeout_ms);
    if (rc != IROH_OK)
        return rc;
    deadline d = deadline_in(timeout_ms);
    pthread_mutex_lock(&ep->mu);
    ep_enter(ep);
    for (;;) {
        if (ep->closed) {
            rc = endpoint_closed_error();
            break;
        }
        rc = copy_net_report(ep, out);
        if (rc == IROH_OK && out->generation > after)
            break;
        const char *urls[IR_EP_MAX_RELAYS];
        size_t n;
        ir_ep_net_report(ep->ep, NULL, urls, &n);
        if (!n)
            break; /* there will be none: IROH_ERR_STATE */
        if (wait_on(ep, &ep->waiters, W_NET_REPORT, 0, NULL, &d) != 0) {
            rc = ir_fail(IROH_ERR_TIMEOUT, "no new net report within %d ms", timeout_ms);
            break;
        }
    }
    ep_leave(ep);
    pthread_mutex_unlock(&ep->mu);
    return rc;
}

int iroh_endpoint_net_report(iroh_endpoint *ep, iroh_net_report *out)
{
    if (!ep || !out)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    pthread_mutex_lock(&ep->mu);
    int rc = ep->closed ? endpoint_closed_error() : copy_net_report(ep, out);
    pthread_mutex_unlock(&ep->mu);
    return rc;
}

void ir_api_net_report_dispatch(iroh_endpoint *ep)
{
    const char *urls[IR_EP_MAX_RELAYS];
    size_t n;
    uint64_t gen;
    ir_ep_net_report(ep->ep, &gen, urls, &n);
    if (gen == ep->nr_generation)
        return;
    ep->nr_generation = gen;
    wake_kinds(ep->waiters, W_NET_REPORT);
    if (ep->event_cb) {
        iroh_event ev;
        memset(&ev, 0, sizeof ev);
        ev.kind = IROH_EVENT_NET_REPORT;
        ev.peer = ep->id;
        ep->event_cb(ep->event_ctx, &ev);
    }
}

int iroh_endpoint_builder_net_report(iroh_endpoint_builder *b, int mode)
{
    if (!b || mode < IROH_NET_REPORT_OFF || mode > IROH_NET_REPORT_NO_CAPTIVE)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "net report mode 0, 1 or 2");
    b->net_report = mode;
    return IROH_OK;
}

int iroh_endpoint_addr_wait(iroh_endpoint *ep, uint64_t after, int timeout_ms, uint64_t *generation)
{
    int rc = check_args(ep != NULL, timeout_ms);
    if (rc != IROH_OK)
        return rc;
    deadline d = deadline_in(timeout_ms);
    pthread_mutex_lock(&ep->mu);
    ep_enter(ep);
    for (;;) {
        if (ep->closed) {
            rc = endpoint_closed_error();
            break;
        }
        if (ep->addr_gen > after) {
            if (generation)
                *generation = ep->addr_gen;
            break;
        }
        if (wait_on(ep, &ep->waiters, W_ADDR, 0, NULL, &d) != 0) {
            rc = ir_fail(IROH_ERR_TIMEOUT, "the address did not change within %d ms", timeout_ms);
            break;
        }
    }
    ep_leave(ep);
    pthread_mutex_unlock(&ep->mu);
    return rc;
}

/* a connection we dial: until its handshake completes */
static int wait_connected(iroh_connection *h, int timeout_ms)
{
    iroh_endpoint *ep = h->ep;
    deadline d = deadline_in(timeout_ms);
    while (!h->connected) {
        if (ep->closed)
            return endpoint_closed_error();
        if (is_closed(h)) {
            const ir_close_info *ci = ir_conn_close_info(h->c);
            if (!h->connected && !ci->application && !ci->idle_timeout) {
                const char *name = ir_qerr_name(ci->code);
                return ir_fail(IROH_ERR_HANDSHAKE, "%s (%s 0x%llx%s%s)",
                               ci->reason[0] ? ci->reason : "handshake failed",
                               ci->by_peer ? "closed by the peer with" : "error",
                               (unsigned long long)ci->code, name ? " " : "", name ? name : "");
            }
            if (!h->connected && ci->idle_timeout)
                return ir_fail(IROH_ERR_TIMEOUT, "no answer from the peer%s",
                               relay_problem(ep));
            return conn_error(h);
        }
        if (wait_on(ep, &h->waiters, W_STATE, 0, NULL, &d) != 0)
            return ir_fail(IROH_ERR_TIMEOUT, "the handshake did not complete in %d ms%s",
                           timeout_ms, relay_problem(ep));
    }
    return IROH_OK;
}

int iroh_endpoint_connect(iroh_endpoint *ep, const iroh_endpoint_addr *addr, const char *alpn,
                          iroh_connection **out)
{
    return iroh_endpoint_connect_alpns(ep, addr, &alpn, 1, out);
}


static void merge_addr(iroh_endpoint_addr **into, const iroh_endpoint_addr *from)
{
    if (!*into && !(*into = iroh_endpoint_addr_new(iroh_endpoint_addr_id(from))))
        return;
    size_t n = iroh_endpoint_addr_len(from);
    for (size_t i = 0; i < n; i++) {
        iroh_transport_addr t;
        iroh_endpoint_addr_get(from, i, &t);
        if (t.kind == IROH_TRANSPORT_RELAY)
            iroh_endpoint_addr_add_relay(*into, t.relay_url);
        else if (t.kind == IROH_TRANSPORT_IP)
            iroh_endpoint_addr_add_ip(*into, &t.ip);
    }
}

/* a lookup service's later find (a job thread of the lookup, no lookup lock held) */
static void connect_more(void *ctx, const iroh_endpoint_addr *found)
{
    connect_lookup *cl = ctx;
    iroh_endpoint *ep = cl->ep;
    pthread_mutex_lock(&ep->mu);
    if (!found) { /* every service has ended, or the endpoint closed: the end of cl */
        if (cl->h)
            cl->h->late = NULL;
        iroh_endpoint_addr_free(cl->later);
        pthread_mutex_unlock(&ep->mu);
        free(cl);
        return;
    }
    if (cl->h && cl->h->connected && !is_closed(cl->h)) {
        if (ir_ep_add_candidates(ep->ep, cl->h->c, found, ir_now_ns()))
            wake(ep);
    } else if (!cl->kept) { /* still in the handshake */
        merge_addr(&cl->later, found);
    } /* else the connection is over (closed, or its handle freed): dropped */
    pthread_mutex_unlock(&ep->mu);
}

/* 1 when the address names a relay or a direct address (else it must be looked up) */
static int has_transport(const iroh_endpoint_addr *a)
{
    size_t n = iroh_endpoint_addr_len(a);
    for (size_t i = 0; i < n; i++) {
        iroh_transport_addr t;
        iroh_endpoint_addr_get(a, i, &t);
        if (t.kind == IROH_TRANSPORT_RELAY || t.kind == IROH_TRANSPORT_IP)
            return 1;
    }
    return 0;
}

static int connect_addr(iroh_endpoint *ep, const iroh_endpoint_addr *addr, const uint8_t **ab,
                        const size_t *al, size_t n_alpns, int timeout_ms, connect_lookup *cl,
                        iroh_connection **out);

int iroh_endpoint_connect_alpns(iroh_endpoint *ep, const iroh_endpoint_addr *addr,
                                const char *const *alpns, size_t n_alpns, iroh_connection **out)
{
    if (!ep || !addr || !alpns || !n_alpns || n_alpns > MAX_ALPNS || !out)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument or no ALPN");
    const uint8_t *ab[MAX_ALPNS];
    size_t al[MAX_ALPNS];
    for (size_t i = 0; i < n_alpns; i++) {
        if (!alpns[i] || !*alpns[i] || strlen(alpns[i]) > 255)
            return ir_fail(IROH_ERR_INVALID_ARGUMENT, "an ALPN has 1 to 255 bytes");
        ab[i] = (const uint8_t *)alpns[i];
        al[i] = strlen(alpns[i]);
    }
    int timeout_ms = (int)ep->connect_timeout_ms;
    int can_resolve = ir_lookup_can_resolve(ep->lookup);
    if (has_transport(addr)) { /* what the application says of the peer (a ticket) */
        pthread_mutex_lock(&ep->mu);
        ir_api_remote_note_addr(ep, addr, IROH_ADDR_SOURCE_APP, NULL);
        pthread_mutex_unlock(&ep->mu);
    }
    if (has_transport(addr) || !can_resolve) {
        int rc = connect_addr(ep, addr, ab, al, n_alpns, timeout_ms, NULL, out);
        if (rc != IROH_ERR_INVALID_ADDR || !can_resolve)
            return rc;
        /* none of its transports is usable here (e.g. IPv6 only, and no IPv6 socket,
         * no relay): looked up as an id alone */
    }
    /* only an id: every lookup at once, the connection starts with the first answer
     * (within the connect timeout) */
    pthread_mutex_lock(&ep->mu);
    if (ep->closed) {
        pthread_mutex_unlock(&ep->mu);
        return endpoint_closed_error();
    }
    ep_enter(ep); /* iroh_endpoint_free waits for this thread */
    pthread_mutex_unlock(&ep->mu);
    connect_lookup *cl = calloc(1, sizeof *cl);
    if (!cl) {
        pthread_mutex_lock(&ep->mu);
        ep_leave(ep);
        pthread_mutex_unlock(&ep->mu);
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    }
    cl->ep = ep;
    void *token = NULL;
    iroh_endpoint_addr *found = NULL;
    uint64_t t0 = ir_now_ns();
    int rc = ir_lookup_resolve(ep->lookup, iroh_endpoint_addr_id(addr),
                               t0 + (uint64_t)timeout_ms * 1000000ull, 1, connect_more, cl,
                               &token, &found);
    if (rc == IROH_OK) {
        int left = timeout_ms - (int)((ir_now_ns() - t0) / 1000000);
        rc = connect_addr(ep, found, ab, al, n_alpns, left > 0 ? left : 1, cl, out);
    } else if (rc == IROH_ERR_TIMEOUT) {
        rc = ir_fail(IROH_ERR_TIMEOUT, "no address found for the endpoint within %d ms",
                     timeout_ms);
    }
    char saved[256];
    snprintf(saved, sizeof saved, "%s", iroh_last_error());
    iroh_endpoint_addr_free(found);
    if (rc == IROH_OK && token) {
        /* connected: the services that have not answered yet go on, their finds become
         * the connection's candidates; the lookup frees cl at its end */
        ir_lookup_keep(ep->lookup, token);
    } else {
        ir_lookup_forget(ep->lookup, token);
        pthread_mutex_lock(&ep->mu);
        iroh_endpoint_addr_free(cl->later);
        pthread_mutex_unlock(&ep->mu);
        free(cl);
    }
    pthread_mutex_lock(&ep->mu);
    ep_leave(ep);
    pthread_mutex_unlock(&ep->mu);
    if (rc != IROH_OK)
        ir_fail(rc, "%s", saved);
    return rc;
}

static int connect_addr(iroh_endpoint *ep, const iroh_endpoint_addr *addr, const uint8_t **ab,
                        const size_t *al, size_t n_alpns, int timeout_ms, connect_lookup *cl,
                        iroh_connection **out)
{
    pthread_mutex_lock(&ep->mu);
    if (ep->closed) {
        pthread_mutex_unlock(&ep->mu);
        return endpoint_closed_error();
    }
    ep_enter(ep);
    ir_conn *c;
    int rc = ir_ep_connect_alpns(ep->ep, addr, ab, al, n_alpns, &c);
    iroh_connection *h = NULL;
    if (rc == IROH_OK) {
        h = new_handle(ep, c, 0);
        if (!h) {
            ir_ep_release(ep->ep, c);
            rc = ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
        }
    }
    if (rc == IROH_OK) {
        h->refs = 1;
        if (cl)
            cl->h = h;
        wake(ep);
        rc = wait_connected(h, timeout_ms);
        if (rc == IROH_OK && cl && cl->later) {
            /* found while the handshake ran: new paths now */
            if (ir_ep_add_candidates(ep->ep, h->c, cl->later, ir_now_ns()))
                wake(ep);
            iroh_endpoint_addr_free(cl->later);
            cl->later = NULL;
        }
        if (cl) {
            cl->h = rc == IROH_OK ? h : NULL;
            cl->kept = rc == IROH_OK;
            if (rc == IROH_OK)
                h->late = cl;
        }
        if (rc != IROH_OK) {
            /* give the handle back: the I/O thread frees it once closed */
            char saved[256];
            snprintf(saved, sizeof saved, "%s", iroh_last_error());
            if (!is_closed(h))
                ir_conn_close(h->c, 0, 0, "connect timed out", ir_now_ns());
            h->refs = 0;
            h->handle_freed = 1;
            wake(ep);
            ir_fail(rc, "%s", saved);
        } else {
            *out = h;
        }
    }
    ep_leave(ep);
    pthread_mutex_unlock(&ep->mu);
    return rc;
}

int iroh_endpoint_accept(iroh_endpoint *ep, int timeout_ms, iroh_incoming **out)
{
    int rc = check_args(ep && out, timeout_ms);
    if (rc != IROH_OK)
        return rc;
    iroh_incoming *inc = malloc(sizeof *inc);
    if (!inc)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    pthread_mutex_lock(&ep->mu);
    ep_enter(ep);
    deadline d = deadline_in(timeout_ms);
    for (;;) {
        if (ep->closed) { /* what is still queued goes with the endpoint */
            rc = endpoint_closed_error();
            break;
        }
        if (ep->queue_head)
            break;
        if (wait_on(ep, &ep->waiters, W_INCOMING, 0, NULL, &d) != 0) {
            rc = ir_fail(IROH_ERR_TIMEOUT, "no incoming connection within %d ms", timeout_ms);
            break;
        }
    }
    if (rc == IROH_OK) {
        inc->conn = dequeue(ep);
        inc->conn->handle_freed = 0;
        inc->conn->refs = 1; /* the incoming's, then the application's */
        *out = inc;
    } else {
        free(inc);
    }
    ep_leave(ep);
    pthread_mutex_unlock(&ep->mu);
    return rc;
}

int iroh_incoming_remote_addr(const iroh_incoming *inc, iroh_socket_addr *out)
{
    if (!inc || !out)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    iroh_endpoint *ep = inc->conn->ep;
    pthread_mutex_lock(&ep->mu);
    int rc = ir_ep_conn_remote(ep->ep, inc->conn->c, out, NULL);
    pthread_mutex_unlock(&ep->mu);
    if (rc == 1)
        return ir_fail(IROH_ERR_STATE, "the connection came through a relay");
    return rc == 0 ? IROH_OK : ir_fail(IROH_ERR_STATE, "address unknown");
}

int iroh_incoming_accept(iroh_incoming *inc, iroh_connection **out)
{
    if (!inc || !out)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    iroh_connection *h = inc->conn;
    iroh_endpoint *ep = h->ep;
    free(inc);
    /* its handshake is done: nothing to wait for */
    pthread_mutex_lock(&ep->mu);
    int rc = IROH_OK;
    if (ep->closed) {
        h->refs = 0;
        h->handle_freed = 1;
        rc = endpoint_closed_error();
    } else {
        *out = h;
    }
    pthread_mutex_unlock(&ep->mu);
    return rc;
}

static void drop_incoming(iroh_incoming *inc, int quiet)
{
    if (!inc)
        return;
    iroh_connection *h = inc->conn;
    iroh_endpoint *ep = h->ep;
    free(inc);
    pthread_mutex_lock(&ep->mu);
    if (quiet) {
        for (size_t i = 0; i < ep->nconns; i++) {
            if (ep->conns[i] == h) {
                ep->conns[i] = ep->conns[--ep->nconns];
                break;
            }
        }
        ir_ep_release_quiet(ep->ep, h->c, 1);
        free_handle(h);
    } else {
        if (!is_closed(h))
            ir_conn_close(h->c, 0, IR_QERR_CONNECTION_REFUSED, "refused", ir_now_ns());
        h->refs = 0;
        h->handle_freed = 1;
        wake(ep);
    }
    pthread_mutex_unlock(&ep->mu);
}

void iroh_incoming_refuse(iroh_incoming *inc)
{
    drop_incoming(inc, 0);
}

void iroh_incoming_ignore(iroh_incoming *inc)
{
    drop_incoming(inc, 1);
}

/* closes every connection still open (application code 0, as iroh's endpoint close) and
 * sends the CONNECTION_CLOSE frames now */
static void close_all(iroh_endpoint *ep)
{
    for (size_t i = 0; i < ep->nconns; i++) {
        if (!is_closed(ep->conns[i])) {
            ir_conn_close(ep->conns[i]->c, 1, 0, "", ir_now_ns());
            ep->conns[i]->endpoint_closed_it = 1;
        }
    }
    /* after what the I/O thread is sending (the last ACKs): a peer that gets the close
     * first would take what it sent as lost */
    pthread_mutex_lock(&ep->send_mu);
    ir_ep_flush(ep->ep);
    pthread_mutex_unlock(&ep->send_mu);
}

void iroh_endpoint_close(iroh_endpoint *ep)
{
    if (!ep)
        return;
    /* lookups first (their events need the endpoint's mutex): no PUT, no lookup after
     * this, and connect calls waiting for a lookup return. This thread counts as a user
     * meanwhile, so that an iroh_endpoint_free in another thread (which stops the lookups
     * too, and returns from that once this thread's stop is done) waits for it to leave
     * before the memory goes. */
    pthread_mutex_lock(&ep->mu);
    ep_enter(ep);
    pthread_mutex_unlock(&ep->mu);
    ir_lookup_stop(ep->lookup);
    pthread_mutex_lock(&ep->mu);
    ep_leave(ep);
    if (ep->closed) {
        /* another thread is closing it: return once it is closed. A user meanwhile, so
         * that an iroh_endpoint_free (whose own close may be that other one) waits for
         * this thread to leave before the memory goes. */
        ep_enter(ep);
        while (!ep->close_done)
            pthread_cond_wait(&ep->cv, &ep->mu);
        ep_leave(ep);
        pthread_mutex_unlock(&ep->mu);
        return;
    }
    ep->closed = 1;
    /* every connection gets CONNECTION_CLOSE (application 0), sent before we return */
    close_all(ep);
    ep->stop = 1;
    wake_everyone(ep); /* every blocked call wakes and returns */
    pthread_mutex_unlock(&ep->mu);
    wake(ep);
    if (ep->io_started) {
        pthread_join(ep->io, NULL);
        ep->io_started = 0;
    }
    pthread_mutex_lock(&ep->mu);
    /* the I/O thread's last round may have begun connections (a datagram it read):
     * they are closed too, so that every peer hears of it rather than timing out */
    dispatch(ep);
    close_all(ep);
    dispatch(ep); /* final events (CLOSED) for the callback */
    wake_everyone(ep);
    ep->close_done = 1;
    pthread_cond_broadcast(&ep->cv);
    pthread_mutex_unlock(&ep->mu);
}

void iroh_endpoint_free(iroh_endpoint *ep)
{
    if (!ep)
        return;
    iroh_endpoint_close(ep);
    /* threads that were blocked in calls of the endpoint are on their way out */
    pthread_mutex_lock(&ep->mu);
    while (ep->users)
        pthread_cond_wait(&ep->cv, &ep->mu);
    pthread_mutex_unlock(&ep->mu);
    ir_lookup_free(ep->lookup);
    ir_api_obs_free(ep);
    for (size_t i = 0; i < ep->nconns; i++)
        free_handle(ep->conns[i]);
    free(ep->conns);
    ir_ep_free(ep->ep);
    if (ep->wake_fd >= 0)
        close(ep->wake_fd);
    pthread_mutex_destroy(&ep->mu);
    pthread_mutex_destroy(&ep->send_mu);
    pthread_cond_destroy(&ep->cv);
    pthread_condattr_destroy(&ep->cva);
    free(ep);
}

/* ---- connection ----------------------------------------------------------------------- */

void iroh_connection_remote_id(const iroh_connection *c, iroh_endpoint_id *out)
{
    *out = c->peer;
}

int iroh_connection_alpn(const iroh_connection *c, char *buf, size_t buflen)
{
    pthread_mutex_lock(&c->ep->mu);
    size_t len = 0;
    const uint8_t *a = ir_conn_alpn(c->c, &len);
    int rc = IROH_OK;
    if (!a)
        rc = ir_fail(IROH_ERR_STATE, "no ALPN negotiated");
    else if (buflen < len + 1)
        rc = ir_fail(IROH_ERR_BUFFER_TOO_SMALL, "need %zu bytes", len + 1);
    else {
        memcpy(buf, a, len);
        buf[len] = 0;
    }
    pthread_mutex_unlock(&c->ep->mu);
    return rc;
}

static iroh_send_stream *new_send(iroh_connection *h, uint64_t id)
{
    iroh_send_stream *s = calloc(1, sizeof *s);
    if (s) {
        s->h.conn = h;
        s->h.id = id;
        s->h.timeout_ms = -1;
        h->refs++;
    }
    return s;
}

static iroh_recv_stream *new_recv(iroh_connection *h, uint64_t id)
{
    iroh_recv_stream *s = calloc(1, sizeof *s);
    if (s) {
        s->h.conn = h;
        s->h.id = id;
        s->h.timeout_ms = -1;
        h->refs++;
    }
    return s;
}

static int open_stream(iroh_connection *h, int bidi, iroh_send_stream **send, iroh_recv_stream **recv)
{
    /* the handles first: once the connection has opened a stream it cannot give it back
     * (its id is used; the peer would count it against the limit for good) */
    iroh_send_stream *ws = calloc(1, sizeof *ws);
    iroh_recv_stream *rs = recv ? calloc(1, sizeof *rs) : NULL;
    if (!ws || (recv && !rs)) {
        free(ws);
        free(rs);
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    }
    iroh_endpoint *ep = h->ep;
    pthread_mutex_lock(&ep->mu);
    conn_enter(h);
    deadline d = deadline_in(h->timeout_ms);
    int rc;
    uint64_t id;
    for (;;) {
        if ((rc = conn_check(h)) != IROH_OK)
            break;
        int r = ir_conn_stream_open(h->c, bidi, &id);
        if (r == 0) {
            ws->h = (stream_handle){.conn = h, .id = id, .timeout_ms = -1, .held = 1};
            ir_conn_stream_hold(h->c, id, 1);
            h->refs++;
            *send = ws;
            ws = NULL;
            if (recv) {
                rs->h = (stream_handle){.conn = h, .id = id, .timeout_ms = -1};
                h->refs++;
                *recv = rs;
                rs = NULL;
            }
            break;
        }
        if (r != IR_QUIC_AGAIN) {
            rc = quic_fail(r, "open a stream");
            break;
        }
        /* the peer's MAX_STREAMS */
        if ((rc = wait_conn(h, W_OPEN, 0, NULL, &d, "the peer allowed no new stream")) != IROH_OK)
            break;
    }
    conn_leave(h);
    pthread_mutex_unlock(&ep->mu);
    free(ws); /* the handles not handed out */
    free(rs);
    return rc;
}

int iroh_connection_open_bi(iroh_connection *c, iroh_send_stream **send, iroh_recv_stream **recv)
{
    if (!c || !send || !recv)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    return open_stream(c, 1, send, recv);
}

int iroh_connection_open_uni(iroh_connection *c, iroh_send_stream **send)
{
    if (!c || !send)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    return open_stream(c, 0, send, NULL);
}

static int accept_stream(iroh_connection *h, int uni, int timeout_ms, iroh_send_stream **send,
                         iroh_recv_stream **recv)
{
    iroh_endpoint *ep = h->ep;
    pthread_mutex_lock(&ep->mu);
    conn_enter(h);
    deadline d = deadline_in(timeout_ms);
    int rc = IROH_OK;
    /* the peer's streams, counted by the connection: nothing to lose. A freed handle
     * hands out nothing, even what arrived meanwhile; a closed connection still hands out
     * the streams that came before the close. */
    for (;;) {
        if (h->handle_freed) {
            rc = conn_check(h);
            break;
        }
        if (h->accepted[uni] < ir_conn_peer_streams(h->c, uni))
            break;
        if ((rc = conn_check(h)) != IROH_OK ||
            (rc = wait_conn(h, W_ACCEPT, 0, NULL, &d, "no stream")) != IROH_OK)
            break;
    }
    if (rc == IROH_OK) {
        uint64_t id = ir_conn_peer_stream_id(h->c, uni, h->accepted[uni]);
        iroh_recv_stream *r = new_recv(h, id);
        iroh_send_stream *w = send && r ? new_send(h, id) : NULL;
        if (r && (!send || w)) {
            h->accepted[uni]++;
            *recv = r;
            if (send) {
                w->h.held = 1;
                ir_conn_stream_hold(h->c, id, 1);
                *send = w;
            }
        } else {
            /* out of memory: give back what was made; the stream stays to be accepted */
            if (r) {
                h->refs--;
                free(r);
            }
            rc = ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
        }
    }
    conn_leave(h);
    pthread_mutex_unlock(&ep->mu);
    return rc;
}

int iroh_connection_accept_bi(iroh_connection *c, int timeout_ms, iroh_send_stream **send,
                              iroh_recv_stream **recv)
{
    int rc = check_args(c && send && recv, timeout_ms);
    if (rc != IROH_OK)
        return rc;
    return accept_stream(c, 0, timeout_ms, send, recv);
}

int iroh_connection_accept_uni(iroh_connection *c, int timeout_ms, iroh_recv_stream **recv)
{
    int rc = check_args(c && recv, timeout_ms);
    if (rc != IROH_OK)
        return rc;
    return accept_stream(c, 1, timeout_ms, NULL, recv);
}

int iroh_connection_send_datagram(iroh_connection *c, const void *data, size_t len)
{
    if (!c || (!data && len))
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    iroh_endpoint *ep = c->ep;
    pthread_mutex_lock(&ep->mu);
    int rc = IROH_OK;
    if (is_closed(c))
        rc = conn_error(c);
    else {
        size_t max = ir_conn_datagram_max(c->c);
        if (len > max)
            rc = ir_fail(IROH_ERR_UNSUPPORTED, max ? "datagram of %zu bytes over the limit of %zu"
                                                   : "the peer does not take datagrams (%zu, %zu)",
                         len, max);
        else {
            int r = ir_conn_datagram_send(c->c, data, len);
            /* queue full: dropped, as the network could */
            rc = r < 0 && r != IR_QUIC_AGAIN ? quic_fail(r, "send a datagram") : IROH_OK;
        }
        wake(ep);
    }
    pthread_mutex_unlock(&ep->mu);
    return rc;
}

int iroh_connection_read_datagram(iroh_connection *c, int timeout_ms, void *buf, size_t cap,
                                  size_t *len)
{
    int rc = check_args(c && (buf || !cap) && len, timeout_ms);
    if (rc != IROH_OK)
        return rc;
    iroh_endpoint *ep = c->ep;
    pthread_mutex_lock(&ep->mu);
    conn_enter(c);
    deadline d = deadline_in(timeout_ms);
    for (;;) {
        if (c->handle_freed) { /* nothing for a freed handle, even what came meanwhile */
            rc = conn_check(c);
            break;
        }
        long n = ir_conn_datagram_recv(c->c, buf, cap);
        if (n >= 0) {
            *len = (size_t)n;
            rc = IROH_OK;
            break;
        }
        if ((rc = conn_check(c)) != IROH_OK ||
            (rc = wait_conn(c, W_DATAGRAM, 0, NULL, &d, "no datagram")) != IROH_OK)
            break;
    }
    conn_leave(c);
    pthread_mutex_unlock(&ep->mu);
    return rc;
}

size_t iroh_connection_max_datagram_size(const iroh_connection *c)
{
    pthread_mutex_lock(&c->ep->mu);
    size_t n = ir_conn_datagram_max(c->c);
    pthread_mutex_unlock(&c->ep->mu);
    return n;
}

void iroh_connection_close(iroh_connection *c, uint64_t code, const char *reason)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->ep->mu);
    ir_conn_close(c->c, 1, code, reason ? reason : "", ir_now_ns());
    wake(c->ep);
    wake_kinds(c->waiters, W_ALL);
    pthread_mutex_unlock(&c->ep->mu);
}

int iroh_connection_closed(iroh_connection *c, int timeout_ms)
{
    int rc = check_args(c != NULL, timeout_ms);
    if (rc != IROH_OK)
        return rc;
    iroh_endpoint *ep = c->ep;
    pthread_mutex_lock(&ep->mu);
    conn_enter(c);
    deadline d = deadline_in(timeout_ms);
    for (;;) {
        if (c->handle_freed) {
            rc = ir_fail(IROH_ERR_CLOSED, "the connection was freed");
            break;
        }
        if (is_closed(c) || ep->closed)
            break;
        if (wait_on(ep, &c->waiters, W_STATE, 0, NULL, &d) != 0) {
            rc = ir_fail(IROH_ERR_TIMEOUT, "still open after %d ms", timeout_ms);
            break;
        }
    }
    conn_leave(c);
    pthread_mutex_unlock(&ep->mu);
    return rc;
}

void iroh_connection_close_reason(const iroh_connection *c, iroh_close_reason *out)
{
    pthread_mutex_lock(&c->ep->mu);
    memset(out, 0, sizeof *out);
    const ir_close_info *ci = ir_conn_close_info(c->c);
    if (ci->closed) {
        out->by_peer = ci->by_peer;
        out->code = ci->code;
        snprintf(out->reason, sizeof out->reason, "%s", ci->reason);
        if (ci->idle_timeout)
            out->kind = IROH_CLOSE_TIMED_OUT;
        else if (ci->reset)
            out->kind = IROH_CLOSE_RESET;
        else if (!ci->by_peer && ci->application)
            out->kind = IROH_CLOSE_LOCAL;
        else if (ci->application)
            out->kind = IROH_CLOSE_APPLICATION;
        else
            out->kind = IROH_CLOSE_TRANSPORT;
    }
    pthread_mutex_unlock(&c->ep->mu);
}

void iroh_connection_stats_get(const iroh_connection *c, iroh_connection_stats *out)
{
    ir_conn_stats st;
    pthread_mutex_lock(&c->ep->mu);
    ir_conn_get_stats(c->c, &st);
    pthread_mutex_unlock(&c->ep->mu);
    memset(out, 0, sizeof *out);
    out->rtt_us = st.rtt_ns / 1000;
    out->min_rtt_us = st.min_rtt_ns / 1000;
    out->cwnd = st.cwnd;
    out->bytes_in_flight = st.bytes_in_flight;
    out->packets_sent = st.pkts_sent;
    out->packets_received = st.pkts_recv;
    out->packets_lost = st.pkts_lost;
    out->bytes_sent = st.bytes_sent;
    out->bytes_received = st.bytes_recv;
    out->path_mtu = st.max_datagram;
    out->retried = st.retried;
}

int iroh_connection_path(iroh_connection *h, iroh_socket_addr *addr, char *relay_url, size_t len)
{
    if (!h)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    iroh_endpoint *ep = h->ep;
    pthread_mutex_lock(&ep->mu);
    const char *url = NULL;
    iroh_socket_addr tmp;
    ir_conn_path_info sel;
    int rc = ir_api_selected_path(h->c, &sel)
                 ? ir_ep_path_info(ep->ep, &sel.addr, addr ? addr : &tmp, &url)
                 : -1;
    if (rc == 1 && relay_url && len) {
        if (strlen(url) >= len)
            rc = ir_fail(IROH_ERR_BUFFER_TOO_SMALL, "the buffer is too small");
        else
            strcpy(relay_url, url);
    } else if (rc < 0) {
        rc = ir_fail(IROH_ERR_STATE, "no path");
    }
    pthread_mutex_unlock(&ep->mu);
    return rc;
}

uint64_t iroh_connection_rtt_us(const iroh_connection *c)
{
    iroh_connection_stats st;
    iroh_connection_stats_get(c, &st);
    return st.rtt_us;
}

static int valid_timeout(const void *handle, int timeout_ms)
{
    if (!handle || timeout_ms < -1)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "a handle and a time limit of -1 (none) or "
                                                  "more are needed");
    return IROH_OK;
}

int iroh_connection_set_timeout(iroh_connection *c, int timeout_ms)
{
    int rc = valid_timeout(c, timeout_ms);
    if (rc != IROH_OK)
        return rc;
    pthread_mutex_lock(&c->ep->mu);
    c->timeout_ms = timeout_ms;
    pthread_mutex_unlock(&c->ep->mu);
    return IROH_OK;
}

void iroh_connection_free(iroh_connection *c)
{
    if (!c)
        return;
    iroh_endpoint *ep = c->ep;
    pthread_mutex_lock(&ep->mu);
    c->handle_freed = 1;
    if (c->users)
        wake_kinds(c->waiters, W_ALL); /* calls blocked on it return */
    unref(c);
    pthread_mutex_unlock(&ep->mu);
}

/* ---- streams ----------------------------------------------------------------------------- */

uint64_t iroh_send_stream_id(const iroh_send_stream *s)
{
    return s->h.id;
}

uint64_t iroh_recv_stream_id(const iroh_recv_stream *s)
{
    return s->h.id;
}

static int stream_set_timeout(stream_handle *s, int timeout_ms)
{
    int rc = valid_timeout(s, timeout_ms);
    if (rc != IROH_OK)
        return rc;
    pthread_mutex_lock(&s->conn->ep->mu);
    s->timeout_ms = timeout_ms;
    pthread_mutex_unlock(&s->conn->ep->mu);
    return IROH_OK;
}

int iroh_send_stream_set_timeout(iroh_send_stream *s, int timeout_ms)
{
    return stream_set_timeout(s ? &s->h : NULL, timeout_ms);
}

int iroh_recv_stream_set_timeout(iroh_recv_stream *s, int timeout_ms)
{
    return stream_set_timeout(s ? &s->h : NULL, timeout_ms);
}

static int write_some(iroh_send_stream *s, const uint8_t *data, size_t len, size_t *written, int all)
{
    iroh_connection *h = s->h.conn;
    iroh_endpoint *ep = h->ep;
    pthread_mutex_lock(&ep->mu);
    stream_enter(&s->h);
    s->writers++;
    deadline d = deadline_in(s->h.timeout_ms);
    size_t done = 0;
    int rc = IROH_OK, last_look = 0;
    if (s->finished || s->reset)
        rc = ir_fail(IROH_ERR_STATE, "the stream is finished");
    while (rc == IROH_OK && (done < len || len == 0)) {
        if ((rc = stream_check(&s->h)) != IROH_OK)
            break;
        long w = ir_conn_stream_write(h->c, s->h.id, data + done, len - done, 0);
        if (w < 0) {
            rc = quic_fail(w, "write");
            break;
        }
        done += (size_t)w;
        if (w > 0)
            wake(ep);
        if (len == 0 || (done > 0 && !all) || done == len)
            break;
        if (last_look) {
            rc = ir_fail(IROH_ERR_TIMEOUT, "no room in the stream's send buffer within %d ms",
                         d.ms);
            break;
        }
        /* the core says "writable" once half its buffer is free, not at the first byte:
         * when the time is up, one more look takes whatever room there is */
        if (wait_on(ep, &h->waiters, W_WRITE, s->h.id, &s->h, &d) != 0)
            last_look = 1;
    }
    if (written)
        *written = done;
    s->writers--;
    stream_leave(&s->h);
    pthread_mutex_unlock(&ep->mu);
    return rc;
}

int iroh_send_stream_write(iroh_send_stream *s, const void *data, size_t len, size_t *written)
{
    if (!s || (!data && len))
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    return write_some(s, data, len, written, 0);
}

int iroh_send_stream_write_all(iroh_send_stream *s, const void *data, size_t len)
{
    if (!s || (!data && len))
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    if (len == 0)
        return IROH_OK;
    return write_some(s, data, len, NULL, 1);
}

int iroh_send_stream_finish(iroh_send_stream *s)
{
    if (!s)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    iroh_connection *h = s->h.conn;
    iroh_endpoint *ep = h->ep;
    pthread_mutex_lock(&ep->mu);
    int rc = IROH_OK;
    if (s->finished || s->reset)
        rc = ir_fail(IROH_ERR_STATE, "the stream is already finished");
    else if (is_closed(h))
        rc = conn_error(h);
    else {
        long w = ir_conn_stream_write(h->c, s->h.id, NULL, 0, 1);
        if (w < 0)
            rc = quic_fail(w, "finish the stream");
        else
            s->finished = 1;
    }
    wake(ep);
    wake_handle(h->waiters, &s->h); /* a write blocked on it meanwhile fails now */
    pthread_mutex_unlock(&ep->mu);
    return rc;
}

int iroh_send_stream_flushed(iroh_send_stream *s, int timeout_ms)
{
    int rc = check_args(s != NULL, timeout_ms);
    if (rc != IROH_OK)
        return rc;
    iroh_connection *h = s->h.conn;
    iroh_endpoint *ep = h->ep;
    pthread_mutex_lock(&ep->mu);
    stream_enter(&s->h);
    deadline d = deadline_in(timeout_ms);
    for (;;) {
        if (s->h.freed) { /* first: a freed handle hears nothing more */
            rc = stream_check(&s->h);
            break;
        }
        uint64_t code = 0;
        int res = ir_conn_stream_send_result(h->c, s->h.id, &code);
        if (res == IR_SEND_DELIVERED)
            break;
        if (res == IR_SEND_STOPPED) {
            rc = ir_fail(IROH_ERR_STREAM_STOPPED, "the peer stopped the stream (code %llu) "
                         "before it had all of it", (unsigned long long)code);
            break;
        }
        if (res == IR_SEND_RESET) {
            rc = ir_fail(IROH_ERR_STATE, "the stream was reset (code %llu)",
                         (unsigned long long)code);
            break;
        }
        if ((rc = stream_check(&s->h)) != IROH_OK ||
            (rc = wait_conn(h, W_FLUSHED, s->h.id, &s->h, &d, "not acknowledged")) != IROH_OK)
            break;
    }
    stream_leave(&s->h);
    pthread_mutex_unlock(&ep->mu);
    return rc;
}

int iroh_send_stream_reset(iroh_send_stream *s, uint64_t code)
{
    if (!s)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    iroh_endpoint *ep = s->h.conn->ep;
    pthread_mutex_lock(&ep->mu);
    ir_conn_stream_reset(s->h.conn->c, s->h.id, code);
    s->reset = 1;
    wake(ep);
    wake_handle(s->h.conn->waiters, &s->h); /* a blocked write fails, flushed answers */
    pthread_mutex_unlock(&ep->mu);
    return IROH_OK;
}

void iroh_send_stream_free(iroh_send_stream *s)
{
    if (!s)
        return;
    iroh_connection *h = s->h.conn;
    iroh_endpoint *ep = h->ep;
    pthread_mutex_lock(&ep->mu);
    if (!s->finished && !s->reset && !is_closed(h)) {
        if (s->writers) {
            /* a write is blocked on it: what it was to send is cut short, so the peer is
             * told so (a reset) rather than shown a clean end after part of it */
            ir_conn_stream_reset(h->c, s->h.id, 0);
            s->reset = 1;
        } else {
            ir_conn_stream_write(h->c, s->h.id, NULL, 0, 1);
            s->finished = 1;
        }
        wake(ep);
    }
    stream_free(&s->h);
    pthread_mutex_unlock(&ep->mu);
}

/* one read with the endpoint's mutex held and the caller a user of the stream */
static int read_locked(iroh_recv_stream *s, void *buf, size_t cap, size_t *n, const deadline *d)
{
    iroh_connection *h = s->h.conn;
    *n = 0;
    for (;;) {
        if (s->h.freed)
            return ir_fail(IROH_ERR_CLOSED, "the stream was freed");
        if (s->stopped)
            return ir_fail(IROH_ERR_STATE, "the stream was stopped");
        if (s->ended)
            return IROH_OK;
        uint64_t code = 0;
        long r = ir_conn_stream_read(h->c, s->h.id, buf, cap, &code);
        if (r > 0) {
            *n = (size_t)r;
            wake(h->ep); /* window updates to send */
            return IROH_OK;
        }
        if (r == 0) {
            s->ended = 1;
            return IROH_OK;
        }
        if (r == IR_QUIC_STREAM_RESET) {
            s->reset_code = code;
            return ir_fail(ir_api_status_from_quic(r), "the peer reset the stream with code %llu",
                           (unsigned long long)code);
        }
        if (is_closed(h))
            return conn_error(h);
        if (r != IR_QUIC_AGAIN)
            return quic_fail(r, "read the stream");
        int rc = wait_conn(h, W_READ, s->h.id, &s->h, d, "no data");
        if (rc != IROH_OK)
            return rc;
    }
}

int iroh_recv_stream_read(iroh_recv_stream *s, void *buf, size_t cap, size_t *n)
{
    if (!s || (!buf && cap) || !n)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    iroh_endpoint *ep = s->h.conn->ep;
    pthread_mutex_lock(&ep->mu);
    stream_enter(&s->h);
    deadline d = deadline_in(s->h.timeout_ms);
    int rc = read_locked(s, buf, cap, n, &d);
    stream_leave(&s->h);
    pthread_mutex_unlock(&ep->mu);
    return rc;
}

int iroh_recv_stream_read_exact(iroh_recv_stream *s, void *buf, size_t len)
{
    if (!s || (!buf && len))
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    iroh_endpoint *ep = s->h.conn->ep;
    pthread_mutex_lock(&ep->mu);
    stream_enter(&s->h);
    deadline d = deadline_in(s->h.timeout_ms);
    int rc = IROH_OK;
    size_t got = 0;
    while (got < len) {
        size_t n;
        if ((rc = read_locked(s, (uint8_t *)buf + got, len - got, &n, &d)) != IROH_OK)
            break;
        if (n == 0) {
            rc = ir_fail(IROH_ERR_FINISHED_EARLY, "the stream ended after %zu of %zu bytes",
                         got, len);
            break;
        }
        got += n;
    }
    stream_leave(&s->h);
    pthread_mutex_unlock(&ep->mu);
    return rc;
}

int iroh_recv_stream_read_to_end(iroh_recv_stream *s, size_t limit, uint8_t **out, size_t *len)
{
    if (!s || !out || !len)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    size_t cap = limit < 65536 ? limit + 1 : 65536, n = 0;
    uint8_t *buf = malloc(cap ? cap : 1);
    if (!buf)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    iroh_connection *h = s->h.conn;
    iroh_endpoint *ep = h->ep;
    pthread_mutex_lock(&ep->mu);
    stream_enter(&s->h);
    deadline d = deadline_in(s->h.timeout_ms);
    int rc = IROH_OK;
    for (;;) {
        if (n == cap) {
            if (cap > limit) {
                rc = ir_fail(IROH_ERR_TOO_LONG, "the stream is longer than %zu bytes", limit);
                break;
            }
            size_t nc = cap * 2 > limit + 1 ? limit + 1 : cap * 2;
            uint8_t *p = realloc(buf, nc);
            if (!p) {
                rc = ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
                break;
            }
            buf = p;
            cap = nc;
        }
        size_t got;
        if ((rc = read_locked(s, buf + n, cap - n, &got, &d)) != IROH_OK || got == 0)
            break;
        n += got;
        if (n > limit) {
            ir_conn_stream_stop(h->c, s->h.id, 0);
            s->stopped = 1;
            wake(ep);
            rc = ir_fail(IROH_ERR_TOO_LONG, "the stream is longer than %zu bytes", limit);
            break;
        }
    }
    stream_leave(&s->h);
    pthread_mutex_unlock(&ep->mu);
    if (rc != IROH_OK) {
        free(buf);
        return rc;
    }
    *out = buf;
    *len = n;
    return IROH_OK;
}

uint64_t iroh_recv_stream_reset_code(const iroh_recv_stream *s)
{
    return s->reset_code;
}

int iroh_recv_stream_stop(iroh_recv_stream *s, uint64_t code)
{
    if (!s)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    iroh_endpoint *ep = s->h.conn->ep;
    pthread_mutex_lock(&ep->mu);
    if (!s->ended && !s->stopped) {
        ir_conn_stream_stop(s->h.conn->c, s->h.id, code);
        s->stopped = 1;
        wake(ep);
        if (s->h.users)
            wake_handle(s->h.conn->waiters, &s->h); /* a read blocked on it fails now */
    }
    pthread_mutex_unlock(&ep->mu);
    return IROH_OK;
}

void iroh_recv_stream_free(iroh_recv_stream *s)
{
    if (!s)
        return;
    iroh_connection *h = s->h.conn;
    iroh_endpoint *ep = h->ep;
    pthread_mutex_lock(&ep->mu);
    if (!s->ended && !s->stopped && !is_closed(h)) {
        ir_conn_stream_stop(h->c, s->h.id, 0);
        s->stopped = 1;
        wake(ep);
    }
    stream_free(&s->h);
    pthread_mutex_unlock(&ep->mu);
}
