/* A small DNS client for the dns-server tests (no dig on these machines), on ldns:
 *
 *   dns_query [--tcp] [--edns SIZE] [--id N] IP:PORT NAME TYPE
 *   dns_query [--tcp] --raw HEX IP:PORT          (sends these bytes as the message)
 *   dns_query --parse FILE                       (prints a response read from FILE)
 *   dns_query --hex NAME TYPE                    (prints a query's bytes in hex, id 0)
 *
 * Prints one line "rcode=NAME tc=0|1 aa=0|1 id=N qd=N an=N ns=N ar=N size=BYTES", then the
 * answer and authority records one per line (ldns's text form, owner lowercased).
 * Exits 0 when an answer came, 3 when none came within 2 s, 1 when it does not parse, 2 on
 * bad usage. */
#include <arpa/inet.h>
#include <ctype.h>
#include <ldns/ldns.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *sl)
{
    char host[128];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof host)
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    int port = atoi(colon + 1);
    memset(ss, 0, sizeof *ss);
    char *h = host;
    if (h[0] == '[') {
        h++;
        h[strlen(h) - 1] = 0;
    }
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, h, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *sl = sizeof *a4;
        return 0;
    }
    if (inet_pton(AF_INET6, h, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *sl = sizeof *a6;
        return 0;
    }
    return -1;
}

static int wait_in(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 2000) == 1;
}

static long read_full(int fd, uint8_t *b, size_t n)
{
    size_t got = 0;
    while (got < n) {
        if (!wait_in(fd))
            return -1;
        ssize_t r = recv(fd, b + got, n - got, 0);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return (long)got;
}

static int print_answer(const uint8_t *ans, long n);

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--parse")) {
        static uint8_t b[65536];
        FILE *f = fopen(argv[2], "rb");
        if (!f)
            return 2;
        long n = (long)fread(b, 1, sizeof b, f);
        fclose(f);
        return print_answer(b, n);
    }
    if (argc == 4 && !strcmp(argv[1], "--hex")) {
        ldns_pkt *p = NULL;
        uint8_t *w;
        size_t wl;
        if (ldns_pkt_query_new_frm_str(&p, argv[2], ldns_get_rr_type_by_name(argv[3]), LDNS_RR_CLASS_IN, 0) !=
                LDNS_STATUS_OK ||
            ldns_pkt2wire(&w, p, &wl) != LDNS_STATUS_OK)
            return 2;
        for (size_t k = 0; k < wl; k++)
            printf("%02x", w[k]);
        printf("\n");
        return 0;
    }
    int tcp = 0, edns = -1, id = 4660;
    const char *raw = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
        if (!strcmp(argv[i], "--tcp"))
            tcp = 1;
        else if (!strcmp(argv[i], "--edns") && i + 1 < argc)
            edns = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--id") && i + 1 < argc)
            id = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--raw") && i + 1 < argc)
            raw = argv[++i];
        else
            return 2;
    }
    if (argc - i != (raw ? 1 : 3)) {
        fprintf(stderr, "usage: dns_query [--tcp] [--edns SIZE] [--id N] IP:PORT NAME TYPE | [--tcp] --raw HEX IP:PORT\n");
        return 2;
    }
    struct sockaddr_storage ss;
    socklen_t sl;
    if (parse_addr(argv[i], &ss, &sl) < 0)
        return 2;
    uint8_t *q = NULL;
    size_t qlen = 0;
    if (raw) {
        qlen = strlen(raw) / 2;
        q = malloc(qlen + 1);
        for (size_t k = 0; k < qlen; k++)
            sscanf(raw + 2 * k, "%2hhx", &q[k]);
    } else {
        ldns_pkt *p = NULL;
        ldns_rr_type t = ldns_get_rr_type_by_name(argv[i + 2]);
        if (ldns_pkt_query_new_frm_str(&p, argv[i + 1], t, LDNS_RR_CLASS_IN, 0) != LDNS_STATUS_OK)
            return 2;
        ldns_pkt_set_id(p, (uint16_t)id);
        if (edns >= 0)
            ldns_pkt_set_edns_udp_size(p, (uint16_t)edns);
        if (ldns_pkt2wire(&q, p, &qlen) != LDNS_STATUS_OK)
            return 2;
        ldns_pkt_free(p);
    }
    int fd = socket(ss.ss_family, tcp ? SOCK_STREAM : SOCK_DGRAM, 0);
    uint8_t *ans = malloc(65536);
    long n;
    if (tcp) {
        if (connect(fd, (struct sockaddr *)&ss, sl) < 0)
            return 3;
        uint8_t l2[2] = {(uint8_t)(qlen >> 8), (uint8_t)qlen};
        if (send(fd, l2, 2, MSG_NOSIGNAL) != 2 || send(fd, q, qlen, MSG_NOSIGNAL) != (ssize_t)qlen)
            return 3;
        if (read_full(fd, l2, 2) != 2)
            return 3;
        n = read_full(fd, ans, (size_t)(l2[0] << 8 | l2[1]));
        if (n < 0)
            return 3;
    } else {
        sendto(fd, q, qlen, 0, (struct sockaddr *)&ss, sl);
        if (!wait_in(fd))
            return 3;
        n = recv(fd, ans, 65536, 0);
        if (n < 0)
            return 3;
    }
    int rc = print_answer(ans, n);
    free(ans);
    free(q);
    close(fd);
    return rc;
}

static int print_answer(const uint8_t *ans, long n)
{
    ldns_pkt *r = NULL;
    if (ldns_wire2pkt(&r, ans, (size_t)n) != LDNS_STATUS_OK) {
        printf("unparsable answer of %ld bytes\n", n);
        return 1;
    }
    ldns_lookup_table *rc = ldns_lookup_by_id(ldns_rcodes, ldns_pkt_get_rcode(r));
    printf("rcode=%s tc=%d aa=%d id=%u qd=%u an=%u ns=%u ar=%u size=%ld\n", rc ? rc->name : "?",
           ldns_pkt_tc(r), ldns_pkt_aa(r), ldns_pkt_id(r), ldns_pkt_qdcount(r), ldns_pkt_ancount(r),
           ldns_pkt_nscount(r), ldns_pkt_arcount(r), n);
    ldns_rr_list *secs[2] = {ldns_pkt_answer(r), ldns_pkt_authority(r)};
    for (int s = 0; s < 2; s++)
        for (size_t k = 0; k < ldns_rr_list_rr_count(secs[s]); k++) {
            char *t = ldns_rr2str(ldns_rr_list_rr(secs[s], k));
            for (char *c = t; *c && *c != '\t'; c++)
                *c = (char)tolower((unsigned char)*c);
            fputs(t, stdout);
            free(t);
        }
    ldns_pkt_free(r);
    return 0;
}
