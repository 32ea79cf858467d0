/* seeds_pcname: the starting corpus for fuzz_pcname: one name of each kind the prompt cache makes
 * and near misses of each (written at run time; the repository holds no binary files).
 *
 * usage: seeds_pcname <dir> [ignored ...] */
#include "seed_io.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: seeds_pcname DIR\n");
        return 2;
    }
    static const char *const names[] = {
        "0123456789abcdef",       "0123456789abcdef-f16-m256",  "fedcba9876543210-q8_0-m1",
        "0123456789abcdef-f32-m4294967295", "0123456789abcdef-42.snap", "0123456789abcdef-0.snap",
        "0123456789abcdef-4294967295.snap", "0123456789abcdef-42.snap.tmp-aB3xYz", "0123456789ABCDEF",
        "0123456789abcdef-042.snap", "0123456789abcdef-4294967296.snap", "0123456789abcdef-f16-m0", "README",
        ".", "..",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char file[64];
        snprintf(file, sizeof file, "name-%02zu", i);
        if (seed_write("seeds_pcname", argv[1], file, names[i], strlen(names[i]))) return 1;
    }
    return 0;
}
