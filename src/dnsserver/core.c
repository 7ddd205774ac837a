/* The DNS server core: setup of the zones, the expiry tick, the counters and their
 * OpenMetrics text. DNS answers are in dns_answer.c, the HTTP routes in http_api.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "relay/openmetrics.h"

void ir_dnss_config_init(ir_dnss_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->default_ttl = 900;
    cfg->rate_limit = IR_DNSS_RATE_SIMPLE;
    cfg->rate_burst = 2;
    cfg->rate_period_ms = 4000;
}

/* iroh-dns-server's fixed TTLs of the static records */
#define SOA_TTL (14 * 24 * 3600)
#define NS_TTL (12 * 3600)
#define A_TTL 3600

static int add_rr(ldns_rr_list *l, const char *text, const char *what, ldns_rr **out)
{
    ldns_rr *rr = NULL;
    ldns_rdf *root = ldns_dname_new_frm_str(".");
    ldns_status st = root ? ldns_rr_new_frm_str(&rr, text, 0, root, NULL) : LDNS_STATUS_MEM_ERR;
    ldns_rdf_deep_free(root);
    if (st != LDNS_STATUS_OK || !rr)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "invalid %s: %s", what, ldns_get_errorstr_by_id(st));
    if (!ldns_rr_list_push_rr(l, rr)) {
        ldns_rr_free(rr);
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    }
    if (out)
        *out = rr;
    return IROH_OK;
}

static int setup_origin(dnss_origin *o, const char *origin, const ir_dnss_config *cfg)
{
    size_t n = strlen(origin);
    if (n == 0 || n > 253)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "invalid origin '%s'", origin);
    char *abs = malloc(n + 2);
    if (!abs)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    snprintf(abs, n + 2, "%s%s", origin, origin[n - 1] == '.' ? "" : ".");
    o->name = ldns_dname_new_frm_str(abs);
    if (!o->name || ldns_rdf_get_type(o->name) != LDNS_RDF_TYPE_DNAME) {
        free(abs);
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "invalid origin '%s'", origin);
    }
    ldns_dname2canonical(o->name);
    o->labels = ldns_dname_label_count(o->name);
    o->apex = ldns_rr_list_new();
    if (!o->apex) {
        free(abs);
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    }
    char line[1024];
    int rc;
    snprintf(line, sizeof line, "%s %d IN SOA %s", abs, SOA_TTL, cfg->soa ? cfg->soa : IR_DNSS_DEFAULT_SOA);
    rc = add_rr(o->apex, line, "SOA", &o->soa);
    if (rc == IROH_OK && ldns_rr_rd_count(o->soa) == 7) {
        uint32_t min = ldns_rdf2native_int32(ldns_rr_rdf(o->soa, 6));
        o->neg_ttl = min < SOA_TTL ? min : SOA_TTL;
    } else if (rc == IROH_OK) {
        rc = ir_fail(IROH_ERR_INVALID_ARGUMENT, "invalid SOA '%s'", cfg->soa);
    }
    if (rc == IROH_OK && cfg->rr_ns) {
        snprintf(line, sizeof line, "%s %d IN NS %s", abs, NS_TTL, cfg->rr_ns);
        rc = add_rr(o->apex, line, "NS record", NULL);
    }
    if (rc == IROH_OK && cfg->rr_a) {
        snprintf(line, sizeof line, "%s %d IN A %s", abs, A_TTL, cfg->rr_a);
        rc = add_rr(o->apex, line, "A record", NULL);
    }
    if (rc == IROH_OK && cfg->rr_aaaa) {
        snprintf(line, sizeof line, "%s %d IN AAAA %s", abs, A_TTL, cfg->rr_aaaa);
        rc = add_rr(o->apex, line, "AAAA record", NULL);
    }
    free(abs);
    return rc;
}

int ir_dnss_new(const ir_dnss_config *cfg, ir_dnss_store *store, ir_dnss **out)
{
    *out = NULL;
    ir_dnss *s = calloc(1, sizeof *s);
    if (!s)
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
    s->store = store;
    size_t n = cfg->n_origins;
    const char *def = IR_DNSS_DEFAULT_ORIGIN;
    const char *const *names = n ? cfg->origins : &def;
    if (!n)
        n = 1;
    if (n > IR_DNSS_MAX_ORIGINS)
        n = IR_DNSS_MAX_ORIGINS;
    int rc = IROH_OK;
    for (size_t i = 0; i < n && rc == IROH_OK; i++) {
        rc = setup_origin(&s->origins[i], names[i], cfg);
        s->n_origins = i + 1;
    }
    if (rc == IROH_OK)
        rc = ir_dnss_rl_new(cfg->rate_limit, cfg->rate_burst, cfg->rate_period_ms, &s->rl);
    if (rc != IROH_OK) {
        ir_dnss_free(s);
        return rc;
    }
    *out = s;
    return IROH_OK;
}

