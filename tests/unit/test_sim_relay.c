/* The simulator with relays: relay link cores (endpoint/relay_link_core.h) of virtual
 * endpoints talk to virtual relay servers (the sans-IO relay server core, relay/server.h)
 * over virtual byte streams, on a virtual clock, in one thread and without sockets; the
 * endpoints' cores (endpoint/ep_core.h) send and receive their datagrams through these
 * links as ep.c does. A stream carries bytes after a fixed one-way delay per relay; a
 * transport comes up one round trip after the link asks for it, or fails then ("connection
 * refused") while the relay is down. A relay going down closes its streams (each end
 * sees the end of stream after the one-way delay). Randomness (the links' backoff jitter,
 * the relay client's WebSocket keys and masks, the server's challenges, the cores'
 * connection ids) comes from one seeded generator.
 *
 * Tests: a QUIC connection between two endpoints over a relay end to end (relay
 * handshake included) and the keepalive latency, which survives a relay restart (both
 * links reconnect, a second stream is echoed); the reconnection backoff after the relay
 * went down, each delay within its jitter bounds at exact virtual times, up to the 16 s
 * cap, and the same times again for the same seed; datagrams queued while the link is
 * down (delivered after the reconnect within 3 s, dropped after, at most 64); the home
 * relay among two relays of different latency, its failover and the 2/3 rule; the close of
 * a link unused for 60 s. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "test.h"
#include "sim_net.h" /* the simulator: relays, links, endpoint cores */

/* ---- tests -------------------------------------------------------------------------------- */

static int conn_established(ir_conn *c)
{
    return c && ir_conn_get_state(c) == IR_CONN_ESTABLISHED;
}

/* Client c opens its next bidirectional stream and sends 30 kB on it; the server
 * connection sc echoes its peer stream number k back; the network runs until the client
 * has read the end, within 20 s of virtual time. Checks the bytes that came back. */
static void echo_round(sim *s, ir_conn *c, ir_conn *sc, uint64_t k)
{
    CHECK(sc != NULL);
    if (!sc)
        return;
    uint64_t sid = 0;
    CHECK(ir_conn_stream_open(c, 1, &sid) == 0);
    static uint8_t out[30000], in[30001], echo[4096];
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = (uint8_t)(i * 13 + (i >> 8));
    memset(in, 0, sizeof in);
    size_t sent = 0, got = 0;
    int fin = 0;
    while (!fin && sim_step(s, s->now + 20 * SEC)) {
        ir_event ev;
        while (ir_conn_poll_event(c, &ev))
            ;
        while (ir_conn_poll_event(sc, &ev))
            ;
        if (sent < sizeof out) {
            long w = ir_conn_stream_write(c, sid, out + sent, sizeof out - sent, 1);
            if (w > 0)
                sent += (size_t)w;
        }
        uint64_t code;
        long r;
        if (ir_conn_peer_streams(sc, 0) > k) {
            uint64_t id = ir_conn_peer_stream_id(sc, 0, k);
            while ((r = ir_conn_stream_read(sc, id, echo, sizeof echo, &code)) > 0)
                CHECK(ir_conn_stream_write(sc, id, echo, (size_t)r, 0) == r);
            if (r == 0)
                ir_conn_stream_write(sc, id, NULL, 0, 1);
        }
        while ((r = ir_conn_stream_read(c, sid, in + got, sizeof in - got, &code)) >= 0) {
            if (r == 0) {
                fin = 1;
                break;
            }
            got += (size_t)r;
        }
    }
    CHECK(fin && got == sizeof out);
    CHECK(memcmp(in, out, sizeof out) == 0);
}

/* A QUIC connection between two endpoint cores over one relay, from the links' first
 * connect: relay handshakes, then QUIC, a stream echoed back. */
