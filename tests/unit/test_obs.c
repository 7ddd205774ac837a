/* What the endpoint sees, through the public API: the own-address watcher
 * (IROH_EVENT_ADDR_CHANGED and iroh_endpoint_addr_generation when external addresses
 * come and go, none when nothing changed), iroh_endpoint_remote_info (the sources of each
 * address: the ticket, a user lookup, the connection's paths, the peer's holepunching
 * advertisements; active paths, latency, last seen; kept after the connection closed),
 * and the metrics snapshot and its text (iroh's socket_* names, counters that move with
 * a transfer over UDP and over a relay). Loopback and an in-process relay only. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "iroh.h"
#include "relay/server.h"
#include "test.h"

static const char ALPN[] = "test/obs/0";

#define MAX_EV 256
static pthread_mutex_t ev_mu = PTHREAD_MUTEX_INITIALIZER;
static iroh_event evs[MAX_EV];
static char ev_url[MAX_EV][128];
static int nev;

static void on_event(void *ctx, const iroh_event *ev)
{
    (void)ctx;
    pthread_mutex_lock(&ev_mu);
    if (nev < MAX_EV) {
        evs[nev] = *ev;
        snprintf(ev_url[nev], sizeof ev_url[nev], "%s", ev->relay_url ? ev->relay_url : "");
        evs[nev].relay_url = ev->relay_url ? ev_url[nev] : NULL;
        nev++;
    }
    pthread_mutex_unlock(&ev_mu);
}

/* the number of events of kind so far */
static int count_events(iroh_event_kind kind)
{
    int n = 0;
    pthread_mutex_lock(&ev_mu);
    for (int i = 0; i < nev; i++)
        n += evs[i].kind == kind;
    pthread_mutex_unlock(&ev_mu);
    return n;
}

/* waits up to ms until there are at least want events of kind; the count */
static int wait_events(iroh_event_kind kind, int want, int ms)
{
    int n = 0;
    for (int waited = 0; waited <= ms; waited += 10) {
        if ((n = count_events(kind)) >= want)
            return n;
        usleep(10000);
    }
    return n;
}

/* the last event of kind (a copy; kind 0 when there is none) */
static iroh_event last_event(iroh_event_kind kind)
{
    iroh_event e;
    memset(&e, 0, sizeof e);
    pthread_mutex_lock(&ev_mu);
    for (int i = 0; i < nev; i++)
        if (evs[i].kind == kind)
            e = evs[i];
    pthread_mutex_unlock(&ev_mu);
    return e;
}

static iroh_endpoint *bind_ep(int accept, iroh_event_callback cb)
{
    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    iroh_endpoint_builder_relay_mode(b, IROH_RELAY_MODE_DISABLED);
    CHECK_EQ_INT(iroh_endpoint_builder_bind_addr(b, "127.0.0.1:0"), IROH_OK);
    if (accept)
        CHECK_EQ_INT(iroh_endpoint_builder_alpn(b, ALPN), IROH_OK);
    if (cb)
        CHECK_EQ_INT(iroh_endpoint_builder_event_callback(b, cb, NULL), IROH_OK);
    iroh_endpoint *ep = NULL;
    CHECK_EQ_INT(iroh_endpoint_bind(b, &ep), IROH_OK);
    iroh_endpoint_builder_free(b);
    return ep;
}

static int same(const iroh_socket_addr *a, const iroh_socket_addr *b)
{
    return a->family == b->family && a->port == b->port &&
           memcmp(a->ip, b->ip, a->family == 4 ? 4 : 16) == 0;
}

static uint64_t wait_gen(iroh_endpoint *ep, uint64_t above, int ms)
{
    uint64_t g = 0;
    for (int waited = 0; waited <= ms; waited += 10) {
        if ((g = iroh_endpoint_addr_generation(ep)) > above)
            return g;
        usleep(10000);
    }
    return g;
}

