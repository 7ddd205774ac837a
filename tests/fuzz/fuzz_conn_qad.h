/* QUIC address discovery on top of fuzz_conn.c (included by it when FUZZ_CONN_QAD is
 * defined; see fuzz_qad.c). The first input byte picks the transport parameter of each
 * side (bits 0-1 the client's role, 2-3 the server's: 0 send, 1 receive, 2 both, 3 no
 * parameter) and bit 4 X.509 mode, the relay's QAD service (the server presents a
 * certificate, the client checks it and its name and has none); the rest is fuzz_conn's
 * script. Addresses are real IP addresses here (the client's are 192.0.2.1:1000,
 * [2001:db8::1]:2000, [::ffff:198.51.100.7]:3000 and a relay path), so that reports are
 * sent. Checked at the end: a side records an address only if it negotiated receiving
 * them; and when the server's frames are its own (nothing sealed by the fuzzer), what the
 * client records is one of its own addresses, the current one once the network settles. */
#include "fuzz_fixture.h"
#include "endpoint/relay_link.h"
#include "net/udp.h"

static ir_tls_identity *qad_server_x509, *qad_client_x509;

static void qad_setup(void)
{
    fx_make_cert();
    if (ir_tls_identity_new_x509_server(fx_cert_file, fx_key_file, &qad_server_x509) != IROH_OK ||
        ir_tls_identity_new_x509_client(fx_cert_file, &qad_client_x509) != IROH_OK)
        abort();
}

static unsigned qad_role(int server)
{
    return server ? (qad_mode >> 2) & 3 : qad_mode & 3;
}

static void qad_config(ir_conn_config *cfg, int server)
{
    unsigned role = qad_role(server);
    cfg->tp.has_observed_address = role != 3;
    cfg->tp.observed_address_role = role == 3 ? 0 : role;
    cfg->addr_of = ir_netaddr_to_socket_addr;
    if (QAD_X509) {
        cfg->identity = server ? qad_server_x509 : qad_client_x509;
        cfg->remote_id = NULL;
        cfg->tls_server_name = server ? NULL : "localhost";
    }
}

static void qad_ip(ir_netaddr *out, const char *text)
{
    iroh_socket_addr a;
    if (iroh_socket_addr_parse(text, &a) != IROH_OK)
        abort();
    ir_netaddr_from_socket_addr(out, &a);
}

static void qad_start(uint8_t mode)
{
    qad_mode = mode;
    qad_ip(&W.addr[0], "192.0.2.1:1000");
    qad_ip(&W.addr[1], "[2001:db8::1]:2000");
    qad_ip(&W.addr[2], "[::ffff:198.51.100.7]:3000");
    uint8_t id[32];
    memset(id, 0x77, 32);
    ir_netaddr_relay(&W.addr[3], 1, id);
    qad_ip(&W.server_addr, "203.0.113.5:443");
}

/* the address a report of path address a carries, as the receiver records it */
static int qad_expected(const ir_netaddr *a, iroh_socket_addr *out)
{
    if (ir_netaddr_to_socket_addr(a, out) != 0)
        return -1;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (out->family == 6 && memcmp(out->ip, mapped, 12) == 0) {
        out->family = 4;
        memmove(out->ip, out->ip + 12, 4);
        memset(out->ip + 4, 0, 12);
    }
    return 0;
}

static int qad_same(const iroh_socket_addr *a, const iroh_socket_addr *b)
{
    return a->family == b->family && a->port == b->port &&
           memcmp(a->ip, b->ip, a->family == 4 ? 4 : 16) == 0;
}

static void qad_check(void)
{
    unsigned cr = qad_role(0), sr = qad_role(1);
    int client_may = cr != 3 && sr != 3 && (cr == 1 || cr == 2) && (sr == 0 || sr == 2);
    int server_may = cr != 3 && sr != 3 && (sr == 1 || sr == 2) && (cr == 0 || cr == 2);
    iroh_socket_addr seen;
    /* only a side that negotiated receiving reports keeps one, whatever was sent */
    if (ir_conn_observed_addr(W.c[0], &seen) == 0 && !client_may)
        abort();
    iroh_socket_addr srv_seen;
    if (ir_conn_observed_addr(W.c[1], &srv_seen) == 0 && !server_may)
        abort();
    if (taint_s2c)
        return;
    if (ir_conn_observed_addr(W.c[0], &seen) == 0) {
        /* the server's own reports: one of the client's addresses */
        int known = 0;
        for (int i = 0; i < 3; i++) {
            iroh_socket_addr e;
            if (qad_expected(&W.addr[i], &e) == 0 && qad_same(&e, &seen))
                known = 1;
        }
        if (!known)
            abort();
    }
    if (!client_may || disturbed || taint_c2s)
        return;
    /* once the network settles, the client knows where the server sees it */
    for (int k = 0; k < 60 && both_established(); k++) {
        deliver_pending(4);
        uint64_t t0 = ir_conn_timeout(W.c[0]), t1 = ir_conn_timeout(W.c[1]);
        uint64_t t = t0 < t1 ? t0 : t1;
        if (t == UINT64_MAX || t > W.now + 2000 * NS_PER_MS)
            break;
        W.now = t > W.now ? t : W.now + NS_PER_MS;
        service_all();
    }
    iroh_socket_addr want;
    if (both_established() && qad_expected(ir_conn_path_addr(W.c[1]), &want) == 0 &&
        (ir_conn_observed_addr(W.c[0], &seen) != 0 || !qad_same(&seen, &want)))
        abort();
}
