/* check_util: the bottom floor: the UTF-8 decoder's two policies, strict number parsing, the
 * error list and first-error-wins recording, half-precision conversions, checked arithmetic.
 *
 * The strict UTF-8 rules are checked against an independent, obviously-correct reference (decode
 * the bits, then apply RFC 3629's limits) over every 1-, 2- and 3-byte input and a sweep of
 * 4-byte ones; the lenient policy against llama.cpp's documented behaviour on hand-picked
 * inputs (overlong forms and surrogates decode, broken sequences become one U+FFFD per byte). */
#include "tutil.h"

#include "util/blk.h"
#include "util/err.h"
#include "util/util.h"
#include "util/version.h"

#include <math.h>

/* ---- UTF-8 ---- */

/* Reference strict decoder: structural decode, then the RFC 3629 limits. */
static size_t ref_strict(const unsigned char *s, size_t n)
{
    if (!n) return 0;
    unsigned c = s[0];
    size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
    if (!len || len > n) return 0;
    uint32_t cp = len == 1 ? c : len == 2 ? c & 0x1f : len == 3 ? c & 0x0f : c & 0x07;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

START_TEST(utf8_strict_exhaustive)
{
    unsigned char b[4];
    for (unsigned x = 0; x < 256; x++) {
        b[0] = (unsigned char)x;
        ck_assert_uint_eq(util_utf8_char((const char *)b, 1), ref_strict(b, 1));
        for (unsigned y = 0; y < 256; y++) {
            b[1] = (unsigned char)y;
            ck_assert_uint_eq(util_utf8_char((const char *)b, 2), ref_strict(b, 2));
            if (x < 0xe0 || x > 0xef) continue; /* 3-byte leads: every continuation */
            for (unsigned z = 0; z < 256; z++) {
                b[2] = (unsigned char)z;
                size_t got = util_utf8_char((const char *)b, 3), want = ref_strict(b, 3);
                if (got != want) ck_abort_msg("%02x %02x %02x: %zu, want %zu", x, y, z, got, want);
            }
        }
    }
    /* 4-byte leads with every second byte and a few third/fourth bytes */
    static const unsigned char tail[] = {0x00, 0x7f, 0x80, 0x8f, 0x90, 0xbf, 0xc0, 0xff};
    for (unsigned x = 0xf0; x < 0x100; x++)
        for (unsigned y = 0; y < 256; y++)
            for (size_t i = 0; i < sizeof tail; i++)
                for (size_t j = 0; j < sizeof tail; j++) {
                    b[0] = (unsigned char)x, b[1] = (unsigned char)y, b[2] = tail[i], b[3] = tail[j];
                    ck_assert_uint_eq(util_utf8_char((const char *)b, 4), ref_strict(b, 4));
                    ck_assert_uint_eq(util_utf8_char((const char *)b, 3), ref_strict(b, 3));
                }
}
END_TEST

START_TEST(utf8_prefixes)
{
    ck_assert_uint_eq(util_utf8_valid_prefix("ab\xc3\xa9", 4), 4);
    ck_assert_uint_eq(util_utf8_valid_prefix("ab\xc3", 3), 2);
    ck_assert_uint_eq(util_utf8_valid_prefix("a\xc0\x80", 3), 1);     /* overlong */
    ck_assert_uint_eq(util_utf8_valid_prefix("a\xed\xa0\x80", 4), 1); /* surrogate */
    ck_assert_uint_eq(util_utf8_valid_prefix("\xf4\x90\x80\x80", 4), 0);
    ck_assert_uint_eq(util_utf8_valid_prefix("", 0), 0);
    /* complete prefix: a started sequence at the end is held back, invalid bytes are not */
    ck_assert_uint_eq(util_utf8_complete_prefix("ab\xe2\x82", 4), 2);
    ck_assert_uint_eq(util_utf8_complete_prefix("ab\xe2\x82\xac", 5), 5);
    ck_assert_uint_eq(util_utf8_complete_prefix("ab\xf0", 3), 2);
    ck_assert_uint_eq(util_utf8_complete_prefix("ab\xff", 3), 3);
    ck_assert_uint_eq(util_utf8_complete_prefix("ab\x80", 3), 3);
    ck_assert_uint_eq(util_utf8_complete_prefix("\xe2\x41", 2), 2); /* not a continuation */
    ck_assert_uint_eq(util_utf8_complete_prefix("", 0), 0);
}
END_TEST

START_TEST(utf8_lenient)
{
    uint32_t cp;
    ck_assert_uint_eq(util_utf8_decode("A", 1, &cp), 1);
    ck_assert_uint_eq(cp, 'A');
    ck_assert_uint_eq(util_utf8_decode("\xc3\xa9", 2, &cp), 2);
    ck_assert_uint_eq(cp, 0xe9);
    /* overlong and surrogate forms decode (llama.cpp checks only the 10xxxxxx pattern) */
    ck_assert_uint_eq(util_utf8_decode("\xc0\x80", 2, &cp), 2);
    ck_assert_uint_eq(cp, 0);
    ck_assert_uint_eq(util_utf8_decode("\xed\xa0\x80", 3, &cp), 3);
    ck_assert_uint_eq(cp, 0xd800);
    /* above U+10FFFF: the whole sequence is one U+FFFD */
    ck_assert_uint_eq(util_utf8_decode("\xf7\xbf\xbf\xbf", 4, &cp), 4);
    ck_assert_uint_eq(cp, 0xfffd);
    /* cut, stray continuation, F8..FF: one byte, U+FFFD */
    ck_assert_uint_eq(util_utf8_decode("\xe2\x82", 2, &cp), 1);
    ck_assert_uint_eq(cp, 0xfffd);
    ck_assert_uint_eq(util_utf8_decode("\x80", 1, &cp), 1);
    ck_assert_uint_eq(cp, 0xfffd);
    ck_assert_uint_eq(util_utf8_decode("\xf8\x80\x80\x80\x80", 5, &cp), 1);
    ck_assert_uint_eq(cp, 0xfffd);
    ck_assert_uint_eq(util_utf8_decode("\xe2\x41\x41", 3, &cp), 1);
    ck_assert_uint_eq(cp, 0xfffd);
}
END_TEST

/* Every scalar value encodes to what both decoders read back; strict accepts all of them. */
START_TEST(utf8_encode_roundtrip)
{
    char b[4];
    for (uint32_t c = 0; c <= 0x10ffff; c++) {
        size_t n = util_utf8_encode(c, b);
        uint32_t back;
        ck_assert_uint_eq(util_utf8_decode(b, n, &back), n);
        if (back != c) ck_abort_msg("U+%04X decodes as U+%04X", c, back);
        bool surrogate = c >= 0xd800 && c <= 0xdfff;
        if (util_utf8_char(b, n) != (surrogate ? 0 : n)) ck_abort_msg("strict length of U+%04X", c);
    }
}
END_TEST

/* ---- numbers ---- */

START_TEST(parse_numbers)
{
    int64_t i;
    double d;
    ck_assert_int_eq(util_parse_i64("42", 0, 100, &i), 0);
    ck_assert_int_eq(i, 42);
    ck_assert_int_eq(util_parse_i64("-1", -1, 1, &i), 0);
    ck_assert_int_eq(i, -1);
    ck_assert_int_eq(util_parse_i64("101", 0, 100, &i), ERR_RANGE);
    ck_assert_int_eq(util_parse_i64("12x", 0, 100, &i), ERR_INVALID);
    ck_assert_int_eq(util_parse_i64("", 0, 100, &i), ERR_INVALID);
    ck_assert_int_eq(util_parse_i64(NULL, 0, 100, &i), ERR_INVALID);
    ck_assert_int_eq(util_parse_i64("99999999999999999999", 0, INT64_MAX, &i), ERR_RANGE);
    ck_assert_int_eq(util_parse_i64("9223372036854775807", 0, INT64_MAX, &i), 0);
    ck_assert(i == INT64_MAX);
    ck_assert_int_eq(util_parse_f64("0.5", 0, 1, &d), 0);
    ck_assert(d == 0.5);
    ck_assert_int_eq(util_parse_f64("nan", 0, 1, &d), ERR_RANGE);
    ck_assert_int_eq(util_parse_f64("inf", -INFINITY, INFINITY, &d), ERR_RANGE);
    ck_assert_int_eq(util_parse_f64("1.5", 0, 1, &d), ERR_RANGE);
    ck_assert_int_eq(util_parse_f64("1e", 0, 1, &d), ERR_INVALID);
    ck_assert_int_eq(util_parse_f64(" ", 0, 1, &d), ERR_INVALID);
}
END_TEST

START_TEST(checked_arithmetic)
{
    uint64_t r;
    ck_assert(!util_mul_overflow(1ull << 31, 1ull << 32, &r));
    ck_assert(r == 1ull << 63);
    ck_assert(util_mul_overflow(1ull << 32, 1ull << 32, &r));
    ck_assert(!util_add_overflow(UINT64_MAX - 1, 1, &r));
    ck_assert(util_add_overflow(UINT64_MAX, 1, &r));
}
END_TEST

/* Every half converts to float and back to the same bits (NaNs stay NaN). */
START_TEST(half_roundtrip)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = util_fp16_to_f32((uint16_t)h);
        uint16_t back = util_f32_to_fp16(f);
        if (isnan(f)) ck_assert(isnan(util_fp16_to_f32(back)));
        else if (back != h) ck_abort_msg("half %04x -> %g -> %04x", h, (double)f, back);
    }
    ck_assert_uint_eq(util_f32_to_fp16(65520.0f), 0x7c00); /* rounds to inf */
    ck_assert_uint_eq(util_f32_to_fp16(1.0f + 0x1p-11f), 0x3c00); /* tie to even */
    ck_assert(util_bf16_to_f32(util_f32_to_bf16(1.5f)) == 1.5f);
    ck_assert(isnan(util_bf16_to_f32(util_f32_to_bf16(NAN))));
}
END_TEST

