/* A test peer built on the public API (include/iroh.h only), driven by the interop tests:
 *
 *   api_tool serve ALPN [--refuse HEXID] [--close-after MS]
 *       router-based echo server: prints its ticket, echoes every bidirectional stream and
 *       every datagram of every connection; connections from HEXID are refused by the
 *       accept filter (code 403); --close-after closes the endpoint after MS with
 *       connections open. Runs until stdin closes (or the close), then shuts down.
 *   api_tool clients TICKET ALPN CONNS STREAMS BYTES
 *       CONNS connections at once, each with STREAMS concurrent echoed streams of BYTES.
 *   api_tool datagrams TICKET ALPN COUNT
 *       sends COUNT datagrams and counts the echoes.
 *   api_tool read-until-closed TICKET ALPN
 *       opens a stream, sends a request, reads until the peer closes the connection.
 * Prints one result line; exit status 0 on success. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <iroh.h>

static _Noreturn void die(const char *what, int rc)
{
    fprintf(stderr, "api_tool: %s: %s: %s\n", what, iroh_strerror(rc), iroh_last_error());
    exit(1);
}

/* ---- serve ------------------------------------------------------------------------------ */

typedef struct stream_job {
    iroh_send_stream *send;
    iroh_recv_stream *recv;
} stream_job;

static void *echo_stream(void *arg)
{
    stream_job *j = arg;
    uint8_t buf[16384];
    for (;;) {
        size_t n;
        if (iroh_recv_stream_read(j->recv, buf, sizeof buf, &n) != IROH_OK || n == 0)
            break;
        if (iroh_send_stream_write_all(j->send, buf, n) != IROH_OK)
            break;
    }
    iroh_send_stream_finish(j->send);
    iroh_send_stream_free(j->send);
    iroh_recv_stream_free(j->recv);
    free(j);
    return NULL;
}

typedef struct dg_ctx {
    iroh_connection *conn;
} dg_ctx;

static void *echo_datagrams(void *arg)
{
    iroh_connection *c = arg;
    uint8_t buf[2048];
    size_t n;
    while (iroh_connection_read_datagram(c, -1, buf, sizeof buf, &n) == IROH_OK)
        iroh_connection_send_datagram(c, buf, n);
    return NULL;
}

static int echo_handler(void *ctx, iroh_connection *conn)
{
    (void)ctx;
    pthread_t dg;
    pthread_create(&dg, NULL, echo_datagrams, conn);
    pthread_t threads[256];
    int nt = 0;
    for (;;) {
        stream_job *j = malloc(sizeof *j);
        if (iroh_connection_accept_bi(conn, -1, &j->send, &j->recv) != IROH_OK) {
            free(j);
            break;
        }
        if (nt == 256 || pthread_create(&threads[nt], NULL, echo_stream, j) != 0) {
            echo_stream(j);
            continue;
        }
        nt++;
    }
    for (int i = 0; i < nt; i++)
        pthread_join(threads[i], NULL);
    pthread_join(dg, NULL);
    return 0;
}

static iroh_endpoint_id refused;
static int have_refused;

static uint64_t filter(void *ctx, const iroh_endpoint_id *peer, const uint8_t *alpn, size_t len)
{
    (void)ctx;
    (void)alpn;
    (void)len;
    return have_refused && iroh_endpoint_id_equal(peer, &refused) ? 403 : 0;
}

/* Relays: API_TOOL_RELAY=URL makes it the endpoint's relay (and waits until connected);
 * unset, relays are disabled (tests stay on loopback). */
static void set_relays(iroh_endpoint_builder *b)
{
    const char *url = getenv("API_TOOL_RELAY");
    int rc = url ? iroh_endpoint_builder_relay_url(b, url)
                 : iroh_endpoint_builder_relay_mode(b, IROH_RELAY_MODE_DISABLED);
    if (rc != IROH_OK)
        die("relay", rc);
}

static void wait_online(iroh_endpoint *ep)
{
    int rc;
    if (getenv("API_TOOL_RELAY") && (rc = iroh_endpoint_online(ep, 10000)) != IROH_OK)
        die("online", rc);
}

