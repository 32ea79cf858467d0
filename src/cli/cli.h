/* cli: helpers shared by the subcommands in src/cli/ and src/main.c (the command-line layer,
 * above rpc and eng). Only this layer may exit(). */
#ifndef LMPIPE_CLI_CLI_H
#define LMPIPE_CLI_CLI_H

#include <stdbool.h>
#include <stdint.h>

/* Strict flag values: print "invalid value 'V' for NAME: expected ..." and exit(2) when bad. */
int64_t cli_flag_int(const char *name, const char *v, int64_t lo, int64_t hi);
double cli_flag_num(const char *name, const char *v, double lo, double hi);
/* Print "lmpipe: <formatted>\n(see 'lmpipe --help')" to stderr and exit(2). */
_Noreturn void cli_usage_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Subcommands implemented in src/cli/ (argv after the subcommand name; return the exit code). */
int cli_quantize_main(int argc, char **argv);
int cli_bench_main(int argc, char **argv);
int cli_dev_main(int argc, char **argv);
/* `dev peak-rss FILE CMD...` (tests/bench.sh): the peak RSS of CMD in bytes, into FILE. */
int cli_dev_peak_rss(int argc, char **argv);

#endif
