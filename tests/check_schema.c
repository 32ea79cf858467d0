/* check_schema: the JSON Schema -> GBNF converter (src/gram/gram_schema*.c) measured against
 * the official JSON-Schema-Test-Suite (draft 2020-12 files in $LMPIPE_SHARED/jsonschema), our
 * agent-tool schemas (tests/data/schemas), hand-made edge cases and bad inputs; plus the
 * test-side validator (tests/jsval.h) checked against the same suite.
 *
 * The suite measure: every group whose schema converts has each instance written as Python's
 * json.dumps(x, separators=(",", ":"), ensure_ascii=False) (tests/pyjson.h) and run through the
 * matcher; the text is accepted when the matcher takes all of it and may end there. Asserted:
 * no instance the suite marks invalid is accepted; at most 5% of the valid ones are rejected
 * (each listed on stderr); every refused group is in the table below and its message names the
 * keyword the table says (a keyword we really do not support); every other group converts. */
#include "gram/gram.h"
#include "gram/gram_schema.h"

#include "jsval.h"
#include "pyjson.h"
#include "tutil.h"

#include <dirent.h>

/* ---- helpers ---- */

/* Does the grammar accept all of text and may it end there? -1 when it does not parse. */
static int gbnf_accepts(const char *gbnf, const char *text, size_t n)
{
    struct gram *g = NULL;
    struct err_info ei;
    err_clear(&ei);
    if (gram_parse(gbnf, strlen(gbnf), &g, &ei)) {
        fprintf(stderr, "grammar does not parse: %s\n", ei.msg);
        return -1;
    }
    struct gram_matcher m = {0};
    int ok = 0;
    if (gram_matcher_init(&m, g, NULL, &ei) == 0) {
        size_t n_ok = 0;
        ok = gram_matcher_feed(&m, text, n, &n_ok) == 0 && gram_matcher_can_end(&m);
    }
    gram_matcher_free(&m);
    gram_free(g);
    return ok;
}

/* Convert schema text; returns the grammar (caller frees) or NULL with ei set. */
static char *convert(const char *schema, int mode, struct err_info *ei)
{
    struct gram_schema_opts o;
    gram_schema_opts_default(&o);
    o.mode = mode;
    char *g = NULL;
    size_t n = 0;
    err_clear(ei);
    if (gram_schema_to_gbnf(schema, strlen(schema), &o, &g, &n, ei)) return NULL;
    return g;
}

/* Every text in yes (NULL-terminated, up to n) is accepted and every one in no is rejected. */
static void check_texts(const char *schema, const char *g, const char *const *yes, const char *const *no, size_t n)
{
    for (size_t k = 0; yes && k < n && yes[k]; k++)
        ck_assert_msg(gbnf_accepts(g, yes[k], strlen(yes[k])) == 1, "%s rejects %s", schema, yes[k]);
    for (size_t k = 0; no && k < n && no[k]; k++)
        ck_assert_msg(gbnf_accepts(g, no[k], strlen(no[k])) == 0, "%s accepts %s", schema, no[k]);
}

/* ---- the official suite ---- */

/* Groups the converter refuses, and a keyword its message must name. */
static const struct {
    const char *file, *group, *keyword;
} g_refused[] = {
    {"additionalProperties.json", "additionalProperties being false does not allow other properties", "patternProperties"},
    {"additionalProperties.json", "non-ASCII pattern with additionalProperties", "patternProperties"},
    {"additionalProperties.json", "additionalProperties with propertyNames", "propertyNames"},
    {"additionalProperties.json", "dependentSchemas with additionalProperties", "dependentSchemas"},
    {"allOf.json", "allOf combined with anyOf, oneOf", "multipleOf"},
    {"defs.json", "validate definition against metaschema", "$ref"},
    {"oneOf.json", "oneOf", "oneOf"},
    {"oneOf.json", "oneOf with base schema", "oneOf"},
    {"oneOf.json", "oneOf complex types", "oneOf"},
    {"oneOf.json", "oneOf with empty schema", "oneOf"},
    {"oneOf.json", "oneOf with required", "oneOf"},
    {"oneOf.json", "oneOf with missing optional property", "oneOf"},
    {"pattern.json", "pattern with Unicode property escape requires unicode mode", "pattern"},
    {"properties.json", "properties, patternProperties, additionalProperties interaction", "patternProperties"},
    {"ref.json", "remote ref, containing refs itself", "$ref"},
    {"ref.json", "ref creates new scope when adjacent to keywords", "unevaluatedProperties"},
    {"ref.json", "Recursive references between schemas", "$ref"},
    {"ref.json", "refs with relative uris and defs", "$ref"},
    {"ref.json", "relative refs with absolute uris and defs", "$ref"},
    {"ref.json", "$id must be resolved against nearest parent, not just immediate parent", "$ref"},
    {"ref.json", "order of evaluation: $id and $ref", "$ref"},
    {"ref.json", "order of evaluation: $id and $ref on nested schema", "$ref"},
    {"ref.json", "URN ref with nested pointer ref", "$ref"},
    {"ref.json", "ref to if", "if"},
    {"ref.json", "ref to then", "then"},
    {"ref.json", "ref to else", "else"},
    {"ref.json", "ref with absolute-path-reference", "$ref"},
};
#define N_REFUSED (sizeof g_refused / sizeof g_refused[0])

static const char *expected_refusal(const char *file, const char *group)
{
    for (size_t i = 0; i < N_REFUSED; i++)
        if (strcmp(g_refused[i].file, file) == 0 && strcmp(g_refused[i].group, group) == 0)
            return g_refused[i].keyword;
    return NULL;
}

/* Sorted *.json names of a directory; returns the count (names malloc'd). */
static size_t list_json(const char *dir, char ***out)
{
    DIR *d = opendir(dir);
    size_t n = 0, cap = 0;
    char **v = NULL;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".json") != 0) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            v = realloc(v, cap * sizeof *v);
            ck_assert_ptr_nonnull(v);
        }
        v[n++] = strdup(e->d_name);
    }
    if (d) closedir(d);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(v[j - 1], v[j]) > 0; j--) {
            char *t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    *out = v;
    return n;
}

struct tally {
    size_t groups, converted, refused;
    size_t valid, invalid, false_accept, valid_reject;
};

static void run_group(const char *file, const json_t *grp, struct tally *t, size_t *matched_refusals)
{
    const char *desc = json_string_value(json_object_get(grp, "description"));
    const json_t *schema = json_object_get(grp, "schema");
    const json_t *tests = json_object_get(grp, "tests");
    char *stext = json_dumps(schema, JSON_ENCODE_ANY | JSON_COMPACT);
    ck_assert_ptr_nonnull(stext);
    struct err_info ei;
    char *g = convert(stext, GRAM_SCHEMA_PLAIN, &ei);
    free(stext);
    t->groups++;
    const char *want = expected_refusal(file, desc);
    if (!g) {
        t->refused++;
        printf("  refused %s \"%s\": %s\n", file, desc, ei.msg);
        ck_assert_msg(want != NULL, "%s: group \"%s\" uses only supported keywords but was refused: %s",
                      file, desc, ei.msg);
        ck_assert_int_eq(ei.code, ERR_UNSUPPORTED);
        ck_assert_msg(strstr(ei.msg, want) != NULL, "%s: \"%s\" refused without naming %s: %s", file,
                      desc, want, ei.msg);
        (*matched_refusals)++;
        return;
    }
    ck_assert_msg(want == NULL, "%s: group \"%s\" expected refused for %s but converted", file, desc, want);
    t->converted++;
    for (size_t i = 0; i < json_array_size(tests); i++) {
        const json_t *tc = json_array_get(tests, i);
        int valid = json_is_true(json_object_get(tc, "valid"));
        size_t n;
        char *text = pyjson_dumps(json_object_get(tc, "data"), &n);
        int acc = gbnf_accepts(g, text, n);
        ck_assert_int_ge(acc, 0);
        if (valid) t->valid++;
        else t->invalid++;
        if (acc && !valid) {
            t->false_accept++;
            fprintf(stderr, "FALSE ACCEPT %s: \"%s\" / \"%s\": %s\n", file, desc,
                    json_string_value(json_object_get(tc, "description")), text);
        }
        if (!acc && valid) {
            t->valid_reject++;
            fprintf(stderr, "valid rejected %s: \"%s\" / \"%s\": %s\n", file, desc,
                    json_string_value(json_object_get(tc, "description")), text);
        }
        free(text);
    }
    free(g);
}