/* ---- the own-address watcher -------------------------------------------------------------- */

TEST(addr_changed_event)
{
    nev = 0;
    iroh_endpoint *ep = bind_ep(0, on_event);
    if (!ep)
        return;
    CHECK_EQ_INT(iroh_endpoint_addr_generation(NULL), 0);
    /* the first look: the socket's address, told once */
    uint64_t g0 = wait_gen(ep, 0, 2000);
    CHECK(g0 >= 1);
    CHECK_EQ_INT(wait_events(IROH_EVENT_ADDR_CHANGED, 1, 2000), 1);
    iroh_event e = last_event(IROH_EVENT_ADDR_CHANGED);
    iroh_endpoint_id id;
    iroh_endpoint_get_id(ep, &id);
    CHECK(iroh_endpoint_id_equal(&e.peer, &id));
    CHECK_EQ_INT((int)e.code, 1);
    CHECK(e.relay_url == NULL);
    iroh_endpoint_addr *a = NULL;
    CHECK_EQ_INT(iroh_endpoint_get_addr(ep, &a), IROH_OK);
    iroh_transport_addr t;
    CHECK_EQ_INT(iroh_endpoint_addr_get(a, 0, &t), IROH_OK);
    CHECK(same(&e.path, &t.ip));
    iroh_endpoint_addr_free(a);

    /* an external address: a new address, a new event with two addresses */
    CHECK_EQ_INT(iroh_endpoint_add_external_addr(ep, "198.51.100.7:4000"), IROH_OK);
    CHECK_EQ_INT(wait_events(IROH_EVENT_ADDR_CHANGED, 2, 2000), 2);
    CHECK_EQ_INT((int)last_event(IROH_EVENT_ADDR_CHANGED).code, 2);
    uint64_t g1 = iroh_endpoint_addr_generation(ep);
    CHECK_EQ_INT((long long)g1, (long long)g0 + 1);
    /* the same again, and a look at the interfaces: nothing changed, nothing told */
    CHECK_EQ_INT(iroh_endpoint_add_external_addr(ep, "198.51.100.7:4000"), IROH_OK);
    CHECK_EQ_INT(iroh_endpoint_network_change(ep), IROH_OK);
    usleep(300000);
    CHECK_EQ_INT(count_events(IROH_EVENT_ADDR_CHANGED), 2);
    CHECK_EQ_INT((long long)iroh_endpoint_addr_generation(ep), (long long)g1);
    /* removed: told again */
    CHECK_EQ_INT(iroh_endpoint_remove_external_addr(ep, "198.51.100.7:4000"), IROH_OK);
    CHECK_EQ_INT(wait_events(IROH_EVENT_ADDR_CHANGED, 3, 2000), 3);
    CHECK_EQ_INT((int)last_event(IROH_EVENT_ADDR_CHANGED).code, 1);
    CHECK_EQ_INT((long long)iroh_endpoint_addr_generation(ep), (long long)g1 + 1);
    iroh_endpoint_free(ep);
}

typedef struct waiter_arg {
    iroh_endpoint *ep;
    uint64_t after, got;
    int rc;
} waiter_arg;

static void *addr_waiter(void *arg)
{
    waiter_arg *w = arg;
    w->rc = iroh_endpoint_addr_wait(w->ep, w->after, -1, &w->got);
    return NULL;
}

