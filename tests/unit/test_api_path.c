/* The public API of addresses and paths: configured external addresses (builder, add,
 * remove) in iroh_endpoint_get_addr and tickets; iroh_connection_paths and the path
 * events (PATH_SELECTED right after CONNECTED, with the path id and the time since the
 * handshake began) for a direct connection over loopback. */
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "iroh.h"
#include "relay/server.h"
#include "test.h"

static const char ALPN[] = "test/path/0";

static iroh_endpoint *bind_ep(int accept, iroh_event_callback cb, const char *ext)
{
    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    iroh_endpoint_builder_relay_mode(b, IROH_RELAY_MODE_DISABLED); /* loopback only */
    CHECK_EQ_INT(iroh_endpoint_builder_bind_addr(b, "127.0.0.1:0"), IROH_OK);
    if (accept)
        CHECK_EQ_INT(iroh_endpoint_builder_alpn(b, ALPN), IROH_OK);
    if (cb)
        CHECK_EQ_INT(iroh_endpoint_builder_event_callback(b, cb, NULL), IROH_OK);
    if (ext)
        CHECK_EQ_INT(iroh_endpoint_builder_external_addr(b, ext), IROH_OK);
    iroh_endpoint *ep = NULL;
    CHECK_EQ_INT(iroh_endpoint_bind(b, &ep), IROH_OK);
    iroh_endpoint_builder_free(b);
    return ep;
}

/* 1 if the endpoint's address (and the ticket made of it) lists text */
static int lists(iroh_endpoint *ep, const char *text)
{
    iroh_socket_addr want;
    CHECK_EQ_INT(iroh_socket_addr_parse(text, &want), IROH_OK);
    iroh_endpoint_addr *a = NULL;
    CHECK_EQ_INT(iroh_endpoint_get_addr(ep, &a), IROH_OK);
    if (!a)
        return 0;
    char ticket[4096];
    CHECK_EQ_INT(iroh_endpoint_ticket_encode(a, ticket, sizeof ticket, NULL), IROH_OK);
    iroh_endpoint_addr_free(a);
    CHECK_EQ_INT(iroh_endpoint_ticket_decode(ticket, &a), IROH_OK);
    int found = 0;
    for (size_t i = 0; a && i < iroh_endpoint_addr_len(a); i++) {
        iroh_transport_addr t;
        iroh_endpoint_addr_get(a, i, &t);
        if (t.kind == IROH_TRANSPORT_IP && t.ip.family == want.family &&
            t.ip.port == want.port && memcmp(t.ip.ip, want.ip, want.family == 4 ? 4 : 16) == 0)
            found = 1;
    }
    iroh_endpoint_addr_free(a);
    return found;
}

TEST(external_addresses)
{
    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    CHECK_EQ_INT(iroh_endpoint_builder_external_addr(b, "nope"), IROH_ERR_INVALID_ADDR);
    CHECK_EQ_INT(iroh_endpoint_builder_external_addr(b, "198.51.100.1:0"), IROH_ERR_INVALID_ADDR);
    CHECK_EQ_INT(iroh_endpoint_builder_external_addr(b, "0.0.0.0:7000"), IROH_ERR_INVALID_ADDR);
    CHECK_EQ_INT(iroh_endpoint_builder_external_addr(b, NULL), IROH_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(iroh_endpoint_builder_external_addr(NULL, "198.51.100.1:7000"),
                 IROH_ERR_INVALID_ARGUMENT);
    int rc = IROH_OK, n = 0;
    for (int i = 0; i < 20 && rc == IROH_OK; i++) {
        char t[64];
        snprintf(t, sizeof t, "198.51.100.%d:7000", i + 1);
        rc = iroh_endpoint_builder_external_addr(b, t);
        n += rc == IROH_OK;
    }
    CHECK_EQ_INT(rc, IROH_ERR_BUFFER_TOO_SMALL);
    CHECK_EQ_INT(n, 16);
    iroh_endpoint_builder_free(b);

    iroh_endpoint *ep = bind_ep(0, NULL, "198.51.100.1:7000");
    if (!ep)
        return;
    CHECK(lists(ep, "198.51.100.1:7000"));
    CHECK(!lists(ep, "[2001:db8::5]:9"));
    CHECK_EQ_INT(iroh_endpoint_add_external_addr(ep, "[2001:db8::5]:9"), IROH_OK);
    CHECK_EQ_INT(iroh_endpoint_add_external_addr(ep, "[2001:db8::5]:9"), IROH_OK);
    CHECK(lists(ep, "[2001:db8::5]:9"));
    CHECK(lists(ep, "198.51.100.1:7000"));
    CHECK_EQ_INT(iroh_endpoint_add_external_addr(ep, "[2001:db8::5]"), IROH_ERR_INVALID_ADDR);
    CHECK_EQ_INT(iroh_endpoint_remove_external_addr(ep, "198.51.100.1:7000"), IROH_OK);
    CHECK(!lists(ep, "198.51.100.1:7000"));
    CHECK(lists(ep, "[2001:db8::5]:9"));
    CHECK_EQ_INT(iroh_endpoint_remove_external_addr(ep, "198.51.100.1:7000"), IROH_ERR_STATE);
    CHECK_EQ_INT(iroh_endpoint_network_change(ep), IROH_OK);
    CHECK(lists(ep, "[2001:db8::5]:9"));
    iroh_endpoint_close(ep);
    CHECK_EQ_INT(iroh_endpoint_add_external_addr(ep, "198.51.100.2:1"), IROH_ERR_CLOSED);
    CHECK_EQ_INT(iroh_endpoint_remove_external_addr(ep, "[2001:db8::5]:9"), IROH_ERR_CLOSED);
    CHECK_EQ_INT(iroh_endpoint_network_change(ep), IROH_ERR_CLOSED);
    iroh_endpoint_free(ep);
}

/* ---- paths and path events ---------------------------------------------------------------- */

#define MAX_EV 64
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
        /* the URL is valid during the call only */
        snprintf(ev_url[nev], sizeof ev_url[nev], "%s", ev->relay_url ? ev->relay_url : "");
        evs[nev].relay_url = ev->relay_url ? ev_url[nev] : NULL;
        nev++;
    }
    pthread_mutex_unlock(&ev_mu);
}

