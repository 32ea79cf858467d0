/* tmpl_uni: the bits of Python's Unicode behaviour that chat templates reach: UTF-8 coding,
 * str.isspace (which is what strip()/split() use), isprintable (repr's escaping), case mapping,
 * and splitlines' line boundaries.
 *
 * Whitespace and line breaks are exact (they are small fixed sets). Case mapping covers ASCII,
 * Latin-1, Latin Extended-A, Greek, Cyrillic and fullwidth Latin one code point to one (Python
 * maps a few characters to several, e.g. 'ß'.upper() == 'SS'; those are left unchanged here);
 * isprintable/isalpha/isdigit outside ASCII are approximations by block. Role names, tool names
 * and JSON-schema words, which is what templates case-map or test, are ASCII in practice. */
#include "tmpl_int.h"

#include <string.h>

uint32_t tmpl_utf8_dec(const char *s, size_t n, size_t *adv)
{
    const unsigned char *p = (const unsigned char *)s;
    uint32_t c = p[0];
    if (c < 0x80) {
        *adv = 1;
        return c;
    }
    size_t l = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
    if (l == 0 || l > n) {
        *adv = 1;
        return 0xfffd;
    }
    uint32_t cp = c & (0x3f >> (l - 1));
    for (size_t i = 1; i < l; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            *adv = 1;
            return 0xfffd;
        }
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    *adv = l;
    return cp;
}

