/* The endpoint's own candidate addresses (ep_core.h): which interface addresses count
 * (regular ones; IPv4 link-local, then loopback, only when there is nothing else; never
 * IPv6 link-local), the sockets' specific addresses, the public and the configured ones;
 * tickets keep loopback; the list changes (and counts a change) only when it differs.
 * Then the shell: a rebind gives the socket a new port, the candidates follow, and a live
 * connection goes on from the new address. */
#include <sched.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

#include "endpoint/ep.h"
#include "endpoint/ep_core.h"

static void no_send(void *ctx, const ir_netaddr *to, const uint8_t *buf, size_t len, size_t seg)
{
    (void)ctx, (void)to, (void)buf, (void)len, (void)seg;
}

static ir_epc *core(void)
{
    ir_ep_config cfg;
    memset(&cfg, 0, sizeof cfg);
    iroh_secret_key_generate(&cfg.key);
    ir_epc_io io = {.send = no_send};
    ir_epc *e = NULL;
    CHECK_EQ_INT(ir_epc_new(&cfg, &io, &e), IROH_OK);
    return e;
}

static iroh_socket_addr sa(const char *text)
{
    iroh_socket_addr a;
    memset(&a, 0, sizeof a);
    CHECK_EQ_INT(iroh_socket_addr_parse(text, &a), IROH_OK);
    return a;
}

static ir_epc_iface iface(const char *ip_port, int loopback)
{
    ir_epc_iface f = {.addr = sa(ip_port), .loopback = loopback};
    return f;
}

/* the list as text, "a b c" */
static const char *text_of(const iroh_socket_addr *a, size_t n)
{
    static char buf[2048];
    size_t o = 0;
    buf[0] = 0;
    for (size_t i = 0; i < n; i++) {
        char t[IROH_SOCKET_ADDR_LEN];
        iroh_socket_addr_to_string(&a[i], t, sizeof t);
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%s", i ? " " : "", t);
    }
    return buf;
}

static const char *cands(const ir_epc *e)
{
    iroh_socket_addr a[IR_EPC_MAX_LOCAL];
    return text_of(a, ir_epc_local_addrs(e, a, IR_EPC_MAX_LOCAL));
}

static const char *ticket(const ir_epc *e)
{
    iroh_socket_addr a[IR_EPC_MAX_LOCAL];
    return text_of(a, ir_epc_addrs(e, a, IR_EPC_MAX_LOCAL));
}

TEST(interfaces_as_iroh_gathers_them)
{
    ir_epc *e = core();
    if (!e)
        return;
    iroh_socket_addr socks[2] = {sa("0.0.0.0:5000"), sa("[::]:5001")};
    ir_epc_set_sockets(e, socks, 2, 1);
    ir_epc_iface ifs[] = {iface("127.0.0.1:0", 1), iface("[::1]:0", 1),
                          iface("192.0.2.2:0", 0), iface("[fd00::2]:0", 0),
                          iface("[fe80::fc:ff:fe00:1]:0", 0), iface("169.254.3.4:0", 0)};
    ir_epc_set_interfaces(e, ifs, 6, 2);
    /* regular addresses only, each with its socket's port */
    CHECK_STR(cands(e), "192.0.2.2:5000 [fd00::2]:5001");
    /* tickets: loopback and IPv4 link-local too, never fe80:: (it needs a scope id) */
    CHECK_STR(ticket(e), "127.0.0.1:5000 192.0.2.2:5000 169.254.3.4:5000 [::1]:5001 [fd00::2]:5001");
    /* only loopback and link-local: IPv4 link-local wins over loopback */
    ir_epc_iface ll[] = {iface("127.0.0.1:0", 1), iface("[fe80::1]:0", 0), iface("169.254.3.4:0", 0)};
    ir_epc_set_interfaces(e, ll, 3, 3);
    CHECK_STR(cands(e), "169.254.3.4:5000");
    /* loopback alone: loopback (a machine with nothing else, a bare network namespace) */
    ir_epc_set_interfaces(e, ll, 1, 4);
    CHECK_STR(cands(e), "127.0.0.1:5000");
    /* an address on a loopback interface that is not 127/8 is loopback too */
    ir_epc_iface lo2[] = {iface("10.1.1.1:0", 1), iface("10.2.2.2:0", 0)};
    ir_epc_set_interfaces(e, lo2, 2, 5);
    CHECK_STR(cands(e), "10.2.2.2:5000");
    ir_epc_free(e);
}