START_TEST(test_suite)
{
    char **names;
    const char *dir = tutil_shared("jsonschema");
    size_t nf = list_json(dir, &names);
    ck_assert_msg(nf >= 20, "expected the suite's files in %s", dir);
    struct tally all = {0};
    size_t matched = 0;
    printf("%-26s %6s %9s %7s %6s %8s %13s %12s\n", "file", "groups", "converted", "refused", "valid",
           "invalid", "false-accept", "valid-reject");
    for (size_t f = 0; f < nf; f++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, names[f]);
        json_error_t je;
        json_t *doc = json_load_file(path, JSON_ALLOW_NUL, &je);
        ck_assert_msg(doc != NULL, "%s: %s", path, je.text);
        struct tally t = {0};
        for (size_t g = 0; g < json_array_size(doc); g++) run_group(names[f], json_array_get(doc, g), &t, &matched);
        printf("%-26s %6zu %9zu %7zu %6zu %8zu %13zu %12zu\n", names[f], t.groups, t.converted, t.refused,
               t.valid, t.invalid, t.false_accept, t.valid_reject);
        all.groups += t.groups;
        all.converted += t.converted;
        all.refused += t.refused;
        all.valid += t.valid;
        all.invalid += t.invalid;
        all.false_accept += t.false_accept;
        all.valid_reject += t.valid_reject;
        json_decref(doc);
        free(names[f]);
    }
    free(names);
    printf("%-26s %6zu %9zu %7zu %6zu %8zu %13zu %12zu  (%.1f%% of valid rejected)\n", "total", all.groups,
           all.converted, all.refused, all.valid, all.invalid, all.false_accept, all.valid_reject,
           all.valid ? 100.0 * (double)all.valid_reject / (double)all.valid : 0.0);
    fflush(stdout);
    ck_assert_uint_eq(all.false_accept, 0);
    ck_assert_msg(all.valid_reject * 100 <= all.valid * 5, "%zu of %zu valid instances rejected",
                  all.valid_reject, all.valid);
    ck_assert_uint_eq(matched, N_REFUSED);
}
END_TEST

/* jsval agrees with the suite wherever it claims to understand the schema. */
START_TEST(test_jsval_suite)
{
    char **names;
    const char *dir = tutil_shared("jsonschema");
    size_t nf = list_json(dir, &names);
    size_t checked = 0, skipped = 0, groups = 0;
    for (size_t f = 0; f < nf; f++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, names[f]);
        json_error_t je;
        json_t *doc = json_load_file(path, JSON_ALLOW_NUL, &je);
        ck_assert_ptr_nonnull(doc);
        for (size_t g = 0; g < json_array_size(doc); g++) {
            const json_t *grp = json_array_get(doc, g), *tests = json_object_get(grp, "tests");
            int unsup = 0;
            for (size_t i = 0; i < json_array_size(tests); i++) {
                const json_t *tc = json_array_get(tests, i);
                char why[256];
                int r = jsval_check(json_object_get(grp, "schema"), json_object_get(tc, "data"), why, sizeof why);
                if (r < 0) {
                    unsup = 1;
                    continue;
                }
                ck_assert_msg(r == json_is_true(json_object_get(tc, "valid")), "jsval %s: \"%s\" / \"%s\": got %d (%s)",
                              names[f], json_string_value(json_object_get(grp, "description")),
                              json_string_value(json_object_get(tc, "description")), r, why);
                checked++;
            }
            groups++;
            skipped += unsup;
        }
        json_decref(doc);
        free(names[f]);
    }
    free(names);
    printf("jsval: %zu instances agree with the suite; %zu of %zu groups use what jsval does not implement\n",
           checked, skipped, groups);
    ck_assert_uint_ge(checked, 450);
}
END_TEST

/* ---- random walks: everything a grammar generates must validate ---- */

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 11);
}

/* One text from the grammar by a random walk over allowed bytes, biased toward closing
 * strings and containers so most walks end. Returns its length, or 0 when the walk gave up. */
static size_t walk_once(struct gram_matcher *m, char *out, size_t cap)
{
    static const char prefer[] = "\"}],:0123456789tfn";
    gram_matcher_reset(m);
    size_t n = 0;
    while (n + 1 < cap) {
        if (gram_matcher_can_end(m) && (rnd() % 100 < 40 || gram_matcher_complete(m))) return n;
        uint64_t set[4];
        int k = gram_matcher_next_bytes(m, set);
        if (k <= 0) return 0;
        int pick = -1;
        if (rnd() % 100 < 45) {
            size_t start = rnd() % (sizeof prefer - 1);
            for (size_t i = 0; i < sizeof prefer - 1 && pick < 0; i++) {
                unsigned char b = (unsigned char)prefer[(start + i) % (sizeof prefer - 1)];
                if (set[b / 64] >> (b % 64) & 1) pick = b;
            }
        }
        if (pick < 0) {
            int want = (int)(rnd() % (unsigned)k);
            for (int b = 0; b < 256 && pick < 0; b++)
                if ((set[b / 64] >> (b % 64) & 1) && want-- == 0) pick = b;
        }
        char c = (char)pick;
        ck_assert_int_eq(gram_matcher_feed(m, &c, 1, NULL), 0);
        out[n++] = c;
    }
    return 0;
}

/* Walk a grammar `tries` times; every finished text must parse as JSON and satisfy the schema
 * (jsval). Returns how many texts were checked. */
static size_t walk_check(const char *name, const char *gbnf, const json_t *schema, int tries)
{
    struct gram *g = NULL;
    struct err_info ei;
    err_clear(&ei);
    ck_assert_msg(gram_parse(gbnf, strlen(gbnf), &g, &ei) == 0, "%s: %s", name, ei.msg);
    struct gram_matcher m = {0};
    ck_assert_int_eq(gram_matcher_init(&m, g, NULL, &ei), 0);
    char buf[1200];
    size_t checked = 0;
    for (int t = 0; t < tries; t++) {
        size_t n = walk_once(&m, buf, sizeof buf);
        if (n == 0) continue;
        json_error_t je;
        json_t *x = json_loadb(buf, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        /* JSON has no size limit on numbers; jansson has (64-bit integers, doubles) */
        if (!x && (strstr(je.text, "too big") || strstr(je.text, "overflow"))) continue;
        ck_assert_msg(x != NULL, "%s: generated text is not JSON (%s): %.*s", name, je.text, (int)n, buf);
        char why[256];
        int r = jsval_check(schema, x, why, sizeof why);
        ck_assert_msg(r != 0, "%s: generated text fails the schema (%s): %.*s", name, why, (int)n, buf);
        checked += r == 1;
        json_decref(x);
    }
    gram_matcher_free(&m);
    gram_free(g);
    return checked;
}

/* ---- agent tool schemas (tests/data/schemas) ---- */

static json_t *load_schema_file(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "tests/data/schemas/%s", name);
    json_error_t je;
    json_t *d = json_load_file(path, JSON_ALLOW_NUL, &je);
    ck_assert_msg(d != NULL, "%s: %s", path, je.text);
    return d;
}