size_t tmpl_utf8_enc(uint32_t cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

bool tmpl_uni_isspace(uint32_t c)
{
    if (c < 0x80) return (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x20);
    return c == 0x85 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
           c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

bool tmpl_uni_islinebreak(uint32_t c)
{
    return c == '\n' || c == '\r' || c == 0x0b || c == 0x0c || c == 0x1c || c == 0x1d ||
           c == 0x1e || c == 0x85 || c == 0x2028 || c == 0x2029;
}

bool tmpl_uni_isprintable(uint32_t c)
{
    if (c < 0x20 || (c >= 0x7f && c <= 0xa0)) return false;
    if (c < 0x100) return c != 0xad;
    if (tmpl_uni_isspace(c)) return false; /* Zs/Zl/Zp other than ' ' */
    if ((c >= 0x200b && c <= 0x200f) || (c >= 0x202a && c <= 0x202e) ||
        (c >= 0x2060 && c <= 0x206f) || c == 0xfeff || (c >= 0xfff9 && c <= 0xfffb) ||
        (c >= 0x600 && c <= 0x605) || c == 0x61c || c == 0x6dd || c == 0x70f ||
        c == 0x180e || (c >= 0xe0000 && c <= 0xe0fff))
        return false; /* format characters */
    if ((c >= 0xd800 && c <= 0xf8ff) || c >= 0xf0000) return false; /* surrogates, private */
    if ((c >= 0xfdd0 && c <= 0xfdef) || (c & 0xfffe) == 0xfffe) return false; /* non-chars */
    return true;
}

/* One-to-one case pairs: [lo, hi] ranges where upper and lower differ by a constant or
 * alternate (even upper / odd lower, or the reverse). */
struct case_rng {
    uint32_t lo, hi;
    int32_t delta; /* lower = upper + delta; 0: alternating pairs */
    uint8_t upper_odd;
};
static const struct case_rng g_upper_rngs[] = {
    {0x41, 0x5a, 32, 0},      {0xc0, 0xd6, 32, 0},      {0xd8, 0xde, 32, 0},
    {0x100, 0x12f, 0, 0},     {0x132, 0x137, 0, 0},     {0x139, 0x148, 0, 1},
    {0x14a, 0x177, 0, 0},     {0x179, 0x17e, 0, 1},     {0x391, 0x3a1, 32, 0},
    {0x3a3, 0x3ab, 32, 0},    {0x388, 0x38a, 37, 0},    {0x410, 0x42f, 32, 0},
    {0x400, 0x40f, 80, 0},    {0x460, 0x481, 0, 0},     {0x48a, 0x4bf, 0, 0},
    {0xff21, 0xff3a, 32, 0},
};

static bool rng_upper_of(uint32_t c, uint32_t *out) /* c lowercase -> its uppercase */
{
    for (size_t i = 0; i < sizeof g_upper_rngs / sizeof g_upper_rngs[0]; i++) {
        const struct case_rng *r = &g_upper_rngs[i];
        if (r->delta) {
            if (c >= r->lo + (uint32_t)r->delta && c <= r->hi + (uint32_t)r->delta) {
                *out = c - (uint32_t)r->delta;
                return true;
            }
        } else if (c > r->lo && c <= r->hi && (c & 1) != r->upper_odd) {
            *out = c - 1;
            return true;
        }
    }
    return false;
}

static bool rng_lower_of(uint32_t c, uint32_t *out) /* c uppercase -> its lowercase */
{
    for (size_t i = 0; i < sizeof g_upper_rngs / sizeof g_upper_rngs[0]; i++) {
        const struct case_rng *r = &g_upper_rngs[i];
        if (r->delta) {
            if (c >= r->lo && c <= r->hi) {
                *out = c + (uint32_t)r->delta;
                return true;
            }
        } else if (c >= r->lo && c < r->hi && (c & 1) == r->upper_odd) {
            *out = c + 1;
            return true;
        }
    }
    return false;
}

uint32_t tmpl_uni_upper(uint32_t c)
{
    if (c < 0x80) return (c >= 'a' && c <= 'z') ? c - 32 : c;
    uint32_t u;
    switch (c) {
    case 0xb5: return 0x39c;
    case 0xff: return 0x178;
    case 0x131: return 'I';
    case 0x17f: return 'S';
    case 0x3c2: return 0x3a3;
    case 0x3ac: return 0x386;
    case 0x3cc: return 0x38c;
    case 0x3cd: return 0x38e;
    case 0x3ce: return 0x38f;
    default: break;
    }
    return rng_upper_of(c, &u) ? u : c;
}

uint32_t tmpl_uni_lower(uint32_t c)
{
    if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
    uint32_t l;
    switch (c) {
    case 0x178: return 0xff;
    case 0x386: return 0x3ac;
    case 0x38c: return 0x3cc;
    case 0x38e: return 0x3cd;
    case 0x38f: return 0x3ce;
    default: break;
    }
    return rng_lower_of(c, &l) ? l : c;
}

bool tmpl_uni_isalpha(uint32_t c)
{
    if (c < 0x80) return (c | 32) >= 'a' && (c | 32) <= 'z';
    if (c < 0xc0) return c == 0xaa || c == 0xb5 || c == 0xba;
    if (c < 0x250) return c != 0xd7 && c != 0xf7;
    if (tmpl_uni_upper(c) != c || tmpl_uni_lower(c) != c) return true;
    return (c >= 0x370 && c <= 0x3ff) || (c >= 0x400 && c <= 0x52f) ||
           (c >= 0x5d0 && c <= 0x5ea) || (c >= 0x620 && c <= 0x64a) ||
           (c >= 0x904 && c <= 0x939) || (c >= 0x3041 && c <= 0x30ff) ||
           (c >= 0x3400 && c <= 0x4dbf) || (c >= 0x4e00 && c <= 0x9fff) ||
           (c >= 0xac00 && c <= 0xd7a3) || (c >= 0x20000 && c <= 0x2fa1f);
}

bool tmpl_uni_isdigit(uint32_t c)
{
    return (c >= '0' && c <= '9') || (c >= 0x660 && c <= 0x669) ||
           (c >= 0x6f0 && c <= 0x6f9) || (c >= 0x966 && c <= 0x96f) ||
           (c >= 0xff10 && c <= 0xff19) || c == 0xb2 || c == 0xb3 || c == 0xb9;
}

size_t tmpl_utf8_off(const struct str *s, int64_t i)
{
    if (s->ncp == (int64_t)s->len) return (size_t)i;
    size_t o = 0;
    while (i > 0 && o < s->len) {
        o++;
        while (o < s->len && ((unsigned char)s->b[o] & 0xc0) == 0x80) o++;
        i--;
    }
    return o;
}

