/* tok: SentencePiece-style ("llama") tokenizer built from a GGUF's tokenizer.ggml.* metadata.
 *
 * What: tok_load copies the vocabulary out of the file and derives everything llama.cpp derives
 * (attributes, special ids, end-of-generation set, special-token list, byte fallback table);
 * tok_encode reproduces llama_tokenize for SPM vocabularies; tok_piece_bytes and tok_detok_*
 * reproduce llama_token_to_piece / llama_detokenize, the latter streaming.
 *
 * Why this shape: llama.cpp is the reference, so each of its quirks that changes ids is kept:
 *  - the text is first cut at special-token texts, longest first (user-defined tokens always,
 *    control/unknown ones only with parse_special; Phi-3 vocabs strip spaces after them);
 *  - every text fragment that starts the input or follows a special token gets a " " prefix
 *    (add_space_prefix), then every ' ' becomes U+2581;
 *  - symbols are cut by UTF-8 lead byte alone (no validation, last one clamped to the end);
 *  - the adjacent pair whose concatenation is a vocabulary text and has the best score is
 *    merged first, ties to the leftmost; a symbol that is no token falls back to <0xHH> tokens.
 * The merge loop is a binary heap over a doubly linked list of symbols with stale entries
 * skipped (sizes no longer add up), so encoding is O(n log n) in the text length.
 *
 * Invariants after tok_load: 1 <= n <= 2^24; every text is non-empty (empty ones are renamed
 * "[EMPTY_<id>]" like llama.cpp) and unique, so the open-addressing hash is a bijection; every
 * special id is -1 or < n; BYTE tokens are exactly "<0xHH>". Nothing allocates per call except
 * tok_encode's scratch (escaped text, symbols, heap, fragment list), freed before it returns.
 * `kind` selects the algorithm so the byte-level BPE ("gpt2") can be added beside SPM. */
#include "tok.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOK_MAX_VOCAB (1u << 24)
#define TOK_MAX_TEXT (1u << 20)    /* longest token text accepted */
#define TOK_MAX_INPUT (256u << 20) /* longest tok_encode input: keeps indices in int32 */

enum tok_kind { TOK_KIND_SPM };

/* llama.cpp token attributes: the file's type sets one bit, text rules add more. */
enum {
    A_UNKNOWN = 1 << 0, A_UNUSED = 1 << 1, A_NORMAL = 1 << 2, A_CONTROL = 1 << 3, A_USER = 1 << 4,
    A_BYTE = 1 << 5, A_RSTRIP = 1 << 6, A_LSTRIP = 1 << 7, A_EOG = 1 << 8,
};

enum { S_BOS, S_EOS, S_UNK, S_EOT, S_EOM, S_FPRE, S_FSUF, S_FMID, S_FPAD, S_FREP, S_FSEP, S_N };

static const char *const special_key[S_N] = {
    "tokenizer.ggml.bos_token_id",     "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.eot_token_id",
    "tokenizer.ggml.eom_token_id",     "tokenizer.ggml.fim_pre_token_id",
    "tokenizer.ggml.fim_suf_token_id", "tokenizer.ggml.fim_mid_token_id",
    "tokenizer.ggml.fim_pad_token_id", "tokenizer.ggml.fim_rep_token_id",
    "tokenizer.ggml.fim_sep_token_id",
};

/* Texts llama.cpp uses to find special ids the file leaves unset (the token also becomes
 * CONTROL). NULL-separated groups, one per slot S_EOT.. S_FSEP. */
static const char *const detect_text[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<EOT>", "_<EOT>", "[EOT]", "<\357\275\234end\342\226\201of\342\226\201sentence\357\275\234>",
    "<end_of_utterance>", NULL,
    "<|eom_id|>", NULL,
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\357\275\234fim\342\226\201begin\357\275\234>",
    "<PRE>", "\xe2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>", NULL,
    "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\357\275\234fim\342\226\201hole\357\275\234>",
    "<SUF>", "\xe2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>", NULL,
    "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\357\275\234fim\342\226\201end\357\275\234>",
    "<MID>", "\xe2\x96\x81<MID>", "<|code_middle|>", "<|middle|>", NULL,
    "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL,
    "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", NULL,
    "<|file_sep|>", NULL,
};

