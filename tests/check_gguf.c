/* check_gguf: the GGUF parser's contract, input by input, plus the model binder's refusals.
 *
 * What: every malformed header we can think of (built in memory by gguf_builder.h, never a
 * committed binary) must fail with one specific error code, a non-empty message and a byte
 * offset pointing at (or before) the culprit, leave the context zeroed, and never read outside
 * the buffer: each input is parsed from an exact-size malloc copy so ASan (make SAN=1) catches a
 * one-byte overread. Valid inputs must round-trip every value type through the getters, honour
 * the alignment, and every real file in $LMPIPE_SHARED must parse with its known tensor count.
 *
 * Why the truncation loop accepts some prefixes: a reader needs the header and every tensor's
 * bytes, not the padding after the last tensor, so a prefix of length >= tensor_end is a valid
 * file; everything shorter must fail, and which error depends only on where the cut falls.
 *
 * TCases: "bad" (malformed headers), "trunc" (every prefix), "valid" (round trips),
 * "files" (real fixtures and gguf_open), "model" (model_load on the built llama model). */
#include "tutil.h"

#include "gguf_builder.h"

#include "gguf/gguf.h"
#include "model/model.h"
#include "util/err.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- helpers */

#define U64(x) ((unsigned long long)(x))

/* Parse an exact-size copy of buf[0..len) and check a clean failure: rc == code, the same code
 * recorded, a message, an offset in [lo, hi], the context zeroed; then the same with no
 * err_info (must not crash, same code). `needle`, when given, must appear in the message (the
 * message names the culprit). */
static void expect_fail_(int line, const uint8_t *buf, size_t len, int code, uint64_t lo,
                         uint64_t hi, const char *needle)
{
    uint8_t *c = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(c);
    if (len) memcpy(c, buf, len);
    struct gguf_ctx g;
    memset(&g, 0xA5, sizeof g); /* garbage in: the parser must zero it */
    struct err_info ei;
    err_clear(&ei);
    int rc = gguf_parse(c, len, &g, &ei);
    ck_assert_msg(rc == code, "line %d: gguf_parse returned %d (%s), want %d (%s); msg '%s'", line,
                  rc, err_kind(rc), code, err_kind(code), ei.msg);
    ck_assert_msg(ei.code == code, "line %d: ei.code %d, want %d", line, ei.code, code);
    ck_assert_msg(ei.msg[0] != 0, "line %d: empty error message", line);
    ck_assert_msg(ei.offset >= lo && ei.offset <= hi,
                  "line %d: error offset %llu not in [%llu, %llu]; msg '%s'", line,
                  U64(ei.offset), U64(lo), U64(hi), ei.msg);
    if (needle)
        ck_assert_msg(strstr(ei.msg, needle), "line %d: message '%s' does not mention '%s'", line,
                      ei.msg, needle);
    ck_assert_msg(g.kv == NULL && g.tensors == NULL && g.n_kv == 0 && g.n_tensors == 0 &&
                      g.buf == NULL && g.map == NULL,
                  "line %d: context not zeroed after a failed parse", line);
    rc = gguf_parse(c, len, &g, NULL);
    ck_assert_msg(rc == code, "line %d: without err_info rc %d, want %d", line, rc, code);
    free(c);
}
#define expect_fail(buf, len, code, lo, hi, needle) \
    expect_fail_(__LINE__, buf, len, code, lo, hi, needle)
#define expect_fail_b(b, code, at, needle) \
    expect_fail_(__LINE__, (b)->buf, (b)->len, code, at, at, needle)

/* Parse the builder's buffer (kept alive by the builder) and insist on success. */
static void parse_ok_(int line, struct gguf_builder *b, struct gguf_ctx *g)
{
    struct err_info ei;
    err_clear(&ei);
    int rc = gguf_parse(b->buf, b->len, g, &ei);
    ck_assert_msg(rc == 0, "line %d: valid file rejected: %s (%s at %llu)", line, ei.msg,
                  err_kind(rc), U64(ei.offset));
    ck_assert_int_eq(ei.code, 0);
}
#define parse_ok(b, g) parse_ok_(__LINE__, b, g)

/* A small valid file: every value type and four tensors of different ranks and types. */
static void small_file(struct gguf_builder *b)
{
    gb_reset(b);
    gb_every_type(b);
    gb_tensor_f32_1d(b, "a", 8, 0.0f, 1.0f);               /* 32 bytes */
    gb_tensor_f32_2d(b, "b", 4, 3, 0.0f, 1.0f);            /* 48 bytes */
    uint64_t ne_c[2] = {64, 2};                             /* Q8_0: 2 blocks per row */
    gb_tensor_raw(b, "c", BLK_T_Q8_0, 2, ne_c, NULL, 2 * 2 * 34);
    uint64_t ne_d[4] = {2, 3, 1, 2};
    gb_tensor_f32(b, "d", 4, ne_d, 0.0f, 1.0f); /* 48 bytes */
    gb_build(b);
}

/* Two 1-D F32 tensors of 16 elements (64 bytes each): the minimal file for offset tests. */
static void two_tensor_file(struct gguf_builder *b)
{
    gb_reset(b);
    gb_kv_str(b, "general.architecture", "test");
    gb_tensor_f32_1d(b, "first", 16, 0.0f, 1.0f);
    gb_tensor_f32_1d(b, "second", 16, 0.0f, 1.0f);
    gb_build(b);
}

/* ---------------------------------------------------------------- "bad": malformed headers */

START_TEST(test_empty_and_text)
{
    expect_fail(NULL, 0, ERR_BAD_MAGIC, 0, 0, NULL);
    const uint8_t one[1] = {'G'};
    expect_fail(one, 1, ERR_BAD_MAGIC, 0, 0, NULL);
    const char *txt = "Once upon a time there was a text file.\n";
    expect_fail((const uint8_t *)txt, strlen(txt), ERR_BAD_MAGIC, 0, 0, NULL);
    /* big-endian magic is still not GGUF */
    const uint8_t be[24] = {'F', 'U', 'G', 'G', 0, 0, 0, 3};
    expect_fail(be, sizeof be, ERR_BAD_MAGIC, 0, 0, NULL);
    /* text that happens to start with GGUF: the magic passes, the "version" is ASCII */
    const char *gt = "GGUF is a file format for models\n";
    expect_fail((const uint8_t *)gt, strlen(gt), ERR_VERSION, 4, 4, NULL);
    /* NULL with a length is a caller error, not a crash */
    struct gguf_ctx g;
    struct err_info ei;
    err_clear(&ei);
    ck_assert_int_eq(gguf_parse(NULL, 100, &g, &ei), ERR_INVALID);
    ck_assert(ei.msg[0]);
}
END_TEST

START_TEST(test_header_prefixes)
{
    const uint8_t hdr[24] = {'G', 'G', 'U', 'F', 3, 0, 0, 0}; /* 0 tensors, 0 kv */
    expect_fail(hdr, 4, ERR_TRUNCATED, 4, 4, "version");      /* magic only */
    expect_fail(hdr, 8, ERR_TRUNCATED, 8, 8, "tensor count"); /* magic + version */
    expect_fail(hdr, 12, ERR_TRUNCATED, 8, 8, NULL);          /* half a tensor count */
    expect_fail(hdr, 16, ERR_TRUNCATED, 16, 16, "metadata count");
    expect_fail(hdr, 23, ERR_TRUNCATED, 16, 16, NULL);
    /* the whole 24-byte header with nothing in it is a valid (empty) file */
    struct gguf_ctx g;
    struct err_info ei;
    err_clear(&ei);
    ck_assert_int_eq(gguf_parse(hdr, sizeof hdr, &g, &ei), 0);
    ck_assert_uint_eq(g.n_kv, 0);
    ck_assert_uint_eq(g.n_tensors, 0);
    ck_assert_uint_eq(g.version, 3);
    gguf_free(&g);
}
END_TEST

START_TEST(test_versions)
{
    struct gguf_builder b = {0};
    small_file(&b);
    const uint32_t bad[] = {0, 1, 4, 0x03000000u /* big-endian 3 */, UINT32_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gb_patch_u32(&b, 4, bad[i]);
        expect_fail_b(&b, ERR_VERSION, 4, NULL);
    }
    /* v1 gets a message that says why (32-bit counts), not just "unsupported" */
    gb_patch_u32(&b, 4, 1);
    struct gguf_ctx g;
    struct err_info ei;
    err_clear(&ei);
    ck_assert_int_eq(gguf_parse(b.buf, b.len, &g, &ei), ERR_VERSION);
    ck_assert_msg(strstr(ei.msg, "1"), "v1 message '%s' does not name the version", ei.msg);
    /* v2 (same layout, 64-bit counts) is accepted */
    gb_patch_u32(&b, 4, 2);
    parse_ok(&b, &g);
    ck_assert_uint_eq(g.version, 2);
    gguf_free(&g);
    gb_patch_u32(&b, 0, 0x46554746u); /* "FGUF" */
    expect_fail_b(&b, ERR_BAD_MAGIC, 0, NULL);
    gb_free(&b);
}
END_TEST

START_TEST(test_huge_counts)
{
    struct gguf_builder b = {0};
    small_file(&b);
    const uint64_t huge[] = {1ull << 62, UINT64_MAX, (uint64_t)GGUF_MAX_TENSORS + 1,
                             b.nt + 1000000};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        small_file(&b);
        gb_patch_u64(&b, 8, huge[i]); /* n_tensors */
        expect_fail_b(&b, ERR_LIMIT, 8, "tensor count");
        small_file(&b);
        gb_patch_u64(&b, 16, huge[i]); /* n_kv */
        expect_fail_b(&b, ERR_LIMIT, 16, "metadata count");
    }
    gb_free(&b);
}
END_TEST

/* A count one too high that still fits the byte budget: the parser runs off the end of the kv
 * (or tensor info) list and must report a truncation or a bad field, not read past the end. */
START_TEST(test_counts_off_by_one)
{
    struct gguf_builder b = {0};
    gb_reset(&b);
    gb_kv_u32(&b, "k", 1);
    gb_build(&b);
    gb_patch_u64(&b, 16, 2);
    /* the second kv would start at the end of the file; 2 kvs need >= 28 bytes after the
     * counts and the file has only 17, so the count check itself refuses */
    expect_fail_b(&b, ERR_LIMIT, 16, NULL);
    gb_free(&b);

    small_file(&b);
    gb_patch_u64(&b, 8, b.nt + 1); /* one tensor info more than written: reads into data */
    {
        uint8_t *c = malloc(b.len);
        memcpy(c, b.buf, b.len);
        struct gguf_ctx g;
        struct err_info ei;
        err_clear(&ei);
        int rc = gguf_parse(c, b.len, &g, &ei);
        ck_assert_int_lt(rc, 0);
        ck_assert_int_eq(ei.code, rc);
        ck_assert(ei.msg[0]);
        ck_assert_uint_ge(ei.offset, b.header_end); /* the first 4 infos were fine */
        ck_assert_uint_le(ei.offset, b.len);
        free(c);
    }
    gb_free(&b);
}
END_TEST

