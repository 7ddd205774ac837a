/* The relay configuration file parser (src/relay/config.c): upstream's keys in every TOML
 * shape serde accepts for them, the TOML subset (comments, escapes, underscores, arrays
 * over lines, inline tables, CRLF), and errors naming the line for unknown keys,
 * unsupported values and malformed TOML. */
#include "relay/config.h"
#include "test.h"

#define ID_A "197f6b23e16c8532c6abc838facd5ea789be0c76b2920334039bfa8b3d368d61"
#define ID_B "5060b05bcb8296c87a72992b6388ca8c7ebaf4dfea143232cbef77555d415374"

static ir_relay_file_config cfg;

static int parse(const char *text)
{
    ir_relay_file_config_free(&cfg);
    return ir_relay_file_config_parse(text, strlen(text), &cfg);
}

/* The text fails with an error that starts with want (e.g. "line 3: unknown key"). */
static void check_error(const char *text, const char *want, int line)
{
    int rc = parse(text);
    CHECK_EQ_INT(rc, IROH_ERR_INVALID_ARGUMENT);
    if (strncmp(cfg.error, want, strlen(want)) != 0) {
        t_failures++;
        fprintf(stderr, "%d: error \"%s\", expected it to start with \"%s\"\n", line, cfg.error, want);
    }
}
#define ERR(text, want) check_error(text, want, __LINE__)

TEST(test_defaults)
{
    CHECK_EQ_INT(parse(""), IROH_OK);
    CHECK_EQ_INT(cfg.enable_relay, 1);
    CHECK_EQ_INT(cfg.enable_metrics, 1);
    CHECK(cfg.http_bind_addr == NULL && cfg.metrics_bind_addr == NULL);
    CHECK_EQ_INT(cfg.access_given, 0);
    CHECK_EQ_INT(cfg.tls, 0);
    CHECK_EQ_INT(cfg.rx_bytes_per_second, 0);
    CHECK_STR(cfg.notes, "");
    CHECK_EQ_INT(parse("# only a comment\n\n   \n\t# another\n"), IROH_OK);
}

TEST(test_full)
{
    const char *text =
        "# iroh-relay config\n"
        "enable_relay = true\n"
        "http_bind_addr = \"127.0.0.1:3340\"   # the relay\n"
        "enable_metrics = true\n"
        "metrics_bind_addr = \"[::1]:9090\"\n"
        "enable_quic_addr_discovery = false\n"
        "access = { allowlist = [\"" ID_A "\", \"" ID_B "\"] }\n"
        "\n"
        "[tls]\n"
        "https_bind_addr = \"0.0.0.0:8443\"\n"
        "cert_mode = \"Manual\"\n"
        "cert_dir = \"/etc/relay\"\n"
        "manual_cert_path = \"/etc/relay/cert.pem\"\n"
        "manual_key_path = '/etc/relay/key.pem'\n"
        "\n"
        "[limits.client.rx]\n"
        "bytes_per_second = 1_048_576\n"
        "max_burst_bytes = 4194304\n";
    CHECK_EQ_INT(parse(text), IROH_OK);
    CHECK_STR(cfg.error, "");
    CHECK_STR(cfg.http_bind_addr, "127.0.0.1:3340");
    CHECK_STR(cfg.metrics_bind_addr, "[::1]:9090");
    CHECK_EQ_INT(cfg.access, IR_RELAY_ACCESS_ALLOWLIST);
    CHECK_EQ_INT(cfg.n_ids, 2);
    iroh_endpoint_id a;
    CHECK_EQ_INT(iroh_endpoint_id_parse(ID_A, &a), IROH_OK);
    CHECK(cfg.n_ids == 2 && iroh_endpoint_id_equal(&cfg.ids[0], &a));
    CHECK_EQ_INT(cfg.tls, 1);
    CHECK_STR(cfg.https_bind_addr, "0.0.0.0:8443");
    CHECK_STR(cfg.cert_dir, "/etc/relay");
    CHECK_STR(cfg.manual_cert_path, "/etc/relay/cert.pem");
    CHECK_STR(cfg.manual_key_path, "/etc/relay/key.pem");
    CHECK_EQ_INT(cfg.rx_bytes_per_second, 1048576);
    CHECK_EQ_INT(cfg.rx_max_burst_bytes, 4194304);
}