/* Texts that always end generation (and become CONTROL), as llama.cpp lists them. */
static const char *const eog_text[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<\357\275\234end\342\226\201of\342\226\201sentence\357\275\234>", "[e~[",
};

struct tok_vocab {
    enum tok_kind kind;
    char model[16];
    uint32_t n;
    char *blob;      /* all texts back to back */
    size_t *off;     /* [n] text of id i = blob + off[i], len[i] bytes */
    uint32_t *len;   /* [n] */
    float *score;    /* [n] */
    int8_t *type;    /* [n] the file's enum tok_type */
    uint16_t *attr;  /* [n] A_* bits */
    uint32_t *ht;    /* [ht_mask + 1] id + 1, 0 = empty */
    uint32_t ht_mask;
    int32_t sid[S_N]; /* special ids, -1 = none */
    bool add_bos, add_eos, add_space_prefix;
    int32_t byte_tok[256];
    int32_t *special; /* ids with CONTROL/USER/UNKNOWN attr, longest text first */
    uint32_t n_special;
    size_t max_len; /* longest text */
};

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static int32_t lookup(const struct tok_vocab *v, const char *s, size_t n)
{
    for (uint32_t i = hash_bytes(s, n) & v->ht_mask;; i = (i + 1) & v->ht_mask) {
        uint32_t e = v->ht[i];
        if (!e) return -1;
        if (v->len[e - 1] == n && memcmp(v->blob + v->off[e - 1], s, n) == 0) return (int32_t)(e - 1);
    }
}

static int32_t lookup_c(const struct tok_vocab *v, const char *s) { return lookup(v, s, strlen(s)); }

static const char *text_of(const struct tok_vocab *v, int32_t id) { return v->blob + v->off[id]; }

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Read an array of the expected element type and length n (n == 0: any length >= 1). */
static int get_array(const struct gguf_ctx *g, const char *key, uint32_t want, uint32_t want2,
                     uint64_t n, const struct gguf_kv **kv, struct err_info *ei)
{
    uint32_t et;
    uint64_t cnt;
    int rc = gguf_get_arr(g, key, &et, &cnt, kv);
    if (rc == ERR_NOT_FOUND) return err_set(ei, rc, ERR_NO_OFFSET, "tokenizer: %s is missing", key);
    if (rc) return err_set(ei, rc, ERR_NO_OFFSET, "tokenizer: %s is not an array", key);
    if (et != want && et != want2)
        return err_set(ei, ERR_BAD_TYPE, (*kv)->offset, "tokenizer: %s has elements of type %s, "
                       "expected %s", key, gguf_vtype_name(et), gguf_vtype_name(want));
    if (n && cnt != n)
        return err_set(ei, ERR_SHAPE, (*kv)->offset, "tokenizer: %s has %llu entries but "
                       "tokenizer.ggml.tokens has %llu", key, (unsigned long long)cnt,
                       (unsigned long long)n);
    return 0;
}

static int get_flag(const struct gguf_ctx *g, const char *key, bool *out, struct err_info *ei)
{
    int rc = gguf_get_bool(g, key, out);
    if (rc == ERR_NOT_FOUND) return 0; /* keep the default */
    if (rc) return err_set(ei, rc, ERR_NO_OFFSET, "tokenizer: %s must be a bool", key);
    return 0;
}

/* Copy texts, scores and types; build the hash. */
static int load_tokens(struct tok_vocab *v, const struct gguf_kv *tk, const struct gguf_kv *sc,
                       const struct gguf_kv *ty, struct err_info *ei)
{
    struct gguf_str_iter it;
    struct gguf_str s;
    size_t total = 0;
    gguf_str_iter_init(&it, tk);
    for (uint32_t i = 0; gguf_str_iter_next(&it, &s); i++) {
        if (s.len > TOK_MAX_TEXT)
            return err_set(ei, ERR_LIMIT, ERR_NO_OFFSET, "tokenizer: token %u is %llu bytes long "
                           "(limit %u)", i, (unsigned long long)s.len, TOK_MAX_TEXT);
        total += (s.len ? s.len : 24) + 1; /* room for "[EMPTY_<id>]", NUL-terminated */
    }
    uint32_t cap = 1;
    while (cap < 2 * v->n) cap <<= 1;
    v->ht_mask = cap - 1;
    v->blob = malloc(total + 1);
    v->off = malloc(v->n * sizeof *v->off);
    v->len = malloc(v->n * sizeof *v->len);
    v->score = malloc(v->n * sizeof *v->score);
    v->type = malloc(v->n);
    v->attr = malloc(v->n * sizeof *v->attr);
    v->ht = calloc(cap, sizeof *v->ht);
    if (!v->blob || !v->off || !v->len || !v->score || !v->type || !v->attr || !v->ht)
        return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "tokenizer: out of memory for %u tokens", v->n);
    static const uint16_t type_attr[7] = {0, A_NORMAL, A_UNKNOWN, A_CONTROL, A_USER, A_UNUSED, A_BYTE};
    size_t pos = 0;
    gguf_str_iter_init(&it, tk);
    for (uint32_t i = 0; gguf_str_iter_next(&it, &s); i++) {
        v->off[i] = pos;
        if (s.len) {
            memcpy(v->blob + pos, s.ptr, s.len);
            v->len[i] = (uint32_t)s.len;
        } else { /* llama.cpp renames empty tokens so they stay unique and printable */
            v->len[i] = (uint32_t)snprintf(v->blob + pos, 25, "[EMPTY_%u]", i);
        }
        v->blob[pos + v->len[i]] = 0; /* so tok_piece_raw can be printed with %s */
        pos += v->len[i] + 1;
        int64_t t;
        double d;
        if (gguf_arr_i64(ty, i, &t) || t < TOK_T_UNDEFINED || t > TOK_T_BYTE)
            return err_set(ei, ERR_RANGE, ty->offset + 4ull * i, "tokenizer: token %u has type %lld, "
                           "expected 0..6", i, (long long)t);
        if (gguf_arr_f64(sc, i, &d))
            return err_set(ei, ERR_BAD_TYPE, sc->offset, "tokenizer: cannot read score %u", i);
        v->type[i] = (int8_t)t;
        v->attr[i] = type_attr[t];
        v->score[i] = (float)d;
        const char *p = v->blob + v->off[i];
        if (t == TOK_T_BYTE && (v->len[i] != 6 || memcmp(p, "<0x", 3) || p[5] != '>' ||
                                hexval(p[3]) < 0 || hexval(p[4]) < 0))
            return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "tokenizer: byte token %u is '%.*s', "
                           "expected <0xHH>", i, (int)v->len[i], p);
        if (v->len[i] > v->max_len) v->max_len = v->len[i];
        int32_t dup = lookup(v, p, v->len[i]);
        if (dup >= 0)
            return err_set(ei, ERR_DUPLICATE, ERR_NO_OFFSET, "tokenizer: duplicate token '%.*s' "
                           "at ids %d and %u", (int)(v->len[i] > 64 ? 64 : v->len[i]), p, dup, i);
        uint32_t h = hash_bytes(p, v->len[i]) & v->ht_mask;
        while (v->ht[h]) h = (h + 1) & v->ht_mask;
        v->ht[h] = i + 1;
    }
    return 0;
}

