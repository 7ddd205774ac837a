/* iroh's EndpointInfo as DNS TXT records, built and read with ldns (see endpoint_info.h). */
#include "endpoint_info.h"

#include <ldns/ldns.h>
#include <stdlib.h>
#include <string.h>

#include "base/addr.h"
#include "base/encoding.h"
#include "base/util.h"
#include "dns_internal.h"

size_t ir_endpoint_info_name(const uint8_t id[32], const char *origin, char *out, size_t cap)
{
    char z[IROH_ID_Z32_LEN];
    ir_b32_encode(IR_B32_Z, id, 32, z);
    size_t olen = origin ? strlen(origin) : 0;
    if (olen && origin[olen - 1] == '.')
        olen--;
    size_t need = strlen(IR_DNS_TXT_NAME) + 1 + 52 + (olen ? 1 + olen : 0);
    if (need > 253 || need + 1 > cap)
        return 0;
    size_t n = 0;
    memcpy(out, IR_DNS_TXT_NAME ".", 6);
    n = 6;
    memcpy(out + n, z, 52);
    n += 52;
    if (olen) {
        out[n++] = '.';
        memcpy(out + n, origin, olen);
        n += olen;
    }
    out[n] = 0;
    return n;
}

int ir_endpoint_info_txt_strings(const ir_endpoint_info *ei, ir_endpoint_info_txt_fn fn,
                                 void *ctx)
{
    char kv[IR_ENDPOINT_INFO_RELAY_MAX + 16];
    int rc;
    if (ei->relay[0]) {
        size_t rl = strnlen(ei->relay, sizeof ei->relay);
        memcpy(kv, "relay=", 6);
        memcpy(kv + 6, ei->relay, rl);
        kv[6 + rl] = 0;
        if ((rc = fn(ctx, kv, 6 + rl)) != 0)
            return rc;
    }
    size_t na = ei->n_addrs < IR_ENDPOINT_INFO_MAX_ADDRS ? ei->n_addrs : IR_ENDPOINT_INFO_MAX_ADDRS;
    for (size_t i = 0; i < na; i++) {
        memcpy(kv, "addr=", 5);
        size_t l = ir_socket_addr_format(&ei->addrs[i], kv + 5);
        if ((rc = fn(ctx, kv, 5 + l)) != 0)
            return rc;
    }
    if (ei->has_user_data) {
        size_t ul = strnlen(ei->user_data, sizeof ei->user_data);
        memcpy(kv, "user-data=", 10);
        memcpy(kv + 10, ei->user_data, ul);
        kv[10 + ul] = 0;
        if ((rc = fn(ctx, kv, 10 + ul)) != 0)
            return rc;
    }
    return 0;
}

struct build_ctx {
    ldns_pkt *pkt;
    const ldns_rdf *owner;
    uint32_t ttl;
};

static int add_txt(void *vctx, const char *kv, size_t len)
{
    struct build_ctx *c = vctx;
    if (len > 255)
        return ir_fail(IROH_ERR_TOO_LONG, "TXT string of %zu bytes (max 255): %.16s...", len, kv);
    uint8_t b[256];
    b[0] = (uint8_t)len;
    memcpy(b + 1, kv, len);
    ldns_rr *rr = ldns_rr_new();
    ldns_rdf *owner = rr ? ldns_rdf_clone(c->owner) : NULL;
    ldns_rdf *rd = owner ? ldns_rdf_new_frm_data(LDNS_RDF_TYPE_STR, len + 1, b) : NULL;
    if (!rd) {
        if (owner)
            ldns_rdf_deep_free(owner);
        if (rr)
            ldns_rr_free(rr);
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory building a TXT record");
    }
    ldns_rr_set_owner(rr, owner);
    ldns_rr_set_type(rr, LDNS_RR_TYPE_TXT);
    ldns_rr_set_class(rr, LDNS_RR_CLASS_IN);
    ldns_rr_set_ttl(rr, c->ttl);
    if (!ldns_rr_push_rdf(rr, rd)) {
        ldns_rdf_deep_free(rd);
        ldns_rr_free(rr);
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory building a TXT record");
    }
    if (!ldns_pkt_push_rr(c->pkt, LDNS_SECTION_ANSWER, rr)) {
        ldns_rr_free(rr);
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory building a DNS packet");
    }
    return 0;
}

