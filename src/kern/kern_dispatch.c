/* kern_dispatch: CPU detection, the choice of ISA, and the public entry points of kern.h that
 * go through it (kern_act_prepare, kern_vec_dot, kern_matvec, kern_matmul, ...).
 *
 * What: every SIMD file defines one `struct kern_isa` (kern_int.h's contract). At first use we
 * build, for each ISA built for this target, a `struct kern_active`: the reference table of
 * kern_ref.c with that ISA's non-NULL functions laid over it (plus its optional tile kernels),
 * and publish the best one the CPU can run, in the fixed order neon-dotprod, neon, avx512,
 * avx-vnni, avx2, scalar.
 * LMPIPE_ISA forces one; an unknown or unavailable request warns once on stderr and keeps the
 * automatic choice (see kern.h for why it is not fatal).
 *
 * Why a published pointer: the hot entry points (a dot product per row) must cost one load,
 * not a lock or a pthread_once. The pointer is an atomic with acquire/release, set once under
 * pthread_once (and by kern_isa_select, which the caller must not race with kernels); until
 * then the reference table is returned, which is always correct.
 *
 * Why this file is compiled without -mavx2: the detection code must run on any x86, so it
 * cannot live in the SIMD files (the compiler may use AVX encodings anywhere in them).
 *
 * Invariants: kern_active() never returns NULL; kern_matvec / kern_matmul split rows in chunks
 * whose size depends only on the shape, and each output is computed by one function call
 * whose result does not depend on the chunk, so results are bit-identical for any pool. */
#include "kern_int.h"

#include "../util/err.h"
#include "../util/util.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define KD_X86 1
#if defined(__GNUC__) || defined(__clang__)
#include <cpuid.h>
#endif
#endif

/* kern_neon*.c define their tables only when the compiler targets NEON (__ARM_NEON) */
#if defined(__aarch64__) || (defined(__arm__) && defined(__ARM_NEON))
#define KD_ARM 1
#if defined(__linux__)
#include <sys/auxv.h>
#endif
#endif

/* ------------------------------------------------------------------------------------------ */
/* The ISAs built for this target, best first. A NEON file that is not (yet) in the tree is     */
/* simply not offered, so the dispatcher never breaks an ARM build.                            */

#ifdef KD_X86
extern const struct kern_isa kern_isa_avx512;
extern const struct kern_isa kern_isa_avxvnni;
extern const struct kern_isa kern_isa_avx2;
#endif
#ifdef KD_ARM
#if defined(__has_include)
#if __has_include("kern_neon_dotprod.c")
#define KD_HAVE_NEON_DOTPROD 1
extern const struct kern_isa kern_isa_neon_dotprod;
#endif
#if __has_include("kern_neon.c")
#define KD_HAVE_NEON 1
extern const struct kern_isa kern_isa_neon;
#endif
#endif
#endif

static const struct kern_isa *const k_isas[] = {
#ifdef KD_HAVE_NEON_DOTPROD
    &kern_isa_neon_dotprod,
#endif
#ifdef KD_HAVE_NEON
    &kern_isa_neon,
#endif
#ifdef KD_X86
    &kern_isa_avx512,
    &kern_isa_avxvnni,
    &kern_isa_avx2,
#endif
    NULL, /* keeps the array non-empty; the scalar reference follows the list */
};
#define N_ISAS (sizeof k_isas / sizeof k_isas[0] - 1)

/* ------------------------------------------------------------------------------------------ */
/* CPU features                                                                               */

#ifdef KD_X86
struct x86_feat {
    bool sse2, ssse3, sse41, avx, osymm, oszmm, fma, f16c, avx2, avx512f, avx512bw, avx512vl, avx512vnni, avxvnni;
};

