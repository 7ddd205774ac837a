/* Packet protection: RFC 9001 Appendix A (keys, client and server Initial packets, Retry,
 * ChaCha20-Poly1305 short header), the multipath nonce vector of quic-tls.md 3.4, HKDF
 * (RFC 5869), tampering, AES-256-GCM and key updates. Header protection is applied with
 * a small helper here; the packet layer proper lives elsewhere. */
#include "crypto/crypto.h"
#include "quic/packet.h"
#include "test.h"

#include <gnutls/crypto.h>
#include <nettle/chacha-poly1305.h>
#include <nettle/gcm.h>

/* RFC 9001 Appendix A.2-A.3: the client's CRYPTO frame (padded to 1162 bytes with
 * PADDING), the protected client Initial, the server's payload and protected Initial. */
static const char CLIENT_CRYPTO[] =
    "060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868"
    "04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578"
    "616d706c652e636f6dff01000100000a00080006001d00170018001000070005"
    "04616c706e000500050100000000003300260024001d00209370b2c9caa47fba"
    "baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400"
    "0d0010000e0403050306030203080408050806002d00020101001c0002400100"
    "3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000"
    "75300901100f088394c8f03e51570806048000ffff";
static const char CLIENT_PROTECTED[] =
    "c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11"
    "d242b123dc9bd8bab936b47d92ec356c0bab7df5976d27cd449f63300099f399"
    "1c260ec4c60d17b31f8429157bb35a1282a643a8d2262cad67500cadb8e7378c"
    "8eb7539ec4d4905fed1bee1fc8aafba17c750e2c7ace01e6005f80fcb7df6212"
    "30c83711b39343fa028cea7f7fb5ff89eac2308249a02252155e2347b63d58c5"
    "457afd84d05dfffdb20392844ae812154682e9cf012f9021a6f0be17ddd0c208"
    "4dce25ff9b06cde535d0f920a2db1bf362c23e596d11a4f5a6cf3948838a3aec"
    "4e15daf8500a6ef69ec4e3feb6b1d98e610ac8b7ec3faf6ad760b7bad1db4ba3"
    "485e8a94dc250ae3fdb41ed15fb6a8e5eba0fc3dd60bc8e30c5c4287e53805db"
    "059ae0648db2f64264ed5e39be2e20d82df566da8dd5998ccabdae053060ae6c"
    "7b4378e846d29f37ed7b4ea9ec5d82e7961b7f25a9323851f681d582363aa5f8"
    "9937f5a67258bf63ad6f1a0b1d96dbd4faddfcefc5266ba6611722395c906556"
    "be52afe3f565636ad1b17d508b73d8743eeb524be22b3dcbc2c7468d54119c74"
    "68449a13d8e3b95811a198f3491de3e7fe942b330407abf82a4ed7c1b311663a"
    "c69890f4157015853d91e923037c227a33cdd5ec281ca3f79c44546b9d90ca00"
    "f064c99e3dd97911d39fe9c5d0b23a229a234cb36186c4819e8b9c5927726632"
    "291d6a418211cc2962e20fe47feb3edf330f2c603a9d48c0fcb5699dbfe58964"
    "25c5bac4aee82e57a85aaf4e2513e4f05796b07ba2ee47d80506f8d2c25e50fd"
    "14de71e6c418559302f939b0e1abd576f279c4b2e0feb85c1f28ff18f58891ff"
    "ef132eef2fa09346aee33c28eb130ff28f5b766953334113211996d20011a198"
    "e3fc433f9f2541010ae17c1bf202580f6047472fb36857fe843b19f5984009dd"
    "c324044e847a4f4a0ab34f719595de37252d6235365e9b84392b061085349d73"
    "203a4a13e96f5432ec0fd4a1ee65accdd5e3904df54c1da510b0ff20dcc0c77f"
    "cb2c0e0eb605cb0504db87632cf3d8b4dae6e705769d1de354270123cb11450e"
    "fc60ac47683d7b8d0f811365565fd98c4c8eb936bcab8d069fc33bd801b03ade"
    "a2e1fbc5aa463d08ca19896d2bf59a071b851e6c239052172f296bfb5e724047"
    "90a2181014f3b94a4e97d117b438130368cc39dbb2d198065ae3986547926cd2"
    "162f40a29f0c3c8745c0f50fba3852e566d44575c29d39a03f0cda721984b6f4"
    "40591f355e12d439ff150aab7613499dbd49adabc8676eef023b15b65bfc5ca0"
    "6948109f23f350db82123535eb8a7433bdabcb909271a6ecbcb58b936a88cd4e"
    "8f2e6ff5800175f113253d8fa9ca8885c2f552e657dc603f252e1a8e308f76f0"
    "be79e2fb8f5d5fbbe2e30ecadd220723c8c0aea8078cdfcb3868263ff8f09400"
    "54da48781893a7e49ad5aff4af300cd804a6b6279ab3ff3afb64491c85194aab"
    "760d58a606654f9f4400e8b38591356fbf6425aca26dc85244259ff2b19c41b9"
    "f96f3ca9ec1dde434da7d2d392b905ddf3d1f9af93d1af5950bd493f5aa731b4"
    "056df31bd267b6b90a079831aaf579be0a39013137aac6d404f518cfd4684064"
    "7e78bfe706ca4cf5e9c5453e9f7cfd2b8b4c8d169a44e55c88d4a9a7f9474241"
    "e221af44860018ab0856972e194cd934";
static const char SERVER_PAYLOAD[] =
    "02000000000600405a020000560303eefce7f7b37ba1d1632e96677825ddf739"
    "88cfc79825df566dc5430b9a045a1200130100002e00330024001d00209d3c94"
    "0d89690b84d08a60993c144eca684d1081287c834d5311bcf32bb9da1a002b00"
    "020304";