int ir_endpoint_info_to_dns(const ir_endpoint_info *ei, uint32_t ttl, uint8_t *out,
                            size_t cap, size_t *len)
{
    if (!ei || !len || (!out && cap))
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "endpoint info to DNS: NULL argument");
    if (ei->has_user_data && strnlen(ei->user_data, sizeof ei->user_data) >
                                 IR_ENDPOINT_INFO_USER_DATA_MAX)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "user data over %d bytes",
                       IR_ENDPOINT_INFO_USER_DATA_MAX);
    if (strnlen(ei->relay, sizeof ei->relay) == sizeof ei->relay)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "relay URL not terminated");
    /* the relay as iroh writes it: RelayUrl's Display, the normalized URL */
    ir_endpoint_info norm;
    norm = *ei;
    if (ei->relay[0]) {
        char url[2 * IR_ENDPOINT_INFO_RELAY_MAX];
        if (iroh_relay_url_normalize(ei->relay, url, sizeof url) != IROH_OK)
            return ir_fail(IROH_ERR_INVALID_ARGUMENT, "relay \"%.64s\" is no URL", ei->relay);
        if (strlen(url) >= sizeof norm.relay)
            return ir_fail(IROH_ERR_TOO_LONG, "relay URL of %zu bytes (TXT strings hold 255)",
                           strlen(url));
        memcpy(norm.relay, url, strlen(url) + 1);
    }
    ei = &norm;
    char name[260];
    if (!ir_endpoint_info_name(ei->id, NULL, name, sizeof name))
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "endpoint info: no DNS name");
    ldns_rdf *owner = ldns_dname_new_frm_str(name);
    ldns_pkt *pkt = ldns_pkt_new();
    if (!owner || !pkt) {
        if (owner)
            ldns_rdf_deep_free(owner);
        if (pkt)
            ldns_pkt_free(pkt);
        return ir_fail(IROH_ERR_NO_MEMORY, "out of memory building a DNS packet");
    }
    /* a reply (QR) with ID 0, opcode QUERY, no AA, RCODE 0, no question */
    ldns_pkt_set_id(pkt, 0);
    ldns_pkt_set_qr(pkt, true);
    ldns_pkt_set_opcode(pkt, LDNS_PACKET_QUERY);
    ldns_pkt_set_rcode(pkt, LDNS_RCODE_NOERROR);
    struct build_ctx c = { pkt, owner, ttl };
    int rc = ir_endpoint_info_txt_strings(ei, add_txt, &c);
    uint8_t *wire = NULL;
    size_t wlen = 0;
    if (rc == 0 && ldns_pkt2wire(&wire, pkt, &wlen) != LDNS_STATUS_OK)
        rc = ir_fail(IROH_ERR_NO_MEMORY, "DNS packet could not be written");
    ldns_pkt_free(pkt);
    ldns_rdf_deep_free(owner);
    if (rc == 0) {
        if (wlen > cap)
            rc = ir_fail(IROH_ERR_BUFFER_TOO_SMALL, "DNS packet of %zu bytes (room for %zu)",
                         wlen, cap);
        else
            memcpy(out, wire, wlen);
        *len = wlen;
    }
    free(wire);
    return rc;
}

/* ---- reading -------------------------------------------------------------------- */

#define MAX_NAMES 9 /* the name asked for and up to 8 CNAME hops */

static int name_in(const ldns_rdf *n, ldns_rdf *const *names, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (ldns_dname_compare(n, names[i]) == 0)
            return 1;
    return 0;
}

/* Concatenates the character-strings of a TXT record into buf; returns the length or -1
 * when the rdata is not a list of character-strings. */
static long txt_concat(const ldns_rr *rr, uint8_t *buf, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < ldns_rr_rd_count(rr); i++) {
        const ldns_rdf *rd = ldns_rr_rdf(rr, i);
        const uint8_t *d = ldns_rdf_data(rd);
        size_t sz = ldns_rdf_size(rd);
        if (ldns_rdf_get_type(rd) != LDNS_RDF_TYPE_STR || sz < 1 || (size_t)d[0] + 1 != sz)
            return -1;
        if (n + sz - 1 > cap)
            return -1;
        memcpy(buf + n, d + 1, sz - 1);
        n += sz - 1;
    }
    return (long)n;
}

static void add_addr(ir_endpoint_info *out, const iroh_socket_addr *a)
{
    for (size_t i = 0; i < out->n_addrs; i++)
        if (out->addrs[i].family == a->family && out->addrs[i].port == a->port &&
            memcmp(out->addrs[i].ip, a->ip, sizeof a->ip) == 0)
            return;
    if (out->n_addrs < IR_ENDPOINT_INFO_MAX_ADDRS)
        out->addrs[out->n_addrs++] = *a;
}