static void test_connection_over_relay(void)
{
    sim s;
    sim_init(&s, 7);
    add_relay(&s, 10 * MS);
    node *a = add_node(&s, 1), *b = add_node(&s, 1);
    uint64_t t0 = s.now;
    ir_rlc_want(a->links[0].core, 1, s.now);
    ir_rlc_want(b->links[0].core, 1, s.now);
    link_sync(&s, &a->links[0]);
    link_sync(&s, &b->links[0]);
    run_until_established(&s, 0, s.now + 5 * SEC);
    CHECK(all_established(&s, 0));
    /* connect (1 RTT), upgrade (1), challenge/auth/confirm (1.5), first ping (1) */
    CHECK(s.now - t0 >= 4 * 20 * MS);
    CHECK(s.now - t0 < 10 * 20 * MS);
    CHECK_EQ_INT(ir_rlc_latency(a->links[0].core), 20 * MS); /* the keepalive round trip */
    CHECK_EQ_INT(ir_rlc_connects(a->links[0].core), 1);

    ir_netaddr via;
    ir_netaddr_relay(&via, 0, b->id.bytes);
    ir_conn *c = NULL, *sc = NULL;
    uint64_t t1 = s.now;
    CHECK(ir_epc_connect(a->core, &via, 1, &b->id, ALPNS, ALPN_LENS, 1, s.now, &c) == IROH_OK);
    while (!(conn_established(c) && conn_established(sc)) && sim_step(&s, t1 + 10 * SEC)) {
        ir_conn *x = ir_epc_accept(b->core);
        if (x)
            sc = x;
    }
    CHECK(conn_established(c) && conn_established(sc));
    CHECK(s.now - t1 >= 3 * 20 * MS); /* Initial, answer, Finished: each via the relay */
    ir_netaddr back;
    ir_netaddr_relay(&back, 0, a->id.bytes);
    CHECK(sc && ir_netaddr_eq(ir_conn_path_addr(sc), &back));

    /* a 30 kB stream there and back */
    echo_round(&s, c, sc, 0);
    ir_relay_server_stats st;
    ir_relay_core_stats(s.relays[0].core, &st);
    CHECK_EQ_INT(st.handshakes, 2);
    CHECK(st.frames_relayed >= 20); /* 30 kB both ways in QUIC packets */
    CHECK_EQ_INT(st.dropped_absent, 0);

    /* the relay restarts (down 200 ms): both links reconnect and the connection goes on;
     * a second stream is echoed too */
    relay_down(&s, 0);
    run_until(&s, s.now + 200 * MS);
    relay_up(&s, 0);
    echo_round(&s, c, sc, 1);
    CHECK(conn_established(c) && conn_established(sc));
    CHECK_EQ_INT(ir_rlc_connects(a->links[0].core), 2);
    CHECK_EQ_INT(ir_rlc_connects(b->links[0].core), 2);
    sim_free(&s);
}

/* Backoff after the relay went down: at once after the established connection broke,
 * then 10 ms doubling to 16 s, each delay in [b/2, b] after the failed attempt; same
 * seed, same times. Returns a hash of the attempt times. */
static uint64_t backoff_run(uint64_t seed)
{
    sim s;
    sim_init(&s, seed);
    add_relay(&s, 5 * MS);
    node *a = add_node(&s, 0);
    vlink *l = &a->links[0];
    ir_rlc_want(l->core, 1, s.now);
    link_sync(&s, l);
    run_until_established(&s, 0, s.now + 5 * SEC);
    CHECK(all_established(&s, 0));
    CHECK_EQ_INT(l->nstarted, 1);
    uint64_t down_at = s.now;
    relay_down(&s, 0);
    /* 16 failed attempts: 10, 20, ..., 10240, 16000, 16000, 16000, 16000 ms */
    while (l->nfailed < 17 && sim_step(&s, down_at + 200 * SEC))
        ;
    CHECK_EQ_INT(l->nfailed, 17);
    /* the broken connection: noticed after one way, retried at once */
    CHECK_EQ_INT(l->started_at[1], down_at + 5 * MS);
    uint64_t h = 1469598103934665603ull;
    uint32_t b = 0;
    for (int k = 1; k < 17; k++) {
        /* attempt k started, failed one round trip later (refused) */
        CHECK_EQ_INT(l->failed_at[k - 1], l->started_at[k] + 10 * MS);
        b = b ? b * 2 : 10;
        if (b > 16000)
            b = 16000;
        uint64_t gap = l->started_at[k + 1] - l->failed_at[k - 1];
        CHECK(gap >= (uint64_t)(b / 2) * MS && gap <= (uint64_t)b * MS);
        if (!(gap >= (uint64_t)(b / 2) * MS && gap <= (uint64_t)b * MS))
            fprintf(stderr, "attempt %d: gap %llu ns, backoff %u ms\n", k,
                    (unsigned long long)gap, b);
        h = (h ^ l->started_at[k + 1]) * 1099511628211ull;
    }
    CHECK(!ir_rlc_established(l->core));
    CHECK(strstr(ir_rlc_last_error(l->core), "refused") != NULL);
    /* back up: the next attempt connects; the backoff starts again from 10 ms after */
    relay_up(&s, 0);
    uint64_t next = ir_rlc_retry_at(l->core);
    CHECK(next > s.now && next <= s.now + 16 * SEC);
    run_until_established(&s, 0, next + 1 * SEC);
    CHECK(all_established(&s, 0));
    CHECK_EQ_INT(ir_rlc_connects(l->core), 2);
    CHECK(ir_rlc_last_error(l->core)[0] == 0);
    sim_free(&s);
    return h;
}

