/* The mDNS core on a virtual clock: the messages (swarm-discovery's layout, read back
 * with ldns), a LAN of cores where every datagram reaches every core (multicast loopback
 * included), discovery, expiry on swarm-discovery's schedule, the answer suppression,
 * and hostile input. */
#include <ldns/ldns.h>
#include <stdarg.h>
#include <string.h>

#include "dns/mdns.h"
#include "sim_rng.h"
#include "test.h"

#define MS 1000000ull
#define T0 (1000ull * 1000 * MS) /* virtual clock start */

static void rng(void *ctx, uint8_t *buf, size_t len)
{
    sim_rng_fill(ctx, buf, len);
}

static void make_id(uint8_t seed, uint8_t id[32])
{
    iroh_secret_key sk;
    memset(sk.bytes, seed, 32);
    iroh_endpoint_id e;
    iroh_secret_key_public(&sk, &e);
    memcpy(id, e.bytes, 32);
}

static void local_info(ir_endpoint_info *ei, const char *relay, const char *ud, ...)
{
    memset(ei, 0, sizeof *ei);
    if (relay)
        snprintf(ei->relay, sizeof ei->relay, "%s", relay);
    if (ud) {
        snprintf(ei->user_data, sizeof ei->user_data, "%s", ud);
        ei->has_user_data = 1;
    }
    va_list ap;
    va_start(ap, ud);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL;)
        if (iroh_socket_addr_parse(a, &ei->addrs[ei->n_addrs]) == 0)
            ei->n_addrs++;
    va_end(ap);
}

/* ---- a LAN of cores ------------------------------------------------------------------ */

#define LAN_MAX 8
typedef struct lan {
    ir_mdns *node[LAN_MAX];
    int up[LAN_MAX];
    size_t n;
    uint64_t now;
    unsigned sent_queries, sent_answers;
    unsigned answers_by[LAN_MAX];
} lan;

/* delivers everything due from node i to every node that is up (i itself too) */
static void lan_flush(lan *l, size_t i)
{
    uint8_t buf[IR_MDNS_MAX_MSG];
    ir_mdns_dest dest;
    size_t n;
    while ((n = ir_mdns_poll_send(l->node[i], buf, sizeof buf, &dest)) > 0) {
        if (!l->up[i])
            continue;
        if (n > 12 && (buf[2] & 0x80)) {
            l->sent_answers++;
            l->answers_by[i]++;
        } else {
            l->sent_queries++;
        }
        for (size_t j = 0; j < l->n; j++)
            if (l->up[j])
                ir_mdns_recv(l->node[j], buf, n, dest == IR_MDNS_TO_V6 ? 6 : 4, l->now);
    }
}

/* runs the LAN until time `until` */
static void lan_run(lan *l, uint64_t until)
{
    for (;;) {
        uint64_t next = UINT64_MAX;
        for (size_t i = 0; i < l->n; i++)
            if (l->up[i] && ir_mdns_next_timeout(l->node[i]) < next)
                next = ir_mdns_next_timeout(l->node[i]);
        if (next > until)
            break;
        if (next > l->now)
            l->now = next;
        for (size_t i = 0; i < l->n; i++) {
            if (!l->up[i] || ir_mdns_next_timeout(l->node[i]) > l->now)
                continue;
            ir_mdns_handle_timeout(l->node[i], l->now);
            lan_flush(l, i);
        }
        /* deliveries may make answers due at once on other nodes */
        for (size_t i = 0; i < l->n; i++)
            if (l->up[i])
                lan_flush(l, i);
    }
    l->now = until;
}

