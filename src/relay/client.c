/* The relay client state machine (see client.h). */
#include "relay/client.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "relay/handshake.h"
#include "relay/http.h"
#include "relay/ws.h"

#define NS_PER_MS 1000000ull
#define MAX_EVENT_BYTES (4u * 1024 * 1024)
#define MAX_EVENTS 4096
#define SCRATCH 16384

typedef struct ev_node {
    struct ev_node *next;
    ir_relay_client_event ev;
    uint8_t data[]; /* DATAGRAM: the contents (ev.dgrams.contents points here) */
} ev_node;

struct ir_relay_client {
    ir_relay_client_config cfg;
    iroh_endpoint_id id;
    ir_relay_client_state_t state;
    int version;
    char key[IR_WS_KEY_LEN + 1];
    char reason[320];
    ir_http_reader *http; /* while CONNECTING */
    ir_ws_parser ws;
    int ws_init;
    int challenged; /* ClientAuth sent */
    /* output */
    ir_buf out;
    size_t out_off;
    /* timers (ns, 0: off) */
    uint64_t t_handshake, t_ping, t_pong;
    uint64_t ping_sent_at; /* when the outstanding ping went out */
    uint64_t rtt;          /* of the last answered ping (ns), 0 before one */
    uint8_t ping_data[8];
    int ping_outstanding;
    uint64_t now;
    /* events */
    ev_node *ev_head, *ev_tail;
    size_t ev_count, ev_bytes;
    ev_node *ev_current; /* the last polled event, freed at the next poll */
    ir_relay_client_stats st;
    uint8_t scratch[SCRATCH];
};

/* the defaults of relay/client.h, for every field left 0 */
static void apply_defaults(ir_relay_client_config *cfg)
{
    if (!cfg->handshake_timeout_ms)
        cfg->handshake_timeout_ms = 10000;
    if (!cfg->ping_interval_ms)
        cfg->ping_interval_ms = 15000;
    if (!cfg->pong_timeout_ms)
        cfg->pong_timeout_ms = 5000;
    if (!cfg->max_queued)
        cfg->max_queued = 1024 * 1024;
}

void ir_relay_client_config_init(ir_relay_client_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    apply_defaults(cfg);
}

/* ---- events ------------------------------------------------------------------------ */

/* A new event at the end of the queue, with room for extra bytes of data; NULL when out of
 * memory. */
static ev_node *push_event(ir_relay_client *c, ir_relay_client_event_kind kind, size_t extra)
{
    ev_node *n = calloc(1, sizeof *n + extra);
    if (!n)
        return NULL;
    n->ev.kind = kind;
    if (c->ev_tail)
        c->ev_tail->next = n;
    else
        c->ev_head = n;
    c->ev_tail = n;
    c->ev_count++;
    return n;
}

static void free_node(ir_relay_client *c, ev_node *n)
{
    if (!n)
        return;
    free(n);
}

int ir_relay_client_poll(ir_relay_client *c, ir_relay_client_event *ev)
{
    free_node(c, c->ev_current);
    c->ev_current = NULL;
    ev_node *n = c->ev_head;
    if (!n) {
        memset(ev, 0, sizeof *ev);
        return 0;
    }
    c->ev_head = n->next;
    if (!c->ev_head)
        c->ev_tail = NULL;
    c->ev_count--;
    if (n->ev.kind == IR_RELAY_EV_DATAGRAM)
        c->ev_bytes -= n->ev.dgrams.len;
    c->ev_current = n;
    *ev = n->ev;
    return 1;
}

/* ---- failure and output ------------------------------------------------------------ */

static void fail(ir_relay_client *c, const char *fmt, ...) IR_PRINTF(2, 3);
static void fail(ir_relay_client *c, const char *fmt, ...)
{
    if (c->state == IR_RELAY_CLIENT_FAILED)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->reason, sizeof c->reason, fmt, ap);
    va_end(ap);
    c->state = IR_RELAY_CLIENT_FAILED;
    /* nothing more is written: the caller closes the connection */
    c->out.len = 0;
    c->out_off = 0;
    c->t_handshake = c->t_ping = c->t_pong = 0;
    ev_node *n = push_event(c, IR_RELAY_EV_FAILED, 0);
    if (n)
        n->ev.reason = c->reason;
}

