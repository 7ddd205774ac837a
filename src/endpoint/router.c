/* The Router: an accept loop that hands each connection to the handler registered for
 * its ALPN, on a thread of its own (iroh's ProtocolHandler::accept on a spawned task), up
 * to a number of handlers at once. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "iroh.h"

#define MAX_PROTOCOLS 16
#define DEFAULT_MAX_HANDLERS 1024
/* how a connection beyond the handler cap is closed */
#define BUSY_CODE 1
#define BUSY_REASON "too many connections"

typedef struct protocol {
    char *alpn;
    iroh_protocol_handler fn;
    void *ctx;
} protocol;

struct iroh_router_builder {
    iroh_endpoint *ep;
    protocol p[MAX_PROTOCOLS];
    size_t n;
    uint32_t max_handlers;
};

typedef struct handler_run {
    struct iroh_router *r;
    const protocol *proto;
    iroh_connection *conn;
    pthread_t th;
    int conn_released; /* the handler thread has let go of conn (under the router's mutex) */
    int done;
    struct handler_run *next;
} handler_run;

struct iroh_router {
    iroh_endpoint *ep;
    protocol p[MAX_PROTOCOLS];
    size_t n;
    pthread_t accept_th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping, shut_down;
    int shutdown_done; /* iroh_router_shutdown has finished (later callers wait for it) */
    handler_run *runs;
    size_t running;      /* handlers that have not returned yet */
    size_t max_handlers; /* beyond this many, new connections are closed at once */
    int cap_warned;      /* said once that the cap is reached (again once it drained) */
};

iroh_router_builder *iroh_router_builder_new(iroh_endpoint *ep)
{
    if (!ep) {
        ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL endpoint");
        return NULL;
    }
    iroh_router_builder *rb = calloc(1, sizeof *rb);
    if (!rb) {
        ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    rb->ep = ep;
    rb->max_handlers = DEFAULT_MAX_HANDLERS;
    return rb;
}

int iroh_router_builder_max_handlers(iroh_router_builder *rb, uint32_t n)
{
    if (!rb || !n)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "the handler limit must be positive");
    rb->max_handlers = n;
    return IROH_OK;
}

int iroh_router_builder_accept(iroh_router_builder *rb, const char *alpn,
                               iroh_protocol_handler fn, void *ctx)
{
    if (!rb || !alpn || !*alpn || !fn)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "an ALPN and a handler are needed");
    if (rb->n == MAX_PROTOCOLS)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "at most %d protocols", MAX_PROTOCOLS);
    for (size_t i = 0; i < rb->n; i++)
        if (strcmp(rb->p[i].alpn, alpn) == 0)
            return ir_fail(IROH_ERR_INVALID_ARGUMENT, "ALPN %s registered twice", alpn);
    rb->p[rb->n].alpn = strdup(alpn);
    if (!rb->p[rb->n].alpn)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    rb->p[rb->n].fn = fn;
    rb->p[rb->n].ctx = ctx;
    rb->n++;
    return IROH_OK;
}

/* the handler run on this thread, if it is a handler's: iroh_router_shutdown called from a
 * handler does not wait for that handler (it would wait for itself) */
static _Thread_local handler_run *current_run;