TEST(query_bytes)
{
    uint64_t seed = 1;
    uint8_t id[32];
    make_id(1, id);
    ir_mdns *m = ir_mdns_new(id, rng, &seed, T0);
    /* the first query comes after tau + U[0, tau*1/10) */
    uint64_t t = ir_mdns_next_timeout(m);
    CHECK(t >= T0 + 700 * MS && t < T0 + 770 * MS);
    uint8_t buf[IR_MDNS_MAX_MSG];
    ir_mdns_dest dest;
    CHECK_EQ_INT(ir_mdns_poll_send(m, buf, sizeof buf, &dest), 0);
    ir_mdns_handle_timeout(m, t);
    size_t n = ir_mdns_poll_send(m, buf, sizeof buf, &dest);
    /* ID 0, flags 0, QD 1; _irohv1._udp.local. PTR IN */
    static const uint8_t want[] = { 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 7, '_', 'i', 'r', 'o', 'h',
                                    'v', '1', 4, '_', 'u', 'd', 'p', 5, 'l', 'o', 'c', 'a', 'l', 0,
                                    0, 12, 0, 1 };
    CHECK_EQ_INT(n, sizeof want);
    CHECK_MEM(buf, want, sizeof want);
    CHECK_EQ_INT(dest, IR_MDNS_TO_ANY);
    /* no addresses of our own: we never answer */
    ir_mdns_handle_timeout(m, ir_mdns_next_timeout(m));
    CHECK_EQ_INT(ir_mdns_poll_send(m, buf, sizeof buf, &dest), 0);
    ir_mdns_free(m);
}