START_TEST(test_agent_schemas)
{
    char **names;
    size_t n = list_json("tests/data/schemas", &names);
    ck_assert_uint_ge(n, 20);
    size_t walked = 0, instances = 0;
    for (size_t f = 0; f < n; f++) {
        json_t *d = load_schema_file(names[f]);
        const json_t *schema = json_object_get(d, "schema");
        struct gram_schema_opts o;
        gram_schema_opts_default(&o);
        o.mode = GRAM_SCHEMA_TOOL;
        char *g = NULL;
        struct err_info ei;
        err_clear(&ei);
        ck_assert_msg(gram_schema_to_gbnf_json(schema, &o, &g, NULL, &ei) == 0, "%s: %s", names[f], ei.msg);
        static const char *const sets[] = {"valid", "invalid"};
        for (int k = 0; k < 2; k++) {
            const json_t *list = json_object_get(d, sets[k]);
            ck_assert_msg(json_array_size(list) >= 2, "%s: needs %s instances", names[f], sets[k]);
            for (size_t i = 0; i < json_array_size(list); i++) {
                size_t tn;
                char *text = pyjson_dumps(json_array_get(list, i), &tn);
                char why[256];
                int v = jsval_check(schema, json_array_get(list, i), why, sizeof why);
                int a = gbnf_accepts(g, text, tn);
                ck_assert_msg(v == (k == 0), "%s: jsval says %d for %s instance %s (%s)", names[f], v, sets[k], text, why);
                ck_assert_msg(a == (k == 0), "%s: grammar says %d for %s instance %s", names[f], a, sets[k], text);
                free(text);
                instances++;
            }
        }
        walked += walk_check(names[f], g, schema, 150);
        free(g);
        json_decref(d);
        free(names[f]);
    }
    free(names);
    printf("agent schemas: %zu files, %zu hand-written instances agree, %zu generated texts validate\n", n,
           instances, walked);
    ck_assert_uint_ge(walked, 1000);
}
END_TEST

/* Texts generated from every converted suite grammar validate too (beyond the suite's own). */
START_TEST(test_suite_walks)
{
    char **names;
    const char *dir = tutil_shared("jsonschema");
    size_t nf = list_json(dir, &names), walked = 0;
    for (size_t f = 0; f < nf; f++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, names[f]);
        json_error_t je;
        json_t *doc = json_load_file(path, JSON_ALLOW_NUL, &je);
        ck_assert_ptr_nonnull(doc);
        for (size_t i = 0; i < json_array_size(doc); i++) {
            const json_t *schema = json_object_get(json_array_get(doc, i), "schema");
            char *g = NULL;
            struct err_info ei;
            err_clear(&ei);
            if (gram_schema_to_gbnf_json(schema, NULL, &g, NULL, &ei)) continue;
            char probe[128];
            if (jsval_check(schema, json_null(), probe, sizeof probe) >= 0)
                walked += walk_check(names[f], g, schema, 60);
            free(g);
        }
        json_decref(doc);
        free(names[f]);
    }
    free(names);
    printf("suite grammars: %zu generated texts validate\n", walked);
    ck_assert_uint_ge(walked, 2000);
}
END_TEST

/* ---- numbers: exact ranges against the validator ---- */

/* A short random decimal in [-30, 30] with up to two fraction digits. */
static void rand_decimal(char *buf, size_t n)
{
    int ip = (int)(rnd() % 31), fd = (int)(rnd() % 3);
    int neg = rnd() % 2;
    if (fd == 0) snprintf(buf, n, "%s%d", neg ? "-" : "", ip);
    else if (fd == 1) snprintf(buf, n, "%s%d.%u", neg ? "-" : "", ip, rnd() % 10);
    else snprintf(buf, n, "%s%d.%02u", neg ? "-" : "", ip, rnd() % 100);
}

START_TEST(test_number_ranges)
{
    size_t cases = 0, checked = 0;
    for (int it = 0; it < 300; it++) {
        char lo[32], hi[32], schema[256];
        rand_decimal(lo, sizeof lo);
        rand_decimal(hi, sizeof hi);
        int kind = (int)(rnd() % 3), has_lo = rnd() % 4 != 0, has_hi = rnd() % 4 != 0;
        int slo = rnd() % 2, shi = rnd() % 2;
        int len = snprintf(schema, sizeof schema, "{\"type\":\"%s\"", kind == 0 ? "integer" : "number");
        if (has_lo) len += snprintf(schema + len, sizeof schema - (size_t)len, ",\"%s\":%s", slo ? "exclusiveMinimum" : "minimum", lo);
        if (has_hi) len += snprintf(schema + len, sizeof schema - (size_t)len, ",\"%s\":%s", shi ? "exclusiveMaximum" : "maximum", hi);
        if (kind == 2) snprintf(schema + len, sizeof schema - (size_t)len, ",\"enum\":[%s,%s,%s]}", lo, hi, "7.5");
        else snprintf(schema + len, sizeof schema - (size_t)len, "}");
        struct err_info ei;
        char *g = convert(schema, GRAM_SCHEMA_PLAIN, &ei);
        ck_assert_msg(g != NULL, "%s: %s", schema, ei.msg);
        json_t *js = json_loads(schema, 0, NULL);
        ck_assert_ptr_nonnull(js);
        /* every value on a grid, in several spellings */
        for (int v = -3200; v <= 3200; v += 1 + (int)(rnd() % 37)) {
            char texts[4][48];
            int a = v < 0 ? -v : v;
            snprintf(texts[0], 48, "%s%d.%02d", v < 0 ? "-" : "", a / 100, a % 100);
            snprintf(texts[1], 48, "%s%d.%02d0", v < 0 ? "-" : "", a / 100, a % 100);
            snprintf(texts[2], 48, "%s%d", v < 0 ? "-" : "", a / 100);
            snprintf(texts[3], 48, "%s%d.0", v < 0 ? "-" : "", a / 100);
            for (int k = 0; k < 4; k++) {
                json_t *x = json_loads(texts[k], JSON_DECODE_ANY, NULL);
                ck_assert_ptr_nonnull(x);
                int want = jsval_check(js, x, NULL, 0);
                int got = gbnf_accepts(g, texts[k], strlen(texts[k]));
                ck_assert_msg(want == got, "%s on %s: validator %d, grammar %d", schema, texts[k], want, got);
                json_decref(x);
                checked++;
            }
        }
        /* exponents: never accepted where the value is out of range */
        static const char *const ex[] = {"1e1", "-2E0", "5e-1", "1.5e1", "0e5", "-0"};
        for (size_t k = 0; k < sizeof ex / sizeof ex[0]; k++) {
            json_t *x = json_loads(ex[k], JSON_DECODE_ANY, NULL);
            int got = gbnf_accepts(g, ex[k], strlen(ex[k]));
            if (got) ck_assert_msg(jsval_check(js, x, NULL, 0) == 1, "%s accepts %s", schema, ex[k]);
            json_decref(x);
        }
        json_decref(js);
        free(g);
        cases++;
    }
    printf("number ranges: %zu schemas, %zu spellings agree with the validator\n", cases, checked);
}
END_TEST

