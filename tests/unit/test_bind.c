/* Which UDP sockets an endpoint binds: exactly the addresses asked for; with none, both
 * families (0.0.0.0:0 and [::]:0) as iroh does, and IPv4 alone (no error) on a host
 * without IPv6, which the test makes by failing the library's IPv6 socket() calls. */
/* link-wrap: socket */
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "iroh.h"
#include "test.h"

int __real_socket(int domain, int type, int protocol);
int __wrap_socket(int domain, int type, int protocol);

static int no_ipv6; /* socket(AF_INET6, ...) fails as on a kernel without IPv6 */

int __wrap_socket(int domain, int type, int protocol)
{
    if (no_ipv6 && domain == AF_INET6) {
        errno = EAFNOSUPPORT;
        return -1;
    }
    return __real_socket(domain, type, protocol);
}

/* 1 if this host can bind [::1] (the tests of IPv6 need it) */
static int have_ipv6_loopback(void)
{
    int fd = __real_socket(AF_INET6, SOCK_DGRAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static iroh_endpoint *bind_with(const char *a1, const char *a2, int *rc)
{
    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    iroh_endpoint_builder_relay_mode(b, IROH_RELAY_MODE_DISABLED);
    iroh_endpoint_builder_alpn(b, "test/bind/0");
    if (a1)
        CHECK_EQ_INT(iroh_endpoint_builder_bind_addr(b, a1), IROH_OK);
    if (a2)
        CHECK_EQ_INT(iroh_endpoint_builder_bind_addr(b, a2), IROH_OK);
    iroh_endpoint *ep = NULL;
    *rc = iroh_endpoint_bind(b, &ep);
    iroh_endpoint_builder_free(b);
    return ep;
}

/* counts the endpoint's direct addresses by family; the IPv6 ones must all be ::1 when
 * only6_loopback */
static void count_families(iroh_endpoint *ep, int *v4, int *v6, int *loop6, uint16_t *port6)
{
    iroh_endpoint_addr *a;
    *v4 = *v6 = *loop6 = 0;
    CHECK_EQ_INT(iroh_endpoint_get_addr(ep, &a), IROH_OK);
    static const uint8_t one[16] = {[15] = 1};
    for (size_t i = 0; i < iroh_endpoint_addr_len(a); i++) {
        iroh_transport_addr t;
        iroh_endpoint_addr_get(a, i, &t);
        if (t.kind != IROH_TRANSPORT_IP)
            continue;
        if (t.ip.family == 4)
            (*v4)++;
        else {
            (*v6)++;
            if (memcmp(t.ip.ip, one, 16) == 0) {
                (*loop6)++;
                if (port6)
                    *port6 = t.ip.port;
            }
        }
    }
    iroh_endpoint_addr_free(a);
}

TEST(exactly_what_is_asked)
{
    if (!have_ipv6_loopback()) {
        printf("skip: no IPv6 loopback\n");
        return;
    }
    int rc, v4, v6, loop6;
    uint16_t port = 0;
    iroh_endpoint *ep = bind_with("[::1]:0", NULL, &rc);
    CHECK_EQ_INT(rc, IROH_OK);
    if (ep) {
        count_families(ep, &v4, &v6, &loop6, &port);
        CHECK_EQ_INT(v4, 0); /* no 0.0.0.0 socket */
        CHECK_EQ_INT(v6, 1);
        CHECK_EQ_INT(loop6, 1);
        CHECK(port != 0);
        iroh_endpoint_free(ep);
    }
    ep = bind_with("127.0.0.1:0", NULL, &rc);
    CHECK_EQ_INT(rc, IROH_OK);
    if (ep) {
        count_families(ep, &v4, &v6, &loop6, NULL);
        CHECK_EQ_INT(v4, 1);
        CHECK_EQ_INT(v6, 0);
        iroh_endpoint_free(ep);
    }
    ep = bind_with("127.0.0.1:0", "[::1]:0", &rc);
    CHECK_EQ_INT(rc, IROH_OK);
    if (ep) {
        count_families(ep, &v4, &v6, &loop6, NULL);
        CHECK_EQ_INT(v4, 1);
        CHECK_EQ_INT(v6, 1);
        iroh_endpoint_free(ep);
    }
}

TEST(both_families_by_default)
{
    int rc, v4, v6, loop6;
    iroh_endpoint *ep = bind_with(NULL, NULL, &rc);
    CHECK_EQ_INT(rc, IROH_OK);
    if (!ep)
        return;
    count_families(ep, &v4, &v6, &loop6, NULL);
    CHECK(v4 >= 1);
    if (have_ipv6_loopback())
        CHECK(loop6 == 1); /* the [::]:0 socket answers on ::1 too */
    iroh_endpoint_free(ep);

    /* a host without IPv6: IPv4 alone, no error */
    no_ipv6 = 1;
    ep = bind_with(NULL, NULL, &rc);
    CHECK_EQ_INT(rc, IROH_OK);
    if (ep) {
        count_families(ep, &v4, &v6, &loop6, NULL);
        CHECK(v4 >= 1);
        CHECK_EQ_INT(v6, 0);
        iroh_endpoint_free(ep);
    }
    /* ... but an IPv6 address asked for is an error there */
    ep = bind_with("[::1]:0", NULL, &rc);
    CHECK_EQ_INT(rc, IROH_ERR_IO);
    CHECK(ep == NULL);
    iroh_endpoint_free(ep);
    no_ipv6 = 0;
}

TEST(connect_over_ipv6_from_the_default)
{
    /* a default-bound client reaches a server bound to [::1] only */
    if (!have_ipv6_loopback()) {
        printf("skip: no IPv6 loopback\n");
        return;
    }
    int rc;
    iroh_endpoint *srv = bind_with("[::1]:0", NULL, &rc), *cli = bind_with(NULL, NULL, &rc);
    if (!srv || !cli) {
        CHECK(srv && cli);
        iroh_endpoint_free(srv);
        iroh_endpoint_free(cli);
        return;
    }
    iroh_endpoint_addr *addr;
    iroh_endpoint_get_addr(srv, &addr);
    iroh_connection *c = NULL;
    CHECK_EQ_INT(iroh_endpoint_connect(cli, addr, "test/bind/0", &c), IROH_OK);
    iroh_incoming *inc;
    CHECK_EQ_INT(iroh_endpoint_accept(srv, 5000, &inc), IROH_OK);
    iroh_connection *sc = NULL;
    if (inc)
        CHECK_EQ_INT(iroh_incoming_accept(inc, &sc), IROH_OK);
    iroh_connection_free(sc);
    iroh_connection_free(c);
    iroh_endpoint_addr_free(addr);
    iroh_endpoint_free(cli);
    iroh_endpoint_free(srv);
}

int main(void)
{
    RUN(exactly_what_is_asked);
    RUN(both_families_by_default);
    RUN(connect_over_ipv6_from_the_default);
    TEST_EXIT();
}
