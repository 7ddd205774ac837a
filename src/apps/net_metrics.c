/* --metrics-addr IP:PORT: a small plain-HTTP server on its own thread that answers
 * GET /metrics (and GET /) with the endpoint's counters in the Prometheus / OpenMetrics
 * text format (iroh_endpoint_metrics_text); other paths 404, other methods 405. One
 * request per connection, served in turn: a client gets 2 s to send its request head
 * (at most 4 KiB), so a slow or silent one delays a scrape by that much at most and
 * costs no memory beyond the head. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
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

static struct metrics_server {
    int running;
    int fd;      /* the listening socket */
    int stop_fd; /* an eventfd: written by net_metrics_stop */
    iroh_endpoint *ep;
    pthread_t thread;
} srv = {.fd = -1, .stop_fd = -1};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* the request head of c, until its blank line: 0, or -1 (timeout, too long, closed, stop) */
static int read_head(int c, char *buf, size_t cap)
{
    size_t len = 0;
    uint64_t end = now_ms() + HEAD_TIMEOUT_MS;
    for (;;) {
        uint64_t t = now_ms();
        if (t >= end)
            return -1;
        struct pollfd pf[2] = {{.fd = c, .events = POLLIN}, {.fd = srv.stop_fd, .events = POLLIN}};
        if (poll(pf, 2, (int)(end - t)) < 0 && errno != EINTR)
            return -1;
        if (pf[1].revents)
            return -1;
        if (!pf[0].revents)
            continue;
        ssize_t n = recv(c, buf + len, cap - 1 - len, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return -1;
        if (n > 0) {
            len += (size_t)n;
            buf[len] = 0;
            if (strstr(buf, "\r\n\r\n") || strstr(buf, "\n\n"))
                return 0;
            if (len == cap - 1)
                return -1;
        }
    }
}

/* send(2) until done, never raising SIGPIPE: 0, or -1 */
static int send_all(int c, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(c, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void respond(int c, int status, const char *reason, const char *type, const char *body,
                    size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n", status, reason, type, len);
    if (send_all(c, head, (size_t)n) == 0 && len)
        send_all(c, body, len);
}

static void serve(int c)
{
    char head[HEAD_MAX];
    if (read_head(c, head, sizeof head) != 0)
        return;
    char method[16], path[256];
    if (sscanf(head, "%15s %255s", method, path) != 2) {
        respond(c, 400, "Bad Request", "text/plain", "bad request\n", 12);
        return;
    }
    char *q = strchr(path, '?');
    if (q)
        *q = 0;
    if (strcmp(path, "/metrics") != 0 && strcmp(path, "/") != 0) {
        respond(c, 404, "Not Found", "text/plain", "not found\n", 10);
        return;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        respond(c, 405, "Method Not Allowed", "text/plain", "method not allowed\n", 19);
        return;
    }
    size_t need = 0;
    iroh_endpoint_metrics_text(srv.ep, NULL, 0, &need);
    char *text = need ? malloc(need) : NULL;
    if (!text || iroh_endpoint_metrics_text(srv.ep, text, need, NULL) != IROH_OK) {
        respond(c, 500, "Internal Server Error", "text/plain", "error\n", 6);
        free(text);
        return;
    }
    size_t len = strlen(text);
    respond(c, 200, "OK", "application/openmetrics-text; version=1.0.0; charset=utf-8", text,
            strcmp(method, "HEAD") == 0 ? 0 : len);
    free(text);
}

static void *server_main(void *arg)
{
    (void)arg;
    for (;;) {
        struct pollfd pf[2] = {{.fd = srv.fd, .events = POLLIN}, {.fd = srv.stop_fd, .events = POLLIN}};
        if (poll(pf, 2, -1) < 0 && errno != EINTR)
            break;
        if (pf[1].revents)
            break;
        if (!pf[0].revents)
            continue;
        int c = accept4(srv.fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EMFILE || errno == ENFILE)
                usleep(100000); /* no descriptor now: not a busy loop */
            continue;
        }
        struct timeval tv = {.tv_sec = HEAD_TIMEOUT_MS / 1000};
        setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv); /* a reader that stalls */
        serve(c);
        close(c);
    }
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
    srv.stop_fd = eventfd(0, EFD_CLOEXEC);
    if (srv.stop_fd < 0 || pthread_create(&srv.thread, NULL, server_main, NULL) != 0) {
        fprintf(stderr, "iroh-c: --metrics-addr: cannot start the server: %s\n", strerror(errno));
        close(fd);
        if (srv.stop_fd >= 0)
            close(srv.stop_fd);
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
    srv.fd = srv.stop_fd = -1;
    srv.ep = NULL;
    srv.running = 0;
}