static struct x86_feat x86_detect(void)
{
    struct x86_feat f;
    memset(&f, 0, sizeof f);
#if defined(__GNUC__) || defined(__clang__)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    f.sse2 = d & (1u << 26);
    f.ssse3 = c & (1u << 9);
    f.sse41 = c & (1u << 19);
    f.fma = c & (1u << 12);
    f.f16c = c & (1u << 29);
    f.avx = c & (1u << 28);
    bool osxsave = c & (1u << 27);
    if (osxsave) {
        /* XCR0 bits 1 and 2: the OS saves SSE and AVX (YMM) state on context switches */
        unsigned lo, hi;
        __asm__ __volatile__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        (void)hi;
        f.osymm = (lo & 6u) == 6u;
        /* bits 5-7: opmask registers, upper halves of zmm0-15, zmm16-31 */
        f.oszmm = (lo & 0xE6u) == 0xE6u;
    }
    unsigned max_leaf = __get_cpuid_max(0, NULL);
    if (max_leaf >= 7 && __get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        f.avx2 = b & (1u << 5);
        f.avx512f = b & (1u << 16);
        f.avx512bw = b & (1u << 30);
        f.avx512vl = b & (1u << 31);
        f.avx512vnni = c & (1u << 11);
        /* sub-leaf 1 exists when sub-leaf 0 reports it in EAX */
        unsigned max_sub = a;
        if (max_sub >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) f.avxvnni = a & (1u << 4);
    }
#endif
    return f;
}

static bool has_avx2(const struct x86_feat *f)
{
    return f->avx && f->osymm && f->avx2 && f->fma && f->f16c;
}

bool kern_cpu_has_avx2(void)
{
    struct x86_feat f = x86_detect();
    return has_avx2(&f);
}

bool kern_cpu_has_avxvnni(void)
{
    struct x86_feat f = x86_detect();
    return has_avx2(&f) && f.avxvnni;
}

bool kern_cpu_has_avx512(void)
{
    struct x86_feat f = x86_detect();
    return has_avx2(&f) && f.oszmm && f.avx512f && f.avx512bw && f.avx512vl && f.avx512vnni;
}
#endif

static void features_string(char *buf, size_t cap)
{
    buf[0] = 0;
    size_t len = 0;
#define ADD(cond, name)                                                                    \
    do {                                                                                   \
        if ((cond) && len + sizeof(name) + 1 < cap) {                                      \
            memcpy(buf + len, len ? " " name : name, len ? sizeof(name) : sizeof(name) - 1); \
            len += len ? sizeof(name) : sizeof(name) - 1;                                  \
            buf[len] = 0;                                                                  \
        }                                                                                  \
    } while (0)
#ifdef KD_X86
    struct x86_feat f = x86_detect();
    ADD(f.sse2, "sse2");
    ADD(f.ssse3, "ssse3");
    ADD(f.sse41, "sse4.1");
    ADD(f.avx, "avx");
    ADD(f.avx2, "avx2");
    ADD(f.fma, "fma");
    ADD(f.f16c, "f16c");
    ADD(f.avx512f, "avx512f");
    ADD(f.avx512bw, "avx512bw");
    ADD(f.avx512vl, "avx512vl");
    ADD(f.avx512vnni, "avx512vnni");
    ADD(f.avxvnni, "avx-vnni");
    ADD(f.avx && !f.osymm, "(os-does-not-save-ymm)");
    ADD(f.avx512f && f.osymm && !f.oszmm, "(os-does-not-save-zmm)");
#elif defined(KD_ARM)
#if defined(__linux__)
    unsigned long hw = getauxval(AT_HWCAP);
#if defined(__aarch64__)
    ADD(hw & (1ul << 1), "asimd");
    ADD(hw & (1ul << 20), "asimddp");
    ADD(hw & (1ul << 10), "asimdhp");
    ADD(hw & (1ul << 22), "sve");
#else
    ADD(hw & (1ul << 12), "neon");
    ADD(hw & (1ul << 16), "vfpv4");
    ADD(hw & (1ul << 24), "asimddp");
#endif
#else
    ADD(1, "(feature detection needs Linux)");
#endif
#else
    ADD(1, "(no SIMD kernels for this architecture)");
#endif
#undef ADD
}

/* ------------------------------------------------------------------------------------------ */
/* Building and publishing the active tables                                                  */