/* Special ids, flags, end-of-generation set and attribute fix-ups, in llama.cpp's order. */
static int load_specials(struct tok_vocab *v, const struct gguf_ctx *g, struct err_info *ei)
{
    for (int k = 0; k < S_N; k++) v->sid[k] = -1;
    v->sid[S_BOS] = 1; /* SPM defaults, dropped when out of range */
    v->sid[S_EOS] = 2;
    v->sid[S_UNK] = 0;
    for (int k = 0; k < S_N; k++) {
        if (v->sid[k] >= (int64_t)v->n) v->sid[k] = -1;
        uint32_t id;
        int rc = gguf_get_u32(g, special_key[k], &id);
        if (rc == ERR_NOT_FOUND || rc == ERR_RANGE) continue; /* negative ids: ignored too */
        if (rc) return err_set(ei, rc, ERR_NO_OFFSET, "tokenizer: %s must be an integer", special_key[k]);
        if (id < v->n) v->sid[k] = (int32_t)id; /* e.g. 0xFFFFFFFF: ignored, as llama.cpp does */
    }
    v->add_bos = true;
    v->add_eos = false;
    v->add_space_prefix = true;
    int rc = get_flag(g, "tokenizer.ggml.add_bos_token", &v->add_bos, ei);
    if (!rc) rc = get_flag(g, "tokenizer.ggml.add_eos_token", &v->add_eos, ei);
    if (!rc) rc = get_flag(g, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix, ei);
    if (rc) return rc;
    if (v->add_bos && v->sid[S_BOS] < 0)
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "tokenizer: add_bos_token is true but "
                       "there is no valid tokenizer.ggml.bos_token_id");
    if (v->add_eos && v->sid[S_EOS] < 0)
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "tokenizer: add_eos_token is true but "
                       "there is no valid tokenizer.ggml.eos_token_id");
    /* Unset slots found by text (lowest id wins); the token becomes CONTROL. */
    const char *const *t = detect_text;
    for (int k = S_EOT; k < S_N; k++, t++) {
        int32_t best = -1;
        for (; *t; t++) {
            int32_t id = lookup_c(v, *t);
            if (id >= 0 && (best < 0 || id < best)) best = id;
        }
        if (v->sid[k] < 0 && best >= 0) {
            v->sid[k] = best;
            v->attr[best] |= A_CONTROL;
        }
    }
    for (size_t i = 0; i < sizeof eog_text / sizeof eog_text[0]; i++) {
        int32_t id = lookup_c(v, eog_text[i]);
        if (id >= 0) v->attr[id] |= A_EOG | A_CONTROL;
    }
    static const int eog_slot[] = {S_EOS, S_EOT, S_EOM, S_FPAD, S_FREP, S_FSEP};
    for (size_t i = 0; i < sizeof eog_slot / sizeof eog_slot[0]; i++)
        if (v->sid[eog_slot[i]] >= 0) v->attr[v->sid[eog_slot[i]]] |= A_EOG;

    /* Special-token list, longest text first, then lowest id (llama.cpp leaves ties to
     * std::sort): sort (~len, id) keys. */
    for (uint32_t i = 0; i < v->n; i++)
        if (v->attr[i] & (A_CONTROL | A_USER | A_UNKNOWN)) v->n_special++;
    uint64_t *keys = malloc((v->n_special + 1) * sizeof *keys);
    v->special = malloc((v->n_special + 1) * sizeof *v->special);
    if (!keys || !v->special) {
        free(keys);
        return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "tokenizer: out of memory");
    }
    for (uint32_t i = 0, k = 0; i < v->n; i++)
        if (v->attr[i] & (A_CONTROL | A_USER | A_UNKNOWN))
            keys[k++] = (uint64_t)(UINT32_MAX - v->len[i]) << 32 | i;
    qsort(keys, v->n_special, sizeof *keys, cmp_u64);
    for (uint32_t k = 0; k < v->n_special; k++) v->special[k] = (int32_t)(uint32_t)keys[k];
    free(keys);

    /* Phi-3 (by general.name, as llama.cpp decides): spaces after special tokens are eaten. */
    struct gguf_str name;
    char low[128] = {0};
    if (gguf_get_str(g, "general.name", &name) == 0)
        for (size_t i = 0; i < name.len && i + 1 < sizeof low; i++)
            low[i] = (char)(name.ptr[i] >= 'A' && name.ptr[i] <= 'Z' ? name.ptr[i] + 32 : name.ptr[i]);
    if (strstr(low, "phi-3") || strstr(low, "phi3")) {
        for (uint32_t k = 0; k < v->n_special; k++) v->attr[v->special[k]] |= A_RSTRIP;
        int32_t id = lookup_c(v, "</s>");
        if (id >= 0) v->attr[id] |= A_RSTRIP;
        static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
        for (int i = 0; i < 3; i++)
            if ((id = lookup_c(v, keep[i])) >= 0) v->attr[id] &= (uint16_t)~A_RSTRIP;
    }

    /* Byte fallback: "<0xHH>", else the raw byte as a token, else <unk> (else -1: error). */
    for (int b = 0; b < 256; b++) {
        char hx[7], raw = (char)b;
        snprintf(hx, sizeof hx, "<0x%02X>", b);
        int32_t id = lookup(v, hx, 6);
        if (id < 0) id = lookup(v, &raw, 1);
        v->byte_tok[b] = id >= 0 ? id : v->sid[S_UNK];
    }
    return 0;
}

