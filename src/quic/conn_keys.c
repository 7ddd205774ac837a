/* Packet protection of a QUIC connection: opening packets (header protection, AEAD,
 * duplicate check), 1-RTT key update (RFC 9001 6) and the AEAD limits (RFC 9001 6.6). */

#include <string.h>

#include "quic/conn_internal.h"

static uint64_t aead_limit(uint64_t suite, uint64_t cfg)
{
    if (cfg && cfg < 16)
        cfg = 16;
    return cfg && cfg < suite ? cfg : suite;
}

static uint64_t conf_limit(const ir_conn *c, const ir_pkt_keys *k)
{
    return aead_limit(ir_aead_conf_limit(k->alg), c->cfg.aead_conf_limit);
}

/* a packet did not authenticate under k: more such packets in the connection than the
 * integrity limit of the key's AEAD end it at once (RFC 9001 6.6), and nothing more is
 * processed (a closing connection only answers with its CONNECTION_CLOSE) */
static void open_failed(ir_conn *c, ir_pkt_keys *k)
{
    k->open_failed++;
    c->aead_failures++;
    if (c->aead_failures > aead_limit(ir_aead_integrity_limit(k->alg), c->cfg.aead_integrity_limit))
        ir_conn_close_with(c, 0, IR_QERR_AEAD_LIMIT_REACHED, "AEAD integrity limit: too many packets failed authentication");
}

/* Before a datagram is built (RFC 9001 6.6): from half the confidentiality limit on, the
 * 1-RTT keys are updated as soon as 6.1 and 6.5 allow it; a key at 15/16 of the limit that
 * was not updated (or cannot be: Initial, Handshake) closes the connection with
 * AEAD_LIMIT_REACHED, and the rest of the limit is left for the CONNECTION_CLOSE. */
void ir_conn_check_conf_limits(ir_conn *c)
{
    for (int s = 0; s < SP_COUNT; s++) {
        qepoch *ks = &c->epoch[s];
        if (!ks->have_tx || (s < SP_APP && c->sp[s].discarded))
            continue;
        uint64_t limit = conf_limit(c, &ks->tx);
        if (s == SP_APP && ks->tx.sealed >= limit / 2 && c->state == IR_CONN_ESTABLISHED)
            ir_conn_start_key_update(c); /* refused while not allowed yet: tried again next time */
        if (ks->tx.sealed >= limit - limit / 16 && c->state < IR_CONN_CLOSING)
            ir_conn_close_with(c, 0, IR_QERR_AEAD_LIMIT_REACHED,
                       "AEAD confidentiality limit: the keys could not be updated in time");
    }
}

/* 1 if the space's send key may seal one more packet: never beyond the limit */
int ir_conn_can_seal(const ir_conn *c, int s)
{
    const ir_pkt_keys *k = &c->epoch[s].tx;
    return k->sealed < conf_limit(c, k);
}

/* Our send keys changed phase: the next packet of every path's 1-RTT space is the first
 * of the new phase (an ACK of it, on its path, confirms the update). */
static void mark_key_phase_start(ir_conn *c)
{
    for (size_t i = 0; i < c->npaths; i++)
        if (ir_path_live(c->paths[i]))
            c->paths[i]->app.key_phase_start_pn = c->paths[i]->app.next_pn;
}

/* Removes the packet protection: 0, or -1 (dropped: it does not open, or a protocol
 * violation closed the connection), or 1 (a duplicate, to drop). */
