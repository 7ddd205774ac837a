/* The echo protocol of iroh's guide "Writing your own Protocol", line by line in C.
 * Both sides run in main(): a Router accepts connections for ALPN iroh-example/echo/0 and
 * hands each to echo_accept on its own thread; the connecting side sends "Hello, world!",
 * reads the echo and closes.
 *
 * Optional: argv[1] is an address to bind the endpoints to (default 127.0.0.1:0), argv[2]
 * a relay URL or "none" (default: n0's public relays, as the guide). The guide also
 * publishes addresses through n0's DNS discovery, which iroh-c does not do yet. */
#include <assert.h>
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

/* impl ProtocolHandler for Echo: called on a new thread for each connection. */
static int echo_accept(void *ctx, iroh_connection *connection)
{
    (void)ctx;
    // We can get the remote's endpoint id from the connection.
    iroh_endpoint_id endpoint_id;
    char id[IROH_ID_HEX_LEN];
    iroh_connection_remote_id(connection, &endpoint_id);
    iroh_endpoint_id_to_hex(&endpoint_id, id, sizeof id);
    printf("accepted connection from %s\n", id);
    fflush(stdout);

    // Our protocol is a simple request-response protocol, so we expect the
    // connecting peer to open a single bi-directional stream.
    iroh_send_stream *send;
    iroh_recv_stream *recv;
    TRY(iroh_connection_accept_bi(connection, -1, &send, &recv));

    // Echo any bytes received back directly.
    // This will keep copying until the sender signals the end of data on the stream.
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

    // By calling `finish` on the send stream we signal that we will not send anything
    // further, which makes the receive stream on the other end terminate.
    TRY(iroh_send_stream_finish(send));

    // Wait until the remote closes the connection, which it does once it
    // received the response.
    iroh_connection_closed(connection, -1);

    iroh_send_stream_free(send);
    iroh_recv_stream_free(recv);
    return 0; /* the router frees the connection */
}

static int start_accept_side(iroh_router **router)
{
    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    iroh_endpoint *endpoint;
    TRY(iroh_endpoint_builder_bind_addr(b, bind_addr));
    TRY(use_relays(b));
    // The router accepts connections for the ALPNs of its handlers.
    TRY(iroh_endpoint_builder_alpn(b, ALPN));
    TRY(iroh_endpoint_bind(b, &endpoint));
    iroh_endpoint_builder_free(b);

    iroh_router_builder *rb = iroh_router_builder_new(endpoint);
    // This makes the router handle incoming connections with our ALPN via echo_accept!
    TRY(iroh_router_builder_accept(rb, ALPN, echo_accept, NULL));
    TRY(iroh_router_spawn(rb, router));
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

    // Open a connection to the accepting endpoint
    iroh_connection *conn;
    TRY(iroh_endpoint_connect(endpoint, addr, ALPN, &conn));

    // Open a bidirectional QUIC stream
    iroh_send_stream *send;
    iroh_recv_stream *recv;
    TRY(iroh_connection_open_bi(conn, &send, &recv));

    // Send some data to be echoed
    TRY(iroh_send_stream_write_all(send, "Hello, world!", 13));

    // Signal the end of data for this particular stream
    TRY(iroh_send_stream_finish(send));

    // Receive the echo, but limit reading up to maximum 1000 bytes
    uint8_t *response;
    size_t len;
    TRY(iroh_recv_stream_read_to_end(recv, 1000, &response, &len));
    assert(len == 13 && memcmp(response, "Hello, world!", 13) == 0);
    free(response);

    // Explicitly close the whole connection.
    iroh_send_stream_free(send);
    iroh_recv_stream_free(recv);
    iroh_connection_close(conn, 0, "bye!");
    iroh_connection_free(conn);

    // The above call only queues a close message to be sent.
    // iroh_endpoint_close sends it out before it returns.
    iroh_endpoint_close(endpoint);
    iroh_endpoint_free(endpoint);
    return IROH_OK;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        bind_addr = argv[1];
    if (argc > 2)
        relay = argv[2];
    iroh_router *router;
    TRY(start_accept_side(&router));
    iroh_endpoint_addr *endpoint_addr;
    // Wait (a little) for the home relay, so that the address carries it too.
    iroh_endpoint_online(iroh_router_endpoint(router), 10000);
    TRY(iroh_endpoint_get_addr(iroh_router_endpoint(router), &endpoint_addr));

    TRY(connect_side(endpoint_addr));
    iroh_endpoint_addr_free(endpoint_addr);

    // This makes sure the endpoint in the router is closed properly and connections close
    // gracefully
    TRY(iroh_router_shutdown(router));
    iroh_router_free(router);
    return 0;
}
