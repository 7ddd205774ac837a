/* The TLS layer alone: a client and a server exchange handshake bytes in memory. */
#include "tls/tls.h"
#include "test.h"

typedef struct side {
    ir_tls *tls;
    uint8_t out[4][8192]; /* pending handshake bytes per level */
    size_t out_len[4];
    uint8_t rx[4][48], tx[4][48];
    int have_rx[4], have_tx[4];
    uint16_t suite;
    uint8_t peer_tp[256];
    size_t peer_tp_len;
    uint64_t tp_verdict;
} side;

static int on_secret(void *ctx, ir_level level, uint16_t suite, const uint8_t *rx,
                     const uint8_t *tx, size_t len)
{
    side *s = ctx;
    s->suite = suite;
    if (rx) { memcpy(s->rx[level], rx, len); s->have_rx[level] = (int)len; }
    if (tx) { memcpy(s->tx[level], tx, len); s->have_tx[level] = (int)len; }
    return 0;
}

static int on_crypto(void *ctx, ir_level level, const uint8_t *data, size_t len)
{
    side *s = ctx;
    if (s->out_len[level] + len > sizeof s->out[level])
        return -1;
    memcpy(s->out[level] + s->out_len[level], data, len);
    s->out_len[level] += len;
    return 0;
}

static uint64_t on_peer_tp(void *ctx, const uint8_t *data, size_t len)
{
    side *s = ctx;
    if (len <= sizeof s->peer_tp) {
        memcpy(s->peer_tp, data, len);
        s->peer_tp_len = len;
    }
    return s->tp_verdict;
}

/* moves all pending bytes from a to b; returns the number of bytes moved or -1 */
static long pump(side *a, side *b)
{
    long moved = 0;
    for (int l = 0; l < 4; l++) {
        if (!a->out_len[l])
            continue;
        size_t n = a->out_len[l];
        uint8_t tmp[8192];
        memcpy(tmp, a->out[l], n);
        a->out_len[l] = 0;
        moved += (long)n;
        if (ir_tls_feed(b->tls, (ir_level)l, tmp, n) != 0)
            return -1;
    }
    return moved;
}

typedef struct setup {
    const char *client_alpns[3];
    const char *server_alpns[3];
    int wrong_expected;
    uint64_t server_tp_verdict;
    int sni;
} setup;

static ir_tls_identity *ident(uint8_t seed)
{
    iroh_secret_key k;
    memset(k.bytes, seed, 32);
    ir_tls_identity *id = NULL;
    CHECK_EQ_INT(ir_tls_identity_new(&k, &id), IROH_OK);
    return id;
}

static int alpn_list(const char *const *names, const uint8_t **ptrs, size_t *lens)
{
    int n = 0;
    for (; n < 3 && names[n]; n++) {
        ptrs[n] = (const uint8_t *)names[n];
        lens[n] = strlen(names[n]);
    }
    return n;
}

/* runs a handshake; returns 1 if both sides completed */
static int handshake(const setup *su, side *c, side *s, ir_tls_identity *cid, ir_tls_identity *sid,
                     const iroh_endpoint_id *server_id)
{
    memset(c, 0, sizeof *c);
    memset(s, 0, sizeof *s);
    s->tp_verdict = su->server_tp_verdict;
    const uint8_t *ca[3], *sa[3];
    size_t cl[3], sl[3];
    static const uint8_t ctp[] = {0x01, 0x04, 0x80, 0x00, 0x75, 0x30};
    static const uint8_t stp[] = {0x0e, 0x01, 0x05};
    iroh_endpoint_id expected = *server_id;
    if (su->wrong_expected)
        expected.bytes[0] ^= 1;
    ir_tls_config cc = {.identity = cid, .is_server = 0, .alpns = ca, .alpn_lens = cl,
                        .n_alpns = (size_t)alpn_list(su->client_alpns, ca, cl),
                        .expected_peer = &expected, .send_sni = su->sni,
                        .local_tp = ctp, .local_tp_len = sizeof ctp};
    ir_tls_config sc = {.identity = sid, .is_server = 1, .alpns = sa, .alpn_lens = sl,
                        .n_alpns = (size_t)alpn_list(su->server_alpns, sa, sl),
                        .local_tp = stp, .local_tp_len = sizeof stp};
    ir_tls_callbacks ccb = {c, on_secret, on_crypto, on_peer_tp};
    ir_tls_callbacks scb = {s, on_secret, on_crypto, on_peer_tp};
    CHECK_EQ_INT(ir_tls_new(&cc, &ccb, &c->tls), IROH_OK);
    CHECK_EQ_INT(ir_tls_new(&sc, &scb, &s->tls), IROH_OK);
    if (!c->tls || !s->tls)
        return 0;
    CHECK_EQ_INT(ir_tls_start(c->tls), 0);
    CHECK(c->out_len[IR_LEVEL_INITIAL] > 0);
    for (int round = 0; round < 10; round++) {
        long a = pump(c, s);
        if (a < 0)
            break;
        long b = pump(s, c);
        if (b < 0)
            break;
        if (a == 0 && b == 0)
            break;
    }
    return ir_tls_complete(c->tls) && ir_tls_complete(s->tls);
}

