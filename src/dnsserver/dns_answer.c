/* DNS messages in, DNS messages out, with ldns: see dnsserver.h for what is answered. */
#include <stdlib.h>
#include <string.h>

#include "base/encoding.h"
#include "core.h"

/* label offsets of an uncompressed wire name (as ldns keeps a dname rdf): returns the
 * label count (root excluded), offsets in off[] */
static size_t name_labels(const ldns_rdf *name, size_t off[128])
{
    const uint8_t *d = ldns_rdf_data(name);
    size_t n = ldns_rdf_size(name), i = 0, k = 0;
    while (i < n && d[i] != 0 && k < 128) {
        off[k++] = i;
        i += 1 + (size_t)d[i];
    }
    return k;
}

/* A new response to q: same id, opcode and RD, QR and the question copied; EDNS answered
 * with EDNS. */
static ldns_pkt *response_for(const ldns_pkt *q)
{
    ldns_pkt *r = ldns_pkt_new();
    if (!r)
        return NULL;
    ldns_pkt_set_id(r, ldns_pkt_id(q));
    ldns_pkt_set_qr(r, true);
    ldns_pkt_set_opcode(r, ldns_pkt_get_opcode(q));
    ldns_pkt_set_rd(r, ldns_pkt_rd(q));
    ldns_pkt_set_cd(r, ldns_pkt_cd(q));
    const ldns_rr_list *qs = ldns_pkt_question(q);
    for (size_t i = 0; qs && i < ldns_rr_list_rr_count(qs); i++) {
        ldns_rr *c = ldns_rr_clone(ldns_rr_list_rr(qs, i));
        if (!c || !ldns_pkt_push_rr(r, LDNS_SECTION_QUESTION, c)) {
            ldns_rr_free(c);
            ldns_pkt_free(r);
            return NULL;
        }
    }
    if (ldns_pkt_edns(q)) {
        ldns_pkt_set_edns_udp_size(r, IR_DNSS_UDP_MAX);
        ldns_pkt_set_edns_version(r, 0);
    }
    return r;
}

static int push_clone(ldns_pkt *r, ldns_pkt_section sec, const ldns_rr *rr, uint32_t ttl)
{
    ldns_rr *c = ldns_rr_clone(rr);
    if (!c)
        return -1;
    if (ttl)
        ldns_rr_set_ttl(c, ttl);
    if (!ldns_pkt_push_rr(r, sec, c)) {
        ldns_rr_free(c);
        return -1;
    }
    return 0;
}

static int type_matches(ldns_rr_type want, ldns_rr_type have)
{
    return want == have || want == LDNS_RR_TYPE_ANY;
}

/* The records of a stored packet for qname (key label at index rel-1 of qname): pushes
 * the matching ones re-rooted under <z32>.<origin> into r. Returns 1 if the name exists
 * in the packet (answers or not), 0 if not, -1 on no memory. */
static int packet_answers(ldns_pkt *r, const ir_pkarr_packet *p, const ldns_rdf *qname,
                          size_t rel, ldns_rr_type qtype)
{
    ldns_pkt *inner = NULL;
    if (ldns_wire2pkt(&inner, p->dns, p->dns_len) != LDNS_STATUS_OK)
        return 0; /* verified at PUT; a file edited by hand has nothing to say */
    size_t qoff[128];
    name_labels(qname, qoff);
    const uint8_t *qd = ldns_rdf_data(qname);
    size_t suffix_at = qoff[rel - 1], suffix_len = ldns_rdf_size(qname) - suffix_at;
    const uint8_t *keylabel = qd + suffix_at; /* length byte, then the z32 text */
    int exists = 0, rc = 0;
    const ldns_rr_list *an = ldns_pkt_answer(inner);
    for (size_t i = 0; an && i < ldns_rr_list_rr_count(an) && rc == 0; i++) {
        const ldns_rr *rr = ldns_rr_list_rr(an, i);
        const ldns_rdf *owner = ldns_rr_owner(rr);
        if (ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN || !owner)
            continue;
        size_t off[128];
        size_t n = name_labels(owner, off);
        const uint8_t *od = ldns_rdf_data(owner);
        size_t keep = ldns_rdf_size(owner) - 1; /* labels without the root */
        if (n > 0) {
            const uint8_t *last = od + off[n - 1];
            if (last[0] == keylabel[0] && strncasecmp((const char *)last + 1, (const char *)keylabel + 1, last[0]) == 0)
                keep = off[n - 1]; /* `<name>.<z32>`: drop the key, it is in the suffix */
        }
        uint8_t wire[LDNS_MAX_DOMAINLEN + 1];
        if (keep + suffix_len > LDNS_MAX_DOMAINLEN)
            continue;
        memcpy(wire, od, keep);
        memcpy(wire + keep, qd + suffix_at, suffix_len);
        ldns_rdf *full = ldns_dname_new_frm_data((uint16_t)(keep + suffix_len), wire);
        if (!full) {
            rc = -1;
            break;
        }
        if (ldns_dname_compare(full, qname) == 0) {
            exists = 1;
            if (type_matches(qtype, ldns_rr_get_type(rr))) {
                ldns_rr *c = ldns_rr_clone(rr);
                if (!c) {
                    rc = -1;
                } else {
                    ldns_rdf_deep_free(ldns_rr_owner(c));
                    ldns_rr_set_owner(c, full);
                    full = NULL;
                    if (!ldns_pkt_push_rr(r, LDNS_SECTION_ANSWER, c)) {
                        ldns_rr_free(c);
                        rc = -1;
                    }
                }
            }
        } else if (ldns_dname_is_subdomain(full, qname)) {
            exists = 1; /* an empty non-terminal: NOERROR without data */
        }
        ldns_rdf_deep_free(full);
    }
    ldns_pkt_free(inner);
    return rc < 0 ? -1 : exists;
}