START_TEST(test_huge_string_lengths)
{
    struct gguf_builder b = {0};
    const uint64_t huge[] = {1ull << 60, UINT64_MAX, 1ull << 32};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        small_file(&b);
        struct gb_kv *kv = gb_kv_find(&b, "t.str");
        gb_patch_u64(&b, kv->at_key_len, huge[i]); /* a key length */
        expect_fail_b(&b, ERR_TRUNCATED, kv->at_key_len, "key");
        small_file(&b);
        kv = gb_kv_find(&b, "t.str");
        gb_patch_u64(&b, kv->at_val, huge[i]); /* a string value's length */
        expect_fail_b(&b, ERR_TRUNCATED, kv->at_val, NULL);
        small_file(&b);
        kv = gb_kv_find(&b, "a.str");
        gb_patch_u64(&b, kv->at_val + 12, huge[i]); /* the first string in an array */
        expect_fail_b(&b, ERR_TRUNCATED, kv->at_val + 12, NULL);
        small_file(&b);
        struct gb_tensor *t = gb_tensor_find(&b, "b");
        gb_patch_u64(&b, t->at_name_len, huge[i]); /* a tensor name length */
        expect_fail_b(&b, ERR_TRUNCATED, t->at_name_len, "tensor name");
    }
    /* a string length exactly one past the end of the file */
    small_file(&b);
    struct gb_kv *kv = gb_kv_find(&b, "t.str");
    gb_patch_u64(&b, kv->at_val, b.len - (kv->at_val + 8) + 1);
    expect_fail_b(&b, ERR_TRUNCATED, kv->at_val, NULL);
    gb_free(&b);
}
END_TEST

START_TEST(test_bad_key_and_name_lengths)
{
    struct gguf_builder b = {0};
    gb_reset(&b);
    gb_kv_rawn(&b, "", 0, GGUF_VT_UINT8, "\1", 1); /* empty key */
    gb_kv_str(&b, "general.name", "so that the count check passes");
    gb_build(&b);
    expect_fail_b(&b, ERR_LIMIT, b.kv[0].at_key_len, NULL);
    gb_free(&b);

    gb_reset(&b);
    size_t n = GGUF_MAX_KEY_LEN + 1;
    char *key = malloc(n + 1);
    memset(key, 'k', n);
    key[n] = 0;
    gb_kv_u8(&b, key, 1);
    gb_build(&b);
    expect_fail_b(&b, ERR_LIMIT, b.kv[0].at_key_len, NULL);
    free(key);
    gb_free(&b);

    /* tensor names: empty and 256 bytes are refused, 255 is fine */
    char name[257];
    memset(name, 'n', 256);
    name[256] = 0;
    gb_reset(&b);
    gb_tensor_f32_1d(&b, name, 4, 0, 1);
    gb_build(&b);
    expect_fail_b(&b, ERR_LIMIT, b.t[0].at_name_len, NULL);
    gb_free(&b);
    gb_reset(&b);
    gb_tensor_f32_1d(&b, "", 4, 0, 1);
    gb_build(&b);
    expect_fail_b(&b, ERR_LIMIT, b.t[0].at_name_len, NULL);
    gb_free(&b);
    name[255] = 0;
    gb_reset(&b);
    gb_tensor_f32_1d(&b, name, 4, 0, 1);
    gb_build(&b);
    struct gguf_ctx g;
    parse_ok(&b, &g);
    ck_assert_uint_eq(g.tensors[0].name.len, 255);
    gguf_free(&g);
    gb_free(&b);
}
END_TEST

START_TEST(test_huge_array_lengths)
{
    struct gguf_builder b = {0};
    const char *keys[] = {"a.u8", "a.i32", "a.f64", "a.bool", "a.str", "a.empty"};
    const uint64_t huge[] = {1ull << 62, UINT64_MAX, 1ull << 61 /* * 8 wraps to 0 */};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
            small_file(&b);
            struct gb_kv *kv = gb_kv_find(&b, keys[k]);
            gb_patch_u64(&b, kv->at_val + 4, huge[i]);
            expect_fail_b(&b, ERR_LIMIT, kv->at_val + 4, keys[k]);
        }
    gb_free(&b);
}
END_TEST

START_TEST(test_unknown_value_types)
{
    struct gguf_builder b = {0};
    const uint32_t bad[] = {GGUF_VT_COUNT_, 100, 0x80000000u, UINT32_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        small_file(&b);
        struct gb_kv *kv = gb_kv_find(&b, "t.u32");
        gb_patch_u32(&b, kv->at_type, bad[i]);
        expect_fail_b(&b, ERR_BAD_TYPE, kv->at_type, "t.u32");
        /* as an array's element type, and nested arrays (element type ARRAY) */
        small_file(&b);
        kv = gb_kv_find(&b, "a.u32");
        gb_patch_u32(&b, kv->at_val, bad[i]);
        expect_fail_b(&b, ERR_BAD_TYPE, kv->at_val, "a.u32");
    }
    small_file(&b);
    struct gb_kv *kv = gb_kv_find(&b, "a.u32");
    gb_patch_u32(&b, kv->at_val, GGUF_VT_ARRAY);
    expect_fail_b(&b, ERR_BAD_TYPE, kv->at_val, "a.u32");
    gb_free(&b);
}
END_TEST

START_TEST(test_bool_values)
{
    struct gguf_builder b = {0};
    const uint8_t bad[] = {2, 0x80, 0xff};
    for (size_t i = 0; i < sizeof bad; i++) {
        small_file(&b);
        struct gb_kv *kv = gb_kv_find(&b, "t.true");
        gb_patch_u8(&b, kv->at_val, bad[i]);
        expect_fail_b(&b, ERR_RANGE, kv->at_val, NULL);
        small_file(&b);
        kv = gb_kv_find(&b, "a.bool");
        gb_patch_u8(&b, kv->at_val + 12 + 2, bad[i]); /* third element */
        expect_fail_b(&b, ERR_RANGE, kv->at_val + 12 + 2, NULL);
    }
    gb_free(&b);
}
END_TEST

START_TEST(test_duplicates)
{
    struct gguf_builder b = {0};
    small_file(&b);
    gb_kv_u32(&b, "t.u8", 1); /* same key, other type, at the end */
    gb_build(&b);
    size_t k0 = gb_kv_find(&b, "t.u8")->at_key, k1 = b.kv[b.nkv - 1].at_key;
    expect_fail(b.buf, b.len, ERR_DUPLICATE, k0 < k1 ? k0 : k1, k0 < k1 ? k1 : k0, "t.u8");
    {
        /* the offset must be one of the two keys, not something in between */
        struct gguf_ctx g;
        struct err_info ei;
        err_clear(&ei);
        ck_assert_int_eq(gguf_parse(b.buf, b.len, &g, &ei), ERR_DUPLICATE);
        ck_assert(ei.offset == k0 || ei.offset == k1);
    }
    gb_free(&b);

    small_file(&b);
    gb_tensor_f32_1d(&b, "e", 4, 0, 1);
    b.t[b.nt - 1].name[0] = 'b'; /* a second tensor "b" with its own data */
    gb_build(&b);
    size_t n0 = b.t[1].at_name, n1 = b.t[b.nt - 1].at_name;
    expect_fail(b.buf, b.len, ERR_DUPLICATE, n0, n1, "'b'");
    {
        struct gguf_ctx g;
        struct err_info ei;
        err_clear(&ei);
        ck_assert_int_eq(gguf_parse(b.buf, b.len, &g, &ei), ERR_DUPLICATE);
        ck_assert(ei.offset == n0 || ei.offset == n1);
    }
    /* names that share a prefix are not duplicates */
    small_file(&b);
    gb_tensor_f32_1d(&b, "bb", 4, 0, 1);
    gb_kv_u8(&b, "t.u8.x", 1);
    gb_build(&b);
    struct gguf_ctx g;
    parse_ok(&b, &g);
    gguf_free(&g);
    gb_free(&b);
}
END_TEST

START_TEST(test_unknown_tensor_types)
{
    /* 4 and 5 were Q4_2/Q4_3 (removed), 31..39 are unassigned here, the rest are absurd */
    const uint32_t bad[] = {4, 5, 31, 39, 40, 1000, 0x80000000u, UINT32_MAX};
    struct gguf_builder b = {0};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        small_file(&b);
        struct gb_tensor *t = gb_tensor_find(&b, "b");
        gb_patch_u32(&b, t->at_type, bad[i]);
        expect_fail_b(&b, ERR_BAD_TYPE, t->at_type, "'b'");
    }
    /* a row length that is not a whole number of blocks */
    gb_reset(&b);
    uint64_t ne[2] = {33, 1};
    gb_tensor_raw(&b, "q", BLK_T_Q8_0, 2, ne, NULL, 34);
    gb_build(&b);
    expect_fail_b(&b, ERR_SHAPE, b.t[0].at_type, "'q'");
    gb_free(&b);
}
END_TEST

START_TEST(test_bad_dims)
{
    struct gguf_builder b = {0};
    const uint32_t bad[] = {0, 5, 64, UINT32_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        small_file(&b);
        struct gb_tensor *t = gb_tensor_find(&b, "b");
        gb_patch_u32(&b, t->at_n_dims, bad[i]);
        expect_fail_b(&b, ERR_SHAPE, t->at_n_dims, "'b'");
    }
    /* a zero in any dimension */
    for (uint32_t d = 0; d < 4; d++) {
        small_file(&b);
        struct gb_tensor *t = gb_tensor_find(&b, "d");
        gb_patch_u64(&b, t->at_ne + 8 * d, 0);
        expect_fail_b(&b, ERR_SHAPE, t->at_ne + 8 * d, "'d'");
    }
    /* one dimension beyond the per-dimension cap (2^40) */
    small_file(&b);
    struct gb_tensor *t = gb_tensor_find(&b, "b");
    gb_patch_u64(&b, t->at_ne + 8, (1ull << 40) + 1);
    expect_fail_b(&b, ERR_SHAPE, t->at_ne + 8, "'b'");
    gb_free(&b);
}
END_TEST

