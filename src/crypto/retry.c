/* The Retry integrity tag of QUIC v1 (RFC 9001 5.8): AES-128-GCM under a fixed key and
 * nonce over the Retry pseudo-packet, with an empty plaintext. nettle's GCM takes the
 * pseudo-packet in pieces, so nothing is copied or allocated; Retry is rare, so keying
 * AES-GCM per call costs nothing that matters. */
#include "crypto.h"

#include <string.h>

#include <nettle/gcm.h>

static const uint8_t retry_key_v1[16] = {
    0xbe, 0x0c, 0x69, 0x0b, 0x9f, 0x66, 0x57, 0x5a,
    0x1d, 0x76, 0x6b, 0x54, 0xe3, 0x68, 0xc8, 0x4e,
};
static const uint8_t retry_nonce_v1[12] = {
    0x46, 0x15, 0x99, 0xd3, 0x5d, 0x63, 0x2b, 0xf2, 0x23, 0x98, 0x25, 0xbb,
};

#define MAX_CID_LEN 20

int ir_retry_tag(const uint8_t *odcid, size_t odcid_len, const uint8_t *retry_pkt, size_t len,
                 uint8_t tag[16])
{
    struct gcm_aes128_ctx c;
    uint8_t head[32]; /* odcid_len || odcid || start of the packet, to a 16-byte boundary */
    size_t n = 0, take;

    if (odcid_len > MAX_CID_LEN || (odcid_len && !odcid) || (len && !retry_pkt)) return -1;
    head[n++] = (uint8_t)odcid_len;
    if (odcid_len) memcpy(head + n, odcid, odcid_len);
    n += odcid_len;
    /* nettle's gcm_update wants every call but the last to be whole blocks: fill head up
     * to 32 bytes (n <= 21), then pass the rest of the packet in one go. */
    take = len < sizeof head - n ? len : sizeof head - n;
    if (take) memcpy(head + n, retry_pkt, take);
    n += take;

    gcm_aes128_set_key(&c, retry_key_v1);
    gcm_aes128_set_iv(&c, sizeof retry_nonce_v1, retry_nonce_v1);
    gcm_aes128_update(&c, n, head);
    if (len > take) gcm_aes128_update(&c, len - take, retry_pkt + take);
    gcm_aes128_digest(&c, IR_RETRY_TAG_LEN, tag);
    return 0;
}

int ir_ct_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    uint8_t d = 0;
    for (size_t i = 0; i < n; i++) d |= (uint8_t)(a[i] ^ b[i]);
    return d == 0;
}