TEST(successful_handshake)
{
    ir_tls_identity *cid = ident(1), *sid = ident(2);
    iroh_secret_key ck, sk;
    iroh_endpoint_id cpub, spub, got;
    memset(ck.bytes, 1, 32);
    memset(sk.bytes, 2, 32);
    iroh_secret_key_public(&ck, &cpub);
    iroh_secret_key_public(&sk, &spub);
    for (int sni = 0; sni < 2; sni++) {
        setup su = {{"other/1", "iroh-example/echo/0", NULL}, {"iroh-example/echo/0", "x", NULL},
                    0, 0, sni};
        side c, s;
        CHECK(handshake(&su, &c, &s, cid, sid, &spub));
        /* both sides agree on every secret, crosswise */
        CHECK(c.have_tx[IR_LEVEL_HANDSHAKE] == 32 || c.have_tx[IR_LEVEL_HANDSHAKE] == 48);
        CHECK(c.suite == 0x1301 || c.suite == 0x1302 || c.suite == 0x1303);
        CHECK_EQ_INT(c.suite, s.suite);
        for (int l = IR_LEVEL_HANDSHAKE; l <= IR_LEVEL_APP; l++) {
            CHECK(c.have_tx[l] && s.have_rx[l] && c.have_rx[l] && s.have_tx[l]);
            CHECK_MEM(c.tx[l], s.rx[l], (size_t)c.have_tx[l]);
            CHECK_MEM(c.rx[l], s.tx[l], (size_t)c.have_rx[l]);
        }
        size_t len = 0;
        const uint8_t *alpn = ir_tls_alpn(c.tls, &len);
        CHECK(alpn && len == 19 && memcmp(alpn, "iroh-example/echo/0", 19) == 0);
        alpn = ir_tls_alpn(s.tls, &len);
        CHECK(alpn && len == 19);
        CHECK_EQ_INT(ir_tls_peer_id(s.tls, &got), 0);
        CHECK(iroh_endpoint_id_equal(&got, &cpub));
        CHECK_EQ_INT(ir_tls_peer_id(c.tls, &got), 0);
        CHECK(iroh_endpoint_id_equal(&got, &spub));
        /* transport parameters crossed over */
        CHECK_EQ_INT(s.peer_tp_len, 6);
        CHECK_EQ_INT(c.peer_tp_len, 3);
        CHECK_EQ_INT(ir_tls_error(c.tls, NULL), 0);
        ir_tls_free(c.tls);
        ir_tls_free(s.tls);
    }
    ir_tls_identity_free(cid);
    ir_tls_identity_free(sid);
}

TEST(wrong_server_key)
{
    ir_tls_identity *cid = ident(1), *sid = ident(2);
    iroh_secret_key sk;
    iroh_endpoint_id spub;
    memset(sk.bytes, 2, 32);
    iroh_secret_key_public(&sk, &spub);
    setup su = {{"a", NULL, NULL}, {"a", NULL, NULL}, 1, 0, 0};
    side c, s;
    CHECK(!handshake(&su, &c, &s, cid, sid, &spub));
    const char *why;
    CHECK_EQ_INT(ir_tls_error(c.tls, &why), 0x130); /* unknown_ca, as iroh */
    CHECK(strstr(why, "dialed") != NULL);
    CHECK(!c.have_tx[IR_LEVEL_APP] || !ir_tls_complete(c.tls));
    ir_tls_free(c.tls);
    ir_tls_free(s.tls);
    ir_tls_identity_free(cid);
    ir_tls_identity_free(sid);
}

TEST(alpn_mismatch)
{
    ir_tls_identity *cid = ident(1), *sid = ident(2);
    iroh_secret_key sk;
    iroh_endpoint_id spub;
    memset(sk.bytes, 2, 32);
    iroh_secret_key_public(&sk, &spub);
    setup su = {{"a", NULL, NULL}, {"b", NULL, NULL}, 0, 0, 0};
    side c, s;
    CHECK(!handshake(&su, &c, &s, cid, sid, &spub));
    CHECK_EQ_INT(ir_tls_error(s.tls, NULL), 0x178); /* no_application_protocol */
    ir_tls_free(c.tls);
    ir_tls_free(s.tls);
    ir_tls_identity_free(cid);
    ir_tls_identity_free(sid);
}

TEST(transport_parameter_refused)
{
    ir_tls_identity *cid = ident(1), *sid = ident(2);
    iroh_secret_key sk;
    iroh_endpoint_id spub;
    memset(sk.bytes, 2, 32);
    iroh_secret_key_public(&sk, &spub);
    setup su = {{"a", NULL, NULL}, {"a", NULL, NULL}, 0, 0x08, 0};
    side c, s;
    CHECK(!handshake(&su, &c, &s, cid, sid, &spub));
    CHECK_EQ_INT(ir_tls_error(s.tls, NULL), 0x08);
    ir_tls_free(c.tls);
    ir_tls_free(s.tls);
    ir_tls_identity_free(cid);
    ir_tls_identity_free(sid);
}

TEST(spki)
{
    uint8_t key[32], spki[IR_SPKI_LEN], want[IR_SPKI_LEN];
    t_unhex("3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29", key, 32);
    t_unhex("302a300506032b6570032100 3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29",
            want, sizeof want);
    ir_ed25519_spki(key, spki);
    CHECK_MEM(spki, want, IR_SPKI_LEN);
}

int main(void)
{
    RUN(spki);
    RUN(successful_handshake);
    RUN(wrong_server_key);
    RUN(alpn_mismatch);
    RUN(transport_parameter_refused);
    TEST_EXIT();
}
