/* BLAKE3 against the official test vectors (tests/data/blake3-test-vectors.json, read
 * from the directory in IROH_TEST_DATA), plus incremental, seek and re-finalize checks. */
#include "base/blake3.h"

#include "test.h"

#define MAX_CASES 64
#define MAX_OUT 256

typedef struct vec_case {
    size_t input_len;
    size_t out_len; /* extended output length, the same for all three modes */
    uint8_t hash[MAX_OUT], keyed[MAX_OUT], derive[MAX_OUT];
} vec_case;

static vec_case cases[MAX_CASES];
static size_t n_cases;
static uint8_t vec_key[IR_BLAKE3_KEY_LEN];
static char vec_context[256];

/* ---- a tiny scanner for the vector file's flat structure ---- */

/* Finds `"name"` followed by a colon in [p, end); returns the position after the colon
 * and any whitespace, or NULL. */
static const char *find_field(const char *p, const char *end, const char *name)
{
    size_t nl = strlen(name);
    for (; p + nl + 2 <= end; p++) {
        if (p[0] != '"' || memcmp(p + 1, name, nl) != 0 || p[nl + 1] != '"') continue;
        const char *q = p + nl + 2;
        while (q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')) q++;
        if (q >= end || *q != ':') continue;
        q++;
        while (q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')) q++;
        return q;
    }
    return NULL;
}

/* Copies the string value (no escapes expected) of field `name` into out; returns its
 * length or -1. */
static int string_field(const char *p, const char *end, const char *name, char *out, size_t cap)
{
    const char *q = find_field(p, end, name);
    if (!q || *q != '"') return -1;
    q++;
    size_t n = 0;
    while (q < end && *q != '"') {
        if (*q == '\\' || n + 1 >= cap) return -1;
        out[n++] = *q++;
    }
    if (q >= end) return -1;
    out[n] = '\0';
    return (int)n;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *data = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 65536;
            char *d = realloc(data, cap);
            if (!d) {
                free(data);
                fclose(f);
                return NULL;
            }
            data = d;
        }
        size_t got = fread(data + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(data);
        return NULL;
    }
    data[n] = '\0';
    *len = n;
    return data;
}

/* Loads the vectors; returns 0, or -1 after printing why. */
static int load_vectors(void)
{
    const char *dir = getenv("IROH_TEST_DATA");
    if (!dir || !*dir) {
        fprintf(stderr, "IROH_TEST_DATA is not set (it must name the tests/data directory)\n");
        return -1;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/blake3-test-vectors.json", dir);
    size_t len = 0;
    char *json = read_file(path, &len);
    if (!json) {
        fprintf(stderr, "cannot read %s\n", path);
        return -1;
    }
    const char *end = json + len;
    static char hex[2 * MAX_OUT + 2];
    int rc = -1;

    if (string_field(json, end, "key", hex, sizeof hex) != IR_BLAKE3_KEY_LEN) {
        fprintf(stderr, "%s: bad \"key\"\n", path);
        goto out;
    }
    memcpy(vec_key, hex, IR_BLAKE3_KEY_LEN);
    if (string_field(json, end, "context_string", vec_context, sizeof vec_context) <= 0) {
        fprintf(stderr, "%s: bad \"context_string\"\n", path);
        goto out;
    }
    const char *p = find_field(json, end, "input_len");
    while (p) {
        if (n_cases == MAX_CASES) {
            fprintf(stderr, "%s: more than %d cases\n", path, MAX_CASES);
            goto out;
        }
        vec_case *c = &cases[n_cases];
        char *num_end;
        c->input_len = (size_t)strtoul(p, &num_end, 10);
        if (num_end == p) {
            fprintf(stderr, "%s: bad input_len in case %zu\n", path, n_cases);
            goto out;
        }
        const char *next = find_field(p, end, "input_len");
        const char *case_end = next ? next : end;
        static const char *const names[3] = {"hash", "keyed_hash", "derive_key"};
        uint8_t *dst[3] = {c->hash, c->keyed, c->derive};
        for (int k = 0; k < 3; k++) {
            int n = string_field(p, case_end, names[k], hex, sizeof hex);
            int bytes = n > 0 ? t_unhex(hex, dst[k], MAX_OUT) : -1;
            if (bytes < IR_BLAKE3_OUT_LEN || (k > 0 && (size_t)bytes != c->out_len)) {
                fprintf(stderr, "%s: bad \"%s\" in case %zu\n", path, names[k], n_cases);
                goto out;
            }
            c->out_len = (size_t)bytes;
        }
        n_cases++;
        p = next;
    }
    if (n_cases == 0) {
        fprintf(stderr, "%s: no cases\n", path);
        goto out;
    }
    rc = 0;
out:
    free(json);
    return rc;
}

/* ---- helpers ---- */

static uint8_t *pattern(size_t len)
{
    uint8_t *p = malloc(len ? len : 1);
    if (!p) abort();
    for (size_t i = 0; i < len; i++) p[i] = (uint8_t)(i % 251);
    return p;
}

enum { MODE_HASH, MODE_KEYED, MODE_DERIVE };

static void init_mode(ir_blake3 *h, int mode)
{
    if (mode == MODE_HASH) ir_blake3_init(h);
    else if (mode == MODE_KEYED) ir_blake3_init_keyed(h, vec_key);
    else ir_blake3_init_derive_key(h, vec_context);
}

static const uint8_t *expected(const vec_case *c, int mode)
{
    return mode == MODE_HASH ? c->hash : mode == MODE_KEYED ? c->keyed : c->derive;
}

static const char *const mode_names[3] = {"hash", "keyed_hash", "derive_key"};

/* ---- tests ---- */

TEST(test_vectors)
{
    CHECK(n_cases > 0);
    for (size_t i = 0; i < n_cases; i++) {
        const vec_case *c = &cases[i];
        uint8_t *in = pattern(c->input_len);
        uint8_t out[MAX_OUT];
        int before = t_failures;

        /* One-shot helpers, default length. */
        ir_blake3_hash(in, c->input_len, out);
        CHECK_MEM(out, c->hash, IR_BLAKE3_OUT_LEN);
        ir_blake3_keyed_hash(vec_key, in, c->input_len, out);
        CHECK_MEM(out, c->keyed, IR_BLAKE3_OUT_LEN);
        ir_blake3_derive_key(vec_context, in, c->input_len, out, IR_BLAKE3_OUT_LEN);
        CHECK_MEM(out, c->derive, IR_BLAKE3_OUT_LEN);
        ir_blake3_derive_key(vec_context, in, c->input_len, out, c->out_len);
        CHECK_MEM(out, c->derive, c->out_len);

        /* Hasher, full extended length and the 32-byte prefix. */
        for (int mode = 0; mode < 3; mode++) {
            ir_blake3 h;
            init_mode(&h, mode);
            ir_blake3_update(&h, in, c->input_len);
            memset(out, 0, sizeof out);
            ir_blake3_finalize(&h, out, c->out_len);
            CHECK_MEM(out, expected(c, mode), c->out_len);
            memset(out, 0, sizeof out);
            ir_blake3_finalize(&h, out, IR_BLAKE3_OUT_LEN);
            CHECK_MEM(out, expected(c, mode), IR_BLAKE3_OUT_LEN);
            CHECK(out[IR_BLAKE3_OUT_LEN] == 0); /* nothing written past out_len */
        }
        if (t_failures != before) fprintf(stderr, "  (input_len %zu)\n", c->input_len);
        free(in);
    }
}

TEST(test_incremental)
{
    static const size_t pieces[] = {1, 63, 64, 65, 1023, 1024, 1025};
    for (size_t i = 0; i < n_cases; i++) {
        const vec_case *c = &cases[i];
        uint8_t *in = pattern(c->input_len);
        for (size_t s = 0; s < sizeof pieces / sizeof pieces[0]; s++) {
            for (int mode = 0; mode < 3; mode++) {
                ir_blake3 h;
                uint8_t out[MAX_OUT];
                init_mode(&h, mode);
                ir_blake3_update(&h, in, 0); /* empty updates are harmless */
                for (size_t off = 0; off < c->input_len; off += pieces[s]) {
                    size_t n = c->input_len - off < pieces[s] ? c->input_len - off : pieces[s];
                    ir_blake3_update(&h, in + off, n);
                }
                ir_blake3_finalize(&h, out, c->out_len);
                int before = t_failures;
                CHECK_MEM(out, expected(c, mode), c->out_len);
                if (t_failures != before)
                    fprintf(stderr, "  (input_len %zu, pieces of %zu, %s)\n", c->input_len,
                            pieces[s], mode_names[mode]);
            }
        }
        /* Varying piece sizes, so every buffer state meets every boundary. */
        {
            static const size_t mix[] = {1, 1025, 63, 64, 7, 1024, 65, 1023, 2048, 3, 129};
            ir_blake3 h;
            uint8_t out[MAX_OUT];
            ir_blake3_init(&h);
            size_t off = 0, k = 0;
            while (off < c->input_len) {
                size_t n = mix[k++ % (sizeof mix / sizeof mix[0])];
                if (n > c->input_len - off) n = c->input_len - off;
                ir_blake3_update(&h, in + off, n);
                off += n;
            }
            ir_blake3_finalize(&h, out, c->out_len);
            CHECK_MEM(out, c->hash, c->out_len);
        }
        free(in);
    }
}

TEST(test_seek)
{
    static const size_t seeks[] = {0, 1, 7, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 130};
    for (size_t i = 0; i < n_cases; i++) {
        const vec_case *c = &cases[i];
        uint8_t *in = pattern(c->input_len);
        for (int mode = 0; mode < 3; mode++) {
            ir_blake3 h;
            init_mode(&h, mode);
            ir_blake3_update(&h, in, c->input_len);
            for (size_t s = 0; s < sizeof seeks / sizeof seeks[0]; s++) {
                size_t seek = seeks[s];
                if (seek > c->out_len) continue;
                for (size_t len = 0; seek + len <= c->out_len; len += len < 3 ? 1 : 29) {
                    uint8_t out[MAX_OUT + 1];
                    memset(out, 0xA5, sizeof out);
                    ir_blake3_finalize_seek(&h, seek, out, len);
                    int before = t_failures;
                    CHECK_MEM(out, expected(c, mode) + seek, len);
                    CHECK(out[len] == 0xA5);
                    if (t_failures != before)
                        fprintf(stderr, "  (input_len %zu, %s, seek %zu, len %zu)\n",
                                c->input_len, mode_names[mode], seek, len);
                }
            }
        }
        free(in);
    }

    /* A long output: every slice from finalize_seek matches the one-shot output, including
     * seeks far into the stream and slices spanning many blocks. */
    enum { LONG = 4096 + 77 };
    static uint8_t full[LONG], part[LONG];
    uint8_t *in = pattern(5000);
    ir_blake3 h;
    ir_blake3_init_keyed(&h, vec_key);
    ir_blake3_update(&h, in, 5000);
    ir_blake3_finalize(&h, full, LONG);
    static const size_t offs[] = {0, 1, 63, 64, 65, 1000, 1024, 2047, 4095, 4096, LONG - 1};
    static const size_t lens[] = {1, 31, 64, 65, 200, 1500};
    for (size_t a = 0; a < sizeof offs / sizeof offs[0]; a++) {
        for (size_t b = 0; b < sizeof lens / sizeof lens[0]; b++) {
            size_t n = lens[b];
            if (offs[a] + n > LONG) n = LONG - offs[a];
            ir_blake3_finalize_seek(&h, offs[a], part, n);
            CHECK_MEM(part, full + offs[a], n);
        }
    }
    /* Output block counter above 2^32: a seek and the following block agree. */
    {
        uint64_t far = ((uint64_t)1 << 38) + 17;
        uint8_t x[200], y[100];
        ir_blake3_finalize_seek(&h, far, x, sizeof x);
        ir_blake3_finalize_seek(&h, far + 100, y, sizeof y);
        CHECK_MEM(x + 100, y, sizeof y);
    }
    free(in);
}

TEST(test_finalize_twice)
{
    size_t len = 70000;
    uint8_t *in = pattern(len);
    uint8_t a[100], b[100], c[100];
    ir_blake3 h;
    ir_blake3_init(&h);
    ir_blake3_update(&h, in, 3000);
    ir_blake3_finalize(&h, a, sizeof a);
    ir_blake3_finalize(&h, b, sizeof b);
    CHECK_MEM(a, b, sizeof a);

    /* Finalizing does not disturb further input. */
    ir_blake3_update(&h, in + 3000, len - 3000);
    ir_blake3_finalize(&h, a, sizeof a);
    ir_blake3_finalize(&h, b, sizeof b);
    CHECK_MEM(a, b, sizeof a);
    ir_blake3 one;
    ir_blake3_init(&one);
    ir_blake3_update(&one, in, len);
    ir_blake3_finalize(&one, c, sizeof c);
    CHECK_MEM(a, c, sizeof a);

    /* A copied hasher is independent. */
    ir_blake3 copy = h;
    ir_blake3_update(&copy, "x", 1);
    ir_blake3_finalize(&h, b, sizeof b);
    CHECK_MEM(a, b, sizeof a);
    ir_blake3_finalize(&copy, b, sizeof b);
    CHECK(memcmp(a, b, sizeof a) != 0);

    /* finalize with out_len 0 writes nothing. */
    memset(b, 0x5A, sizeof b);
    ir_blake3_finalize(&h, b, 0);
    CHECK(b[0] == 0x5A);
    free(in);
}

TEST(test_known_strings)
{
    /* BLAKE3("abc"), a widely published value, independent of the vector file. */
    uint8_t out[32], want[32];
    ir_blake3_hash("abc", 3, out);
    CHECK_EQ_INT(t_unhex("6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85",
                         want, sizeof want), 32);
    CHECK_MEM(out, want, 32);

    /* The key and context modes differ from plain hashing and from each other. */
    uint8_t k[32], d[32];
    ir_blake3_keyed_hash(vec_key, "abc", 3, k);
    ir_blake3_derive_key("ctx", "abc", 3, d, sizeof d);
    CHECK(memcmp(out, k, 32) != 0);
    CHECK(memcmp(out, d, 32) != 0);
    CHECK(memcmp(k, d, 32) != 0);
}

int main(void)
{
    if (load_vectors() != 0) {
        printf("FAIL test_blake3: cannot load test vectors\n");
        return 1;
    }
    RUN(test_vectors);
    RUN(test_incremental);
    RUN(test_seek);
    RUN(test_finalize_twice);
    RUN(test_known_strings);
    TEST_EXIT();
}
