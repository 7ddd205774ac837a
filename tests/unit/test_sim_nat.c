/* The NAT model of the simulator (sim_nat.h) on its own, on a virtual clock: mappings
 * (endpoint-independent, port-preserving with a fallback on a clash; symmetric), filters
 * (none, address-restricted, port-restricted), idle timeouts, no hairpinning; then the
 * whole stack in the simulator (sim_net.h): endpoints behind NAT boxes reaching each other
 * through a relay server. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "sim_nat.h"

#define MS 1000000ull
#define SEC 1000000000ull

static const uint32_t PUB = 0xcb007101; /* 203.0.113.1 */

static void nat_cfg(sim_nat_config *c, sim_nat_mapping m, sim_nat_filter f)
{
    memset(c, 0, sizeof *c);
    c->public_ip = PUB;
    c->mapping = m;
    c->filter = f;
    c->port_preserving = 1;
    c->timeout_ns = 30 * SEC;
}

static int port_of(const ir_netaddr *a)
{
    uint32_t ip;
    uint16_t port;
    return sim_addr_parts(a, &ip, &port) == 0 ? port : -1;
}

static int is_at(const ir_netaddr *a, uint32_t ip, uint16_t port)
{
    ir_netaddr b;
    sim_addr(&b, ip, port);
    return ir_netaddr_eq(a, &b);
}

/* Endpoint-independent, port-preserving: the inside port is kept, the same mapping serves
 * every destination; a second inside host with the same port falls back to the counter. */
static void test_nat_ei_mapping(void)
{
    sim_nat n;
    sim_nat_config c;
    nat_cfg(&c, SIM_NAT_MAP_EI, SIM_NAT_FILTER_PORT);
    c.first_port = 50000;
    sim_nat_init(&n, &c);
    uint64_t t = 1000 * SEC;
    ir_netaddr h1, h2, x, y, out;
    sim_addr(&h1, sim_ip(192, 168, 1, 2), 4000);
    sim_addr(&h2, sim_ip(192, 168, 1, 3), 4000);
    sim_addr(&x, sim_ip(198, 51, 100, 7), 443);
    sim_addr(&y, sim_ip(198, 51, 100, 8), 9000);
    CHECK(sim_nat_out(&n, &h1, &x, t, &out) == 0);
    CHECK(is_at(&out, PUB, 4000));
    CHECK(sim_nat_out(&n, &h1, &y, t, &out) == 0);
    CHECK(is_at(&out, PUB, 4000)); /* the same mapping for another destination */
    CHECK_EQ_INT(n.st.new_mappings, 1);
    CHECK(sim_nat_out(&n, &h2, &x, t, &out) == 0);
    CHECK(is_at(&out, PUB, 50000)); /* 4000 taken: the counter */
    CHECK_EQ_INT(n.st.port_clashes, 1);
    CHECK_EQ_INT(sim_nat_count(&n, t), 2);
    /* replies reach the right inside host */
    ir_netaddr to, pub;
    sim_addr(&pub, PUB, 50000);
    CHECK(sim_nat_in(&n, &x, &pub, t, &to) == 0);
    CHECK(ir_netaddr_eq(&to, &h2));
    sim_addr(&pub, PUB, 4000);
    CHECK(sim_nat_in(&n, &y, &pub, t, &to) == 0);
    CHECK(ir_netaddr_eq(&to, &h1));
    /* without port preservation the counter is used at once */
    c.port_preserving = 0;
    sim_nat_init(&n, &c);
    CHECK(sim_nat_out(&n, &h1, &x, t, &out) == 0);
    CHECK_EQ_INT(port_of(&out), 50000);
}

/* Symmetric: a new outside port for each destination address:port; a reply through the
 * wrong mapping is dropped. */