TEST(specific_socket_public_and_external)
{
    ir_epc *e = core();
    if (!e)
        return;
    iroh_socket_addr s = sa("127.0.0.1:6000");
    ir_epc_set_sockets(e, &s, 1, 1);
    ir_epc_iface ifs[] = {iface("127.0.0.1:0", 1), iface("192.0.2.2:0", 0)};
    ir_epc_set_interfaces(e, ifs, 2, 2);
    /* a socket bound to a specific address is reachable there only */
    CHECK_STR(cands(e), "127.0.0.1:6000");
    CHECK_STR(ticket(e), "127.0.0.1:6000");
    iroh_socket_addr pub = sa("203.0.113.7:41000");
    ir_epc_set_public(e, &pub, 3);
    CHECK_STR(cands(e), "127.0.0.1:6000 203.0.113.7:41000");
    iroh_socket_addr x1 = sa("198.51.100.1:7000"), x2 = sa("[2001:db8::1]:7001");
    CHECK_EQ_INT(ir_epc_add_external(e, &x1, 4), IROH_OK);
    CHECK_EQ_INT(ir_epc_add_external(e, &x2, 4), IROH_OK);
    CHECK_EQ_INT(ir_epc_add_external(e, &x1, 4), IROH_OK); /* again: nothing changes */
    CHECK_STR(cands(e), "127.0.0.1:6000 203.0.113.7:41000 198.51.100.1:7000 [2001:db8::1]:7001");
    CHECK_STR(ticket(e), "127.0.0.1:6000 203.0.113.7:41000 198.51.100.1:7000 [2001:db8::1]:7001");
    /* the public address configured again is listed once */
    CHECK_EQ_INT(ir_epc_add_external(e, &pub, 5), IROH_OK);
    CHECK_STR(cands(e), "127.0.0.1:6000 203.0.113.7:41000 198.51.100.1:7000 [2001:db8::1]:7001");
    CHECK_EQ_INT(ir_epc_remove_external(e, &pub, 5), 1);
    CHECK_EQ_INT(ir_epc_remove_external(e, &x1, 6), 1);
    CHECK_EQ_INT(ir_epc_remove_external(e, &x1, 6), 0);
    CHECK_STR(cands(e), "127.0.0.1:6000 203.0.113.7:41000 [2001:db8::1]:7001");
    /* bad ones: port 0, unspecified IP; and at most IR_EPC_MAX_EXTERNAL */
    iroh_socket_addr bad1 = sa("198.51.100.1:0"), bad2 = sa("0.0.0.0:9"), bad3 = sa("[::]:9");
    CHECK_EQ_INT(ir_epc_add_external(e, &bad1, 7), IROH_ERR_INVALID_ADDR);
    CHECK_EQ_INT(ir_epc_add_external(e, &bad2, 7), IROH_ERR_INVALID_ADDR);
    CHECK_EQ_INT(ir_epc_add_external(e, &bad3, 7), IROH_ERR_INVALID_ADDR);
    int rc = IROH_OK, added = 0;
    for (int i = 0; i < IR_EPC_MAX_EXTERNAL + 2 && rc == IROH_OK; i++) {
        iroh_socket_addr x = x1;
        x.port = (uint16_t)(10000 + i);
        rc = ir_epc_add_external(e, &x, 8);
        added += rc == IROH_OK;
    }
    CHECK_EQ_INT(rc, IROH_ERR_BUFFER_TOO_SMALL);
    CHECK_EQ_INT(added, IR_EPC_MAX_EXTERNAL - 1); /* [2001:db8::1]:7001 is one of them */
    ir_epc_set_public(e, NULL, 9);
    iroh_socket_addr got[IR_EPC_MAX_LOCAL];
    CHECK_EQ_INT((int)ir_epc_local_addrs(e, got, IR_EPC_MAX_LOCAL), 1 + IR_EPC_MAX_EXTERNAL);
    ir_epc_free(e);
}

