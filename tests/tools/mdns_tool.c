/* One mDNS instance (src/dns/mdns_io.h) for the LAN tests: announces an address (and a
 * relay, user data) under the id of a seeded key and reports when the id of another
 * seeded key is found, and with --expire when it expires again.
 *   mdns_tool --seed N --addr IP:PORT [--relay URL] [--user-data S] --want-seed M
 *             [--timeout SECS] [--expire] [--port P] [--ifindex I] [--no-ipv6] [--no-ipv4]
 * Prints "found <id hex> relay=<url> user-data=<s> addrs=<a>,<b>" and "expired"; exits 0
 * when it saw what it waited for, 1 on timeout, 2 on bad arguments or no socket. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dns/mdns_io.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void seeded_id(int seed, uint8_t id[32])
{
    iroh_secret_key sk;
    memset(sk.bytes, seed, 32);
    iroh_endpoint_id e;
    iroh_secret_key_public(&sk, &e);
    memcpy(id, e.bytes, 32);
}

int main(int argc, char **argv)
{
    int seed = -1, want = -1, expire = 0;
    double timeout = 20;
    ir_endpoint_info self;
    memset(&self, 0, sizeof self);
    ir_mdns_io_config cfg = { 0 };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--expire")) {
            expire = 1;
        } else if (!strcmp(a, "--no-ipv6")) {
            cfg.no_ipv6 = 1;
        } else if (!strcmp(a, "--no-ipv4")) {
            cfg.no_ipv4 = 1;
        } else if (!v) {
            fprintf(stderr, "mdns_tool: %s needs a value\n", a);
            return 2;
        } else if (!strcmp(a, "--seed")) {
            seed = atoi(v), i++;
        } else if (!strcmp(a, "--want-seed")) {
            want = atoi(v), i++;
        } else if (!strcmp(a, "--timeout")) {
            timeout = atof(v), i++;
        } else if (!strcmp(a, "--port")) {
            cfg.port = (uint16_t)atoi(v), i++;
        } else if (!strcmp(a, "--ifindex")) {
            cfg.ifindex = (unsigned)atoi(v), i++;
        } else if (!strcmp(a, "--relay")) {
            snprintf(self.relay, sizeof self.relay, "%s", v), i++;
        } else if (!strcmp(a, "--user-data")) {
            snprintf(self.user_data, sizeof self.user_data, "%s", v), i++;
            self.has_user_data = 1;
        } else if (!strcmp(a, "--addr")) {
            if (self.n_addrs == IR_ENDPOINT_INFO_MAX_ADDRS ||
                iroh_socket_addr_parse(v, &self.addrs[self.n_addrs]) != IROH_OK) {
                fprintf(stderr, "mdns_tool: bad address %s\n", v);
                return 2;
            }
            self.n_addrs++, i++;
        } else {
            fprintf(stderr, "mdns_tool: unknown argument %s\n", a);
            return 2;
        }
    }
    if (seed < 0 || want < 0) {
        fprintf(stderr, "mdns_tool: --seed and --want-seed are needed\n");
        return 2;
    }
    uint8_t id[32], want_id[32];
    seeded_id(seed, id);
    seeded_id(want, want_id);
    ir_mdns_io *io = NULL;
    uint64_t start = now_ns();
    if (ir_mdns_io_open(id, &cfg, start, &io) != IROH_OK) {
        fprintf(stderr, "mdns_tool: %s\n", iroh_last_error());
        return 2;
    }
    ir_mdns_set_local(ir_mdns_io_core(io), &self);
    char hex[IROH_ID_HEX_LEN];
    iroh_endpoint_id_to_hex((const iroh_endpoint_id *)id, hex, sizeof hex);
    printf("id %s\n", hex);
    fflush(stdout);
    uint64_t end = start + (uint64_t)(timeout * 1e9);
    int found = 0, rc = 1;
    for (;;) {
        uint64_t now = now_ns();
        if (now >= end)
            break;
        uint64_t next = ir_mdns_io_next_timeout(io);
        if (next > end)
            next = end;
        struct pollfd p[2] = { { ir_mdns_io_fd(io, 4), POLLIN, 0 }, { ir_mdns_io_fd(io, 6), POLLIN, 0 } };
        int ms = next > now ? (int)((next - now + 999999) / 1000000) : 0;
        poll(p, 2, ms);
        ir_mdns_io_process(io, now_ns());
        ir_mdns_event ev;
        while (ir_mdns_poll_event(ir_mdns_io_core(io), &ev)) {
            if (memcmp(ev.info.id, want_id, 32) != 0)
                continue;
            if (ev.kind == IR_MDNS_EV_DISCOVERED && !found) {
                found = 1;
                iroh_endpoint_id_to_hex((const iroh_endpoint_id *)ev.info.id, hex, sizeof hex);
                printf("found %s relay=%s user-data=%s addrs=", hex, ev.info.relay,
                       ev.info.has_user_data ? ev.info.user_data : "");
                for (size_t i = 0; i < ev.info.n_addrs; i++) {
                    char s[IROH_SOCKET_ADDR_LEN];
                    iroh_socket_addr_to_string(&ev.info.addrs[i], s, sizeof s);
                    printf("%s%s", i ? "," : "", s);
                }
                printf("\n");
                fflush(stdout);
                if (!expire) {
                    rc = 0;
                    goto out;
                }
            } else if (ev.kind == IR_MDNS_EV_EXPIRED && found) {
                printf("expired\n");
                fflush(stdout);
                rc = 0;
                goto out;
            }
        }
    }
out:
    ir_mdns_io_close(io);
    return rc;
}