static void test_nat_symmetric(void)
{
    sim_nat n;
    sim_nat_config c;
    nat_cfg(&c, SIM_NAT_MAP_SYMMETRIC, SIM_NAT_FILTER_PORT);
    c.port_preserving = 0;
    sim_nat_init(&n, &c);
    uint64_t t = 5 * SEC;
    ir_netaddr h, x, x2, y, o1, o2, o3, o4, to;
    sim_addr(&h, sim_ip(10, 1, 0, 2), 4000);
    sim_addr(&x, sim_ip(198, 51, 100, 7), 443);
    sim_addr(&x2, sim_ip(198, 51, 100, 7), 444);
    sim_addr(&y, sim_ip(198, 51, 100, 8), 443);
    CHECK(sim_nat_out(&n, &h, &x, t, &o1) == 0);
    CHECK(sim_nat_out(&n, &h, &x2, t, &o2) == 0);
    CHECK(sim_nat_out(&n, &h, &y, t, &o3) == 0);
    CHECK(sim_nat_out(&n, &h, &x, t, &o4) == 0);
    CHECK(!ir_netaddr_eq(&o1, &o2));
    CHECK(!ir_netaddr_eq(&o1, &o3));
    CHECK(!ir_netaddr_eq(&o2, &o3));
    CHECK(ir_netaddr_eq(&o1, &o4)); /* the same destination: the same mapping */
    CHECK_EQ_INT(n.st.new_mappings, 3);
    CHECK(sim_nat_in(&n, &x, &o1, t, &to) == 0);
    CHECK(ir_netaddr_eq(&to, &h));
    CHECK(sim_nat_in(&n, &y, &o1, t, &to) == -1); /* y's mapping is o3 */
    CHECK(sim_nat_in(&n, &y, &o3, t, &to) == 0);
    CHECK_EQ_INT(n.st.drop_filtered, 1);
    /* port preserving: the first mapping keeps the inside port, the next cannot */
    c.port_preserving = 1;
    sim_nat_init(&n, &c);
    CHECK(sim_nat_out(&n, &h, &x, t, &o1) == 0);
    CHECK(sim_nat_out(&n, &h, &y, t, &o2) == 0);
    CHECK_EQ_INT(port_of(&o1), 4000);
    CHECK(port_of(&o2) != 4000);
}

/* Filtering: who may send in through a mapping. */
static void test_nat_filtering(void)
{
    uint64_t t = 7 * SEC;
    ir_netaddr h, x, x_other_port, z, pub, to, out;
    sim_addr(&h, sim_ip(192, 168, 1, 2), 4000);
    sim_addr(&x, sim_ip(198, 51, 100, 7), 443);
    sim_addr(&x_other_port, sim_ip(198, 51, 100, 7), 8443);
    sim_addr(&z, sim_ip(198, 51, 100, 9), 443);
    sim_addr(&pub, PUB, 4000);
    sim_nat_filter f[3] = {SIM_NAT_FILTER_NONE, SIM_NAT_FILTER_ADDR, SIM_NAT_FILTER_PORT};
    /* expected admission of: x, x on another port, z */
    int want[3][3] = {{1, 1, 1}, {1, 1, 0}, {1, 0, 0}};
    for (int i = 0; i < 3; i++) {
        sim_nat n;
        sim_nat_config c;
        nat_cfg(&c, SIM_NAT_MAP_EI, f[i]);
        sim_nat_init(&n, &c);
        /* nothing gets in before the inside sent anything */
        CHECK(sim_nat_in(&n, &x, &pub, t, &to) == -1);
        CHECK_EQ_INT(n.st.drop_no_mapping, 1);
        CHECK(sim_nat_out(&n, &h, &x, t, &out) == 0);
        CHECK_EQ_INT(sim_nat_in(&n, &x, &pub, t, &to) == 0, want[i][0]);
        CHECK_EQ_INT(sim_nat_in(&n, &x_other_port, &pub, t, &to) == 0, want[i][1]);
        CHECK_EQ_INT(sim_nat_in(&n, &z, &pub, t, &to) == 0, want[i][2]);
        /* the inside sends to z: now z may answer (a holepunch) */
        CHECK(sim_nat_out(&n, &h, &z, t, &out) == 0);
        CHECK(sim_nat_in(&n, &z, &pub, t, &to) == 0);
        CHECK(ir_netaddr_eq(&to, &h));
        /* another public port of the box: no mapping */
        ir_netaddr pub2;
        sim_addr(&pub2, PUB, 4001);
        CHECK(sim_nat_in(&n, &x, &pub2, t, &to) == -1);
    }
}

/* Timeouts: an idle mapping is gone at exactly timeout_ns after its last outbound
 * datagram (inbound ones do not refresh it unless refresh_inbound); its port is free and
 * nothing gets in any more; a permission expires the same way. */