int tok_load(struct tok_vocab **out, const struct gguf_ctx *g, struct err_info *ei)
{
    if (!out || !g) return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "tok_load: NULL argument");
    *out = NULL;
    struct gguf_str model;
    int rc = gguf_get_str(g, "tokenizer.ggml.model", &model);
    if (rc == ERR_NOT_FOUND)
        return err_set(ei, rc, ERR_NO_OFFSET, "tokenizer: tokenizer.ggml.model is missing");
    if (rc) return err_set(ei, rc, ERR_NO_OFFSET, "tokenizer: tokenizer.ggml.model must be a string");
    int shown = model.len > 40 ? 40 : (int)model.len;
    if (gguf_str_eq(model, "gpt2"))
        return err_set(ei, ERR_UNSUPPORTED, ERR_NO_OFFSET, "tokenizer: tokenizer.ggml.model 'gpt2' "
                       "(byte-level BPE) is not supported yet; only 'llama' (SentencePiece)");
    if (!gguf_str_eq(model, "llama"))
        return err_set(ei, ERR_UNSUPPORTED, ERR_NO_OFFSET, "tokenizer: unknown tokenizer.ggml.model "
                       "'%.*s'; only 'llama' (SentencePiece) is supported", shown, model.ptr);

    const struct gguf_kv *tk, *sc, *ty;
    if ((rc = get_array(g, "tokenizer.ggml.tokens", GGUF_VT_STRING, GGUF_VT_STRING, 0, &tk, ei)))
        return rc;
    if (tk->arr_n < 1 || tk->arr_n > TOK_MAX_VOCAB)
        return err_set(ei, ERR_LIMIT, tk->offset, "tokenizer: %llu tokens, expected 1..%u",
                       (unsigned long long)tk->arr_n, TOK_MAX_VOCAB);
    /* llama.cpp also reads INT32 scores; the lengths must match exactly. */
    if ((rc = get_array(g, "tokenizer.ggml.scores", GGUF_VT_FLOAT32, GGUF_VT_INT32, tk->arr_n, &sc, ei)) ||
        (rc = get_array(g, "tokenizer.ggml.token_type", GGUF_VT_INT32, GGUF_VT_INT32, tk->arr_n, &ty, ei)))
        return rc;

    struct tok_vocab *v = calloc(1, sizeof *v);
    if (!v) return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "tokenizer: out of memory");
    v->kind = TOK_KIND_SPM;
    snprintf(v->model, sizeof v->model, "llama");
    v->n = (uint32_t)tk->arr_n;
    if ((rc = load_tokens(v, tk, sc, ty, ei)) || (rc = load_specials(v, g, ei))) {
        tok_free(v);
        return rc;
    }
    *out = v;
    return 0;
}