/* serde reads upstream's externally tagged AccessConfig from all of these */
TEST(test_access_shapes)
{
    CHECK_EQ_INT(parse("access = \"everyone\"\n"), IROH_OK);
    CHECK(cfg.access_given && cfg.access == IR_RELAY_ACCESS_EVERYONE);
    CHECK_EQ_INT(parse("access.denylist = [\"" ID_B "\"]\n"), IROH_OK);
    CHECK(cfg.access == IR_RELAY_ACCESS_DENYLIST && cfg.n_ids == 1);
    CHECK_EQ_INT(parse("[access]\nallowlist = [\n  \"" ID_A "\", # me\n  \"" ID_B "\",\n]\n"), IROH_OK);
    CHECK(cfg.access == IR_RELAY_ACCESS_ALLOWLIST && cfg.n_ids == 2);
    CHECK_EQ_INT(parse("access = { shared_token = [ \"token-a\", \"tok\\u00e9n-b\" ] }\n"), IROH_OK);
    CHECK(cfg.access == IR_RELAY_ACCESS_SHARED_TOKEN && cfg.n_tokens == 2);
    CHECK(cfg.n_tokens == 2 && strcmp(cfg.tokens[1], "tok\xc3\xa9n-b") == 0);
    CHECK_EQ_INT(parse("access.shared_token = []\n"), IROH_OK);
    CHECK(cfg.access == IR_RELAY_ACCESS_SHARED_TOKEN && cfg.n_tokens == 0);
    /* base32 ids are EndpointIds too */
    CHECK_EQ_INT(parse("access.allowlist = [\"DF7WWI7BNSCTFRVLZA4PVTK6U6E34DDWWKJAGNADTP5IWPJWRVQQ\"]\n"),
                 IROH_OK);
    ERR("access = \"everyone\"\naccess.allowlist = []\n", "line 2: access is given twice (first on line 1)");
    ERR("access = \"allowlist\"\n", "line 1: access = \"allowlist\" needs a list");
    ERR("access = \"nobody\"\n", "line 1: access must be");
    ERR("access.allowlist = [\"nope\"]\n", "line 1: 'access.allowlist': 'nope' is not an EndpointId");
    ERR("access.allowlist = \"" ID_A "\"\n", "line 1: 'access.allowlist' must be an array of strings");
    ERR("access.http.url = \"https://x\"\n", "line 1: access.http");
    ERR("access = { http = { url = \"https://x\" } }\n", "line 1: access.http");
    ERR("[access.http]\nurl = \"x\"\n", "line 1: access.http");
    ERR("access.everyone = []\n", "line 1: unknown access mode");
    ERR("access.shared_token = [\"\"]\n", "line 1: 'access.shared_token': tokens must not be empty");
    ERR("access.shared_token = [1]\n", "line 1: only arrays of strings");
}

