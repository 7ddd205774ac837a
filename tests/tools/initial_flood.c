/* A flood of QUIC client Initials at one UDP address, for the endpoint's flood tests and
 * by hand:
 *
 *   initial_flood IP:PORT [--mode junk|valid] [--count N] [--rate PER_SEC]
 *                 [--duration SECS] [--alpn ALPN]
 *
 * junk:  1200-byte datagrams with a valid version-1 Initial long header (a fresh random
 *        DCID each, a length field that fits) and a random payload: nothing decrypts.
 * valid: real client Initials, each under the Initial keys of a fresh random DCID, all
 *        carrying one real ClientHello (offering --alpn, default "flood/0"); the sender
 *        never answers, so every one is a client that starts a handshake and goes away.
 * retry: the same, and every Retry that comes back is followed at once (the Initial again
 *        with its token): clients that prove their address and then go away.
 *
 * Sends --count datagrams (default 20000), or for --duration seconds, at --rate per second
 * (default 5000; 0: as fast as the socket takes them), in batches of sendmmsg. Prints one
 * line: "sent N datagrams in S s". Exit status 0, or 2 for bad arguments. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <iroh.h>

#include "base/util.h"
#include "crypto/crypto.h"
#include "quic/conn.h"
#include "quic/packet.h"
#include "tls/tls.h"

#define DGRAM 1200
#define BATCH 16

static _Noreturn void usage(const char *why)
{
    fprintf(stderr, "initial_flood: %s\n"
                    "usage: initial_flood IP:PORT [--mode junk|valid] [--count N] "
                    "[--rate PER_SEC] [--duration SECS] [--alpn ALPN]\n", why);
    exit(2);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* a version-1 Initial header with a random DCID, no token and a 2-byte length that covers
 * the rest of the datagram; returns the header length (up to the packet number) */
static size_t junk_initial(uint8_t *p)
{
    ir_random_bytes(NULL, p, DGRAM);
    size_t o = 0;
    p[o++] = (uint8_t)(0xc0 | (p[0] & 0x0f)); /* long header, fixed bit, Initial */
    p[o++] = 0;
    p[o++] = 0;
    p[o++] = 0;
    p[o++] = 1;
    p[o++] = 8; /* DCID: 8 random bytes */
    o += 8;
    p[o++] = 8; /* SCID: 8 random bytes */
    o += 8;
    p[o++] = 0; /* no token */
    size_t length = DGRAM - o - 2;
    p[o++] = (uint8_t)(0x40 | (length >> 8));
    p[o++] = (uint8_t)length;
    return o;
}

/* The plaintext of a real client's first Initial (its CRYPTO frame with the ClientHello,
 * then padding) and the SCID it used. */
typedef struct hello {
    uint8_t frames[DGRAM];
    size_t len;
    ir_cid scid;
} hello;

static void make_hello(const char *alpn, hello *out)
{
    iroh_secret_key key, peer;
    iroh_endpoint_id peer_id;
    ir_tls_identity *ident;
    if (iroh_secret_key_generate(&key) != IROH_OK || iroh_secret_key_generate(&peer) != IROH_OK ||
        ir_tls_identity_new(&key, &ident) != IROH_OK) {
        fprintf(stderr, "initial_flood: cannot make a TLS identity: %s\n", iroh_last_error());
        exit(1);
    }
    iroh_secret_key_public(&peer, &peer_id);
    const uint8_t *alpns[1] = {(const uint8_t *)alpn};
    size_t lens[1] = {strlen(alpn)};
    ir_conn_config cfg;
    ir_conn_config_defaults(&cfg);
    cfg.identity = ident;
    cfg.alpns = alpns;
    cfg.alpn_lens = lens;
    cfg.n_alpns = 1;
    cfg.remote_id = &peer_id;
    cfg.random = ir_random_bytes;
    ir_netaddr to = {0};
    to.len = 1;
    ir_conn *c;
    uint8_t d[1500];
    ir_netaddr dst;
    size_t n;
    if (ir_conn_client_new(&cfg, &to, 0, &c) != IROH_OK ||
        (n = ir_conn_send(c, d, sizeof d, &dst, 0)) == 0) {
        fprintf(stderr, "initial_flood: no first flight: %s\n", iroh_last_error());
        exit(1);
    }
    ir_pkt_hdr h;
    ir_pkt_keys ck, sk;
    uint64_t pn;
    size_t pn_len;
    const uint8_t *payload;
    size_t plen;
    if (ir_pkt_parse(d, n, 8, &h) != 0 || h.type != IR_PT_INITIAL ||
        ir_initial_keys(h.dcid.data, h.dcid.len, &ck, &sk) != 0 ||
        ir_pkt_unprotect_header(d, &h, &ck.hp, UINT64_MAX, &pn, &pn_len) != 0 ||
        ir_pkt_decrypt(d, &h, pn_len, &ck.aead, 0, pn, &payload, &plen) != 0 || plen > DGRAM) {
        fprintf(stderr, "initial_flood: cannot read our own first Initial\n");
        exit(1);
    }
    memcpy(out->frames, payload, plen);
    out->len = plen;
    out->scid = h.scid;
    ir_pkt_keys_free(&ck);
    ir_pkt_keys_free(&sk);
    ir_conn_free(c);
    ir_tls_identity_free(ident);
}

/* the ClientHello again under the Initial keys of dcid (NULL: a new random one), with a
 * token if one is given; 1200 bytes */
