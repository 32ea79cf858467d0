/* hash: XXH64 (see hash.h). Each step below is named after the specification's. */
#include "hash.h"

#include <string.h>

#define P1 0x9E3779B185EBCA87ull
#define P2 0xC2B2AE3D27D4EB4Full
#define P3 0x165667B19E3779F9ull
#define P4 0x85EBCA77C2B2AE63ull
#define P5 0x27D4EB2F165667C5ull

static inline uint64_t rotl(uint64_t x, unsigned r)
{
    return (x << r) | (x >> (64 - r));
}

/* Little-endian reads: one load on a little-endian host (the usual case), bytes elsewhere. */
static inline uint64_t rd64(const uint8_t *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
#else
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
#endif
}

static inline uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t round64(uint64_t acc, uint64_t lane)
{
    acc += lane * P2;
    acc = rotl(acc, 31);
    return acc * P1;
}

static inline uint64_t merge(uint64_t acc, uint64_t lane)
{
    acc ^= round64(0, lane);
    return acc * P1 + P4;
}

static void stripe(uint64_t acc[4], const uint8_t *p)
{
    for (int i = 0; i < 4; i++) acc[i] = round64(acc[i], rd64(p + 8 * i));
}

void util_xxh64_init(struct util_xxh64 *s, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    s->seed = seed;
    s->acc[0] = seed + P1 + P2;
    s->acc[1] = seed + P2;
    s->acc[2] = seed;
    s->acc[3] = seed - P1;
}

void util_xxh64_update(struct util_xxh64 *s, const void *data, size_t n)
{
    const uint8_t *p = data;
    s->total += n;
    if (s->n_buf) {
        size_t k = 32 - s->n_buf < n ? 32 - s->n_buf : n;
        memcpy(s->buf + s->n_buf, p, k);
        s->n_buf += (uint32_t)k;
        p += k;
        n -= k;
        if (s->n_buf < 32) return;
        stripe(s->acc, s->buf);
        s->n_buf = 0;
    }
    for (; n >= 32; p += 32, n -= 32) stripe(s->acc, p);
    memcpy(s->buf, p, n);
    s->n_buf = (uint32_t)n;
}

uint64_t util_xxh64_final(const struct util_xxh64 *s)
{
    uint64_t h;
    if (s->total >= 32) {
        const uint64_t *a = s->acc;
        h = rotl(a[0], 1) + rotl(a[1], 7) + rotl(a[2], 12) + rotl(a[3], 18);
        for (int i = 0; i < 4; i++) h = merge(h, a[i]);
    } else {
        h = s->seed + P5;
    }
    h += s->total;
    /* the remaining 0..31 bytes: 8, then 4, then 1 at a time */
    const uint8_t *p = s->buf;
    uint32_t n = s->n_buf;
    for (; n >= 8; p += 8, n -= 8) {
        h ^= round64(0, rd64(p));
        h = rotl(h, 27) * P1 + P4;
    }
    if (n >= 4) {
        h ^= (uint64_t)rd32(p) * P1;
        h = rotl(h, 23) * P2 + P3;
        p += 4;
        n -= 4;
    }
    for (; n; p++, n--) {
        h ^= *p * P5;
        h = rotl(h, 11) * P1;
    }
    /* avalanche */
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

uint64_t util_xxh64(const void *p, size_t n, uint64_t seed)
{
    struct util_xxh64 s;
    util_xxh64_init(&s, seed);
    util_xxh64_update(&s, p, n);
    return util_xxh64_final(&s);
}
