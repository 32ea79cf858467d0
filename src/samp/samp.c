/* samp: logits -> token (stop strings are text, and the engine's: src/eng/eng_stop.c).
 *
 * Pipeline of samp_sample (llama.cpp's common chain, same semantics):
 *   1. logit bias (added in place; -INFINITY bans),
 *   2. repetition / frequency / presence penalties for tokens in the last-N window (in place),
 *   3. temp <= 0: greedy over the allowed tokens, lowest id on ties; done, no RNG draw.
 *   4. else gather the candidates: allowed by the mask, not NaN, not -INFINITY. If any is
 *      +INFINITY only those survive (they share the mass equally), which keeps every later
 *      subtraction `v - max` finite.
 *   5. top-k by selection, never a full sort: a k-sized heap in one scan for small k,
 *      introselect (quickselect with a heap-sort fallback) otherwise; O(n) either way.
 *   6. top-p over the temp-1 softmax: sort only the best 256 (usually the nucleus is in
 *      there), else a quickselect on cumulative mass finds the cut in expected O(n).
 *   7. min-p: keep logit >= max + log(min_p), i.e. p >= min_p * p_max.
 *   8. temperature and one draw: the weights exp((v - max) / temp) are <= 1 with the max at
 *      exactly 1, so nothing overflows and the sum is >= 1.
 *
 * Invariants: candidates never hold NaN, so "better" (higher logit, then lower id) is a strict
 * total order; selection and sorting are therefore deterministic and independent of the
 * algorithm's internals, which is what makes a seed reproduce a sequence. Exactly one RNG value
 * is consumed per non-greedy sample. The maximum candidate survives every filter (top-k, top-p
 * and min-p all keep it), so the max computed at gather time stays valid. samp_sample does not
 * allocate: idx/val/counts/hist are sized in samp_init. counts[t] is the number of occurrences
 * of t in the window ring hist; its top bit is borrowed briefly while penalties are applied so
 * that a token repeated in the window is penalised once.
 */
#include "samp.h"

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define HIST_MAX (1 << 20)     /* cap on penalty_last_n: the ring is allocated up front */
#define COUNT_MARK 0x80000000u /* borrowed bit in counts[]: "already penalised this call" */

/* ---- params ---- */

void samp_params_default(struct samp_params *p)
{
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->temp = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->freq_penalty = 0.0f;
    p->presence_penalty = 0.0f;
    p->penalty_last_n = 64;
    p->seed = 0;
    p->bias = NULL;
    p->n_bias = 0;
}

/* The numeric fields. Ranges are the protocol's documented ones (protocol/PROTOCOL.md). */
static const struct samp_field g_fields[] = {
    {"temp", "temperature", "--temp", SAMP_FIELD_FLOAT, offsetof(struct samp_params, temp), 0, 100},
    {"top_k", "top_k", "--top-k", SAMP_FIELD_INT, offsetof(struct samp_params, top_k), 0, INT32_MAX},
    {"top_p", "top_p", "--top-p", SAMP_FIELD_FLOAT, offsetof(struct samp_params, top_p), 0, 1},
    {"min_p", "min_p", "--min-p", SAMP_FIELD_FLOAT, offsetof(struct samp_params, min_p), 0, 1},
    {"repeat_penalty", "repeat_penalty", "--repeat-penalty", SAMP_FIELD_FLOAT,
     offsetof(struct samp_params, repeat_penalty), 0.01, 100},
    {"penalty_last_n", "repeat_last_n", "--repeat-last-n", SAMP_FIELD_INT,
     offsetof(struct samp_params, penalty_last_n), 0, HIST_MAX},
    {"presence_penalty", "presence_penalty", "--presence-penalty", SAMP_FIELD_FLOAT,
     offsetof(struct samp_params, presence_penalty), -100, 100},
    {"freq_penalty", "frequency_penalty", "--frequency-penalty", SAMP_FIELD_FLOAT,
     offsetof(struct samp_params, freq_penalty), -100, 100},
};
#define N_FIELDS (sizeof g_fields / sizeof g_fields[0])

size_t samp_field_count(void) { return N_FIELDS; }

const struct samp_field *samp_field_at(size_t i) { return i < N_FIELDS ? &g_fields[i] : NULL; }

bool samp_field_ok(const struct samp_field *f, double x)
{
    /* Written as !(in range) fails for NaN. */
    if (!(x >= f->lo && x <= f->hi)) return false;
    return f->type != SAMP_FIELD_INT || x == floor(x);
}