static size_t queued(const ir_relay_client *c)
{
    return c->out.len - c->out_off;
}

/* Appends one masked WebSocket frame (fresh mask from the random source). */
static int write_ws(ir_relay_client *c, uint8_t opcode, const uint8_t *payload, size_t len)
{
    uint8_t mask[4];
    c->cfg.random(c->cfg.random_ctx, mask, sizeof mask);
    /* compact consumed output before growing */
    if (c->out_off && c->out_off == c->out.len) {
        c->out.len = c->out_off = 0;
    } else if (c->out_off > 65536 && c->out_off * 2 > c->out.len) {
        memmove(c->out.data, c->out.data + c->out_off, c->out.len - c->out_off);
        c->out.len -= c->out_off;
        c->out_off = 0;
    }
    uint8_t hdr[IR_WS_MAX_HEADER];
    size_t hl = ir_ws_write_header(hdr, 1, opcode, len, mask);
    if (ir_buf_reserve(&c->out, hl + len) != IROH_OK) {
        c->out.oom = 0;
        return ir_fail(IROH_ERR_NO_MEMORY, "relay client: out of memory");
    }
    ir_buf_append(&c->out, hdr, hl);
    size_t at = c->out.len;
    ir_buf_append(&c->out, payload, len);
    ir_ws_mask(c->out.data + at, len, mask, 0);
    return IROH_OK;
}

/* Encodes a relay frame and queues it as one binary message. */
static int write_frame(ir_relay_client *c, const ir_relay_frame *f)
{
    uint8_t buf[128];
    size_t n;
    int rc = ir_relay_frame_encode(f, buf, sizeof buf, &n);
    if (rc < 0)
        return rc;
    rc = write_ws(c, IR_WS_OP_BINARY, buf, n);
    if (rc == IROH_OK)
        c->st.frames_sent++;
    return rc;
}

static void send_ping(ir_relay_client *c, uint64_t now)
{
    ir_relay_frame f;
    memset(&f, 0, sizeof f);
    f.type = IR_RELAY_FT_PING;
    c->cfg.random(c->cfg.random_ctx, c->ping_data, 8);
    memcpy(f.u.ping, c->ping_data, 8);
    if (write_frame(c, &f) < 0) {
        fail(c, "cannot queue a ping: %s", iroh_last_error());
        return;
    }
    c->st.pings_sent++;
    c->ping_outstanding = 1;
    c->ping_sent_at = now;
    c->t_pong = now + c->cfg.pong_timeout_ms * NS_PER_MS;
    c->t_ping = now + c->cfg.ping_interval_ms * NS_PER_MS;
}

size_t ir_relay_client_pending(const ir_relay_client *c, const uint8_t **data)
{
    if (c->state == IR_RELAY_CLIENT_FAILED || queued(c) == 0) {
        *data = NULL;
        return 0;
    }
    *data = c->out.data + c->out_off;
    return queued(c);
}

void ir_relay_client_consumed(ir_relay_client *c, size_t n)
{
    if (n > queued(c))
        n = queued(c);
    c->out_off += n;
    c->st.bytes_sent += n;
    if (c->out_off == c->out.len)
        c->out.len = c->out_off = 0;
}

/* ---- creation ---------------------------------------------------------------------- */