static int serve(int argc, char **argv)
{
    const char *alpn = argv[0];
    int close_after = -1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--refuse") == 0 && i + 1 < argc) {
            if (iroh_endpoint_id_parse(argv[++i], &refused) != IROH_OK)
                die("--refuse", IROH_ERR_INVALID_KEY);
            have_refused = 1;
        } else if (strcmp(argv[i], "--close-after") == 0 && i + 1 < argc) {
            close_after = atoi(argv[++i]);
        }
    }
    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    iroh_endpoint *ep;
    int rc;
    set_relays(b);
    if ((rc = iroh_endpoint_builder_bind_addr(b, "127.0.0.1:0")) ||
        (rc = iroh_endpoint_builder_alpn(b, alpn)) ||
        (rc = iroh_endpoint_builder_accept_filter(b, filter, NULL)) ||
        (rc = iroh_endpoint_bind(b, &ep)))
        die("bind", rc);
    iroh_endpoint_builder_free(b);
    wait_online(ep);
    iroh_router_builder *rb = iroh_router_builder_new(ep);
    iroh_router *router;
    if ((rc = iroh_router_builder_accept(rb, alpn, echo_handler, NULL)) ||
        (rc = iroh_router_spawn(rb, &router)))
        die("router", rc);
    iroh_endpoint_addr *addr;
    char ticket[1024];
    iroh_endpoint_get_addr(ep, &addr);
    iroh_endpoint_ticket_encode(addr, ticket, sizeof ticket, NULL);
    iroh_endpoint_addr_free(addr);
    printf("%s\n", ticket);
    fflush(stdout);
    if (close_after >= 0) {
        usleep((useconds_t)close_after * 1000);
        iroh_endpoint_close(ep); /* connections are open: the peers see code 0 */
        printf("closed\n");
        fflush(stdout);
    } else {
        char line[64];
        while (fgets(line, sizeof line, stdin)) {
        }
    }
    iroh_router_shutdown(router);
    iroh_router_free(router);
    return 0;
}

/* ---- clients ------------------------------------------------------------------------------ */

typedef struct client_job {
    iroh_endpoint *ep;
    const iroh_endpoint_addr *addr;
    const char *alpn;
    int streams;
    size_t bytes;
    int ok;
    char err[256];
} client_job;

typedef struct sjob {
    iroh_connection *conn;
    size_t bytes;
    int seed;
    int ok;
} sjob;

static void fill(uint8_t *p, size_t n, int seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 131 + (size_t)seed * 17 + (i >> 10));
}

static void *stream_main(void *arg)
{
    sjob *s = arg;
    iroh_send_stream *send;
    iroh_recv_stream *recv;
    if (iroh_connection_open_bi(s->conn, &send, &recv) != IROH_OK)
        return NULL;
    uint8_t *data = malloc(s->bytes + 1), *back = NULL;
    fill(data, s->bytes, s->seed);
    size_t len = 0;
    if (iroh_send_stream_write_all(send, data, s->bytes) == IROH_OK &&
        iroh_send_stream_finish(send) == IROH_OK &&
        iroh_recv_stream_read_to_end(recv, s->bytes + 1, &back, &len) == IROH_OK)
        s->ok = len == s->bytes && memcmp(back, data, len) == 0;
    else
        fprintf(stderr, "api_tool: stream: %s\n", iroh_last_error());
    free(data);
    free(back);
    iroh_send_stream_free(send);
    iroh_recv_stream_free(recv);
    return NULL;
}

static void *client_main(void *arg)
{
    client_job *j = arg;
    iroh_connection *conn;
    int rc = iroh_endpoint_connect(j->ep, j->addr, j->alpn, &conn);
    if (rc != IROH_OK) {
        snprintf(j->err, sizeof j->err, "connect: %s", iroh_last_error());
        return NULL;
    }
    pthread_t th[64];
    sjob sj[64];
    int n = j->streams > 64 ? 64 : j->streams;
    for (int i = 0; i < n; i++) {
        sj[i] = (sjob){conn, j->bytes, i, 0};
        pthread_create(&th[i], NULL, stream_main, &sj[i]);
    }
    int good = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        good += sj[i].ok;
    }
    j->ok = good == n;
    if (!j->ok)
        snprintf(j->err, sizeof j->err, "%d of %d streams intact", good, n);
    iroh_connection_close(conn, 0, "done");
    iroh_connection_free(conn);
    return NULL;
}

static iroh_endpoint *client_endpoint(void)
{
    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    iroh_endpoint *ep;
    int rc;
    set_relays(b);
    if ((rc = iroh_endpoint_builder_bind_addr(b, "127.0.0.1:0")) || (rc = iroh_endpoint_bind(b, &ep)))
        die("bind", rc);
    iroh_endpoint_builder_free(b);
    return ep;
}

