/* --metrics-addr IP:PORT: a small plain-HTTP server on its own thread that answers
 * GET /metrics (and GET /) with the endpoint's counters in the Prometheus / OpenMetrics
 * text format (iroh_endpoint_metrics_text); HEAD the same head without the body, other
 * paths 404, other methods 405. One request per connection. Up to MAX_CLIENTS
 * connections are read at once (one poll(2) loop), each with 2 s to send its request
 * head (at most 4 KiB, a buffer of its own): a slow or silent client costs its slot for
 * 2 s and no more, and never delays the others. With every slot taken, new connections
 * wait in the listen backlog until one frees. The answer (a few KiB, which the socket
 * buffer takes at once) is written in one go, at most 2 s (SO_SNDTIMEO). */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>

#include "apps/net_opts.h"

#define HEAD_MAX 4096
#define HEAD_TIMEOUT_MS 2000
#define MAX_CLIENTS 32

typedef struct client {
    int fd; /* -1: a free slot */
    uint64_t deadline;
    size_t len;
    char head[HEAD_MAX];
} client;

static struct metrics_server {
    int running;
    int fd;      /* the listening socket */
    int stop_fd; /* an eventfd: written by net_metrics_stop */
    iroh_endpoint *ep;
    pthread_t thread;
    client *clients; /* MAX_CLIENTS slots, while running */
} srv = {.fd = -1, .stop_fd = -1};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void respond(int c, int status, const char *reason, const char *type, const char *body,
                    size_t len, int with_body)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n", status, reason, type, len);
    if (write_all_fd(c, (const uint8_t *)head, (size_t)n) == 0 && len && with_body)
        write_all_fd(c, (const uint8_t *)body, len);
}

/* answers the complete request head in head */
static void serve(int c, char *head)
{
    char method[16], path[256];
    if (sscanf(head, "%15s %255s", method, path) != 2) {
        respond(c, 400, "Bad Request", "text/plain", "bad request\n", 12, 1);
        return;
    }
    char *q = strchr(path, '?');
    if (q)
        *q = 0;
    if (strcmp(path, "/metrics") != 0 && strcmp(path, "/") != 0) {
        respond(c, 404, "Not Found", "text/plain", "not found\n", 10, 1);
        return;
    }
    int is_head = strcmp(method, "HEAD") == 0;
    if (strcmp(method, "GET") != 0 && !is_head) {
        respond(c, 405, "Method Not Allowed", "text/plain", "method not allowed\n", 19, 1);
        return;
    }
    size_t need = 0;
    iroh_endpoint_metrics_text(srv.ep, NULL, 0, &need);
    char *text = need ? malloc(need) : NULL;
    if (!text || iroh_endpoint_metrics_text(srv.ep, text, need, NULL) != IROH_OK) {
        respond(c, 500, "Internal Server Error", "text/plain", "error\n", 6, 1);
        free(text);
        return;
    }
    /* HEAD: GET's head, its Content-Length included, without the body (RFC 9110 9.3.2) */
    respond(c, 200, "OK", "application/openmetrics-text; version=1.0.0; charset=utf-8", text,
            strlen(text), !is_head);
    free(text);
}

static void drop(client *k)
{
    close(k->fd);
    k->fd = -1;
}

/* more bytes of k's head: answered and closed once complete; closed on an error, the
 * end of the connection or a head over HEAD_MAX */
static void client_read(client *k)
{
    ssize_t n = recv(k->fd, k->head + k->len, HEAD_MAX - 1 - k->len, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        drop(k);
        return;
    }
    k->len += (size_t)n;
    k->head[k->len] = 0;
    if (strstr(k->head, "\r\n\r\n") || strstr(k->head, "\n\n")) {
        serve(k->fd, k->head);
        drop(k);
    } else if (k->len == HEAD_MAX - 1) {
        drop(k);
    }
}

