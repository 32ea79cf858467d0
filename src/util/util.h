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
/* Anonymous resident memory (RssAnon of /proc/<pid>/status; pid 0: this process) in bytes: what
 * the process allocated and touched, without the file pages of an mmap'd model. 0 if unknown. */
uint64_t util_rss_anon(int pid);

/* Strict number parsing for flags and config: whole string must be consumed, no overflow.
 * Return 0 or ERR_INVALID / ERR_RANGE. */
int util_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
int util_parse_f64(const char *s, double min, double max, double *out);

/* ---- UTF-8: the one decoder ----
 * Two policies over one set of byte rules, because two readers need different answers:
 *  - strict (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF; jansson's and
 *    Python's rules): what we accept from and release to clients (rpc, the detokenizer);
 *  - lenient (llama.cpp's unicode_cpt_from_utf8): a lead byte says the length by its high bits
 *    alone and only the continuation bytes' 10xxxxxx pattern is checked, so overlong forms and
 *    surrogates decode to their code points; anything else is one U+FFFD per byte. The
 *    tokenizer must see text exactly as llama.cpp does, or the token ids would differ.
 * Inline: the tokenizer decodes every byte of its input through these. */

/* Strict: length of the sequence lead byte c starts (1..4), 0 if it starts none. */
static inline int util_utf8_seq_len(unsigned char c)
{
    return c < 0x80 ? 1 : c < 0xc2 ? 0 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : c < 0xf5 ? 4 : 0;
}

/* Strict: may byte b stand at position pos (1..3) of a sequence led by lead? The second byte's
 * narrower ranges exclude overlong forms (E0, F0), surrogates (ED) and > U+10FFFF (F4). */
static inline bool util_utf8_cont_ok(unsigned char lead, size_t pos, unsigned char b)
{
    unsigned char lo = 0x80, hi = 0xbf;
    if (pos == 1) {
        if (lead == 0xe0) lo = 0xa0;
        else if (lead == 0xed) hi = 0x9f;
        else if (lead == 0xf0) lo = 0x90;
        else if (lead == 0xf4) hi = 0x8f;
    }
    return b >= lo && b <= hi;
}

/* Strict: length (1..4) of the valid character at s[0..n), 0 if the bytes there are none. */
static inline size_t util_utf8_char(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t len = n ? (size_t)util_utf8_seq_len(u[0]) : 0;
    if (len == 0 || len > n) return 0;
    for (size_t i = 1; i < len; i++)
        if (!util_utf8_cont_ok(u[0], i, u[i])) return 0;
    return len;
}

/* Lenient (llama.cpp): decode the character at s[0..n) (n >= 1) into *cp and return the bytes
 * it takes (1..4). A lead byte without its continuation bytes, a stray continuation byte and
 * the leads F8..FF give U+FFFD for that one byte; a value above U+10FFFF gives U+FFFD for the
 * whole sequence. */
static inline size_t util_utf8_decode(const char *s, size_t n, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    unsigned c = u[0];
    size_t need = c < 0x80 ? 0 : c < 0xc0 ? 9 : c < 0xe0 ? 1 : c < 0xf0 ? 2 : c < 0xf8 ? 3 : 9;
    if (need == 0) {
        *cp = c;
        return 1;
    }
    bool ok = need < 9 && n > need;
    for (size_t k = 1; ok && k <= need; k++) ok = (u[k] & 0xc0) == 0x80;
    if (!ok) {
        *cp = 0xfffd;
        return 1;
    }
    uint32_t v = c & (0x3fu >> need);
    for (size_t k = 1; k <= need; k++) v = v << 6 | (u[k] & 0x3fu);
    *cp = v > 0x10ffff ? 0xfffd : v;
    return need + 1;
}

/* UTF-8 bytes of cp (<= U+10FFFF) into out[0..4); returns the count. */
size_t util_utf8_encode(uint32_t cp, char *out);
/* Strict: length of the longest prefix of s[0..n) that is valid UTF-8 (== n when all is). */
size_t util_utf8_valid_prefix(const char *s, size_t n);
/* Strict: copy s[0..n) to out with every byte that starts no valid character replaced by
 * U+FFFD; out needs room for 3 * n bytes. Returns the bytes written. */
size_t util_utf8_repair(const char *s, size_t n, char *out);
/* Length of the longest prefix of s[0..n) that does not end inside a UTF-8 sequence: bytes after
 * it are the start of a character still waiting for its continuation bytes. Invalid bytes count
 * as complete (they will never be completed). */
size_t util_utf8_complete_prefix(const char *s, size_t n);

/* The first occurrence of needle[0..nn) in hay[0..hn) (bytes; either may hold NULs), NULL when
 * there is none; an empty needle is found at hay. */
const char *util_mem_find(const char *hay, size_t hn, const char *needle, size_t nn);

#endif