int ir_relay_client_new(const ir_relay_client_config *cfg, ir_relay_client **out)
{
    *out = NULL;
    if (!cfg || !cfg->host || !cfg->random)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "relay client: host and random source needed");
    ir_relay_client *c = calloc(1, sizeof *c);
    if (!c)
        return ir_fail(IROH_ERR_NO_MEMORY, "relay client: out of memory");
    c->cfg = *cfg;
    apply_defaults(&c->cfg);
    /* the config's strings are only needed here */
    c->cfg.host = c->cfg.path = c->cfg.auth_token = c->cfg.client_auth = NULL;
    iroh_secret_key_public(&cfg->secret_key, &c->id);
    ir_buf_init(&c->out);
    c->http = malloc(sizeof *c->http);
    if (!c->http) {
        free(c);
        return ir_fail(IROH_ERR_NO_MEMORY, "relay client: out of memory");
    }
    ir_http_reader_init(c->http);

    uint8_t rnd[16];
    cfg->random(cfg->random_ctx, rnd, sizeof rnd);
    ir_ws_make_key(rnd, c->key);
    ir_ws_request_opts o;
    memset(&o, 0, sizeof o);
    o.host = cfg->host;
    o.path = cfg->path;
    o.key = c->key;
    o.auth_token = cfg->auth_token;
    o.client_auth = cfg->client_auth;
    size_t cap = 512 + strlen(cfg->host) + (cfg->path ? strlen(cfg->path) : 0) +
                 (cfg->auth_token ? strlen(cfg->auth_token) : 0) +
                 (cfg->client_auth ? strlen(cfg->client_auth) : 0);
    size_t n = 0;
    int rc = ir_buf_reserve(&c->out, cap);
    if (rc == IROH_OK)
        rc = ir_ws_build_request(&o, (char *)c->out.data, cap, &n);
    if (rc != IROH_OK) {
        ir_relay_client_free(c);
        return rc;
    }
    c->out.len = n;
    c->state = IR_RELAY_CLIENT_CONNECTING;
    c->now = cfg->now;
    c->t_handshake = cfg->now + c->cfg.handshake_timeout_ms * NS_PER_MS;
    *out = c;
    return IROH_OK;
}

void ir_relay_client_free(ir_relay_client *c)
{
    if (!c)
        return;
    free(c->http);
    if (c->ws_init)
        ir_ws_parser_free(&c->ws);
    ir_buf_free(&c->out);
    free_node(c, c->ev_current);
    ev_node *n = c->ev_head;
    while (n) {
        ev_node *next = n->next;
        free_node(c, n);
        n = next;
    }
    free(c);
}

/* ---- receiving --------------------------------------------------------------------- */

static void on_datagram(ir_relay_client *c, const ir_relay_frame *f)
{
    c->st.datagrams_recv++;
    const ir_relay_datagrams *d = &f->u.dgram.d;
    if (d->len == 0)
        return; /* nothing to deliver */
    if (c->ev_count >= MAX_EVENTS || c->ev_bytes + d->len > MAX_EVENT_BYTES) {
        c->st.events_dropped++;
        return;
    }
    /* the event and a copy of the contents in one allocation */
    ev_node *n = push_event(c, IR_RELAY_EV_DATAGRAM, d->len);
    if (!n) {
        c->st.events_dropped++;
        return;
    }
    memcpy(n->data, d->contents, d->len);
    n->ev.id = f->u.dgram.id;
    n->ev.dgrams = *d;
    n->ev.dgrams.contents = n->data;
    c->ev_bytes += d->len;
}