TEST(test_toml_subset)
{
    /* CRLF, a BOM, quoted keys, dotted keys with blanks, escapes, underscores, floats */
    CHECK_EQ_INT(parse("\xef\xbb\xbf"
                       "\"http_bind_addr\" = \"127.0.0.1:1\"\r\n"
                       "limits . client.rx.bytes_per_second=+1_000\r\n"
                       "[limits]\r\naccept_conn_limit = 1.5e2\r\naccept_conn_burst = 20\r\n"),
                 IROH_OK);
    CHECK_STR(cfg.http_bind_addr, "127.0.0.1:1");
    CHECK_EQ_INT(cfg.rx_bytes_per_second, 1000);
    CHECK(strstr(cfg.notes, "line 4: 'limits.accept_conn_limit' ignored") != NULL);
    CHECK(strstr(cfg.notes, "line 5: 'limits.accept_conn_burst' ignored") != NULL);
    CHECK_EQ_INT(parse("[limits]\naccept_conn_limit = 100\n"), IROH_OK); /* an integer for a float */
    CHECK_EQ_INT(parse("[tls]\ncert_dir = \"a\\\\b\\\"c\\td\\u0041\\U0001F600\"\n"), IROH_OK);
    CHECK_STR(cfg.cert_dir, "a\\b\"c\tdA\xf0\x9f\x98\x80");
    CHECK_EQ_INT(parse("[tls]\ncert_dir = 'C:\\dir # not a comment'\n"), IROH_OK);
    CHECK_STR(cfg.cert_dir, "C:\\dir # not a comment");
    CHECK_EQ_INT(parse("[tls]\nhostname = [\"a.example\", \"b.example\"]\ncontact = \"x@y\"\nprod_tls = false\n"
                       "quic_bind_addr = \"[::]:7842\"\n"),
                 IROH_OK);
    CHECK(cfg.tls && strstr(cfg.notes, "'tls.hostname' ignored (only used by LetsEncrypt)") != NULL);
    CHECK_STR(cfg.quic_bind_addr, "[::]:7842");
    CHECK_EQ_INT(parse("enable_quic_addr_discovery = true\n"), IROH_OK);
    CHECK_EQ_INT(cfg.enable_qad, 1);
    CHECK_EQ_INT(parse("[tls]\n"), IROH_OK); /* an empty [tls]: Manual, default paths */
    CHECK_EQ_INT(cfg.tls, 1);
    CHECK(cfg.manual_cert_path == NULL);
    CHECK_EQ_INT(parse("key_cache_capacity = 1024\n"), IROH_OK);
    CHECK(strstr(cfg.notes, "key_cache_capacity") != NULL);
    CHECK_EQ_INT(parse("enable_metrics = false\n"), IROH_OK);
    CHECK_EQ_INT(cfg.enable_metrics, 0);
    CHECK_EQ_INT(parse("access={allowlist=[]}"), IROH_OK); /* no final newline, no blanks */
}