static int clients(int argc, char **argv)
{
    if (argc < 5)
        return 2;
    iroh_endpoint_addr *addr;
    int rc = iroh_endpoint_ticket_decode(argv[0], &addr);
    if (rc)
        die("ticket", rc);
    int conns = atoi(argv[2]), streams = atoi(argv[3]);
    size_t bytes = (size_t)atol(argv[4]);
    iroh_endpoint *ep = client_endpoint();
    client_job *jobs = calloc((size_t)conns, sizeof *jobs);
    pthread_t *th = calloc((size_t)conns, sizeof *th);
    for (int i = 0; i < conns; i++) {
        jobs[i] = (client_job){ep, addr, argv[1], streams, bytes, 0, ""};
        pthread_create(&th[i], NULL, client_main, &jobs[i]);
    }
    int good = 0;
    for (int i = 0; i < conns; i++) {
        pthread_join(th[i], NULL);
        good += jobs[i].ok;
        if (!jobs[i].ok)
            fprintf(stderr, "api_tool: connection %d: %s\n", i, jobs[i].err);
    }
    printf("%d of %d connections intact\n", good, conns);
    iroh_endpoint_close(ep);
    iroh_endpoint_free(ep);
    iroh_endpoint_addr_free(addr);
    free(jobs);
    free(th);
    return good == conns ? 0 : 1;
}

static int datagrams(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    iroh_endpoint_addr *addr;
    int rc = iroh_endpoint_ticket_decode(argv[0], &addr);
    if (rc)
        die("ticket", rc);
    iroh_endpoint *ep = client_endpoint();
    iroh_connection *conn;
    if ((rc = iroh_endpoint_connect(ep, addr, argv[1], &conn)))
        die("connect", rc);
    int count = atoi(argv[2]), back = 0;
    printf("max datagram %zu\n", iroh_connection_max_datagram_size(conn));
    for (int i = 0; i < count; i++) {
        uint8_t d[300], r[400];
        size_t n;
        fill(d, 100 + (size_t)i, i);
        if ((rc = iroh_connection_send_datagram(conn, d, 100 + (size_t)i)))
            die("send_datagram", rc);
        if (iroh_connection_read_datagram(conn, 2000, r, sizeof r, &n) == IROH_OK &&
            n == 100 + (size_t)i && memcmp(r, d, n) == 0)
            back++;
    }
    printf("%d of %d datagrams echoed\n", back, count);
    iroh_connection_close(conn, 0, "done");
    iroh_connection_free(conn);
    iroh_endpoint_close(ep);
    iroh_endpoint_free(ep);
    iroh_endpoint_addr_free(addr);
    return back >= count - 1 ? 0 : 1;
}

static int read_until_closed(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    iroh_endpoint_addr *addr;
    int rc = iroh_endpoint_ticket_decode(argv[0], &addr);
    if (rc)
        die("ticket", rc);
    iroh_endpoint *ep = client_endpoint();
    iroh_connection *conn;
    if ((rc = iroh_endpoint_connect(ep, addr, argv[1], &conn)))
        die("connect", rc);
    iroh_send_stream *send;
    iroh_recv_stream *recv;
    if ((rc = iroh_connection_open_bi(conn, &send, &recv)))
        die("open_bi", rc);
    iroh_send_stream_write_all(send, "request", 7);
    uint8_t buf[4096];
    size_t n, total = 0;
    while ((rc = iroh_recv_stream_read(recv, buf, sizeof buf, &n)) == IROH_OK && n > 0)
        total += n;
    iroh_close_reason why;
    iroh_connection_close_reason(conn, &why);
    printf("read %zu bytes, then %s; close kind %d by_peer %d code %llu reason '%s'\n", total,
           iroh_strerror(rc), why.kind, why.by_peer, (unsigned long long)why.code, why.reason);
    iroh_send_stream_free(send);
    iroh_recv_stream_free(recv);
    iroh_connection_free(conn);
    iroh_endpoint_close(ep);
    iroh_endpoint_free(ep);
    iroh_endpoint_addr_free(addr);
    return rc == IROH_ERR_CONNECTION_CLOSED ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: api_tool serve|clients|datagrams|read-until-closed ...\n");
        return 2;
    }
    if (strcmp(argv[1], "serve") == 0)
        return serve(argc - 2, argv + 2);
    if (strcmp(argv[1], "clients") == 0)
        return clients(argc - 2, argv + 2);
    if (strcmp(argv[1], "datagrams") == 0)
        return datagrams(argc - 2, argv + 2);
    if (strcmp(argv[1], "read-until-closed") == 0)
        return read_until_closed(argc - 2, argv + 2);
    return 2;
}
