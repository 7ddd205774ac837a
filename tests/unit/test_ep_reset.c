/* Stateless resets through the real endpoint (sockets, the shell, the core) over
 * loopback: a server endpoint restarts on the same port with the same key and no state;
 * the client's next packet gets a stateless reset, which the client's endpoint hands to
 * the connection by its token (RFC 9000 10.3.1), and the connection ends at once, not at
 * its idle timeout. test_sim checks the same in the simulator. */
#include <string.h>

#include "test.h"

#include "endpoint/ep.h"

static const char ALPN[] = "reset/0";

static ir_ep *endpoint(const iroh_secret_key *key, const char *bind, int accept)
{
    static const uint8_t *alpns[1] = {(const uint8_t *)ALPN};
    static size_t lens[1] = {sizeof ALPN - 1};
    ir_ep_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.key = *key;
    if (accept) {
        cfg.alpns = alpns;
        cfg.alpn_lens = lens;
        cfg.n_alpns = 1;
    }
    iroh_socket_addr_parse(bind, &cfg.bind4);
    ir_ep *ep = NULL;
    CHECK(ir_ep_new(&cfg, &ep) == IROH_OK);
    return ep;
}

static uint64_t ms_now(void)
{
    return ir_now_ns() / 1000000;
}

TEST(reset_after_restart)
{
    iroh_secret_key skey, ckey;
    iroh_secret_key_generate(&skey);
    iroh_secret_key_generate(&ckey);
    ir_ep *sep = endpoint(&skey, "127.0.0.1:0", 1);
    ir_ep *cep = endpoint(&ckey, "127.0.0.1:0", 0);
    if (!sep || !cep)
        return;
    iroh_socket_addr sa;
    ir_ep_addrs(sep, &sa, 1);
    iroh_endpoint_addr *to = iroh_endpoint_addr_new(ir_ep_id(sep));
    iroh_endpoint_addr_add_ip(to, &sa);
    ir_conn *c = NULL;
    CHECK(ir_ep_connect(cep, to, (const uint8_t *)ALPN, sizeof ALPN - 1, &c) == IROH_OK);
    iroh_endpoint_addr_free(to);
    ir_conn *sc = NULL;
    uint64_t end = ms_now() + 3000;
    while (c && ms_now() < end) {
        ir_ep_poll(sep, 0, NULL, 0);
        ir_ep_poll(cep, 1, NULL, 0);
        ir_conn *a = ir_ep_accept(sep);
        if (a)
            sc = a;
        if (sc && ir_conn_get_state(c) == IR_CONN_ESTABLISHED &&
            ir_conn_get_state(sc) == IR_CONN_ESTABLISHED)
            break;
    }
    CHECK(c && ir_conn_get_state(c) == IR_CONN_ESTABLISHED);
    CHECK(sc && ir_conn_get_state(sc) == IR_CONN_ESTABLISHED);
    /* let the last acknowledgements and NEW_CONNECTION_IDs settle */
    end = ms_now() + 200;
    while (ms_now() < end) {
        ir_ep_poll(sep, 0, NULL, 0);
        ir_ep_poll(cep, 1, NULL, 0);
    }
    /* the restart: nothing is sent, the same port and key come back without state */
    ir_ep_release_quiet(sep, sc, 1);
    ir_ep_free(sep);
    char bind[64];
    iroh_socket_addr_to_string(&sa, bind, sizeof bind);
    sep = endpoint(&skey, bind, 1);
    if (!sep) {
        ir_ep_free(cep);
        return;
    }
    uint64_t id;
    CHECK(ir_conn_stream_open(c, 1, &id) == 0);
    CHECK(ir_conn_stream_write(c, id, (const uint8_t *)"hello", 5, 1) == 5);
    ir_ep_flush(cep);
    uint64_t start = ms_now();
    end = start + 2000; /* the idle timeout is 30 s */
    while (!ir_conn_close_info(c)->closed && ms_now() < end) {
        ir_ep_poll(sep, 0, NULL, 0);
        ir_ep_poll(cep, 1, NULL, 0);
    }
    const ir_close_info *ci = ir_conn_close_info(c);
    CHECK(ci->closed);
    CHECK(ci->reset);
    CHECK(ci->by_peer);
    ir_ep_free(sep);
    ir_ep_free(cep);
}

int main(void)
{
    RUN(reset_after_restart);
    TEST_EXIT();
}