void tok_free(struct tok_vocab *v)
{
    if (!v) return;
    free(v->blob), free(v->off), free(v->len), free(v->score), free(v->type), free(v->attr);
    free(v->ht), free(v->special);
    free(v);
}

uint32_t tok_n_vocab(const struct tok_vocab *v) { return v ? v->n : 0; }
int32_t tok_bos(const struct tok_vocab *v) { return v ? v->sid[S_BOS] : -1; }
int32_t tok_eos(const struct tok_vocab *v) { return v ? v->sid[S_EOS] : -1; }
bool tok_add_bos(const struct tok_vocab *v) { return v && v->add_bos; }
bool tok_add_eos(const struct tok_vocab *v) { return v && v->add_eos; }
const char *tok_model_name(const struct tok_vocab *v) { return v ? v->model : ""; }

static bool valid_id(const struct tok_vocab *v, int32_t id) { return v && id >= 0 && (uint32_t)id < v->n; }

bool tok_is_eog(const struct tok_vocab *v, int32_t id) { return valid_id(v, id) && (v->attr[id] & A_EOG); }
int tok_token_type(const struct tok_vocab *v, int32_t id) { return valid_id(v, id) ? v->type[id] : -1; }

const char *tok_piece_raw(const struct tok_vocab *v, int32_t id, size_t *len)
{
    if (!valid_id(v, id)) {
        if (len) *len = 0;
        return "";
    }
    if (len) *len = v->len[id];
    return text_of(v, id);
}

/* ---- encoding ---- */

struct frag {
    uint32_t off, len; /* raw text span, when id < 0 */
    int32_t id;        /* special token, or -1 */
    int32_t next;      /* next fragment in text order (a list, so splits are O(1)), -1 ends */
};
struct sym {
    int32_t prev, next;
    uint32_t off, n; /* n == 0: merged into its left neighbour */
};
struct bigram {
    int32_t left, right;
    float score;
    uint32_t size;
};
struct enc {
    const struct tok_vocab *v;
    int32_t *out;
    size_t cap, n;
    char *esc;
    struct sym *sym;
    struct bigram *heap;
    size_t n_heap;
    struct frag *fr;
    int32_t n_fr, cap_fr;
};

static void emit(struct enc *e, int32_t id)
{
    if (e->n < e->cap) e->out[e->n] = id;
    e->n++;
}