static void test_backoff(void)
{
    uint64_t h1 = backoff_run(11), h2 = backoff_run(11), h3 = backoff_run(12);
    CHECK(h1 == h2);
    CHECK(h1 != h3); /* the jitter comes from the injected source */
}

/* Datagrams sent while the link is down wait for it: within 3 s they are delivered after
 * the reconnect, older ones are dropped, and at most 64 wait. The sender's network goes
 * down (the relay and the receiver stay up). */
static void test_queue_while_down(void)
{
    sim s;
    sim_init(&s, 21);
    add_relay(&s, 5 * MS);
    node *a = add_node(&s, 0), *b = add_node(&s, 0);
    vlink *la = &a->links[0], *lb = &b->links[0];
    ir_rlc_want(la->core, 1, s.now);
    ir_rlc_want(lb->core, 1, s.now);
    link_sync(&s, la);
    link_sync(&s, lb);
    run_until_established(&s, 0, s.now + 5 * SEC);
    CHECK(all_established(&s, 0));
    /* up: straight through */
    ir_rlc_send(la->core, b->id.bytes, (const uint8_t *)"now", 3, 3, s.now);
    link_out(&s, la);
    run_until(&s, s.now + 100 * MS);
    CHECK(b->ngot == 1 && strcmp(b->got[0], "now") == 0);

    /* a is offline for 0.5 s: what it sent meanwhile goes out after its reconnect */
    node_offline(&s, a, 1);
    run_until(&s, s.now + 20 * MS);
    CHECK(!ir_rlc_ready(la->core));
    uint64_t t0 = s.now;
    ir_rlc_send(la->core, b->id.bytes, (const uint8_t *)"early", 5, 5, s.now);
    link_sync(&s, la);
    CHECK_EQ_INT(ir_rlc_queued(la->core), 1);
    run_until(&s, t0 + 500 * MS);
    CHECK_EQ_INT(b->ngot, 1);
    node_offline(&s, a, 0);
    run_until_established(&s, 0, t0 + 2900 * MS);
    CHECK(all_established(&s, 0));
    CHECK(s.now < t0 + 3 * SEC);
    CHECK_EQ_INT(ir_rlc_connects(la->core), 2);
    run_until(&s, s.now + 100 * MS);
    CHECK_EQ_INT(b->ngot, 2);
    CHECK(b->ngot >= 2 && strcmp(b->got[1], "early") == 0);
    CHECK_EQ_INT(ir_rlc_queued(la->core), 0);

    /* offline for longer: what waited 3 s is dropped at exactly 3 s, never delivered */
    node_offline(&s, a, 1);
    run_until(&s, s.now + 20 * MS);
    uint64_t t1 = s.now;
    for (int i = 0; i < 70; i++)
        ir_rlc_send(la->core, b->id.bytes, (const uint8_t *)"late", 4, 4, s.now);
    CHECK_EQ_INT(ir_rlc_queued(la->core), IR_RLC_QUEUE_MAX);
    run_until(&s, t1 + 3 * SEC - 1);
    CHECK_EQ_INT(ir_rlc_queued(la->core), IR_RLC_QUEUE_MAX);
    run_until(&s, t1 + 3 * SEC);
    CHECK_EQ_INT(ir_rlc_queued(la->core), 0);
    run_until(&s, t1 + 5 * SEC);
    node_offline(&s, a, 0);
    run_until_established(&s, 0, s.now + 20 * SEC);
    CHECK(all_established(&s, 0));
    CHECK_EQ_INT(ir_rlc_connects(la->core), 3);
    run_until(&s, s.now + 100 * MS);
    CHECK_EQ_INT(b->ngot, 2);
    sim_free(&s);
}

/* The home relay: the lower latency wins; a lower one replaces the home only below 2/3
 * of its latency; when the home goes down the other takes over. */
