/* The mDNS core's reading of datagrams from the LAN: any bytes are ignored or read;
 * afterwards the core still asks, answers (it has an address of its own) and keeps its
 * tables within bounds. The first byte picks the family and whether we are in the answer
 * phase (a query heard first). */
#include <stdlib.h>
#include <string.h>

#include "dns/mdns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void zero_rng(void *ctx, uint8_t *buf, size_t len)
{
    (void)ctx;
    memset(buf, 0x5a, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const uint8_t id[32] = { 1 };
    uint64_t now = 1000000000ull;
    ir_mdns *m = ir_mdns_new(id, zero_rng, NULL, now);
    if (!m)
        return 0;
    ir_endpoint_info self;
    memset(&self, 0, sizeof self);
    iroh_socket_addr_parse("10.0.0.1:7", &self.addrs[0]);
    self.n_addrs = 1;
    ir_mdns_set_local(m, &self);
    if (data[0] & 2) {
        static const uint8_t q[] = { 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 7, '_', 'i', 'r', 'o', 'h',
                                     'v', '1', 4, '_', 'u', 'd', 'p', 5, 'l', 'o', 'c', 'a', 'l', 0,
                                     0, 12, 0, 1 };
        ir_mdns_recv(m, q, sizeof q, 4, now);
    }
    ir_mdns_recv(m, data + 1, size - 1, data[0] & 1 ? 6 : 4, now);
    if (ir_mdns_peer_count(m) > IR_MDNS_MAX_PEERS)
        abort();
    ir_mdns_event ev;
    while (ir_mdns_poll_event(m, &ev))
        if (ev.info.n_addrs > IR_ENDPOINT_INFO_MAX_ADDRS || !memchr(ev.info.relay, 0, sizeof ev.info.relay))
            abort();
    /* the timers still run and the datagrams still come out */
    uint8_t out[IR_MDNS_MAX_MSG];
    ir_mdns_dest dest;
    int sent = 0;
    for (int i = 0; i < 4; i++) {
        now = ir_mdns_next_timeout(m);
        ir_mdns_handle_timeout(m, now);
        while (ir_mdns_poll_send(m, out, sizeof out, &dest))
            sent++;
    }
    if (!sent)
        abort();
    ir_mdns_free(m);
    return 0;
}
