/* fuzz_pcname: libFuzzer harness for the prompt cache's directory-entry name parser
 * (kv_pcache_name, src/kv/kv_pcache.c): the only names the cache will ever read or delete.
 *
 * Checks beyond "no crash": a name is accepted exactly when formatting what was parsed gives the
 * same bytes back (so no two spellings of one entry exist and nothing else matches), the kind
 * decides what was filled in, and a refusal leaves the output zeroed. abort() on a violation. */
#include "kv/kv.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "fuzz_pcname: invariant failed: %s (line %d)\n", #cond, __LINE__); \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *name = malloc(size ? size : 1); /* exact size, no NUL: reads past it are caught */
    CHECK(name);
    if (size) memcpy(name, data, size);
    struct kv_pcache_name nm;
    int kind = kv_pcache_name(size ? name : NULL, size, &nm);
    char back[128];
    int n = 0;
    switch (kind) {
    case KV_PCN_NONE:
        CHECK(nm.hash == 0 && nm.n == 0 && nm.kv_type == 0);
        break;
    case KV_PCN_BUCKET: n = snprintf(back, sizeof back, "%016" PRIx64, nm.hash); break;
    case KV_PCN_MODEL:
        CHECK(nm.n > 0 && nm.kv_type >= 0 && nm.kv_type < KV_TYPE_COUNT_);
        n = snprintf(back, sizeof back, "%016" PRIx64 "-%s-m%" PRIu32, nm.hash, kv_type_name(nm.kv_type), nm.n);
        break;
    case KV_PCN_ENTRY: n = snprintf(back, sizeof back, "%016" PRIx64 "-%" PRIu32 ".snap", nm.hash, nm.n); break;
    case KV_PCN_TMP:
        n = snprintf(back, sizeof back, "%016" PRIx64 "-%" PRIu32 ".snap.tmp-", nm.hash, nm.n);
        CHECK(size == (size_t)n + 6);
        memcpy(back + n, name + n, 6); /* mkstemp's six characters */
        n += 6;
        break;
    default: CHECK(0);
    }
    if (kind != KV_PCN_NONE) CHECK((size_t)n == size && !memcmp(back, name, size));
    free(name);
    return 0;
}