static int32_t frag_new(struct enc *e, uint32_t off, uint32_t len, int32_t id, int32_t next)
{
    if (e->n_fr == e->cap_fr) {
        int32_t nc = e->cap_fr ? e->cap_fr * 2 : 16;
        struct frag *p = realloc(e->fr, (size_t)nc * sizeof *p);
        if (!p) return ERR_NOMEM;
        e->fr = p;
        e->cap_fr = nc;
    }
    e->fr[e->n_fr] = (struct frag){off, len, id, next};
    return e->n_fr++;
}

static bool is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* First occurrence of t[0..tl) in s[0..n), or SIZE_MAX. */
static size_t find(const char *s, size_t n, const char *t, size_t tl)
{
    for (size_t i = 0; tl <= n && i <= n - tl;) {
        const char *p = memchr(s + i, t[0], n - tl + 1 - i);
        if (!p) break;
        i = (size_t)(p - s);
        if (memcmp(p, t, tl) == 0) return i;
        i++;
    }
    return SIZE_MAX;
}

/* llama.cpp's tokenizer_st_partition: cut special-token texts out of the raw fragments, one
 * special token at a time over the whole list, longest token first. */
static int partition(struct enc *e, const char *text, size_t len, bool parse_special)
{
    const struct tok_vocab *v = e->v;
    if (frag_new(e, 0, (uint32_t)len, -1, -1) < 0) return ERR_NOMEM;
    for (uint32_t k = 0; k < v->n_special; k++) {
        int32_t id = v->special[k];
        uint16_t at = v->attr[id];
        if (!parse_special && (at & (A_CONTROL | A_UNKNOWN))) continue;
        const char *t = text_of(v, id);
        uint32_t tl = v->len[id];
        for (int32_t i = 0; i >= 0;) {
            struct frag f = e->fr[i];
            size_t m = f.id < 0 ? find(text + f.off, f.len, t, tl) : SIZE_MAX;
            if (m == SIZE_MAX) {
                i = f.next;
                continue;
            }
            uint32_t ll = (uint32_t)m, ro = f.off + (uint32_t)m + tl, rl = f.off + f.len - ro;
            if (at & A_LSTRIP)
                while (ll && is_space(text[f.off + ll - 1])) ll--;
            if (at & A_RSTRIP)
                while (rl && is_space(text[ro])) ro++, rl--;
            int32_t r = -1, tn;
            if (rl && (r = frag_new(e, ro, rl, -1, f.next)) < 0) return ERR_NOMEM;
            int32_t after = r >= 0 ? r : f.next;
            if (ll) { /* node i keeps the left part, the token follows it */
                if ((tn = frag_new(e, 0, 0, id, after)) < 0) return ERR_NOMEM;
                e->fr[i] = (struct frag){f.off, ll, -1, tn};
            } else {
                e->fr[i] = (struct frag){0, 0, id, after};
            }
            i = after; /* the right part is searched again for the same token */
        }
    }
    return 0;
}

/* Heap order: higher score first, then the leftmost pair (llama.cpp's comparator). */
static bool before(const struct bigram *a, const struct bigram *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(struct enc *e, struct bigram b)
{
    size_t i = e->n_heap++;
    while (i > 0 && before(&b, &e->heap[(i - 1) / 2])) {
        e->heap[i] = e->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    e->heap[i] = b;
}

static struct bigram heap_pop(struct enc *e)
{
    struct bigram top = e->heap[0], last = e->heap[--e->n_heap];
    size_t i = 0, n = e->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && before(&e->heap[c + 1], &e->heap[c])) c++;
        if (!before(&e->heap[c], &last)) break;
        e->heap[i] = e->heap[c];
        i = c;
    }
    if (n) e->heap[i] = last;
    return top;
}

static void try_bigram(struct enc *e, int32_t l, int32_t r)
{
    if (l < 0 || r < 0) return;
    uint32_t size = e->sym[l].n + e->sym[r].n;
    int32_t id = lookup(e->v, e->esc + e->sym[l].off, size);
    if (id >= 0) heap_push(e, (struct bigram){l, r, e->v->score[id], size});
}

