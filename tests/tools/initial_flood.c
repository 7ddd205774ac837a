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
 * (default 5000; 0: as fast as the socket takes them), in batches of sendmmsg, and reads
 * what comes back. SIGTERM or SIGINT end it early. Prints one line at the end: "sent N
 * datagrams in S s; received R Retries and D other datagrams". Exit status 0, or 2 for
 * bad arguments. */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <iroh.h>

#include "initials.h"

#define DGRAM IR_FLOOD_DGRAM
#define BATCH 16

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

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
    ir_flood_hello_t hl;
    if (valid) {
        if (ir_flood_hello(alpn, &hl) != 0) {
            fprintf(stderr, "initial_flood: cannot make a ClientHello: %s\n", iroh_last_error());
            return 1;
        }
    }
    static uint8_t bufs[BATCH][DGRAM];
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    long long sent = 0, followed = 0, retries = 0, others = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    double t0 = now_s();
    while (!stop) {
        double el = now_s() - t0;
        if (count >= 0 ? sent >= count : el >= duration)
            break;
        /* what came back: Retries are counted (and followed, in retry mode, below) */
        int nf = 0;
        uint8_t in[1500];
        ssize_t got;
        while ((!follow || nf < BATCH) && (got = recv(fd, in, sizeof in, MSG_DONTWAIT)) > 0) {
            ir_pkt_hdr h;
            if (ir_pkt_parse(in, (size_t)got, 8, &h) != 0 || h.type != IR_PT_RETRY) {
                others++;
                continue;
            }
            retries++;
            if (follow && h.token_len <= 200) {
                ir_flood_valid(&hl, bufs[nf++], &h.scid, h.token, h.token_len);
                followed++;
            }
        }
        long long due = rate ? (long long)(el * (double)rate) + 1 : sent + BATCH;
        if (due <= sent && nf == 0) {
            struct timespec ts = {0, 500000};
            nanosleep(&ts, NULL);
            continue;
        }
        long long want = due - sent;
        if (count >= 0 && want > count - sent)
            want = count - sent;
        int n = want > BATCH ? BATCH : (int)want;
        if (n < nf)
            n = nf; /* clients following their Retry go first, then new ones */
        for (int k = 0; k < n; k++) {
            if (k < nf)
                ;
            else if (valid)
                ir_flood_valid(&hl, bufs[k], NULL, NULL, 0);
            else
                ir_flood_junk(bufs[k]);
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
    printf("; received %lld Retries and %lld other datagrams\n", retries, others);
    close(fd);
    return 0;
}