START_TEST(test_number_edges)
{
    static const struct {
        const char *schema, *yes[6], *no[6];
    } t[] = {
        {"{\"type\":\"integer\"}", {"0", "-0", "1.0", "1e3", "12.000", "-7"}, {"1.5", "01", "1.", ".5", "1e-3", "+1"}},
        {"{\"type\":\"number\"}", {"0", "-0.0", "1.5e-3", "2E+10", "0.000", "-12"}, {"01", "1.", "-", "e5", "1e", "NaN"}},
        {"{\"const\":-2.0}", {"-2", "-2.0", "-2.000", NULL}, {"2", "-2.00001", "-20", "-2e0", NULL}},
        {"{\"const\":0}", {"0", "-0", "0.0", "-0.00", NULL}, {"0.1", "00", "false", NULL}},
        {"{\"type\":\"integer\",\"exclusiveMinimum\":0,\"exclusiveMaximum\":1}", {NULL}, {"0", "1", "0.5", NULL}},
        /* past 2^53 an integer range takes integers only: "N.0" is a double to most validators */
        {"{\"type\":\"integer\",\"minimum\":9007199254740990,\"maximum\":9007199254740995}",
         {"9007199254740990", "9007199254740993", "9007199254740995", NULL},
         {"9007199254740989", "9007199254740996", "9007199254740993.5", "9007199254740995.0", NULL}},
        /* ranges agree with double-based validators: within one ulp of an exclusive bound is out */
        {"{\"type\":\"number\",\"exclusiveMaximum\":1}", {"0.9999999999999999", "0.5", "-1e400", NULL},
         {"1", "0.99999999999999999", "1.0", NULL}},
        /* (a bounded piece has no exponent: 1e3 is refused though valid, see gram_schema.h) */
        {"{\"type\":\"number\",\"exclusiveMinimum\":0}", {"0.1", "1000", "0.000001", NULL}, {"0", "-0.0", "1e3", NULL}},
        {"{\"type\":\"number\",\"exclusiveMinimum\":1.1}", {"1.1000000000000003", "1.2", NULL},
         {"1.1", "1.1000000000000001", "1.10000000000000008881784197001", NULL}},
        /* a real bound past 2^53 is an integer: 1e23 is 99999999999999991611392 as a double */
        {"{\"type\":\"integer\",\"maximum\":1e23}", {"99999999999999991611392", "-5", NULL},
         {"99999999999999991611393", "100000000000000000000000", NULL}},
        /* integers with a fraction or exponent stay finite doubles */
        {"{\"type\":\"integer\"}", {"1234567890123456.0", "1e99", "-32.00", "123456789012345678901234567890", NULL},
         {"12345678901234567.0", "1e100", "1e-1", NULL}},
        {"{\"type\":\"number\",\"minimum\":1e-7,\"maximum\":2.5e2}", {"0.0000001", "250", "250.0", "0.00000010001", NULL},
         {"0.00000009999", "250.00001", "0", NULL}},
        {"{\"type\":\"integer\",\"maximum\":-1e300}", {NULL}, {"0", "-1", NULL}},
        {"{\"minimum\":5,\"type\":[\"integer\",\"string\"]}", {"5", "\"x\"", NULL}, {"4", "5.5", "null", NULL}},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        struct err_info ei;
        char *g = convert(t[i].schema, GRAM_SCHEMA_PLAIN, &ei);
        ck_assert_msg(g != NULL, "%s: %s", t[i].schema, ei.msg);
        check_texts(t[i].schema, g, t[i].yes, t[i].no, 6);
        free(g);
    }
    /* -1e300 as an integer maximum: the bound is the double's exact value (301 digits), which
     * is below -10^300; double-based validators compare integers with exactly that */
    struct err_info ei;
    char *g = convert("{\"type\":\"integer\",\"maximum\":-1e300}", GRAM_SCHEMA_PLAIN, &ei);
    ck_assert_ptr_nonnull(g);
    char big[400];
    snprintf(big, sizeof big, "%.0f", -1e300);
    ck_assert_int_eq(gbnf_accepts(g, big, strlen(big)), 1);
    char above[400] = "-100000000000000005"; /* -1.00000000000000005e300: above the bound */
    memset(above + 19, '0', 283);
    above[302] = 0;
    ck_assert_int_eq(gbnf_accepts(g, above, strlen(above)), 0);
    memset(big, 0, sizeof big);
    big[0] = '-', big[1] = '1';
    memset(big + 2, '0', 300);
    ck_assert_int_eq(gbnf_accepts(g, big, strlen(big)), 0); /* -10^300 > the double */
    big[1] = '2';
    ck_assert_int_eq(gbnf_accepts(g, big, strlen(big)), 1);
    free(g);
}
END_TEST

/* ---- strings ---- */

/* A random short string over a small alphabet (some non-ASCII, a newline, a quote). */
static void rand_string(char *buf, size_t cap)
{
    static const char *const al[] = {"a", "b", "c", "0", "1", "-", ".", " ", "\xc3\xa9", "\n", "\"", "_", "A",
                                     "\xf0\x9f\x98\x80"};
    size_t n = rnd() % 7, k = 0;
    buf[0] = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = al[rnd() % (sizeof al / sizeof al[0])];
        size_t l = strlen(p);
        if (k + l + 1 >= cap) break;
        memcpy(buf + k, p, l);
        k += l;
        buf[k] = 0;
    }
}

/* The JSON text of s with some characters written as \u escapes (any case). */
static char *json_escaped_variant(const char *s)
{
    json_t *j = json_string(s);
    size_t n;
    char *canon = pyjson_dumps(j, &n);
    json_decref(j);
    char *out = malloc(n * 12 + 16);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)canon[i];
        if (i > 0 && i + 1 < n && c >= 0x20 && c < 0x7f && c != '\\' && c != '"' && rnd() % 3 == 0)
            k += (size_t)sprintf(out + k, rnd() % 2 ? "\\u%04x" : "\\u%04X", c);
        else if (c == '/' && rnd() % 2)
            k += (size_t)sprintf(out + k, "\\/");
        else
            out[k++] = (char)c;
        if (c == '\\' && i + 1 < n) out[k++] = canon[++i]; /* keep escapes whole */
    }
    out[k] = 0;
    free(canon);
    return out;
}

START_TEST(test_patterns_and_lengths)
{
    static const char *const pats[] = {
        "^a*$", "a+", "^[a-c]{2,3}$", "b|c$", "^(ab|c)+$", "\\d", "^\\w+$", "^[^a]*$", ".", "^.$",
        "^a.c$", "\\s", "^(?:a|b)?c*$", "a{2}", "^a{1,2}b", "[.-]", "^[^\\s]+$", "^\\D*$", "_$",
        "^(a|b|)$", "^$", "é", "^[\\w.-]+$", "(?<n>ab)c", "[^\\w]", "^.{2,4}$", "^[a-z]+(-[a-z]+)*$",
        "^\\W*$", "^\\S+$", "^[^\\s.]+$",
    };
    size_t checked = 0;
    for (size_t p = 0; p < sizeof pats / sizeof pats[0]; p++) {
        for (int variant = 0; variant < 3; variant++) {
            json_t *schema = json_pack("{s:s,s:s}", "type", "string", "pattern", pats[p]);
            if (variant == 1) json_object_set_new(schema, "maxLength", json_integer(3));
            if (variant == 2) {
                json_object_set_new(schema, "minLength", json_integer(2));
                json_object_set_new(schema, "allOf", json_pack("[{s:s}]", "pattern", "[ab1]"));
            }
            char *stext = json_dumps(schema, JSON_COMPACT);
            struct err_info ei;
            char *g = convert(stext, GRAM_SCHEMA_PLAIN, &ei);
            ck_assert_msg(g != NULL, "%s: %s", stext, ei.msg);
            for (int it = 0; it < 150; it++) {
                char s[64];
                rand_string(s, sizeof s);
                json_t *x = json_string(s);
                char why[128];
                int want = jsval_check(schema, x, why, sizeof why);
                ck_assert_msg(want >= 0, "%s: jsval: %s", stext, why);
                size_t tn;
                char *text = pyjson_dumps(x, &tn);
                char *esc = json_escaped_variant(s);
                /* classes and . match BMP characters only, \D \W ASCII only (documented): then
                 * the grammar may reject a valid string, never accept an invalid one */
                const char *pt = pats[p];
                int neg_dw = strstr(pt, "\\D") || strstr(pt, "\\W") ||
                             (strstr(pt, "[^") && (strstr(pt, "\\w") || strstr(pt, "\\d")));
                int loose = strstr(s, "\xf0") != NULL || (neg_dw && strstr(s, "\xc3"));
                int a1 = gbnf_accepts(g, text, tn), a2 = gbnf_accepts(g, esc, strlen(esc));
                ck_assert_msg(a1 == want || (loose && !a1), "%s on %s: validator %d", stext, text, want);
                ck_assert_msg(a2 == want || (loose && !a2), "%s on %s: validator %d", stext, esc, want);
                free(text);
                free(esc);
                json_decref(x);
                checked += 2;
            }
            free(g);
            free(stext);
            json_decref(schema);
        }
    }
    printf("patterns: %zu strings agree with the validator (canonical and escaped spellings)\n", checked);
}
END_TEST

