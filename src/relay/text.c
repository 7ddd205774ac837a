#include "text.h"

static const char B64_STD[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char B64_URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t ir_b64_encoded_len(ir_b64_alphabet a, size_t len)
{
    if (a == IR_B64_STD)
        return (len + 2) / 3 * 4;
    return len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0);
}

void ir_b64_encode(ir_b64_alphabet a, const uint8_t *in, size_t len, char *out)
{
    const char *alpha = a == IR_B64_STD ? B64_STD : B64_URL;
    size_t i = 0, o = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = alpha[v >> 18];
        out[o++] = alpha[(v >> 12) & 63];
        out[o++] = alpha[(v >> 6) & 63];
        out[o++] = alpha[v & 63];
    }
    size_t rest = len - i;
    if (rest) {
        uint32_t v = (uint32_t)in[i] << 16 | (rest == 2 ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = alpha[v >> 18];
        out[o++] = alpha[(v >> 12) & 63];
        if (rest == 2)
            out[o++] = alpha[(v >> 6) & 63];
        if (a == IR_B64_STD) {
            if (rest == 1)
                out[o++] = '=';
            out[o++] = '=';
        }
    }
    out[o] = '\0';
}

static int b64_value(ir_b64_alphabet a, char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (a == IR_B64_STD)
        return c == '+' ? 62 : c == '/' ? 63 : -1;
    return c == '-' ? 62 : c == '_' ? 63 : -1;
}

long ir_b64_decode(ir_b64_alphabet a, const char *text, size_t len, uint8_t *out, size_t outcap)
{
    size_t symbols = len;
    if (a == IR_B64_STD) {
        if (len % 4)
            return -1;
        if (len && text[len - 1] == '=')
            symbols--;
        if (len && text[len - 2] == '=')
            symbols--;
    }
    if (symbols % 4 == 1)
        return -1;
    size_t outlen = symbols / 4 * 3 + (symbols % 4 ? symbols % 4 - 1 : 0);
    if (outlen > outcap)
        return -1;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < symbols; i++) {
        int v = b64_value(a, text[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6 | (uint32_t)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    if (bits && (acc & ((1u << bits) - 1)))
        return -1; /* non-zero trailing bits */
    return (long)o;
}