static const dnss_origin *find_origin(const ir_dnss *s, const ldns_rdf *qname)
{
    const dnss_origin *best = NULL;
    for (size_t i = 0; i < s->n_origins; i++) {
        const dnss_origin *o = &s->origins[i];
        if ((ldns_dname_compare(qname, o->name) == 0 || ldns_dname_is_subdomain(qname, o->name)) &&
            (!best || o->labels > best->labels))
            best = o;
    }
    return best;
}

/* Fills r (header and question set) for a well-formed single-question query. Returns 0,
 * or -1 on no memory. */
static int resolve(ir_dnss *s, ldns_pkt *r, const ldns_rr *question, uint64_t unix_us)
{
    ldns_rdf *qname = ldns_rdf_clone(ldns_rr_owner(question));
    if (!qname)
        return -1;
    ldns_dname2canonical(qname);
    ldns_rr_type qtype = ldns_rr_get_type(question);
    ldns_rr_class qclass = ldns_rr_get_class(question);
    int rc = 0;
    const dnss_origin *o = NULL;
    if (qtype == LDNS_RR_TYPE_AXFR || qtype == LDNS_RR_TYPE_IXFR ||
        (qclass != LDNS_RR_CLASS_IN && qclass != LDNS_RR_CLASS_ANY) || !(o = find_origin(s, qname))) {
        ldns_pkt_set_rcode(r, LDNS_RCODE_REFUSED);
        s->st.dns_refused++;
        goto out;
    }
    ldns_pkt_set_aa(r, true);
    size_t off[128];
    size_t nq = name_labels(qname, off), rel = nq - o->labels;
    int exists = 0;
    if (rel == 0) {
        exists = 1;
        for (size_t i = 0; i < ldns_rr_list_rr_count(o->apex) && rc == 0; i++) {
            const ldns_rr *rr = ldns_rr_list_rr(o->apex, i);
            if (type_matches(qtype, ldns_rr_get_type(rr)))
                rc = push_clone(r, LDNS_SECTION_ANSWER, rr, 0);
        }
    } else {
        const uint8_t *lab = ldns_rdf_data(qname) + off[rel - 1];
        uint8_t key[32];
        size_t pos;
        if (lab[0] == 52 && ir_b32_decode(IR_B32_Z, (const char *)lab + 1, 52, key, sizeof key, &pos) == 32) {
            ir_pkarr_packet *p = malloc(sizeof *p);
            if (!p) {
                rc = -1;
                goto out;
            }
            int got = ir_dnss_store_get(s->store, key, unix_us, p);
            if (got < 0) {
                ldns_pkt_set_rcode(r, LDNS_RCODE_SERVFAIL);
                free(p);
                goto out;
            }
            if (got > 0) {
                exists = packet_answers(r, p, qname, rel, qtype);
                if (exists < 0)
                    rc = -1;
            }
            free(p);
        }
    }
    if (rc == 0 && ldns_pkt_ancount(r) == 0) {
        if (!exists)
            ldns_pkt_set_rcode(r, LDNS_RCODE_NXDOMAIN);
        rc = push_clone(r, LDNS_SECTION_AUTHORITY, o->soa, o->neg_ttl);
    }
out:
    ldns_rdf_deep_free(qname);
    return rc;
}

/* Serializes r into out; 0, or -1 when it does not fit cap or on no memory. */
static int to_wire(const ldns_pkt *r, uint8_t *out, size_t cap, size_t *out_len)
{
    uint8_t *w = NULL;
    size_t n = 0;
    if (ldns_pkt2wire(&w, r, &n) != LDNS_STATUS_OK || !w)
        return -1;
    int rc = -1;
    if (n <= cap) {
        memcpy(out, w, n);
        *out_len = n;
        rc = 0;
    }
    free(w);
    return rc;
}