/* a network change is a change only when the candidates differ */
TEST(changes_counted)
{
    ir_epc *e = core();
    if (!e)
        return;
    CHECK_EQ_INT((int)ir_epc_local_addrs_gen(e), 0);
    iroh_socket_addr s = sa("0.0.0.0:5000");
    ir_epc_set_sockets(e, &s, 1, 1);
    ir_epc_iface a[] = {iface("127.0.0.1:0", 1), iface("192.0.2.2:0", 0)};
    ir_epc_set_interfaces(e, a, 2, 2);
    uint64_t g = ir_epc_local_addrs_gen(e);
    CHECK(g >= 1);
    ir_epc_set_interfaces(e, a, 2, 3); /* read again, the same */
    CHECK_EQ_INT((int)ir_epc_local_addrs_gen(e), (int)g);
    /* loopback goes away: the candidates stay the same */
    ir_epc_set_interfaces(e, a + 1, 1, 4);
    CHECK_EQ_INT((int)ir_epc_local_addrs_gen(e), (int)g);
    /* a new interface */
    ir_epc_iface b[] = {iface("192.0.2.2:0", 0), iface("198.51.100.9:0", 0)};
    ir_epc_set_interfaces(e, b, 2, 5);
    CHECK_EQ_INT((int)ir_epc_local_addrs_gen(e), (int)g + 1);
    CHECK_STR(cands(e), "192.0.2.2:5000 198.51.100.9:5000");
    /* one removed */
    ir_epc_set_interfaces(e, b + 1, 1, 6);
    CHECK_EQ_INT((int)ir_epc_local_addrs_gen(e), (int)g + 2);
    CHECK_STR(cands(e), "198.51.100.9:5000");
    /* a rebind: the socket's port changes */
    s.port = 5002;
    ir_epc_set_sockets(e, &s, 1, 7);
    CHECK_EQ_INT((int)ir_epc_local_addrs_gen(e), (int)g + 3);
    CHECK_STR(cands(e), "198.51.100.9:5002");
    ir_epc_free(e);
}

/* ---- the shell: rebinding under a live connection ---------------------------------------- */

static const char ALPN[] = "addrs/0";

static ir_ep *endpoint_hp(const char *bind, int accept, int holepunching)
{
    static const uint8_t *alpns[1] = {(const uint8_t *)ALPN};
    static size_t lens[1] = {sizeof ALPN - 1};
    ir_ep_config cfg;
    memset(&cfg, 0, sizeof cfg);
    iroh_secret_key_generate(&cfg.key);
    if (accept) {
        cfg.alpns = alpns;
        cfg.alpn_lens = lens;
        cfg.n_alpns = 1;
    }
    iroh_socket_addr_parse(bind, &cfg.bind4);
    cfg.holepunching = holepunching;
    ir_ep *ep = NULL;
    CHECK(ir_ep_new(&cfg, &ep) == IROH_OK);
    return ep;
}

static ir_ep *endpoint(const char *bind, int accept)
{
    return endpoint_hp(bind, accept, 0);
}

static uint64_t ms_now(void)
{
    return ir_now_ns() / 1000000;
}

static void pump(ir_ep *a, ir_ep *b, int ms)
{
    uint64_t end = ms_now() + (uint64_t)ms;
    while (ms_now() < end) {
        ir_ep_poll(a, 0, NULL, 0);
        ir_ep_poll(b, 1, NULL, 0);
    }
}

/* reads what stream id has into buf (appending); returns the total */
static size_t drain(ir_conn *c, uint64_t id, uint8_t *buf, size_t have, size_t cap)
{
    for (;;) {
        uint64_t code;
        long n = ir_conn_stream_read(c, id, buf + have, cap - have, &code);
        if (n <= 0)
            return have;
        have += (size_t)n;
    }
}

