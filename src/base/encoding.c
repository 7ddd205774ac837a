#include "encoding.h"

static const char HEX[] = "0123456789abcdef";

void ir_hex_encode(const uint8_t *in, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = HEX[in[i] >> 4];
        out[2 * i + 1] = HEX[in[i] & 15];
    }
    out[2 * len] = 0;
}

static int hex_val(char c, int allow_upper)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (allow_upper && c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int ir_hex_decode(const char *text, size_t textlen, uint8_t *out, size_t outlen, int allow_upper)
{
    if (textlen != 2 * outlen)
        return -1;
    for (size_t i = 0; i < outlen; i++) {
        int hi = hex_val(text[2 * i], allow_upper), lo = hex_val(text[2 * i + 1], allow_upper);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static const char *const B32_ALPHABETS[] = {
    "abcdefghijklmnopqrstuvwxyz234567",
    "0123456789abcdefghijklmnopqrstuv",
    "ybndrfg8ejkmcpqxot1uwisza345h769",
};

size_t ir_b32_encoded_len(size_t len)
{
    return (len * 8 + 4) / 5;
}

size_t ir_b32_decoded_len(size_t textlen)
{
    return textlen * 5 / 8;
}

void ir_b32_encode(ir_b32_alphabet a, const uint8_t *in, size_t len, char *out)
{
    const char *alpha = B32_ALPHABETS[a];
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            out[o++] = alpha[(acc >> bits) & 31];
        }
    }
    if (bits > 0)
        out[o++] = alpha[(acc << (5 - bits)) & 31];
    out[o] = 0;
}

static int b32_val(ir_b32_alphabet a, char c)
{
    if (a != IR_B32_Z && c >= 'A' && c <= 'Z')
        c = (char)(c - 'A' + 'a');
    const char *alpha = B32_ALPHABETS[a];
    for (int i = 0; i < 32; i++)
        if (alpha[i] == c)
            return i;
    return -1;
}

long ir_b32_decode(ir_b32_alphabet a, const char *text, size_t textlen, uint8_t *out,
                   size_t outcap, size_t *err_pos)
{
    size_t n = ir_b32_decoded_len(textlen);
    size_t rem = textlen % 8;
    /* 1, 3 and 6 leftover characters cannot come from whole bytes */
    if (rem == 1 || rem == 3 || rem == 6) {
        *err_pos = textlen - 1;
        return IR_B32_E_LENGTH;
    }
    if (n > outcap) {
        *err_pos = 0;
        return IR_B32_E_SPACE;
    }
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < textlen; i++) {
        int v = b32_val(a, text[i]);
        if (v < 0) {
            *err_pos = i;
            return IR_B32_E_SYMBOL;
        }
        acc = (acc << 5) | (uint32_t)v;
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
        *err_pos = textlen - 1;
        return IR_B32_E_TRAILING;
    }
    return (long)o;
}

int ir_utf8_valid(const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint8_t lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
        if (c >= 0xc2 && c <= 0xdf) {
            n = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 3;
            if (c == 0xe0)
                lo = 0xa0; /* no overlong forms */
            else if (c == 0xed)
                hi = 0x9f; /* no surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 4;
            if (c == 0xf0)
                lo = 0x90;
            else if (c == 0xf4)
                hi = 0x8f; /* nothing above U+10FFFF */
        } else {
            return 0;
        }
        if (len - i < n)
            return 0;
        if (p[i + 1] < lo || p[i + 1] > hi)
            return 0;
        for (size_t k = 2; k < n; k++)
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
        i += n;
    }
    return 1;
}