/* One raw fragment through llm_tokenizer_spm_session. */
static int spm_fragment(struct enc *e, const char *s, size_t n, bool prefix)
{
    size_t m = 0;
    if (prefix) {
        memcpy(e->esc, "\xe2\x96\x81", 3);
        m = 3;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') {
            memcpy(e->esc + m, "\xe2\x96\x81", 3);
            m += 3;
        } else {
            e->esc[m++] = s[i];
        }
    }
    /* Symbols by lead byte only, as unicode_len_utf8: high nibble C/D -> 2, E -> 3, F -> 4. */
    static const uint8_t lead_len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    int32_t ns = 0;
    for (size_t o = 0; o < m; ns++) {
        size_t l = lead_len[(unsigned char)e->esc[o] >> 4];
        if (l > m - o) l = m - o;
        e->sym[ns] = (struct sym){ns - 1, o + l == m ? -1 : ns + 1, (uint32_t)o, (uint32_t)l};
        o += l;
    }
    if (ns == 0) return 0;
    e->n_heap = 0;
    for (int32_t i = 1; i < ns; i++) try_bigram(e, i - 1, i);
    while (e->n_heap) {
        struct bigram b = heap_pop(e);
        struct sym *l = &e->sym[b.left], *r = &e->sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) e->sym[r->next].prev = b.left;
        try_bigram(e, l->prev, b.left);
        try_bigram(e, b.left, l->next);
    }
    for (int32_t i = 0; i != -1; i = e->sym[i].next) {
        const char *p = e->esc + e->sym[i].off;
        int32_t id = lookup(e->v, p, e->sym[i].n);
        if (id >= 0) {
            emit(e, id);
            continue;
        }
        for (uint32_t j = 0; j < e->sym[i].n; j++) {
            int32_t b = e->v->byte_tok[(unsigned char)p[j]];
            if (b < 0) return ERR_UNSUPPORTED;
            emit(e, b);
        }
    }
    return 0;
}

int tok_encode(const struct tok_vocab *v, const char *text, size_t len, bool add_bos,
               bool parse_special, int32_t *out, size_t cap, size_t *n_out)
{
    if (n_out) *n_out = 0;
    if (!v || !n_out || (len && !text) || (cap && !out)) return ERR_INVALID;
    if (len > TOK_MAX_INPUT) return ERR_LIMIT;
    struct enc e = {.v = v, .out = out, .cap = cap};
    int rc = 0;
    if (add_bos) {
        if (v->sid[S_BOS] < 0) return ERR_STATE;
        emit(&e, v->sid[S_BOS]);
    }
    if (len && (rc = partition(&e, text, len, parse_special)) == 0) {
        /* Scratch sized for the longest fragment: escaped bytes, symbols, and a heap that never
         * holds more than 2 entries per symbol (each merge pops one and pushes at most two). */
        size_t big = 0;
        for (int32_t i = 0; i >= 0; i = e.fr[i].next) {
            size_t m = 3;
            for (uint32_t j = 0; e.fr[i].id < 0 && j < e.fr[i].len; j++)
                m += text[e.fr[i].off + j] == ' ' ? 3 : 1;
            if (m > big) big = m;
        }
        e.esc = malloc(big);
        e.sym = malloc(big * sizeof *e.sym);
        e.heap = malloc(2 * big * sizeof *e.heap);
        if (!e.esc || !e.sym || !e.heap) rc = ERR_NOMEM;
        bool prev_special = true; /* the first fragment gets the space prefix too */
        for (int32_t i = 0; !rc && i >= 0; i = e.fr[i].next) {
            if (e.fr[i].id >= 0) {
                emit(&e, e.fr[i].id);
                prev_special = true;
            } else {
                rc = spm_fragment(&e, text + e.fr[i].off, e.fr[i].len, v->add_space_prefix && prev_special);
                prev_special = false;
            }
        }
    }
    free(e.esc), free(e.sym), free(e.heap), free(e.fr);
    *n_out = e.n;
    if (rc) return rc;
    return e.n > cap ? ERR_LIMIT : 0;
}

/* ---- pieces and detokenization ---- */

/* What a token prints, as llama_token_to_piece: raw text, U+2581-unescaped text, or a byte. */
struct piece {
    const char *p;
    size_t n;
    bool unescape;
};