TEST(rebind_moves_the_connection)
{
    ir_ep *sep = endpoint("127.0.0.1:0", 1);
    ir_ep *cep = endpoint("127.0.0.1:0", 0);
    if (!sep || !cep)
        return;
    iroh_socket_addr s_addr, c_before, c_after;
    ir_ep_addrs(sep, &s_addr, 1);
    CHECK_EQ_INT((int)ir_ep_local_addrs(cep, &c_before, 1), 1);
    iroh_endpoint_addr *to = iroh_endpoint_addr_new(ir_ep_id(sep));
    iroh_endpoint_addr_add_ip(to, &s_addr);
    ir_conn *c = NULL, *sc = NULL;
    CHECK(ir_ep_connect(cep, to, (const uint8_t *)ALPN, sizeof ALPN - 1, &c) == IROH_OK);
    iroh_endpoint_addr_free(to);
    uint64_t end = ms_now() + 3000;
    while (c && ms_now() < end && !(sc && ir_conn_get_state(sc) == IR_CONN_ESTABLISHED &&
                                     ir_conn_get_state(c) == IR_CONN_ESTABLISHED)) {
        ir_ep_poll(sep, 0, NULL, 0);
        ir_ep_poll(cep, 1, NULL, 0);
        if (!sc)
            sc = ir_ep_accept(sep);
    }
    CHECK(sc && c && ir_conn_get_state(c) == IR_CONN_ESTABLISHED);
    if (!sc || !c) {
        ir_ep_free(sep);
        ir_ep_free(cep);
        return;
    }
    pump(sep, cep, 100); /* NEW_CONNECTION_IDs settle: the client has a spare peer id */
    iroh_socket_addr seen;
    CHECK_EQ_INT(ir_netaddr_to_socket_addr(ir_conn_path_addr(sc), &seen), 0);
    CHECK_EQ_INT(seen.port, c_before.port);

    CHECK_EQ_INT(ir_ep_rebind(cep), IROH_OK);
    CHECK_EQ_INT((int)ir_ep_local_addrs(cep, &c_after, 1), 1);
    CHECK(c_after.port != c_before.port);
    iroh_socket_addr t;
    CHECK_EQ_INT((int)ir_ep_addrs(cep, &t, 1), 1);
    CHECK_EQ_INT(t.port, c_after.port);

    /* data both ways after the move; the server follows the client to its new port */
    uint64_t id;
    CHECK_EQ_INT(ir_conn_stream_open(c, 1, &id), 0);
    CHECK_EQ_INT((int)ir_conn_stream_write(c, id, (const uint8_t *)"after rebind", 12, 1), 12);
    ir_ep_flush(cep);
    uint8_t got[64];
    size_t have = 0;
    end = ms_now() + 3000;
    while (have < 12 && ms_now() < end) {
        ir_ep_poll(sep, 0, NULL, 0);
        ir_ep_poll(cep, 1, NULL, 0);
        have = drain(sc, id, got, have, sizeof got);
    }
    CHECK_EQ_INT((int)have, 12);
    CHECK(memcmp(got, "after rebind", 12) == 0);
    CHECK_EQ_INT((int)ir_conn_stream_write(sc, id, (const uint8_t *)"ok", 2, 1), 2);
    ir_ep_flush(sep);
    have = 0;
    end = ms_now() + 3000;
    while (have < 2 && ms_now() < end) {
        ir_ep_poll(sep, 0, NULL, 0);
        ir_ep_poll(cep, 1, NULL, 0);
        have = drain(c, id, got, have, sizeof got);
    }
    CHECK_EQ_INT((int)have, 2);
    CHECK_EQ_INT(ir_netaddr_to_socket_addr(ir_conn_path_addr(sc), &seen), 0);
    CHECK_EQ_INT(seen.port, c_after.port);
    CHECK(ir_conn_get_state(c) == IR_CONN_ESTABLISHED);
    ir_ep_free(sep);
    ir_ep_free(cep);
}

