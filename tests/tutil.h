/* tutil: helpers shared by the Check suites: where the fixtures are, whole-file reads, a
 * standard main(). Each tests/check_<module>.c defines `Suite *make_suite(void)` and
 * includes this header once; TUTIL_MAIN expands the runner (CK_FORK stays on by default, so a
 * crash is a failed test; CK_RUN_SUITE / CK_RUN_CASE focus a run). */
#ifndef LMPIPE_TESTS_TUTIL_H
#define LMPIPE_TESTS_TUTIL_H

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* $LMPIPE_SHARED or ../shared, joined with rel into a static buffer. */
static inline const char *tutil_shared(const char *rel)
{
    static char buf[4][1024];
    static int k;
    const char *base = getenv("LMPIPE_SHARED");
    if (!base || !*base) base = "../shared";
    char *b = buf[k++ & 3];
    snprintf(b, sizeof buf[0], "%s/%s", base, rel);
    return b;
}

/* Read a whole file; caller frees. NULL on failure. */
static inline char *tutil_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *p = malloc(cap + 1);
    size_t r;
    while (p && (r = fread(p + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *q = realloc(p, cap * 2 + 1);
            if (!q) { free(p); p = NULL; break; }
            p = q;
            cap *= 2;
        }
    }
    fclose(f);
    if (p) p[n] = 0;
    if (len) *len = n;
    return p;
}

/* 0 when got == want; else prints where the two first differ (with some context on both
 * sides) and returns 1, so a suite can count mismatches and still show each. */
static inline int tutil_diff_report(const char *what, const char *got, size_t gn, const char *want,
                                    size_t wn)
{
    if (gn == wn && memcmp(got, want, gn) == 0) return 0;
    size_t k = 0;
    while (k < gn && k < wn && got[k] == want[k]) k++;
    size_t from = k > 20 ? k - 20 : 0;
    printf("MISMATCH %s: first difference at byte %zu (got %zu bytes, want %zu)\n"
           "  got:  ...%.*s\n  want: ...%.*s\n",
           what, k, gn, wn, (int)((gn - from) < 60 ? gn - from : 60), got + from,
           (int)((wn - from) < 60 ? wn - from : 60), want + from);
    return 1;
}

/* Generated text gathered by a sink (eng_text_fn's shape: the token is ignored); longer text
 * than fits is dropped. */
struct tutil_text {
    char buf[8192];
    size_t len;
};

static inline int tutil_text_add(void *ud, const char *t, size_t n, int32_t tok)
{
    (void)tok;
    struct tutil_text *x = ud;
    if (x->len + n < sizeof x->buf) {
        memcpy(x->buf + x->len, t, n);
        x->len += n;
        x->buf[x->len] = 0;
    }
    return 0;
}

/* A fresh directory $TMPDIR/lmpipe-<tag>-XXXXXX (TMPDIR unset: /tmp) written into buf; 0 or -1. */
static inline int tutil_mkdtemp(char *buf, size_t cap, const char *tag)
{
    const char *t = getenv("TMPDIR");
    snprintf(buf, cap, "%s/lmpipe-%s-XXXXXX", t && *t ? t : "/tmp", tag);
    return mkdtemp(buf) ? 0 : -1;
}

/* Remove a directory made by tutil_mkdtemp with everything in it (warns on failure). */
static inline void tutil_rmtree(const char *dir)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "tutil: cannot remove %s\n", dir);
}

/* dir/name in one of four rotating static buffers (a few may be in use at once). */
static inline const char *tutil_path(const char *dir, const char *name)
{
    static char buf[4][1024];
    static int k;
    char *b = buf[k++ & 3];
    snprintf(b, sizeof buf[0], "%s/%s", dir, name);
    return b;
}

/* Write p[0..n) to path, or fail the test. */
static inline void tutil_write(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s", path);
    ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* How much of the measured loops to run, from LMPIPE_TEST_QUICK:
 *   0 (unset)  everything: the measures the issues name;
 *   1          shortened measures (fewer seeds, smaller inputs);
 *   2          CI's slow passes (the sanitizer pass, .ci/cross under qemu-user at 30-300x): level
 *              1, and the per-file / per-template loops run a sample (tutil_sampled), since there
 *              the point is memory safety, the ABI and the kernels, not the statistics (the full
 *              measures run natively in the same CI). */
static inline int tutil_quick(void)
{
    const char *q = getenv("LMPIPE_TEST_QUICK");
    int v = q ? atoi(q) : 0;
    return v < 0 ? 0 : v;
}

/* Whether loop case i runs: always below level 2; at level 2 about one in three, chosen along the
 * diagonal (i % 3 == (i / 3) % 3) so a loop over (file x 3 kinds) still meets every kind. */
static inline int tutil_sampled(int i)
{
    return tutil_quick() < 2 || i % 3 == (i / 3) % 3;
}

#define TUTIL_MAIN                                                     \
    int main(void)                                                     \
    {                                                                  \
        SRunner *sr = srunner_create(make_suite());                    \
        srunner_run_all(sr, CK_NORMAL);                                \
        int nf = srunner_ntests_failed(sr);                            \
        srunner_free(sr);                                              \
        return nf == 0 ? EXIT_SUCCESS : EXIT_FAILURE;                  \
    }

#endif
