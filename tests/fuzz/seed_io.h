/* seed_io: writing one seed file, shared by the tests/fuzz/seeds_*.c programs. */
#ifndef LMPIPE_TESTS_FUZZ_SEED_IO_H
#define LMPIPE_TESTS_FUZZ_SEED_IO_H

#include <stdio.h>

/* Write p[0..n) to dir/name; 0, or 1 after a message naming prog and the path. */
static inline int seed_write(const char *prog, const char *dir, const char *name, const void *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    int bad = !f || fwrite(p, 1, n, f) != n;
    if (f && fclose(f) != 0) bad = 1;
    if (bad) fprintf(stderr, "%s: cannot write %s\n", prog, path);
    return bad;
}

#endif