static void valid_initial(const hello *hl, uint8_t *p, const ir_cid *to, const uint8_t *token,
                          size_t token_len)
{
    ir_cid dcid;
    if (to) {
        dcid = *to;
    } else {
        dcid.len = 8;
        ir_random_bytes(NULL, dcid.data, dcid.len);
    }
    size_t lo;
    size_t hdr = ir_pkt_write_long(p, DGRAM, IR_PT_INITIAL, IR_QUIC_V1, &dcid, &hl->scid, token,
                                   token_len, 0, 4, &lo);
    size_t room = DGRAM - hdr - IR_AEAD_TAG_LEN;
    size_t plen = hl->len < room ? hl->len : room;
    memcpy(p + hdr, hl->frames, plen);
    memset(p + hdr + plen, 0, room - plen); /* PADDING */
    ir_pkt_keys ck, sk;
    if (ir_initial_keys(dcid.data, dcid.len, &ck, &sk) != 0) {
        fprintf(stderr, "initial_flood: initial keys\n");
        exit(1);
    }
    ir_pkt_protect(p, hdr, 4, lo, room, &ck, 0, 0);
    ir_pkt_keys_free(&ck);
    ir_pkt_keys_free(&sk);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage("an address is needed");
    const char *mode = "junk", *alpn = "flood/0";
    long long count = 20000, rate = 5000;
    double duration = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            usage("an option lacks its value");
        const char *v = argv[++i];
        char *end;
        if (strcmp(a, "--mode") == 0) {
            mode = v;
        } else if (strcmp(a, "--alpn") == 0) {
            alpn = v;
        } else if (strcmp(a, "--count") == 0) {
            count = strtoll(v, &end, 10);
            if (*end || count < 0)
                usage("bad --count");
        } else if (strcmp(a, "--rate") == 0) {
            rate = strtoll(v, &end, 10);
            if (*end || rate < 0)
                usage("bad --rate");
        } else if (strcmp(a, "--duration") == 0) {
            duration = strtod(v, &end);
            if (*end || duration <= 0)
                usage("bad --duration");
            count = -1;
        } else {
            usage("unknown option");
        }
    }
    int follow = strcmp(mode, "retry") == 0;
    int valid = follow || strcmp(mode, "valid") == 0;
    if (!valid && strcmp(mode, "junk") != 0)
        usage("--mode is junk, valid or retry");
    iroh_socket_addr to;
    if (iroh_socket_addr_parse(argv[1], &to) != IROH_OK)
        usage("bad address");
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    if (to.family == 4) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(to.port);
        memcpy(&s4->sin_addr, to.ip, 4);
        sl = sizeof *s4;
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(to.port);
        memcpy(&s6->sin6_addr, to.ip, 16);
        sl = sizeof *s6;
    }
    int fd = socket(ss.ss_family, SOCK_DGRAM, 0);
    if (fd < 0) {
        perror("initial_flood: socket");
        return 1;
    }
    hello hl;
    if (valid)
        make_hello(alpn, &hl);
    static uint8_t bufs[BATCH][DGRAM];
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    long long sent = 0, followed = 0;
    double t0 = now_s();
    for (;;) {
        double el = now_s() - t0;
        if (count >= 0 ? sent >= count : el >= duration)
            break;
        long long due = rate ? (long long)(el * (double)rate) + 1 : sent + BATCH;
        if (due <= sent) {
            struct timespec ts = {0, 500000};
            nanosleep(&ts, NULL);
            continue;
        }
        long long want = due - sent;
        if (count >= 0 && want > count - sent)
            want = count - sent;
        int n = want > BATCH ? BATCH : (int)want;
        /* Retries that came back go first (retry mode), then new clients */
        int nf = 0;
        while (follow && nf < n) {
            uint8_t in[1500];
            ssize_t got = recv(fd, in, sizeof in, MSG_DONTWAIT);
            if (got <= 0)
                break;
            ir_pkt_hdr h;
            if (ir_pkt_parse(in, (size_t)got, 8, &h) != 0 || h.type != IR_PT_RETRY ||
                h.token_len > 200)
                continue;
            valid_initial(&hl, bufs[nf++], &h.scid, h.token, h.token_len);
            followed++;
        }
        for (int k = 0; k < n; k++) {
            if (k < nf)
                ;
            else if (valid)
                valid_initial(&hl, bufs[k], NULL, NULL, 0);
            else
                junk_initial(bufs[k]);
            iov[k].iov_base = bufs[k];
            iov[k].iov_len = DGRAM;
            memset(&msgs[k], 0, sizeof msgs[k]);
            msgs[k].msg_hdr.msg_name = &ss;
            msgs[k].msg_hdr.msg_namelen = sl;
            msgs[k].msg_hdr.msg_iov = &iov[k];
            msgs[k].msg_hdr.msg_iovlen = 1;
        }
        int r = sendmmsg(fd, msgs, (unsigned)n, 0);
        if (r < 0) {
            if (errno == EAGAIN || errno == ENOBUFS || errno == ECONNREFUSED || errno == EINTR)
                continue;
            perror("initial_flood: sendmmsg");
            return 1;
        }
        sent += r;
    }
    printf("sent %lld datagrams in %.2f s", sent, now_s() - t0);
    if (follow)
        printf(" (%lld of them following a Retry)", followed);
    printf("\n");
    close(fd);
    return 0;
}
