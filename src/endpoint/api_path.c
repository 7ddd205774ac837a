/* The public API of addresses and paths (include/iroh.h): external addresses, network
 * changes, a connection's paths (iroh's Connection::paths()) and the path events. The
 * handles and their locking are api.c's (api_internal.h). */
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "endpoint/api_internal.h"
#include "endpoint/relay_link.h"

/* ---- external addresses ---------------------------------------------------------------- */

/* "IP:PORT" with a specified IP and a port, for an external address */
static int parse_external(const char *text, iroh_socket_addr *out)
{
    if (!text)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    if (iroh_socket_addr_parse(text, out) != IROH_OK)
        return ir_fail(IROH_ERR_INVALID_ADDR, "'%s' is not an IP:PORT address", text);
    static const uint8_t zero[16];
    if (out->port == 0 || memcmp(out->ip, zero, out->family == 4 ? 4 : 16) == 0)
        return ir_fail(IROH_ERR_INVALID_ADDR,
                       "'%s': an external address needs a specified IP and a port other than 0",
                       text);
    return IROH_OK;
}

int iroh_endpoint_builder_external_addr(iroh_endpoint_builder *b, const char *addr)
{
    if (!b)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    iroh_socket_addr a;
    int rc = parse_external(addr, &a);
    if (rc != IROH_OK)
        return rc;
    for (size_t i = 0; i < b->n_external; i++)
        if (memcmp(&b->external[i], &a, sizeof a) == 0)
            return IROH_OK;
    if (b->n_external == IR_EPC_MAX_EXTERNAL)
        return ir_fail(IROH_ERR_BUFFER_TOO_SMALL, "at most %d external addresses",
                       IR_EPC_MAX_EXTERNAL);
    b->external[b->n_external++] = a;
    return IROH_OK;
}

void ir_api_builder_externals(const iroh_endpoint_builder *b, ir_ep_config *cfg)
{
    cfg->external_addrs = b->external;
    cfg->n_external = b->n_external;
}

/* adds (add = 1) or removes an external address of a bound endpoint */
static int change_external(iroh_endpoint *ep, const char *addr, int add)
{
    if (!ep)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    iroh_socket_addr a;
    int rc = parse_external(addr, &a);
    if (rc != IROH_OK)
        return rc;
    pthread_mutex_lock(&ep->mu);
    if (ep->closed)
        rc = ir_fail(IROH_ERR_CLOSED, "the endpoint was closed");
    else if (add)
        rc = ir_ep_add_external_addr(ep->ep, &a);
    else if (ir_ep_remove_external_addr(ep->ep, &a) != 1)
        rc = ir_fail(IROH_ERR_STATE, "%s is not an external address of this endpoint", addr);
    pthread_mutex_unlock(&ep->mu);
    if (rc == IROH_OK)
        ir_api_wake(ep); /* the connections advertise the change */
    return rc;
}

int iroh_endpoint_add_external_addr(iroh_endpoint *ep, const char *addr)
{
    return change_external(ep, addr, 1);
}

int iroh_endpoint_remove_external_addr(iroh_endpoint *ep, const char *addr)
{
    return change_external(ep, addr, 0);
}

int iroh_endpoint_network_change(iroh_endpoint *ep)
{
    if (!ep)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    int rc = IROH_OK;
    pthread_mutex_lock(&ep->mu);
    if (ep->closed)
        rc = ir_fail(IROH_ERR_CLOSED, "the endpoint was closed");
    else
        ir_ep_network_change(ep->ep);
    pthread_mutex_unlock(&ep->mu);
    if (rc == IROH_OK)
        ir_api_wake(ep);
    return rc;
}

/* ---- paths ----------------------------------------------------------------------------- */

/* the path application data goes out on: the one marked sending, else the first open
 * one; 0 if the connection has none */