static const char SERVER_PROTECTED[] =
    "cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a"
    "5816b6394100f37a1c69797554780bb38cc5a99f5ede4cf73c3ec2493a1839b3"
    "dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84"
    "022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc4"
    "2158407dd074ee";

/* The vectors go through the library's own packet code (quic/packet.h), not copies. */

/* Protects in place: pkt holds hdr_len header bytes (Packet Number last, at pn_offset)
 * then payload_len plaintext bytes. Returns the protected length. */
static size_t protect(const ir_pkt_keys *k, uint8_t *pkt, size_t hdr_len, size_t pn_offset,
                      uint64_t pn, size_t payload_len)
{
    /* a long header's 2-byte Length field stands just before the packet number */
    size_t length_offset = (pkt[0] & 0x80) ? pn_offset - 2 : 0;
    return ir_pkt_protect(pkt, hdr_len, hdr_len - pn_offset, length_offset, payload_len, k, 0,
                          pn);
}

/* Removes protection in place; returns the payload length (payload at pkt + *hdr_len)
 * or -1, and the decoded packet number. */
static long unprotect(const ir_pkt_keys *k, uint8_t *pkt, size_t len, size_t pn_offset,
                      uint64_t largest_pn, uint64_t *pn, size_t *hdr_len)
{
    ir_pkt_hdr h;
    size_t pn_len;
    const uint8_t *payload;
    size_t plen;
    /* short headers: the DCID is what lies between the first byte and the packet number */
    if (ir_pkt_parse(pkt, len, pn_offset - 1, &h) != 0 ||
        ir_pkt_unprotect_header(pkt, &h, &k->hp, largest_pn, pn, &pn_len) != 0 ||
        ir_pkt_decrypt(pkt, &h, pn_len, &k->aead, 0, *pn, &payload, &plen) != 0)
        return -1;
    *hdr_len = (size_t)(payload - pkt);
    return (long)plen;
}

static uint8_t *unhex(const char *hex, size_t *len)
{
    size_t cap = strlen(hex) / 2 + 1;
    uint8_t *p = malloc(cap);
    int n = p ? t_unhex(hex, p, cap) : -1;
    if (n < 0) {
        free(p);
        *len = 0;
        return NULL;
    }
    *len = (size_t)n;
    return p;
}

#define CHECK_HEX(buf, hex)                                                                \
    do {                                                                                   \
        uint8_t t_exp[256];                                                                \
        int t_n = t_unhex((hex), t_exp, sizeof t_exp);                                     \
        CHECK(t_n > 0);                                                                    \
        if (t_n > 0) CHECK_MEM((buf), t_exp, (size_t)t_n);                                 \
    } while (0)

static const uint8_t DCID[8] = {0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08};

TEST(suites)
{
    ir_aead_alg a;
    ir_hash_alg h;
    CHECK_EQ_INT(ir_suite_algs(0x1301, &a, &h), 0);
    CHECK(a == IR_AEAD_AES_128_GCM && h == IR_HASH_SHA256);
    CHECK_EQ_INT(ir_suite_algs(0x1302, &a, &h), 0);
    CHECK(a == IR_AEAD_AES_256_GCM && h == IR_HASH_SHA384);
    CHECK_EQ_INT(ir_suite_algs(0x1303, &a, &h), 0);
    CHECK(a == IR_AEAD_CHACHA20_POLY1305 && h == IR_HASH_SHA256);
    CHECK_EQ_INT(ir_suite_algs(0x1304, &a, &h), -1); /* AES_128_CCM */
    CHECK_EQ_INT(ir_suite_algs(0x1305, &a, &h), -1);
    CHECK_EQ_INT(ir_suite_algs(0x0000, &a, &h), -1);
    CHECK_EQ_INT(ir_hash_len(IR_HASH_SHA256), 32);
    CHECK_EQ_INT(ir_hash_len(IR_HASH_SHA384), 48);
    CHECK_EQ_INT(ir_aead_key_len(IR_AEAD_AES_128_GCM), 16);
    CHECK_EQ_INT(ir_aead_key_len(IR_AEAD_AES_256_GCM), 32);
    CHECK_EQ_INT(ir_aead_key_len(IR_AEAD_CHACHA20_POLY1305), 32);
    /* RFC 9001 6.6 */
    CHECK(ir_aead_conf_limit(IR_AEAD_AES_128_GCM) == (uint64_t)1 << 23);
    CHECK(ir_aead_conf_limit(IR_AEAD_AES_256_GCM) == (uint64_t)1 << 23);
    CHECK(ir_aead_conf_limit(IR_AEAD_CHACHA20_POLY1305) >= (uint64_t)1 << 62);
    CHECK(ir_aead_integrity_limit(IR_AEAD_AES_128_GCM) == (uint64_t)1 << 52);
    CHECK(ir_aead_integrity_limit(IR_AEAD_AES_256_GCM) == (uint64_t)1 << 52);
    CHECK(ir_aead_integrity_limit(IR_AEAD_CHACHA20_POLY1305) == (uint64_t)1 << 36);
}

/* RFC 5869 test cases 1 and 3 (HKDF-Extract with SHA-256). */
TEST(hkdf_rfc5869)
{
    uint8_t ikm[22], salt[13], prk[48];
    memset(ikm, 0x0b, sizeof ikm);
    for (int i = 0; i < 13; i++) salt[i] = (uint8_t)i;
    ir_hkdf_extract(IR_HASH_SHA256, salt, sizeof salt, ikm, sizeof ikm, prk);
    CHECK_HEX(prk, "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5");
    ir_hkdf_extract(IR_HASH_SHA256, NULL, 0, ikm, sizeof ikm, prk);
    CHECK_HEX(prk, "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04");
}

