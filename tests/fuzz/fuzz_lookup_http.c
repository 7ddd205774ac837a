/* The pkarr relay client's glue (endpoint/lookup_jobs.h): an HTTP answer read in pieces
 * (ir_lookup_http_reader), then, when complete, read as the answer to GET <base>/<z32> of
 * the spec 7.3 key (ir_lookup_pkarr_answer: status, signed packet, records). The first
 * byte picks the piece size (1, 2, 7, 64, 300, 1500, 4096, all) and whether the
 * connection ends after the input.
 *
 * Checked: sanitizers and leaks; a complete answer has a status of 100 to 599 and a body
 * within the answer's room; a found record names a relay or an address; the reader never
 * reports completion for a head it could not parse. */
#include <stdlib.h>
#include <string.h>

#include "endpoint/lookup_jobs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const size_t pieces[8] = {1, 2, 7, 64, 300, 1500, 4096, (size_t)-1};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t piece = pieces[data[0] & 7];
    int eof = data[0] & 8;
    data++;
    size--;
    static ir_lookup_http_answer ans;
    static ir_lookup_http_reader r;
    ir_lookup_http_reader_init(&r, &ans);
    int rc = 0;
    for (size_t off = 0; off < size && rc == 0; off += piece) {
        size_t n = size - off < piece ? size - off : piece;
        rc = ir_lookup_http_reader_feed(&r, data + off, n);
    }
    if (rc == 0 && eof)
        rc = ir_lookup_http_reader_eof(&r);
    if (rc != 1)
        return 0;
    if (ans.status < 100 || ans.status > 599 || ans.len > sizeof ans.body)
        abort();
    /* the id of the secret key 00 01 .. 1f (spec 7.1, 7.3) */
    static const uint8_t id[32] = {0x03, 0xa1, 0x07, 0xbf, 0xf3, 0xce, 0x10, 0xbe, 0x1d, 0x70, 0xdd,
                                   0x18, 0xe7, 0x4b, 0xc0, 0x99, 0x67, 0xe4, 0xd6, 0x30, 0x9b, 0xa5,
                                   0x0d, 0x5f, 0x1d, 0xdc, 0x86, 0x64, 0x12, 0x55, 0x31, 0xb8};
    static ir_endpoint_info ei;
    int found = ir_lookup_pkarr_answer(id, &ans, &ei);
    if (found == 1 && !ei.relay[0] && !ei.n_addrs)
        abort();
    return 0;
}