/* connects cep to sep; the two connections once both are established (NULLs on failure) */
static void connect_pair(ir_ep *sep, ir_ep *cep, ir_conn **c, ir_conn **sc)
{
    iroh_socket_addr s_addr;
    ir_ep_addrs(sep, &s_addr, 1);
    iroh_endpoint_addr *to = iroh_endpoint_addr_new(ir_ep_id(sep));
    iroh_endpoint_addr_add_ip(to, &s_addr);
    *c = *sc = NULL;
    CHECK(ir_ep_connect(cep, to, (const uint8_t *)ALPN, sizeof ALPN - 1, c) == IROH_OK);
    iroh_endpoint_addr_free(to);
    uint64_t end = ms_now() + 3000;
    while (*c && ms_now() < end && !(*sc && ir_conn_get_state(*sc) == IR_CONN_ESTABLISHED &&
                                      ir_conn_get_state(*c) == IR_CONN_ESTABLISHED)) {
        ir_ep_poll(sep, 0, NULL, 0);
        ir_ep_poll(cep, 1, NULL, 0);
        if (!*sc)
            *sc = ir_ep_accept(sep);
    }
    CHECK(*sc && *c && ir_conn_get_state(*c) == IR_CONN_ESTABLISHED);
}

/* 1 if the client's connection heard of text (ADD_ADDRESS) within ms, 0 if not */
static int advertised(ir_ep *sep, ir_ep *cep, ir_conn *c, const char *text, int want, int ms)
{
    iroh_socket_addr a;
    iroh_socket_addr_parse(text, &a);
    uint64_t end = ms_now() + (uint64_t)ms;
    for (;;) {
        iroh_socket_addr got[IR_NAT_MAX_ADDRS];
        size_t n = ir_conn_nat_remote_addrs(c, got, IR_NAT_MAX_ADDRS);
        int found = 0;
        for (size_t i = 0; i < n; i++)
            found |= got[i].family == a.family && got[i].port == a.port &&
                     memcmp(got[i].ip, a.ip, a.family == 4 ? 4 : 16) == 0;
        if (found == want || ms_now() >= end)
            return found;
        ir_ep_poll(sep, 0, NULL, 0);
        ir_ep_poll(cep, 1, NULL, 0);
    }
}

/* the server's candidates reach the client over NAT traversal (ADD_ADDRESS): the socket's
 * address at once, then a configured address added and removed on the live endpoint */
TEST(candidates_reach_the_peer)
{
    ir_ep *sep = endpoint_hp("127.0.0.1:0", 1, 2);
    ir_ep *cep = endpoint_hp("127.0.0.1:0", 0, 2);
    if (!sep || !cep)
        return;
    ir_conn *c, *sc;
    connect_pair(sep, cep, &c, &sc);
    if (c && sc) {
        CHECK_EQ_INT(ir_conn_nat_traversal(c), 1);
        iroh_socket_addr s_addr;
        ir_ep_addrs(sep, &s_addr, 1);
        char text[IROH_SOCKET_ADDR_LEN];
        iroh_socket_addr_to_string(&s_addr, text, sizeof text);
        CHECK_EQ_INT(advertised(sep, cep, c, text, 1, 2000), 1);
        CHECK_EQ_INT(advertised(sep, cep, c, "198.51.100.1:7000", 0, 0), 0);
        iroh_socket_addr x;
        iroh_socket_addr_parse("198.51.100.1:7000", &x);
        CHECK_EQ_INT(ir_ep_add_external_addr(sep, &x), IROH_OK);
        CHECK_EQ_INT(advertised(sep, cep, c, "198.51.100.1:7000", 1, 2000), 1);
        CHECK_EQ_INT(ir_ep_remove_external_addr(sep, &x), 1);
        CHECK_EQ_INT(advertised(sep, cep, c, "198.51.100.1:7000", 0, 2000), 0);
        CHECK_EQ_INT(advertised(sep, cep, c, text, 1, 0), 1);
    }
    ir_ep_free(sep);
    ir_ep_free(cep);
}

/* ---- the shell: network changes the kernel reports (root: a network namespace) -------- */

static int local_has(ir_ep *ep, const char *ip_text, uint16_t port, size_t *count)
{
    iroh_socket_addr want = sa(ip_text), got[IR_EPC_MAX_LOCAL];
    want.port = port;
    size_t n = ir_ep_local_addrs(ep, got, IR_EPC_MAX_LOCAL);
    if (count)
        *count = n;
    for (size_t i = 0; i < n; i++)
        if (got[i].family == want.family && got[i].port == want.port &&
            memcmp(got[i].ip, want.ip, want.family == 4 ? 4 : 16) == 0)
            return 1;
    return 0;
}