/* HKDF-SHA384 Expand-Label against GnuTLS's own HKDF with a hand-built HkdfLabel. */
TEST(hkdf_sha384_cross)
{
    uint8_t secret[48], got[48], want[48], prk[48], want_prk[48];
    static const uint8_t info[] = {0x00, 0x20, 0x0d, 't', 'l', 's', '1', '3', ' ',
                                   'q', 'u', 'i', 'c', ' ', 'k', 'u', 0x00};
    for (int i = 0; i < 48; i++) secret[i] = (uint8_t)(3 * i + 1);
    gnutls_datum_t key = {secret, 48}, in = {(unsigned char *)info, sizeof info};
    gnutls_datum_t salt = {secret + 40, 8};
    ir_hkdf_expand_label(IR_HASH_SHA384, secret, 48, "quic ku", got, 32);
    CHECK_EQ_INT(gnutls_hkdf_expand(GNUTLS_MAC_SHA384, &key, &in, want, 32), 0);
    CHECK_MEM(got, want, 32);
    ir_hkdf_extract(IR_HASH_SHA384, secret + 40, 8, secret, 48, prk);
    CHECK_EQ_INT(gnutls_hkdf_extract(GNUTLS_MAC_SHA384, &key, &salt, want_prk), 0);
    CHECK_MEM(prk, want_prk, 48);
}

/* RFC 9001 A.1. */
TEST(initial_keys_a1)
{
    uint8_t cs[32], ss[32], prk[32];
    ir_pkt_keys c, s;
    ir_hkdf_extract(IR_HASH_SHA256,
                    (const uint8_t *)"\x38\x76\x2c\xf7\xf5\x59\x34\xb3\x4d\x17\x9a\xe6\xa4\xc8"
                                     "\x0c\xad\xcc\xbb\x7f\x0a",
                    20, DCID, sizeof DCID, prk);
    CHECK_HEX(prk, "7db5df06e7a69e432496adedb00851923595221596ae2ae9fb8115c1e9ed0a44");
    ir_initial_secrets(DCID, sizeof DCID, cs, ss);
    CHECK_HEX(cs, "c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea");
    CHECK_HEX(ss, "3c199828fd139efd216c155ad844cc81fb82fa8d7446fa7d78be803acdda951b");

    CHECK_EQ_INT(ir_initial_keys(DCID, sizeof DCID, &c, &s), 0);
    CHECK(c.alg == IR_AEAD_AES_128_GCM && c.hash == IR_HASH_SHA256);
    CHECK_EQ_INT(c.secret_len, 32);
    CHECK_MEM(c.secret, cs, 32);
    CHECK_EQ_INT(c.aead.key_len, 16);
    CHECK_HEX(c.aead.key, "1f369613dd76d5467730efcbe3b1a22d");
    CHECK_HEX(c.aead.iv, "fa044b2f42a3fd3b46fb255c");
    CHECK_EQ_INT(c.hp.key_len, 16);
    CHECK_HEX(c.hp.key, "9f50449e04a0e810283a1e9933adedd2");
    CHECK_MEM(s.secret, ss, 32);
    CHECK_HEX(s.aead.key, "cf3a5331653c364c88f0f379b6067e37");
    CHECK_HEX(s.aead.iv, "0ac1493ca1905853b0bba03e");
    CHECK_HEX(s.hp.key, "c206b8d9b9f0f37644430b490eeaa314");
    ir_pkt_keys_free(&c);
    ir_pkt_keys_free(&s);
    CHECK(c.aead.handle == NULL);
    ir_pkt_keys_free(&c); /* idempotent */
}

/* RFC 9001 A.2: build, pad, seal (pn 2), protect the header; every byte must match. */
TEST(client_initial_a2)
{
    ir_pkt_keys c, s;
    uint8_t pkt[1200], orig[1200], mask[5];
    size_t hdr_len, crypto_len, want_len, n;
    uint8_t *crypto = unhex(CLIENT_CRYPTO, &crypto_len);
    uint8_t *want = unhex(CLIENT_PROTECTED, &want_len);
    uint64_t pn = 0;
    long plen;

    CHECK(crypto && want);
    CHECK_EQ_INT(want_len, 1200);
    CHECK_EQ_INT(ir_initial_keys(DCID, sizeof DCID, &c, &s), 0);
    if (!crypto || !want || want_len != 1200) goto out;

    hdr_len = (size_t)t_unhex("c300000001088394c8f03e5157080000449e00000002", pkt, sizeof pkt);
    CHECK_EQ_INT(hdr_len, 22);
    memset(pkt + hdr_len, 0, sizeof pkt - hdr_len); /* PADDING frames */
    memcpy(pkt + hdr_len, crypto, crypto_len);
    memcpy(orig, pkt, sizeof orig);

    n = protect(&c, pkt, hdr_len, 18, 2, 1162);
    CHECK_EQ_INT(n, 1200);
    CHECK_HEX(pkt + 22, "d1b1c98dd7689fb8ec11d242b123dc9b"); /* the sample */
    ir_hp_mask(&c.hp, pkt + 22, mask);
    CHECK_HEX(mask, "437b9aec36");
    CHECK_HEX(pkt, "c000000001088394c8f03e5157080000449e7b9aec34");
    CHECK_MEM(pkt, want, 1200);

    /* And back: the server removes protection and finds the original packet. */
    plen = unprotect(&c, pkt, 1200, 18, 0, &pn, &hdr_len);
    CHECK_EQ_INT(plen, 1162);
    CHECK_EQ_INT(pn, 2);
    CHECK_EQ_INT(hdr_len, 22);
    CHECK_MEM(pkt, orig, 22 + 1162);

    /* The wrong direction's keys do not open it. */
    memcpy(pkt, want, 1200);
    CHECK_EQ_INT(unprotect(&s, pkt, 1200, 18, 0, &pn, &hdr_len), -1);
out:
    ir_pkt_keys_free(&c);
    ir_pkt_keys_free(&s);
    free(crypto);
    free(want);
}