static void *server_main(void *arg)
{
    (void)arg;
    client *cl = srv.clients;
    for (;;) {
        struct pollfd pf[2 + MAX_CLIENTS];
        int idx[MAX_CLIENTS];
        int n = 0, free_slot = -1;
        uint64_t now = now_ms(), next = UINT64_MAX;
        pf[n++] = (struct pollfd){.fd = srv.stop_fd, .events = POLLIN};
        for (int i = 0; i < MAX_CLIENTS; i++) {
            if (cl[i].fd < 0) {
                if (free_slot < 0)
                    free_slot = i;
                continue;
            }
            if (cl[i].deadline <= now) { /* too slow: its slot goes to the next */
                drop(&cl[i]);
                if (free_slot < 0)
                    free_slot = i;
                continue;
            }
            if (cl[i].deadline < next)
                next = cl[i].deadline;
            idx[n - 1] = i;
            pf[n++] = (struct pollfd){.fd = cl[i].fd, .events = POLLIN};
        }
        int nclients = n - 1;
        if (free_slot >= 0) /* all slots taken: new ones wait in the backlog */
            pf[n++] = (struct pollfd){.fd = srv.fd, .events = POLLIN};
        int timeout = next == UINT64_MAX ? -1 : (int)(next - now);
        if (poll(pf, (nfds_t)n, timeout) < 0 && errno != EINTR)
            break;
        if (pf[0].revents)
            break;
        for (int j = 0; j < nclients; j++)
            if (pf[1 + j].revents)
                client_read(&cl[idx[j]]);
        if (free_slot < 0 || !pf[n - 1].revents)
            continue;
        int c = accept4(srv.fd, NULL, NULL, SOCK_CLOEXEC); /* reads: MSG_DONTWAIT */
        if (c < 0) {
            if (errno == EMFILE || errno == ENFILE)
                usleep(100000); /* no descriptor now: not a busy loop */
            continue;
        }
        /* the answer is written blocking, 2 s at most for a reader that stalls */
        struct timeval tv = {.tv_sec = HEAD_TIMEOUT_MS / 1000};
        setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        cl[free_slot].fd = c;
        cl[free_slot].len = 0;
        cl[free_slot].deadline = now_ms() + HEAD_TIMEOUT_MS;
    }
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (cl[i].fd >= 0)
            drop(&cl[i]);
    return NULL;
}

int net_metrics_start(const net_opts *o, iroh_endpoint *ep)
{
    if (!o->metrics_addr || srv.running)
        return 0;
    iroh_socket_addr a;
    if (iroh_socket_addr_parse(o->metrics_addr, &a) != IROH_OK) { /* net_opt checked it */
        fprintf(stderr, "iroh-c: --metrics-addr: '%s' is not an IP:PORT address\n", o->metrics_addr);
        return EXIT_USAGE;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    if (a.family == 4) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(a.port);
        memcpy(&s4->sin_addr, a.ip, 4);
        sl = sizeof *s4;
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(a.port);
        memcpy(&s6->sin6_addr, a.ip, 16);
        sl = sizeof *s6;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 16) != 0) {
        fprintf(stderr, "iroh-c: --metrics-addr %s: %s\n", o->metrics_addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        return 1;
    }
    srv.fd = fd;
    srv.ep = ep;
    srv.clients = malloc(MAX_CLIENTS * sizeof *srv.clients);
    for (int i = 0; srv.clients && i < MAX_CLIENTS; i++)
        srv.clients[i].fd = -1;
    /* a client gone before its answer: EPIPE, not the process's death */
    signal(SIGPIPE, SIG_IGN);
    srv.stop_fd = eventfd(0, EFD_CLOEXEC);
    if (!srv.clients || srv.stop_fd < 0 ||
        pthread_create(&srv.thread, NULL, server_main, NULL) != 0) {
        fprintf(stderr, "iroh-c: --metrics-addr: cannot start the server: %s\n",
                srv.clients ? strerror(errno) : "out of memory");
        close(fd);
        if (srv.stop_fd >= 0)
            close(srv.stop_fd);
        free(srv.clients);
        srv.clients = NULL;
        srv.fd = srv.stop_fd = -1;
        return 1;
    }
    srv.running = 1;
    /* the address bound (port 0: the kernel's choice), so a scraper can find it */
    struct sockaddr_storage got;
    socklen_t gl = sizeof got;
    iroh_socket_addr ga;
    char text[IROH_SOCKET_ADDR_LEN];
    if (getsockname(fd, (struct sockaddr *)&got, &gl) == 0) {
        memset(&ga, 0, sizeof ga);
        if (got.ss_family == AF_INET) {
            const struct sockaddr_in *s4 = (const struct sockaddr_in *)&got;
            ga.family = 4;
            memcpy(ga.ip, &s4->sin_addr, 4);
            ga.port = ntohs(s4->sin_port);
        } else {
            const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&got;
            ga.family = 6;
            memcpy(ga.ip, &s6->sin6_addr, 16);
            ga.port = ntohs(s6->sin6_port);
        }
        if (iroh_socket_addr_to_string(&ga, text, sizeof text) == IROH_OK)
            fprintf(stderr, "iroh-c: metrics at http://%s/metrics\n", text);
    }
    return 0;
}

void net_metrics_stop(void)
{
    if (!srv.running)
        return;
    uint64_t one = 1;
    ssize_t n = write(srv.stop_fd, &one, sizeof one);
    (void)n;
    pthread_join(srv.thread, NULL);
    close(srv.fd);
    close(srv.stop_fd);
    free(srv.clients);
    srv.clients = NULL;
    srv.fd = srv.stop_fd = -1;
    srv.ep = NULL;
    srv.running = 0;
}