void ir_dnss_free(ir_dnss *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_origins; i++) {
        ldns_rdf_deep_free(s->origins[i].name);
        ldns_rr_list_deep_free(s->origins[i].apex);
    }
    free(s->rl);
    free(s);
}

int ir_dnss_dns(ir_dnss *s, int transport, const uint8_t *msg, size_t len, uint64_t unix_us,
                uint8_t *out, size_t cap, size_t *out_len)
{
    return ir_dnss_answer(s, transport, msg, len, unix_us, out, cap, out_len, NULL);
}

#define TICK_US (10ULL * 1000000)

void ir_dnss_tick(ir_dnss *s, uint64_t unix_us)
{
    ir_dnss_store_flush(s->store); /* the batch of writes: at least every second */
    if (s->last_tick_us && unix_us < s->last_tick_us + TICK_US)
        return;
    s->last_tick_us = unix_us;
    ir_dnss_store_expire(s->store, unix_us);
}

void ir_dnss_get_stats(const ir_dnss *s, ir_dnss_stats *out)
{
    *out = s->st;
    ir_dnss_store_get_stats(s->store, &out->store);
}

void ir_dnss_count_tcp(ir_dnss *s, int accepted)
{
    if (accepted)
        s->st.tcp_accepts++;
    else
        s->st.tcp_refused++;
}

int ir_dnss_metrics_format(const ir_dnss_stats *st, char *buf, size_t cap)
{
    /* iroh-dns-server's group "dns_server" (metrics.rs), then ours */
    const ir_metric m[] = {
        {"dns_server_pkarr_publish_update", "Number of pkarr relay puts that updated the stored packet.", 0,
         st->pkarr_publish_update},
        {"dns_server_pkarr_publish_noop", "Number of pkarr relay puts that did not change the stored packet.",
         0, st->pkarr_publish_noop},
        {"dns_server_dns_requests", "Total number of DNS requests across all transports.", 0, st->dns_requests},
        {"dns_server_dns_requests_udp", "Number of DNS requests received over UDP.", 0, st->dns_requests_udp},
        {"dns_server_dns_requests_https", "Number of DNS requests received over HTTPS (DoH).", 0,
         st->dns_requests_https},
        {"dns_server_dns_lookup_success", "Number of DNS lookups that returned at least one answer.", 0,
         st->dns_lookup_success},
        {"dns_server_dns_lookup_notfound", "Number of DNS lookups that returned no answers.", 0,
         st->dns_lookup_notfound},
        {"dns_server_dns_lookup_error", "Number of DNS lookups that failed with an error.", 0,
         st->dns_lookup_error},
        {"dns_server_http_requests", "Number of HTTP requests served.", 0, st->http_requests},
        {"dns_server_http_requests_success", "Number of HTTP requests that returned a 2xx status code.", 0,
         st->http_requests_success},
        {"dns_server_http_requests_error", "Number of HTTP requests that returned a non-2xx status code.", 0,
         st->http_requests_error},
        {"dns_server_store_packets_inserted", "Number of signed packets newly inserted into the store.", 0,
         st->store.inserted},
        {"dns_server_store_packets_updated", "Number of times an existing signed packet was replaced by a newer one.",
         0, st->store.updated},
        {"dns_server_store_packets_expired", "Number of signed packets removed by the eviction task.", 0,
         st->store.expired},
        {"dns_server_cache_zones", "Current number of zones in the main cache", 1, st->store.cached},
        /* ours */
        {"irohc_dns_requests_tcp", "DNS requests received over TCP.", 0, st->dns_requests_tcp},
        {"irohc_dns_dropped", "DNS messages not answered (no header, a response, no memory).", 0,
         st->dns_dropped},
        {"irohc_dns_truncated", "UDP answers cut to the question with TC set.", 0, st->dns_truncated},
        {"irohc_dns_formerr", "DNS queries answered with FORMERR.", 0, st->dns_formerr},
        {"irohc_dns_refused", "DNS queries answered with REFUSED (no origin, AXFR, class).", 0, st->dns_refused},
        {"irohc_pkarr_put_refused", "pkarr PUTs refused (bad key, payload, signature, timestamp).", 0,
         st->pkarr_put_refused},
        {"irohc_pkarr_put_ratelimited", "pkarr PUTs answered 429.", 0, st->pkarr_put_ratelimited},
        {"irohc_cache_hits", "Store lookups answered by the cache.", 0, st->store.cache_hits},
        {"irohc_cache_misses", "Store lookups that read the database.", 0, st->store.cache_misses},
        {"irohc_tcp_accepts", "TCP connections accepted (DNS and HTTP).", 0, st->tcp_accepts},
        {"irohc_tcp_refused", "TCP connections refused (connection limit).", 0, st->tcp_refused},
    };
    return ir_openmetrics_format(m, sizeof m / sizeof m[0], buf, cap);
}