START_TEST(test_string_spellings)
{
    struct err_info ei;
    char *g = convert("{\"type\":\"string\",\"minLength\":1,\"maxLength\":1}", GRAM_SCHEMA_PLAIN, &ei);
    static const char *const one[] = {"\"a\"", "\"\\u00e9\"", "\"\\u00E9\"", "\"\xc3\xa9\"", "\"\\ud83d\\ude00\"",
                                      "\"\xf0\x9f\x98\x80\"", "\"\\n\"", "\"\\/\"", "\"\\\\\"", "\"\\\"\"", "\"\x7f\""};
    check_texts("one character", g, one, NULL, sizeof one / sizeof one[0]);
    static const char *const bad[] = {"\"\"", "\"ab\"", "\"\\ud83d\"", "\"\\ude00\"", "\"\\ud83d\\u0041\"",
                                      "\"\x01\"", "\"\\x41\"", "\"\\U00e9\"", "\"\\u00g9\"", "\"\xed\xa0\xbd\"",
                                      "\"\xc0\xaf\"", "\"\\a\""};
    check_texts("one character", g, NULL, bad, sizeof bad / sizeof bad[0]);
    free(g);
    /* const and enum strings: exactly the value, written as json.dumps writes it */
    g = convert("{\"enum\":[\"a\\nb\",\"\\u0000\",\"\\\"q\\\"\",\"\xc3\xa4\"]}", GRAM_SCHEMA_PLAIN, &ei);
    ck_assert_ptr_nonnull(g);
    static const char *const en[] = {"\"a\\nb\"", "\"\\u0000\"", "\"\\\"q\\\"\"", "\"\xc3\xa4\""};
    check_texts("enum", g, en, NULL, 4);
    ck_assert_int_eq(gbnf_accepts(g, "\"a\\rb\"", 6), 0);
    ck_assert_int_eq(gbnf_accepts(g, "\"a\xcc\x88\"", 5), 0); /* a + combining diaeresis */
    free(g);
}
END_TEST

START_TEST(test_formats)
{
    static const struct {
        const char *fmt, *yes[6], *no[8];
    } t[] = {
        {"date", {"2024-02-29", "2000-02-29", "1999-12-31", "0000-02-29", NULL},
         {"2023-02-29", "1900-02-29", "2024-04-31", "2024-13-01", "2024-1-01", "2024-00-10", "20240101", NULL}},
        {"time", {"00:00:00Z", "23:59:59.123+05:30", "12:00:00z", "08:30:00-08:00", NULL},
         {"24:00:00Z", "12:60:00Z", "12:00:00", "12:00Z", "12:00:00+24:00", "12:00:00.Z", NULL}},
        {"date-time", {"2024-02-29T12:00:00Z", "1999-01-01t00:00:00.5-01:00", NULL},
         {"2024-02-29 12:00:00Z", "2023-02-29T12:00:00Z", "2024-02-29T12:00:00", NULL}},
        {"uuid", {"123e4567-e89b-12d3-a456-426614174000", "00000000-0000-0000-0000-000000000000", NULL},
         {"123e4567e89b12d3a456426614174000", "123e4567-e89b-12d3-a456-42661417400", "g23e4567-e89b-12d3-a456-426614174000", NULL}},
        {"email", {"a@b", "first.last+tag@sub.example.com", "x_y@a-b.io", NULL},
         {"a", "@b.com", "a@", "a..b@c.com", ".a@b.com", "a@-b.com", "a@b_c.com", NULL}},
        {"ipv4", {"0.0.0.0", "255.255.255.255", "10.1.2.3", NULL},
         {"256.1.1.1", "1.2.3", "01.2.3.4", "1.2.3.4.5", "1.2.3.-4", NULL}},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char schema[128];
        snprintf(schema, sizeof schema, "{\"type\":\"string\",\"format\":\"%s\"}", t[i].fmt);
        struct err_info ei;
        char *g = convert(schema, GRAM_SCHEMA_PLAIN, &ei);
        ck_assert_msg(g != NULL, "%s: %s", schema, ei.msg);
        json_t *js = json_loads(schema, 0, NULL);
        for (int k = 0; k < 8; k++) {
            for (int yes = 1; yes >= 0; yes--) {
                const char *s = yes ? (k < 6 ? t[i].yes[k] : NULL) : t[i].no[k];
                if (!s) continue;
                char text[128];
                snprintf(text, sizeof text, "\"%s\"", s);
                json_t *x = json_string(s);
                ck_assert_msg(jsval_check(js, x, NULL, 0) == yes, "jsval %s on %s", t[i].fmt, s);
                ck_assert_msg(gbnf_accepts(g, text, strlen(text)) == yes, "grammar %s on %s", t[i].fmt, s);
                json_decref(x);
            }
        }
        json_decref(js);
        free(g);
    }
}
END_TEST

/* ---- objects and arrays ---- */

static void permute_check(const char *g, const char **kv, size_t n, size_t k, int want)
{
    if (k == n) {
        char text[512] = "{";
        for (size_t i = 0; i < n; i++) {
            if (i) strcat(text, ",");
            strcat(text, kv[i]);
        }
        strcat(text, "}");
        ck_assert_msg(gbnf_accepts(g, text, strlen(text)) == want, "%s: want %d", text, want);
        return;
    }
    for (size_t i = k; i < n; i++) {
        const char *t = kv[k];
        kv[k] = kv[i];
        kv[i] = t;
        permute_check(g, kv, n, k + 1, want);
        kv[i] = kv[k];
        kv[k] = t;
    }
}