static struct kern_active k_built[N_ISAS + 1]; /* one per ISA in k_isas order, then scalar */
static bool k_avail[N_ISAS + 1];
static _Atomic(const struct kern_active *) k_cur;
static pthread_once_t k_once = PTHREAD_ONCE_INIT;
static char k_requested[32];
static bool k_has_request, k_request_ok;

static void build_ref(struct kern_active *a)
{
    memset(a, 0, sizeof *a);
    a->name = "scalar";
    memcpy(a->ops, kern_ref_ops, sizeof a->ops);
    for (uint32_t t = 0; t < BLK_T_COUNT_; t++) a->act[t] = kern_ref_act(t);
    a->dot_f32 = kern_ref_dot_f32;
    a->softmax = kern_ref_softmax_f32;
    a->swiglu = kern_ref_swiglu_f32;
    a->silu = kern_ref_silu_f32;
    a->wsum = kern_ref_wsum_f32;
    a->dot_f16_rows = kern_ref_dot_f16_rows;
    a->wsum_f16 = kern_ref_wsum_f16;
    a->fattn_q8_0 = kern_ref_fattn_q8_0;
    a->attn_qk_f16 = kern_ref_attn_qk_f16;
    a->attn_pv_f16 = kern_ref_attn_pv_f16;
    a->round_f16 = kern_ref_round_f16;
}

/* Lay an ISA's non-NULL members over a (its base first, recursively). */
static void lay_isa(struct kern_active *a, const struct kern_isa *isa)
{
    if (isa->base) lay_isa(a, isa->base);
    for (uint32_t t = 0; t < BLK_T_COUNT_; t++) {
        struct kern_type_ops *o = &a->ops[t];
        /* an ISA may only speed up what the reference can do, never add a type */
        if (o->dot_gemm && isa->dot_gemm[t]) o->dot_gemm = isa->dot_gemm[t];
        if (o->dot_vecdot && isa->dot_vecdot[t]) o->dot_vecdot = isa->dot_vecdot[t];
        if (o->dequant && isa->dequant[t]) o->dequant = isa->dequant[t];
        if (a->act[t] && isa->act[t]) a->act[t] = isa->act[t];
    }
    if (isa->dot_f32) a->dot_f32 = isa->dot_f32;
    const struct kern_isa_ext *ext = isa->ext;
    if (ext) {
        for (uint32_t t = 0; t < BLK_T_COUNT_; t++)
            if (a->ops[t].dot_gemm && ext->tile[t]) a->tile[t] = ext->tile[t];
        if (ext->softmax) a->softmax = ext->softmax;
        if (ext->swiglu) a->swiglu = ext->swiglu;
        if (ext->silu) a->silu = ext->silu;
        if (ext->wsum) a->wsum = ext->wsum;
        if (ext->dot_f32_rows) a->dot_f32_rows = ext->dot_f32_rows;
        if (ext->dot_f16_rows) a->dot_f16_rows = ext->dot_f16_rows;
        if (ext->wsum_f16) a->wsum_f16 = ext->wsum_f16;
        if (ext->fattn_q8_0) a->fattn_q8_0 = ext->fattn_q8_0;
        if (ext->attn_qk_f32) a->attn_qk_f32 = ext->attn_qk_f32;
        if (ext->attn_qk_f16) a->attn_qk_f16 = ext->attn_qk_f16;
        if (ext->attn_pv_f32) a->attn_pv_f32 = ext->attn_pv_f32;
        if (ext->attn_pv_f16) a->attn_pv_f16 = ext->attn_pv_f16;
        if (ext->round_f16) a->round_f16 = ext->round_f16;
    }
}

static void build_isa(struct kern_active *a, const struct kern_isa *isa)
{
    build_ref(a);
    lay_isa(a, isa);
    a->name = isa->name;
}