double samp_field_get(const struct samp_params *p, const struct samp_field *f)
{
    const char *m = (const char *)p + f->off;
    if (f->type == SAMP_FIELD_INT) {
        int32_t v;
        memcpy(&v, m, sizeof v);
        return v;
    }
    float v;
    memcpy(&v, m, sizeof v);
    return v;
}

static int field_range_err(const struct samp_field *f, double x, struct err_info *ei)
{
    return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "%s must be in [%g, %g], got %g", f->name,
                   f->lo, f->hi, x);
}

int samp_field_set(struct samp_params *p, const struct samp_field *f, double x,
                   struct err_info *ei)
{
    if (!samp_field_ok(f, x)) return field_range_err(f, x, ei);
    char *m = (char *)p + f->off;
    if (f->type == SAMP_FIELD_INT) {
        int32_t v = (int32_t)x;
        memcpy(m, &v, sizeof v);
    } else {
        float v = (float)x;
        memcpy(m, &v, sizeof v);
    }
    return 0;
}

int samp_params_check(const struct samp_params *p, uint32_t n_vocab, struct err_info *ei)
{
    if (!p) return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "sampler params are NULL");
    if (n_vocab == 0 || n_vocab > (uint32_t)INT32_MAX)
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "n_vocab must be in [1, %d], got %u",
                       INT32_MAX, n_vocab);
    for (size_t i = 0; i < N_FIELDS; i++) {
        const struct samp_field *f = &g_fields[i];
        double x = samp_field_get(p, f);
        if (!samp_field_ok(f, x)) return field_range_err(f, x, ei);
    }
    if (p->n_bias > 0 && !p->bias)
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "bias is NULL but n_bias is %zu",
                       p->n_bias);
    for (size_t i = 0; i < p->n_bias; i++) {
        const struct samp_bias *b = &p->bias[i];
        if (b->token < 0 || (uint32_t)b->token >= n_vocab)
            return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                           "bias[%zu].token must be in [0, %u), got %d", i, n_vocab, b->token);
        /* -INFINITY is the documented ban; +INFINITY or NaN would poison the softmax. */
        if (isnan(b->bias) || b->bias == INFINITY)
            return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                           "bias[%zu].bias must be finite or -inf, got %g", i, (double)b->bias);
    }
    return 0;
}

/* ---- RNG: xoshiro256** seeded through splitmix64 (the authors' recommended seeding; it also
 * guarantees the state is not all zero). Our own generator, so a seed means the same stream on
 * every platform and libc. ---- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl64(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(uint64_t st[4])
{
    uint64_t result = rotl64(st[1] * 5, 7) * 9;
    uint64_t t = st[1] << 17;
    st[2] ^= st[0];
    st[3] ^= st[1];
    st[1] ^= st[2];
    st[0] ^= st[3];
    st[2] ^= t;
    st[3] = rotl64(st[3], 45);
    return result;
}

static void rng_seed(uint64_t st[4], uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) st[i] = splitmix64(&x);
}

double samp_rng_uniform(struct samp_ctx *s)
{
    /* Top 53 bits -> a double in [0, 1), every value equally likely, 1.0 impossible. */
    return (double)(rng_next(s->rng) >> 11) * 0x1.0p-53;
}

/* ---- lifecycle ---- */

int samp_init(struct samp_ctx *s, uint32_t n_vocab, const struct samp_params *p)
{
    if (!s) return ERR_INVALID;
    memset(s, 0, sizeof *s);
    struct samp_params def;
    if (!p) {
        samp_params_default(&def);
        p = &def;
    }
    int rc = samp_params_check(p, n_vocab, NULL);
    if (rc) return rc;
    s->n_vocab = n_vocab;
    s->p = *p;
    s->counts = calloc(n_vocab, sizeof *s->counts);
    s->idx = malloc((size_t)n_vocab * sizeof *s->idx);
    s->val = malloc((size_t)n_vocab * sizeof *s->val);
    if (p->penalty_last_n > 0) s->hist = malloc((size_t)p->penalty_last_n * sizeof *s->hist);
    if (!s->counts || !s->idx || !s->val || (p->penalty_last_n > 0 && !s->hist)) {
        samp_free(s);
        return ERR_NOMEM;
    }
    rng_seed(s->rng, p->seed);
    return 0;
}

void samp_free(struct samp_ctx *s)
{
    if (!s) return;
    free(s->hist);
    free(s->counts);
    free(s->idx);
    free(s->val);
    memset(s, 0, sizeof *s);
}