START_TEST(test_object_order)
{
    const char *schema = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"string\"},"
                         "\"c\":{\"type\":\"boolean\"},\"d\":{\"type\":\"null\"},\"e\":{}},\"required\":[\"a\",\"c\"]}";
    struct err_info ei;
    char *g = convert(schema, GRAM_SCHEMA_PLAIN, &ei);
    ck_assert_ptr_nonnull(g);
    const char *all[] = {"\"a\":1", "\"b\":\"x\"", "\"c\":true", "\"d\":null", "\"e\":[1]", "\"zz\":{}"};
    permute_check(g, all, 6, 0, 1); /* every order of all five and an extra key */
    const char *req[] = {"\"c\":false", "\"a\":-3"};
    permute_check(g, req, 2, 0, 1);
    const char *missing[] = {"\"b\":\"x\"", "\"c\":true", "\"e\":0"};
    permute_check(g, missing, 3, 0, 0);
    const char *dup[] = {"\"a\":1", "\"c\":true", "\"a\":2"};
    permute_check(g, dup, 3, 0, 0);
    const char *wrong[] = {"\"a\":1", "\"c\":true", "\"d\":0"};
    permute_check(g, wrong, 3, 0, 0);
    free(g);
    /* tool mode: no extra keys unless additionalProperties says so */
    g = convert(schema, GRAM_SCHEMA_TOOL, &ei);
    ck_assert_int_eq(gbnf_accepts(g, "{\"a\":1,\"c\":true}", 16), 1);
    ck_assert_int_eq(gbnf_accepts(g, "{\"a\":1,\"c\":true,\"x\":1}", 22), 0);
    free(g);
    /* more properties than any_order_max: schema order, optional ones skippable */
    const char *big = "{\"properties\":{\"p1\":{},\"p2\":{},\"p3\":{},\"p4\":{},\"p5\":{},\"p6\":{},\"p7\":{},\"p8\":{}},"
                      "\"required\":[\"p2\",\"p7\"],\"additionalProperties\":false}";
    g = convert(big, GRAM_SCHEMA_PLAIN, &ei);
    ck_assert_ptr_nonnull(g);
    const char *ok[] = {"{\"p2\":1,\"p7\":2}", "{\"p1\":0,\"p2\":1,\"p5\":[],\"p7\":2,\"p8\":3}", "{\"p2\":1,\"p3\":1,\"p7\":2}"};
    check_texts("", g, ok, NULL, 3);
    const char *no[] = {"{\"p7\":2,\"p2\":1}", "{\"p2\":1}", "{\"p2\":1,\"p7\":2,\"p9\":3}", "{\"p2\":1,\"p2\":1,\"p7\":2}"};
    check_texts("", g, NULL, no, 4);
    free(g);
}
END_TEST

START_TEST(test_extra_keys_never_spell_declared)
{
    const char *schema = "{\"properties\":{\"foo\":{\"type\":\"integer\"},\"f\":{\"type\":\"integer\"},\"\xc3\xa9t\xc3\xa9\":{\"type\":\"integer\"},"
                         "\"\":{\"type\":\"integer\"}},\"additionalProperties\":{\"type\":\"string\"}}";
    struct err_info ei;
    char *g = convert(schema, GRAM_SCHEMA_PLAIN, &ei);
    ck_assert_ptr_nonnull(g);
    /* a declared key with a wrong value can never pass as an extra key, in any spelling */
    static const char *const no[] = {"{\"foo\":\"x\"}", "{\"f\\u006fo\":\"x\"}", "{\"\\u0066oo\":\"x\"}", "{\"f\":\"x\"}",
                                     "{\"\\u00e9t\\u00E9\":\"x\"}", "{\"\":\"x\"}", "{\"fo\\u006F\":\"x\"}"};
    check_texts("", g, NULL, no, sizeof no / sizeof no[0]);
    static const char *const yes[] = {"{\"fo\":\"x\"}", "{\"fooo\":\"x\"}", "{\"g\":\"x\"}", "{\"\xc3\xa9t\":\"x\"}",
                                      "{\"\\u00e9t\\u00e9s\":\"x\"}", "{\"foo\":1,\"x\":\"y\",\"f\":2}", "{\" \":\"\"}"};
    check_texts("", g, yes, NULL, sizeof yes / sizeof yes[0]);
    free(g);
}
END_TEST

START_TEST(test_arrays)
{
    static const struct {
        const char *schema, *yes[5], *no[5];
    } t[] = {
        {"{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":2,\"maxItems\":3}", {"[1,2]", "[1,2,3]", NULL}, {"[]", "[1]", "[1,2,3,4]", "[1,\"a\"]", NULL}},
        {"{\"prefixItems\":[{\"type\":\"string\"},{\"type\":\"integer\"}],\"items\":false}", {"[]", "[\"a\"]", "[\"a\",1]", NULL}, {"[1]", "[\"a\",1,2]", NULL}},
        {"{\"prefixItems\":[{\"type\":\"string\"}],\"items\":{\"type\":\"integer\"},\"minItems\":3}", {"[\"a\",1,2]", "[\"a\",1,2,3]", NULL}, {"[\"a\",1]", "[\"a\",\"b\",2]", NULL}},
        {"{\"items\":[{\"const\":1},{\"const\":2}],\"additionalItems\":{\"type\":\"boolean\"}}", {"[1,2,true]", "[1]", NULL}, {"[1,2,3]", "[2]", NULL}},
        {"{\"const\":[1,[2,{\"a\":null}]]}", {"[1,[2,{\"a\":null}]]", "[1.0,[2,{\"a\":null}]]", NULL}, {"[1,[2,{}]]", "[1,[2,{\"a\":null,\"b\":1}]]", "[1]", NULL}},
        {"{\"prefixItems\":[{},{\"not_a_keyword_x-\":1}],\"maxItems\":1}", {NULL}, {NULL}},
        {"{\"prefixItems\":[true,false]}", {"[]", "[1]", NULL}, {"[1,2]", "[1,2,3]", NULL}},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        struct err_info ei;
        char *g = convert(t[i].schema, GRAM_SCHEMA_PLAIN, &ei);
        if (i == 5) { /* an unknown keyword is refused */
            ck_assert_ptr_null(g);
            ck_assert_int_eq(ei.code, ERR_UNSUPPORTED);
            ck_assert_ptr_nonnull(strstr(ei.msg, "/prefixItems/1/not_a_keyword_x-"));
            continue;
        }
        ck_assert_msg(g != NULL, "%s: %s", t[i].schema, ei.msg);
        check_texts(t[i].schema, g, t[i].yes, t[i].no, 5);
        free(g);
    }
}
END_TEST

START_TEST(test_combinators_and_refs)
{
    static const struct {
        const char *schema, *yes[5], *no[5];
    } t[] = {
        /* a discriminated union: oneOf proven exclusive by the const tag */
        {"{\"oneOf\":[{\"type\":\"object\",\"properties\":{\"k\":{\"const\":\"a\"},\"x\":{\"type\":\"integer\"}},\"required\":[\"k\",\"x\"]},"
         "{\"type\":\"object\",\"properties\":{\"k\":{\"const\":\"b\"}},\"required\":[\"k\"]}]}",
         {"{\"k\":\"a\",\"x\":1}", "{\"k\":\"b\",\"x\":\"s\"}", NULL}, {"{\"k\":\"a\"}", "{\"k\":\"c\"}", "{\"x\":1}", NULL}},
        /* oneOf over disjoint types */
        {"{\"oneOf\":[{\"type\":\"string\"},{\"type\":\"integer\",\"minimum\":3},{\"type\":\"integer\",\"maximum\":1}]}", {"\"s\"", "3", "1", NULL}, {"2", "null", "1.5", NULL}},
        /* allOf merges, $ref with siblings */
        {"{\"$defs\":{\"n\":{\"type\":\"number\",\"minimum\":0}},\"allOf\":[{\"$ref\":\"#/$defs/n\",\"maximum\":10},{\"type\":\"integer\"}]}", {"0", "10", "7.0", NULL}, {"-1", "11", "2.5", NULL}},
        /* recursion through the root */
        {"{\"type\":\"object\",\"properties\":{\"next\":{\"$ref\":\"#\"},\"v\":{\"type\":\"integer\"}},\"required\":[\"v\"],\"additionalProperties\":false}",
         {"{\"v\":1}", "{\"v\":1,\"next\":{\"v\":2,\"next\":{\"v\":3}}}", NULL}, {"{\"v\":1,\"next\":{}}", "{\"v\":1,\"next\":null}", NULL}},
        /* draft-07 definitions, $anchor, nullable, draft-04 exclusive bounds */
        {"{\"definitions\":{\"s\":{\"$anchor\":\"S\",\"type\":\"string\",\"nullable\":true}},\"anyOf\":[{\"$ref\":\"#S\"},{\"type\":\"number\",\"minimum\":1,\"exclusiveMinimum\":true}]}",
         {"\"x\"", "null", "1.5", NULL}, {"1", "true", NULL}},
        /* enum intersected with siblings */
        {"{\"type\":\"string\",\"enum\":[\"a\",\"bb\",1,null],\"maxLength\":1}", {"\"a\"", NULL}, {"\"bb\"", "1", "null", NULL}},
        /* const object in any key order, no extra keys */
        {"{\"const\":{\"x\":1,\"y\":[true]}}", {"{\"x\":1,\"y\":[true]}", "{\"y\":[true],\"x\":1.0}", NULL}, {"{\"x\":1}", "{\"x\":1,\"y\":[true],\"z\":0}", NULL}},
        /* two branches that match everything: oneOf matches nothing */
        {"{\"oneOf\":[{},true]}", {NULL}, {"1", "{}", NULL}},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        struct err_info ei;
        char *g = convert(t[i].schema, GRAM_SCHEMA_PLAIN, &ei);
        ck_assert_msg(g != NULL, "%s: %s", t[i].schema, ei.msg);
        check_texts(t[i].schema, g, t[i].yes, t[i].no, 5);
        free(g);
    }
}
END_TEST

