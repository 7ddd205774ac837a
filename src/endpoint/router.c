/* The Router: an accept loop that hands each connection to the handler registered for
 * its ALPN, on a thread of its own (iroh's ProtocolHandler::accept on a spawned task). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "iroh.h"

#define MAX_PROTOCOLS 16

typedef struct protocol {
    char *alpn;
    iroh_protocol_handler fn;
    void *ctx;
} protocol;

struct iroh_router_builder {
    iroh_endpoint *ep;
    protocol p[MAX_PROTOCOLS];
    size_t n;
    int failed;
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
    handler_run *runs;
    size_t running;
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
    return rb;
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

static void *handler_main(void *arg)
{
    handler_run *run = arg;
    int rc = run->proto->fn(run->proto->ctx, run->conn);
    if (rc != 0) {
        iroh_endpoint_id peer;
        char hex[IROH_ID_SHORT_LEN];
        iroh_connection_remote_id(run->conn, &peer);
        iroh_endpoint_id_fmt_short(&peer, hex, sizeof hex);
        fprintf(stderr, "iroh router: handler for %s failed (%d) on a connection from %s\n",
                run->proto->alpn, rc, hex);
    }
    struct iroh_router *r = run->r;
    /* from here on shutdown leaves the connection alone */
    pthread_mutex_lock(&r->mu);
    run->conn_released = 1;
    pthread_mutex_unlock(&r->mu);
    iroh_connection_free(run->conn); /* closes with code 0 if still open */
    pthread_mutex_lock(&r->mu);
    run->done = 1;
    r->running--;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* joins handler threads that have returned */
static void reap(struct iroh_router *r, int all)
{
    for (;;) {
        handler_run *done = NULL, **pp;
        pthread_mutex_lock(&r->mu);
        for (pp = &r->runs; *pp; pp = &(*pp)->next) {
            if ((*pp)->done) {
                done = *pp;
                *pp = done->next;
                break;
            }
        }
        if (!done && all && r->runs) {
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
    return IROH_OK;
}

void iroh_router_free(iroh_router *r)
{
    if (!r)
        return;
    iroh_router_shutdown(r);
    free_protocols(r->p, r->n);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    iroh_endpoint_free(r->ep);
    free(r);
}