static void test_home_relay(void)
{
    /* the rule itself */
    int est[2] = {1, 1};
    uint64_t lat[2] = {40 * MS, 30 * MS};
    CHECK_EQ_INT(ir_rlc_choose_home(-1, est, lat, 2), 1);
    CHECK_EQ_INT(ir_rlc_choose_home(0, est, lat, 2), 0); /* 30 is not below 2/3 of 40 */
    lat[1] = 26 * MS;
    CHECK_EQ_INT(ir_rlc_choose_home(0, est, lat, 2), 1);
    est[0] = 0;
    lat[1] = 100 * MS;
    CHECK_EQ_INT(ir_rlc_choose_home(0, est, lat, 2), 1); /* the home is down */
    est[1] = 0;
    CHECK_EQ_INT(ir_rlc_choose_home(0, est, lat, 2), 0); /* none up: no change */
    CHECK_EQ_INT(ir_rlc_choose_home(-1, est, lat, 2), -1);

    sim s;
    sim_init(&s, 31);
    add_relay(&s, 20 * MS); /* 40 ms round trip */
    add_relay(&s, 15 * MS); /* 30 ms */
    node *a = add_node(&s, 0);
    for (int r = 0; r < 2; r++) {
        ir_rlc_want(a->links[r].core, 1, s.now);
        link_sync(&s, &a->links[r]);
    }
    /* relay 1 answers sooner: home first */
    while (s.home[0] < 0 && sim_step(&s, s.now + 5 * SEC))
        ;
    CHECK_EQ_INT(s.home[0], 1);
    run_until_established(&s, 0, s.now + 5 * SEC);
    CHECK_EQ_INT(ir_rlc_latency(a->links[0].core), 40 * MS);
    CHECK_EQ_INT(ir_rlc_latency(a->links[1].core), 30 * MS);
    CHECK_EQ_INT(s.home[0], 1);
    /* the home goes down: failover once its link notices (one way later) */
    uint64_t t = s.now;
    relay_down(&s, 1);
    run_until(&s, t + 15 * MS - 1);
    CHECK_EQ_INT(s.home[0], 1);
    run_until(&s, t + 15 * MS);
    CHECK_EQ_INT(s.home[0], 0);
    /* back, 30 ms against 40: not below 2/3, the home stays */
    relay_up(&s, 1);
    run_until_established(&s, 1, s.now + 20 * SEC);
    CHECK(ir_rlc_established(a->links[1].core));
    run_until(&s, s.now + 1 * SEC);
    CHECK_EQ_INT(s.home[0], 0);
    /* relay 1 gets faster (5 ms one way): its next keepalive (15 s) shows 10 ms, below
     * 2/3 of 40: it becomes the home again */
    s.relays[1].one_way = 5 * MS;
    run_until(&s, s.now + 20 * SEC);
    CHECK_EQ_INT(ir_rlc_latency(a->links[1].core), 10 * MS);
    CHECK_EQ_INT(s.home[0], 1);
    sim_free(&s);
}

/* A link not kept for good closes 60 s after its last use (keepalives do not count) and
 * the relay sees its connection end. */
static void test_unused_close(void)
{
    sim s;
    sim_init(&s, 41);
    add_relay(&s, 5 * MS);
    node *a = add_node(&s, 0), *b = add_node(&s, 0);
    vlink *la = &a->links[0];
    ir_rlc_want(b->links[0].core, 1, s.now);
    link_sync(&s, &b->links[0]);
    uint64_t t0 = s.now;
    ir_rlc_send(la->core, b->id.bytes, (const uint8_t *)"hi", 2, 2, s.now);
    link_sync(&s, la);
    run_until(&s, t0 + 1 * SEC);
    CHECK(ir_rlc_established(la->core));
    CHECK(b->ngot == 1 && strcmp(b->got[0], "hi") == 0);
    uint64_t t1 = s.now;
    ir_rlc_send(la->core, b->id.bytes, (const uint8_t *)"again", 5, 5, t1); /* a use */
    link_out(&s, la);
    run_until(&s, t1 + 60 * SEC - 1);
    CHECK(ir_rlc_established(la->core));
    CHECK(la->stream >= 0);
    run_until(&s, t1 + 60 * SEC);
    CHECK_EQ_INT(ir_rlc_get_state(la->core), IR_RLC_IDLE);
    CHECK(la->stream < 0);
    CHECK_EQ_INT(ir_rlc_timeout(la->core), 0);
    /* the relay sees the end one way later and drops the connection */
    run_until(&s, s.now + 100 * MS);
    ir_relay_server_stats st;
    ir_relay_core_stats(s.relays[0].core, &st);
    CHECK_EQ_INT(st.conns, 1); /* b's, kept for good */
    CHECK_EQ_INT(st.disconnects, 1);
    int open = 0;
    for (int i = 0; i < MAX_STREAMS; i++)
        open += s.streams[i].used && s.streams[i].sc != NULL;
    CHECK_EQ_INT(open, 1); /* b's, kept for good */
    CHECK(ir_rlc_established(b->links[0].core));
    /* used again: it connects again */
    ir_rlc_send(la->core, b->id.bytes, (const uint8_t *)"later", 5, 5, s.now);
    link_sync(&s, la);
    run_until(&s, s.now + 1 * SEC);
    CHECK_EQ_INT(ir_rlc_connects(la->core), 2);
    CHECK(b->ngot == 3 && strcmp(b->got[2], "later") == 0);
    sim_free(&s);
}

int main(void)
{
    RUN(test_connection_over_relay);
    RUN(test_backoff);
    RUN(test_queue_while_down);
    RUN(test_home_relay);
    RUN(test_unused_close);
    TEST_EXIT();
}
