/* The echo protocol without a Router, as in the appendix of iroh's guide "Writing your
 * own Protocol": our own accept loop on a thread, calling the handler for each incoming
 * connection on a thread of its own. Arguments as examples/echo.c. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <iroh.h>

static const char ALPN[] = "iroh-example/echo/0";
static const char *bind_addr = "127.0.0.1:0";
static const char *relay = NULL; /* NULL: n0's relays, "none": no relays, else a relay URL */

/* The guide's endpoints use n0's relays; argv[2] can name another relay or "none". */
static int use_relays(iroh_endpoint_builder *b)
{
    if (!relay)
        return IROH_OK;
    if (strcmp(relay, "none") == 0)
        return iroh_endpoint_builder_relay_mode(b, IROH_RELAY_MODE_DISABLED);
    return iroh_endpoint_builder_relay_url(b, relay);
}

#define TRY(expr)                                                                          \
    do {                                                                                   \
        int rc_ = (expr);                                                                  \
        if (rc_ != IROH_OK) {                                                              \
            fprintf(stderr, "%s: %s: %s\n", #expr, iroh_strerror(rc_), iroh_last_error()); \
            return rc_;                                                                    \
        }                                                                                  \
    } while (0)

static int echo(iroh_connection *connection)
{
    iroh_endpoint_id endpoint_id;
    char id[IROH_ID_HEX_LEN];
    iroh_connection_remote_id(connection, &endpoint_id);
    iroh_endpoint_id_to_hex(&endpoint_id, id, sizeof id);
    printf("accepted connection from %s\n", id);
    fflush(stdout);
    iroh_send_stream *send;
    iroh_recv_stream *recv;
    TRY(iroh_connection_accept_bi(connection, -1, &send, &recv));
    uint64_t bytes_sent = 0;
    uint8_t buf[4096];
    for (;;) {
        size_t n;
        TRY(iroh_recv_stream_read(recv, buf, sizeof buf, &n));
        if (n == 0)
            break;
        TRY(iroh_send_stream_write_all(send, buf, n));
        bytes_sent += n;
    }
    printf("Copied over %llu byte(s)\n", (unsigned long long)bytes_sent);
    fflush(stdout);
    TRY(iroh_send_stream_finish(send));
    iroh_connection_closed(connection, -1);
    iroh_send_stream_free(send);
    iroh_recv_stream_free(recv);
    return 0;
}

/* one thread per incoming connection, like the tokio::spawn in the guide */
static void *handle_incoming(void *arg)
{
    iroh_incoming *incoming = arg;
    iroh_connection *connection;
    if (iroh_incoming_accept(incoming, &connection) == IROH_OK) {
        echo(connection);
        iroh_connection_free(connection);
    }
    return NULL;
}

/* the accept loop: ends when iroh_endpoint_close makes accept fail. Like the guide's
 * advice to use a TaskTracker or JoinSet instead of bare tokio::spawn, it keeps its
 * handler threads and joins them before returning, so none outlives the endpoint. */
static void *accept_loop(void *arg)
{
    iroh_endpoint *endpoint = arg;
    iroh_incoming *incoming;
    pthread_t handlers[64];
    int n = 0;
    while (iroh_endpoint_accept(endpoint, -1, &incoming) == IROH_OK) {
        if (n == 64 || pthread_create(&handlers[n], NULL, handle_incoming, incoming) != 0)
            iroh_incoming_refuse(incoming);
        else
            n++;
    }
    for (int i = 0; i < n; i++)
        pthread_join(handlers[i], NULL);
    return NULL;
}

static int start_accept_side(iroh_endpoint **endpoint, pthread_t *loop)
{
    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    TRY(iroh_endpoint_builder_bind_addr(b, bind_addr));
    TRY(use_relays(b));
    // The accept side needs to opt-in to the protocols it accepts,
    // as any connection attempts that can't be found with a matching ALPN
    // will be rejected.
    TRY(iroh_endpoint_builder_alpn(b, ALPN));
    TRY(iroh_endpoint_bind(b, endpoint));
    iroh_endpoint_builder_free(b);
    // start a thread so that start_accept_side returns immediately
    if (pthread_create(loop, NULL, accept_loop, *endpoint) != 0)
        return IROH_ERR_IO;
    return IROH_OK;
}

static int connect_side(const iroh_endpoint_addr *addr)
{
    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    iroh_endpoint *endpoint;
    TRY(iroh_endpoint_builder_bind_addr(b, bind_addr));
    TRY(use_relays(b));
    TRY(iroh_endpoint_bind(b, &endpoint));
    iroh_endpoint_builder_free(b);
    iroh_connection *conn;
    TRY(iroh_endpoint_connect(endpoint, addr, ALPN, &conn));
    iroh_send_stream *send;
    iroh_recv_stream *recv;
    TRY(iroh_connection_open_bi(conn, &send, &recv));
    TRY(iroh_send_stream_write_all(send, "Hello, world!", 13));
    TRY(iroh_send_stream_finish(send));
    uint8_t *response;
    size_t len;
    TRY(iroh_recv_stream_read_to_end(recv, 1000, &response, &len));
    int same = len == 13 && memcmp(response, "Hello, world!", 13) == 0;
    free(response);
    iroh_send_stream_free(send);
    iroh_recv_stream_free(recv);
    iroh_connection_close(conn, 0, "bye!");
    iroh_connection_free(conn);
    iroh_endpoint_close(endpoint);
    iroh_endpoint_free(endpoint);
    return same ? IROH_OK : IROH_ERR_STATE;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        bind_addr = argv[1];
    if (argc > 2)
        relay = argv[2];
    iroh_endpoint *endpoint;
    pthread_t loop;
    TRY(start_accept_side(&endpoint, &loop));
    iroh_endpoint_addr *addr;
    iroh_endpoint_online(endpoint, 10000); /* the address carries the home relay then */
    TRY(iroh_endpoint_get_addr(endpoint, &addr));
    TRY(connect_side(addr));
    iroh_endpoint_addr_free(addr);
    // instead of router.shutdown(): close the endpoint, which ends the accept loop
    iroh_endpoint_close(endpoint);
    pthread_join(loop, NULL);
    iroh_endpoint_free(endpoint);
    return 0;
}