/* RFC 9001 A.3: the server Initial, 2-byte packet number 1, no padding. */
TEST(server_initial_a3)
{
    ir_pkt_keys c, s;
    uint8_t pkt[256], orig[256], mask[5];
    size_t hdr_len, payload_len, want_len, n;
    uint8_t *payload = unhex(SERVER_PAYLOAD, &payload_len);
    uint8_t *want = unhex(SERVER_PROTECTED, &want_len);
    uint64_t pn = 0;
    long plen;

    CHECK(payload && want);
    CHECK_EQ_INT(payload_len, 99);
    CHECK_EQ_INT(ir_initial_keys(DCID, sizeof DCID, &c, &s), 0);
    if (!payload || !want || payload_len != 99) goto out;

    hdr_len = (size_t)t_unhex("c1000000010008f067a5502a4262b50040750001", pkt, sizeof pkt);
    CHECK_EQ_INT(hdr_len, 20);
    memcpy(pkt + hdr_len, payload, payload_len);
    memcpy(orig, pkt, hdr_len + payload_len);

    n = protect(&s, pkt, hdr_len, 18, 1, payload_len);
    CHECK_EQ_INT(n, want_len);
    CHECK_HEX(pkt + 22, "2cd0991cd25b0aac406a5816b6394100");
    ir_hp_mask(&s.hp, pkt + 22, mask);
    CHECK_HEX(mask, "2ec0d8356a");
    CHECK_HEX(pkt, "cf000000010008f067a5502a4262b5004075c0d9");
    CHECK_MEM(pkt, want, want_len);

    /* The client has seen no server packet yet: largest 0 expands 0x0001 to 1. */
    plen = unprotect(&s, pkt, n, 18, 0, &pn, &hdr_len);
    CHECK_EQ_INT(plen, 99);
    CHECK_EQ_INT(pn, 1);
    CHECK_MEM(pkt, orig, 20 + 99);
out:
    ir_pkt_keys_free(&c);
    ir_pkt_keys_free(&s);
    free(payload);
    free(want);
}

/* RFC 9001 A.4. */
TEST(retry_a4)
{
    uint8_t retry[64], tag[16], empty_tag[16];
    int n = t_unhex("ff000000010008f067a5502a4262b5746f6b656e04a265ba2eff4d829058fb3f0f2496ba",
                    retry, sizeof retry);
    CHECK_EQ_INT(n, 36);
    CHECK_EQ_INT(ir_retry_tag(DCID, sizeof DCID, retry, (size_t)n - 16, tag), 0);
    CHECK_MEM(tag, retry + n - 16, 16);
    CHECK(ir_ct_equal(tag, retry + n - 16, 16));
    /* Any change to the ODCID or the packet changes the tag. */
    CHECK_EQ_INT(ir_retry_tag(DCID, 7, retry, (size_t)n - 16, tag), 0);
    CHECK(!ir_ct_equal(tag, retry + n - 16, 16));
    retry[10] ^= 1;
    CHECK_EQ_INT(ir_retry_tag(DCID, sizeof DCID, retry, (size_t)n - 16, tag), 0);
    CHECK(!ir_ct_equal(tag, retry + n - 16, 16));
    retry[10] ^= 1;
    /* Edge cases: empty ODCID and empty packet, odcid too long. */
    CHECK_EQ_INT(ir_retry_tag(NULL, 0, NULL, 0, empty_tag), 0);
    CHECK_EQ_INT(ir_retry_tag(DCID, 21, retry, 20, tag), -1);
}

/* The Retry tag must not depend on how the pseudo-packet splits into blocks: compare
 * with a one-shot AES-128-GCM over a contiguous copy, for many lengths. */
TEST(retry_lengths)
{
    uint8_t pkt[100], pseudo[1 + 20 + 100], tag[16], want[16], odcid[20];
    ir_aead ret;
    static const uint8_t key[16] = {0xbe, 0x0c, 0x69, 0x0b, 0x9f, 0x66, 0x57, 0x5a,
                                    0x1d, 0x76, 0x6b, 0x54, 0xe3, 0x68, 0xc8, 0x4e};
    static const uint8_t iv[12] = {0x46, 0x15, 0x99, 0xd3, 0x5d, 0x63,
                                   0x2b, 0xf2, 0x23, 0x98, 0x25, 0xbb};
    for (int i = 0; i < 100; i++) pkt[i] = (uint8_t)(i * 7 + 3);
    for (int i = 0; i < 20; i++) odcid[i] = (uint8_t)(0xa0 + i);
    CHECK_EQ_INT(ir_aead_init(&ret, IR_AEAD_AES_128_GCM, key, iv), 0);
    for (size_t ol = 0; ol <= 20; ol += 4) {
        for (size_t len = 0; len <= 100; len += 3) {
            pseudo[0] = (uint8_t)ol;
            memcpy(pseudo + 1, odcid, ol);
            memcpy(pseudo + 1 + ol, pkt, len);
            CHECK_EQ_INT(ir_aead_seal(&ret, 0, 0, pseudo, 1 + ol + len, NULL, 0, want), 0);
            CHECK_EQ_INT(ir_retry_tag(odcid, ol, pkt, len, tag), 0);
            CHECK_MEM(tag, want, 16);
        }
    }
    ir_aead_free(&ret);
}

