/* seeds_snapshot: writes the starting corpus for fuzz_snapshot into a directory, at run time.
 *
 * Why generated, and with the library: the repository holds no binary files, and the seeds must
 * be real snapshots, so they come from kv_snap_encode itself (this program links the library,
 * see the Makefile's fuzz section). They match the harness's sessions (fingerprint 0x5EED..., 2
 * layers, KV width 64, 64 positions): every KV type with 0, 1, 5 and 64 tokens and cache values
 * of every sign and size, one written with a 32-position context, plus a version-2 file with a
 * valid checksum and a cut-off file, so mutations start on both sides of every check. Extra
 * arguments (the GGUF seed files make fuzz-smoke passes to every seed program) are ignored.
 *
 * usage: seeds_snapshot <dir> [ignored ...] */
#include "kv/kv.h"
#include "util/hash.h"

#include "seed_io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FP 0x5EED5EED5EED5EEDull

struct mem {
    uint8_t *p;
    size_t n, cap;
};

static int mem_write(void *ud, const void *p, size_t n)
{
    struct mem *m = ud;
    if (m->n + n > m->cap) {
        size_t cap = (m->n + n) * 2;
        uint8_t *q = realloc(m->p, cap);
        if (!q) return ERR_NOMEM;
        m->p = q;
        m->cap = cap;
    }
    memcpy(m->p + m->n, p, n);
    m->n += n;
    return 0;
}

/* A cache of `type` whose first n positions hold a spread of values. */
static int make_cache(struct kv_cache *kv, int type, uint32_t n_ctx, uint32_t n)
{
    if (kv_init(kv, type, 2, n_ctx, 64)) return 1;
    float row[64];
    uint32_t seed = 12345;
    for (uint32_t l = 0; l < 2; l++)
        for (uint32_t t = 0; t < n; t++) {
            for (int d = 0; d < 64; d++) {
                seed = seed * 1664525u + 1013904223u;
                row[d] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * (d % 7 == 0 ? 100.0f : 2.0f);
            }
            if (type == KV_Q8_0) { /* blocks: an fp16 scale and int8 values */
                for (size_t i = 0; i < kv->k_row; i++) {
                    seed = seed * 1664525u + 1013904223u;
                    kv_k_row(kv, l, t)[i] = (uint8_t)(seed >> 24);
                    kv_v_row(kv, l, t)[i] = (uint8_t)(seed >> 16);
                }
                continue;
            }
            if (type == KV_F32) {
                memcpy(kv_k_row(kv, l, t), row, sizeof row);
            } else {
                uint16_t *k = (uint16_t *)(void *)kv_k_row(kv, l, t);
                for (int d = 0; d < 64; d++) k[d] = (uint16_t)(0x3c00 + (int)(row[d] * 64.0f));
            }
            kv_v_put(kv, l, t, row);
        }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: seeds_snapshot <dir> [ignored ...]\n");
        return 2;
    }
    const char *dir = argv[1];
    int32_t toks[64];
    for (int i = 0; i < 64; i++) toks[i] = (i * 37 + 1) % 512;
    static const uint32_t counts[] = {0, 1, 5, 64};
    int rc = 0;
    for (int type = 0; type < KV_TYPE_COUNT_; type++)
        for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
            uint32_t n_ctx = type == KV_F16 && counts[c] == 5 ? 32 : 64; /* one with another writer context */
            struct kv_cache kv;
            struct mem m = {0};
            if (make_cache(&kv, type, n_ctx, counts[c]) ||
                kv_snap_encode(&kv, FP, toks, counts[c], mem_write, &m, NULL, NULL)) {
                fprintf(stderr, "seeds_snapshot: cannot build a %s snapshot\n", kv_type_name(type));
                return 1;
            }
            char name[64];
            snprintf(name, sizeof name, "snap-%s-%u", kv_type_name(type), counts[c]);
            rc |= seed_write("seeds_snapshot", dir, name, m.p, m.n);
            if (type == KV_F16 && counts[c] == 1) {
                rc |= seed_write("seeds_snapshot", dir, "snap-cut", m.p, m.n / 2);
                m.p[8] = 2; /* a future version, checksum made valid again */
                uint64_t h = util_xxh64(m.p, m.n - 8, 0);
                for (int i = 0; i < 8; i++) m.p[m.n - 8 + i] = (uint8_t)(h >> (8 * i));
                rc |= seed_write("seeds_snapshot", dir, "snap-v2", m.p, m.n);
            }
            free(m.p);
            kv_free(&kv);
        }
    return rc;
}