START_TEST(test_size_overflow)
{
    struct gguf_builder b = {0};
    /* element count: 2^40 * 2^40 does not fit 64 bits */
    small_file(&b);
    struct gb_tensor *t = gb_tensor_find(&b, "b");
    gb_patch_u64(&b, t->at_ne, 1ull << 40);
    gb_patch_u64(&b, t->at_ne + 8, 1ull << 40);
    expect_fail_b(&b, ERR_OVERFLOW, t->at_ne + 8, "'b'");
    /* a product that wraps to a non-zero value (so "result == 0" is no overflow test) */
    small_file(&b);
    t = gb_tensor_find(&b, "b");
    gb_patch_u64(&b, t->at_ne, (1ull << 40) - 1);
    gb_patch_u64(&b, t->at_ne + 8, (1ull << 40) - 3);
    expect_fail_b(&b, ERR_OVERFLOW, t->at_ne + 8, "'b'");
    /* four dims of 2^16: the fourth multiplication wraps to exactly 0 */
    small_file(&b);
    t = gb_tensor_find(&b, "d");
    for (int d = 0; d < 4; d++) gb_patch_u64(&b, t->at_ne + 8 * d, 1ull << 16);
    expect_fail_b(&b, ERR_OVERFLOW, t->at_ne + 24, "'d'");
    /* element count fits (2^62) but bytes (x4 for F32) do not */
    small_file(&b);
    t = gb_tensor_find(&b, "b");
    gb_patch_u64(&b, t->at_ne, 1ull << 31);
    gb_patch_u64(&b, t->at_ne + 8, 1ull << 31);
    expect_fail_b(&b, ERR_OVERFLOW, t->at_type, "'b'");
    /* sizes that fit in 64 bits but not in the file: a range error, not an allocation */
    small_file(&b);
    t = gb_tensor_find(&b, "b");
    gb_patch_u64(&b, t->at_ne, 1ull << 20);
    gb_patch_u64(&b, t->at_ne + 8, 1ull << 20);
    expect_fail_b(&b, ERR_RANGE, b.data_offset, "'b'");
    gb_free(&b);
}
END_TEST

START_TEST(test_tensor_offsets)
{
    struct gguf_builder b = {0};
    /* past the end, at the end, overflowing the address sum, and one byte short */
    two_tensor_file(&b);
    const uint64_t data_len = b.len - b.data_offset;
    const uint64_t bad[] = {data_len, 1ull << 40, UINT64_MAX - 31 /* aligned, sum wraps */,
                            data_len - 32 /* last 64-byte tensor would need 32 more */};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        two_tensor_file(&b);
        gb_patch_u64(&b, b.t[1].at_offset, bad[i]);
        expect_fail_b(&b, ERR_RANGE, b.data_offset, "'second'");
    }
    /* misaligned (default alignment 32) */
    const uint64_t mis[] = {4, 1, 33, 64 + 16};
    for (size_t i = 0; i < sizeof mis / sizeof mis[0]; i++) {
        two_tensor_file(&b);
        gb_patch_u64(&b, b.t[1].at_offset, mis[i]);
        expect_fail_b(&b, ERR_ALIGN, b.data_offset, "'second'");
    }
    /* overlapping: second starts inside first, or at the same offset */
    two_tensor_file(&b);
    gb_patch_u64(&b, b.t[1].at_offset, 32);
    expect_fail_b(&b, ERR_RANGE, b.data_offset + 32, "overlaps");
    two_tensor_file(&b);
    gb_patch_u64(&b, b.t[1].at_offset, 0);
    expect_fail(b.buf, b.len, ERR_RANGE, b.data_offset, b.data_offset, "overlaps");
    /* first moved onto second (order in the file is not order in the data) */
    two_tensor_file(&b);
    gb_patch_u64(&b, b.t[0].at_offset, 64);
    expect_fail_b(&b, ERR_RANGE, b.data_offset + 64, "overlaps");
    /* with alignment 1, an overlap of a single byte is refused and touching is fine */
    gb_reset(&b);
    b.alignment = 1;
    gb_kv_u32(&b, "general.alignment", 1);
    gb_tensor_f32_1d(&b, "first", 16, 0.0f, 1.0f);
    gb_tensor_f32_1d(&b, "second", 16, 0.0f, 1.0f);
    gb_build(&b);
    ck_assert_uint_eq(b.t[1].offset, 64);
    struct gguf_ctx g;
    parse_ok(&b, &g);
    gguf_free(&g);
    gb_patch_u64(&b, b.t[1].at_offset, 63);
    expect_fail_b(&b, ERR_RANGE, b.data_offset + 63, "overlaps");
    /* swapped but disjoint is fine: tensors need not be stored in header order */
    two_tensor_file(&b);
    gb_patch_u64(&b, b.t[0].at_offset, 64);
    gb_patch_u64(&b, b.t[1].at_offset, 0);
    parse_ok(&b, &g);
    ck_assert_ptr_eq(g.tensors[0].data, b.buf + b.data_offset + 64);
    ck_assert_ptr_eq(g.tensors[1].data, b.buf + b.data_offset);
    gguf_free(&g);
    gb_free(&b);
}
END_TEST

START_TEST(test_bad_alignment_kv)
{
    struct gguf_builder b = {0};
    const uint32_t bad[] = {0, 3, 6, 48, 1u << 17, 0x80000000u};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        two_tensor_file(&b);
        gb_kv_u32(&b, "general.alignment", bad[i]);
        gb_build(&b);
        expect_fail_b(&b, ERR_ALIGN, b.kv[b.nkv - 1].at_val, "general.alignment");
    }
    /* right value, wrong type */
    two_tensor_file(&b);
    gb_kv_u64(&b, "general.alignment", 32);
    gb_build(&b);
    expect_fail_b(&b, ERR_ALIGN, b.kv[b.nkv - 1].at_val, NULL);
    two_tensor_file(&b);
    gb_kv_i32(&b, "general.alignment", 32);
    gb_build(&b);
    expect_fail_b(&b, ERR_ALIGN, b.kv[b.nkv - 1].at_val, NULL);
    two_tensor_file(&b);
    gb_kv_str(&b, "general.alignment", "32");
    gb_build(&b);
    expect_fail_b(&b, ERR_ALIGN, b.kv[b.nkv - 1].at_val, NULL);
    /* the key says 64 but the data was laid out for 32: the first (32-byte) tensor still fits
     * wherever the reader puts the data section, the second sits at offset 32, which is not a
     * multiple of 64 */
    gb_reset(&b);
    gb_kv_u32(&b, "general.alignment", 64);
    gb_tensor_f32_1d(&b, "first", 8, 0, 1); /* 32 bytes */
    gb_tensor_f32_1d(&b, "second", 8, 0, 1);
    gb_build(&b); /* builder alignment still 32 */
    ck_assert_uint_eq(b.t[1].offset, 32);
    expect_fail_b(&b, ERR_ALIGN, gb_align_up(b.header_end, 64), "'second'");
    gb_free(&b);
}
END_TEST

/* Every byte of the header set to a few nasty values: no crash, no overread, and either a
 * clean error with an offset inside the file or a successful parse. */
START_TEST(test_header_byte_mutations)
{
    struct gguf_builder b = {0};
    small_file(&b);
    uint8_t *c = malloc(b.len);
    const uint8_t vals[] = {0x00, 0x01, 0x7f, 0x80, 0xff};
    int failures = 0;
    for (size_t pos = 0; pos < b.header_end; pos++)
        for (size_t v = 0; v < sizeof vals; v++) {
            memcpy(c, b.buf, b.len);
            if (c[pos] == vals[v]) continue;
            c[pos] = vals[v];
            struct gguf_ctx g;
            struct err_info ei;
            err_clear(&ei);
            int rc = gguf_parse(c, b.len, &g, &ei);
            if (rc == 0) {
                gguf_free(&g);
                continue;
            }
            failures++;
            ck_assert_msg(ei.code == rc && ei.msg[0], "pos %zu val %02x: rc %d, ei %d '%s'", pos,
                          vals[v], rc, ei.code, ei.msg);
            ck_assert_msg(ei.offset <= b.len, "pos %zu: offset %llu beyond the file", pos,
                          U64(ei.offset));
        }
    /* most of these must be refused: a parser that accepts everything passes nothing */
    ck_assert_int_gt(failures, (int)b.header_end);
    free(c);
    gb_free(&b);
}
END_TEST

/* ---------------------------------------------------------------- "trunc": every prefix */

/* Every prefix of a built file. Shorter than tensor_end must fail with the error its region
 * implies; tensor_end and longer must parse to the same tensors. Returns prefixes accepted. */
static size_t check_prefixes(struct gguf_builder *b, size_t from, size_t to, size_t step)
{
    size_t accepted = 0;
    for (size_t L = from; L < to; L += (L < b->data_offset + 256 || L + 256 > to) ? 1 : step) {
        uint8_t *c = malloc(L ? L : 1);
        memcpy(c, b->buf, L);
        struct gguf_ctx g;
        struct err_info ei;
        err_clear(&ei);
        int rc = gguf_parse(c, L, &g, &ei);
        if (L >= b->tensor_end) {
            ck_assert_msg(rc == 0, "prefix %zu (tensor_end %zu) rejected: %s", L, b->tensor_end,
                          ei.msg);
            ck_assert_uint_eq(g.n_tensors, b->nt);
            ck_assert_uint_eq(g.n_kv, b->nkv);
            const struct gguf_tensor *last = &g.tensors[g.n_tensors - 1];
            ck_assert_mem_eq(last->data, b->t[b->nt - 1].data, last->nbytes);
            gguf_free(&g);
            accepted++;
        } else {
            int want = L < 4 ? ERR_BAD_MAGIC
                       : L < b->header_end ? 0 /* TRUNCATED or LIMIT, see below */
                       : L < b->data_offset ? ERR_TRUNCATED
                                            : ERR_RANGE;
            if (want)
                ck_assert_msg(rc == want, "prefix %zu: rc %d (%s), want %s; '%s'", L, rc,
                              err_kind(rc), err_kind(want), ei.msg);
            else /* inside the header a cut either truncates a field or makes a count
                    impossible for the bytes left */
                ck_assert_msg(rc == ERR_TRUNCATED || rc == ERR_LIMIT,
                              "prefix %zu: rc %d (%s); '%s'", L, rc, err_kind(rc), ei.msg);
            ck_assert_int_eq(ei.code, rc);
            ck_assert_msg(ei.msg[0], "prefix %zu: empty message", L);
            ck_assert_msg(ei.offset <= L, "prefix %zu: error offset %llu beyond the cut", L,
                          U64(ei.offset));
            ck_assert(g.kv == NULL && g.tensors == NULL);
        }
        free(c);
    }
    return accepted;
}

