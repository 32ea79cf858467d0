/* lmpipe command line: argv → subcommand (src/cli). The only file besides src/cli that may
 * exit().
 *
 * Generated text goes to stdout; statistics and logs go to stderr. Exit codes: 0 success,
 * 1 runtime failure (bad model, prompt too long, ...), 2 usage error. */
#include "cli/cli.h"
#include "util/version.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int (*main)(int argc, char **argv);
} k_commands[] = {
    {"run", cli_run_main},           {"chat", cli_chat_main},
    {"tokenize", cli_tokenize_main}, {"eval", cli_eval_main},
    {"info", cli_info_main},         {"serve", cli_serve_main},
    {"batch", cli_batch_main},       {"quantize", cli_quantize_main},
    {"bench", cli_bench_main},       {"grammar", cli_grammar_main},
    {"template", cli_template_main},
    {"dev", cli_dev_main}, /* hidden: dev synth, dev peak-rss */
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        cli_usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        cli_usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("lmpipe %s\n", LMPIPE_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof k_commands / sizeof k_commands[0]; i++)
        if (!strcmp(cmd, k_commands[i].name)) return k_commands[i].main(argc - 2, argv + 2);
    fprintf(stderr, "lmpipe: unknown command '%s'\n", cmd);
    cli_usage(stderr);
    return 2;
}