TEST(test_errors)
{
    ERR("\n\nbogus = 1\n", "line 3: unknown key 'bogus'");
    ERR("[tls]\ncert_mode = \"LetsEncrypt\"\n", "line 2: cert_mode \"LetsEncrypt\" is not supported");
    ERR("[tls]\ncert_mode = \"Reloading\"\n", "line 2: cert_mode \"Reloading\" is not supported");
    ERR("[tls]\ncert_mode = \"manual\"\n", "line 2: unknown cert_mode");
    ERR("enable_quic_addr_discovery = 1\n", "line 1: 'enable_quic_addr_discovery' must be a boolean");
    ERR("enable_relay = false\n", "line 1: enable_relay = false is not supported");
    ERR("enable_relay = \"yes\"\n", "line 1: 'enable_relay' must be a boolean");
    ERR("enable_metrics = 1\n", "line 1: 'enable_metrics' must be a boolean");
    ERR("http_bind_addr = \"localhost:80\"\n", "line 1: 'http_bind_addr': 'localhost:80' is not a socket address");
    ERR("http_bind_addr = 80\n", "line 1: 'http_bind_addr' must be a string");
    ERR("[limits.client.rx]\nbytes_per_second = 0\n", "line 2: 'limits.client.rx.bytes_per_second' must be 1 to 4294967295");
    ERR("[limits.client.rx]\nbytes_per_second = 4294967296\n", "line 2: 'limits.client.rx.bytes_per_second' must be 1 to");
    ERR("[limits.client.rx]\nbytes_per_second = -1\n", "line 2: 'limits.client.rx.bytes_per_second' must be 1 to");
    ERR("[limits.client.rx]\n\nmax_burst_bytes = 10\n", "line 3: max_burst_bytes needs bytes_per_second");
    ERR("[limits.client.rx]\nbytes_per_second = 1.5\n", "line 2: 'limits.client.rx.bytes_per_second' must be an integer");
    ERR("[limits]\naccept_conn_limit = -1\n", "line 2: 'limits.accept_conn_limit' must not be negative");
    ERR("[limits.client.tx]\n", "line 1: unknown table [limits.client.tx]");
    ERR("[tls]\n[tls]\n", "line 2: table [tls] is defined twice");
    ERR("http_bind_addr = \"127.0.0.1:1\"\nhttp_bind_addr = \"127.0.0.1:2\"\n", "line 2: 'http_bind_addr' is defined twice");
    ERR("[[tls]]\n", "line 1: arrays of tables");
    ERR("[tls\n", "line 1: expected ']'");
    ERR("http_bind_addr \"x\"\n", "line 1: expected '=' after the key");
    ERR("= 1\n", "line 1: expected a key, found '='");
    ERR("http_bind_addr =\n", "line 1: expected a value");
    ERR("http_bind_addr = \"127.0.0.1:1\" extra\n", "line 1: unexpected 'e' after the value");
    ERR("http_bind_addr = \"127.0.0.1:1\nmore\"\n", "line 1: unterminated string");
    ERR("[tls]\ncert_dir = \"\"\"x\"\"\"\n", "line 2: multi-line strings are not supported");
    ERR("[tls]\ncert_dir = \"a\\qb\"\n", "line 2: invalid escape '\\q'");
    ERR("[tls]\ncert_dir = \"a\\u00\"\n", "line 2: invalid \\u escape");
    ERR("[tls]\ncert_dir = \"a\\u0000\"\n", "line 2: NUL in a string is not supported");
    ERR("[tls]\ncert_dir = \"a\\ud800\"\n", "line 2: escape is not a Unicode scalar value");
    ERR("[tls]\ncert_dir = \"a\x01\"\n", "line 2: control character in a string");
    ERR("[tls]\ncert_dir = \"\"\n", "line 2: 'tls.cert_dir' must not be empty");
    ERR("[limits.client.rx]\nbytes_per_second = 0x10\n", "line 2: only decimal integers");
    ERR("[limits.client.rx]\nbytes_per_second = 1__0\n", "line 2: invalid number");
    ERR("[limits.client.rx]\nbytes_per_second = _10\n", "line 2: invalid value starting with '_'");
    ERR("[limits.client.rx]\nbytes_per_second = 010\n", "line 2: leading zeros");
    ERR("[limits.client.rx]\nbytes_per_second = 99999999999999999999\n", "line 2: number out of range");
    ERR("[limits]\naccept_conn_limit = 1979-05-27\n", "line 2: dates and times are not supported");
    ERR("[limits]\naccept_conn_limit = inf\n", "line 2: inf and nan are not supported");
    ERR("[limits]\naccept_conn_limit = .5\n", "line 2: invalid value starting with '.'");
    ERR("[limits]\naccept_conn_limit = 5.\n", "line 2: invalid number");
    ERR("enable_relay = truee\n", "line 1: invalid value starting with 't'");
    ERR("access.allowlist = [\"" ID_A "\"\n", "line 2: unterminated array");
    ERR("access.allowlist = [\"" ID_A "\" \"" ID_B "\"]\n", "line 1: expected ',' or ']'");
    ERR("access.allowlist = [[\"x\"]]\n", "line 1: nested arrays are not supported");
    ERR("access = { allowlist = [] \n", "line 1: an inline table must end on its line");
    ERR("access = { allowlist = [] ; }\n", "line 1: expected ',' or '}'");
    ERR("x = [ { a = 1 } ]\n", "line 1: only arrays of strings");
    ERR("a.b.c.d.e.f.g.h.i = 1\n", "line 1: key nested too deeply");
    ERR("\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\" = 1\n",
        "line 1: key too long");
    ERR("tls = 1\n", "line 1: unknown key 'tls'");
    ERR("enable_relay = true\rx = 1\n", "line 1: unexpected '\r' after the value");
}

int main(void)
{
    RUN(test_defaults);
    RUN(test_full);
    RUN(test_access_shapes);
    RUN(test_toml_subset);
    RUN(test_errors);
    ir_relay_file_config_free(&cfg);
    TEST_EXIT();
}
