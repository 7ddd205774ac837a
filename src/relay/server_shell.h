/* The relay server's epoll shell from the inside: the server record, shared by the shell
 * (server_shell.c) and the metrics listener it runs (server_metrics.c). */
#ifndef IR_RELAY_SERVER_SHELL_H
#define IR_RELAY_SERVER_SHELL_H

#include <signal.h>

#include <gnutls/gnutls.h>

#include "server_core.h"

/* A request to a side listener (the metrics or the captive-portal one): read the request
 * head, write one response, close. Both share the slots. */
#define METRICS_SLOTS 16
#define METRICS_HEAD_MAX 4096

typedef struct metrics_conn {
    int fd; /* -1: a free slot */
    int captive; /* accepted on the captive-portal listener */
    uint64_t deadline;
    size_t in_len;
    uint8_t in[METRICS_HEAD_MAX];
    char *out;
    size_t out_len, out_off;
} metrics_conn;

struct ir_relay_server {
    ir_relay_core *core;
    int epfd, lfd, evfd;
    int mfd; /* the metrics listener, -1: none */
    iroh_socket_addr mlocal;
    int cfd; /* the captive-portal listener (plain HTTP /generate_204), -1: none */
    iroh_socket_addr clocal;
    metrics_conn mc[METRICS_SLOTS];
    volatile sig_atomic_t stop, want_stats;
    iroh_socket_addr local;
    uint32_t max_conns;
    int listen_paused;
    uint64_t listen_resume_at;
    uint64_t refused;
    ir_relay_conn *grave;
    uint8_t *rbuf;
    gnutls_certificate_credentials_t cred; /* HTTPS when set */
};

/* ---- server_metrics.c: the side listeners -------------------------------------------- */

/* accepts on lfd, the metrics listener or (captive) the captive-portal one */
void ir_rs_metrics_accept(ir_relay_server *srv, int lfd, int captive, uint64_t now);
void ir_rs_metrics_event(ir_relay_server *srv, metrics_conn *m, uint32_t events);
/* p as a metrics connection of srv, or NULL when it is something else */
metrics_conn *ir_rs_as_metrics_conn(ir_relay_server *srv, void *p);
uint64_t ir_rs_metrics_timers(ir_relay_server *srv, uint64_t now);

#endif
