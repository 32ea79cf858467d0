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
