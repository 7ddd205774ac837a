#include "endpoint/qad.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "endpoint/ep.h"

struct ir_qad_server {
    ir_ep *ep;
    int stop_fd;
    atomic_ullong connections, open;
};

int ir_qad_server_new(const char *listen, const char *cert_file, const char *key_file,
                      ir_qad_server **out)
{
    iroh_socket_addr bind;
    if (!listen || iroh_socket_addr_parse(listen, &bind) != IROH_OK)
        return ir_fail(IROH_ERR_INVALID_ADDR, "address discovery: '%s' is not IP:PORT",
                       listen ? listen : "");
    ir_qad_server *q = calloc(1, sizeof *q);
    if (!q)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    q->stop_fd = -1;
    static const uint8_t alpn[] = IR_QAD_ALPN;
    const uint8_t *alpns[1] = {alpn};
    size_t lens[1] = {sizeof alpn - 1};
    ir_ep_config cfg;
    memset(&cfg, 0, sizeof cfg);
    /* the key only seeds reset tokens and Retry: the certificate is the identity */
    int rc = iroh_secret_key_generate(&cfg.key);
    if (rc != IROH_OK)
        goto fail;
    cfg.alpns = alpns;
    cfg.alpn_lens = lens;
    cfg.n_alpns = 1;
    if (bind.family == 4)
        cfg.bind4 = bind;
    else
        cfg.bind6 = bind;
    cfg.x509_cert_file = cert_file;
    cfg.x509_key_file = key_file;
    cfg.qad_server = 1;
    cfg.idle_timeout_ms = 35000; /* as the clients' */
    /* anyone may send Initials here: no state before the client proves its address
     * (Retry), and a bound on connections */
    cfg.retry = 1;
    cfg.max_connections = 20000;
    if ((rc = ir_ep_new(&cfg, &q->ep)) != IROH_OK)
        goto fail;
    q->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (q->stop_fd < 0) {
        rc = ir_fail(IROH_ERR_IO, "eventfd: %s", strerror(errno));
        goto fail;
    }
    *out = q;
    return IROH_OK;
fail:
    ir_qad_server_free(q);
    return rc;
}

void ir_qad_server_local_addr(const ir_qad_server *q, iroh_socket_addr *out)
{
    ir_ep_addrs(q->ep, out, 1);
}

int ir_qad_server_run(ir_qad_server *q)
{
    for (;;) {
        struct pollfd stop = {q->stop_fd, POLLIN, 0};
        if (ir_ep_poll(q->ep, 1000, &stop, 1) > 0)
            break;
        while (ir_ep_accept(q->ep))
            q->connections++;
        /* events are of no use here; closed connections are forgotten */
        size_t n = ir_ep_conn_count(q->ep);
        for (size_t i = n; i-- > 0;) {
            ir_conn *c = ir_ep_conn_at(q->ep, i);
            ir_event ev;
            while (ir_conn_poll_event(c, &ev)) {
            }
            if (ir_conn_get_state(c) == IR_CONN_CLOSED)
                ir_ep_release_quiet(q->ep, c, 1);
        }
        q->open = ir_ep_conn_count(q->ep);
    }
    /* shutting down: tell the clients */
    size_t n = ir_ep_conn_count(q->ep);
    for (size_t i = n; i-- > 0;)
        ir_ep_release(q->ep, ir_ep_conn_at(q->ep, i));
    q->open = 0;
    return IROH_OK;
}

void ir_qad_server_stop(ir_qad_server *q)
{
    uint64_t one = 1;
    ssize_t n = write(q->stop_fd, &one, sizeof one);
    (void)n;
}

void ir_qad_server_stats(const ir_qad_server *q, ir_qad_stats *out)
{
    out->connections = q->connections;
    out->open = q->open;
}

void ir_qad_server_free(ir_qad_server *q)
{
    if (!q)
        return;
    ir_ep_free(q->ep);
    if (q->stop_fd >= 0)
        close(q->stop_fd);
    free(q);
}