void samp_reset(struct samp_ctx *s)
{
    if (!s) return;
    /* Undo the window entry by entry: O(last_n), not O(n_vocab). */
    /* The live entries are hist[0, hist_n) whether or not the ring has wrapped. */
    if (s->hist && s->counts) {
        for (uint32_t i = 0; i < s->hist_n; i++) {
            int32_t t = s->hist[i];
            if (t >= 0 && (uint32_t)t < s->n_vocab && s->counts[t]) s->counts[t]--;
        }
    }
    s->hist_n = 0;
    s->hist_pos = 0;
    rng_seed(s->rng, s->p.seed);
}

void samp_accept(struct samp_ctx *s, int32_t token)
{
    if (!s || !s->hist || !s->counts || s->p.penalty_last_n <= 0) return;
    if (token < 0 || (uint32_t)token >= s->n_vocab) return; /* nothing sane to count */
    uint32_t cap = (uint32_t)s->p.penalty_last_n;
    /* hist_pos is the next slot to write; when the ring is full it holds the oldest token. */
    if (s->hist_n == cap) {
        int32_t old = s->hist[s->hist_pos];
        if (s->counts[old]) s->counts[old]--;
    } else {
        s->hist_n++;
    }
    s->hist[s->hist_pos] = token;
    s->counts[token]++;
    s->hist_pos = (s->hist_pos + 1) % cap;
}

/* ---- selection helpers over the parallel arrays idx/val ---- */

/* "a is better than b": higher logit, ties to the lower id. Strict total order (no NaN). */
static inline int better(const float *val, const int32_t *idx, size_t a, size_t b)
{
    /* Non-short-circuit form: compiles to flag arithmetic, no hard-to-predict branches. */
    return (val[a] > val[b]) | ((val[a] == val[b]) & (idx[a] < idx[b]));
}

static inline void swap_c(float *val, int32_t *idx, size_t a, size_t b)
{
    float v = val[a];
    val[a] = val[b];
    val[b] = v;
    int32_t t = idx[a];
    idx[a] = idx[b];
    idx[b] = t;
}

/* Heaps over [lo, lo + n) whose root is the WORST element. They serve three purposes: heap
 * sort (the fallback that bounds introselect/introsort at O(n log n) whatever the input),
 * heap selection of a small top-k in one pass, and partial sort (selection + extraction). */
static void sift_down(float *val, int32_t *idx, size_t lo, size_t root, size_t n)
{
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= n) return;
        if (child + 1 < n && better(val, idx, lo + child, lo + child + 1)) child++;
        if (!better(val, idx, lo + root, lo + child)) return;
        swap_c(val, idx, lo + root, lo + child);
        root = child;
    }
}

static void heap_build(float *val, int32_t *idx, size_t lo, size_t n)
{
    for (size_t i = n / 2; i-- > 0;) sift_down(val, idx, lo, i, n);
}

/* Repeatedly move the worst to the end: the heap [lo, lo + n) ends up sorted best first. */
static void heap_extract(float *val, int32_t *idx, size_t lo, size_t n)
{
    for (size_t end = n; end-- > 1;) {
        swap_c(val, idx, lo, lo + end);
        sift_down(val, idx, lo, 0, end);
    }
}

/* Sort [lo, hi] (inclusive) best first. */
static void heap_sort(float *val, int32_t *idx, size_t lo, size_t hi)
{
    size_t n = hi - lo + 1;
    heap_build(val, idx, lo, n);
    heap_extract(val, idx, lo, n);
}

/* Gather the k best of [lo, hi) into a worst-at-root heap at [lo, lo + k): one scan in which
 * almost every element loses a single, well-predicted comparison against the root; only
 * about k * ln(n / k) elements enter the heap on shuffled input. */
static void heap_select(float *val, int32_t *idx, size_t lo, size_t hi, size_t k)
{
    heap_build(val, idx, lo, k);
    for (size_t i = lo + k; i < hi; i++) {
        if (better(val, idx, i, lo)) {
            swap_c(val, idx, i, lo);
            sift_down(val, idx, lo, 0, k);
        }
    }
}

/* Heap selection beats quickselect while the heap stays small relative to the input. */
static int use_heap(size_t k, size_t n)
{
    return k <= 2048 && k <= n / 8;
}

/* Lomuto partition of [lo, hi] around the median of lo/mid/hi; returns the pivot's final slot.
 * Keys are distinct (the order is total), so no three-way partition is needed. */