/* RFC 9001 A.5: ChaCha20-Poly1305 short header packet. */
TEST(chacha_short_a5)
{
    uint8_t secret[32], pkt[64], want[64], nonce[12], mask[5], ku[32];
    ir_pkt_keys k, next;
    uint64_t pn = 0;
    size_t hdr_len;
    long plen;
    const uint64_t PN = 654360564;

    CHECK_EQ_INT(t_unhex("9ac312a7f877468ebe69422748ad00a15443f18203a07d6060f688f30f21632b",
                         secret, sizeof secret), 32);
    CHECK_EQ_INT(ir_pkt_keys_init(&k, IR_AEAD_CHACHA20_POLY1305, IR_HASH_SHA256, secret, 32),
                 0);
    CHECK_EQ_INT(k.aead.key_len, 32);
    CHECK_HEX(k.aead.key, "c6d98ff3441c3fe1b2182094f69caa2ed4b716b65488960a7a984979fb23e1c8");
    CHECK_HEX(k.aead.iv, "e0459b3474bdd0e44a41c144");
    CHECK_HEX(k.hp.key, "25a282b9e82f06f21f488917a4fc8f1b73573685608597d0efcb076b0ab7a7a4");
    ir_hkdf_expand_label(IR_HASH_SHA256, secret, 32, "quic ku", ku, 32);
    CHECK_HEX(ku, "1223504755036d556342ee9361d253421a826c9ecdf3c7148684b36b714881f9");

    ir_aead_nonce(&k.aead, 0, PN, nonce);
    CHECK_HEX(nonce, "e0459b3474bdd0e46d417eb0");

    CHECK_EQ_INT(t_unhex("4200bff4", pkt, sizeof pkt), 4);
    pkt[4] = 0x01; /* PING */
    CHECK_EQ_INT(protect(&k, pkt, 4, 1, PN, 1), 21);
    CHECK_HEX(pkt + 4, "655e5cd55c41f69080575d7999c25a5bfb");
    ir_hp_mask(&k.hp, pkt + 5, mask);
    CHECK_HEX(mask, "aefefe7d03");
    CHECK_EQ_INT(t_unhex("4cfe4189655e5cd55c41f69080575d7999c25a5bfb", want, sizeof want), 21);
    CHECK_MEM(pkt, want, 21);

    plen = unprotect(&k, pkt, 21, 1, PN - 1, &pn, &hdr_len);
    CHECK_EQ_INT(plen, 1);
    CHECK(pn == PN);
    CHECK_EQ_INT(hdr_len, 4);
    CHECK_HEX(pkt, "4200bff401");

    /* The key update from this secret: next secret is the RFC's "ku". */
    CHECK_EQ_INT(ir_pkt_keys_update(&next, &k), 0);
    CHECK_EQ_INT(next.secret_len, 32);
    CHECK_MEM(next.secret, ku, 32);
    CHECK_MEM(next.hp.key, k.hp.key, 32);
    CHECK(memcmp(next.aead.key, k.aead.key, 32) != 0);
    ir_pkt_keys_free(&next);
    ir_pkt_keys_free(&k);
}

/* quic-tls.md 3.4: the multipath nonce (rustls test_multipath_aead_basic). */
TEST(multipath_nonce)
{
    uint8_t secret[32], nonce[12], out[128], back[128], want[128];
    const char *aad = "This is a test";
    const char *pt = "The quick brown fox jumps over the lazy dog";
    size_t pt_len = strlen(pt);
    ir_pkt_keys k;
    int want_len;

    for (int i = 0; i < 32; i++) secret[i] = (uint8_t)i;
    secret[25] = 0x23;
    CHECK_EQ_INT(ir_pkt_keys_init(&k, IR_AEAD_AES_128_GCM, IR_HASH_SHA256, secret, 32), 0);
    CHECK_HEX(k.aead.key, "1a2503df288ed5bede6a178443e5105d");
    CHECK_HEX(k.aead.iv, "9ec42e41d1624b96299ac09d");
    ir_aead_nonce(&k.aead, 2, 12345, nonce);
    CHECK_HEX(nonce, "9ec42e43d1624b96299af0a4");
    want_len = t_unhex("7b8be8348819c98ffa595727253f00d2dce3ba8cb7fb0dcb0674cc64a6402bb9"
                       "ae55d4a3f28d18a63ee4bb89f81f987ef0974f33fd822b72adeafe",
                       want, sizeof want);
    CHECK_EQ_INT(want_len, (int)pt_len + 16);
    CHECK_EQ_INT(ir_aead_seal(&k.aead, 2, 12345, (const uint8_t *)aad, strlen(aad),
                              (const uint8_t *)pt, pt_len, out),
                 0);
    CHECK_MEM(out, want, pt_len + 16);
    CHECK_EQ_INT(ir_aead_open(&k.aead, 2, 12345, (const uint8_t *)aad, strlen(aad), out,
                              pt_len + 16, back),
                 (long)pt_len);
    CHECK_MEM(back, pt, pt_len);
    /* Other paths or packet numbers do not open it. */
    CHECK_EQ_INT(ir_aead_open(&k.aead, 0, 12345, (const uint8_t *)aad, strlen(aad), out,
                              pt_len + 16, back),
                 -1);
    CHECK_EQ_INT(ir_aead_open(&k.aead, 3, 12345, (const uint8_t *)aad, strlen(aad), out,
                              pt_len + 16, back),
                 -1);
    CHECK_EQ_INT(ir_aead_open(&k.aead, 2, 12344, (const uint8_t *)aad, strlen(aad), out,
                              pt_len + 16, back),
                 -1);
    /* Path 0 is exactly RFC 9001's nonce; high path bits land in bytes 0..3. */
    ir_aead_nonce(&k.aead, 0, 0x0102030405060708ull, nonce);
    CHECK_HEX(nonce, "9ec42e41d06048922c9cc795");
    ir_aead_nonce(&k.aead, 0xffffffffu, 0, nonce);
    CHECK_HEX(nonce, "613bd1bed1624b96299ac09d");
    ir_pkt_keys_free(&k);
}