/* A FORMERR for a message ldns could not parse: the header's id, opcode and RD. */
static int formerr_raw(const uint8_t *msg, uint8_t *out, size_t cap, size_t *out_len)
{
    ldns_pkt *r = ldns_pkt_new();
    if (!r)
        return 0;
    ldns_pkt_set_id(r, (uint16_t)(msg[0] << 8 | msg[1]));
    ldns_pkt_set_qr(r, true);
    ldns_pkt_set_opcode(r, (ldns_pkt_opcode)((msg[2] >> 3) & 0xf));
    ldns_pkt_set_rd(r, msg[2] & 1);
    ldns_pkt_set_rcode(r, LDNS_RCODE_FORMERR);
    int rc = to_wire(r, out, cap, out_len) == 0;
    ldns_pkt_free(r);
    return rc;
}

int ir_dnss_answer(ir_dnss *s, int transport, const uint8_t *msg, size_t len, uint64_t unix_us,
                   uint8_t *out, size_t cap, size_t *out_len, uint32_t *min_ttl)
{
    if (min_ttl)
        *min_ttl = UINT32_MAX;
    s->st.dns_requests++;
    if (transport == IR_DNSS_UDP)
        s->st.dns_requests_udp++;
    else if (transport == IR_DNSS_TCP)
        s->st.dns_requests_tcp++;
    else
        s->st.dns_requests_https++;
    if (len < 12 || (msg[2] & 0x80)) {
        s->st.dns_dropped++; /* no header, or a response: nothing to answer */
        return 0;
    }
    ldns_pkt *q = NULL;
    if (ldns_wire2pkt(&q, msg, len) != LDNS_STATUS_OK || !q) {
        s->st.dns_formerr++;
        s->st.dns_lookup_error++;
        return formerr_raw(msg, out, cap, out_len);
    }
    ldns_pkt *r = response_for(q);
    if (!r) {
        ldns_pkt_free(q);
        s->st.dns_dropped++;
        return 0;
    }
    int rc = 0;
    if (ldns_pkt_edns(q) && ldns_pkt_edns_version(q) > 0) {
        /* RFC 6891 6.1.3: a version we do not implement gets BADVERS (16: 1 in the OPT's
         * extended RCODE, 0 in the header) and our version, 0, nothing else */
        ldns_pkt_set_rcode(r, 0);
        ldns_pkt_set_edns_extended_rcode(r, 1);
    } else if (ldns_pkt_get_opcode(q) != LDNS_PACKET_QUERY) {
        ldns_pkt_set_rcode(r, LDNS_RCODE_NOTIMPL);
    } else if (ldns_pkt_qdcount(q) != 1 || ldns_rr_list_rr_count(ldns_pkt_question(q)) != 1) {
        ldns_pkt_set_rcode(r, LDNS_RCODE_FORMERR);
        s->st.dns_formerr++;
    } else {
        rc = resolve(s, r, ldns_rr_list_rr(ldns_pkt_question(q), 0), unix_us);
    }
    uint8_t rcode = ldns_pkt_get_rcode(r);
    size_t ancount = ldns_pkt_ancount(r);
    if (ldns_pkt_edns_extended_rcode(r))
        s->st.dns_lookup_error++;
    else if (rcode == LDNS_RCODE_NOERROR && ancount)
        s->st.dns_lookup_success++;
    else if (rcode == LDNS_RCODE_NOERROR || rcode == LDNS_RCODE_NXDOMAIN)
        s->st.dns_lookup_notfound++;
    else
        s->st.dns_lookup_error++;
    if (min_ttl)
        for (size_t i = 0; i < ancount; i++) {
            uint32_t t = ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_answer(r), i));
            if (t < *min_ttl)
                *min_ttl = t;
        }
    size_t limit = cap;
    if (transport == IR_DNSS_UDP) {
        size_t want = 512;
        if (ldns_pkt_edns(q) && ldns_pkt_edns_udp_size(q) > 512)
            want = ldns_pkt_edns_udp_size(q) < IR_DNSS_UDP_MAX ? ldns_pkt_edns_udp_size(q) : IR_DNSS_UDP_MAX;
        if (want < limit)
            limit = want;
    }
    int sent = 0;
    if (rc == 0 && to_wire(r, out, limit, out_len) == 0) {
        sent = 1;
    } else if (rc == 0) {
        /* too long: header and question only, TC set (RFC 1035 4.2.1; the client retries
         * over TCP) */
        ldns_pkt *t = response_for(q);
        if (t) {
            ldns_pkt_set_aa(t, ldns_pkt_aa(r));
            ldns_pkt_set_rcode(t, rcode);
            ldns_pkt_set_edns_extended_rcode(t, ldns_pkt_edns_extended_rcode(r));
            ldns_pkt_set_tc(t, true);
            sent = to_wire(t, out, limit, out_len) == 0;
            ldns_pkt_free(t);
            s->st.dns_truncated += sent;
        }
    }
    if (!sent)
        s->st.dns_dropped++;
    ldns_pkt_free(r);
    ldns_pkt_free(q);
    return sent;
}