static size_t partition(float *val, int32_t *idx, size_t lo, size_t hi)
{
    size_t mid = lo + (hi - lo) / 2;
    if (better(val, idx, mid, lo)) swap_c(val, idx, mid, lo);
    if (better(val, idx, hi, lo)) swap_c(val, idx, hi, lo);
    if (better(val, idx, hi, mid)) swap_c(val, idx, hi, mid);
    swap_c(val, idx, mid, hi); /* the median is now the pivot, at hi */
    /* Branch-free Lomuto: always swap, advance `store` only for elements better than the
     * pivot. [lo, store) is better than the pivot, [store, i] is not; a swap between two
     * not-better elements keeps that. Logits are noisy, so a branch here mispredicts half
     * the time. */
    const float pv = val[hi];
    const int32_t pi = idx[hi];
    size_t store = lo;
    for (size_t i = lo; i < hi; i++) {
        float v = val[i];
        int32_t t = idx[i];
        size_t b = (size_t)((v > pv) | ((v == pv) & (t < pi)));
        val[i] = val[store];
        idx[i] = idx[store];
        val[store] = v;
        idx[store] = t;
        store += b;
    }
    swap_c(val, idx, store, hi);
    return store;
}

static unsigned depth_limit(size_t n)
{
    unsigned d = 0;
    while (n > 1) {
        n >>= 1;
        d++;
    }
    return 2 * d + 4;
}

/* Rearrange [lo, hi) so that its k best elements occupy [lo, lo + k), in no particular order.
 * Introselect: quickselect, falling back to heap sort if partitions keep being lopsided. */
static void select_top(float *val, int32_t *idx, size_t lo, size_t hi, size_t k)
{
    if (k == 0 || k >= hi - lo) return;
    if (use_heap(k, hi - lo)) {
        heap_select(val, idx, lo, hi, k);
        return;
    }
    size_t target = lo + k - 1, l = lo, r = hi - 1;
    unsigned depth = depth_limit(hi - lo);
    while (r > l) {
        if (depth-- == 0) {
            heap_sort(val, idx, l, r);
            return;
        }
        size_t p = partition(val, idx, l, r);
        if (p == target) return;
        if (p < target)
            l = p + 1;
        else
            r = p - 1;
    }
}

/* Sort [lo, hi) best first. Introsort: recurse on the smaller side so the stack is O(log n). */
static void sort_range(float *val, int32_t *idx, size_t lo, size_t hi, unsigned depth)
{
    while (hi - lo > 16) {
        if (depth-- == 0) {
            heap_sort(val, idx, lo, hi - 1);
            return;
        }
        size_t p = partition(val, idx, lo, hi - 1);
        if (p - lo < hi - p - 1) {
            sort_range(val, idx, lo, p, depth);
            lo = p + 1;
        } else {
            sort_range(val, idx, p + 1, hi, depth);
            hi = p;
        }
    }
    for (size_t i = lo + 1; i < hi; i++)
        for (size_t j = i; j > lo && better(val, idx, j, j - 1); j--) swap_c(val, idx, j, j - 1);
}

/* ---- the pipeline ---- */

static inline int allowed(const uint64_t *mask, uint32_t i)
{
    return !mask || ((mask[i >> 6] >> (i & 63)) & 1u);
}

/* Step 1. Returns how many distinct tokens the bias made -inf (banned), which the full pass
 * later tells apart from the model's own non-finite logits, or -1 when a biased token's logit was
 * not finite to begin with (the model's fault, not the bias's). A finite bias never makes +inf: an
 * overflow is clamped to FLT_MAX. */
static int64_t apply_bias(struct samp_ctx *s, float *logits)
{
    const struct samp_bias *b = s->p.bias;
    for (size_t i = 0; i < s->p.n_bias; i++)
        if (b[i].token >= 0 && (uint32_t)b[i].token < s->n_vocab && !isfinite(logits[b[i].token]))
            return -1;
    int64_t banned = 0;
    for (size_t i = 0; i < s->p.n_bias; i++) {
        int32_t t = b[i].token;
        if (t < 0 || (uint32_t)t >= s->n_vocab || logits[t] == -INFINITY) continue; /* banned twice */
        float l = logits[t] + b[i].bias;
        banned += l == -INFINITY;
        logits[t] = l == INFINITY ? FLT_MAX : l;
    }
    return banned;
}