/* ---- errors ---- */

START_TEST(err_list)
{
    ck_assert_str_eq(err_kind(ERR_CONTEXT), "context_length_exceeded");
    ck_assert_str_eq(err_kind(0), "ok");
    ck_assert_str_eq(err_kind(-999), "unknown");
    ck_assert_str_eq(err_str(-999), "unknown error");
    /* every code from ERR_MIN_ to -1 has its own kind */
    for (int a = ERR_MIN_; a < 0; a++) {
        ck_assert_str_ne(err_kind(a), "unknown");
        for (int b = a + 1; b < 0; b++) ck_assert_str_ne(err_kind(a), err_kind(b));
    }
    struct err_info ei;
    err_clear(&ei);
    ck_assert_int_eq(ei.code, 0);
    ck_assert(ei.offset == ERR_NO_OFFSET);
    ck_assert_int_eq(err_set(&ei, ERR_TRUNCATED, 12, "first %d", 1), ERR_TRUNCATED);
    ck_assert_int_eq(err_set(&ei, ERR_RANGE, 3, "second"), ERR_RANGE);
    ck_assert_int_eq(ei.code, ERR_TRUNCATED); /* first error wins */
    ck_assert_str_eq(ei.msg, "first 1");
    char buf[128];
    ck_assert_str_eq(err_format(&ei, ERR_TRUNCATED, buf, sizeof buf), "first 1 (at byte 12)");
    err_clear(&ei);
    ck_assert_str_eq(err_format(&ei, ERR_IO, buf, sizeof buf), "input/output error");
    ck_assert_str_eq(err_format(NULL, ERR_IO, buf, sizeof buf), "input/output error");
    ck_assert_int_eq(err_set(NULL, ERR_IO, 0, "ignored"), ERR_IO);
}
END_TEST