TEST(answer_layout)
{
    uint64_t seed = 2;
    uint8_t id[32];
    make_id(1, id);
    ir_mdns *m = ir_mdns_new(id, rng, &seed, T0);
    ir_endpoint_info self;
    local_info(&self, "https://use1-1.relay.n0.iroh.link./", "hi there", "192.168.1.10:11204",
               "[2001:db8::1]:4433", "10.0.0.2:11204", "10.0.0.2:11204", NULL);
    CHECK_EQ_INT(ir_mdns_set_local(m, &self), 0);
    /* a query heard over IPv6: the answer goes back over IPv6 */
    static const uint8_t query[] = { 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 7, '_', 'i', 'r', 'o', 'h',
                                     'v', '1', 4, '_', 'u', 'd', 'p', 5, 'l', 'o', 'c', 'a', 'l', 0,
                                     0, 12, 0, 1 };
    ir_mdns_recv(m, query, sizeof query, 6, T0 + 10 * MS);
    /* S = 1: the answer within U[0, 100 ms * 1/2) */
    uint64_t t = ir_mdns_next_timeout(m);
    CHECK(t >= T0 + 10 * MS && t < T0 + 60 * MS);
    ir_mdns_handle_timeout(m, t);
    uint8_t buf[IR_MDNS_MAX_MSG];
    ir_mdns_dest dest;
    size_t n = ir_mdns_poll_send(m, buf, sizeof buf, &dest);
    CHECK(n > 0);
    CHECK_EQ_INT(dest, IR_MDNS_TO_V6);
    ldns_pkt *p = NULL;
    CHECK(ldns_wire2pkt(&p, buf, n) == LDNS_STATUS_OK);
    if (!p) {
        ir_mdns_free(m);
        return;
    }
    char *text = ldns_pkt2str(p);
    CHECK_EQ_INT(ldns_pkt_id(p), 0);
    CHECK(ldns_pkt_qr(p) && ldns_pkt_aa(p));
    CHECK_EQ_INT(ldns_pkt_qdcount(p), 0);
    /* SRV for port 4433, SRV for 11204, then the TXT */
    CHECK_EQ_INT(ldns_pkt_ancount(p), 3);
    CHECK_EQ_INT(ldns_pkt_arcount(p), 3);
    char b32[IROH_ID_BASE32_LEN];
    iroh_endpoint_id_to_base32((const iroh_endpoint_id *)id, b32, sizeof b32);
    char want[1024];
    snprintf(want, sizeof want, "%s._irohv1._udp.local.\t0\tIN\tSRV\t0 0 4433 %s-4433.local.", b32, b32);
    CHECK(strstr(text, want) != NULL);
    snprintf(want, sizeof want, "%s._irohv1._udp.local.\t0\tIN\tSRV\t0 0 11204 %s-11204.local.", b32, b32);
    CHECK(strstr(text, want) != NULL);
    snprintf(want, sizeof want,
             "%s._irohv1._udp.local.\t0\tIN\tTXT\t\"relay=https://use1-1.relay.n0.iroh.link./\" \"user-data=hi there\"",
             b32);
    CHECK(strstr(text, want) != NULL);
    snprintf(want, sizeof want, "%s-4433.local.\t0\tIN\tAAAA\t2001:db8::1", b32);
    CHECK(strstr(text, want) != NULL);
    snprintf(want, sizeof want, "%s-11204.local.\t0\tIN\tA\t192.168.1.10", b32);
    CHECK(strstr(text, want) != NULL);
    snprintf(want, sizeof want, "%s-11204.local.\t0\tIN\tA\t10.0.0.2", b32);
    CHECK(strstr(text, want) != NULL);
    /* our addresses sorted and deduplicated as swarm-discovery keeps them */
    {
        char w1[256], w2[256];
        snprintf(w1, sizeof w1, "%s-11204.local.\t0\tIN\tA\t10.0.0.2", b32);
        snprintf(w2, sizeof w2, "%s-11204.local.\t0\tIN\tA\t192.168.1.10", b32);
        CHECK(strstr(text, w1) && strstr(text, w2) && strstr(text, w1) < strstr(text, w2));
    }
    const ldns_rr *first = ldns_rr_list_rr(ldns_pkt_answer(p), 0);
    CHECK_EQ_INT(ldns_rr_get_type(first), LDNS_RR_TYPE_SRV);
    CHECK_EQ_INT(ldns_rdf2native_int16(ldns_rr_rdf(first, 2)), 4433);
    if (t_failures)
        fprintf(stderr, "%s\n", text);
    free(text);
    ldns_pkt_free(p);
    /* a second core reads it as iroh would */
    uint64_t seed2 = 3;
    uint8_t id2[32];
    make_id(2, id2);
    ir_mdns *o = ir_mdns_new(id2, rng, &seed2, T0);
    ir_mdns_recv(o, buf, n, 6, T0 + 100 * MS);
    ir_mdns_event ev;
    CHECK_EQ_INT(ir_mdns_poll_event(o, &ev), 1);
    CHECK_EQ_INT(ev.kind, IR_MDNS_EV_DISCOVERED);
    CHECK_MEM(ev.info.id, id, 32);
    CHECK_STR(ev.info.relay, "https://use1-1.relay.n0.iroh.link./");
    CHECK_STR(ev.info.user_data, "hi there");
    CHECK_EQ_INT(ev.info.n_addrs, 3);
    /* sorted as swarm-discovery sorts (IPv4 first, by address, then port) */
    char a[IROH_SOCKET_ADDR_LEN];
    iroh_socket_addr_to_string(&ev.info.addrs[0], a, sizeof a);
    CHECK_STR(a, "10.0.0.2:11204");
    iroh_socket_addr_to_string(&ev.info.addrs[1], a, sizeof a);
    CHECK_STR(a, "192.168.1.10:11204");
    iroh_socket_addr_to_string(&ev.info.addrs[2], a, sizeof a);
    CHECK_STR(a, "[2001:db8::1]:4433");
    CHECK_EQ_INT(ir_mdns_poll_event(o, &ev), 0);
    ir_endpoint_info got;
    CHECK_EQ_INT(ir_mdns_lookup(o, id, &got), 1);
    CHECK_EQ_INT(got.n_addrs, 3);
    CHECK_EQ_INT(ir_mdns_lookup(o, id2, &got), 0);
    ir_mdns_free(o);
    ir_mdns_free(m);
}