static void apply_penalties(struct samp_ctx *s, float *logits)
{
    const float rep = s->p.repeat_penalty, freq = s->p.freq_penalty,
                pres = s->p.presence_penalty;
    if (!s->hist || s->hist_n == 0 || (rep == 1.0f && freq == 0.0f && pres == 0.0f)) return;
    /* Visit the window (hist[0, hist_n), wrapped or not), not the vocabulary. Mark each token
     * when done so that one occurring several times is penalised once, by its count; then
     * clear the marks. */
    for (uint32_t i = 0; i < s->hist_n; i++) {
        int32_t t = s->hist[i];
        uint32_t c = s->counts[t];
        if (c & COUNT_MARK || c == 0) continue;
        float l = logits[t];
        /* llama.cpp: a repeat penalty always makes the token less likely, whatever the sign. */
        l = l > 0.0f ? l / rep : l * rep;
        l -= (float)c * freq + pres;
        logits[t] = l;
        s->counts[t] = c | COUNT_MARK;
    }
    for (uint32_t i = 0; i < s->hist_n; i++) s->counts[s->hist[i]] &= ~COUNT_MARK;
}

/* Greedy over the allowed, finite-or-+inf logits; -1 if there is none. *n_nonfinite counts the
 * logits that are not finite, allowed or not (the scan is the one finiteness check). */
static int32_t argmax_allowed(const float *logits, uint32_t n, const uint64_t *mask,
                              uint32_t *n_nonfinite)
{
    int32_t best = -1;
    float bv = -INFINITY;
    uint32_t nf = 0;
    for (uint32_t i = 0; i < n; i++) {
        float v = logits[i];
        nf += !isfinite(v);
        /* v > bv is false for NaN and for -inf (banned), and strict '>' keeps the lowest id. */
        if (v > bv && allowed(mask, i)) {
            bv = v;
            best = (int32_t)i;
        }
    }
    *n_nonfinite = nf;
    return best;
}

int32_t samp_argmax(const float *logits, uint32_t n)
{
    int32_t best = -1;
    for (uint32_t i = 0; i < n; i++) {
        if (isnan(logits[i])) continue;
        if (best < 0 || logits[i] > logits[best]) best = (int32_t)i;
    }
    return best;
}

/* Top-p over the temp-1 softmax of cand[0, n) with maximum vmax: returns the size of the
 * smallest best-first prefix whose mass reaches top_p (at least 1) and leaves that prefix, as a
 * set, at the front.
 *
 * Phase 1 sorts the best 256 (heap partial sort: one cheap scan): real LLM distributions are
 * peaked and the nucleus is usually found here, sorted.
 * Phase 2, for flat distributions whose nucleus holds thousands of tokens, is a quickselect on
 * cumulative mass: partition, weigh the better side, keep the side that holds the boundary.
 * Expected O(n) and no sort of the nucleus; the prefix is then unsorted, which nothing after
 * this step needs. Either way the kept set is the first `cut` candidates in the total order. */
static size_t apply_top_p(float *val, int32_t *idx, size_t n, float vmax, float top_p)
{
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += (double)expf(val[i] - vmax);
    const double target = (double)top_p * sum;
    double cum = 0.0; /* mass of [0, done), all better than anything after */
    size_t done = n < 256 ? n : 256;
    if (use_heap(done, n)) {
        heap_select(val, idx, 0, n, done);
        heap_extract(val, idx, 0, done);
    } else {
        select_top(val, idx, 0, n, done);
        sort_range(val, idx, 0, done, depth_limit(done));
    }
    for (size_t i = 0; i < done; i++) {
        cum += (double)expf(val[i] - vmax);
        if (cum >= target) return i + 1;
    }
    if (done >= n) return n; /* rounding kept the total just short of target: keep all */

    /* Invariant: cum < target, and the boundary lies in [l, r]. */
    size_t l = done, r = n - 1;
    unsigned depth = depth_limit(n - done);
    while (l < r) {
        if (depth-- == 0) { /* lopsided partitions: sort what is left and walk it */
            heap_sort(val, idx, l, r);
            for (; l < r; l++) {
                cum += (double)expf(val[l] - vmax);
                if (cum >= target) break;
            }
            return l + 1;
        }
        size_t p = partition(val, idx, l, r);
        double left = 0.0;
        for (size_t i = l; i < p; i++) left += (double)expf(val[i] - vmax);
        if (cum + left >= target) { /* p > l here: left > 0 because cum < target */
            r = p - 1;
            continue;
        }
        cum += left + (double)expf(val[p] - vmax);
        if (cum >= target) return p + 1;
        l = p + 1;
    }
    /* l == r: that one candidate completes the nucleus. l > r: only summation-order rounding
     * can leave the mass short; keep everything up to r. */
    return l <= r ? l + 1 : l;
}