START_TEST(blk_table)
{
    ck_assert_str_eq(blk_type_name(BLK_T_Q4_K), "Q4_K");
    ck_assert_uint_eq(blk_row_size(BLK_T_F32, 10), 40);
    ck_assert_uint_eq(blk_row_size(BLK_T_Q8_0, 64), 68);
    ck_assert_uint_eq(blk_row_size(BLK_T_Q8_0, 33), 0); /* not a multiple of the block */
    ck_assert_ptr_null(blk_type_info(BLK_T_COUNT_ + 5));
    ck_assert_str_eq(LMPIPE_VERSION, "0.1.0");
}
END_TEST

/* blk_count_nonfinite: every float element, every fp16 (Q8_K: f32) block scale, nothing else;
 * at any alignment; poisoned one value at a time in every type that has a check, each position
 * found exactly once, and quant bytes that happen to look like a NaN half never counted. */
START_TEST(blk_nonfinite)
{
    static const uint32_t types[] = {BLK_T_F32,  BLK_T_F16,  BLK_T_BF16, BLK_T_F64,   BLK_T_Q4_0,
                                     BLK_T_Q4_1, BLK_T_Q5_0, BLK_T_Q5_1, BLK_T_Q8_0,  BLK_T_Q8_1,
                                     BLK_T_Q2_K, BLK_T_Q3_K, BLK_T_Q4_K, BLK_T_Q5_K,  BLK_T_Q6_K,
                                     BLK_T_Q8_K, BLK_T_IQ4_NL, BLK_T_IQ4_XS, BLK_T_IQ2_XXS, BLK_T_I32};
    static uint8_t raw[3 * 292 + 8];
    const uint16_t bad16[] = {0x7c00, 0xfc00, 0x7e00, 0x7c01}; /* +inf, -inf, NaNs */
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        uint32_t t = types[k], size = blk_type_info(t)->size, off[2];
        unsigned nh = blk_half_fields(t, off);
        for (size_t align = 0; align < 3; align++) {
            uint8_t *b = raw + align, *p;
            /* quants of 0xff: a NaN pattern everywhere but in the (finite, 1.0) scale fields */
            memset(b, 0xff, 3 * size);
            for (int blk = 0; blk < 3; blk++)
                for (unsigned h = 0; h < nh; h++) memcpy(b + blk * size + off[h], &(uint16_t){0x3c00}, 2);
            if (t == BLK_T_Q8_K)
                for (int blk = 0; blk < 3; blk++) memcpy(b + blk * size, &(float){1.0f}, 4);
            bool plain = t == BLK_T_F32 || t == BLK_T_F16 || t == BLK_T_BF16 || t == BLK_T_F64;
            if (plain) memset(b, 0, 3 * size); /* finite zeros */
            uint64_t c = 99;
            ck_assert_int_eq(blk_count_nonfinite(t, b, 3 * size, &c), 0);
            ck_assert_uint_eq(c, 0);
            if (t == BLK_T_I32) continue; /* integers: nothing to count */
            /* poison one value of the middle block: the first float field */
            p = b + size + (plain || t == BLK_T_Q8_K ? 0 : off[nh - 1]);
            if (t == BLK_T_F32 || t == BLK_T_Q8_K) memcpy(p, &(float){INFINITY}, 4);
            else if (t == BLK_T_F64) memcpy(p, &(double){NAN}, 8);
            else if (t == BLK_T_BF16) memcpy(p, &(uint16_t){0xff81}, 2);
            else memcpy(p, &bad16[k % 4], 2);
            ck_assert_int_eq(blk_count_nonfinite(t, b, 3 * size, &c), 0);
            ck_assert_msg(c == 1, "%s align %zu: %llu", blk_type_name(t), align, (unsigned long long)c);
        }
    }
    uint64_t c;
    ck_assert_int_eq(blk_count_nonfinite(BLK_T_Q8_0, raw, 35, &c), ERR_SHAPE);
    ck_assert_int_eq(blk_count_nonfinite(BLK_T_IQ1_M, raw, 56, &c), ERR_UNSUPPORTED);
    ck_assert_int_eq(blk_count_nonfinite(99, raw, 4, &c), ERR_UNSUPPORTED);
    ck_assert_int_eq(blk_count_nonfinite(BLK_T_F32, raw, 0, &c), 0);
    ck_assert_uint_eq(c, 0);
    uint32_t off[2];
    ck_assert_uint_eq(blk_half_fields(BLK_T_Q2_K, off), 2);
    ck_assert_uint_eq(off[0], 80);
    ck_assert_uint_eq(off[1], 82);
    ck_assert_uint_eq(blk_half_fields(BLK_T_Q6_K, off), 1);
    ck_assert_uint_eq(off[0], 208);
    ck_assert_uint_eq(blk_half_fields(BLK_T_F32, off), 0);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("utf8");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, utf8_strict_exhaustive);
    tcase_add_test(tc, utf8_prefixes);
    tcase_add_test(tc, utf8_lenient);
    tcase_add_test(tc, utf8_encode_roundtrip);
    suite_add_tcase(s, tc);
    tc = tcase_create("numbers");
    tcase_add_test(tc, parse_numbers);
    tcase_add_test(tc, checked_arithmetic);
    tcase_add_test(tc, half_roundtrip);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_add_test(tc, err_list);
    tcase_add_test(tc, blk_table);
    tcase_add_test(tc, blk_nonfinite);
    suite_add_tcase(s, tc);
    return s;
}

TUTIL_MAIN