TEST(two_find_each_other_and_expire)
{
    uint64_t seed = 7;
    lan l;
    memset(&l, 0, sizeof l);
    l.now = T0;
    uint8_t ida[32], idb[32];
    make_id(0xa, ida);
    make_id(0xb, idb);
    l.node[0] = ir_mdns_new(ida, rng, &seed, T0);
    l.node[1] = ir_mdns_new(idb, rng, &seed, T0);
    l.up[0] = l.up[1] = 1;
    l.n = 2;
    ir_endpoint_info a, b;
    local_info(&a, "https://relay.a.example./", NULL, "10.0.0.1:1001", NULL);
    local_info(&b, NULL, "bee", "10.0.0.2:1002", "[fe80::2]:1002", NULL);
    ir_mdns_set_local(l.node[0], &a);
    ir_mdns_set_local(l.node[1], &b);
    /* both know each other after the first query round: within tau + 10 % + 50 ms */
    lan_run(&l, T0 + 900 * MS);
    ir_endpoint_info got;
    CHECK_EQ_INT(ir_mdns_lookup(l.node[0], idb, &got), 1);
    CHECK_STR(got.user_data, "bee");
    CHECK_EQ_INT(got.n_addrs, 2);
    CHECK_EQ_INT(ir_mdns_lookup(l.node[1], ida, &got), 1);
    CHECK_STR(got.relay, "https://relay.a.example./");
    /* each has heard itself too: swarm size 2 */
    CHECK_EQ_INT(ir_mdns_peer_count(l.node[0]), 2);
    ir_mdns_event ev;
    int disc = 0;
    while (ir_mdns_poll_event(l.node[0], &ev)) {
        CHECK_EQ_INT(ev.kind, IR_MDNS_EV_DISCOVERED);
        CHECK_MEM(ev.info.id, idb, 32);
        disc++;
    }
    CHECK(disc >= 1);
    /* a minute on: still known, and not every query is answered by both (suppression
     * once cutoff = 2 answers were heard) */
    unsigned q0 = l.sent_queries, a0 = l.sent_answers;
    lan_run(&l, T0 + 60000 * MS);
    CHECK_EQ_INT(ir_mdns_lookup(l.node[0], idb, &got), 1);
    CHECK_EQ_INT(ir_mdns_lookup(l.node[1], ida, &got), 1);
    unsigned queries = l.sent_queries - q0, answers = l.sent_answers - a0;
    /* one query per round on the LAN: a heard query restarts the other's timer */
    if (!(queries >= 60000 / 1000 && queries <= 60000 / 700))
        fprintf(stderr, "queries in 60 s: %u\n", queries);
    CHECK(queries >= 60000 / 1000 && queries <= 60000 / 700);
    CHECK(answers <= 2 * queries);
    CHECK(answers >= queries); /* every query is answered at least once */
    while (ir_mdns_poll_event(l.node[0], &ev))
        CHECK_EQ_INT(ev.kind, IR_MDNS_EV_DISCOVERED);
    /* b leaves: a expires it after 3 / f_peer = 2.1 s (N = 2), swept every ~864 ms */
    l.up[1] = 0;
    uint64_t left = l.now;
    lan_run(&l, left + 2000 * MS);
    CHECK_EQ_INT(ir_mdns_lookup(l.node[0], idb, &got), 1);
    lan_run(&l, left + 3200 * MS);
    CHECK_EQ_INT(ir_mdns_lookup(l.node[0], idb, &got), 0);
    int expired = 0;
    while (ir_mdns_poll_event(l.node[0], &ev))
        if (ev.kind == IR_MDNS_EV_EXPIRED && memcmp(ev.info.id, idb, 32) == 0)
            expired++;
    CHECK_EQ_INT(expired, 1);
    /* a itself stays in its table (it hears its own answers) */
    CHECK_EQ_INT(ir_mdns_peer_count(l.node[0]), 1);
    ir_mdns_free(l.node[0]);
    ir_mdns_free(l.node[1]);
}