/* One record's "key=value"; returns 0 or the error that fails the whole set. */
static int read_attr(ir_endpoint_info *out, uint8_t *s, size_t len, int *seen_user_data)
{
    uint8_t *eq = memchr(s, '=', len);
    if (!eq)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "iroh TXT record without '=': %.*s",
                       (int)(len > 40 ? 40 : len), (const char *)s);
    size_t klen = (size_t)(eq - s);
    uint8_t *v = eq + 1;
    size_t vlen = len - klen - 1;
    uint8_t *eq2 = memchr(v, '=', vlen);
    if (eq2)
        vlen = (size_t)(eq2 - v);
    int has_nul = memchr(v, 0, vlen) != NULL;
    v[vlen] = 0; /* the buffer has room: value ends at '=' or at the end (len < cap) */
    if (klen == 5 && memcmp(s, "relay", 5) == 0) {
        char url[IR_ENDPOINT_INFO_RELAY_MAX];
        if (!out->relay[0] && !has_nul &&
            iroh_relay_url_normalize((const char *)v, url, sizeof url) == IROH_OK)
            memcpy(out->relay, url, sizeof url);
    } else if (klen == 4 && memcmp(s, "addr", 4) == 0) {
        iroh_socket_addr a;
        if (ir_socket_addr_parse((const char *)v, vlen, &a) == IROH_OK)
            add_addr(out, &a);
    } else if (klen == 9 && memcmp(s, "user-data", 9) == 0) {
        if (!*seen_user_data && vlen <= IR_ENDPOINT_INFO_USER_DATA_MAX && !has_nul) {
            memcpy(out->user_data, v, vlen);
            out->user_data[vlen] = 0;
            out->has_user_data = 1;
        }
        *seen_user_data = 1;
    } else {
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "iroh TXT record with unknown key \"%.*s\"",
                       (int)(klen > 40 ? 40 : klen), (const char *)s);
    }
    return 0;
}

int ir_endpoint_info_from_dns(const uint8_t id[32], const char *origin, const uint8_t *msg,
                              size_t len, ir_endpoint_info *out)
{
    if (!id || !out || (!msg && len))
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "endpoint info from DNS: NULL argument");
    ldns_pkt *pkt = NULL;
    if (ldns_wire2pkt(&pkt, msg, len) != LDNS_STATUS_OK)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "DNS message does not parse");
    int rc = ir_dns_endpoint_info_from_pkt(id, origin, pkt, len, out);
    ldns_pkt_free(pkt);
    return rc;
}

int ir_dns_endpoint_info_from_pkt(const uint8_t id[32], const char *origin, const ldns_pkt *pkt,
                                  size_t len, ir_endpoint_info *out)
{
    char name[260];
    if (!ir_endpoint_info_name(id, origin, name, sizeof name))
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "DNS origin too long");
    ldns_rdf *names[MAX_NAMES];
    size_t n_names = 0;
    uint8_t *buf = NULL;
    int rc = 0, count = 0, seen_user_data = 0;
    names[0] = ldns_dname_new_frm_str(name);
    n_names = names[0] ? 1 : 0;
    buf = malloc(len + 1);
    if (!names[0] || !buf) {
        rc = ir_fail(IROH_ERR_NO_MEMORY, "out of memory reading a DNS message");
        goto done;
    }
    ldns_rr_list *an = ldns_pkt_answer(pkt);
    size_t n_an = an ? ldns_rr_list_rr_count(an) : 0;
    if (origin && *origin) {
        /* a resolver's answer may reach the TXT records through CNAMEs */
        for (int grew = 1; grew && n_names < MAX_NAMES;) {
            grew = 0;
            for (size_t i = 0; i < n_an && n_names < MAX_NAMES; i++) {
                const ldns_rr *rr = ldns_rr_list_rr(an, i);
                if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_CNAME || ldns_rr_rd_count(rr) < 1 ||
                    !name_in(ldns_rr_owner(rr), names, n_names))
                    continue;
                const ldns_rdf *t = ldns_rr_rdf(rr, 0);
                if (ldns_rdf_get_type(t) != LDNS_RDF_TYPE_DNAME || name_in(t, names, n_names))
                    continue;
                ldns_rdf *copy = ldns_rdf_clone(t);
                if (!copy) {
                    rc = ir_fail(IROH_ERR_NO_MEMORY, "out of memory reading a DNS message");
                    goto done;
                }
                names[n_names++] = copy;
                grew = 1;
            }
        }
    }
    memset(out, 0, sizeof *out);
    memcpy(out->id, id, 32);
    for (size_t i = 0; i < n_an; i++) {
        const ldns_rr *rr = ldns_rr_list_rr(an, i);
        if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_TXT || !name_in(ldns_rr_owner(rr), names, n_names))
            continue;
        long l = txt_concat(rr, buf, len);
        if (l < 0 || !ir_utf8_valid(buf, (size_t)l))
            continue; /* iroh: a TXT record that is no UTF-8 string is skipped */
        count++;
        if ((rc = read_attr(out, buf, (size_t)l, &seen_user_data)) != 0)
            break;
    }
done:
    for (size_t i = 0; i < n_names; i++)
        ldns_rdf_deep_free(names[i]);
    free(buf);
    if (rc) {
        memset(out, 0, sizeof *out);
        memcpy(out->id, id, 32);
        return rc;
    }
    return count;
}