static void on_handshake_frame(ir_relay_client *c, const uint8_t *msg, size_t len, uint64_t now)
{
    ir_relay_frame f;
    uint32_t allowed = c->challenged ? (IR_RELAY_BIT(IR_RELAY_FT_SERVER_CONFIRMS_AUTH) |
                                        IR_RELAY_BIT(IR_RELAY_FT_SERVER_DENIES_AUTH))
                                     : IR_RELAY_HS_FROM_SERVER;
    int rc = ir_relay_frame_decode(msg, len, allowed, NULL, &f);
    if (rc < 0) {
        fail(c, "bad handshake frame: %s", iroh_last_error());
        return;
    }
    switch (f.type) {
    case IR_RELAY_FT_SERVER_CHALLENGE: {
        ir_relay_frame auth;
        ir_relay_client_auth_make(&c->cfg.secret_key, f.u.challenge, &auth);
        if (write_frame(c, &auth) < 0) {
            fail(c, "cannot queue ClientAuth: %s", iroh_last_error());
            return;
        }
        c->challenged = 1;
        break;
    }
    case IR_RELAY_FT_SERVER_CONFIRMS_AUTH:
        c->state = IR_RELAY_CLIENT_READY;
        c->t_handshake = 0;
        push_event(c, IR_RELAY_EV_READY, 0);
        send_ping(c, now);
        break;
    case IR_RELAY_FT_SERVER_DENIES_AUTH:
        fail(c, "relay denied authentication: %.*s", (int)f.u.text.len, f.u.text.text);
        break;
    default:
        fail(c, "unexpected handshake frame %u", f.type);
        break;
    }
}

static void on_relay_frame(ir_relay_client *c, const uint8_t *msg, size_t len, uint64_t now)
{
    ir_relay_frame f;
    int rc = ir_relay_frame_decode(msg, len, IR_RELAY_FROM_SERVER(c->version), NULL, &f);
    if (rc < 0) {
        fail(c, "bad relay frame: %s", iroh_last_error());
        return;
    }
    ev_node *n;
    switch (f.type) {
    case IR_RELAY_FT_R2C_DATAGRAM:
    case IR_RELAY_FT_R2C_DATAGRAM_BATCH:
        on_datagram(c, &f);
        break;
    case IR_RELAY_FT_ENDPOINT_GONE:
        n = push_event(c, IR_RELAY_EV_ENDPOINT_GONE, 0);
        if (n)
            n->ev.id = f.u.endpoint_gone;
        break;
    case IR_RELAY_FT_PING: {
        c->st.pings_recv++;
        ir_relay_frame p;
        memset(&p, 0, sizeof p);
        p.type = IR_RELAY_FT_PONG;
        memcpy(p.u.ping, f.u.ping, 8);
        if (write_frame(c, &p) < 0) {
            fail(c, "cannot queue a pong: %s", iroh_last_error());
            return;
        }
        c->st.pongs_sent++;
        break;
    }
    case IR_RELAY_FT_PONG:
        if (c->ping_outstanding && memcmp(f.u.ping, c->ping_data, 8) == 0) {
            c->st.pongs_recv++;
            c->ping_outstanding = 0;
            c->rtt = now > c->ping_sent_at ? now - c->ping_sent_at : 1;
            c->t_pong = 0;
        }
        break;
    case IR_RELAY_FT_STATUS:
        n = push_event(c, IR_RELAY_EV_STATUS, 0);
        if (n)
            n->ev.status = f.u.status;
        break;
    case IR_RELAY_FT_RESTARTING:
        n = push_event(c, IR_RELAY_EV_RESTARTING, 0);
        if (n) {
            n->ev.reconnect_in_ms = f.u.restarting.reconnect_in_ms;
            n->ev.try_for_ms = f.u.restarting.try_for_ms;
        }
        break;
    case IR_RELAY_FT_HEALTH:
        /* a v1 server's health problem: informational */
        break;
    default:
        fail(c, "unexpected relay frame %u", f.type);
        return;
    }
    /* any received frame restarts the ping timer (when no ping is outstanding) */
    if (!c->ping_outstanding && c->state == IR_RELAY_CLIENT_READY)
        c->t_ping = now + c->cfg.ping_interval_ms * NS_PER_MS;
}