/* Every ISA name of every target, then the aliases (alias, name) accepted by LMPIPE_ISA. */
static const char *const k_all_names[] = {"scalar", "avx512", "avx-vnni", "avx2", "neon", "neon-dotprod"};
static const char *const k_aliases[][2] = {
    {"ref", "scalar"}, {"neon_dotprod", "neon-dotprod"}, {"avx_vnni", "avx-vnni"}, {"avxvnni", "avx-vnni"}};

static const char *canonical_name(const char *name)
{
    for (size_t i = 0; i < sizeof k_aliases / sizeof k_aliases[0]; i++)
        if (!strcmp(name, k_aliases[i][0])) return k_aliases[i][1];
    return name;
}

/* Index in k_built of an ISA name or alias, or -1. */
static int isa_index(const char *name)
{
    name = canonical_name(name);
    if (!strcmp(name, "scalar")) return (int)N_ISAS;
    for (size_t i = 0; k_isas[i]; i++)
        if (!strcmp(name, k_isas[i]->name)) return (int)i;
    return -1;
}

static bool known_name(const char *name)
{
    name = canonical_name(name);
    for (size_t i = 0; i < sizeof k_all_names / sizeof k_all_names[0]; i++)
        if (!strcmp(name, k_all_names[i])) return true;
    return false;
}

static void dispatch_init(void)
{
    for (size_t i = 0; k_isas[i]; i++) {
        build_isa(&k_built[i], k_isas[i]);
        k_avail[i] = k_isas[i]->available && k_isas[i]->available();
    }
    build_ref(&k_built[N_ISAS]);
    k_avail[N_ISAS] = true;
    int pick = (int)N_ISAS;
    for (size_t i = 0; k_isas[i]; i++)
        if (k_avail[i]) {
            pick = (int)i;
            break;
        }
    const char *req = getenv("LMPIPE_ISA");
    if (req && *req && strcmp(req, "auto") != 0) {
        k_has_request = true;
        snprintf(k_requested, sizeof k_requested, "%s", req);
        int i = isa_index(req);
        if (i >= 0 && k_avail[i]) {
            pick = i;
            k_request_ok = true;
        } else {
            util_log(1, "LMPIPE_ISA=%s %s; using %s", k_requested,
                     i >= 0 ? "is not supported by this CPU"
                     : known_name(req) ? "is not built for this target"
                                       : "is unknown (scalar, avx2, avx-vnni, avx512, neon, neon-dotprod, auto)",
                     k_built[pick].name);
        }
    } else {
        k_request_ok = true;
    }
    atomic_store_explicit(&k_cur, &k_built[pick], memory_order_release);
}

const struct kern_active *kern_active(void)
{
    const struct kern_active *a = atomic_load_explicit(&k_cur, memory_order_acquire);
    if (a) return a;
    pthread_once(&k_once, dispatch_init);
    return atomic_load_explicit(&k_cur, memory_order_acquire);
}

const char *kern_isa_name(void)
{
    return kern_active()->name;
}

int kern_isa_select(const char *name)
{
    (void)kern_active();
    if (!name) return ERR_INVALID;
    int i = isa_index(name);
    if (i < 0) return known_name(name) ? ERR_UNSUPPORTED : ERR_INVALID;
    if (!k_avail[i]) return ERR_UNSUPPORTED;
    atomic_store_explicit(&k_cur, &k_built[i], memory_order_release);
    return 0;
}