static void make_keys(ir_pkt_keys *k, ir_aead_alg alg, ir_hash_alg hash, uint8_t seed)
{
    uint8_t secret[48];
    for (int i = 0; i < 48; i++) secret[i] = (uint8_t)(seed + 13 * i);
    CHECK_EQ_INT(ir_pkt_keys_init(k, alg, hash, secret, ir_hash_len(hash)), 0);
}

/* Flipping any single bit-pattern in aad, ciphertext or tag makes open fail. */
TEST(tampering)
{
    static const ir_aead_alg algs[3] = {IR_AEAD_AES_128_GCM, IR_AEAD_AES_256_GCM,
                                        IR_AEAD_CHACHA20_POLY1305};
    for (int a = 0; a < 3; a++) {
        ir_pkt_keys k;
        uint8_t aad[21], pt[67], ct[67 + 16], bad[67 + 16], out[67 + 16];
        int failures = 0;
        make_keys(&k, algs[a], a == 1 ? IR_HASH_SHA384 : IR_HASH_SHA256, (uint8_t)(a + 1));
        for (size_t i = 0; i < sizeof aad; i++) aad[i] = (uint8_t)(i + 100);
        for (size_t i = 0; i < sizeof pt; i++) pt[i] = (uint8_t)(i * 5);
        CHECK_EQ_INT(ir_aead_seal(&k.aead, 1, 77, aad, sizeof aad, pt, sizeof pt, ct), 0);
        CHECK_EQ_INT(ir_aead_open(&k.aead, 1, 77, aad, sizeof aad, ct, sizeof ct, out),
                     (long)sizeof pt);
        CHECK_MEM(out, pt, sizeof pt);
        for (size_t i = 0; i < sizeof aad; i++) {
            aad[i] ^= 0x80;
            if (ir_aead_open(&k.aead, 1, 77, aad, sizeof aad, ct, sizeof ct, out) != -1)
                failures++;
            aad[i] ^= 0x80;
        }
        for (size_t i = 0; i < sizeof ct; i++) {
            memcpy(bad, ct, sizeof ct);
            bad[i] ^= (uint8_t)(1u << (i % 8));
            if (ir_aead_open(&k.aead, 1, 77, aad, sizeof aad, bad, sizeof bad, out) != -1)
                failures++;
            /* in place too */
            if (ir_aead_open(&k.aead, 1, 77, aad, sizeof aad, bad, sizeof bad, bad) != -1)
                failures++;
        }
        CHECK_EQ_INT(failures, 0);
        /* Truncated input, empty aad vs. non-empty, too short for a tag. */
        CHECK_EQ_INT(ir_aead_open(&k.aead, 1, 77, aad, sizeof aad, ct, sizeof ct - 1, out), -1);
        CHECK_EQ_INT(ir_aead_open(&k.aead, 1, 77, NULL, 0, ct, sizeof ct, out), -1);
        CHECK_EQ_INT(ir_aead_open(&k.aead, 1, 77, aad, sizeof aad, ct, 15, out), -1);
        /* Still opens after all that. */
        CHECK_EQ_INT(ir_aead_open(&k.aead, 1, 77, aad, sizeof aad, ct, sizeof ct, out),
                     (long)sizeof pt);
        ir_pkt_keys_free(&k);
    }
}

/* Seal/open round trips for every algorithm and many lengths, in place and not, and
 * agreement with nettle's own AES-GCM and ChaCha20-Poly1305 (an independent path). */
