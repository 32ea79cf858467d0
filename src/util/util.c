/* util: logging, clocks, strict number parsing and UTF-8 helpers. */
#define _POSIX_C_SOURCE 200809L
#include "util.h"

#include "err.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static int g_log_level = -1;

int util_log_level(void)
{
    if (g_log_level < 0) {
        const char *e = getenv("LMPIPE_LOG");
        g_log_level = (e && e[0] >= '0' && e[0] <= '3' && !e[1]) ? e[0] - '0' : 1;
    }
    return g_log_level;
}

void util_log_set_level(int level) { g_log_level = level; }

void util_log(int level, const char *fmt, ...)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    if (level > util_log_level()) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "lmpipe: %s: %s\n", names[level < 0 ? 0 : level > 3 ? 3 : level], buf);
}

double util_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t util_peak_rss(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (uint64_t)ru.ru_maxrss * 1024u; /* Linux reports KiB */
}

uint64_t util_rss_anon(int pid)
{
    char path[64], line[256];
    if (pid > 0) snprintf(path, sizeof path, "/proc/%d/status", pid);
    else snprintf(path, sizeof path, "/proc/self/status");
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    unsigned long long kib = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "RssAnon: %llu kB", &kib) == 1) break;
    fclose(f);
    return (uint64_t)kib * 1024u;
}

int util_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (!s || !*s) return ERR_INVALID;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0') return ERR_INVALID;
    if (errno == ERANGE || v < min || v > max) return ERR_RANGE;
    *out = (int64_t)v;
    return 0;
}

int util_parse_f64(const char *s, double min, double max, double *out)
{
    if (!s || !*s) return ERR_INVALID;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0') return ERR_INVALID;
    if (errno == ERANGE || !isfinite(v) || v < min || v > max) return ERR_RANGE;
    *out = v;
    return 0;
}

size_t util_utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

size_t util_utf8_valid_prefix(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t k = util_utf8_char(s + i, n - i);
        if (!k) break;
        i += k;
    }
    return i;
}

size_t util_utf8_repair(const char *s, size_t n, char *out)
{
    size_t i = 0, o = 0;
    while (i < n) {
        size_t k = util_utf8_char(s + i, n - i);
        if (k) {
            memcpy(out + o, s + i, k);
            o += k;
            i += k;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    return o;
}

size_t util_utf8_complete_prefix(const char *s, size_t n)
{
    /* Look back at most 3 bytes for a lead byte whose sequence is not yet complete. */
    size_t i = n;
    for (size_t back = 1; back <= 4 && back <= n; back++) {
        unsigned char c = (unsigned char)s[n - back];
        if ((c & 0xc0) == 0x80) continue; /* continuation byte: keep looking for the lead */
        int len = util_utf8_seq_len(c);
        if (len > 1 && (size_t)len > back) {
            /* check the bytes we have are valid continuations */
            for (size_t k = n - back + 1; k < n; k++)
                if (((unsigned char)s[k] & 0xc0) != 0x80) return n;
            i = n - back;
        }
        break;
    }
    return i;
}

const char *util_mem_find(const char *hay, size_t hn, const char *needle, size_t nn)
{
    if (nn == 0) return hay;
    if (nn > hn) return NULL;
    const char *end = hay + (hn - nn);
    for (const char *p = hay; p <= end; p++) {
        p = memchr(p, needle[0], (size_t)(end - p) + 1);
        if (!p) return NULL;
        if (memcmp(p, needle, nn) == 0) return p;
    }
    return NULL;
}
