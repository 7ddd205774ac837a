#include "endpoint/relay_link_core.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"

#define NS_PER_MS 1000000ull

typedef struct queued {
    uint64_t at;
    uint8_t dst[32];
    uint16_t seg;
    size_t len;
    uint8_t *data;
} queued;

struct ir_rlc {
    ir_rlc_config cfg;
    char url[512];
    char host[300];
    char path[512];
    char *token;
    ir_rlc_state st;
    uint64_t attempt;
    int wanted, forever;
    uint64_t last_used;
    ir_relay_client *cli;
    int established; /* the first keepalive Pong arrived on this connection */
    uint32_t backoff_ms;
    uint64_t retry_at;
    uint64_t latency;
    uint64_t connects;
    uint64_t failures, closes; /* attempts that failed; connections (up) that ended */
    int up;                    /* this connection was authenticated (counted in connects) */
    char err[256]; /* why the last attempt failed */
    queued q[IR_RLC_QUEUE_MAX];
    int qn;
};

static int copy_str(char *dst, size_t cap, const char *src)
{
    if (!src)
        src = "";
    size_t n = strlen(src);
    if (n >= cap)
        return -1;
    memcpy(dst, src, n + 1);
    return 0;
}

int ir_rlc_new(const ir_rlc_config *cfg, ir_rlc **out)
{
    ir_rlc *c = calloc(1, sizeof *c);
    if (!c)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    c->cfg = *cfg;
    if (copy_str(c->url, sizeof c->url, cfg->url) || copy_str(c->host, sizeof c->host, cfg->host) ||
        copy_str(c->path, sizeof c->path, cfg->path ? cfg->path : "/relay")) {
        free(c);
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "relay link: URL too long");
    }
    if (cfg->auth_token && !(c->token = strdup(cfg->auth_token))) {
        free(c);
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    }
    if (!c->cfg.random) {
        c->cfg.random = ir_random_bytes;
        c->cfg.random_ctx = NULL;
    }
    c->cfg.url = c->url;
    c->cfg.host = c->host;
    c->cfg.path = c->path;
    c->cfg.auth_token = c->token;
    *out = c;
    return IROH_OK;
}

static void drop_queue(ir_rlc *c)
{
    for (int i = 0; i < c->qn; i++)
        free(c->q[i].data);
    c->qn = 0;
}

void ir_rlc_free(ir_rlc *c)
{
    if (!c)
        return;
    ir_relay_client_free(c->cli);
    drop_queue(c);
    free(c->token);
    free(c);
}

ir_rlc_state ir_rlc_get_state(const ir_rlc *c)
{
    return c->st;
}

uint64_t ir_rlc_attempt(const ir_rlc *c)
{
    return c->attempt;
}

int ir_rlc_ready(const ir_rlc *c)
{
    return c->st == IR_RLC_UP && ir_relay_client_state(c->cli) == IR_RELAY_CLIENT_READY;
}

int ir_rlc_established(const ir_rlc *c)
{
    return ir_rlc_ready(c) && c->established;
}

uint64_t ir_rlc_latency(const ir_rlc *c)
{
    return c->latency;
}

const char *ir_rlc_last_error(const ir_rlc *c)
{
    return c->err;
}

uint64_t ir_rlc_connects(const ir_rlc *c)
{
    return c->connects;
}

void ir_rlc_counts(const ir_rlc *c, uint64_t *failures, uint64_t *closes)
{
    *failures = c->failures;
    *closes = c->closes;
}

int ir_rlc_queued(const ir_rlc *c)
{
    return c->qn;
}

uint64_t ir_rlc_retry_at(const ir_rlc *c)
{
    return c->st == IR_RLC_BACKOFF ? c->retry_at : 0;
}

/* failure: the attempt failed (counted as such unless it was up) */
static void close_client(ir_rlc *c, int failure)
{
    if (c->up)
        c->closes++;
    else if (failure)
        c->failures++;
    c->up = 0;
    ir_relay_client_free(c->cli);
    c->cli = NULL;
    c->established = 0;
}

/* The attempt failed (or the connection broke): wait before the next one. A connection
 * that had been established is retried at once (spec relay.md 6). */
