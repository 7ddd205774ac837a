/* The relay server's sans-IO core: the core object and a connection's life (accept, input
 * by state, graceful finish, linger, close, release) and the change list. The other
 * concerns are in server_*.c (see server_core.h); server.h says what the core offers. */
#include "server_core.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"

void ir_relay_server_config_init(ir_relay_server_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->listen = IR_RELAY_DEFAULT_LISTEN;
    cfg->header_timeout_ms = 5000;
    cfg->keepalive_idle_ms = 30000;
    cfg->handshake_timeout_ms = 30000;
    cfg->write_timeout_ms = 2000;
    cfg->ping_interval_ms = 15000;
    cfg->pong_timeout_ms = 5000;
    cfg->linger_ms = 2000;
    cfg->queue_datagrams = 512;
    cfg->queue_control = 512;
    cfg->queue_bytes = 4u << 20;
    cfg->max_connections = 100000;
}

uint64_t ir_rs_prng_next(ir_relay_core *core)
{
    uint64_t z = (core->prng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t ms(uint32_t v)
{
    return (uint64_t)v * NS_PER_MS;
}

int ir_relay_core_new(const ir_relay_server_config *cfg, ir_relay_random_fn rnd, void *rnd_ctx,
                      ir_relay_core **out)
{
    *out = NULL;
    ir_relay_core *core = calloc(1, sizeof *core);
    if (!core)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    ir_relay_server_config_init(&core->cfg);
    if (cfg) {
        core->cfg = *cfg;
        ir_relay_server_config d;
        ir_relay_server_config_init(&d);
#define DEFAULT(f) if (!core->cfg.f) core->cfg.f = d.f
        DEFAULT(header_timeout_ms);
        DEFAULT(keepalive_idle_ms);
        DEFAULT(handshake_timeout_ms);
        DEFAULT(write_timeout_ms);
        DEFAULT(ping_interval_ms);
        DEFAULT(pong_timeout_ms);
        DEFAULT(linger_ms);
        DEFAULT(queue_datagrams);
        DEFAULT(queue_control);
        DEFAULT(queue_bytes);
        DEFAULT(max_connections);
#undef DEFAULT
    }
    core->header_timeout = ms(core->cfg.header_timeout_ms);
    core->keepalive_idle = ms(core->cfg.keepalive_idle_ms);
    core->hs_timeout = ms(core->cfg.handshake_timeout_ms);
    core->write_timeout = ms(core->cfg.write_timeout_ms);
    core->ping_interval = ms(core->cfg.ping_interval_ms);
    core->pong_timeout = ms(core->cfg.pong_timeout_ms);
    core->linger = ms(core->cfg.linger_ms);
    core->rl_rate = core->cfg.rx_bytes_per_second;
    core->rl_burst = core->cfg.rx_max_burst_bytes ? core->cfg.rx_max_burst_bytes : core->rl_rate / 10;
    if (core->rl_rate && !core->rl_burst)
        core->rl_burst = 1;
    core->rnd = rnd ? rnd : ir_random_bytes;
    core->rnd_ctx = rnd_ctx;
    uint64_t seed[3];
    core->rnd(core->rnd_ctx, (uint8_t *)seed, sizeof seed);
    core->prng = seed[0];
    core->hash_k0 = seed[1];
    core->hash_k1 = seed[2];
    ir_relay_keycache_init(&core->keys);
    if (ir_rs_routing_init(core) < 0) {
        free(core);
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    }
    *out = core;
    return IROH_OK;
}

ir_relay_conn *ir_relay_core_next_changed(ir_relay_core *core)
{
    ir_relay_conn *c = core->changed_head;
    if (!c)
        return NULL;
    core->changed_head = c->changed_next;
    if (!core->changed_head)
        core->changed_tail = NULL;
    c->changed = 0;
    c->changed_next = NULL;
    return c;
}

ir_relay_conn *ir_relay_core_accept(ir_relay_core *core, uint64_t now)
{
    core->now = now;
    if (ir_rs_heap_reserve(core, core->nconns + 1) < 0)
        return NULL;
    ir_relay_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->conn_id = ++core->next_conn_id;
    c->state = CS_HTTP;
    c->heap_idx = NPOS;
    c->fd = -1;
    c->ctl_limit = core->cfg.queue_control;
    c->http_started = 1;
    c->request_at = now;
    c->t[T_HEAD] = now + core->header_timeout;
    c->all_next = core->all;
    if (core->all)
        core->all->all_prev = c;
    core->all = c;
    core->nconns++;
    core->st.accepts++;
    ir_rs_reschedule(core, c);
    ir_rs_mark_changed(core, c);
    return c;
}

static void free_io_state(ir_relay_conn *c)
{
    free(c->cur);
    c->cur = NULL;
    ir_rs_q_free(&c->ctl);
    ir_rs_q_free(&c->dg);
    free(c->http);
    c->http = NULL;
    if (c->ws_init) {
        ir_ws_parser_free(&c->ws);
        c->ws_init = 0;
    }
    free(c->token);
    c->token = NULL;
}

void ir_rs_conn_close(ir_relay_core *core, ir_relay_conn *c, uint64_t now, const char *why)
{
    if (c->state == CS_CLOSED)
        return;
    IR_LOG(IR_LOG_DEBUG, "relay: connection %llu closed: %s", (unsigned long long)c->conn_id, why);
    if (c->entry)
        ir_rs_unregister(core, c, now);
    c->state = CS_CLOSED;
    memset(c->t, 0, sizeof c->t);
    ir_rs_heap_remove(core, c);
    c->deadline = 0;
    free_io_state(c);
    ir_rs_mark_changed(core, c);
}

/* Ends the connection gracefully: what is queued is written, then the write side is shut
 * down and the peer gets a moment to close first (so that a response is not lost to a
 * reset). Input is ignored from now on. */
void ir_rs_conn_finish(ir_relay_core *core, ir_relay_conn *c, uint64_t now)
{
    if (c->state >= CS_CLOSING)
        return;
    if (c->entry)
        ir_rs_unregister(core, c, now);
    c->state = CS_CLOSING;
    uint64_t w = c->t[T_WRITE];
    memset(c->t, 0, sizeof c->t);
    c->t[T_WRITE] = w;
    free(c->http);
    c->http = NULL;
    if (c->ws_init) {
        ir_ws_parser_free(&c->ws);
        c->ws_init = 0;
    }
    if (!has_output(c))
        ir_rs_start_linger(core, c, now);
    ir_rs_reschedule(core, c);
    ir_rs_mark_changed(core, c);
}

void ir_rs_start_linger(ir_relay_core *core, ir_relay_conn *c, uint64_t now)
{
    if (c->eof) {
        ir_rs_conn_close(core, c, now, "finished");
        return;
    }
    c->state = CS_LINGER;
    c->shutdown_wr = 1;
    c->t[T_WRITE] = 0;
    c->t[T_LINGER] = now + core->linger;
    ir_rs_reschedule(core, c);
    ir_rs_mark_changed(core, c);
}

unsigned ir_relay_conn_status(const ir_relay_conn *c)
{
    if (c->state == CS_CLOSED)
        return IR_RELAY_CLOSED;
    unsigned s = 0;
    /* backpressure: a client that does not read its pongs (or HTTP responses) is not read,
     * nor one over its rate limit */
    if (!c->eof && (c->state >= CS_CLOSING || (c->ctl.n < c->ctl_limit && !ir_rs_rl_holding(c))))
        s |= IR_RELAY_WANT_READ;
    if (has_output(c))
        s |= IR_RELAY_WANT_WRITE;
    if (c->shutdown_wr)
        s |= IR_RELAY_WANT_SHUTDOWN;
    return s;
}

void ir_relay_core_recv(ir_relay_core *core, ir_relay_conn *c, uint8_t *data, size_t len, uint64_t now)
{
    core->now = now;
    if (c->state == CS_CLOSED)
        return;
    core->st.bytes_recv += len;
    if (c->state == CS_HTTP) {
        ir_rs_http_input(core, c, data, len, now);
    } else if (c->state == CS_AUTH || c->state == CS_RELAY) {
        int held = ir_rs_rl_applies(c) && ir_rs_rl_take(core, c, len, now);
        ir_rs_ws_input(core, c, data, len, now);
        if (held && c->state == CS_RELAY && !c->rl_status_sent && c->version == IR_RELAY_V2) {
            /* upstream main tells v2 clients once (1.0.x clients log the unknown status);
             * v1 has no such news (a Health text would be wrong) */
            ir_relay_frame f;
            memset(&f, 0, sizeof f);
            f.type = IR_RELAY_FT_STATUS;
            f.u.status = IR_RELAY_STATUS_RATE_LIMITED;
            if (ir_rs_send_frame(core, c, &f, now) == 0)
                c->rl_status_sent = 1;
        }
    }
    /* CLOSING, LINGER: input is discarded */
    if (c->state != CS_CLOSED)
        ir_rs_reschedule(core, c);
    ir_rs_mark_changed(core, c);
}

void ir_relay_core_abort(ir_relay_core *core, ir_relay_conn *c, const char *why, uint64_t now)
{
    core->now = now;
    ir_rs_conn_close(core, c, now, why);
}

void ir_relay_core_eof(ir_relay_core *core, ir_relay_conn *c, uint64_t now)
{
    core->now = now;
    if (c->state == CS_CLOSED)
        return;
    c->eof = 1;
    if (c->state == CS_LINGER) {
        ir_rs_conn_close(core, c, now, "closed by the peer");
    } else if ((c->state == CS_HTTP && has_output(c)) || c->state == CS_CLOSING) {
        /* a client that half-closed after its request still gets the response */
        ir_rs_conn_finish(core, c, now);
        ir_rs_mark_changed(core, c);
    } else {
        ir_rs_conn_close(core, c, now, "closed by the peer");
    }
}

void ir_relay_core_release(ir_relay_core *core, ir_relay_conn *c)
{
    if (c->state != CS_CLOSED)
        ir_rs_conn_close(core, c, core->now, "released");
    if (c->changed) {
        /* unlink from the change list */
        ir_relay_conn **p = &core->changed_head, *prev = NULL;
        while (*p && *p != c) {
            prev = *p;
            p = &(*p)->changed_next;
        }
        if (*p) {
            *p = c->changed_next;
            if (core->changed_tail == c)
                core->changed_tail = prev;
        }
    }
    if (c->all_prev)
        c->all_prev->all_next = c->all_next;
    else
        core->all = c->all_next;
    if (c->all_next)
        c->all_next->all_prev = c->all_prev;
    core->nconns--;
    free(c);
}

void ir_relay_core_close_all(ir_relay_core *core, uint64_t now)
{
    core->now = now;
    for (ir_relay_conn *c = core->all; c; c = c->all_next)
        ir_rs_conn_close(core, c, now, "server shutting down");
}

void ir_relay_core_free(ir_relay_core *core)
{
    if (!core)
        return;
    ir_relay_conn *c = core->all;
    while (c) {
        ir_relay_conn *next = c->all_next;
        free_io_state(c);
        free(c);
        c = next;
    }
    ir_rs_routing_free(core);
    free(core->heap);
    free(core);
}

void ir_relay_conn_set_user(ir_relay_conn *c, void *user)
{
    c->user = user;
}

void *ir_relay_conn_user(const ir_relay_conn *c)
{
    return c->user;
}

void ir_relay_conn_set_exporter(ir_relay_conn *c, ir_relay_export_fn fn, void *ctx)
{
    c->exporter = fn;
    c->exporter_ctx = ctx;
}

void ir_relay_core_stats(const ir_relay_core *core, ir_relay_server_stats *out)
{
    *out = core->st;
    out->conns = core->nconns;
}