START_TEST(test_truncation_small)
{
    struct gguf_builder b = {0};
    small_file(&b);
    /* the last tensor is 48 bytes, so there is padding after it to exercise */
    ck_assert_uint_gt(b.len, b.tensor_end);
    ck_assert_uint_gt(b.data_offset, b.header_end);
    size_t acc = check_prefixes(&b, 0, b.len, 1);
    ck_assert_uint_eq(acc, b.len - b.tensor_end);
    /* and the full file, and the file with trailing bytes after the data */
    struct gguf_ctx g;
    parse_ok(&b, &g);
    gguf_free(&g);
    b.pad_tail = false;
    gb_build(&b);
    ck_assert_uint_eq(b.len, b.tensor_end);
    ck_assert_uint_eq(check_prefixes(&b, 0, b.len, 1), 0);
    gb_free(&b);
}
END_TEST

START_TEST(test_truncation_model)
{
    struct gguf_builder b = {0};
    gb_reset(&b);
    gb_llama(&b, NULL);
    gb_build(&b);
    /* every cut through the header (kvs with a 260-string array, 21 tensor infos) and the
     * first and last 256 bytes of data; strided through the middle of the data */
    size_t acc = check_prefixes(&b, 0, b.len, 997);
    ck_assert_uint_eq(acc, b.len - b.tensor_end);
    gb_free(&b);
}
END_TEST

/* ---------------------------------------------------------------- "valid": round trips */

START_TEST(test_roundtrip_scalars)
{
    struct gguf_builder b = {0};
    small_file(&b);
    struct gguf_ctx g;
    parse_ok(&b, &g);
    ck_assert_uint_eq(g.n_kv, b.nkv);
    for (size_t i = 0; i < b.nkv; i++) { /* file order, keys intact, offsets right */
        ck_assert_uint_eq(g.kv[i].key.len, b.kv[i].key_len);
        ck_assert_mem_eq(g.kv[i].key.ptr, b.kv[i].key, b.kv[i].key_len);
        ck_assert_uint_eq(g.kv[i].type, b.kv[i].type);
        ck_assert_ptr_eq(gguf_find_kv(&g, b.kv[i].key), &g.kv[i]);
    }
    ck_assert_ptr_null(gguf_find_kv(&g, "t"));
    ck_assert_ptr_null(gguf_find_kv(&g, "t.u8x"));

    uint32_t u;
    int64_t i64;
    float f;
    bool bo;
    struct gguf_str s;
    /* u32: every unsigned/signed type whose value fits; range and type errors otherwise */
    ck_assert_int_eq(gguf_get_u32(&g, "t.u8", &u), 0);
    ck_assert_uint_eq(u, 200);
    ck_assert_int_eq(gguf_get_u32(&g, "t.u16", &u), 0);
    ck_assert_uint_eq(u, 60000);
    ck_assert_int_eq(gguf_get_u32(&g, "t.u32", &u), 0);
    ck_assert_uint_eq(u, 4000000000u);
    ck_assert_int_eq(gguf_get_u32(&g, "t.i8", &u), ERR_RANGE);
    ck_assert_int_eq(gguf_get_u32(&g, "t.i32", &u), ERR_RANGE);
    ck_assert_int_eq(gguf_get_u32(&g, "t.u64", &u), ERR_RANGE);
    ck_assert_int_eq(gguf_get_u32(&g, "t.u64max", &u), ERR_RANGE);
    ck_assert_int_eq(gguf_get_u32(&g, "t.f32", &u), ERR_BAD_TYPE);
    ck_assert_int_eq(gguf_get_u32(&g, "t.str", &u), ERR_BAD_TYPE);
    ck_assert_int_eq(gguf_get_u32(&g, "a.u32", &u), ERR_BAD_TYPE);
    ck_assert_int_eq(gguf_get_u32(&g, "missing", &u), ERR_NOT_FOUND);
    /* i64 */
    const struct {
        const char *k;
        int64_t v;
    } ints[] = {{"t.u8", 200},         {"t.i8", -100},          {"t.u16", 60000},
                {"t.i16", -30000},     {"t.u32", 4000000000ll}, {"t.i32", -2000000000},
                {"t.u64", 1ll << 40},  {"t.i64", INT64_MIN}};
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        i64 = 12345;
        ck_assert_int_eq(gguf_get_i64(&g, ints[k].k, &i64), 0);
        ck_assert_msg(i64 == ints[k].v, "%s: %lld", ints[k].k, (long long)i64);
        ck_assert_int_eq(gguf_kv_i64(gguf_find_kv(&g, ints[k].k), &i64), 0);
        ck_assert_msg(i64 == ints[k].v, "%s via kv: %lld", ints[k].k, (long long)i64);
    }
    ck_assert_int_eq(gguf_get_i64(&g, "t.u64max", &i64), ERR_RANGE);
    ck_assert_int_eq(gguf_get_i64(&g, "t.f64", &i64), ERR_BAD_TYPE);
    ck_assert_int_eq(gguf_get_i64(&g, "t.f32", &i64), ERR_BAD_TYPE);
    ck_assert_int_eq(gguf_get_i64(&g, "t.str", &i64), ERR_BAD_TYPE);
    ck_assert_int_eq(gguf_get_i64(&g, "nope", &i64), ERR_NOT_FOUND);
    /* floats */
    ck_assert_int_eq(gguf_get_f32(&g, "t.f32", &f), 0);
    ck_assert(f == 0.15625f);
    ck_assert_int_eq(gguf_get_f32(&g, "t.f64", &f), 0);
    ck_assert(f == 0.1f);
    double d;
    ck_assert_int_eq(gguf_kv_f64(gguf_find_kv(&g, "t.f64"), &d), 0);
    ck_assert(d == 0.1);
    ck_assert_int_eq(gguf_get_f32(&g, "t.u32", &f), ERR_BAD_TYPE);
    ck_assert_int_eq(gguf_get_f32(&g, "t.str", &f), ERR_BAD_TYPE);
    ck_assert_int_eq(gguf_get_f32(&g, "nope", &f), ERR_NOT_FOUND);
    /* bool */
    ck_assert_int_eq(gguf_get_bool(&g, "t.true", &bo), 0);
    ck_assert(bo == true);
    ck_assert_int_eq(gguf_get_bool(&g, "t.false", &bo), 0);
    ck_assert(bo == false);
    ck_assert_int_eq(gguf_get_bool(&g, "t.u8", &bo), ERR_BAD_TYPE);
    ck_assert_int_eq(gguf_get_bool(&g, "nope", &bo), ERR_NOT_FOUND);
    /* strings: exact bytes, empty, embedded NUL, pointing into the buffer */
    ck_assert_int_eq(gguf_get_str(&g, "t.str", &s), 0);
    ck_assert_uint_eq(s.len, 6);
    ck_assert_mem_eq(s.ptr, "h\xc3\xa9llo", 6);
    ck_assert_ptr_eq(s.ptr, b.buf + gb_kv_find(&b, "t.str")->at_val + 8);
    ck_assert(gguf_str_eq(s, "h\xc3\xa9llo"));
    ck_assert(!gguf_str_eq(s, "h\xc3\xa9ll"));
    ck_assert(!gguf_str_eq(s, "h\xc3\xa9llo!"));
    ck_assert_int_eq(gguf_get_str(&g, "t.empty", &s), 0);
    ck_assert_uint_eq(s.len, 0);
    ck_assert(gguf_str_eq(s, ""));
    ck_assert_int_eq(gguf_get_str(&g, "t.nul", &s), 0);
    ck_assert_uint_eq(s.len, 3);
    ck_assert_mem_eq(s.ptr, "a\0b", 3);
    ck_assert_int_eq(gguf_get_str(&g, "t.u32", &s), ERR_BAD_TYPE);
    ck_assert_int_eq(gguf_get_str(&g, "a.str", &s), ERR_BAD_TYPE);
    ck_assert_int_eq(gguf_get_str(&g, "nope", &s), ERR_NOT_FOUND);
    gguf_free(&g);
    gb_free(&b);
}
END_TEST