static void *handler_main(void *arg)
{
    handler_run *run = arg;
    current_run = run;
    int rc = run->proto->fn(run->proto->ctx, run->conn);
    current_run = NULL;
    struct iroh_router *r = run->r;
    /* its place under the cap is free from here on (before the connection's close goes
     * out, so a peer that sees the close can count on the place) */
    pthread_mutex_lock(&r->mu);
    r->running--;
    if (r->running < r->max_handlers / 2)
        r->cap_warned = 0;
    pthread_mutex_unlock(&r->mu);
    if (rc != 0) {
        iroh_endpoint_id peer;
        char hex[IROH_ID_SHORT_LEN];
        iroh_connection_remote_id(run->conn, &peer);
        iroh_endpoint_id_fmt_short(&peer, hex, sizeof hex);
        fprintf(stderr, "iroh router: handler for %s failed (%d) on a connection from %s\n",
                run->proto->alpn, rc, hex);
    }
    /* from here on shutdown leaves the connection alone */
    pthread_mutex_lock(&r->mu);
    run->conn_released = 1;
    pthread_mutex_unlock(&r->mu);
    iroh_connection_free(run->conn); /* closes with code 0 if still open */
    pthread_mutex_lock(&r->mu);
    run->done = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* joins handler threads that have returned; with all, waits for every handler but the
 * calling thread's own */
static void reap(struct iroh_router *r, int all)
{
    for (;;) {
        handler_run *done = NULL, **pp;
        int others = 0; /* runs still going, the caller's own aside */
        pthread_mutex_lock(&r->mu);
        for (pp = &r->runs; *pp; pp = &(*pp)->next) {
            if ((*pp)->done) {
                done = *pp;
                *pp = done->next;
                break;
            }
            if (*pp != current_run)
                others = 1;
        }
        if (!done && all && others) {
            pthread_cond_wait(&r->cv, &r->mu);
            pthread_mutex_unlock(&r->mu);
            continue;
        }
        pthread_mutex_unlock(&r->mu);
        if (!done)
            return;
        pthread_join(done->th, NULL);
        free(done);
    }
}

static void *accept_main(void *arg)
{
    struct iroh_router *r = arg;
    for (;;) {
        iroh_incoming *inc;
        int rc = iroh_endpoint_accept(r->ep, 200, &inc);
        reap(r, 0);
        pthread_mutex_lock(&r->mu);
        int stopping = r->stopping;
        pthread_mutex_unlock(&r->mu);
        if (rc == IROH_ERR_TIMEOUT) {
            if (stopping)
                break;
            continue;
        }
        if (rc != IROH_OK)
            break; /* endpoint closed */
        if (stopping) {
            iroh_incoming_refuse(inc);
            continue;
        }
        iroh_connection *conn;
        if (iroh_incoming_accept(inc, &conn) != IROH_OK)
            break; /* the endpoint was closed */
        char alpn[256];
        const protocol *proto = NULL;
        if (iroh_connection_alpn(conn, alpn, sizeof alpn) == IROH_OK)
            for (size_t i = 0; i < r->n; i++)
                if (strcmp(r->p[i].alpn, alpn) == 0)
                    proto = &r->p[i];
        if (!proto) {
            iroh_connection_free(conn); /* no handler: closed with code 0, as iroh */
            continue;
        }
        pthread_mutex_lock(&r->mu);
        int full = r->running >= r->max_handlers;
        int warn = full && !r->cap_warned;
        r->cap_warned |= full;
        pthread_mutex_unlock(&r->mu);
        if (full) {
            if (warn)
                IR_LOG(IR_LOG_WARN, "%zu protocol handlers running: closing new connections",
                       r->max_handlers);
            iroh_connection_close(conn, BUSY_CODE, BUSY_REASON);
            iroh_connection_free(conn);
            continue;
        }
        handler_run *run = calloc(1, sizeof *run);
        if (!run) {
            iroh_connection_free(conn);
            continue;
        }
        run->r = r;
        run->proto = proto;
        run->conn = conn;
        pthread_mutex_lock(&r->mu);
        run->next = r->runs;
        r->runs = run;
        r->running++;
        pthread_mutex_unlock(&r->mu);
        if (pthread_create(&run->th, NULL, handler_main, run) != 0) {
            pthread_mutex_lock(&r->mu);
            r->runs = run->next;
            r->running--;
            pthread_mutex_unlock(&r->mu);
            iroh_connection_close(conn, BUSY_CODE, "cannot start a handler");
            iroh_connection_free(conn);
            free(run);
        }
    }
    return NULL;
}

static void free_protocols(protocol *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(p[i].alpn);
}

void iroh_router_builder_free(iroh_router_builder *rb)
{
    if (!rb)
        return;
    free_protocols(rb->p, rb->n);
    free(rb);
}

int iroh_router_spawn(iroh_router_builder *rb, iroh_router **out)
{
    if (!rb || !out)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    struct iroh_router *r = calloc(1, sizeof *r);
    if (!r) {
        free_protocols(rb->p, rb->n);
        free(rb);
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    }
    r->ep = rb->ep;
    memcpy(r->p, rb->p, sizeof rb->p);
    r->n = rb->n;
    r->max_handlers = rb->max_handlers;
    free(rb);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    if (pthread_create(&r->accept_th, NULL, accept_main, r) != 0) {
        free_protocols(r->p, r->n);
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->cv);
        free(r);
        return ir_fail(IROH_ERR_IO, "cannot start the router thread");
    }
    *out = r;
    return IROH_OK;
}

iroh_endpoint *iroh_router_endpoint(const iroh_router *r)
{
    return r ? r->ep : NULL;
}

int iroh_router_shutdown(iroh_router *r)
{
    if (!r)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL router");
    pthread_mutex_lock(&r->mu);
    if (r->shut_down) {
        /* another thread is shutting down: return once it has finished (iroh_router_free
         * frees the router and its endpoint after this); a handler of this router cannot
         * wait for that, since the shutdown waits for it */
        while (!r->shutdown_done && !(current_run && current_run->r == r))
            pthread_cond_wait(&r->cv, &r->mu);
        pthread_mutex_unlock(&r->mu);
        return IROH_OK;
    }
    r->stopping = 1;
    r->shut_down = 1;
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->accept_th, NULL); /* stops within one accept timeout */
    /* close the connections the handlers have (application code 0, as iroh's endpoint
     * close), so that handlers blocked on them wake up and return */
    pthread_mutex_lock(&r->mu);
    for (handler_run *run = r->runs; run; run = run->next)
        if (!run->conn_released)
            iroh_connection_close(run->conn, 0, "shutting down");
    pthread_mutex_unlock(&r->mu);
    reap(r, 1); /* running handlers finish */
    iroh_endpoint_close(r->ep);
    pthread_mutex_lock(&r->mu);
    r->shutdown_done = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return IROH_OK;
}

void iroh_router_free(iroh_router *r)
{
    if (!r)
        return;
    iroh_router_shutdown(r);
    reap(r, 1); /* a handler that shut the router down itself may still be running */
    free_protocols(r->p, r->n);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    iroh_endpoint_free(r->ep);
    free(r);
}