START_TEST(test_whitespace_bound)
{
    struct gram_schema_opts o;
    gram_schema_opts_default(&o);
    o.ws = 2;
    const char *schema = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"integer\"}}}}";
    char *g = NULL;
    struct err_info ei;
    ck_assert_int_eq(gram_schema_to_gbnf(schema, strlen(schema), &o, &g, NULL, &ei), 0);
    static const char *const yes[] = {"{\"a\":[1,2]}", "{ \"a\" : [ 1 , 2 ] }", "{\n \"a\": [\n 1]\n}", "{  }"};
    check_texts("", g, yes, NULL, 4);
    static const char *const no[] = {"{   \"a\":[]}", "{\"a\":[1,   2]}", "{\"a\"\n\n\n:[]}"};
    check_texts("", g, NULL, no, 3);
    free(g);
    /* compact by default: no whitespace at all */
    g = convert(schema, GRAM_SCHEMA_PLAIN, &ei);
    ck_assert_int_eq(gbnf_accepts(g, "{ }", 3), 0);
    ck_assert_int_eq(gbnf_accepts(g, "{}", 2), 1);
    free(g);
}
END_TEST

/* Several tools' argument schemas in one grammar, as the tool-calling work will build it. */
START_TEST(test_multi)
{
    json_t *a = json_loads("{\"type\":\"object\",\"properties\":{\"command\":{\"type\":\"string\"}},\"required\":[\"command\"]}", 0, NULL);
    json_t *b = json_loads("{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"},\"n\":{\"$ref\":\"#/$defs/n\"}},"
                           "\"required\":[\"path\"],\"$defs\":{\"n\":{\"type\":\"integer\",\"minimum\":1}}}", 0, NULL);
    struct gram_schema_entry e[2] = {{a, "exec-args"}, {b, "read-file-args"}};
    struct gram_schema_opts o;
    gram_schema_opts_default(&o);
    o.mode = GRAM_SCHEMA_TOOL;
    o.prefix = "t-";
    char *g = NULL;
    size_t n = 0;
    struct err_info ei;
    err_clear(&ei);
    ck_assert_int_eq(gram_schema_to_gbnf_multi(e, 2, &o, &g, &n, &ei), 0);
    ck_assert_ptr_null(strstr(g, "\nroot ::="));
    const char *root = "root ::= \"{\\\"name\\\":\\\"exec\\\",\\\"arguments\\\":\" exec-args \"}\" | "
                       "\"{\\\"name\\\":\\\"read_file\\\",\\\"arguments\\\":\" read-file-args \"}\"\n";
    char *full = malloc(n + strlen(root) + 1);
    strcpy(full, g);
    strcat(full, root);
    static const char *const yes[] = {"{\"name\":\"exec\",\"arguments\":{\"command\":\"ls\"}}",
                                      "{\"name\":\"read_file\",\"arguments\":{\"n\":2,\"path\":\"a\"}}"};
    check_texts("", full, yes, NULL, 2);
    static const char *const no[] = {"{\"name\":\"exec\",\"arguments\":{\"path\":\"a\"}}",
                                     "{\"name\":\"read_file\",\"arguments\":{\"path\":\"a\",\"n\":0}}",
                                     "{\"name\":\"exec\",\"arguments\":{\"command\":\"ls\",\"x\":1}}"};
    check_texts("", full, NULL, no, 3);
    free(full);
    free(g);
    /* bad names */
    struct gram_schema_entry dup[2] = {{a, "x"}, {b, "x"}};
    ck_assert_int_eq(gram_schema_to_gbnf_multi(dup, 2, &o, &g, NULL, &ei), ERR_DUPLICATE);
    struct gram_schema_entry bad[1] = {{a, "no spaces"}};
    ck_assert_int_eq(gram_schema_to_gbnf_multi(bad, 1, &o, &g, NULL, &ei), ERR_INVALID);
    ck_assert_ptr_null(g);
    json_decref(a);
    json_decref(b);
}
END_TEST

/* ---- bad inputs: each a clear error, never a crash ---- */