START_TEST(test_roundtrip_arrays)
{
    struct gguf_builder b = {0};
    small_file(&b);
    struct gguf_ctx g;
    parse_ok(&b, &g);
    const struct {
        const char *k;
        uint32_t et;
        uint64_t n;
        const void *v;
    } arrs[] = {
        {"a.u8", GGUF_VT_UINT8, 3, gb_ev_u8},     {"a.i8", GGUF_VT_INT8, 2, gb_ev_i8},
        {"a.u16", GGUF_VT_UINT16, 2, gb_ev_u16},  {"a.i16", GGUF_VT_INT16, 2, gb_ev_i16},
        {"a.u32", GGUF_VT_UINT32, 2, gb_ev_u32},  {"a.i32", GGUF_VT_INT32, 2, gb_ev_i32},
        {"a.f32", GGUF_VT_FLOAT32, 2, gb_ev_f32}, {"a.bool", GGUF_VT_BOOL, 3, gb_ev_bool},
        {"a.u64", GGUF_VT_UINT64, 2, gb_ev_u64},  {"a.i64", GGUF_VT_INT64, 2, gb_ev_i64},
        {"a.f64", GGUF_VT_FLOAT64, 2, gb_ev_f64}, {"a.str", GGUF_VT_STRING, 3, NULL},
        {"a.empty", GGUF_VT_UINT32, 0, NULL},     {"a.emptystr", GGUF_VT_STRING, 0, NULL},
    };
    for (size_t k = 0; k < sizeof arrs / sizeof arrs[0]; k++) {
        uint32_t et = 99;
        uint64_t n = 99;
        const struct gguf_kv *kv = NULL;
        ck_assert_int_eq(gguf_get_arr(&g, arrs[k].k, &et, &n, &kv), 0);
        ck_assert_uint_eq(et, arrs[k].et);
        ck_assert_uint_eq(n, arrs[k].n);
        ck_assert_ptr_eq(kv, gguf_find_kv(&g, arrs[k].k));
        ck_assert_int_eq(gguf_get_arr(&g, arrs[k].k, NULL, NULL, NULL), 0); /* outs optional */
        int64_t iv;
        double dv;
        for (uint64_t i = 0; i < n && arrs[k].v; i++) {
            int64_t want_i = 0;
            double want_d = 0;
            bool is_int = true, fits = true;
            switch (et) {
            case GGUF_VT_UINT8: want_i = ((const uint8_t *)arrs[k].v)[i]; break;
            case GGUF_VT_INT8: want_i = ((const int8_t *)arrs[k].v)[i]; break;
            case GGUF_VT_UINT16: want_i = ((const uint16_t *)arrs[k].v)[i]; break;
            case GGUF_VT_INT16: want_i = ((const int16_t *)arrs[k].v)[i]; break;
            case GGUF_VT_UINT32: want_i = ((const uint32_t *)arrs[k].v)[i]; break;
            case GGUF_VT_INT32: want_i = ((const int32_t *)arrs[k].v)[i]; break;
            case GGUF_VT_BOOL: want_i = ((const uint8_t *)arrs[k].v)[i]; break;
            case GGUF_VT_INT64: want_i = ((const int64_t *)arrs[k].v)[i]; break;
            case GGUF_VT_UINT64: {
                uint64_t x = ((const uint64_t *)arrs[k].v)[i];
                fits = x <= INT64_MAX;
                want_i = fits ? (int64_t)x : 0;
                break;
            }
            case GGUF_VT_FLOAT32: is_int = false; want_d = ((const float *)arrs[k].v)[i]; break;
            case GGUF_VT_FLOAT64: is_int = false; want_d = ((const double *)arrs[k].v)[i]; break;
            }
            if (is_int) {
                want_d = (double)want_i;
                int rc = gguf_arr_i64(kv, i, &iv);
                if (!fits) {
                    ck_assert_int_eq(rc, ERR_RANGE);
                    continue;
                }
                ck_assert_msg(rc == 0 && iv == want_i, "%s[%llu]: rc %d value %lld want %lld",
                              arrs[k].k, U64(i), rc, (long long)iv, (long long)want_i);
            } else {
                ck_assert_int_eq(gguf_arr_i64(kv, i, &iv), ERR_BAD_TYPE);
            }
            ck_assert_int_eq(gguf_arr_f64(kv, i, &dv), 0);
            ck_assert_msg(dv == want_d, "%s[%llu]: %g want %g", arrs[k].k, U64(i), dv, want_d);
        }
        /* one past the end */
        int64_t iv2;
        double dv2;
        ck_assert_int_eq(gguf_arr_i64(kv, n, &iv2), ERR_RANGE);
        ck_assert_int_eq(gguf_arr_f64(kv, n, &dv2), ERR_RANGE);
        ck_assert_int_eq(gguf_arr_i64(kv, UINT64_MAX, &iv2), ERR_RANGE);
        if (et == GGUF_VT_STRING && n) {
            ck_assert_int_eq(gguf_arr_i64(kv, 0, &iv2), ERR_BAD_TYPE);
            ck_assert_int_eq(gguf_arr_f64(kv, 0, &dv2), ERR_BAD_TYPE);
        }
    }
    /* a scalar is not an array */
    int64_t iv;
    ck_assert_int_ne(gguf_arr_i64(gguf_find_kv(&g, "t.u32"), 0, &iv), 0);
    ck_assert_int_eq(gguf_get_arr(&g, "t.u32", NULL, NULL, NULL), ERR_BAD_TYPE);
    ck_assert_int_eq(gguf_get_arr(&g, "nope", NULL, NULL, NULL), ERR_NOT_FOUND);

    /* string arrays through the iterator */
    struct gguf_str_iter it;
    struct gguf_str s;
    gguf_str_iter_init(&it, gguf_find_kv(&g, "a.str"));
    for (int i = 0; i < 3; i++) {
        ck_assert(gguf_str_iter_next(&it, &s));
        ck_assert(gguf_str_eq(s, gb_ev_str[i]));
    }
    ck_assert(!gguf_str_iter_next(&it, &s));
    ck_assert(!gguf_str_iter_next(&it, &s)); /* stays exhausted */
    gguf_str_iter_init(&it, gguf_find_kv(&g, "a.emptystr"));
    ck_assert(!gguf_str_iter_next(&it, &s));
    gguf_str_iter_init(&it, gguf_find_kv(&g, "a.u32")); /* not strings: yields nothing */
    ck_assert(!gguf_str_iter_next(&it, &s));
    gguf_str_iter_init(&it, gguf_find_kv(&g, "t.str")); /* not an array */
    ck_assert(!gguf_str_iter_next(&it, &s));
    gguf_free(&g);
    gb_free(&b);
}
END_TEST

START_TEST(test_roundtrip_tensors)
{
    struct gguf_builder b = {0};
    small_file(&b);
    struct gguf_ctx g;
    parse_ok(&b, &g);
    ck_assert_uint_eq(g.n_tensors, 4);
    ck_assert_uint_eq(g.alignment, GGUF_DEFAULT_ALIGNMENT);
    ck_assert_uint_eq(g.data_offset, b.data_offset);
    ck_assert_ptr_eq(g.buf, b.buf);
    ck_assert_uint_eq(g.len, b.len);
    const uint64_t want_bytes[4] = {32, 48, 136, 48};
    for (size_t i = 0; i < 4; i++) {
        const struct gguf_tensor *t = &g.tensors[i];
        ck_assert(gguf_str_eq(t->name, b.t[i].name));
        ck_assert_ptr_eq(gguf_find_tensor(&g, b.t[i].name), t);
        ck_assert_uint_eq(t->n_dims, b.t[i].n_dims);
        for (int d = 0; d < GGUF_MAX_DIMS; d++) ck_assert_uint_eq(t->ne[d], b.t[i].ne[d]);
        ck_assert_uint_eq(t->type, b.t[i].type);
        ck_assert_uint_eq(t->nbytes, want_bytes[i]);
        ck_assert_uint_eq(t->offset, b.t[i].offset);
        ck_assert_uint_eq(t->offset % 32, 0);
        ck_assert_ptr_eq(t->data, b.buf + b.t[i].data_at);
        ck_assert_mem_eq(t->data, b.t[i].data, t->nbytes);
    }
    ck_assert_uint_eq(g.tensors[1].ne[2], 1); /* unused dims read as 1 */
    ck_assert_ptr_null(gguf_find_tensor(&g, "aa"));
    ck_assert_ptr_null(gguf_find_tensor(&g, ""));
    gguf_free(&g);
    ck_assert_ptr_null(g.kv);
    gguf_free(&g); /* twice is fine */
    struct gguf_ctx z;
    memset(&z, 0, sizeof z);
    gguf_free(&z);
    gguf_free(NULL);
    gb_free(&b);
}
END_TEST

START_TEST(test_alignment_64)
{
    struct gguf_builder b = {0};
    gb_reset(&b);
    b.alignment = 64;
    gb_kv_u32(&b, "general.alignment", 64);
    gb_tensor_f32_1d(&b, "x", 8, 0, 1); /* 32 bytes: the next offset is 64, not 32 */
    gb_tensor_f32_1d(&b, "y", 3, 0, 1); /* 12 bytes */
    gb_tensor_f32_1d(&b, "z", 8, 0, 1);
    gb_build(&b);
    ck_assert_uint_eq(b.t[1].offset, 64);
    ck_assert_uint_eq(b.t[2].offset, 128);
    struct gguf_ctx g;
    parse_ok(&b, &g);
    ck_assert_uint_eq(g.alignment, 64);
    ck_assert_uint_eq(g.data_offset % 64, 0);
    ck_assert_uint_eq(g.data_offset, b.data_offset);
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        ck_assert_uint_eq(g.tensors[i].offset % 64, 0);
        ck_assert_uint_eq(((const uint8_t *)g.tensors[i].data - g.buf) % 64, 0);
        ck_assert_mem_eq(g.tensors[i].data, b.t[i].data, b.t[i].nbytes);
    }
    gguf_free(&g);
    /* 32-aligned but not 64-aligned offset is now refused */
    gb_patch_u64(&b, b.t[2].at_offset, 96);
    expect_fail_b(&b, ERR_ALIGN, b.data_offset, "'z'");
    /* alignment 1 (a power of two) packs tensors back to back */
    gb_kv_del(&b, "general.alignment");
    gb_kv_u32(&b, "general.alignment", 1);
    b.alignment = 1;
    gb_build(&b);
    ck_assert_uint_eq(b.t[2].offset, 44);
    parse_ok(&b, &g);
    ck_assert_uint_eq(g.alignment, 1);
    ck_assert_uint_eq(g.data_offset, b.header_end);
    ck_assert_mem_eq(g.tensors[2].data, b.t[2].data, 32);
    gguf_free(&g);
    gb_free(&b);
}
END_TEST

