/* seeds_tok: writes the starting corpus for fuzz_tok at run time, from the tokenizer test strings
 * llama.cpp ships beside its vocabularies ($LMPIPE_SHARED/vocab/ggml-vocab-*.gguf.inp, default
 * ../shared): each file is a list of texts separated by "\n__ggml_vocab_test__\n" (whitespace
 * runs, mixed scripts, emoji, digits, code, contractions: the cases each pre-tokenizer splits
 * differently). Every distinct text becomes one seed, and each distinct file whole one more, so the
 * fuzzer starts inside every splitting pass instead of rediscovering UTF-8 byte by byte.
 * Nothing is copied into the repository: the seeds are written into the corpus directory.
 *
 * usage: seeds_tok <dir> [ignored ...] */
#include "seed_io.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#define SEP "\n__ggml_vocab_test__\n"
#define MAX_TEXTS 4096

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    for (size_t k; b && (k = fread(b + n, 1, cap - n, f)) > 0;) {
        n += k;
        if (n == cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) free(b);
            b = nb;
        }
    }
    fclose(f);
    *len = n;
    return b;
}

/* Texts written so far (their bytes live in the files read, kept until exit). */
static struct {
    const char *p;
    size_t n;
} g_seen[MAX_TEXTS];
static size_t g_n_seen;

static int seen(const char *p, size_t n)
{
    for (size_t i = 0; i < g_n_seen; i++)
        if (g_seen[i].n == n && !memcmp(g_seen[i].p, p, n)) return 1;
    if (g_n_seen < MAX_TEXTS) g_seen[g_n_seen++].p = p, g_seen[g_n_seen - 1].n = n;
    return 0;
}

/* One seed per new text of the file at path, and the whole file; *keep gets the file's bytes
 * (g_seen points into them) for the caller to free. */
static int file_seeds(const char *dir, const char *path, const char *base, size_t *k, char **keep)
{
    size_t len;
    char *t = *keep = read_all(path, &len);
    if (!t) {
        fprintf(stderr, "seeds_tok: cannot read %s\n", path);
        return 1;
    }
    char name[300];
    snprintf(name, sizeof name, "all-%.200s", base);
    if (!seen(t, len) && seed_write("seeds_tok", dir, name, t, len)) return 1;
    const size_t sl = strlen(SEP);
    for (size_t at = 0; at < len;) {
        const char *end = NULL;
        for (size_t i = at; i + sl <= len; i++)
            if (!memcmp(t + i, SEP, sl)) {
                end = t + i;
                break;
            }
        size_t n = end ? (size_t)(end - (t + at)) : len - at;
        if (!seen(t + at, n)) {
            snprintf(name, sizeof name, "text-%04zu", (*k)++);
            if (seed_write("seeds_tok", dir, name, t + at, n)) return 1;
        }
        at += n + (end ? sl : 0);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s <dir>\n", argv[0]);
        return 2;
    }
    const char *base = getenv("LMPIPE_SHARED");
    char vdir[4096];
    snprintf(vdir, sizeof vdir, "%s/vocab", base && *base ? base : "../shared");
    DIR *d = opendir(vdir);
    if (!d) {
        fprintf(stderr, "seeds_tok: cannot list %s (set LMPIPE_SHARED to the fixtures)\n", vdir);
        return 1;
    }
    /* readdir's order is the file system's: sort the names so the seed names are stable */
    char *names[256];
    size_t n_names = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL && n_names < 256;) {
        size_t l = strlen(e->d_name);
        if (l > 4 && !strcmp(e->d_name + l - 4, ".inp")) names[n_names++] = strdup(e->d_name);
    }
    closedir(d);
    for (size_t i = 1; i < n_names; i++)
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *x = names[j];
            names[j] = names[j - 1];
            names[j - 1] = x;
        }
    int bad = n_names == 0;
    if (bad) fprintf(stderr, "seeds_tok: no *.inp in %s\n", vdir);
    size_t k = 0;
    char *texts[256] = {0};
    for (size_t i = 0; i < n_names && !bad; i++) {
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", vdir, names[i]);
        bad = file_seeds(argv[1], path, names[i], &k, &texts[i]);
    }
    for (size_t i = 0; i < n_names; i++) {
        free(names[i]);
        free(texts[i]);
    }
    return bad;
}