void kern_cpu_info(struct kern_cpu_info *out)
{
    if (!out) return;
    memset(out, 0, sizeof *out);
    const struct kern_active *a = kern_active();
    features_string(out->features, sizeof out->features);
    out->chosen = a->name;
    out->requested = k_has_request ? k_requested : NULL;
    out->request_honoured = k_request_ok;
    for (size_t i = 0; i <= N_ISAS && out->n_isa < KERN_MAX_ISAS; i++) {
        out->isa[out->n_isa] = k_built[i].name;
        out->isa_available[out->n_isa] = k_avail[i];
        out->n_isa++;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Public entry points                                                                        */

static const struct kern_type_ops *ops_for(const struct kern_active *a, uint32_t type)
{
    return type < BLK_T_COUNT_ ? &a->ops[type] : NULL;
}

static bool supported(const struct kern_active *a, uint32_t type)
{
    const struct kern_type_ops *o = ops_for(a, type);
    return o && o->dot_gemm && o->dot_vecdot && o->act_type < BLK_T_COUNT_ && a->act[o->act_type];
}

bool kern_type_supported(uint32_t type)
{
    return supported(kern_active(), type);
}

int kern_dequant_row(uint32_t type, const void *src, float *dst, size_t n)
{
    const struct kern_type_ops *o = ops_for(kern_active(), type);
    const struct blk_type_info *ti = blk_type_info(type);
    if (!o || !o->dequant || !ti) return ERR_UNSUPPORTED;
    if (n % ti->blck) return ERR_SHAPE;
    if (n == 0) return 0;
    if (!src || !dst) return ERR_INVALID;
    o->dequant(src, dst, n / ti->blck);
    return 0;
}

static size_t act_size(const struct kern_active *a, uint32_t wtype, size_t n)
{
    if (!supported(a, wtype)) return 0;
    if (blk_row_size(wtype, n) == 0) return 0; /* n must fill whole weight blocks */
    uint64_t sz = blk_row_size(a->ops[wtype].act_type, n);
    return sz > SIZE_MAX ? 0 : (size_t)sz;
}

size_t kern_act_size(uint32_t wtype, size_t n)
{
    return act_size(kern_active(), wtype, n);
}

void kern_act_prepare(uint32_t wtype, const float *x, void *dst, size_t n)
{
    const struct kern_active *a = kern_active();
    if (act_size(a, wtype, n) == 0 || !x || !dst) return;
    a->act[a->ops[wtype].act_type](x, dst, n);
}

/* The row kernel for (type, order), or NULL when the row cannot be multiplied. */
static kern_dot_fn dot_for(const struct kern_active *a, uint32_t wtype, size_t n, unsigned order)
{
    if (!supported(a, wtype) || n == 0 || blk_row_size(wtype, n) == 0) return NULL;
    return order == KERN_ORDER_VECDOT ? a->ops[wtype].dot_vecdot : a->ops[wtype].dot_gemm;
}

float kern_vec_dot_ex(uint32_t wtype, const void *wrow, const void *act, size_t n, unsigned order)
{
    kern_dot_fn fn = dot_for(kern_active(), wtype, n, order);
    if (!fn || !wrow || !act) return NAN;
    return fn(wrow, act, n);
}

float kern_vec_dot(uint32_t wtype, const void *wrow, const void *act, size_t n)
{
    return kern_vec_dot_ex(wtype, wrow, act, n, KERN_ORDER_GEMM);
}

float kern_dot_f32(const float *a, const float *b, size_t n)
{
    if (n == 0) return 0.0f;
    return kern_active()->dot_f32(a, b, n);
}

void kern_dot_f32_rows(float *out, const float *q, const float *k, size_t k_stride, size_t n, size_t n_rows)
{
    if (!out || n_rows == 0) return;
    const struct kern_active *a = kern_active();
    if (n == 0) {
        for (size_t r = 0; r < n_rows; r++) out[r] = 0.0f;
    } else if (a->dot_f32_rows) {
        a->dot_f32_rows(out, q, k, k_stride, n, n_rows);
    } else { /* no row kernel: the ISA's (or the reference's) dot, row by row */
        for (size_t r = 0; r < n_rows; r++) out[r] = a->dot_f32(q, k + r * k_stride, n);
    }
}

float kern_dot_f32_gemm(const float *a, const float *b, size_t n)
{
    if (n == 0) return 0.0f;
    return kern_active()->ops[BLK_T_F32].dot_gemm(a, b, n);
}

void kern_softmax_f32(float *x, size_t n, size_t n_pad)
{
    if (!x || n == 0) return;
    kern_active()->softmax(x, n, n_pad < n ? n : n_pad);
}

void kern_swiglu_f32(float *y, const float *x, const float *g, size_t n)
{
    if (!y || !x || !g) return;
    kern_active()->swiglu(y, x, g, n);
}

void kern_silu_f32(float *y, const float *x, size_t n)
{
    if (!y || !x) return;
    kern_active()->silu(y, x, n);
}

void kern_wsum_f32(float *out, const float *p, const struct kern_vt *vt, size_t n, size_t n_pad, size_t dim,
                   unsigned order)
{
    if (!out || !p || !vt || !vt->v) return;
    if (vt->blk == 0 || vt->blk % 32) { /* cell groups would straddle blocks: refuse, visibly */
        for (size_t d = 0; d < dim; d++) out[d] = NAN;
        return;
    }
    kern_active()->wsum(out, p, vt, n, n_pad < n ? n : n_pad, dim, order);
}

/* ------------------------------------------------------------------------------------------ */
/* Matrix products over the pool                                                              */

/* Below this many weight-row x token products' elements a product runs on the caller: waking
 * workers costs more than the work. Which thread runs a chunk never changes a result. */
#define MM_MIN_PARALLEL (1u << 14)
/* Rows per task: at least 16; more for short rows so a task streams >= ~16 KiB of weights
 * (fewer hand-outs on the pool's shared counter). Depends only on the shape. */
#define MM_MIN_CHUNK_ROWS 16
#define MM_CHUNK_BYTES (16u << 10)

/* Chunks are grouped into one contiguous range per thread: a thread walks its own range front
 * to back (so its prefetches run ahead into its own next rows and the chunk counter it bumps
 * stays in its own cache line), then helps the other ranges from their fronts. Which thread
 * computes a chunk still never changes a result: the chunks themselves depend only on the
 * shape. */
#define MM_MAX_RANGES 64
struct mm_range {
    _Alignas(64) atomic_size_t next; /* next chunk of this range to hand out */
    size_t end;                      /* one past its last chunk */
};

struct mm_ctx {
    kern_dot_fn fn;    /* per (row, token) when tile is NULL */
    kern_tile_fn tile; /* SIMD tile kernel for the gemm order, or NULL */
    const uint8_t *W;  /* [nrows][row_bytes] */
    size_t row_bytes, nrows, ncols, chunk;
    const uint8_t *act;
    size_t act_stride, n_tok;
    float *y;
    size_t y_stride;
    struct mm_range *ranges; /* [n_ranges] */
};

/* Decode streams each weight row once from DRAM; asking for the bytes ~6 KiB ahead before each
 * row lets memory and compute overlap (kern_avx2.c measures this; the tiles do their own). */
#define MM_PF_AHEAD 6144
static inline void prefetch_row(const uint8_t *row, size_t rb)
{
#if defined(__GNUC__) || defined(__clang__)
    const uintptr_t p = (uintptr_t)row + MM_PF_AHEAD; /* integer math: may point past the matrix */
    for (size_t o = 0; o < rb; o += 64) __builtin_prefetch((const void *)(p + o));
#else
    (void)row;
    (void)rb;
#endif
}

static void mm_chunk(const struct mm_ctx *c, size_t ci)
{
    size_t r0 = ci * c->chunk;
    size_t r1 = r0 + c->chunk < c->nrows ? r0 + c->chunk : c->nrows;
    if (c->tile) {
        c->tile(c->W + r0 * c->row_bytes, c->row_bytes, r1 - r0, c->act, c->act_stride, c->n_tok, c->ncols, c->y + r0,
                c->y_stride);
        return;
    }
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *row = c->W + r * c->row_bytes;
        if (c->n_tok == 1) prefetch_row(row, c->row_bytes);
        for (size_t t = 0; t < c->n_tok; t++) c->y[t * c->y_stride + r] = c->fn(row, c->act + t * c->act_stride, c->ncols);
    }
}

/* Task k = range k first, then whatever is left of ranges k+1, k+2, ... */
static void mm_task(void *vctx, int task, int n_tasks)
{
    const struct mm_ctx *c = vctx;
    for (int i = 0; i < n_tasks; i++) {
        struct mm_range *rg = &c->ranges[(task + i) % n_tasks];
        for (;;) {
            size_t ci = atomic_fetch_add_explicit(&rg->next, 1, memory_order_relaxed);
            if (ci >= rg->end) break;
            mm_chunk(c, ci);
        }
    }
}

void kern_matmul_ex(struct kern_pool *pool, uint32_t wtype, const void *W, size_t nrows, size_t ncols,
                    const void *act, size_t act_stride, size_t n_tok, float *y, size_t y_stride, unsigned order)
{
    if (!y || nrows == 0 || n_tok == 0) return;
    if (n_tok > 1 && y_stride < nrows) return; /* outputs would overlap: refuse rather than race */
    const struct kern_active *a = kern_active();
    /* llama.cpp's tinyBLAS takes a float matrix only when its row count is a multiple of 4;
     * otherwise the batched product also runs through ggml_vec_dot_*. */
    if (order == KERN_ORDER_GEMM && wtype < BLK_T_COUNT_ && a->ops[wtype].gemm_rows4 && nrows % 4)
        order = KERN_ORDER_VECDOT;
    kern_dot_fn fn = dot_for(a, wtype, ncols, order);
    size_t rb = fn ? (size_t)blk_row_size(wtype, ncols) : 0;
    size_t chunk = MM_MIN_CHUNK_ROWS;
    if (rb && rb * chunk < MM_CHUNK_BYTES) chunk = (MM_CHUNK_BYTES + rb - 1) / rb;
    size_t n_tasks = (nrows + chunk - 1) / chunk;
    if (!fn || !W || !act || (n_tok > 1 && act_stride == 0) || n_tasks > (size_t)INT32_MAX) {
        for (size_t t = 0; t < n_tok; t++)
            for (size_t r = 0; r < nrows; r++) y[t * y_stride + r] = NAN;
        return;
    }
    /* tiles compute dot_gemm's bits: usable for the vec_dot order too when it is the same
     * function (every quantized type but IQ4_NL) */
    kern_tile_fn tile = order == KERN_ORDER_GEMM || fn == a->ops[wtype].dot_gemm ? a->tile[wtype] : NULL;
    struct mm_range ranges[MM_MAX_RANGES];
    struct mm_ctx c = {fn, tile, W, rb, nrows, ncols, chunk, act, act_stride, n_tok, y, y_stride, ranges};
    /* nrows * ncols * n_tok < MIN without overflow */
    if (nrows <= (MM_MIN_PARALLEL - 1) / ncols / n_tok) pool = NULL;
    size_t n_ranges = pool ? (size_t)kern_pool_threads(pool) : 1;
    if (n_ranges > MM_MAX_RANGES) n_ranges = MM_MAX_RANGES;
    if (n_ranges > n_tasks) n_ranges = n_tasks;
    for (size_t i = 0; i < n_ranges; i++) {
        atomic_init(&ranges[i].next, i * n_tasks / n_ranges);
        ranges[i].end = (i + 1) * n_tasks / n_ranges;
    }
    kern_pool_run(pool, mm_task, &c, (int)n_ranges);
}

void kern_matmul(struct kern_pool *pool, uint32_t wtype, const void *W, size_t nrows, size_t ncols,
                 const void *act, size_t act_stride, size_t n_tok, float *y, size_t y_stride)
{
    kern_matmul_ex(pool, wtype, W, nrows, ncols, act, act_stride, n_tok, y, y_stride, KERN_ORDER_GEMM);
}

void kern_matvec_ex(struct kern_pool *pool, uint32_t wtype, const void *W, size_t nrows, size_t ncols,
                    const void *act, float *y, unsigned order)
{
    kern_matmul_ex(pool, wtype, W, nrows, ncols, act, 0, 1, y, nrows, order);
}

void kern_matvec(struct kern_pool *pool, uint32_t wtype, const void *W, size_t nrows, size_t ncols,
                 const void *act, float *y)
{
    kern_matvec_ex(pool, wtype, W, nrows, ncols, act, y, KERN_ORDER_GEMM);
}