static bool piece_of(const struct tok_vocab *v, int32_t id, bool special, struct piece *pc, char *byte)
{
    if (!valid_id(v, id)) return false;
    uint16_t at = v->attr[id];
    const char *t = text_of(v, id);
    if (!special && (at & (A_UNKNOWN | A_CONTROL))) return false;
    *pc = (struct piece){t, v->len[id], false};
    if (at & (A_UNKNOWN | A_CONTROL | A_USER)) return true;
    if (at & A_NORMAL) return pc->unescape = true;
    if (at & A_BYTE) {
        *byte = (char)(hexval(t[3]) * 16 + hexval(t[4]));
        *pc = (struct piece){byte, 1, false};
        return true;
    }
    return false; /* UNDEFINED / UNUSED print nothing */
}

/* Next byte of a piece, advancing *i; U+2581 counts as one ' '. */
static char piece_next(const struct piece *pc, size_t *i)
{
    if (pc->unescape && pc->n - *i >= 3 && memcmp(pc->p + *i, "\xe2\x96\x81", 3) == 0) {
        *i += 3;
        return ' ';
    }
    return pc->p[(*i)++];
}

size_t tok_piece_bytes(const struct tok_vocab *v, int32_t id, bool special, char *buf, size_t cap)
{
    struct piece pc;
    char byte;
    size_t w = 0;
    if (!buf || !piece_of(v, id, special, &pc, &byte)) return 0;
    for (size_t i = 0; i < pc.n && w < cap;) buf[w++] = piece_next(&pc, &i);
    return w;
}

size_t tok_detok_max(const struct tok_vocab *v)
{
    /* Each input byte, plus up to 3 pending ones, can turn into a 3-byte U+FFFD. */
    return 3 * ((v ? v->max_len : 0) + 3) + 16;
}

void tok_detok_init(struct tok_detok *d, const struct tok_vocab *v)
{
    if (!d) return;
    memset(d, 0, sizeof *d);
    d->at_start = v && v->add_space_prefix;
}

static void put(char *out, size_t cap, size_t *w, const char *s, size_t n)
{
    for (size_t i = 0; i < n && *w < cap; i++) out[(*w)++] = s[i];
}

/* Length of the sequence a lead byte starts (strict UTF-8), 0 if it starts none. */
static size_t seq_len(unsigned char c)
{
    return c < 0x80 ? 1 : c < 0xc2 ? 0 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : c < 0xf5 ? 4 : 0;
}

/* Is b valid at position pos (>= 1) of a sequence led by lead? Excludes overlong forms,
 * surrogates and code points above U+10FFFF. */
static bool cont_ok(unsigned char lead, size_t pos, unsigned char b)
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

static void feed(struct tok_detok *d, unsigned char b, char *out, size_t cap, size_t *w)
{
    for (;;) {
        if (d->n_pend == 0) {
            size_t l = seq_len(b);
            if (l == 1) put(out, cap, w, (const char *)&b, 1);
            else if (l == 0) put(out, cap, w, "\xef\xbf\xbd", 3);
            else d->pend[d->n_pend++] = (char)b;
            return;
        }
        unsigned char lead = (unsigned char)d->pend[0];
        if (cont_ok(lead, d->n_pend, b)) {
            d->pend[d->n_pend++] = (char)b;
            if (d->n_pend == seq_len(lead)) {
                put(out, cap, w, d->pend, d->n_pend);
                d->n_pend = 0;
            }
            return;
        }
        /* None of the pending bytes starts a valid sequence: one U+FFFD each, then retry b. */
        for (size_t i = 0; i < d->n_pend; i++) put(out, cap, w, "\xef\xbf\xbd", 3);
        d->n_pend = 0;
    }
}

size_t tok_detok_push(struct tok_detok *d, const struct tok_vocab *v, int32_t id, char *out,
                      size_t cap)
{
    if (!d || !valid_id(v, id) || (cap && !out)) return 0;
    struct piece pc;
    char byte;
    size_t w = 0, i = 0;
    bool strip = d->at_start;
    d->at_start = false; /* llama_detokenize: only the very first token, printed or not */
    if (!piece_of(v, id, d->special, &pc, &byte)) return 0;
    while (i < pc.n) {
        char c = piece_next(&pc, &i);
        if (strip && c == ' ') {
            strip = false;
            continue;
        }
        strip = false;
        feed(d, (unsigned char)c, out, cap, &w);
    }
    return w;
}

size_t tok_detok_flush(struct tok_detok *d, char *out, size_t cap)
{
    size_t w = 0;
    if (!d) return 0;
    if (!out) cap = 0;
    for (size_t i = 0; i < d->n_pend; i++) put(out, cap, &w, "\xef\xbf\xbd", 3);
    d->n_pend = 0;
    return w;
}