TEST(ten_peers_share_the_answers)
{
    uint64_t seed = 11;
    lan l;
    memset(&l, 0, sizeof l);
    l.now = T0;
    uint8_t ids[LAN_MAX][32];
    for (size_t i = 0; i < LAN_MAX; i++) {
        make_id((uint8_t)(0x20 + i), ids[i]);
        l.node[i] = ir_mdns_new(ids[i], rng, &seed, T0);
        l.up[i] = 1;
        ir_endpoint_info e;
        char addr[32];
        snprintf(addr, sizeof addr, "10.0.1.%zu:%zu", i + 1, 2000 + i);
        local_info(&e, NULL, NULL, addr, NULL);
        ir_mdns_set_local(l.node[i], &e);
    }
    l.n = LAN_MAX;
    lan_run(&l, T0 + 30000 * MS);
    for (size_t i = 0; i < LAN_MAX; i++) {
        CHECK_EQ_INT(ir_mdns_peer_count(l.node[i]), LAN_MAX);
        for (size_t j = 0; j < LAN_MAX; j++) {
            ir_endpoint_info got;
            CHECK_EQ_INT(ir_mdns_lookup(l.node[i], ids[j], &got), 1);
        }
    }
    /* swarm-discovery's point: about cutoff (2) answers per query, not one per peer */
    CHECK(l.sent_answers < 4 * l.sent_queries);
    /* and everybody answers now and then */
    for (size_t i = 0; i < LAN_MAX; i++)
        CHECK(l.answers_by[i] > 0);
    for (size_t i = 0; i < LAN_MAX; i++)
        ir_mdns_free(l.node[i]);
}

/* an answer in swarm-discovery's layout, written by hand without compression (as hickory
 * may write it), for the peer label given */
static size_t hand_answer(uint8_t *out, const char *label, const uint8_t ip[4], uint16_t port,
                          const char *txt)
{
    ldns_pkt *p = ldns_pkt_new();
    ldns_pkt_set_qr(p, true);
    ldns_pkt_set_aa(p, true);
    char line[512];
    ldns_rr *rr = NULL;
    snprintf(line, sizeof line, "%s._irohv1._udp.local. 0 IN SRV 0 0 %u %s-%u.local.", label, port,
             label, port);
    if (ldns_rr_new_frm_str(&rr, line, 0, NULL, NULL) != LDNS_STATUS_OK)
        abort();
    ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr);
    if (txt) {
        snprintf(line, sizeof line, "%s._irohv1._udp.local. 0 IN TXT %s", label, txt);
        if (ldns_rr_new_frm_str(&rr, line, 0, NULL, NULL) != LDNS_STATUS_OK)
            abort();
        ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr);
    }
    snprintf(line, sizeof line, "%s-%u.local. 0 IN A %u.%u.%u.%u", label, port, ip[0], ip[1],
             ip[2], ip[3]);
    if (ldns_rr_new_frm_str(&rr, line, 0, NULL, NULL) != LDNS_STATUS_OK)
        abort();
    ldns_pkt_push_rr(p, LDNS_SECTION_ADDITIONAL, rr);
    uint8_t *wire = NULL;
    size_t n = 0;
    if (ldns_pkt2wire(&wire, p, &n) != LDNS_STATUS_OK || n > IR_MDNS_MAX_MSG)
        abort();
    memcpy(out, wire, n);
    free(wire);
    ldns_pkt_free(p);
    return n;
}