static void failed(ir_rlc *c, uint64_t now, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void failed(ir_rlc *c, uint64_t now, const char *fmt, ...)
{
    char text[sizeof c->err];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap); /* the arguments may point into c->err */
    va_end(ap);
    memcpy(c->err, text, sizeof text);
    int was_established = c->established;
    close_client(c, 1);
    if (!c->wanted) {
        c->st = IR_RLC_IDLE;
        drop_queue(c);
        return;
    }
    uint32_t delay;
    if (was_established) {
        c->backoff_ms = 0;
        delay = 0;
    } else {
        c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : IR_RLC_BACKOFF_MIN_MS;
        if (c->backoff_ms > IR_RLC_BACKOFF_MAX_MS)
            c->backoff_ms = IR_RLC_BACKOFF_MAX_MS;
        uint32_t jitter;
        c->cfg.random(c->cfg.random_ctx, (uint8_t *)&jitter, sizeof jitter);
        delay = c->backoff_ms / 2 + jitter % (c->backoff_ms / 2 + 1); /* [b/2, b] */
    }
    IR_LOG(was_established ? IR_LOG_INFO : IR_LOG_DEBUG, "relay %s: %s; retrying in %u ms",
           c->url, c->err, delay);
    c->st = IR_RLC_BACKOFF;
    c->retry_at = now + delay * NS_PER_MS;
}

static void start(ir_rlc *c)
{
    c->attempt++;
    c->st = IR_RLC_CONNECTING;
}

void ir_rlc_transport_failed(ir_rlc *c, const char *why, uint64_t now)
{
    if (c->st != IR_RLC_CONNECTING)
        return;
    failed(c, now, "%s", why);
}

void ir_rlc_transport_up(ir_rlc *c, const char *client_auth, uint64_t now)
{
    if (c->st != IR_RLC_CONNECTING)
        return;
    ir_relay_client_config cc;
    ir_relay_client_config_init(&cc);
    cc.client_auth = client_auth;
    cc.secret_key = c->cfg.key;
    cc.host = c->host;
    cc.path = c->path;
    cc.auth_token = c->token;
    cc.random = c->cfg.random;
    cc.random_ctx = c->cfg.random_ctx;
    cc.now = now;
    if (ir_relay_client_new(&cc, &c->cli) != IROH_OK) {
        failed(c, now, "relay client: %s", iroh_last_error());
        return;
    }
    c->st = IR_RLC_UP;
}

void ir_rlc_recv(ir_rlc *c, const uint8_t *data, size_t len, uint64_t now)
{
    if (c->st == IR_RLC_UP)
        ir_relay_client_recv(c->cli, data, len, now);
}

void ir_rlc_eof(ir_rlc *c, const char *why)
{
    if (c->st == IR_RLC_UP)
        ir_relay_client_eof(c->cli, why);
}

size_t ir_rlc_pending(const ir_rlc *c, const uint8_t **data)
{
    if (c->st != IR_RLC_UP)
        return 0;
    return ir_relay_client_pending(c->cli, data);
}

void ir_rlc_consumed(ir_rlc *c, size_t n)
{
    if (c->st == IR_RLC_UP)
        ir_relay_client_consumed(c->cli, n);
}

static void send_now(ir_rlc *c, const uint8_t dst[32], const uint8_t *data, size_t len, size_t seg)
{
    int rc;
    if (seg >= len)
        rc = ir_relay_client_send(c->cli, dst, 0, data, len);
    else
        rc = ir_relay_client_send_batch(c->cli, dst, 0, (uint16_t)seg, data, len);
    if (rc != IROH_OK)
        IR_LOG(IR_LOG_TRACE, "relay %s: datagram dropped: %s", c->url, iroh_last_error());
}

static void flush_queue(ir_rlc *c, uint64_t now)
{
    for (int i = 0; i < c->qn; i++) {
        if (now - c->q[i].at < IR_RLC_QUEUE_AGE_NS)
            send_now(c, c->q[i].dst, c->q[i].data, c->q[i].len, c->q[i].seg);
        free(c->q[i].data);
    }
    c->qn = 0;
}

static void expire_queue(ir_rlc *c, uint64_t now)
{
    int k = 0;
    for (int i = 0; i < c->qn; i++) {
        if (now - c->q[i].at >= IR_RLC_QUEUE_AGE_NS)
            free(c->q[i].data);
        else
            c->q[k++] = c->q[i];
    }
    c->qn = k;
}

void ir_rlc_want(ir_rlc *c, int forever, uint64_t now)
{
    c->wanted = 1;
    if (forever > 0)
        c->forever = 1;
    else if (forever < 0)
        c->forever = 0;
    c->last_used = now;
    if (c->st == IR_RLC_IDLE) {
        c->backoff_ms = 0;
        start(c);
    }
}

void ir_rlc_send(ir_rlc *c, const uint8_t dst[32], const uint8_t *data, size_t len, size_t seg,
                 uint64_t now)
{
    ir_rlc_want(c, 0, now);
    if (ir_rlc_ready(c)) {
        send_now(c, dst, data, len, seg);
        return;
    }
    expire_queue(c, now);
    if (c->qn >= IR_RLC_QUEUE_MAX)
        return;
    queued *q = &c->q[c->qn];
    q->data = malloc(len);
    if (!q->data)
        return;
    memcpy(q->data, data, len);
    memcpy(q->dst, dst, 32);
    q->len = len;
    q->seg = (uint16_t)(seg >= len ? len : seg);
    q->at = now;
    c->qn++;
}