/* polls ep until local_has(ip) == want, up to ms */
static int wait_local(ir_ep *ep, const char *ip, uint16_t port, int want, int ms)
{
    uint64_t end = ms_now() + (uint64_t)ms;
    while (local_has(ep, ip, port, NULL) != want && ms_now() < end)
        ir_ep_poll(ep, 20, NULL, 0);
    return local_has(ep, ip, port, NULL) == want;
}

static void netns_child(void)
{
    if (system("ip link set lo up") != 0) {
        printf("skip: cannot bring up lo\n");
        return;
    }
    ir_ep *ep = endpoint("0.0.0.0:0", 0);
    if (!ep)
        return;
    iroh_socket_addr b;
    CHECK_EQ_INT((int)ir_ep_addrs(ep, &b, 1), 1);
    uint16_t port = b.port;
    /* only loopback here: loopback is the candidate */
    size_t n = 0;
    CHECK(local_has(ep, "127.0.0.1:0", port, &n));
    CHECK_EQ_INT((int)n, 1);
    /* an interface comes up: its address replaces loopback, without anyone asking */
    CHECK_EQ_INT(system("ip link add d0 type veth peer name d1 && ip addr add 10.9.9.9/24 dev d0 && "
                        "ip link set d0 up && ip link set d1 up"), 0);
    CHECK(wait_local(ep, "10.9.9.9:0", port, 1, 3000));
    CHECK(!local_has(ep, "127.0.0.1:0", port, NULL));
    /* a second address, then the interface goes away */
    CHECK_EQ_INT(system("ip addr add 10.8.8.8/24 dev d0"), 0);
    CHECK(wait_local(ep, "10.8.8.8:0", port, 1, 3000));
    CHECK_EQ_INT(system("ip link del d0"), 0);
    CHECK(wait_local(ep, "10.9.9.9:0", port, 0, 3000));
    CHECK(!local_has(ep, "10.8.8.8:0", port, NULL));
    CHECK(local_has(ep, "127.0.0.1:0", port, NULL));
    ir_ep_free(ep);
}