/* the index of the first event of kind (of direction inbound) from index from on, or -1,
 * waiting up to ms for it */
static int find_event(iroh_event_kind kind, int inbound, int from, int ms)
{
    for (int waited = 0;; waited += 10) {
        pthread_mutex_lock(&ev_mu);
        for (int i = from; i < nev; i++) {
            if (evs[i].kind == kind && evs[i].inbound == inbound) {
                pthread_mutex_unlock(&ev_mu);
                return i;
            }
        }
        pthread_mutex_unlock(&ev_mu);
        if (waited >= ms)
            return -1;
        usleep(10000);
    }
}

typedef struct server {
    iroh_endpoint *ep;
    iroh_connection *conn;
} server;

static void *accept_one(void *arg)
{
    server *s = arg;
    iroh_incoming *inc;
    if (iroh_endpoint_accept(s->ep, 5000, &inc) == IROH_OK)
        iroh_incoming_accept(inc, &s->conn);
    return NULL;
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

static int same(const iroh_socket_addr *a, const iroh_socket_addr *b)
{
    return a->family == b->family && a->port == b->port &&
           memcmp(a->ip, b->ip, a->family == 4 ? 4 : 16) == 0;
}

TEST(single_direct_path)
{
    nev = 0;
    iroh_endpoint *srv = bind_ep(1, on_event, NULL);
    iroh_endpoint *cli = bind_ep(0, on_event, NULL);
    if (!srv || !cli)
        return;
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
    iroh_socket_addr saddr = first_ip(srv), caddr = first_ip(cli);

    /* the events: CONNECTED, then PATH_SELECTED naming path 0 at the server's address */
    int ic = find_event(IROH_EVENT_CONNECTED, 0, 0, 2000);
    int is = find_event(IROH_EVENT_PATH_SELECTED, 0, 0, 2000);
    CHECK(ic >= 0 && is > ic);
    if (is >= 0) {
        CHECK_EQ_INT((int)evs[is].path_id, 0);
        CHECK(same(&evs[is].path, &saddr));
        CHECK(evs[is].relay_url == NULL);
        CHECK(evs[is].elapsed_us > 0 && evs[is].elapsed_us < 10000000);
        CHECK(evs[is].elapsed_us >= evs[ic].elapsed_us);
    }
    /* the server's side, the same with the client's address */
    is = find_event(IROH_EVENT_PATH_SELECTED, 1, 0, 2000);
    CHECK(is >= 0);
    if (is >= 0) {
        CHECK_EQ_INT((int)evs[is].path_id, 0);
        CHECK(same(&evs[is].path, &caddr));
    }

    /* some data, so that every counter moves */
    iroh_send_stream *send;
    iroh_recv_stream *recv, *srecv;
    iroh_send_stream *ssend;
    CHECK_EQ_INT(iroh_connection_open_bi(c, &send, &recv), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_write_all(send, "hello paths", 11), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_finish(send), IROH_OK);
    CHECK_EQ_INT(iroh_connection_accept_bi(s.conn, 5000, &ssend, &srecv), IROH_OK);
    uint8_t *d = NULL;
    size_t n = 0;
    CHECK_EQ_INT(iroh_recv_stream_read_to_end(srecv, 100, &d, &n), IROH_OK);
    free(d);
    CHECK_EQ_INT(iroh_send_stream_finish(ssend), IROH_OK);
    CHECK_EQ_INT(iroh_recv_stream_read_to_end(recv, 100, &d, &n), IROH_OK);
    free(d);

    CHECK_EQ_INT((int)iroh_connection_paths(c, NULL, 0), 1);
    CHECK_EQ_INT((int)iroh_connection_paths(NULL, NULL, 0), 0);
    iroh_path_info p[4];
    memset(p, 0xee, sizeof p);
    CHECK_EQ_INT((int)iroh_connection_paths(c, p, 4), 1);
    CHECK_EQ_INT((int)p[0].id, 0);
    CHECK_EQ_INT(p[0].kind, IROH_PATH_DIRECT);
    CHECK(same(&p[0].addr, &saddr));
    CHECK(p[0].relay_url == NULL);
    CHECK_EQ_INT(p[0].selected, 1);
    CHECK_EQ_INT(p[0].validated, 1);
    CHECK_EQ_INT(p[0].abandoned, 0);
    CHECK(p[0].rtt_us > 0);
    CHECK(p[0].packets_sent > 0 && p[0].packets_received > 0);
    CHECK(p[0].bytes_sent > 11 && p[0].bytes_received > 0);
    CHECK(p[0].packets_lost <= p[0].packets_sent);
    /* the whole connection's counts and the path's agree when there is one path */
    iroh_connection_stats st;
    iroh_connection_stats_get(c, &st);
    CHECK(p[0].packets_sent <= st.packets_sent);
    CHECK_EQ_INT((int)iroh_connection_paths(s.conn, p, 1), 1);
    CHECK(same(&p[0].addr, &caddr));
    CHECK_EQ_INT(p[0].selected, 1);
    /* iroh_connection_path names the selected path */
    iroh_socket_addr where;
    CHECK_EQ_INT(iroh_connection_path(c, &where, NULL, 0), 0);
    CHECK(same(&where, &saddr));
    /* no second PATH_SELECTED while the path stays */
    int first = find_event(IROH_EVENT_PATH_SELECTED, 0, 0, 0);
    CHECK_EQ_INT(find_event(IROH_EVENT_PATH_SELECTED, 0, first + 1, 100), -1);

    iroh_send_stream_free(send);
    iroh_recv_stream_free(recv);
    iroh_send_stream_free(ssend);
    iroh_recv_stream_free(srecv);
    iroh_connection_close(c, 0, "bye");
    CHECK_EQ_INT(iroh_connection_closed(s.conn, 3000), IROH_OK);
    /* closed: nothing is selected any more */
    CHECK_EQ_INT((int)iroh_connection_paths(c, p, 1), 1);
    CHECK_EQ_INT(p[0].selected, 0);
    iroh_connection_free(c);
    iroh_connection_free(s.conn);
    iroh_endpoint_free(cli);
    iroh_endpoint_free(srv);
}

/* ---- relay first, then direct (holepunching on) ------------------------------------------- */

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

static iroh_endpoint *bind_hp(int accept, const char *url)
{
    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    CHECK_EQ_INT(iroh_endpoint_builder_relay_url(b, url), IROH_OK);
    CHECK_EQ_INT(iroh_endpoint_builder_bind_addr(b, "127.0.0.1:0"), IROH_OK);
    CHECK_EQ_INT(iroh_endpoint_builder_holepunching(b, 2), IROH_OK);
    CHECK_EQ_INT(iroh_endpoint_builder_event_callback(b, on_event, NULL), IROH_OK);
    if (accept)
        CHECK_EQ_INT(iroh_endpoint_builder_alpn(b, ALPN), IROH_OK);
    iroh_endpoint *ep = NULL;
    CHECK_EQ_INT(iroh_endpoint_bind(b, &ep), IROH_OK);
    iroh_endpoint_builder_free(b);
    return ep;
}

/* a path of kind among the first n of p, or NULL */
static const iroh_path_info *path_of_kind(const iroh_path_info *p, size_t n, iroh_path_kind k)
{
    for (size_t i = 0; i < n; i++)
        if (p[i].kind == k && !p[i].abandoned)
            return &p[i];
    return NULL;
}

TEST(relay_then_direct)
{
    relay r;
    if (relay_start(&r) != 0) {
        CHECK(0);
        return;
    }
    nev = 0;
    iroh_endpoint *srv = bind_hp(1, r.url);
    iroh_endpoint *cli = bind_hp(0, r.url);
    if (!srv || !cli)
        return;
    CHECK_EQ_INT(iroh_endpoint_online(srv, 5000), IROH_OK);
    /* a relay-only address: the connection starts on the relay */
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
        return;
    }
    iroh_socket_addr saddr = first_ip(srv);
    /* first selected: the relay path 0; then a direct path opened and selected */
    int s1 = find_event(IROH_EVENT_PATH_SELECTED, 0, 0, 3000);
    CHECK(s1 >= 0);
    if (s1 >= 0) {
        CHECK_EQ_INT((int)evs[s1].path_id, 0);
        CHECK(evs[s1].relay_url && strcmp(evs[s1].relay_url, r.url) == 0);
    }
    int op = find_event(IROH_EVENT_PATH_OPENED, 0, s1 + 1, 5000);
    int s2 = find_event(IROH_EVENT_PATH_SELECTED, 0, s1 + 1, 5000);
    CHECK(op > s1 && s2 > op);
    if (op > 0 && s2 > 0) {
        CHECK(evs[op].path_id > 0);
        CHECK_EQ_INT((int)evs[s2].path_id, (int)evs[op].path_id);
        CHECK(evs[s2].relay_url == NULL);
        CHECK(same(&evs[s2].path, &saddr));
        CHECK(evs[s2].elapsed_us >= evs[s1].elapsed_us);
    }
    /* the server sees its selection move to the direct path too */
    int ss = find_event(IROH_EVENT_PATH_SELECTED, 1, 0, 3000);
    CHECK(ss >= 0 && find_event(IROH_EVENT_PATH_SELECTED, 1, ss + 1, 5000) > ss);
    /* the paths: the relay one kept as backup, the direct one selected */
    iroh_path_info p[8];
    size_t n = iroh_connection_paths(c, p, 8);
    CHECK(n >= 2);
    const iroh_path_info *rp = path_of_kind(p, n < 8 ? n : 8, IROH_PATH_RELAY);
    const iroh_path_info *dp = path_of_kind(p, n < 8 ? n : 8, IROH_PATH_DIRECT);
    CHECK(rp && dp);
    if (rp && dp) {
        CHECK_EQ_INT((int)rp->id, 0);
        CHECK(rp->relay_url && strcmp(rp->relay_url, r.url) == 0);
        CHECK_EQ_INT(rp->selected, 0);
        CHECK_EQ_INT(dp->selected, 1);
        CHECK_EQ_INT(dp->validated, 1);
        CHECK(same(&dp->addr, &saddr));
        CHECK(rp->packets_sent > 0 && dp->packets_sent > 0);
    }
    int selected = 0;
    for (size_t i = 0; i < n && i < 8; i++)
        selected += p[i].selected;
    CHECK_EQ_INT(selected, 1);
    iroh_socket_addr where;
    CHECK_EQ_INT(iroh_connection_path(c, &where, NULL, 0), 0);
    CHECK(same(&where, &saddr));
    /* data goes through */
    iroh_send_stream *send, *ssend;
    iroh_recv_stream *recv, *srecv;
    CHECK_EQ_INT(iroh_connection_open_bi(c, &send, &recv), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_write_all(send, "direct now", 10), IROH_OK);
    CHECK_EQ_INT(iroh_send_stream_finish(send), IROH_OK);
    CHECK_EQ_INT(iroh_connection_accept_bi(s.conn, 5000, &ssend, &srecv), IROH_OK);
    uint8_t *d = NULL;
    size_t len = 0;
    CHECK_EQ_INT(iroh_recv_stream_read_to_end(srecv, 100, &d, &len), IROH_OK);
    CHECK(len == 10 && d && memcmp(d, "direct now", 10) == 0);
    free(d);
    iroh_send_stream_free(send);
    iroh_recv_stream_free(recv);
    iroh_send_stream_free(ssend);
    iroh_recv_stream_free(srecv);
    iroh_connection_close(c, 0, "bye");
    iroh_connection_free(c);
    iroh_connection_free(s.conn);
    iroh_endpoint_free(cli);
    iroh_endpoint_free(srv);
    relay_stop(&r);
}

int main(void)
{
    RUN(external_addresses);
    RUN(single_direct_path);
    RUN(relay_then_direct);
    TEST_EXIT();
}