int ir_conn_decrypt_packet(ir_conn *c, qpath *path, uint8_t *p, const ir_pkt_hdr *h, int space,
                           uint64_t *pn_out, const uint8_t **payload, size_t *plen)
{
    pn_space *sp = &PNS(c, path, space);
    uint64_t pn;
    size_t pn_len;
    qepoch *ks = &c->epoch[space];
    if (ir_pkt_unprotect_header(p, h, &ks->rx.hp, sp->largest_recv, &pn, &pn_len) != 0)
        return -1;
    /* RFC 9000 12.3: a packet number already processed (or below the floor of what the
     * space tracks) is a duplicate. Checked only once the packet opened: dropping before
     * would tell an attacker by the timing which packet numbers were seen (RFC 9001 9.5) */
    if (space != SP_APP) {
        if (ir_pkt_decrypt(p, h, pn_len, &ks->rx.aead, 0, pn, payload, plen) != 0) {
            open_failed(c, &ks->rx);
            return -1;
        }
        if (ir_pn_seen_has(&sp->seen, pn))
            return 1;
        if (p[0] & 0x0c) {
            ir_conn_close_with(c, 0, IR_QERR_PROTOCOL_VIOLATION, "reserved header bits set");
            return -1;
        }
        *pn_out = pn;
        return 0;
    }
    int phase = (p[0] >> 2) & 1;
    ir_pkt_keys *k = &ks->rx;
    int rotate = 0;
    qkeyupdate *ku = &c->ku;
    if (phase != ku->rx_phase) {
        if (ku->have_rx_prev && pn < sp->rx_phase_start_pn) {
            k = &ku->rx_prev;
        } else {
            if (!ku->have_rx_next) {
                if (ir_pkt_keys_update(&ku->rx_next, &ks->rx) != 0)
                    return -1;
                ku->have_rx_next = 1;
            }
            k = &ku->rx_next;
            rotate = 1;
        }
    }
    if (ir_pkt_decrypt(p, h, pn_len, &k->aead, (uint32_t)path->id, pn, payload, plen) != 0) {
        open_failed(c, k);
        return -1;
    }
    /* (a duplicate never opens with the next keys: those would have been rotated in) */
    if (ir_pn_seen_has(&sp->seen, pn))
        return 1;
    if (p[0] & 0x18) {
        ir_conn_close_with(c, 0, IR_QERR_PROTOCOL_VIOLATION, "reserved header bits set");
        return -1;
    }
    if (k == &ks->rx && !rotate && (sp->rx_phase_start_pn == UINT64_MAX || pn < sp->rx_phase_start_pn) &&
        ku->have_rx_prev)
        sp->rx_phase_start_pn = pn; /* (another path's first packet in the current phase) */
    /* RFC 9001 6.4: a peer never protects a packet with older keys than a packet with a
     * lower number. Everything opened before a rotation used older keys than the new ones;
     * a packet opened with the previous keys after it must be below every new one. */
    uint64_t old_largest = rotate ? sp->largest_recv : sp->rx_old_largest;
    if (k == &ku->rx_prev) {
        if (sp->rx_old_largest == UINT64_MAX || pn > sp->rx_old_largest)
            sp->rx_old_largest = pn;
    } else if (old_largest != UINT64_MAX && pn < old_largest) {
        ir_conn_close_with(c, 0, IR_QERR_KEY_UPDATE_ERROR, "a packet under old keys numbered above one under newer keys");
        return -1;
    }
    if (rotate) {
        if (!c->handshake_confirmed && !c->is_server) {
            ir_conn_close_with(c, 0, IR_QERR_KEY_UPDATE_ERROR, "key update before the handshake was confirmed");
            return -1;
        }
        ir_pkt_keys_free(&ku->rx_prev);
        ku->rx_prev = ks->rx;
        ku->have_rx_prev = 1;
        ku->rx_prev_expiry = c->now + 3 * ir_rec_pto(c, path, SP_APP);
        ks->rx = ku->rx_next;
        memset(&ku->rx_next, 0, sizeof ku->rx_next);
        ku->have_rx_next = 0;
        ku->rx_phase ^= 1;
        sp->rx_phase_start_pn = pn;
        sp->rx_old_largest = sp->largest_recv;
        /* the other paths' packet numbers are their own (multipath): there the new phase
         * starts at the first packet that comes in it, and everything received so far was
         * under the old keys */
        for (size_t i = 0; i < c->npaths; i++) {
            pn_space *o = &c->paths[i]->app;
            if (o == sp || !ir_path_live(c->paths[i]))
                continue;
            o->rx_phase_start_pn = UINT64_MAX;
            o->rx_old_largest = o->largest_recv;
        }
        if (ku->key_phase != ku->rx_phase) {
            /* the peer started it: follow with our send keys. Like the initiator, we may
             * start the next update only once a packet of this phase is acknowledged
             * (RFC 9001 6.1). An update we started was counted when we started it. */
            if (ir_pkt_keys_update(&ks->tx, &ks->tx) != 0) {
                ir_conn_close_with(c, 0, IR_QERR_INTERNAL_ERROR, "key update failed");
                return -1;
            }
            ku->key_phase = ku->rx_phase;
            mark_key_phase_start(c);
            ku->pending_ack = 1;
            ku->updates++;
        }
    }
    *pn_out = pn;
    return 0;
}

/* RFC 9001 6.1: not before the handshake is confirmed, nor before a packet of the current
 * key phase is acknowledged (which also covers an update the peer started and we
 * followed); 6.5: three PTOs after that acknowledgment, so that the peer had time to
 * discard its old keys and make the next ones (a SHOULD, as ngtcp2 does). */
int ir_conn_start_key_update(ir_conn *c)
{
    qepoch *ks = &c->epoch[SP_APP];
    qkeyupdate *ku = &c->ku;
    if (!c->handshake_confirmed || ku->pending_ack || ku->key_phase != ku->rx_phase ||
        !ks->have_tx)
        return -1;
    if (ku->confirmed && c->now < ku->confirmed + 3 * ir_rec_pto(c, c->send_path, SP_APP))
        return -1;
    if (ir_pkt_keys_update(&ks->tx, &ks->tx) != 0)
        return -1;
    ku->key_phase ^= 1;
    mark_key_phase_start(c);
    ku->pending_ack = 1;
    ku->updates++;
    return 0;
}

int ir_conn_initiate_key_update(ir_conn *c)
{
    return ir_conn_start_key_update(c);
}