TEST(network_change_netlink)
{
    if (geteuid() != 0) {
        printf("skip: network namespaces need root\n");
        return;
    }
    fflush(NULL);
    int before = t_failures; /* the child's own failures count, not the tests' before it */
    pid_t pid = fork();
    if (pid == 0) {
        if (unshare(CLONE_NEWNET) != 0) {
            printf("skip: unshare(CLONE_NEWNET) failed\n");
            _exit(0);
        }
        netns_child();
        fflush(NULL);
        _exit(t_failures != before ? 1 : 0);
    }
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* ---- an address added right after the handshake (lookup's late find) ------------------ */

/* an endpoint on 127.0.0.1 and [::1], multipath without NAT traversal */
static ir_ep *endpoint_dual(int accept)
{
    static const uint8_t *alpns[1] = {(const uint8_t *)ALPN};
    static size_t lens[1] = {sizeof ALPN - 1};
    ir_ep_config cfg;
    memset(&cfg, 0, sizeof cfg);
    iroh_secret_key_generate(&cfg.key);
    if (accept) {
        cfg.alpns = alpns;
        cfg.alpn_lens = lens;
        cfg.n_alpns = 1;
    }
    iroh_socket_addr_parse("127.0.0.1:0", &cfg.bind4);
    iroh_socket_addr_parse("[::1]:0", &cfg.bind6);
    cfg.holepunching = 1;
    ir_ep *ep = NULL;
    CHECK(ir_ep_new(&cfg, &ep) == IROH_OK);
    return ep;
}

/* the endpoint's address of family fam (0 family: none) */
static iroh_socket_addr addr_of_family(ir_ep *ep, int fam)
{
    iroh_socket_addr a[8], none;
    memset(&none, 0, sizeof none);
    size_t n = ir_ep_addrs(ep, a, 8);
    for (size_t i = 0; i < n && i < 8; i++)
        if (a[i].family == fam)
            return a[i];
    return none;
}

/* 1 if c has a validated path (not abandoned) to a */
static int validated_path(const ir_conn *c, const iroh_socket_addr *a)
{
    ir_netaddr want;
    ir_netaddr_from_socket_addr(&want, a);
    ir_conn_path_info info[IR_CONN_MAX_PATHS];
    size_t n = ir_conn_paths(c, info, IR_CONN_MAX_PATHS);
    for (size_t i = 0; i < n && i < IR_CONN_MAX_PATHS; i++)
        if (info[i].validated && !info[i].abandoned && ir_netaddr_eq(&info[i].addr, &want))
            return 1;
    return 0;
}

/* The client's handshake is done but the server has not yet read its Finished, so none of
 * the server's connection ids for path 1 (PATH_NEW_CONNECTION_ID) has arrived: a path
 * cannot open yet. An address found now (a lookup's answer, ir_ep_add_candidates) is kept
 * and becomes a validated path once the ids arrive. (It was dropped for good: CI's
 * test_lookup late_find_becomes_path failed that way on a loaded machine.) */
TEST(candidate_before_path_ids_becomes_path)
{
    ir_ep *sep = endpoint_dual(1);
    ir_ep *cep = endpoint_dual(0);
    if (!sep || !cep) {
        ir_ep_free(sep);
        ir_ep_free(cep);
        return;
    }
    iroh_socket_addr s4 = addr_of_family(sep, 4), s6 = addr_of_family(sep, 6);
    CHECK(s4.family == 4 && s6.family == 6);
    iroh_endpoint_addr *to = iroh_endpoint_addr_new(ir_ep_id(sep));
    iroh_endpoint_addr_add_ip(to, &s4);
    ir_conn *c = NULL, *sc = NULL;
    CHECK(ir_ep_connect(cep, to, (const uint8_t *)ALPN, sizeof ALPN - 1, &c) == IROH_OK);
    iroh_endpoint_addr_free(to);
    /* until the client's handshake completes, and not a poll of the server more */
    uint64_t end = ms_now() + 3000;
    while (c && ms_now() < end && ir_conn_get_state(c) != IR_CONN_ESTABLISHED) {
        ir_ep_poll(sep, 0, NULL, 0);
        if (!sc)
            sc = ir_ep_accept(sep);
        ir_ep_poll(cep, 1, NULL, 0);
    }
    CHECK(c && ir_conn_get_state(c) == IR_CONN_ESTABLISHED && ir_conn_multipath(c));
    if (!c || ir_conn_get_state(c) != IR_CONN_ESTABLISHED) {
        ir_ep_free(sep);
        ir_ep_free(cep);
        return;
    }
    /* the precondition: no path can open now */
    ir_netaddr n6;
    ir_netaddr_from_socket_addr(&n6, &s6);
    uint64_t pid;
    CHECK_EQ_INT(ir_conn_open_path(c, &n6, 0, ir_now_ns(), &pid), IR_QUIC_AGAIN);

    iroh_endpoint_addr *found = iroh_endpoint_addr_new(ir_ep_id(sep));
    iroh_endpoint_addr_add_ip(found, &s6);
    CHECK_EQ_INT(ir_ep_add_candidates(cep, c, found, ir_now_ns()), 1);
    iroh_endpoint_addr_free(found);
    end = ms_now() + 5000;
    while (ms_now() < end && !validated_path(c, &s6)) {
        ir_ep_poll(sep, 0, NULL, 0);
        if (!sc)
            sc = ir_ep_accept(sep);
        ir_ep_poll(cep, 1, NULL, 0);
    }
    CHECK(validated_path(c, &s6));
    CHECK_EQ_INT((int)ir_conn_paths_waiting(c), 0);
    ir_ep_free(sep);
    ir_ep_free(cep);
}

int main(void)
{
    RUN(interfaces_as_iroh_gathers_them);
    RUN(specific_socket_public_and_external);
    RUN(changes_counted);
    RUN(rebind_moves_the_connection);
    RUN(candidates_reach_the_peer);
    RUN(candidate_before_path_ids_becomes_path);
    RUN(network_change_netlink);
    TEST_EXIT();
}
