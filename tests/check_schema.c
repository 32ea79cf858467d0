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

Suite *make_suite(void);
Suite *make_suite(void)
{
    Suite *s = suite_create("schema");
    TCase *tc = tcase_create("suite");
    tcase_add_test(tc, test_suite);
    tcase_add_test(tc, test_jsval_suite);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    return s;
}

TUTIL_MAIN