static void test_nat_timeouts(void)
{
    sim_nat n;
    sim_nat_config c;
    nat_cfg(&c, SIM_NAT_MAP_EI, SIM_NAT_FILTER_PORT);
    c.timeout_ns = 2 * SEC;
    c.first_port = 61000;
    sim_nat_init(&n, &c);
    uint64_t t = 100 * SEC;
    ir_netaddr h, x, y, pub, to, out;
    sim_addr(&h, sim_ip(192, 168, 1, 2), 4000);
    sim_addr(&x, sim_ip(198, 51, 100, 7), 443);
    sim_addr(&y, sim_ip(198, 51, 100, 8), 443);
    sim_addr(&pub, PUB, 4000);
    CHECK(sim_nat_out(&n, &h, &x, t, &out) == 0);
    CHECK(sim_nat_in(&n, &x, &pub, t + 1 * SEC, &to) == 0);
    CHECK(sim_nat_in(&n, &x, &pub, t + 2 * SEC - 1, &to) == 0);
    CHECK_EQ_INT(sim_nat_count(&n, t + 2 * SEC - 1), 1);
    CHECK(sim_nat_in(&n, &x, &pub, t + 2 * SEC, &to) == -1); /* gone: inbound did not refresh */
    CHECK_EQ_INT(n.st.expired, 1);
    CHECK_EQ_INT(sim_nat_count(&n, t + 2 * SEC), 0);
    /* outbound refreshes; a permission not used for the timeout expires on its own */
    t += 10 * SEC;
    CHECK(sim_nat_out(&n, &h, &x, t, &out) == 0);
    CHECK(sim_nat_out(&n, &h, &y, t + 1 * SEC, &out) == 0);
    CHECK(sim_nat_out(&n, &h, &y, t + 2 * SEC, &out) == 0);
    CHECK(sim_nat_in(&n, &y, &pub, t + 2 * SEC, &to) == 0);
    CHECK(sim_nat_in(&n, &x, &pub, t + 2 * SEC, &to) == -1); /* x's permission expired */
    CHECK_EQ_INT(sim_nat_count(&n, t + 2 * SEC), 1);
    /* with refresh_inbound, inbound traffic keeps the mapping */
    c.refresh_inbound = 1;
    sim_nat_init(&n, &c);
    CHECK(sim_nat_out(&n, &h, &x, t, &out) == 0);
    for (int i = 1; i <= 5; i++)
        CHECK(sim_nat_in(&n, &x, &pub, t + (uint64_t)i * SEC, &to) == 0);
    CHECK(sim_nat_in(&n, &x, &pub, t + 8 * SEC, &to) == -1);
    /* a mapping that expired gives its port back: port preserved again; a flush with new
     * ports makes the next mapping take another */
    CHECK(sim_nat_out(&n, &h, &x, t + 9 * SEC, &out) == 0);
    CHECK_EQ_INT(port_of(&out), 4000);
    sim_nat_flush(&n, 1);
    CHECK_EQ_INT(sim_nat_count(&n, t + 9 * SEC), 0);
    CHECK(sim_nat_out(&n, &h, &x, t + 9 * SEC, &out) == 0);
    CHECK_EQ_INT(port_of(&out), 61000);
}

/* No hairpinning: the inside cannot reach the box's own public address, not even its own
 * mapping; the table is bounded. */
static void test_nat_hairpin_and_table(void)
{
    sim_nat n;
    sim_nat_config c;
    nat_cfg(&c, SIM_NAT_MAP_SYMMETRIC, SIM_NAT_FILTER_NONE);
    sim_nat_init(&n, &c);
    uint64_t t = 3 * SEC;
    ir_netaddr h, pub, out, x;
    sim_addr(&h, sim_ip(192, 168, 1, 2), 4000);
    sim_addr(&x, sim_ip(198, 51, 100, 7), 443);
    CHECK(sim_nat_out(&n, &h, &x, t, &out) == 0);
    sim_addr(&pub, PUB, 4000);
    CHECK(sim_nat_out(&n, &h, &pub, t, &out) == -1);
    CHECK_EQ_INT(n.st.drop_hairpin, 1);
    for (int i = 0; i < SIM_NAT_MAPPINGS + 5; i++) {
        sim_addr(&x, sim_ip(198, 51, 100, 7), (uint16_t)(1000 + i));
        sim_nat_out(&n, &h, &x, t, &out);
    }
    CHECK_EQ_INT(sim_nat_count(&n, t), SIM_NAT_MAPPINGS);
    CHECK_EQ_INT(n.st.drop_table_full, 6); /* the first destination's mapping was reused */
    /* a relay path address is not IPv4 UDP: dropped */
    ir_netaddr r;
    memset(&r, 0, sizeof r);
    r.len = 35;
    r.data[0] = 'R';
    CHECK(sim_nat_out(&n, &h, &r, t, &out) == -1);
}

int main(void)
{
    RUN(test_nat_ei_mapping);
    RUN(test_nat_symmetric);
    RUN(test_nat_filtering);
    RUN(test_nat_timeouts);
    RUN(test_nat_hairpin_and_table);
    TEST_EXIT();
}