/* Step 4: the candidates into val/idx: allowed, not NaN, not banned; if any is +inf, only those,
 * as equal finite logits (they share the mass). Returns how many; *vmax is their largest.
 * *n_nonfinite counts the logits that are not finite, allowed or not. */
static size_t gather(struct samp_ctx *s, const float *logits, const uint64_t *mask, float *vmax,
                     uint32_t *n_nonfinite)
{
    float *val = s->val;
    int32_t *idx = s->idx;
    size_t n = 0, n_inf = 0;
    uint32_t nf = 0;
    *vmax = -INFINITY;
    for (uint32_t i = 0; i < s->n_vocab; i++) {
        float v = logits[i];
        nf += !isfinite(v);
        if (!(v > -INFINITY) || !allowed(mask, i)) continue; /* NaN or -inf or masked */
        if (v == INFINITY) n_inf++;
        if (v > *vmax) *vmax = v;
        val[n] = v;
        idx[n] = (int32_t)i;
        n++;
    }
    *n_nonfinite = nf;
    if (!n_inf) return n;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (val[i] == INFINITY) {
            val[w] = 0.0f;
            idx[w] = idx[i];
            w++;
        }
    }
    *vmax = 0.0f;
    return w;
}

/* Step 7: keep logit >= max + log(min_p); the max always passes, so the result is >= 1. */
static size_t apply_min_p(float *val, int32_t *idx, size_t n, float vmax, float min_p)
{
    const float min_logit = vmax + logf(min_p);
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (val[i] >= min_logit) {
            val[w] = val[i];
            idx[w] = idx[i];
            w++;
        }
    }
    return w;
}

/* Step 8: temperature and the draw. The first pass turns val[] into weights (logits are not
 * needed any more) and sums them; the second walks the same weights in the same order with
 * the same arithmetic, so the running sum ends exactly at `sum` and a target below it is
 * always reached. */
static int32_t draw(struct samp_ctx *s, size_t n, float vmax)
{
    float *val = s->val;
    const float temp = s->p.temp;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        val[i] = expf((val[i] - vmax) / temp);
        sum += (double)val[i];
    }
    const double target = samp_rng_uniform(s) * sum;
    double run = 0.0;
    size_t pick = n, last_pos = 0;
    for (size_t i = 0; i < n; i++) {
        double w = (double)val[i];
        if (w > 0.0) last_pos = i;
        run += w;
        if (run > target) { /* strict: a zero-weight candidate is never picked */
            pick = i;
            break;
        }
    }
    if (pick == n) pick = last_pos; /* unreachable in exact arithmetic; stay safe anyway */
    return s->idx[pick];
}

int samp_sample(struct samp_ctx *s, float *logits, const uint64_t *mask, int32_t *out_token)
{
    if (!s || !logits || !out_token || !s->idx || !s->val || s->n_vocab == 0)
        return ERR_INVALID;
    *out_token = -1;
    /* The model's logits are all finite exactly when the only non-finite values after the bias
     * are the tokens it banned: the first full pass (greedy or gather) counts them, so the check
     * costs no pass of its own. */
    int64_t banned = apply_bias(s, logits);
    if (banned < 0) return ERR_NONFINITE;
    apply_penalties(s, logits);
    uint32_t nf;
    /* !(temp > 0) also sends a NaN temp (params mutated after init) to greedy. */
    if (!(s->p.temp > 0.0f)) {
        int32_t t = argmax_allowed(logits, s->n_vocab, mask, &nf);
        if (nf != banned) return ERR_NONFINITE;
        if (t < 0) return ERR_DEAD_END;
        *out_token = t;
        return 0;
    }
    float vmax;
    size_t n = gather(s, logits, mask, &vmax, &nf);
    if (nf != banned) return ERR_NONFINITE;
    if (n == 0) return ERR_DEAD_END;
    if (s->p.top_k > 0 && (size_t)s->p.top_k < n) {
        select_top(s->val, s->idx, 0, n, (size_t)s->p.top_k);
        n = (size_t)s->p.top_k;
    }
    if (s->p.top_p < 1.0f && n > 1) n = apply_top_p(s->val, s->idx, n, vmax, s->p.top_p);
    if (s->p.min_p > 0.0f && n > 1) n = apply_min_p(s->val, s->idx, n, vmax, s->p.min_p);
    *out_token = draw(s, n, vmax);
    return 0;
}
