/* cli_grammar: `lmpipe grammar convert` (a JSON Schema as GBNF) and `lmpipe grammar check` (does
 * a grammar accept a whole text?), and the grammar options of run and chat (cli_grammar_load).
 * Everything goes through eng's grammar entry points; this file never sees src/gram.
 *
 * Exit codes of `grammar`: 0 accepted / converted, 1 the text is rejected (where and why on
 * stderr), 2 a usage error or a grammar / schema that is invalid, unsupported or unreadable (the
 * parser's line:column, or the schema's keywords). */
#include "cli.h"

#include "../eng/eng.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char k_usage[] =
    "usage: lmpipe grammar convert --json-schema FILE [--strict]\n"
    "         print the GBNF grammar of a JSON Schema\n"
    "       lmpipe grammar check (-g FILE.gbnf | --json-schema FILE | --json) [--strict] [TEXT]\n"
    "         does the grammar accept the whole TEXT (stdin when absent), byte for byte?\n"
    "         exit 0 yes, 1 no (where and why on stderr), 2 invalid grammar or schema\n"
    "  --strict: OpenAI's strict mode (objects allow no undeclared properties by default)\n";

/* A file's bytes, or exit 2 saying why (a grammar that cannot be read is not a rejection). */
static char *read_or_exit2(const char *what, const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = f ? cli_slurp(f, len) : NULL;
    int e = errno;
    if (f) fclose(f);
    if (!buf) {
        fprintf(stderr, "lmpipe: cannot read %s '%s': %s\n", what, path, f ? "read error or too large" : strerror(e));
        exit(2);
    }
    return buf;
}

struct eng_grammar *cli_grammar_load(const char *gbnf_file, const char *schema_file, bool json,
                                     bool strict)
{
    if ((gbnf_file != NULL) + (schema_file != NULL) + json > 1)
        cli_usage_error("give one of --grammar, --json-schema and --json");
    if (!gbnf_file && !schema_file && !json) return NULL;
    struct err_info ei;
    err_clear(&ei);
    struct eng_grammar *g = NULL;
    const char *what = "the built-in JSON grammar", *path = "";
    size_t len = 0;
    int rc;
    if (json) {
        rc = eng_grammar_json(&g, &ei);
    } else if (gbnf_file) {
        char *text = read_or_exit2("grammar", path = gbnf_file, &len);
        what = "grammar";
        rc = eng_grammar_parse(&g, text, len, &ei);
        free(text);
    } else {
        char *text = read_or_exit2("JSON Schema", path = schema_file, &len);
        what = "JSON Schema";
        rc = eng_grammar_from_schema(&g, text, len, strict, &ei);
        free(text);
    }
    if (rc) {
        char m[512];
        fprintf(stderr, "lmpipe: %s %s: %s\n", what, path, err_format(&ei, rc, m, sizeof m));
        exit(2);
    }
    return g;
}

static int cmd_convert(int argc, char **argv)
{
    const char *schema = NULL;
    bool strict = false;
    const struct cli_opt opts[] = {
        {.name = "--json-schema", .kind = CLI_STR, .dst = &schema},
        {.name = "--strict", .kind = CLI_SET, .dst = &strict},
    };
    const struct cli_spec spec = {"grammar convert", k_usage, opts, sizeof opts / sizeof opts[0],
                                  NULL, 0, NULL, NULL};
    cli_parse(&spec, argc, argv);
    if (!schema) cli_usage_error("grammar convert needs --json-schema FILE");
    size_t len, n;
    char *text = read_or_exit2("JSON Schema", schema, &len), *gbnf;
    struct err_info ei;
    err_clear(&ei);
    int rc = eng_schema_to_gbnf(text, len, strict, &gbnf, &n, &ei);
    free(text);
    if (rc) {
        char m[512];
        fprintf(stderr, "lmpipe: JSON Schema %s: %s\n", schema, err_format(&ei, rc, m, sizeof m));
        return 2;
    }
    int ok = fwrite(gbnf, 1, n, stdout) == n && fflush(stdout) == 0;
    free(gbnf);
    return ok ? 0 : 1;
}

static int cmd_check(int argc, char **argv)
{
    const char *gbnf = NULL, *schema = NULL, *text = NULL;
    bool json = false, strict = false;
    size_t n_pos = 0;
    const struct cli_opt opts[] = {
        {.name = "-g", .alt = "--grammar", .kind = CLI_STR, .dst = &gbnf},
        {.name = "--json-schema", .kind = CLI_STR, .dst = &schema},
        {.name = "--json", .kind = CLI_SET, .dst = &json},
        {.name = "--strict", .kind = CLI_SET, .dst = &strict},
    };
    const struct cli_spec spec = {"grammar check", k_usage, opts, sizeof opts / sizeof opts[0],
                                  &text, 1, &n_pos, "at most one TEXT argument"};
    cli_parse(&spec, argc, argv);
    if (!gbnf && !schema && !json) cli_usage_error("grammar check needs -g FILE, --json-schema FILE or --json");
    struct eng_grammar *g = cli_grammar_load(gbnf, schema, json, strict);
    char *buf = NULL;
    size_t len = text ? strlen(text) : 0;
    if (!text && !(buf = cli_slurp(stdin, &len))) {
        eng_grammar_free(g);
        fprintf(stderr, "lmpipe: cannot read the text from stdin\n");
        return 2;
    }
    struct err_info ei;
    err_clear(&ei);
    int rc = eng_grammar_check(g, text ? text : buf, len, &ei);
    free(buf);
    eng_grammar_free(g);
    if (rc == 0) return 0;
    char m[512];
    if (rc == ERR_REJECTED) {
        fprintf(stderr, "lmpipe: rejected at byte %llu: %s\n", (unsigned long long)ei.offset, ei.msg);
        return 1;
    }
    fprintf(stderr, "lmpipe: grammar check failed: %s\n", err_format(&ei, rc, m, sizeof m));
    return 2;
}

int cli_grammar_main(int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "-h") || !strcmp(argv[0], "--help")) {
        fputs(k_usage, argc < 1 ? stderr : stdout);
        return argc < 1 ? 2 : 0;
    }
    if (!strcmp(argv[0], "convert")) return cmd_convert(argc - 1, argv + 1);
    if (!strcmp(argv[0], "check")) return cmd_check(argc - 1, argv + 1);
    cli_usage_error("unknown grammar command '%s' (convert, check)", argv[0]);
}
