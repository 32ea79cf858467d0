/* rpc_cli: the few flag helpers `serve` and `batch` share. Values are parsed strictly, like the
 * rest of the CLI: the whole string must be a number in range ("--queue abc" is an error). */
#include "rpc_int.h"

#include "../util/util.h"

#include <stdio.h>
#include <string.h>

bool rpc_opt(int argc, char **argv, int *i, const char *name, const char **val)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return false;
    if (a[n] == '=' && name[1] == '-') {
        *val = a + n + 1;
        return true;
    }
    if (a[n] != '\0') return false;
    if (*i + 1 >= argc) {
        fprintf(stderr, "lmpipe: option %s needs a value\n", name);
        *val = NULL;
        return true;
    }
    *val = argv[++*i];
    return true;
}

int rpc_opt_int(const char *flag, const char *v, int64_t lo, int64_t hi, int64_t *out)
{
    if (v && util_parse_i64(v, lo, hi, out) == 0) return 0;
    if (v)
        fprintf(stderr, "lmpipe: invalid value '%s' for %s: expected an integer in [%lld, %lld]\n", v,
                flag, (long long)lo, (long long)hi);
    return -1;
}

int rpc_opt_server(int argc, char **argv, int *i, const char **model, struct rpc_config *cfg)
{
    const char *v;
    int64_t x;
    if (rpc_opt(argc, argv, i, "-m", &v) || rpc_opt(argc, argv, i, "--model", &v)) {
        if (!v) return -1;
        *model = v;
    } else if (rpc_opt(argc, argv, i, "-c", &v) || rpc_opt(argc, argv, i, "--ctx-size", &v)) {
        if (rpc_opt_int("-c", v, 1, 1 << 24, &x)) return -1;
        cfg->n_ctx = (uint32_t)x;
    } else if (rpc_opt(argc, argv, i, "-t", &v) || rpc_opt(argc, argv, i, "--threads", &v)) {
        if (rpc_opt_int("-t", v, 1, 1024, &x)) return -1;
        cfg->threads = (int)x;
    } else if (rpc_opt(argc, argv, i, "--max-line", &v)) {
        if (rpc_opt_int("--max-line", v, (int64_t)RPC_LINE_IN_MIN, (int64_t)1 << 32, &x)) return -1;
        cfg->max_line_in = (size_t)x;
    } else {
        return 0;
    }
    return 1;
}
