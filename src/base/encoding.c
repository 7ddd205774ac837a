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
