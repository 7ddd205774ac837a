/* The relay's side of QUIC address discovery (spec relay.md 4.3): a UDP socket (default
 * port 7842) where clients open QUIC connections with ALPN /iroh-qad/0, authenticate the
 * relay by its X.509 certificate (the one of its https listener), and are told the
 * address the relay sees them at (OBSERVED_ADDRESS), again whenever it changes. The
 * server allows no streams and keeps each connection until the client closes it or it
 * idles out. Clients prove their address with a Retry first, and at most 20000
 * connections are kept. Runs the endpoint core (ep.h) on a loop of its own. */
#ifndef IR_ENDPOINT_QAD_H
#define IR_ENDPOINT_QAD_H

#include <stdint.h>

#include "iroh.h"

#define IR_QAD_DEFAULT_PORT 7842
#define IR_QAD_ALPN "/iroh-qad/0"

typedef struct ir_qad_server ir_qad_server;

typedef struct ir_qad_stats {
    uint64_t connections; /* handshakes started */
    uint64_t open;        /* connections now */
} ir_qad_stats;

/* listen: "IP:PORT"; cert_file / key_file: PEM. IROH_ERR_INVALID_ADDR, IROH_ERR_IO (the
 * port is taken), IROH_ERR_INVALID_ARGUMENT (certificate or key unreadable). */
int ir_qad_server_new(const char *listen, const char *cert_file, const char *key_file,
                      ir_qad_server **out);
void ir_qad_server_local_addr(const ir_qad_server *q, iroh_socket_addr *out);
/* Serves until ir_qad_server_stop; returns IROH_OK. */
int ir_qad_server_run(ir_qad_server *q);
/* From any thread or a signal handler. */
void ir_qad_server_stop(ir_qad_server *q);
void ir_qad_server_stats(const ir_qad_server *q, ir_qad_stats *out);
void ir_qad_server_free(ir_qad_server *q);

#endif