START_TEST(test_type_table)
{
    /* block sizes from ggml (ggml.c type_traits), independent of src/gguf */
    const struct {
        uint32_t t;
        uint32_t blck, size;
        const char *name;
    } want[] = {
        {BLK_T_F32, 1, 4, "F32"},        {BLK_T_F16, 1, 2, "F16"},
        {BLK_T_BF16, 1, 2, "BF16"},      {BLK_T_Q4_0, 32, 18, "Q4_0"},
        {BLK_T_Q4_1, 32, 20, "Q4_1"},    {BLK_T_Q5_0, 32, 22, "Q5_0"},
        {BLK_T_Q5_1, 32, 24, "Q5_1"},    {BLK_T_Q8_0, 32, 34, "Q8_0"},
        {BLK_T_Q2_K, 256, 84, "Q2_K"},   {BLK_T_Q3_K, 256, 110, "Q3_K"},
        {BLK_T_Q4_K, 256, 144, "Q4_K"},  {BLK_T_Q5_K, 256, 176, "Q5_K"},
        {BLK_T_Q6_K, 256, 210, "Q6_K"},  {BLK_T_IQ4_NL, 32, 18, "IQ4_NL"},
        {BLK_T_IQ4_XS, 256, 136, "IQ4_XS"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const struct blk_type_info *ti = blk_type_info(want[i].t);
        ck_assert_ptr_nonnull(ti);
        ck_assert_uint_eq(ti->blck, want[i].blck);
        ck_assert_uint_eq(ti->size, want[i].size);
        ck_assert_str_eq(blk_type_name(want[i].t), want[i].name);
        ck_assert_uint_eq(blk_row_size(want[i].t, 512), 512 / want[i].blck * want[i].size);
    }
    ck_assert_ptr_null(blk_type_info(4));
    ck_assert_ptr_null(blk_type_info(BLK_T_COUNT_));
    ck_assert_ptr_null(blk_type_info(UINT32_MAX));
    ck_assert_str_eq(blk_type_name(5), "?");
    ck_assert_uint_eq(blk_row_size(BLK_T_Q8_0, 33), 0);
    ck_assert_uint_eq(blk_row_size(99, 32), 0);
    ck_assert_uint_eq(gguf_vtype_size(GGUF_VT_FLOAT64), 8);
    ck_assert_uint_eq(gguf_vtype_size(GGUF_VT_STRING), 0);
    ck_assert_uint_eq(gguf_vtype_size(GGUF_VT_COUNT_), 0);
    ck_assert_str_eq(gguf_vtype_name(GGUF_VT_BOOL), "bool");
    ck_assert_str_eq(gguf_vtype_name(200), "?");
}
END_TEST

/* The built llama model is itself a valid GGUF with the advertised contents. */
START_TEST(test_builder_model_parses)
{
    struct gguf_builder b = {0};
    gb_reset(&b);
    gb_llama(&b, NULL);
    gb_build(&b);
    struct gguf_ctx g;
    parse_ok(&b, &g);
    ck_assert_uint_eq(g.n_tensors, 3 + 9 * 2);
    const struct gguf_tensor *t = gguf_find_tensor(&g, "blk.1.attn_k.weight");
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(t->ne[0], 64);
    ck_assert_uint_eq(t->ne[1], 32);
    t = gguf_find_tensor(&g, "blk.0.ffn_down.weight");
    ck_assert_uint_eq(t->ne[0], 128);
    ck_assert_uint_eq(t->ne[1], 64);
    t = gguf_find_tensor(&g, "token_embd.weight");
    ck_assert_uint_eq(t->ne[1], 260);
    uint32_t u;
    ck_assert_int_eq(gguf_get_u32(&g, "llama.attention.head_count_kv", &u), 0);
    ck_assert_uint_eq(u, 2);
    float f;
    ck_assert_int_eq(gguf_get_f32(&g, "llama.rope.freq_base", &f), 0);
    ck_assert(f == 10000.0f);
    struct gguf_str s;
    ck_assert_int_eq(gguf_get_str(&g, "tokenizer.ggml.model", &s), 0);
    ck_assert(gguf_str_eq(s, "llama"));
    const struct gguf_kv *kv;
    uint64_t n;
    ck_assert_int_eq(gguf_get_arr(&g, "tokenizer.ggml.tokens", NULL, &n, &kv), 0);
    ck_assert_uint_eq(n, 260);
    struct gguf_str_iter it;
    gguf_str_iter_init(&it, kv);
    uint64_t count = 0;
    while (gguf_str_iter_next(&it, &s)) {
        if (count == 3) ck_assert(gguf_str_eq(s, "<0x00>"));
        if (count == 258) ck_assert(gguf_str_eq(s, "<0xFF>"));
        if (count == 259) ck_assert(gguf_str_eq(s, "\xe2\x96\x81the"));
        count++;
    }
    ck_assert_uint_eq(count, 260);
    int64_t tt;
    ck_assert_int_eq(gguf_get_arr(&g, "tokenizer.ggml.token_type", NULL, NULL, &kv), 0);
    ck_assert_int_eq(gguf_arr_i64(kv, 3, &tt), 0);
    ck_assert_int_eq(tt, 6); /* byte */
    gguf_free(&g);
    gb_free(&b);
}
END_TEST

/* ---------------------------------------------------------------- "files": real fixtures */

/* Tensor counts from each architecture's layout in FIXTURES.txt, not from reading the files:
 * llama 9 per layer + token_embd, output_norm, output; qwen2 adds q/k/v biases (12/layer) and
 * ties output; qwen3 adds q/k norms (11/layer), tied; phi3 fuses qkv and gate+up (6/layer),
 * untied; gemma3 adds q/k norms and two post norms (13/layer), tied. stories260K: 5 layers. */
static const struct {
    const char *file;
    const char *arch;
    uint64_t n_tensors;
    uint64_t n_embd;
} k_files[] = {
    {"stories260K-F16", "llama", 48, 64},         {"stories260K-F32", "llama", 48, 64},
    {"stories260K-Q4_0", "llama", 48, 64},        {"stories260K-Q8_0", "llama", 48, 64},
    {"synth512-gemma3-d256-F32", "gemma3", 28, 256},
    {"synth512-gemma3-d256-Q4_K", "gemma3", 28, 256},
    {"synth512-gemma3-d256-Q8_0", "gemma3", 28, 256},
    {"synth512-llama-d256-BF16", "llama", 21, 256},
    {"synth512-llama-d256-F16", "llama", 21, 256},
    {"synth512-llama-d256-F32", "llama", 21, 256},
    {"synth512-llama-d256-IQ4_NL", "llama", 21, 256},
    {"synth512-llama-d256-IQ4_XS", "llama", 21, 256},
    {"synth512-llama-d256-Q2_K", "llama", 21, 256},
    {"synth512-llama-d256-Q3_K", "llama", 21, 256},
    {"synth512-llama-d256-Q4_0", "llama", 21, 256},
    {"synth512-llama-d256-Q4_1", "llama", 21, 256},
    {"synth512-llama-d256-Q4_K", "llama", 21, 256},
    {"synth512-llama-d256-Q4_K_M", "llama", 21, 256},
    {"synth512-llama-d256-Q5_0", "llama", 21, 256},
    {"synth512-llama-d256-Q5_1", "llama", 21, 256},
    {"synth512-llama-d256-Q5_K", "llama", 21, 256},
    {"synth512-llama-d256-Q6_K", "llama", 21, 256},
    {"synth512-llama-d256-Q8_0", "llama", 21, 256},
    {"synth512-phi3-d256-F32", "phi3", 15, 256},
    {"synth512-phi3-d256-Q4_K", "phi3", 15, 256},
    {"synth512-phi3-d256-Q8_0", "phi3", 15, 256},
    {"synth512-qwen2-d256-F32", "qwen2", 26, 256},
    {"synth512-qwen2-d256-Q4_K", "qwen2", 26, 256},
    {"synth512-qwen2-d256-Q6_K", "qwen2", 26, 256},
    {"synth512-qwen2-d256-Q8_0", "qwen2", 26, 256},
    {"synth512-qwen3-d256-F32", "qwen3", 24, 256},
    {"synth512-qwen3-d256-Q4_K", "qwen3", 24, 256},
    {"synth512-qwen3-d256-Q8_0", "qwen3", 24, 256},
};
#define N_FILES ((int)(sizeof k_files / sizeof k_files[0]))

START_TEST(test_real_file)
{
    char rel[128];
    snprintf(rel, sizeof rel, "models/%s.gguf", k_files[_i].file);
    const char *path = tutil_shared(rel);
    struct gguf_ctx g;
    struct err_info ei;
    err_clear(&ei);
    int rc = gguf_open(path, &g, &ei);
    ck_assert_msg(rc == 0, "%s: %s (%s)", path, ei.msg, err_kind(rc));
    ck_assert_msg(g.n_tensors == k_files[_i].n_tensors, "%s: %llu tensors, want %llu", path,
                  U64(g.n_tensors), U64(k_files[_i].n_tensors));
    ck_assert_uint_eq(g.version, 3);
    ck_assert_ptr_nonnull(g.map);
    struct gguf_str s;
    ck_assert_int_eq(gguf_get_str(&g, "general.architecture", &s), 0);
    ck_assert_msg(gguf_str_eq(s, k_files[_i].arch), "%s: architecture '%.*s'", path, (int)s.len,
                  s.ptr);
    /* the shared 512-token vocabulary, readable to the end */
    const struct gguf_kv *kv;
    uint64_t n;
    ck_assert_int_eq(gguf_get_arr(&g, "tokenizer.ggml.tokens", NULL, &n, &kv), 0);
    ck_assert_uint_eq(n, 512);
    struct gguf_str_iter it;
    gguf_str_iter_init(&it, kv);
    uint64_t count = 0;
    while (gguf_str_iter_next(&it, &s)) {
        ck_assert((const uint8_t *)s.ptr + s.len <= g.buf + g.len);
        count++;
    }
    ck_assert_uint_eq(count, 512);
    const struct gguf_tensor *te = gguf_find_tensor(&g, "token_embd.weight");
    ck_assert_ptr_nonnull(te);
    ck_assert_uint_eq(te->ne[0], k_files[_i].n_embd);
    ck_assert_uint_eq(te->ne[1], 512);
    uint64_t total = 0;
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        const struct gguf_tensor *t = &g.tensors[i];
        ck_assert((const uint8_t *)t->data >= g.buf + g.data_offset);
        ck_assert((const uint8_t *)t->data + t->nbytes <= g.buf + g.len);
        ck_assert_uint_eq(t->nbytes, blk_row_size(t->type, t->ne[0]) * t->ne[1] * t->ne[2] *
                                         t->ne[3]);
        total += t->nbytes;
    }
    ck_assert_uint_le(total, g.len - g.data_offset);
    gguf_free(&g);
    ck_assert_ptr_null(g.map);
}
END_TEST

/* The table above covers exactly the files the fixtures ship (SHA256SUMS), so a new fixture
 * cannot go untested silently. */
START_TEST(test_real_file_list)
{
    size_t len;
    char *sums = tutil_read(tutil_shared("models/SHA256SUMS"), &len);
    ck_assert_msg(sums != NULL, "cannot read %s", tutil_shared("models/SHA256SUMS"));
    int lines = 0;
    for (char *line = strtok(sums, "\n"); line; line = strtok(NULL, "\n")) {
        char *name = strstr(line, "  ");
        ck_assert_ptr_nonnull(name);
        name += 2;
        size_t nl = strlen(name);
        ck_assert(nl > 5 && strcmp(name + nl - 5, ".gguf") == 0);
        bool found = false;
        for (int i = 0; i < N_FILES; i++)
            found |= strlen(k_files[i].file) == nl - 5 && !strncmp(k_files[i].file, name, nl - 5);
        ck_assert_msg(found, "fixture %s has no expected tensor count here", name);
        lines++;
    }
    ck_assert_int_eq(lines, N_FILES);
    free(sums);
}
END_TEST

static const char *const k_vocabs[] = {"deepseek-coder", "deepseek-llm", "falcon", "gemma-3",
                                       "gpt-2",          "llama-bpe",    "llama-spm", "mpt",
                                       "phi-3",          "qwen2",        "refact",    "starcoder"};

START_TEST(test_vocab_file)
{
    char rel[128];
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf", k_vocabs[_i]);
    const char *path = tutil_shared(rel);
    struct gguf_ctx g;
    struct err_info ei;
    err_clear(&ei);
    int rc = gguf_open(path, &g, &ei);
    ck_assert_msg(rc == 0, "%s: %s", path, ei.msg);
    ck_assert_uint_eq(g.n_tensors, 0); /* vocab-only files */
    const struct gguf_kv *kv;
    uint64_t n;
    ck_assert_int_eq(gguf_get_arr(&g, "tokenizer.ggml.tokens", NULL, &n, &kv), 0);
    ck_assert_uint_gt(n, 1000);
    struct gguf_str_iter it;
    struct gguf_str s;
    gguf_str_iter_init(&it, kv);
    uint64_t count = 0;
    while (gguf_str_iter_next(&it, &s)) count++;
    ck_assert_uint_eq(count, n);
    gguf_free(&g);
}
END_TEST

static char g_tmpdir[256];