TEST(addr_wait)
{
    iroh_endpoint *ep = bind_ep(0, NULL);
    if (!ep)
        return;
    uint64_t g = 0;
    CHECK_EQ_INT(iroh_endpoint_addr_wait(ep, 0, 5000, &g), IROH_OK);
    CHECK(g >= 1);
    CHECK_EQ_INT(iroh_endpoint_addr_wait(ep, g, 0, NULL), IROH_ERR_TIMEOUT);
    CHECK_EQ_INT(iroh_endpoint_addr_wait(ep, g, 50, NULL), IROH_ERR_TIMEOUT);
    CHECK_EQ_INT(iroh_endpoint_addr_wait(ep, g, -2, NULL), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(iroh_endpoint_addr_wait(NULL, g, 0, NULL), IROH_ERR_INVALID_ARGUMENT);
    /* a blocked waiter wakes for the change */
    waiter_arg w = {ep, g, 0, -100};
    pthread_t th;
    pthread_create(&th, NULL, addr_waiter, &w);
    usleep(100000);
    CHECK_EQ_INT(iroh_endpoint_add_external_addr(ep, "198.51.100.8:4000"), IROH_OK);
    pthread_join(th, NULL);
    CHECK_EQ_INT(w.rc, IROH_OK);
    CHECK_EQ_INT((long long)w.got, (long long)g + 1);
    /* and for the close */
    w = (waiter_arg){ep, g + 1, 0, -100};
    pthread_create(&th, NULL, addr_waiter, &w);
    usleep(100000);
    iroh_endpoint_close(ep);
    pthread_join(th, NULL);
    CHECK_EQ_INT(w.rc, IROH_ERR_CLOSED);
    CHECK_EQ_INT(iroh_endpoint_addr_wait(ep, 0, 0, NULL), IROH_ERR_CLOSED);
    iroh_endpoint_free(ep);
}

TEST(addr_generation_without_callback)
{
    iroh_endpoint *ep = bind_ep(0, NULL);
    if (!ep)
        return;
    uint64_t g = wait_gen(ep, 0, 2000);
    CHECK(g >= 1);
    CHECK_EQ_INT(iroh_endpoint_add_external_addr(ep, "[2001:db8::9]:9"), IROH_OK);
    CHECK_EQ_INT((long long)wait_gen(ep, g, 2000), (long long)g + 1);
    iroh_endpoint_free(ep);
}

/* ---- remote info and metrics over UDP ------------------------------------------------------ */

typedef struct server {
    iroh_endpoint *ep;
    iroh_connection *conn;
} server;

static void *accept_one(void *arg)
{
    server *s = arg;
    iroh_incoming *inc;
    if (iroh_endpoint_accept(s->ep, 10000, &inc) == IROH_OK)
        iroh_incoming_accept(inc, &s->conn);
    return NULL;
}

/* n bytes from c to s.conn on one stream, read to the end there */
static void transfer(iroh_connection *c, iroh_connection *sc, size_t n)
{
    uint8_t *buf = calloc(1, n);
    iroh_send_stream *send, *ssend;
    iroh_recv_stream *recv, *srecv;
    CHECK_EQ_INT(iroh_connection_open_bi(c, &send, &recv), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_write_all(send, buf, n), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_finish(send), IROH_OK);
    CHECK_EQ_INT(iroh_connection_accept_bi(sc, 5000, &ssend, &srecv), IROH_OK);
    uint8_t *d = NULL;
    size_t got = 0;
    CHECK_EQ_INT(iroh_recv_stream_read_to_end(srecv, n + 1, &d, &got), IROH_OK);
    CHECK_EQ_INT((long long)got, (long long)n);
    free(d);
    CHECK_EQ_INT(iroh_send_stream_finish(ssend), IROH_OK);
    CHECK_EQ_INT(iroh_recv_stream_read_to_end(recv, 10, &d, &got), IROH_OK);
    free(d);
    iroh_send_stream_free(send);
    iroh_recv_stream_free(recv);
    iroh_send_stream_free(ssend);
    iroh_recv_stream_free(srecv);
    free(buf);
}

static const iroh_remote_addr *find_ip(const iroh_remote_info *ri, const iroh_socket_addr *a)
{
    for (size_t i = 0; i < ri->n_addrs; i++)
        if (ri->addrs[i].kind == IROH_TRANSPORT_IP && same(&ri->addrs[i].ip, a))
            return &ri->addrs[i];
    return NULL;
}

static const iroh_remote_addr *find_relay(const iroh_remote_info *ri, const char *url)
{
    for (size_t i = 0; i < ri->n_addrs; i++)
        if (ri->addrs[i].kind == IROH_TRANSPORT_RELAY && strcmp(ri->addrs[i].relay_url, url) == 0)
            return &ri->addrs[i];
    return NULL;
}

static uint64_t metric(iroh_endpoint *ep, const char *name)
{
    iroh_metric m[64];
    size_t n = iroh_endpoint_metrics(ep, m, 64);
    for (size_t i = 0; i < n && i < 64; i++)
        if (strcmp(m[i].name, name) == 0)
            return m[i].value;
    fprintf(stderr, "no metric %s\n", name);
    CHECK(0);
    return 0;
}

static iroh_socket_addr first_ip(iroh_endpoint *ep)
{
    iroh_endpoint_addr *a = NULL;
    iroh_socket_addr out;
    memset(&out, 0, sizeof out);
    iroh_endpoint_get_addr(ep, &a);
    for (size_t i = 0; a && i < iroh_endpoint_addr_len(a); i++) {
        iroh_transport_addr t;
        iroh_endpoint_addr_get(a, i, &t);
        if (t.kind == IROH_TRANSPORT_IP) {
            out = t.ip;
            break;
        }
    }
    iroh_endpoint_addr_free(a);
    return out;
}

TEST(remote_info_direct)
{
    iroh_endpoint *srv = bind_ep(1, NULL), *cli = bind_ep(0, NULL);
    if (!srv || !cli)
        return;
    iroh_endpoint_id sid, cid;
    iroh_endpoint_get_id(srv, &sid);
    iroh_endpoint_get_id(cli, &cid);
    iroh_remote_info ri;
    CHECK_EQ_INT(iroh_endpoint_remote_info(cli, &sid, &ri), IROH_ERR_NOT_FOUND);
    CHECK_EQ_INT(iroh_endpoint_remote_info(NULL, &sid, &ri), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(iroh_endpoint_remote_info(cli, NULL, &ri), IROH_ERR_INVALID_ARGUMENT);

    server s = {srv, NULL};
    pthread_t th;
    pthread_create(&th, NULL, accept_one, &s);
    iroh_endpoint_addr *addr;
    iroh_endpoint_get_addr(srv, &addr);
    iroh_connection *c = NULL;
    CHECK_EQ_INT(iroh_endpoint_connect(cli, addr, ALPN, &c), IROH_OK);
    iroh_endpoint_addr_free(addr);
    pthread_join(th, NULL);
    if (!c || !s.conn) {
        CHECK(0);
        return;
    }
    transfer(c, s.conn, 100000);
    iroh_socket_addr saddr = first_ip(srv), caddr = first_ip(cli);

    /* the client: the ticket's address, the connection's path on it, in use */
    CHECK_EQ_INT(iroh_endpoint_remote_info(cli, &sid, &ri), IROH_OK);
    CHECK(iroh_endpoint_id_equal(&ri.id, &sid));
    CHECK_EQ_INT(ri.connections, 1);
    CHECK_EQ_INT(ri.conn_type, IROH_PATH_DIRECT);
    CHECK(ri.latency_us > 0 && ri.latency_us < 5000000);
    CHECK(ri.last_seen_ms >= 0 && ri.last_seen_ms < 5000);
    CHECK_STR(ri.relay_url, "");
    CHECK_EQ_INT((int)ri.n_addrs, 1);
    const iroh_remote_addr *ra = find_ip(&ri, &saddr);
    CHECK(ra != NULL);
    if (ra) {
        /* (and, with NAT traversal on, the server advertised it: HOLEPUNCH) */
        CHECK_EQ_INT(ra->sources & ~IROH_ADDR_SOURCE_HOLEPUNCH,
                     IROH_ADDR_SOURCE_APP | IROH_ADDR_SOURCE_CONNECTION);
        CHECK(ra->lookup == NULL);
        CHECK_EQ_INT(ra->active, 1);
        CHECK(ra->rtt_us > 0);
        CHECK(ra->last_seen_ms >= 0 && ra->last_seen_ms < 5000);
    }
    /* the server: the address the client came from, nothing else */
    CHECK_EQ_INT(iroh_endpoint_remote_info(srv, &cid, &ri), IROH_OK);
    CHECK_EQ_INT(ri.connections, 1);
    CHECK_EQ_INT((int)ri.n_addrs, 1);
    ra = find_ip(&ri, &caddr);
    CHECK(ra && ra->sources == IROH_ADDR_SOURCE_CONNECTION && ra->active);

    /* the metrics moved with it */
    CHECK(metric(cli, "socket_send_ipv4") >= 100000);
    CHECK(metric(srv, "socket_recv_data_ipv4") >= 100000);
    CHECK(metric(cli, "socket_recv_data_ipv4") > 0);
    CHECK(metric(cli, "socket_recv_datagrams") > 0);
    CHECK_EQ_INT((int)metric(cli, "socket_send_ipv6"), 0);
    CHECK_EQ_INT((int)metric(cli, "socket_send_relay"), 0);
    CHECK_EQ_INT((int)metric(cli, "socket_num_conns_opened"), 1);
    CHECK_EQ_INT((int)metric(srv, "socket_num_conns_opened"), 1);
    CHECK_EQ_INT((int)metric(cli, "socket_num_conns_direct"), 1);
    CHECK_EQ_INT((int)metric(cli, "socket_num_conns_closed"), 0);
    CHECK_EQ_INT((int)metric(cli, "socket_paths_direct"), 1);
    CHECK_EQ_INT((int)metric(cli, "socket_transport_ip_paths_added"), 1);
    CHECK_EQ_INT((int)metric(cli, "irohc_conns"), 1);
    CHECK_EQ_INT((int)metric(srv, "irohc_incoming"), 1);

    /* closed: the peer is still known, nothing active; counted as closed */
    iroh_connection_close(c, 0, "bye");
    CHECK_EQ_INT(iroh_connection_closed(s.conn, 3000), IROH_OK);
    usleep(100000);
    CHECK_EQ_INT(iroh_endpoint_remote_info(cli, &sid, &ri), IROH_OK);
    CHECK_EQ_INT(ri.connections, 0);
    CHECK_EQ_INT(ri.conn_type, -1);
    CHECK(ri.latency_us > 0); /* the last known */
    CHECK(ri.last_seen_ms >= 0);
    ra = find_ip(&ri, &saddr);
    CHECK(ra && ra->active == 0 && (ra->sources & IROH_ADDR_SOURCE_APP));
    CHECK_EQ_INT((int)metric(cli, "socket_num_conns_closed"), 1);
    CHECK_EQ_INT((int)metric(cli, "socket_transport_ip_paths_removed"), 1);
    CHECK_EQ_INT((int)metric(cli, "irohc_conns"), 0);
    iroh_connection_free(c);
    iroh_connection_free(s.conn);
    iroh_endpoint_free(cli);
    iroh_endpoint_free(srv);
}

/* a user lookup that knows one address (the server's) */
static iroh_socket_addr lookup_answer;
static int user_lookup(void *ctx, const iroh_endpoint_id *id, iroh_endpoint_addr *out)
{
    (void)ctx;
    (void)id;
    return iroh_endpoint_addr_add_ip(out, &lookup_answer);
}

TEST(remote_info_lookup_source)
{
    iroh_endpoint *srv = bind_ep(1, NULL);
    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    iroh_endpoint_builder_relay_mode(b, IROH_RELAY_MODE_DISABLED);
    iroh_endpoint_builder_bind_addr(b, "127.0.0.1:0");
    iroh_endpoint_builder_no_lookup(b);
    CHECK_EQ_INT(iroh_endpoint_builder_address_lookup(b, user_lookup, NULL), IROH_OK);
    iroh_endpoint *cli = NULL;
    CHECK_EQ_INT(iroh_endpoint_bind(b, &cli), IROH_OK);
    iroh_endpoint_builder_free(b);
    if (!srv || !cli)
        return;
    lookup_answer = first_ip(srv);
    iroh_endpoint_id sid;
    iroh_endpoint_get_id(srv, &sid);
    server s = {srv, NULL};
    pthread_t th;
    pthread_create(&th, NULL, accept_one, &s);
    iroh_endpoint_addr *byid = iroh_endpoint_addr_new(&sid);
    iroh_connection *c = NULL;
    CHECK_EQ_INT(iroh_endpoint_connect(cli, byid, ALPN, &c), IROH_OK);
    iroh_endpoint_addr_free(byid);
    pthread_join(th, NULL);
    iroh_remote_info ri;
    CHECK_EQ_INT(iroh_endpoint_remote_info(cli, &sid, &ri), IROH_OK);
    const iroh_remote_addr *ra = find_ip(&ri, &lookup_answer);
    CHECK(ra != NULL);
    if (ra) {
        CHECK_EQ_INT(ra->sources & ~IROH_ADDR_SOURCE_HOLEPUNCH,
                     IROH_ADDR_SOURCE_LOOKUP | IROH_ADDR_SOURCE_CONNECTION);
        CHECK_STR(ra->lookup, "user");
        CHECK_EQ_INT(ra->active, 1);
    }
    if (c) {
        iroh_connection_close(c, 0, "bye");
        iroh_connection_free(c);
    }
    if (s.conn)
        iroh_connection_free(s.conn);
    iroh_endpoint_free(cli);
    iroh_endpoint_free(srv);
}

TEST(metrics_text)
{
    iroh_endpoint *ep = bind_ep(0, NULL);
    if (!ep)
        return;
    size_t n = iroh_endpoint_metrics(ep, NULL, 0);
    CHECK(n >= 20);
    CHECK_EQ_INT((int)iroh_endpoint_metrics(NULL, NULL, 0), 0);
    iroh_metric m[64];
    CHECK_EQ_INT((long long)iroh_endpoint_metrics(ep, m, 2), (long long)n);
    CHECK_STR(m[0].name, "socket_send_ipv4");
    CHECK_EQ_INT(m[0].kind, IROH_METRIC_COUNTER);
    size_t need = 0;
    CHECK_EQ_INT(iroh_endpoint_metrics_text(ep, NULL, 0, &need), IROH_ERR_BUFFER_TOO_SMALL);
    CHECK(need > 100);
    char small[16];
    CHECK_EQ_INT(iroh_endpoint_metrics_text(ep, small, sizeof small, NULL), IROH_ERR_BUFFER_TOO_SMALL);
    char *text = malloc(need + 256);
    CHECK_EQ_INT(iroh_endpoint_metrics_text(ep, text, need + 256, NULL), IROH_OK);
    static const char head[] = "# HELP socket_send_ipv4 Number of bytes sent over IPv4.\n"
                               "# TYPE socket_send_ipv4 counter\nsocket_send_ipv4_total ";
    CHECK(strncmp(text, head, strlen(head)) == 0);
    CHECK(strstr(text, "\n# TYPE irohc_conns gauge\nirohc_conns 0\n") != NULL);
    size_t len = strlen(text);
    CHECK(len >= 6 && strcmp(text + len - 6, "# EOF\n") == 0);
    free(text);
    CHECK_EQ_INT(iroh_endpoint_metrics_text(NULL, NULL, 0, NULL), IROH_ERR_INVALID_ARGUMENT);
    iroh_endpoint_free(ep);
}

/* ---- over a relay, then direct (holepunching) ----------------------------------------------- */

typedef struct relay {
    ir_relay_server *srv;
    pthread_t th;
    char url[64];
} relay;

static void *relay_main(void *arg)
{
    ir_relay_server_run(arg);
    return NULL;
}

static int relay_start(relay *r)
{
    ir_relay_server_config cfg;
    ir_relay_server_config_init(&cfg);
    cfg.listen = "127.0.0.1:0";
    if (ir_relay_server_new(&cfg, &r->srv) != IROH_OK)
        return -1;
    iroh_socket_addr a;
    ir_relay_server_local_addr(r->srv, &a);
    snprintf(r->url, sizeof r->url, "http://127.0.0.1:%u/", a.port);
    return pthread_create(&r->th, NULL, relay_main, r->srv);
}

static void relay_stop(relay *r)
{
    ir_relay_server_stop(r->srv);
    pthread_join(r->th, NULL);
    ir_relay_server_free(r->srv);
}

static iroh_endpoint *bind_hp(int accept, const char *url, iroh_event_callback cb)
{
    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    CHECK_EQ_INT(iroh_endpoint_builder_relay_url(b, url), IROH_OK);
    CHECK_EQ_INT(iroh_endpoint_builder_bind_addr(b, "127.0.0.1:0"), IROH_OK);
    CHECK_EQ_INT(iroh_endpoint_builder_holepunching(b, 2), IROH_OK);
    if (cb)
        CHECK_EQ_INT(iroh_endpoint_builder_event_callback(b, cb, NULL), IROH_OK);
    if (accept)
        CHECK_EQ_INT(iroh_endpoint_builder_alpn(b, ALPN), IROH_OK);
    iroh_endpoint *ep = NULL;
    CHECK_EQ_INT(iroh_endpoint_bind(b, &ep), IROH_OK);
    iroh_endpoint_builder_free(b);
    return ep;
}

TEST(relay_then_direct)
{
    relay r;
    if (relay_start(&r) != 0) {
        CHECK(0);
        return;
    }
    nev = 0;
    iroh_endpoint *srv = bind_hp(1, r.url, on_event);
    iroh_endpoint *cli = bind_hp(0, r.url, NULL);
    if (!srv || !cli)
        return;
    CHECK_EQ_INT(iroh_endpoint_online(srv, 5000), IROH_OK);
    /* the home relay came: the address changed, the event names the relay */
    int got = 0;
    for (int i = 0; i < 200 && !got; i++) {
        iroh_event e = last_event(IROH_EVENT_ADDR_CHANGED);
        got = e.relay_url && strcmp(e.relay_url, r.url) == 0;
        if (!got)
            usleep(10000);
    }
    CHECK(got);
    CHECK(metric(srv, "socket_relay_home_change") >= 1);
    CHECK(metric(srv, "socket_relay_conns_success") >= 1);

    iroh_endpoint_id sid;
    iroh_endpoint_get_id(srv, &sid);
    iroh_endpoint_addr *addr = iroh_endpoint_addr_new(&sid);
    CHECK_EQ_INT(iroh_endpoint_addr_add_relay(addr, r.url), IROH_OK);
    server s = {srv, NULL};
    pthread_t th;
    pthread_create(&th, NULL, accept_one, &s);
    iroh_connection *c = NULL;
    CHECK_EQ_INT(iroh_endpoint_connect(cli, addr, ALPN, &c), IROH_OK);
    iroh_endpoint_addr_free(addr);
    pthread_join(th, NULL);
    if (!c || !s.conn) {
        CHECK(0);
        relay_stop(&r);
        return;
    }
    iroh_socket_addr saddr = first_ip(srv);
    /* wait for the direct path to be selected */
    int direct = 0;
    for (int i = 0; i < 500 && !direct; i++) {
        iroh_socket_addr where;
        direct = iroh_connection_path(c, &where, NULL, 0) == 0 && same(&where, &saddr);
        if (!direct)
            usleep(10000);
    }
    CHECK(direct);
    transfer(c, s.conn, 50000);
    iroh_remote_info ri;
    CHECK_EQ_INT(iroh_endpoint_remote_info(cli, &sid, &ri), IROH_OK);
    CHECK_EQ_INT(ri.conn_type, IROH_PATH_DIRECT);
    CHECK_STR(ri.relay_url, r.url);
    /* the relay: from the ticket, a path of the connection (the backup, still open) */
    const iroh_remote_addr *rr = find_relay(&ri, r.url);
    CHECK(rr != NULL);
    if (rr) {
        CHECK_EQ_INT(rr->sources, IROH_ADDR_SOURCE_APP | IROH_ADDR_SOURCE_CONNECTION);
        CHECK_EQ_INT(rr->active, 1);
        CHECK(rr->last_seen_ms >= 0);
    }
    /* the direct address: the server advertised it for holepunching, and it is a path */
    const iroh_remote_addr *rd = find_ip(&ri, &saddr);
    CHECK(rd != NULL);
    if (rd) {
        CHECK_EQ_INT(rd->sources, IROH_ADDR_SOURCE_HOLEPUNCH | IROH_ADDR_SOURCE_CONNECTION);
        CHECK_EQ_INT(rd->active, 1);
        CHECK(rd->rtt_us > 0);
    }
    CHECK(ri.addrs[0].active && ri.addrs[1].active);
    /* the metrics: relayed bytes both ways, one relay path and one direct path */
    CHECK(metric(cli, "socket_send_relay") > 0);
    CHECK(metric(cli, "socket_recv_data_relay") > 0);
    CHECK(metric(cli, "socket_send_ipv4") >= 50000);
    CHECK_EQ_INT((int)metric(cli, "socket_paths_relay"), 1);
    CHECK(metric(cli, "socket_paths_direct") >= 1);
    CHECK_EQ_INT((int)metric(cli, "socket_transport_relay_paths_added"), 1);
    CHECK_EQ_INT((int)metric(cli, "socket_num_conns_direct"), 1);
    CHECK_EQ_INT((int)metric(cli, "socket_num_conns_opened"), 1);
    /* the client holepunched (NAT traversal rounds), the server did not */
    CHECK(metric(cli, "socket_holepunch_attempts") >= 1);
    CHECK_EQ_INT((int)metric(srv, "socket_holepunch_attempts"), 0);
    CHECK_EQ_INT((int)metric(srv, "socket_relay_conns_failed"), 0);
    CHECK_EQ_INT((int)metric(srv, "socket_relay_conns_closed"), 0);

    iroh_connection_close(c, 0, "bye");
    iroh_connection_closed(s.conn, 3000);
    uint64_t hp = metric(cli, "socket_holepunch_attempts");
    usleep(100000);
    CHECK_EQ_INT((long long)metric(cli, "socket_holepunch_attempts"), (long long)hp); /* kept */
    iroh_connection_free(c);
    iroh_connection_free(s.conn);
    /* the relay goes away: the server's relay connection ended, its attempts fail */
    relay_stop(&r);
    uint64_t closed = 0, failed = 0;
    for (int i = 0; i < 500 && (!closed || !failed); i++) {
        closed = metric(srv, "socket_relay_conns_closed");
        failed = metric(srv, "socket_relay_conns_failed");
        if (!closed || !failed)
            usleep(10000);
    }
    CHECK_EQ_INT((int)closed, 1);
    CHECK(failed >= 1);
    CHECK_EQ_INT((int)metric(srv, "socket_relay_conns_success"), 1);
    iroh_endpoint_free(cli);
    iroh_endpoint_free(srv);
}

int main(void)
{
    setenv("IROH_C_ADDRESS_LOOKUP", "none", 1);
    RUN(addr_changed_event);
    RUN(addr_generation_without_callback);
    RUN(addr_wait);
    RUN(remote_info_direct);
    RUN(remote_info_lookup_source);
    RUN(metrics_text);
    RUN(relay_then_direct);
    TEST_EXIT();
}