TEST(round_trips)
{
    static const ir_aead_alg algs[3] = {IR_AEAD_AES_128_GCM, IR_AEAD_AES_256_GCM,
                                        IR_AEAD_CHACHA20_POLY1305};
    static const size_t lens[] = {0, 1, 15, 16, 17, 31, 63, 64, 65, 255, 1000, 1200, 1452};
    static uint8_t pt[1500], ct[1500 + 16], ref[1500 + 16], buf[1500 + 16];
    uint8_t aad[40];
    for (size_t i = 0; i < sizeof pt; i++) pt[i] = (uint8_t)(i * 31 + 7);
    for (size_t i = 0; i < sizeof aad; i++) aad[i] = (uint8_t)(0xc0 + i);
    for (int a = 0; a < 3; a++) {
        ir_pkt_keys k;
        make_keys(&k, algs[a], a == 1 ? IR_HASH_SHA384 : IR_HASH_SHA256, (uint8_t)(a * 50));
        CHECK_EQ_INT(k.secret_len, a == 1 ? 48 : 32);
        CHECK_EQ_INT(k.aead.key_len, ir_aead_key_len(algs[a]));
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            size_t len = lens[li];
            uint64_t pn = 1000 + li;
            uint32_t path = (uint32_t)li;
            uint8_t nonce[12];
            ir_aead_nonce(&k.aead, path, pn, nonce);
            CHECK_EQ_INT(ir_aead_seal(&k.aead, path, pn, aad, li, pt, len, ct), 0);
            /* reference */
            if (algs[a] == IR_AEAD_AES_128_GCM) {
                struct gcm_aes128_ctx g;
                gcm_aes128_set_key(&g, k.aead.key);
                gcm_aes128_set_iv(&g, 12, nonce);
                gcm_aes128_update(&g, li, aad);
                gcm_aes128_encrypt(&g, len, ref, pt);
                gcm_aes128_digest(&g, 16, ref + len);
            } else if (algs[a] == IR_AEAD_AES_256_GCM) {
                struct gcm_aes256_ctx g;
                gcm_aes256_set_key(&g, k.aead.key);
                gcm_aes256_set_iv(&g, 12, nonce);
                gcm_aes256_update(&g, li, aad);
                gcm_aes256_encrypt(&g, len, ref, pt);
                gcm_aes256_digest(&g, 16, ref + len);
            } else {
                struct chacha_poly1305_ctx g;
                chacha_poly1305_set_key(&g, k.aead.key);
                chacha_poly1305_set_nonce(&g, nonce);
                chacha_poly1305_update(&g, li, aad);
                chacha_poly1305_encrypt(&g, len, ref, pt);
                chacha_poly1305_digest(&g, 16, ref + len);
            }
            CHECK_MEM(ct, ref, len + 16);
            memset(buf, 0xee, sizeof buf);
            CHECK_EQ_INT(ir_aead_open(&k.aead, path, pn, aad, li, ct, len + 16, buf), (long)len);
            if (len) CHECK_MEM(buf, pt, len);
            /* in place, both ways */
            if (len) memcpy(buf, pt, len);
            CHECK_EQ_INT(ir_aead_seal(&k.aead, path, pn, aad, li, buf, len, buf), 0);
            CHECK_MEM(buf, ct, len + 16);
            CHECK_EQ_INT(ir_aead_open(&k.aead, path, pn, aad, li, buf, len + 16, buf), (long)len);
            if (len) CHECK_MEM(buf, pt, len);
        }
        /* NULL inputs for empty aad / payload. */
        CHECK_EQ_INT(ir_aead_seal(&k.aead, 0, 1, NULL, 0, NULL, 0, ct), 0);
        CHECK_EQ_INT(ir_aead_open(&k.aead, 0, 1, NULL, 0, ct, 16, NULL), 0);
        CHECK_EQ_INT(ir_aead_open(&k.aead, 0, 1, NULL, 0, ct, 16, buf), 0);
        ir_pkt_keys_free(&k);
        /* A freed key refuses to work. */
        CHECK_EQ_INT(ir_aead_seal(&k.aead, 0, 1, NULL, 0, NULL, 0, ct), -1);
        CHECK_EQ_INT(ir_aead_open(&k.aead, 0, 1, NULL, 0, ct, 16, buf), -1);
    }
}

/* AES-256 header protection against nettle's AES directly, and the ChaCha20 mask against
 * a keystream from nettle's ChaCha20 with the sample split as counter || nonce. */
TEST(hp_masks)
{
    ir_pkt_keys k;
    uint8_t sample[16], mask[5], ref[16];
    static const uint8_t zeros[16];
    for (int i = 0; i < 16; i++) sample[i] = (uint8_t)(0x11 * i);

    make_keys(&k, IR_AEAD_AES_256_GCM, IR_HASH_SHA384, 9);
    CHECK_EQ_INT(k.hp.key_len, 32);
    {
        struct aes256_ctx a;
        aes256_set_encrypt_key(&a, k.hp.key);
        aes256_encrypt(&a, 16, ref, sample);
    }
    ir_hp_mask(&k.hp, sample, mask);
    CHECK_MEM(mask, ref, 5);
    ir_pkt_keys_free(&k);

    make_keys(&k, IR_AEAD_CHACHA20_POLY1305, IR_HASH_SHA256, 9);
    {
        struct chacha_ctx c;
        chacha_set_key(&c, k.hp.key);
        chacha_set_nonce96(&c, sample + 4);
        chacha_set_counter32(&c, sample);
        chacha_crypt32(&c, 16, ref, zeros);
    }
    ir_hp_mask(&k.hp, sample, mask);
    CHECK_MEM(mask, ref, 5);
    /* Different samples give different masks; the mask is a function of the sample. */
    sample[0] ^= 1;
    ir_hp_mask(&k.hp, sample, ref);
    CHECK(memcmp(mask, ref, 5) != 0);
    ir_pkt_keys_free(&k);
}