static void tmpdir_setup(void)
{
    snprintf(g_tmpdir, sizeof g_tmpdir, "/tmp/check_gguf.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_tmpdir));
}

static const char *tmp_path(const char *name)
{
    static char p[320];
    snprintf(p, sizeof p, "%s/%s", g_tmpdir, name);
    return p;
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

static void expect_open_fail_(int line, const char *path, int code, const char *needle)
{
    struct gguf_ctx g;
    memset(&g, 0xA5, sizeof g);
    struct err_info ei;
    err_clear(&ei);
    int rc = gguf_open(path, &g, &ei);
    ck_assert_msg(rc == code, "line %d: gguf_open(%s) = %d (%s), want %s; '%s'", line, path, rc,
                  err_kind(rc), err_kind(code), ei.msg);
    ck_assert_int_eq(ei.code, code);
    ck_assert_msg(ei.msg[0], "line %d: empty message", line);
    if (needle)
        ck_assert_msg(strstr(ei.msg, needle), "line %d: '%s' lacks '%s'", line, ei.msg, needle);
    ck_assert(g.map == NULL && g.kv == NULL && g.tensors == NULL);
}
#define expect_open_fail(path, code, needle) expect_open_fail_(__LINE__, path, code, needle)

START_TEST(test_open_errors)
{
    tmpdir_setup();
    /* missing: the message names the path */
    expect_open_fail(tmp_path("no-such-model.gguf"), ERR_NOT_FOUND, "no-such-model.gguf");
    /* a directory */
    expect_open_fail(g_tmpdir, ERR_IO, "not a regular file");
    /* a character device */
    expect_open_fail("/dev/null", ERR_IO, "not a regular file");
    /* empty and text files */
    write_file(tmp_path("empty.gguf"), "", 0);
    expect_open_fail(tmp_path("empty.gguf"), ERR_BAD_MAGIC, NULL);
    write_file(tmp_path("text.gguf"), "hello, world\n", 13);
    expect_open_fail(tmp_path("text.gguf"), ERR_BAD_MAGIC, NULL);
    /* a truncated model: the mapping is released on failure (ASan/valgrind would see it) */
    struct gguf_builder b = {0};
    small_file(&b);
    write_file(tmp_path("cut.gguf"), b.buf, b.tensor_end - 1);
    expect_open_fail(tmp_path("cut.gguf"), ERR_RANGE, NULL);
    /* a FIFO: must be refused, not block in open() waiting for a writer (the test would time
     * out) */
    ck_assert_int_eq(mkfifo(tmp_path("fifo"), 0600), 0);
    expect_open_fail(tmp_path("fifo"), ERR_IO, "not a regular file");
    /* unreadable file (skipped as root, who can read anything) */
    write_file(tmp_path("noperm.gguf"), b.buf, b.len);
    ck_assert_int_eq(chmod(tmp_path("noperm.gguf"), 0), 0);
    if (geteuid() != 0) expect_open_fail(tmp_path("noperm.gguf"), ERR_IO, "noperm.gguf");
    /* and the same bytes, whole, open fine and match */
    write_file(tmp_path("ok.gguf"), b.buf, b.len);
    struct gguf_ctx g;
    struct err_info ei;
    err_clear(&ei);
    ck_assert_int_eq(gguf_open(tmp_path("ok.gguf"), &g, &ei), 0);
    ck_assert_uint_eq(g.n_tensors, 4);
    ck_assert_uint_eq(g.map_len, b.len);
    ck_assert_mem_eq(g.tensors[2].data, b.t[2].data, b.t[2].nbytes);
    gguf_free(&g);
    const char *names[] = {"empty.gguf", "text.gguf", "cut.gguf", "fifo", "noperm.gguf",
                           "ok.gguf"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) unlink(tmp_path(names[i]));
    rmdir(g_tmpdir);
    gb_free(&b);
}
END_TEST

/* ---------------------------------------------------------------- "model": model_load */

/* Build, parse (must succeed: these are model-level faults in a well-formed GGUF), bind.
 * Returns model_load's code; on failure checks the error is recorded with a message and, when
 * `needle` is given, that the message names it. */
static int load_built_(int line, struct gguf_builder *b, struct err_info *ei, const char *needle)
{
    gb_build(b);
    struct gguf_ctx g;
    parse_ok_(line, b, &g);
    struct model m;
    memset(&m, 0, sizeof m);
    err_clear(ei);
    int rc = model_load(&m, &g, ei);
    if (rc) {
        ck_assert_msg(ei->code == rc, "line %d: model_load rc %d but ei.code %d", line, rc,
                      ei->code);
        ck_assert_msg(ei->msg[0], "line %d: model_load failed with an empty message", line);
        if (needle)
            ck_assert_msg(strstr(ei->msg, needle), "line %d: message '%s' does not mention '%s'",
                          line, ei->msg, needle);
    }
    model_free(&m); /* safe on a partly bound model */
    gguf_free(&g);
    return rc;
}
#define load_built(b, ei, needle) load_built_(__LINE__, b, ei, needle)

#define expect_model_fail(b, code, needle)                                                    \
    do {                                                                                      \
        struct err_info ei_;                                                                  \
        int rc_ = load_built(b, &ei_, needle);                                                \
        ck_assert_msg(rc_ == code, "model_load = %d (%s), want %d (%s); '%s'", rc_,          \
                      err_kind(rc_), code, err_kind(code), ei_.msg);                          \
    } while (0)

static void llama(struct gguf_builder *b)
{
    gb_reset(b);
    gb_llama(b, NULL);
}

START_TEST(test_model_valid)
{
    struct gguf_builder b = {0};
    llama(&b);
    gb_build(&b);
    struct gguf_ctx g;
    parse_ok(&b, &g);
    struct model m;
    memset(&m, 0, sizeof m);
    struct err_info ei;
    err_clear(&ei);
    int rc = model_load(&m, &g, &ei);
    ck_assert_msg(rc == 0, "valid built model rejected: %s (%s)", ei.msg, err_kind(rc));
    ck_assert_int_eq(m.arch, MODEL_ARCH_LLAMA);
    ck_assert_uint_eq(m.hp.n_vocab, 260);
    ck_assert_uint_eq(m.hp.n_embd, 64);
    ck_assert_uint_eq(m.hp.n_ff, 128);
    ck_assert_uint_eq(m.hp.n_layer, 2);
    ck_assert_uint_eq(m.hp.n_head, 4);
    ck_assert_uint_eq(m.hp.n_head_kv, 2);
    ck_assert_uint_eq(m.hp.head_dim, 16);
    ck_assert_uint_eq(m.hp.rope_dim, 16);
    ck_assert_uint_eq(m.hp.n_ctx_train, 64);
    ck_assert(m.hp.rms_eps == 1e-5f);
    ck_assert(m.hp.rope_base == 10000.0f);
    ck_assert_ptr_eq(m.tok_embd, gguf_find_tensor(&g, "token_embd.weight"));
    ck_assert_ptr_eq(m.output_norm, gguf_find_tensor(&g, "output_norm.weight"));
    ck_assert_ptr_eq(m.output, gguf_find_tensor(&g, "output.weight"));
    ck_assert_ptr_nonnull(m.layers);
    ck_assert_ptr_eq(m.layers[0].wq, gguf_find_tensor(&g, "blk.0.attn_q.weight"));
    ck_assert_ptr_eq(m.layers[1].wk, gguf_find_tensor(&g, "blk.1.attn_k.weight"));
    ck_assert_ptr_eq(m.layers[1].w_down, gguf_find_tensor(&g, "blk.1.ffn_down.weight"));
    ck_assert_ptr_eq(m.layers[1].ffn_norm, gguf_find_tensor(&g, "blk.1.ffn_norm.weight"));
    model_free(&m);
    gguf_free(&g);
    gb_free(&b);
}
END_TEST

/* llama.cpp falls back to token_embd when output.weight is absent (tied embeddings). */
START_TEST(test_model_tied_output)
{
    struct gguf_builder b = {0};
    llama(&b);
    gb_tensor_del(&b, "output.weight");
    gb_build(&b);
    struct gguf_ctx g;
    parse_ok(&b, &g);
    struct model m;
    memset(&m, 0, sizeof m);
    struct err_info ei;
    err_clear(&ei);
    ck_assert_msg(model_load(&m, &g, &ei) == 0, "tied model rejected: %s", ei.msg);
    ck_assert_ptr_eq(m.output, m.tok_embd);
    model_free(&m);
    gguf_free(&g);
    gb_free(&b);
}
END_TEST

START_TEST(test_model_unknown_arch)
{
    struct gguf_builder b = {0};
    struct gb_llama_opts o = gb_llama_defaults();
    o.arch = "mamba"; /* consistent mamba.* keys, but an architecture we do not run */
    gb_reset(&b);
    gb_llama(&b, &o);
    expect_model_fail(&b, ERR_UNSUPPORTED, "mamba");
    gb_free(&b);
    /* llama keys, other name */
    llama(&b);
    gb_set_str(&b, "general.architecture", "llama4");
    expect_model_fail(&b, ERR_UNSUPPORTED, "llama4");
    gb_free(&b);
    /* no architecture at all */
    llama(&b);
    gb_kv_del(&b, "general.architecture");
    expect_model_fail(&b, ERR_NOT_FOUND, "general.architecture");
    gb_free(&b);
    /* architecture of the wrong type */
    llama(&b);
    gb_kv_del(&b, "general.architecture");
    gb_kv_u32(&b, "general.architecture", 1);
    expect_model_fail(&b, ERR_BAD_TYPE, "general.architecture");
    gb_free(&b);
}
END_TEST

/* Every tensor the llama forward pass needs (output.weight may be tied, so not in here). */
static const char *const k_required[] = {
    "token_embd.weight",         "output_norm.weight",       "blk.0.attn_norm.weight",
    "blk.0.attn_q.weight",       "blk.0.attn_k.weight",      "blk.0.attn_v.weight",
    "blk.0.attn_output.weight",  "blk.0.ffn_norm.weight",    "blk.0.ffn_gate.weight",
    "blk.0.ffn_up.weight",       "blk.0.ffn_down.weight",    "blk.1.attn_norm.weight",
    "blk.1.attn_q.weight",       "blk.1.attn_k.weight",      "blk.1.attn_v.weight",
    "blk.1.attn_output.weight",  "blk.1.ffn_norm.weight",    "blk.1.ffn_gate.weight",
    "blk.1.ffn_up.weight",       "blk.1.ffn_down.weight",
};

START_TEST(test_model_missing_tensor)
{
    struct gguf_builder b = {0};
    llama(&b);
    ck_assert_int_eq(gb_tensor_del(&b, k_required[_i]), 1);
    expect_model_fail(&b, ERR_NOT_FOUND, k_required[_i]);
    gb_free(&b);
}
END_TEST

/* Wrong shapes: a plausible-looking mistake for each kind of tensor, transposes included. */
static const struct {
    const char *name;
    uint32_t n_dims;
    uint64_t ne[2];
} k_bad_shapes[] = {
    {"token_embd.weight", 2, {32, 260}},      {"token_embd.weight", 2, {260, 64}},
    {"output_norm.weight", 1, {32}},          {"output_norm.weight", 2, {64, 2}},
    {"output.weight", 2, {64, 259}},          {"output.weight", 2, {260, 64}},
    {"blk.0.attn_norm.weight", 1, {65}},      {"blk.1.attn_q.weight", 2, {64, 48}},
    {"blk.0.attn_q.weight", 2, {32, 64}},     {"blk.0.attn_k.weight", 2, {64, 64}},
    {"blk.1.attn_k.weight", 2, {32, 64}},     {"blk.0.attn_v.weight", 2, {64, 16}},
    {"blk.0.attn_output.weight", 2, {64, 32}}, {"blk.1.ffn_norm.weight", 1, {128}},
    {"blk.0.ffn_gate.weight", 2, {128, 64}},  {"blk.0.ffn_up.weight", 2, {64, 96}},
    {"blk.1.ffn_down.weight", 2, {64, 128}},  {"blk.0.ffn_down.weight", 1, {128}},
};

START_TEST(test_model_wrong_shape)
{
    struct gguf_builder b = {0};
    llama(&b);
    gb_tensor_f32(&b, k_bad_shapes[_i].name, k_bad_shapes[_i].n_dims, k_bad_shapes[_i].ne, 0,
                  0.05f);
    expect_model_fail(&b, ERR_SHAPE, k_bad_shapes[_i].name);
    gb_free(&b);
}
END_TEST

START_TEST(test_model_block_count)
{
    struct gguf_builder b = {0};
    /* more blocks claimed than present: blk.2.* is missing */
    llama(&b);
    gb_set_u32(&b, "llama.block_count", 3);
    expect_model_fail(&b, ERR_NOT_FOUND, "blk.2");
    gb_free(&b);
    /* fewer claimed than present: blk.1.* would be silently ignored (llama.cpp refuses) */
    llama(&b);
    gb_set_u32(&b, "llama.block_count", 1);
    expect_model_fail(&b, ERR_SHAPE, NULL);
    gb_free(&b);
    /* absurd values fail cleanly (no huge allocation, no crash) */
    const uint32_t absurd[] = {0, MODEL_MAX_LAYERS + 1, UINT32_MAX};
    for (size_t i = 0; i < sizeof absurd / sizeof absurd[0]; i++) {
        llama(&b);
        gb_set_u32(&b, "llama.block_count", absurd[i]);
        struct err_info ei;
        ck_assert_int_lt(load_built(&b, &ei, NULL), 0);
        gb_free(&b);
    }
}
END_TEST

START_TEST(test_model_heads)
{
    struct gguf_builder b = {0};
    /* 6 heads do not divide 64 (6 is still a multiple of the 2 kv heads, so this is the only
     * fault) */
    llama(&b);
    gb_set_u32(&b, "llama.attention.head_count", 6);
    expect_model_fail(&b, ERR_SHAPE, NULL);
    gb_free(&b);
    /* 4 heads / 3 kv heads: not a whole number of query heads per kv head */
    llama(&b);
    gb_set_u32(&b, "llama.attention.head_count_kv", 3);
    expect_model_fail(&b, ERR_SHAPE, NULL);
    gb_free(&b);
    /* 8 heads divide 64, but attn_k {64, 32} then means 4 kv heads of 8, not 2: shapes
     * disagree with the hyperparameters */
    llama(&b);
    gb_set_u32(&b, "llama.attention.head_count", 8);
    gb_set_u32(&b, "llama.rope.dimension_count", 8); /* keep rope consistent with head size 8 */
    expect_model_fail(&b, ERR_SHAPE, "attn_k");
    gb_free(&b);
    /* zeros and absurd values fail cleanly */
    const char *keys[] = {"llama.attention.head_count", "llama.attention.head_count_kv",
                          "llama.embedding_length", "llama.feed_forward_length"};
    const uint32_t vals[] = {0, UINT32_MAX};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        for (size_t v = 0; v < 2; v++) {
            llama(&b);
            gb_set_u32(&b, keys[k], vals[v]);
            struct err_info ei;
            ck_assert_msg(load_built(&b, &ei, NULL) < 0, "%s = %u accepted", keys[k], vals[v]);
            gb_free(&b);
        }
}
END_TEST

START_TEST(test_model_vocab_mismatch)
{
    struct gguf_builder b = {0};
    /* 260 tokens, 261 embedding rows (output matches the embedding) */
    llama(&b);
    gb_tensor_f32_2d(&b, "token_embd.weight", 64, 261, 0, 0.05f);
    gb_tensor_f32_2d(&b, "output.weight", 64, 261, 0, 0.05f);
    expect_model_fail(&b, ERR_SHAPE, NULL);
    gb_free(&b);
    /* 259 tokens, 260 rows */
    struct gb_llama_opts o = gb_llama_defaults();
    gb_reset(&b);
    gb_llama(&b, &o);
    const char *tok_keys[] = {"tokenizer.ggml.model", "tokenizer.ggml.tokens",
                              "tokenizer.ggml.scores", "tokenizer.ggml.token_type",
                              "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.bos_token_id",
                              "tokenizer.ggml.eos_token_id"};
    for (size_t i = 0; i < sizeof tok_keys / sizeof tok_keys[0]; i++)
        ck_assert_int_eq(gb_kv_del(&b, tok_keys[i]), 1);
    gb_vocab(&b, 259);
    expect_model_fail(&b, ERR_SHAPE, NULL);
    gb_free(&b);
}
END_TEST

START_TEST(test_model_hparams)
{
    struct gguf_builder b = {0};
    /* a required hyperparameter missing */
    llama(&b);
    gb_kv_del(&b, "llama.embedding_length");
    expect_model_fail(&b, ERR_NOT_FOUND, "embedding_length");
    gb_free(&b);
    /* present with the wrong type */
    llama(&b);
    gb_kv_del(&b, "llama.block_count");
    gb_kv_str(&b, "llama.block_count", "2");
    expect_model_fail(&b, ERR_BAD_TYPE, "block_count");
    gb_free(&b);
    /* embedding_length disagreeing with the tensors */
    llama(&b);
    gb_set_u32(&b, "llama.embedding_length", 128);
    expect_model_fail(&b, ERR_SHAPE, NULL);
    gb_free(&b);
    /* feed_forward_length disagreeing with ffn tensors */
    llama(&b);
    gb_set_u32(&b, "llama.feed_forward_length", 96);
    expect_model_fail(&b, ERR_SHAPE, NULL);
    gb_free(&b);
    /* rope dimension larger than a head */
    llama(&b);
    gb_set_u32(&b, "llama.rope.dimension_count", 32);
    struct err_info ei;
    ck_assert_int_lt(load_built(&b, &ei, NULL), 0);
    gb_free(&b);
    /* a weight in a type no kernel multiplies (I32) */
    llama(&b);
    uint64_t ne[2] = {64, 64};
    gb_tensor_del(&b, "blk.0.attn_q.weight");
    gb_tensor_raw(&b, "blk.0.attn_q.weight", BLK_T_I32, 2, ne, NULL, 64 * 64 * 4);
    ck_assert_int_lt(load_built(&b, &ei, "blk.0.attn_q.weight"), 0);
    gb_free(&b);
}
END_TEST

/* ---------------------------------------------------------------- suite */

Suite *make_suite(void);
Suite *make_suite(void)
{
    Suite *s = suite_create("gguf");

    TCase *bad = tcase_create("bad");
    tcase_add_test(bad, test_empty_and_text);
    tcase_add_test(bad, test_header_prefixes);
    tcase_add_test(bad, test_versions);
    tcase_add_test(bad, test_huge_counts);
    tcase_add_test(bad, test_counts_off_by_one);
    tcase_add_test(bad, test_huge_string_lengths);
    tcase_add_test(bad, test_bad_key_and_name_lengths);
    tcase_add_test(bad, test_huge_array_lengths);
    tcase_add_test(bad, test_unknown_value_types);
    tcase_add_test(bad, test_bool_values);
    tcase_add_test(bad, test_duplicates);
    tcase_add_test(bad, test_unknown_tensor_types);
    tcase_add_test(bad, test_bad_dims);
    tcase_add_test(bad, test_size_overflow);
    tcase_add_test(bad, test_tensor_offsets);
    tcase_add_test(bad, test_bad_alignment_kv);
    tcase_add_test(bad, test_header_byte_mutations);
    tcase_set_timeout(bad, 60);
    suite_add_tcase(s, bad);

    TCase *trunc = tcase_create("trunc");
    tcase_add_test(trunc, test_truncation_small);
    tcase_add_test(trunc, test_truncation_model);
    tcase_set_timeout(trunc, 120);
    suite_add_tcase(s, trunc);

    TCase *valid = tcase_create("valid");
    tcase_add_test(valid, test_roundtrip_scalars);
    tcase_add_test(valid, test_roundtrip_arrays);
    tcase_add_test(valid, test_roundtrip_tensors);
    tcase_add_test(valid, test_alignment_64);
    tcase_add_test(valid, test_type_table);
    tcase_add_test(valid, test_builder_model_parses);
    suite_add_tcase(s, valid);

    TCase *files = tcase_create("files");
    tcase_add_loop_test(files, test_real_file, 0, N_FILES);
    tcase_add_test(files, test_real_file_list);
    tcase_add_loop_test(files, test_vocab_file, 0, (int)(sizeof k_vocabs / sizeof k_vocabs[0]));
    tcase_add_test(files, test_open_errors);
    tcase_set_timeout(files, 60);
    suite_add_tcase(s, files);

    TCase *model = tcase_create("model");
    tcase_add_test(model, test_model_valid);
    tcase_add_test(model, test_model_tied_output);
    tcase_add_test(model, test_model_unknown_arch);
    tcase_add_loop_test(model, test_model_missing_tensor, 0,
                        (int)(sizeof k_required / sizeof k_required[0]));
    tcase_add_loop_test(model, test_model_wrong_shape, 0,
                        (int)(sizeof k_bad_shapes / sizeof k_bad_shapes[0]));
    tcase_add_test(model, test_model_block_count);
    tcase_add_test(model, test_model_heads);
    tcase_add_test(model, test_model_vocab_mismatch);
    tcase_add_test(model, test_model_hparams);
    tcase_set_timeout(model, 60);
    suite_add_tcase(s, model);
    return s;
}

TUTIL_MAIN