static void on_ws_message(ir_relay_client *c, const ir_ws_message *m, uint64_t now)
{
    switch (m->opcode) {
    case IR_WS_OP_BINARY:
        c->st.frames_recv++;
        if (c->state == IR_RELAY_CLIENT_HANDSHAKE)
            on_handshake_frame(c, m->data, m->len, now);
        else
            on_relay_frame(c, m->data, m->len, now);
        break;
    case IR_WS_OP_PING:
        c->st.ws_pings_recv++;
        if (write_ws(c, IR_WS_OP_PONG, m->data, m->len) < 0)
            fail(c, "cannot queue a WebSocket pong");
        break;
    case IR_WS_OP_PONG:
    case IR_WS_OP_TEXT: /* ignored, as upstream */
        break;
    case IR_WS_OP_CLOSE:
        fail(c, "relay closed the WebSocket (code %u)", (unsigned)m->close_code);
        break;
    default:
        fail(c, "unexpected WebSocket opcode %u", (unsigned)m->opcode);
        break;
    }
}

static void feed_ws(ir_relay_client *c, const uint8_t *data, size_t len, uint64_t now)
{
    while (len && c->state != IR_RELAY_CLIENT_FAILED) {
        /* the parser may write into its input: feed a private copy */
        size_t chunk = len < SCRATCH ? len : SCRATCH;
        memcpy(c->scratch, data, chunk);
        size_t off = 0;
        while (off < chunk && c->state != IR_RELAY_CLIENT_FAILED) {
            size_t used = 0;
            ir_ws_message m;
            int rc = ir_ws_parser_feed(&c->ws, c->scratch + off, chunk - off, &used, &m);
            off += used;
            if (rc < 0) {
                fail(c, "WebSocket error: %s", iroh_last_error());
                return;
            }
            if (rc == 1)
                on_ws_message(c, &m, now);
            else if (used == 0)
                break;
        }
        data += chunk;
        len -= chunk;
    }
}

static void on_head(ir_relay_client *c)
{
    ir_http_response resp;
    int rc = ir_http_parse_response(c->http->buf, c->http->len, &resp);
    if (rc < 0) {
        fail(c, "bad HTTP response: %s", iroh_last_error());
        return;
    }
    if (resp.status != 101) {
        fail(c, "relay answered HTTP %d %.*s", resp.status, (int)resp.reason_len, resp.reason);
        return;
    }
    rc = ir_ws_check_response(&resp, c->key, IR_WS_KEY_LEN, &c->version);
    if (rc < 0) {
        fail(c, "upgrade refused: %s", iroh_last_error());
        return;
    }
    free(c->http);
    c->http = NULL;
    ir_ws_parser_init(&c->ws, IR_WS_ROLE_CLIENT, IR_RELAY_MAX_FRAME_SIZE);
    c->ws_init = 1;
    c->state = IR_RELAY_CLIENT_HANDSHAKE;
}

void ir_relay_client_recv(ir_relay_client *c, const uint8_t *data, size_t len, uint64_t now)
{
    if (c->state == IR_RELAY_CLIENT_FAILED)
        return;
    c->now = now;
    c->st.bytes_recv += len;
    if (c->state == IR_RELAY_CLIENT_CONNECTING) {
        size_t used = 0;
        int rc = ir_http_reader_feed(c->http, data, len, &used);
        if (rc < 0) {
            fail(c, "bad HTTP response head: %s", iroh_last_error());
            return;
        }
        if (rc == 0)
            return;
        on_head(c);
        if (c->state == IR_RELAY_CLIENT_FAILED)
            return;
        data += used;
        len -= used;
    }
    feed_ws(c, data, len, now);
}

void ir_relay_client_eof(ir_relay_client *c, const char *why)
{
    fail(c, "%s", why ? why : "relay closed the connection");
}

/* ---- timers ------------------------------------------------------------------------ */


uint64_t ir_relay_client_timeout(const ir_relay_client *c)
{
    if (c->state == IR_RELAY_CLIENT_FAILED)
        return 0;
    return ir_earliest(ir_earliest(c->t_handshake, c->t_ping), c->t_pong);
}