/* Key update keeps the hp key, changes key/iv/secret, and chains; in place works too. */
TEST(key_update)
{
    static const ir_aead_alg algs[3] = {IR_AEAD_AES_128_GCM, IR_AEAD_AES_256_GCM,
                                        IR_AEAD_CHACHA20_POLY1305};
    for (int a = 0; a < 3; a++) {
        ir_hash_alg h = a == 1 ? IR_HASH_SHA384 : IR_HASH_SHA256;
        size_t hl = ir_hash_len(h), kl = ir_aead_key_len(algs[a]);
        ir_pkt_keys k, n1, n2, fresh, inplace;
        uint8_t ku[48], ct[64], pt[48], out[64];
        make_keys(&k, algs[a], h, (uint8_t)(40 + a));
        CHECK_EQ_INT(ir_pkt_keys_update(&n1, &k), 0);
        ir_hkdf_expand_label(h, k.secret, hl, "quic ku", ku, hl);
        CHECK_EQ_INT(n1.secret_len, hl);
        CHECK_MEM(n1.secret, ku, hl);
        CHECK(n1.alg == k.alg && n1.hash == k.hash);
        CHECK_EQ_INT(n1.hp.key_len, kl);
        CHECK_MEM(n1.hp.key, k.hp.key, kl);
        CHECK(memcmp(n1.aead.key, k.aead.key, kl) != 0);
        CHECK(memcmp(n1.aead.iv, k.aead.iv, 12) != 0);
        /* The updated set equals one freshly derived from the new secret, except hp. */
        CHECK_EQ_INT(ir_pkt_keys_init(&fresh, algs[a], h, ku, hl), 0);
        CHECK_MEM(n1.aead.key, fresh.aead.key, kl);
        CHECK_MEM(n1.aead.iv, fresh.aead.iv, 12);
        CHECK(memcmp(fresh.hp.key, k.hp.key, kl) != 0);
        /* Old keys cannot open what new keys sealed. */
        memset(pt, 0x42, sizeof pt);
        CHECK_EQ_INT(ir_aead_seal(&n1.aead, 0, 5, pt, 4, pt, sizeof pt, ct), 0);
        CHECK_EQ_INT(ir_aead_open(&k.aead, 0, 5, pt, 4, ct, sizeof ct, out), -1);
        CHECK_EQ_INT(ir_aead_open(&fresh.aead, 0, 5, pt, 4, ct, sizeof ct, out), (long)sizeof pt);
        /* Chaining, and updating in place gives the same result. */
        CHECK_EQ_INT(ir_pkt_keys_update(&n2, &n1), 0);
        CHECK_MEM(n2.hp.key, k.hp.key, kl);
        CHECK(memcmp(n2.aead.key, n1.aead.key, kl) != 0);
        make_keys(&inplace, algs[a], h, (uint8_t)(40 + a));
        CHECK_EQ_INT(ir_pkt_keys_update(&inplace, &inplace), 0);
        CHECK_EQ_INT(ir_pkt_keys_update(&inplace, &inplace), 0);
        CHECK_MEM(inplace.secret, n2.secret, hl);
        CHECK_MEM(inplace.aead.key, n2.aead.key, kl);
        CHECK_EQ_INT(ir_aead_seal(&n2.aead, 3, 9, NULL, 0, pt, sizeof pt, ct), 0);
        CHECK_EQ_INT(ir_aead_open(&inplace.aead, 3, 9, NULL, 0, ct, sizeof ct, out),
                     (long)sizeof pt);
        /* Usage counters (RFC 9001 6.6) belong to one key: a new key, or an updated one
         * (in place too), starts at zero. */
        CHECK(k.sealed == 0 && k.open_failed == 0 && fresh.sealed == 0);
        n2.sealed = 7;
        n2.open_failed = 3;
        inplace.sealed = 1000;
        inplace.open_failed = 2;
        ir_pkt_keys n3;
        CHECK_EQ_INT(ir_pkt_keys_update(&n3, &n2), 0);
        CHECK(n3.sealed == 0 && n3.open_failed == 0);
        CHECK(n2.sealed == 7 && n2.open_failed == 3);
        CHECK_EQ_INT(ir_pkt_keys_update(&inplace, &inplace), 0);
        CHECK(inplace.sealed == 0 && inplace.open_failed == 0);
        ir_pkt_keys_free(&n3);
        ir_pkt_keys_free(&inplace);
        ir_pkt_keys_free(&fresh);
        ir_pkt_keys_free(&n2);
        ir_pkt_keys_free(&n1);
        ir_pkt_keys_free(&k);
    }
}

TEST(bad_arguments)
{
    ir_pkt_keys k;
    uint8_t secret[48] = {1};
    /* Secret length must match the hash. */
    CHECK_EQ_INT(ir_pkt_keys_init(&k, IR_AEAD_AES_128_GCM, IR_HASH_SHA256, secret, 48), -1);
    CHECK(k.aead.handle == NULL);
    CHECK_EQ_INT(ir_pkt_keys_init(&k, IR_AEAD_AES_256_GCM, IR_HASH_SHA384, secret, 32), -1);
    CHECK_EQ_INT(ir_pkt_keys_init(&k, (ir_aead_alg)7, IR_HASH_SHA256, secret, 32), -1);
    CHECK_EQ_INT(ir_pkt_keys_init(&k, IR_AEAD_AES_128_GCM, (ir_hash_alg)7, secret, 32), -1);
    CHECK_EQ_INT(ir_pkt_keys_init(&k, IR_AEAD_AES_128_GCM, IR_HASH_SHA256, NULL, 32), -1);
    /* Updating a zeroed key set fails. */
    ir_pkt_keys z, n;
    memset(&z, 0, sizeof z);
    CHECK_EQ_INT(ir_pkt_keys_update(&n, &z), -1);
    ir_pkt_keys_free(&z);
    /* Initial keys from an empty DCID (allowed after a Retry with an empty SCID). */
    ir_pkt_keys c, s;
    CHECK_EQ_INT(ir_initial_keys(NULL, 0, &c, &s), 0);
    CHECK(memcmp(c.aead.key, s.aead.key, 16) != 0);
    ir_pkt_keys_free(&c);
    ir_pkt_keys_free(&s);
    /* Expand-Label with an over-long label yields zeros rather than garbage. */
    char label[260];
    uint8_t out[16];
    memset(label, 'a', sizeof label - 1);
    label[sizeof label - 1] = 0;
    memset(out, 0xff, sizeof out);
    ir_hkdf_expand_label(IR_HASH_SHA256, secret, 32, label, out, sizeof out);
    CHECK(out[0] == 0 && out[15] == 0);
}

int main(void)
{
    RUN(suites);
    RUN(hkdf_rfc5869);
    RUN(hkdf_sha384_cross);
    RUN(initial_keys_a1);
    RUN(client_initial_a2);
    RUN(server_initial_a3);
    RUN(retry_a4);
    RUN(retry_lengths);
    RUN(chacha_short_a5);
    RUN(multipath_nonce);
    RUN(tampering);
    RUN(round_trips);
    RUN(hp_masks);
    RUN(key_update);
    RUN(bad_arguments);
    TEST_EXIT();
}
