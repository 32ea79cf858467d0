/* cli: the command line: one function per subcommand, and the one argument parser they all use.
 *
 * Layering: src/main.c → cli → (rpc for serve/batch, ftool for quantize/dev synth, eng for
 * everything else). The commands never include model, kv, kern or gguf headers. Only this layer
 * (and main.c) may exit(): a usage error exits 2 from the parser, a runtime failure returns 1.
 *
 * The command functions take argv after the subcommand name and return the process exit code
 * (0 success, 1 runtime failure); tests call them directly (tests/check_door.c). */
#ifndef LMPIPE_CLI_CLI_H
#define LMPIPE_CLI_CLI_H

#include "../samp/samp.h"
#include "../util/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- the subcommands ---- */
int cli_run_main(int argc, char **argv);
int cli_chat_main(int argc, char **argv);
int cli_eval_main(int argc, char **argv);
int cli_tokenize_main(int argc, char **argv);
int cli_info_main(int argc, char **argv);
int cli_serve_main(int argc, char **argv);
int cli_batch_main(int argc, char **argv);
int cli_quantize_main(int argc, char **argv);
int cli_bench_main(int argc, char **argv);
int cli_template_main(int argc, char **argv); /* template render */
int cli_dev_main(int argc, char **argv); /* hidden: dev synth, dev peak-rss */
int cli_grammar_main(int argc, char **argv); /* grammar convert, grammar check */
/* The grammar of run's and chat's --grammar FILE / --json-schema FILE / --json (NULL: none);
 * more than one, or one that cannot be read or compiled, exits 2 saying why. */
struct eng_grammar;
struct eng_grammar *cli_grammar_load(const char *gbnf_file, const char *schema_file, bool json,
                                     bool strict);
/* `dev peak-rss FILE CMD...` (tests/bench.sh): the peak RSS of CMD in bytes, into FILE. */
int cli_dev_peak_rss(int argc, char **argv);
/* The general usage text (`lmpipe --help`). */
void cli_usage(FILE *f);

/* ---- the argument parser ----
 * A command describes its options in a table; cli_parse walks argv once. Options take their
 * value as the next argument, or as --name=value for double-dash names. Every value is parsed
 * strictly (the whole string, in range): "-n abc" is a usage error, never 0. */
enum cli_kind {
    CLI_SET,   /* no value: *(bool *)dst = true */
    CLI_CLEAR, /* no value: *(bool *)dst = false */
    CLI_STR,   /* *(const char **)dst = the value */
    CLI_INT,   /* *(int64_t *)dst = an integer in [lo, hi] */
    CLI_NUM,   /* *(double *)dst = a number in [dlo, dhi] */
    CLI_SAMP,  /* a sampling field of *(struct samp_params *)dst, ranged by samp's table */
    CLI_FN,    /* fn(dst, name, value): the option parses its value itself */
};
struct cli_opt {
    const char *name, *alt; /* "-n" and "--n-predict"; alt may be NULL */
    int kind;
    void *dst;
    int64_t lo, hi;                  /* CLI_INT */
    double dlo, dhi;                 /* CLI_NUM */
    const struct samp_field *field;  /* CLI_SAMP */
    void (*fn)(void *dst, const char *name, const char *value); /* CLI_FN */
};
struct cli_spec {
    const char *cmd;        /* in messages: "unknown option '--x' for run" */
    const char *usage;      /* -h/--help prints it and exits 0 (NULL: the general usage) */
    const struct cli_opt *opts;
    size_t n_opts;
    const char **pos;       /* positional arguments go here, up to max_pos */
    size_t max_pos;
    size_t *n_pos;          /* how many were given (may be NULL) */
    const char *pos_what;   /* "one TEXT argument", for "tokenize takes one TEXT argument ..." */
};
/* Parse argv[0..argc) by the spec; any usage error prints what and exits 2. */
void cli_parse(const struct cli_spec *spec, int argc, char **argv);
/* The sampling options of samp's field table (--temp, --top-k, ...) into out[0..n): n entries
 * (at most cap), each a CLI_SAMP of sp. */
size_t cli_samp_opts(struct samp_params *sp, struct cli_opt *out, size_t cap);

/* ---- KV cache flags: --kv-type (run, chat, serve, batch, bench, eval) and the disk prompt
 * cache (run, chat, serve, batch) ---- */
struct cli_kv {
    int kv_type;            /* enum eng_kv_type; ENG_KV_DEFAULT unless --kv-type */
    const char *pcache_dir; /* --prompt-cache DIR, or NULL */
    int64_t pcache_min;     /* --prompt-cache-min N */
    int64_t pcache_max;     /* --prompt-cache-max BYTES (k/m/g suffixes: KiB, MiB, GiB) */
};
void cli_kv_defaults(struct cli_kv *k);
/* CLI_FN for --kv-type: dst is an int. */
void cli_kv_type_value(void *dst, const char *name, const char *v);
#define CLI_KV_OPTS 4
/* --kv-type and the three prompt cache options into out[0..CLI_KV_OPTS). */
size_t cli_kv_opts(struct cli_kv *k, struct cli_opt *out);

/* Strict values outside a table (a list element): print the problem and exit(2) when bad. */
int64_t cli_flag_int(const char *name, const char *v, int64_t lo, int64_t hi);
/* "lmpipe: <formatted>\n(see 'lmpipe --help')" on stderr and exit(2). */
_Noreturn void cli_usage_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
/* "lmpipe: <what>: <the error>" on stderr and exit(1). */
_Noreturn void cli_die(const char *what, const struct err_info *ei, int rc);

/* A whole stream or file in a NUL-terminated buffer (at most 1 GiB); NULL on failure. */
char *cli_slurp(FILE *f, size_t *len);
/* The file's bytes, or exit(1) saying why. */
char *cli_read_file_or_die(const char *path, size_t *len);
/* --chat-template-file FILE: its text (*len bytes, malloc'd), checked to parse as a Jinja
 * template; exit 1 when it cannot be read, exit 2 ("FILE: line L, column C: ...") when it does
 * not parse. */
char *cli_chat_template_file(const char *path, size_t *len);
/* s[0..n) as a JSON string literal. */
void cli_json_str(FILE *f, const char *s, size_t n);

#endif
