/* The other half of examples/listen.c: connect to a ticket, send argv[2] (or stdin), print
 * what comes back, and close. argv[3]: ALPN; argv[4]: a relay URL or "none" (n0's relays). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <iroh.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: connect TICKET [MESSAGE] [ALPN] [RELAY_URL|none]\n");
        return 2;
    }
    const char *msg = argc > 2 ? argv[2] : "Hello, iroh!";
    const char *alpn = argc > 3 ? argv[3] : "iroh-example/echo/0";
    iroh_endpoint_addr *addr;
    if (iroh_endpoint_ticket_decode(argv[1], &addr) != IROH_OK) {
        fprintf(stderr, "connect: %s\n", iroh_last_error());
        return 2;
    }
    const char *relay = argc > 4 ? argv[4] : NULL; /* a URL, "none", or n0's relays */
    iroh_endpoint_builder *b = iroh_endpoint_builder_new();
    iroh_endpoint *ep;
    if ((relay && strcmp(relay, "none") == 0 &&
         iroh_endpoint_builder_relay_mode(b, IROH_RELAY_MODE_DISABLED)) ||
        (relay && strcmp(relay, "none") != 0 && iroh_endpoint_builder_relay_url(b, relay)) ||
        iroh_endpoint_bind(b, &ep) != IROH_OK) {
        fprintf(stderr, "connect: %s\n", iroh_last_error());
        return 1;
    }
    iroh_endpoint_builder_free(b);
    iroh_connection *conn;
    int rc = iroh_endpoint_connect(ep, addr, alpn, &conn);
    iroh_endpoint_addr_free(addr);
    if (rc != IROH_OK) {
        fprintf(stderr, "connect: %s: %s\n", iroh_strerror(rc), iroh_last_error());
        iroh_endpoint_free(ep);
        return 1;
    }
    iroh_send_stream *send = NULL;
    iroh_recv_stream *recv = NULL;
    uint8_t *reply = NULL;
    size_t len = 0;
    rc = iroh_connection_open_bi(conn, &send, &recv);
    if (rc == IROH_OK)
        rc = iroh_send_stream_write_all(send, msg, strlen(msg));
    if (rc == IROH_OK)
        rc = iroh_send_stream_finish(send);
    if (rc == IROH_OK)
        rc = iroh_recv_stream_read_to_end(recv, 16 << 20, &reply, &len);
    if (rc == IROH_OK)
        printf("%.*s\n", (int)len, (const char *)reply);
    else
        fprintf(stderr, "connect: %s: %s\n", iroh_strerror(rc), iroh_last_error());
    free(reply);
    iroh_send_stream_free(send);
    iroh_recv_stream_free(recv);
    iroh_connection_close(conn, 0, "bye!");
    iroh_connection_free(conn);
    iroh_endpoint_close(ep);
    iroh_endpoint_free(ep);
    return rc == IROH_OK ? 0 : 1;
}