TEST(foreign_forms_and_hostile_input)
{
    uint64_t seed = 5;
    uint8_t me[32], peer[32];
    make_id(1, me);
    make_id(2, peer);
    ir_mdns *m = ir_mdns_new(me, rng, &seed, T0);
    uint8_t buf[IR_MDNS_MAX_MSG];
    ir_mdns_event ev;
    const uint8_t ip[4] = { 10, 9, 8, 7 };
    /* the id in uppercase base32 works too (iroh parses the label with
     * PublicKey::from_str; hex, 64 characters, does not fit a DNS label); TXT: the first
     * occurrence of a key counts, a string without '=' is a key without value */
    char hex[IROH_ID_BASE32_LEN];
    iroh_endpoint_id_to_base32((const iroh_endpoint_id *)peer, hex, sizeof hex);
    for (char *c = hex; *c; c++)
        if (*c >= 'a' && *c <= 'z')
            *c = (char)(*c - 'a' + 'A');
    size_t n = hand_answer(buf, hex, ip, 7, "\"flag\" \"relay=https://first.example/\" \"relay=https://second.example/\" \"user-data=u1\" \"user-data=u2\"");
    ir_mdns_recv(m, buf, n, 4, T0);
    CHECK_EQ_INT(ir_mdns_poll_event(m, &ev), 1);
    CHECK_MEM(ev.info.id, peer, 32);
    CHECK_STR(ev.info.relay, "https://first.example/");
    CHECK_STR(ev.info.user_data, "u1");
    CHECK_EQ_INT(ev.info.n_addrs, 1);
    /* our own answer makes no event (but counts in the swarm) */
    char b32[IROH_ID_BASE32_LEN];
    iroh_endpoint_id_to_base32((const iroh_endpoint_id *)me, b32, sizeof b32);
    n = hand_answer(buf, b32, ip, 8, NULL);
    ir_mdns_recv(m, buf, n, 4, T0);
    CHECK_EQ_INT(ir_mdns_poll_event(m, &ev), 0);
    CHECK_EQ_INT(ir_mdns_peer_count(m), 2);
    /* labels that are no key, a point that is no key: ignored */
    n = hand_answer(buf, "notakey", ip, 9, NULL);
    ir_mdns_recv(m, buf, n, 4, T0);
    n = hand_answer(buf, "aiaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", ip, 9, NULL);
    ir_mdns_recv(m, buf, n, 4, T0);
    CHECK_EQ_INT(ir_mdns_poll_event(m, &ev), 0);
    CHECK_EQ_INT(ir_mdns_peer_count(m), 2);
    /* garbage and truncations of a good answer */
    n = hand_answer(buf, hex, ip, 7, "\"relay=https://x.example/\"");
    for (size_t cut = 0; cut < n; cut++)
        ir_mdns_recv(m, buf, cut, 4, T0);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = buf[i];
        buf[i] ^= 0xff;
        ir_mdns_recv(m, buf, n, 4, T0);
        buf[i] = c;
    }
    while (ir_mdns_poll_event(m, &ev))
        ;
    /* a flood of 1000 ids: the table stops at IR_MDNS_MAX_PEERS; events stay bounded */
    for (int i = 0; i < 1000; i++) {
        uint8_t id[32];
        iroh_secret_key sk;
        memset(sk.bytes, 0, 32);
        memcpy(sk.bytes, &i, sizeof i);
        iroh_endpoint_id e;
        iroh_secret_key_public(&sk, &e);
        memcpy(id, e.bytes, 32);
        char lb[IROH_ID_BASE32_LEN];
        iroh_endpoint_id_to_base32(&e, lb, sizeof lb);
        n = hand_answer(buf, lb, ip, 1, NULL);
        ir_mdns_recv(m, buf, n, 4, T0 + 1);
    }
    CHECK_EQ_INT(ir_mdns_peer_count(m), IR_MDNS_MAX_PEERS);
    int evs = 0;
    while (ir_mdns_poll_event(m, &ev))
        evs++;
    CHECK_EQ_INT(evs, IR_MDNS_MAX_EVENTS);
    /* all expire on the sweep: grace = 3 * 0.7 s * 256 / 2 */
    uint64_t t = T0 + 1;
    while (t < T0 + 300000 * MS && ir_mdns_peer_count(m) > 0) {
        t = ir_mdns_next_timeout(m);
        ir_mdns_handle_timeout(m, t);
        while (ir_mdns_poll_send(m, buf, sizeof buf, &(ir_mdns_dest){ 0 }))
            ;
    }
    CHECK_EQ_INT(ir_mdns_peer_count(m), 0);
    CHECK(t >= T0 + 268800 * MS);
    ir_mdns_free(m);
}