START_TEST(test_bad_inputs)
{
    static const struct {
        const char *schema;
        int code;
        const char *needle;
    } t[] = {
        {"", ERR_SYNTAX, "not JSON"},
        {"{\"type\":", ERR_SYNTAX, "not JSON"},
        {"{\"a\":1,\"a\":2}", ERR_SYNTAX, "duplicate"},
        {"1", ERR_INVALID, "object or a boolean"},
        {"{\"type\":\"float\"}", ERR_INVALID, "type at /type"},
        {"{\"type\":[]}", ERR_INVALID, "type"},
        {"{\"minLength\":-1}", ERR_INVALID, "minLength"},
        {"{\"maxItems\":1.5}", ERR_INVALID, "maxItems"},
        {"{\"required\":[1]}", ERR_INVALID, "required"},
        {"{\"properties\":[]}", ERR_INVALID, "properties"},
        {"{\"properties\":{\"a\":3}}", ERR_INVALID, "properties"},
        {"{\"anyOf\":[]}", ERR_INVALID, "anyOf"},
        {"{\"items\":1}", ERR_INVALID, "items"},
        {"{\"minimum\":\"1\"}", ERR_INVALID, "minimum"},
        {"{\"enum\":{}}", ERR_INVALID, "enum"},
        {"{\"$ref\":\"#/$defs/missing\"}", ERR_INVALID, "target not found"},
        {"{\"$ref\":\"#/properties/a\",\"properties\":{\"a\":[1]}}", ERR_INVALID, "properties"},
        {"{\"pattern\":\"(a\"}", ERR_INVALID, "parenthesis"},
        {"{\"pattern\":\"a{3,1}\"}", ERR_INVALID, "order"},
        {"{\"pattern\":\"*a\"}", ERR_INVALID, "nothing to repeat"},
        {"{\"pattern\":\"[z-a]\"}", ERR_INVALID, "range"},
        {"{\"not\":{}}", ERR_UNSUPPORTED, "not at /not"},
        {"{\"properties\":{\"a/b~\":{\"if\":true}}}", ERR_UNSUPPORTED, "if at /properties/a~1b~0/if"},
        {"{\"uniqueItems\":true,\"multipleOf\":2}", ERR_UNSUPPORTED, "multipleOf"},
        {"{\"pattern\":\"(a)\\\\1\"}", ERR_UNSUPPORTED, "backreferences"},
        {"{\"pattern\":\"a(?=b)\"}", ERR_UNSUPPORTED, "lookaround"},
        {"{\"pattern\":\"\\\\bword\"}", ERR_UNSUPPORTED, "boundary"},
        {"{\"pattern\":\"x^\"}", ERR_UNSUPPORTED, "^ is only"},
        {"{\"pattern\":\"[\xf0\x9f\x98\x80]\"}", ERR_UNSUPPORTED, "non-BMP"},
        {"{\"format\":\"uri\"}", ERR_UNSUPPORTED, "format \"uri\" unknown"},
        {"{\"$ref\":\"other.json#/a\"}", ERR_UNSUPPORTED, "only local references"},
        {"{\"oneOf\":[{\"type\":\"integer\"},{\"minimum\":0}]}", ERR_UNSUPPORTED, "not provably exclusive"},
        {"{\"frobnicate\":1}", ERR_UNSUPPORTED, "unknown keyword"},
        {"{\"maxLength\":4294967296}", ERR_LIMIT, "maxLength"},
        {"{\"minItems\":1e12}", ERR_LIMIT, "minItems"},
        {"{\"pattern\":\"a{1001}\"}", ERR_LIMIT, "1000"},
        {"{\"pattern\":\"(a|b)*a(a|b){14}\"}", ERR_LIMIT, "states"},
        {"{\"type\":\"string\",\"pattern\":\"^a+b*$\",\"maxLength\":60000}", ERR_LIMIT, "automaton states"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        struct err_info ei;
        char *g = convert(t[i].schema, GRAM_SCHEMA_PLAIN, &ei);
        ck_assert_msg(g == NULL, "%s converted", t[i].schema);
        ck_assert_msg(ei.code == t[i].code, "%s: code %d (%s), want %d", t[i].schema, ei.code, ei.msg, t[i].code);
        ck_assert_msg(strstr(ei.msg, t[i].needle) != NULL, "%s: message \"%s\" lacks \"%s\"", t[i].schema, ei.msg, t[i].needle);
    }
    /* the lax flag makes unknown formats annotations */
    struct gram_schema_opts o;
    gram_schema_opts_default(&o);
    o.flags = GRAM_SCHEMA_LAX_FORMAT;
    char *g = NULL;
    struct err_info ei;
    ck_assert_int_eq(gram_schema_to_gbnf("{\"format\":\"uri\"}", 16, &o, &g, NULL, &ei), 0);
    free(g);
    ck_assert_int_eq(gram_schema_to_gbnf(NULL, 0, &o, &g, NULL, &ei), ERR_INVALID);
}
END_TEST

START_TEST(test_limits)
{
    struct err_info ei;
    /* enum too large */
    struct pyjson_buf b = {0};
    pyjson_puts(&b, "{\"enum\":[");
    for (int i = 0; i < 1100; i++) {
        char t[16];
        snprintf(t, sizeof t, "%s%d", i ? "," : "", i);
        pyjson_puts(&b, t);
    }
    pyjson_puts(&b, "]}");
    char *g = convert(b.p, GRAM_SCHEMA_PLAIN, &ei);
    ck_assert_ptr_null(g);
    ck_assert_int_eq(ei.code, ERR_LIMIT);
    free(b.p);
    /* deep nesting */
    memset(&b, 0, sizeof b);
    for (int i = 0; i < 100; i++) pyjson_puts(&b, "{\"items\":");
    pyjson_puts(&b, "true");
    for (int i = 0; i < 100; i++) pyjson_puts(&b, "}");
    g = convert(b.p, GRAM_SCHEMA_PLAIN, &ei);
    ck_assert_ptr_null(g);
    ck_assert_int_eq(ei.code, ERR_LIMIT);
    free(b.p);
    /* grammar size limit */
    struct gram_schema_opts o;
    gram_schema_opts_default(&o);
    o.max_bytes = 200;
    const char *s = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\",\"minimum\":1234,\"maximum\":987654}}}";
    ck_assert_int_eq(gram_schema_to_gbnf(s, strlen(s), &o, &g, NULL, &ei), ERR_LIMIT);
    ck_assert_ptr_null(g);
    /* anyOf products */
    memset(&b, 0, sizeof b);
    pyjson_puts(&b, "{\"allOf\":[");
    for (int i = 0; i < 12; i++) pyjson_puts(&b, i ? ",{\"anyOf\":[{\"minimum\":1},{\"maximum\":5}]}" : "{\"anyOf\":[{\"minimum\":1},{\"maximum\":5}]}");
    pyjson_puts(&b, "]}");
    g = convert(b.p, GRAM_SCHEMA_PLAIN, &ei);
    ck_assert_ptr_null(g);
    ck_assert_int_eq(ei.code, ERR_LIMIT);
    free(b.p);
    /* counts past the matcher's 65535 are written as nested repetitions, exactly */
    static const struct {
        uint64_t min, max;
    } big[] = {{0, 65535}, {0, 65536}, {0, 200000}, {70000, 70001}, {65535, 131071}, {131070, 131070}};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        char sch[128];
        snprintf(sch, sizeof sch, "{\"type\":\"string\",\"minLength\":%llu,\"maxLength\":%llu}",
                 (unsigned long long)big[i].min, (unsigned long long)big[i].max);
        g = convert(sch, GRAM_SCHEMA_PLAIN, &ei);
        ck_assert_msg(g != NULL, "%s: %s", sch, ei.msg);
        uint64_t probe[] = {0, 1, big[i].min > 0 ? big[i].min - 1 : 0, big[i].min, big[i].max, big[i].max + 1, 65535, 65536, 131070, 131071};
        for (size_t k = 0; k < sizeof probe / sizeof probe[0]; k++) {
            size_t n = (size_t)probe[k];
            char *text = malloc(n + 3);
            text[0] = '"';
            memset(text + 1, 'x', n);
            text[n + 1] = '"';
            int want = probe[k] >= big[i].min && probe[k] <= big[i].max;
            ck_assert_msg(gbnf_accepts(g, text, n + 2) == want, "%s on %zu chars", sch, n);
            free(text);
        }
        free(g);
    }
}
END_TEST

Suite *make_suite(void);
Suite *make_suite(void)
{
    Suite *s = suite_create("schema");
    TCase *tc = tcase_create("suite");
    tcase_add_test(tc, test_suite);
    tcase_add_test(tc, test_jsval_suite);
    tcase_add_test(tc, test_suite_walks);
    tcase_add_test(tc, test_agent_schemas);
    tcase_set_timeout(tc, 300);
    suite_add_tcase(s, tc);
    TCase *tu = tcase_create("units");
    tcase_add_test(tu, test_number_ranges);
    tcase_add_test(tu, test_number_edges);
    tcase_add_test(tu, test_patterns_and_lengths);
    tcase_add_test(tu, test_string_spellings);
    tcase_add_test(tu, test_formats);
    tcase_add_test(tu, test_object_order);
    tcase_add_test(tu, test_extra_keys_never_spell_declared);
    tcase_add_test(tu, test_arrays);
    tcase_add_test(tu, test_combinators_and_refs);
    tcase_add_test(tu, test_whitespace_bound);
    tcase_add_test(tu, test_multi);
    tcase_set_timeout(tu, 300);
    suite_add_tcase(s, tu);
    TCase *tb = tcase_create("bad");
    tcase_add_test(tb, test_bad_inputs);
    tcase_add_test(tb, test_limits);
    tcase_set_timeout(tb, 120);
    suite_add_tcase(s, tb);
    return s;
}

TUTIL_MAIN