void ir_rlc_tick(ir_rlc *c, uint64_t now)
{
    if (c->qn)
        expire_queue(c, now);
    if (!c->forever && c->wanted && c->st != IR_RLC_IDLE &&
        now - c->last_used >= IR_RLC_IDLE_CLOSE_NS && c->qn == 0) {
        IR_LOG(IR_LOG_DEBUG, "relay %s: unused for 60 s, closing", c->url);
        c->wanted = 0;
        close_client(c, 0);
        c->st = IR_RLC_IDLE;
        return;
    }
    if (c->st == IR_RLC_BACKOFF && now >= c->retry_at)
        start(c);
}

void ir_rlc_pump(ir_rlc *c, uint64_t now)
{
    if (c->st != IR_RLC_UP)
        return;
    uint64_t t = ir_relay_client_timeout(c->cli);
    if (t && now >= t)
        ir_relay_client_on_timeout(c->cli, now);
    ir_relay_client_event ev;
    while (ir_relay_client_poll(c->cli, &ev)) {
        switch (ev.kind) {
        case IR_RELAY_EV_READY:
            c->connects++;
            c->up = 1;
            c->err[0] = 0;
            IR_LOG(IR_LOG_DEBUG, "relay %s: connected", c->url);
            flush_queue(c, now);
            break;
        case IR_RELAY_EV_DATAGRAM: {
            ir_relay_dgram_iter it;
            ir_relay_dgram_iter_init(&it, &ev.dgrams);
            const uint8_t *d;
            size_t dl;
            while (ir_relay_dgram_iter_next(&it, &d, &dl))
                c->cfg.recv(c->cfg.recv_ctx, c->cfg.idx, ev.id.bytes, (uint8_t *)d, dl, now);
            break;
        }
        case IR_RELAY_EV_STATUS:
            IR_LOG(IR_LOG_DEBUG, "relay %s: status %u", c->url, ev.status);
            break;
        default:
            break;
        }
    }
    if (ir_relay_client_state(c->cli) == IR_RELAY_CLIENT_READY && !c->established &&
        ir_relay_client_rtt(c->cli)) {
        c->established = 1;
        c->backoff_ms = 0;
    }
    if (ir_relay_client_rtt(c->cli))
        c->latency = ir_relay_client_rtt(c->cli);
}

void ir_rlc_settle(ir_rlc *c, uint64_t now)
{
    /* the only place a running client is given up (its events are all handled) */
    if (c->st == IR_RLC_UP && ir_relay_client_state(c->cli) == IR_RELAY_CLIENT_FAILED)
        failed(c, now, "%s", ir_relay_client_failure(c->cli));
}

void ir_rlc_process(ir_rlc *c, uint64_t now)
{
    ir_rlc_tick(c, now);
    ir_rlc_pump(c, now);
    ir_rlc_settle(c, now);
}

uint64_t ir_rlc_timeout(const ir_rlc *c)
{
    uint64_t t = 0;
    switch (c->st) {
    case IR_RLC_IDLE:
        return 0;
    case IR_RLC_BACKOFF:
        t = c->retry_at ? c->retry_at : 1;
        break;
    case IR_RLC_CONNECTING:
        break; /* the shell's deadlines */
    case IR_RLC_UP:
        t = ir_relay_client_timeout(c->cli);
        if (ir_relay_client_state(c->cli) == IR_RELAY_CLIENT_FAILED)
            t = 1; /* failed while sending: close and back off at the next round */
        break;
    }
    if (c->qn)
        t = ir_earliest(t, c->q[0].at + IR_RLC_QUEUE_AGE_NS);
    if (!c->forever)
        t = ir_earliest(t, c->last_used + IR_RLC_IDLE_CLOSE_NS);
    return t;
}

int ir_rlc_choose_home(int home, const int *established, const uint64_t *latency, size_t n)
{
    int best = -1;
    uint64_t best_lat = 0;
    for (size_t i = 0; i < n; i++) {
        if (!established[i])
            continue;
        if (best < 0 || latency[i] < best_lat) {
            best = (int)i;
            best_lat = latency[i];
        }
    }
    if (best < 0 || best == home)
        return home;
    if (home >= 0 && (size_t)home < n && established[home] &&
        best_lat * 3 >= latency[home] * 2)
        return home;
    return best;
}
