/* util: small inline helpers shared by every layer: checked size arithmetic, half-precision
 * conversions, and logging to stderr (never stdout: stdout belongs to the protocol and to
 * generated text). */
#ifndef LMPIPE_UTIL_UTIL_H
#define LMPIPE_UTIL_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Checked arithmetic: return true on overflow. */
static inline bool util_mul_overflow(uint64_t a, uint64_t b, uint64_t *out)
{
    return __builtin_mul_overflow(a, b, out);
}
static inline bool util_add_overflow(uint64_t a, uint64_t b, uint64_t *out)
{
    return __builtin_add_overflow(a, b, out);
}

/* IEEE half <-> float, bit exact (round to nearest even), no hardware needed. */
static inline float util_fp16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                mant <<= 1;
            } while (!(mant & 0x400));
            mant &= 0x3ff;
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | (mant << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline uint16_t util_f32_to_fp16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffffu;
    if (absx > 0x7f800000u) return (uint16_t)(sign | 0x7e00); /* NaN */
    if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* overflow to inf */
    if (absx < 0x38800000u) {                                 /* subnormal or zero in half */
        if (absx < 0x33000000u) return (uint16_t)sign;
        uint32_t e = absx >> 23;
        uint32_t m = (absx & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t half = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t e = (absx >> 23) - 127 + 15;
    uint32_t m = absx & 0x7fffff;
    uint32_t h = (e << 10) | (m >> 13);
    uint32_t rem = m & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

static inline float util_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline uint16_t util_f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 64); /* quiet NaN */
    return (uint16_t)((x + (0x7fff + ((x >> 16) & 1))) >> 16);
}

/* Logging: level 0 error, 1 warn, 2 info, 3 debug. Default 1; LMPIPE_LOG=0..3 overrides. */
void util_log(int level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void util_log_set_level(int level);
int util_log_level(void);
#define LOG_ERR(...) util_log(0, __VA_ARGS__)
#define LOG_WARN(...) util_log(1, __VA_ARGS__)
#define LOG_INFO(...) util_log(2, __VA_ARGS__)
#define LOG_DEBUG(...) util_log(3, __VA_ARGS__)

/* Monotonic clock in seconds. */
double util_now(void);
/* Peak resident set size of this process in bytes (0 if unknown). */
uint64_t util_peak_rss(void);

/* Strict number parsing for flags and config: whole string must be consumed, no overflow.
 * Return 0 or ERR_INVALID / ERR_RANGE. */
int util_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
int util_parse_f64(const char *s, double min, double max, double *out);

/* UTF-8: length of the complete sequence starting with byte c (1..4), 0 if c cannot start one. */
int util_utf8_seq_len(unsigned char c);
/* Length of the longest prefix of s[0..n) that does not end inside a UTF-8 sequence: bytes after
 * it are the start of a character still waiting for its continuation bytes. Invalid bytes count
 * as complete (they will never be completed). */
size_t util_utf8_complete_prefix(const char *s, size_t n);

#endif