void ir_relay_client_on_timeout(ir_relay_client *c, uint64_t now)
{
    if (c->state == IR_RELAY_CLIENT_FAILED)
        return;
    c->now = now;
    if (c->t_handshake && now >= c->t_handshake) {
        fail(c, "relay handshake timed out");
        return;
    }
    if (c->t_pong && now >= c->t_pong) {
        fail(c, "relay pong timed out");
        return;
    }
    if (c->t_ping && now >= c->t_ping) {
        if (c->ping_outstanding)
            c->t_ping = now + c->cfg.ping_interval_ms * NS_PER_MS; /* wait for the pong */
        else
            send_ping(c, now);
    }
}

/* ---- accessors --------------------------------------------------------------------- */

ir_relay_client_state_t ir_relay_client_state(const ir_relay_client *c)
{
    return c->state;
}

const char *ir_relay_client_failure(const ir_relay_client *c)
{
    return c->state == IR_RELAY_CLIENT_FAILED ? c->reason : "";
}

int ir_relay_client_version(const ir_relay_client *c)
{
    return c->version;
}

const iroh_endpoint_id *ir_relay_client_id(const ir_relay_client *c)
{
    return &c->id;
}

void ir_relay_client_stats_get(const ir_relay_client *c, ir_relay_client_stats *out)
{
    *out = c->st;
}

/* ---- sending ----------------------------------------------------------------------- */

int ir_relay_client_send_batch(ir_relay_client *c, const uint8_t dst[32], uint8_t ecn,
                               uint16_t segment_size, const uint8_t *data, size_t len)
{
    if (c->state != IR_RELAY_CLIENT_READY)
        return ir_fail(IROH_ERR_STATE, "relay client is not ready");
    if (len == 0 || ecn > 3 || (!data && len))
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "relay client: empty datagram or bad ECN");
    if (len > (segment_size ? IR_RELAY_MAX_DATAGRAM_BATCH : IR_RELAY_MAX_DATAGRAM_SINGLE))
        return ir_fail(IROH_ERR_TOO_LONG, "relay datagram of %zu bytes is too large", len);
    size_t hl = ir_relay_dgram_header_len(segment_size);
    size_t payload = hl + len;
    if (queued(c) + payload + IR_WS_MAX_HEADER > c->cfg.max_queued)
        return ir_fail(IROH_ERR_BUFFER_TOO_SMALL, "relay client: output queue full");
    uint8_t hdr[40];
    iroh_endpoint_id id;
    memcpy(id.bytes, dst, 32);
    ir_relay_dgram_header_write(hdr, 1, &id, ecn, segment_size);
    /* header and payload in one masked message, without an intermediate copy */
    uint8_t mask[4];
    c->cfg.random(c->cfg.random_ctx, mask, sizeof mask);
    if (c->out_off && c->out_off == c->out.len)
        c->out.len = c->out_off = 0;
    else if (c->out_off > 65536 && c->out_off * 2 > c->out.len) {
        memmove(c->out.data, c->out.data + c->out_off, c->out.len - c->out_off);
        c->out.len -= c->out_off;
        c->out_off = 0;
    }
    uint8_t wsh[IR_WS_MAX_HEADER];
    size_t wl = ir_ws_write_header(wsh, 1, IR_WS_OP_BINARY, payload, mask);
    if (ir_buf_reserve(&c->out, wl + payload) != IROH_OK) {
        c->out.oom = 0;
        return ir_fail(IROH_ERR_NO_MEMORY, "relay client: out of memory");
    }
    ir_buf_append(&c->out, wsh, wl);
    size_t at = c->out.len;
    ir_buf_append(&c->out, hdr, hl);
    ir_buf_append(&c->out, data, len);
    ir_ws_mask(c->out.data + at, payload, mask, 0);
    c->st.frames_sent++;
    return IROH_OK;
}

int ir_relay_client_send(ir_relay_client *c, const uint8_t dst[32], uint8_t ecn,
                         const uint8_t *data, size_t len)
{
    return ir_relay_client_send_batch(c, dst, ecn, 0, data, len);
}

uint64_t ir_relay_client_rtt(const ir_relay_client *c)
{
    return c->rtt;
}