/* appends a name written out in full (no compression) */
static size_t put_name(uint8_t *b, size_t n, const char *dotted)
{
    while (*dotted) {
        const char *dot = strchr(dotted, '.');
        size_t l = dot ? (size_t)(dot - dotted) : strlen(dotted);
        b[n++] = (uint8_t)l;
        memcpy(b + n, dotted, l);
        n += l;
        dotted += l + (dot ? 1 : 0);
    }
    b[n++] = 0;
    return n;
}

static size_t put_rr_head(uint8_t *b, size_t n, const char *name, uint16_t type, uint16_t rdlen)
{
    n = put_name(b, n, name);
    const uint8_t h[] = { (uint8_t)(type >> 8), (uint8_t)type, 0, 1, 0, 0, 0, 0,
                          (uint8_t)(rdlen >> 8), (uint8_t)rdlen };
    memcpy(b + n, h, sizeof h);
    return n + sizeof h;
}

TEST(uncompressed_answer)
{
    /* an answer written byte by byte without name compression (hickory may write either) */
    uint64_t seed = 9;
    uint8_t me[32], peer[32];
    make_id(1, me);
    make_id(3, peer);
    char b32[IROH_ID_BASE32_LEN], owner[128], target[128];
    iroh_endpoint_id_to_base32((const iroh_endpoint_id *)peer, b32, sizeof b32);
    snprintf(owner, sizeof owner, "%s._irohv1._udp.local", b32);
    snprintf(target, sizeof target, "%s-7777.local", b32);
    uint8_t b[1024];
    const uint8_t hdr[] = { 0, 0, 0x84, 0, 0, 0, 0, 2, 0, 0, 0, 2 };
    memcpy(b, hdr, sizeof hdr);
    size_t n = sizeof hdr;
    /* SRV 0 0 7777 target */
    n = put_rr_head(b, n, owner, 33, (uint16_t)(6 + strlen(target) + 2));
    b[n++] = 0, b[n++] = 0, b[n++] = 0, b[n++] = 0, b[n++] = 7777 >> 8, b[n++] = 7777 & 0xff;
    n = put_name(b, n, target);
    /* TXT "relay=https://r.example/" */
    const char *kv = "relay=https://r.example/";
    n = put_rr_head(b, n, owner, 16, (uint16_t)(1 + strlen(kv)));
    b[n++] = (uint8_t)strlen(kv);
    memcpy(b + n, kv, strlen(kv));
    n += strlen(kv);
    /* A and AAAA of the target */
    n = put_rr_head(b, n, target, 1, 4);
    b[n++] = 192, b[n++] = 168, b[n++] = 5, b[n++] = 5;
    n = put_rr_head(b, n, target, 28, 16);
    memset(b + n, 0, 16);
    b[n] = 0xfe, b[n + 1] = 0x80, b[n + 15] = 5;
    n += 16;
    ir_mdns *m = ir_mdns_new(me, rng, &seed, T0);
    ir_mdns_recv(m, b, n, 4, T0);
    ir_mdns_event ev;
    CHECK_EQ_INT(ir_mdns_poll_event(m, &ev), 1);
    CHECK_MEM(ev.info.id, peer, 32);
    CHECK_STR(ev.info.relay, "https://r.example/");
    CHECK_EQ_INT(ev.info.n_addrs, 2);
    char a[IROH_SOCKET_ADDR_LEN];
    iroh_socket_addr_to_string(&ev.info.addrs[0], a, sizeof a);
    CHECK_STR(a, "192.168.5.5:7777");
    iroh_socket_addr_to_string(&ev.info.addrs[1], a, sizeof a);
    CHECK_STR(a, "[fe80::5]:7777");
    ir_mdns_free(m);
}

int main(void)
{
    RUN(query_bytes);
    RUN(answer_layout);
    RUN(two_find_each_other_and_expire);
    RUN(ten_peers_share_the_answers);
    RUN(foreign_forms_and_hostile_input);
    RUN(uncompressed_answer);
    TEST_EXIT();
}
