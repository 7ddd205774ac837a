/* The relay protocol in the relay server core, after the WebSocket upgrade: the handshake
 * (ClientAuth, access control, ServerConfirmsAuth), the frames of a registered client
 * (datagrams, pings, pongs), WebSocket control messages and the keepalive pings. */
#include "server_core.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "handshake.h"

static void schedule_ping(ir_relay_core *core, ir_relay_conn *c, uint64_t now)
{
    /* 15 s plus 1..5 s of jitter, so that pings of many clients do not bunch up */
    c->ping_period = core->ping_interval + NS_PER_S + ir_rs_prng_next(core) % (4 * NS_PER_S + 1);
    c->t[T_PING] = now + c->ping_period;
}

void ir_rs_send_ping(ir_relay_core *core, ir_relay_conn *c, uint64_t now)
{
    ir_relay_frame f;
    memset(&f, 0, sizeof f);
    f.type = IR_RELAY_FT_PING;
    uint64_t r = ir_rs_prng_next(core);
    memcpy(f.u.ping, &r, 8);
    memcpy(c->ping_data, f.u.ping, 8);
    uint64_t timeout = core->pong_timeout;
    if (c->rtt) {
        uint64_t lo = 500 * NS_PER_MS < timeout ? 500 * NS_PER_MS : timeout;
        uint64_t t3 = c->rtt > UINT64_MAX / 3 ? UINT64_MAX : 3 * c->rtt;
        timeout = t3 < lo ? lo : t3 > timeout ? timeout : t3;
    }
    if (ir_rs_send_frame(core, c, &f, now) == 0) {
        /* (a ping dropped on a full control queue is not waited for; a client that does
         * not read is cut off by the write timeout instead) */
        core->st.pings_sent++;
        c->ping_out = 1;
        c->ping_sent_at = now;
        c->t[T_PONG] = now + timeout;
    }
    schedule_ping(core, c, now);
}

static void deny(ir_relay_core *core, ir_relay_conn *c, const char *reason, uint64_t now)
{
    ir_relay_frame f;
    ir_relay_deny_frame(reason, &f);
    ir_rs_send_frame(core, c, &f, now);
    core->st.handshake_failures++;
    ir_rs_conn_finish(core, c, now);
}

/* The client proved its key: access control, then ServerConfirmsAuth and registration. */
void ir_rs_authorized(ir_relay_core *core, ir_relay_conn *c, uint64_t now)
{
    if (core->cfg.access) {
        const char *reason = NULL;
        if (!core->cfg.access(core->cfg.access_ctx, &c->key, c->version, c->token, c->token_len,
                              &reason)) {
            deny(core, c, reason, now);
            return;
        }
    }
    free(c->token);
    c->token = NULL;
    ir_relay_frame f;
    memset(&f, 0, sizeof f);
    f.type = IR_RELAY_FT_SERVER_CONFIRMS_AUTH;
    if (ir_rs_send_frame(core, c, &f, now) < 0 || ir_rs_register(core, c, now) < 0) {
        ir_rs_conn_close(core, c, now, "out of memory");
        return;
    }
    c->state = CS_RELAY;
    c->t[T_HANDSHAKE] = 0;
    schedule_ping(core, c, now);
    core->st.handshakes++;
    char hex[IROH_ID_HEX_LEN];
    if (ir_log_enabled(IR_LOG_DEBUG)) {
        iroh_endpoint_id_to_hex(&c->key, hex, sizeof hex);
        IR_LOG(IR_LOG_DEBUG, "relay: connection %llu registered as %s (v%d)",
               (unsigned long long)c->conn_id, hex, c->version);
    }
}

static void auth_message(ir_relay_core *core, ir_relay_conn *c, const uint8_t *data, size_t len,
                         uint64_t now)
{
    ir_relay_frame f;
    if (ir_relay_frame_decode(data, len, IR_RELAY_HS_FROM_CLIENT, &core->keys, &f) != IROH_OK) {
        /* wrong type, undecodable body, invalid key: close without a deny frame */
        core->st.handshake_failures++;
        ir_rs_conn_close(core, c, now, iroh_last_error());
        return;
    }
    if (ir_relay_client_auth_verify(&f, c->challenge) != IROH_OK) {
        deny(core, c, IR_RELAY_DENY_SIGNATURE, now);
        return;
    }
    c->key = f.u.client_auth.key;
    ir_rs_authorized(core, c, now);
}

static void relay_message(ir_relay_core *core, ir_relay_conn *c, const uint8_t *data, size_t len,
                          uint64_t now)
{
    ir_relay_frame f;
    if (ir_relay_frame_decode(data, len, IR_RELAY_FROM_CLIENT, &core->keys, &f) != IROH_OK) {
        core->st.protocol_errors++;
        ir_rs_conn_close(core, c, now, iroh_last_error());
        return;
    }
    /* any frame from the client restarts the ping timer */
    c->t[T_PING] = now + c->ping_period;
    switch (f.type) {
    case IR_RELAY_FT_C2R_DATAGRAM:
    case IR_RELAY_FT_C2R_DATAGRAM_BATCH:
        ir_rs_forward(core, c, &f, now);
        break;
    case IR_RELAY_FT_PING:
        core->st.pings_recv++;
        f.type = IR_RELAY_FT_PONG;
        if (ir_rs_send_frame(core, c, &f, now) == 0)
            core->st.pongs_sent++;
        break;
    case IR_RELAY_FT_PONG:
        if (c->ping_out && memcmp(f.u.ping, c->ping_data, 8) == 0) {
            c->rtt = now - c->ping_sent_at;
            if (!c->rtt)
                c->rtt = 1;
            c->ping_out = 0;
            c->t[T_PONG] = 0;
            core->st.pongs_recv++;
        }
        break;
    }
}

void ir_rs_ws_input(ir_relay_core *core, ir_relay_conn *c, uint8_t *data, size_t len, uint64_t now)
{
    size_t off = 0;
    while (off < len && (c->state == CS_AUTH || c->state == CS_RELAY)) {
        size_t used;
        ir_ws_message m;
        int rc = ir_ws_parser_feed(&c->ws, data + off, len - off, &used, &m);
        off += used;
        if (rc < 0) {
            core->st.protocol_errors++;
            if (c->state == CS_AUTH)
                core->st.handshake_failures++;
            ir_rs_conn_close(core, c, now, iroh_last_error());
            return;
        }
        if (rc == 0)
            break;
        switch (m.opcode) {
        case IR_WS_OP_BINARY:
            if (c->state == CS_AUTH)
                auth_message(core, c, m.data, m.len, now);
            else
                relay_message(core, c, m.data, m.len, now);
            break;
        case IR_WS_OP_TEXT:
            IR_LOG(IR_LOG_DEBUG, "relay: connection %llu: text message ignored",
                   (unsigned long long)c->conn_id);
            break;
        case IR_WS_OP_PING:
            ir_rs_send_ws(core, c, IR_WS_OP_PONG, m.data, m.len, now);
            break;
        case IR_WS_OP_PONG:
            break;
        case IR_WS_OP_CLOSE: {
            /* answer the close (echoing its code) and end the connection */
            uint8_t pl[2] = {(uint8_t)(m.close_code >> 8), (uint8_t)m.close_code};
            ir_rs_send_ws(core, c, IR_WS_OP_CLOSE, pl, m.close_code ? 2 : 0, now);
            ir_rs_conn_finish(core, c, now);
            return;
        }
        }
    }
}