int ir_api_selected_path(const ir_conn *c, ir_conn_path_info *out)
{
    ir_conn_path_info p[IR_CONN_MAX_PATHS * 2];
    size_t n = ir_conn_paths(c, p, sizeof p / sizeof p[0]);
    if (n > sizeof p / sizeof p[0])
        n = sizeof p / sizeof p[0];
    for (size_t i = 0; i < n; i++) {
        if (p[i].sending) {
            *out = p[i];
            return 1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (!p[i].abandoned) {
            *out = p[i];
            return 1;
        }
    }
    return 0;
}

static void fill_info(iroh_endpoint *ep, const ir_conn_path_info *p, iroh_path_info *o)
{
    memset(o, 0, sizeof *o);
    o->id = p->id;
    const char *url = NULL;
    int kind = ir_ep_path_info(ep->ep, &p->addr, &o->addr, &url);
    o->kind = kind == 1 ? IROH_PATH_RELAY : IROH_PATH_DIRECT;
    o->relay_url = kind == 1 ? url : NULL;
    if (kind < 0)
        memset(&o->addr, 0, sizeof o->addr);
    o->rtt_us = p->rtt_ns / 1000;
    o->selected = p->sending;
    o->validated = p->validated;
    o->abandoned = p->abandoned;
    o->packets_sent = p->pkts_sent;
    o->packets_received = p->pkts_recv;
    o->packets_lost = p->pkts_lost;
    o->bytes_sent = p->bytes_sent;
    o->bytes_received = p->bytes_recv;
}

size_t iroh_connection_paths(iroh_connection *h, iroh_path_info *out, size_t cap)
{
    if (!h || (!out && cap))
        return 0;
    iroh_endpoint *ep = h->ep;
    ir_conn_path_info p[IR_CONN_MAX_PATHS * 2];
    pthread_mutex_lock(&ep->mu);
    size_t n = ir_conn_paths(h->c, p, sizeof p / sizeof p[0]);
    size_t have = n < sizeof p / sizeof p[0] ? n : sizeof p / sizeof p[0];
    /* exactly one selected while open: the one sending, or (before the connection chose
     * one) the path ir_api_selected_path names */
    ir_conn_path_info sel;
    int has_sel = ir_conn_get_state(h->c) < IR_CONN_CLOSING && ir_api_selected_path(h->c, &sel);
    for (size_t i = 0; i < have && i < cap; i++) {
        p[i].sending = has_sel && p[i].id == sel.id;
        fill_info(ep, &p[i], &out[i]);
    }
    pthread_mutex_unlock(&ep->mu);
    return n;
}

/* ---- path events ----------------------------------------------------------------------- */

static void emit_path(iroh_endpoint *ep, iroh_connection *h, iroh_event_kind kind,
                      uint64_t path_id, const ir_netaddr *addr, uint64_t code)
{
    if (!ep->event_cb)
        return;
    iroh_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = kind;
    ev.peer = h->peer;
    ev.inbound = h->inbound;
    ev.code = code;
    ev.path_id = path_id;
    if (addr && ir_ep_path_info(ep->ep, addr, &ev.path, &ev.relay_url) < 0)
        memset(&ev.path, 0, sizeof ev.path);
    ev.elapsed_us = (ir_now_ns() - h->started_ns) / 1000;
    ep->event_cb(ep->event_ctx, &ev);
}

/* the address of path id now, or NULL */
static int path_by_id(const ir_conn *c, uint64_t id, ir_conn_path_info *out)
{
    ir_conn_path_info p[IR_CONN_MAX_PATHS * 2];
    size_t n = ir_conn_paths(c, p, sizeof p / sizeof p[0]);
    if (n > sizeof p / sizeof p[0])
        n = sizeof p / sizeof p[0];
    for (size_t i = 0; i < n; i++) {
        if (p[i].id == id) {
            *out = p[i];
            return 1;
        }
    }
    return 0;
}

static void log_path(const char *what, iroh_endpoint *ep, uint64_t id, const ir_netaddr *a)
{
    if (!ir_log_enabled(IR_LOG_INFO))
        return;
    iroh_socket_addr sa;
    const char *url = NULL;
    char text[IROH_SOCKET_ADDR_LEN] = "?";
    int kind = ir_ep_path_info(ep->ep, a, &sa, &url);
    if (kind == 0)
        iroh_socket_addr_to_string(&sa, text, sizeof text);
    ir_log(IR_LOG_INFO, "path %llu of a connection %s %s %s", (unsigned long long)id, what,
           kind == 1 ? "relay" : "direct", kind == 1 ? url : text);
}

void ir_api_path_event(iroh_endpoint *ep, iroh_connection *h, const ir_event *ev)
{
    ir_conn_path_info p;
    int have = path_by_id(h->c, ev->stream_id, &p);
    const ir_netaddr *addr = have ? &p.addr : NULL;
    switch (ev->type) {
    case IR_EV_PATH_CHANGED:
        if (addr)
            log_path("moved to", ep, ev->stream_id, addr);
        emit_path(ep, h, IROH_EVENT_PATH_CHANGED, ev->stream_id, addr, 0);
        break;
    case IR_EV_PATH_VALIDATED:
        if (addr)
            log_path("validated at", ep, ev->stream_id, addr);
        emit_path(ep, h, IROH_EVENT_PATH_VALIDATED, ev->stream_id, addr, 0);
        break;
    case IR_EV_PATH_OPENED:
        if (addr)
            log_path("opened to", ep, ev->stream_id, addr);
        emit_path(ep, h, IROH_EVENT_PATH_OPENED, ev->stream_id, addr, 0);
        break;
    case IR_EV_PATH_ABANDONED:
        if (addr)
            log_path("abandoned:", ep, ev->stream_id, addr);
        emit_path(ep, h, IROH_EVENT_PATH_ABANDONED, ev->stream_id, addr, ev->code);
        break;
    default:
        break; /* IR_EV_PATH_SELECTED: ir_api_check_selected, after the round's events */
    }
}

void ir_api_check_selected(iroh_endpoint *ep, iroh_connection *h)
{
    if (!h->connected || ir_conn_get_state(h->c) >= IR_CONN_CLOSING)
        return;
    ir_conn_path_info p;
    if (!ir_api_selected_path(h->c, &p))
        return;
    if (h->sel_known && h->sel_id == p.id && ir_netaddr_eq(&h->sel_addr, &p.addr))
        return;
    h->sel_known = 1;
    h->sel_id = p.id;
    h->sel_addr = p.addr;
    log_path("selected:", ep, p.id, &p.addr);
    emit_path(ep, h, IROH_EVENT_PATH_SELECTED, p.id, &p.addr, 0);
}
