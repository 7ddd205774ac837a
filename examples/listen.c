/* The smallest useful listener: prints its ticket, then echoes the first bidirectional
 * stream of each connection on ALPN argv[1] (default iroh-example/echo/0), forever.
 * argv[2]: bind address (0.0.0.0:0); argv[3]: a relay URL or "none" (n0's relays).
 * Pair it with examples/connect.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <iroh.h>

int main(int argc, char **argv)
{
    const char *alpn = argc > 1 ? argv[1] : "iroh-example/echo/0";
    const char *bind = argc > 2 ? argv[2] : "0.0.0.0:0";
    const char *relay = argc > 3 ? argv[3] : NULL; /* a URL, "none", or n0's relays */
    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    iroh_endpoint *ep;
    if ((relay && strcmp(relay, "none") == 0 &&
         iroh_endpoint_builder_relay_mode(b, IROH_RELAY_MODE_DISABLED)) ||
        (relay && strcmp(relay, "none") != 0 && iroh_endpoint_builder_relay_url(b, relay)) ||
        iroh_endpoint_builder_alpn(b, alpn) || iroh_endpoint_builder_bind_addr(b, bind) ||
        iroh_endpoint_bind(b, &ep)) {
        fprintf(stderr, "listen: %s\n", iroh_last_error());
        return 1;
    }
    iroh_endpoint_builder_free(b);
    iroh_endpoint_online(ep, 10000); /* the ticket carries the home relay then */

    iroh_endpoint_addr *addr;
    char ticket[1024];
    iroh_endpoint_get_addr(ep, &addr);
    iroh_endpoint_ticket_encode(addr, ticket, sizeof ticket, NULL);
    iroh_endpoint_addr_free(addr);
    printf("%s\n", ticket);
    fflush(stdout);

    iroh_incoming *inc;
    while (iroh_endpoint_accept(ep, -1, &inc) == IROH_OK) {
        iroh_connection *conn;
        if (iroh_incoming_accept(inc, &conn) != IROH_OK)
            continue;
        iroh_send_stream *send;
        iroh_recv_stream *recv;
        if (iroh_connection_accept_bi(conn, 10000, &send, &recv) == IROH_OK) {
            uint8_t *data;
            size_t len;
            if (iroh_recv_stream_read_to_end(recv, 16 << 20, &data, &len) == IROH_OK) {
                iroh_send_stream_write_all(send, data, len);
                iroh_send_stream_finish(send);
                free(data);
            }
            iroh_send_stream_free(send);
            iroh_recv_stream_free(recv);
            iroh_connection_closed(conn, 10000); /* the reader closes (the echo guide's rule) */
        }
        iroh_connection_free(conn);
    }
    iroh_endpoint_free(ep);
    return 0;
}
