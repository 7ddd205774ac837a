/* The net report through the public API against an in-process plain-HTTP relay (our
 * relay server): iroh_endpoint_net_report_wait / _net_report, IROH_EVENT_NET_REPORT before
 * the report can be read, the HTTP /ping latency, the captive-portal check answered by
 * the relay (and skipped with IROH_NET_REPORT_NO_CAPTIVE), no QUIC address discovery for
 * an http relay; IROH_ERR_STATE without relays or with the report off. (QUIC address
 * discovery, two relays, IPv6, a relay down: tests/cli/test_report.sh.) */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "iroh.h"
#include "relay/server.h"
#include "test.h"

typedef struct test_relay {
    ir_relay_server *rs;
    pthread_t th;
    char url[64];
} test_relay;

static void *relay_main(void *arg)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    ir_relay_server_run(arg);
    return NULL;
}

static int relay_start(test_relay *r)
{
    ir_relay_server_config rc;
    ir_relay_server_config_init(&rc);
    rc.listen = "127.0.0.1:0";
    r->rs = NULL;
    CHECK_EQ_INT(ir_relay_server_new(&rc, &r->rs), IROH_OK);
    if (!r->rs)
        return 0;
    iroh_socket_addr ra;
    ir_relay_server_local_addr(r->rs, &ra);
    snprintf(r->url, sizeof r->url, "http://127.0.0.1:%u/", ra.port);
    pthread_create(&r->th, NULL, relay_main, r->rs);
    return 1;
}

static void relay_end(test_relay *r)
{
    ir_relay_server_stop(r->rs);
    pthread_join(r->th, NULL);
    ir_relay_server_free(r->rs);
}

/* the events, counted on the I/O thread */
static atomic_int n_reports, n_other;

static void on_event(void *ctx, const iroh_event *ev)
{
    (void)ctx;
    if (ev->kind == IROH_EVENT_NET_REPORT)
        atomic_fetch_add(&n_reports, 1);
    else
        atomic_fetch_add(&n_other, 1);
}

static iroh_endpoint *bind_with(const char *relay, int mode)
{
    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    iroh_endpoint_builder_bind_addr(b, "127.0.0.1:0");
    if (relay)
        CHECK_EQ_INT(iroh_endpoint_builder_relay_url(b, relay), IROH_OK);
    else
        iroh_endpoint_builder_relay_mode(b, IROH_RELAY_MODE_DISABLED);
    if (mode >= 0)
        CHECK_EQ_INT(iroh_endpoint_builder_net_report(b, mode), IROH_OK);
    iroh_endpoint_builder_event_callback(b, on_event, NULL);
    iroh_endpoint *ep = NULL;
    CHECK_EQ_INT(iroh_endpoint_bind(b, &ep), IROH_OK);
    iroh_endpoint_builder_free(b);
    return ep;
}

TEST(report_from_http_relay)
{
    test_relay tr;
    if (!relay_start(&tr))
        return;
    atomic_store(&n_reports, 0);
    iroh_endpoint *ep = bind_with(tr.url, -1);
    if (!ep) {
        relay_end(&tr);
        return;
    }
    iroh_net_report r;
    CHECK_EQ_INT(iroh_endpoint_net_report_wait(ep, 0, 15000, &r), IROH_OK);
    /* the event went out before a waiter could read the report */
    CHECK(atomic_load(&n_reports) >= 1);
    CHECK(r.generation >= 1);
    CHECK_EQ_INT(r.n_relays, 1);
    CHECK_STR(r.relays[0].url, tr.url);
    CHECK(r.relays[0].latency_https_us > 0);
    CHECK_EQ_INT(r.relays[0].latency_ipv4_us, 0); /* no QUIC address discovery over http */
    CHECK_EQ_INT(r.relays[0].latency_ipv6_us, 0);
    CHECK_EQ_INT(r.udp_v4, 0);
    CHECK_EQ_INT(r.udp_v6, 0);
    CHECK_EQ_INT(r.has_global_v4, 0);
    CHECK_EQ_INT(r.mapping_varies_by_dest_ipv4, -1);
    CHECK(r.preferred_relay != NULL);
    if (r.preferred_relay)
        CHECK_STR(r.preferred_relay, tr.url);
    CHECK_EQ_INT(r.captive_portal, 0); /* the relay answered /generate_204 with the challenge */
    /* readable at any time, the same report */
    iroh_net_report again;
    CHECK_EQ_INT(iroh_endpoint_net_report(ep, &again), IROH_OK);
    CHECK_EQ_INT(again.generation, r.generation);
    CHECK_EQ_INT(again.relays[0].latency_https_us, r.relays[0].latency_https_us);
    /* nothing newer within 100 ms (the next run is a minute away) */
    CHECK_EQ_INT(iroh_endpoint_net_report_wait(ep, r.generation, 100, &again), IROH_ERR_TIMEOUT);
    iroh_endpoint_close(ep);
    CHECK_EQ_INT(iroh_endpoint_net_report(ep, &again), IROH_ERR_CLOSED);
    iroh_endpoint_free(ep);

    /* without the captive-portal check: unknown */
    ep = bind_with(tr.url, IROH_NET_REPORT_NO_CAPTIVE);
    if (ep) {
        CHECK_EQ_INT(iroh_endpoint_net_report_wait(ep, 0, 15000, &r), IROH_OK);
        CHECK_EQ_INT(r.captive_portal, -1);
        CHECK(r.relays[0].latency_https_us > 0);
        iroh_endpoint_free(ep);
    }

    /* turned off: no report */
    ep = bind_with(tr.url, IROH_NET_REPORT_OFF);
    if (ep) {
        CHECK_EQ_INT(iroh_endpoint_net_report(ep, &r), IROH_ERR_STATE);
        CHECK_EQ_INT(iroh_endpoint_net_report_wait(ep, 0, 5000, &r), IROH_ERR_STATE);
        iroh_endpoint_free(ep);
    }
    relay_end(&tr);
}

TEST(no_relays_no_report)
{
    iroh_endpoint *ep = bind_with(NULL, -1);
    if (!ep)
        return;
    iroh_net_report r;
    CHECK_EQ_INT(iroh_endpoint_net_report(ep, &r), IROH_ERR_STATE);
    CHECK_EQ_INT(iroh_endpoint_net_report_wait(ep, 0, 5000, &r), IROH_ERR_STATE);
    CHECK_EQ_INT(iroh_endpoint_net_report(NULL, &r), IROH_ERR_INVALID_ARGUMENT);
    iroh_endpoint_free(ep);
    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    CHECK_EQ_INT(iroh_endpoint_builder_net_report(b, 3), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(iroh_endpoint_builder_net_report(b, -1), IROH_ERR_INVALID_ARGUMENT);
    iroh_endpoint_builder_free(b);
}

int main(void)
{
    RUN(report_from_http_relay);
    RUN(no_relays_no_report);
    TEST_EXIT();
}
