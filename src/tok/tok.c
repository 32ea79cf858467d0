/* tok: tokenizers built from a GGUF's tokenizer.ggml.* metadata: SentencePiece ("llama") here,
 * ranked-merge BPE ("gpt2" byte-level, "gemma4") in tok_bpe.c with its pre-tokenizers in
 * tok_pre.c.
 *
 * What: tok_load copies the vocabulary out of the file and derives everything llama.cpp derives
 * (attributes, special ids, end-of-generation set, special-token list, byte fallback table);
 * tok_encode reproduces llama_tokenize (SPM here, BPE fragments handed to tok_bpe.c after the
 * same special-token partition); tok_piece_bytes and tok_detok_* reproduce llama_token_to_piece
 * / llama_detokenize, the latter streaming.
 *
 * Why this shape: llama.cpp is the reference, so each of its quirks that changes ids is kept:
 *  - the text is first cut at special-token texts, longest first (user-defined tokens always,
 *    control/unknown ones only with parse_special; Phi-3 vocabs strip spaces after them);
 *    this partition is shared by both kinds, the rest of this list is SPM's:
 *  - every text fragment that starts the input or follows a special token gets a " " prefix
 *    (add_space_prefix), then every ' ' becomes U+2581;
 *  - symbols are cut by UTF-8 lead byte alone (no validation, last one clamped to the end);
 *  - the adjacent pair whose concatenation is a vocabulary text and has the best score is
 *    merged first, ties to the leftmost; a symbol that is no token falls back to <0xHH> tokens.
 * The merge loop is a binary heap over a doubly linked list of symbols with stale entries
 * skipped (sizes no longer add up), so encoding is O(n log n) in the text length.
 *
 * Invariants after tok_load: 1 <= n <= 2^24; every text is non-empty (empty ones are renamed
 * "[EMPTY_<id>]" like llama.cpp) and unique, so the open-addressing hash is a bijection (each
 * slot also keeps the text's hash, so a probe rarely touches another text); every special id
 * is -1 or < n; BYTE tokens are exactly "<0xHH>"; the defaults of the kind (SPM: BOS 1, EOS 2,
 * UNK 0, add_bos; gpt2: BOS = EOS = 11; gemma4: none, add_bos forced) are applied before the
 * file's values, as llama.cpp does. Nothing allocates per call except tok_encode's scratch
 * (escaped text or code points, symbols, heap, fragment list), freed before it returns.
 * `kind` selects the algorithm; the struct and the shared numbering live in tok_int.h.
 *
 * The special-token partition scans the text once per special token (llama.cpp's order decides
 * overlaps, so it cannot become one combined scan); a token is skipped without scanning when
 * one of its adjacent byte pairs never occurs in the text, which keeps vocabularies with
 * thousands of control tokens cheap. */
#include "tok_int.h"

#include "../util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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


static int32_t lookup_c(const struct tok_vocab *v, const char *s) { return tok_lookup(v, s, strlen(s)); }

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

/* Copy texts, scores and types (sc, ty may be NULL: scores 0, all NORMAL); build the hash. */
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
        int64_t t = TOK_T_NORMAL; /* BPE files may have no types or scores */
        double d = 0;
        if (ty && (gguf_arr_i64(ty, i, &t) || t < TOK_T_UNDEFINED || t > TOK_T_BYTE))
            return err_set(ei, ERR_RANGE, ty->offset + 4ull * i, "tokenizer: token %u has type %lld, "
                           "expected 0..6", i, (long long)t);
        if (sc && gguf_arr_f64(sc, i, &d))
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
    }
    return tok_hash_build(v, ei);
}

static int32_t eog_id(const struct tok_vocab *v, const char *text)
{
    int32_t id = lookup_c(v, text);
    return id >= 0 && (v->attr[id] & A_EOG) ? id : -1;
}

/* The special ids and add_* flags the file sets, checked against the vocabulary. */
static int read_special_ids(struct tok_vocab *v, const struct gguf_ctx *g, struct err_info *ei)
{
    for (int k = 0; k < S_N; k++) { /* defaults out of range are dropped */
        if (v->sid[k] >= (int64_t)v->n) v->sid[k] = -1;
        uint32_t id;
        int rc = gguf_get_u32(g, special_key[k], &id);
        if (rc == ERR_NOT_FOUND || rc == ERR_RANGE) continue; /* negative ids: ignored too */
        if (rc) return err_set(ei, rc, ERR_NO_OFFSET, "tokenizer: %s must be an integer", special_key[k]);
        if (id < v->n) v->sid[k] = (int32_t)id; /* e.g. 0xFFFFFFFF: ignored, as llama.cpp does */
    }
    int rc = get_flag(g, "tokenizer.ggml.add_bos_token", &v->add_bos, ei);
    if (!rc) rc = get_flag(g, "tokenizer.ggml.add_eos_token", &v->add_eos, ei);
    if (!rc) rc = get_flag(g, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix, ei);
    if (rc) return rc;
    if (v->kind == TOK_KIND_BPE && v->pre == TOK_PRE_GEMMA4) v->add_bos = true; /* llama.cpp forces it */
    if (v->add_bos && v->sid[S_BOS] < 0)
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "tokenizer: add_bos_token is true but "
                       "there is no valid tokenizer.ggml.bos_token_id");
    if (v->add_eos && v->sid[S_EOS] < 0)
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "tokenizer: add_eos_token is true but "
                       "there is no valid tokenizer.ggml.eos_token_id");
    return 0;
}

/* Slots the file leaves unset, found by their usual texts; the end-of-generation set; and
 * llama.cpp's attribute workarounds. */
static void mark_specials(struct tok_vocab *v)
{
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
    /* gpt-oss: these always print, as user-defined tokens (every other attribute dropped). */
    static const char *const always[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"};
    for (size_t i = 0; i < sizeof always / sizeof always[0]; i++) {
        int32_t id = lookup_c(v, always[i]);
        if (id >= 0) v->attr[id] = (uint16_t)(A_USER | (v->attr[id] & A_EOG));
    }
    static const int eog_slot[] = {S_EOS, S_EOT, S_EOM, S_FPAD, S_FREP, S_FSEP};
    for (size_t i = 0; i < sizeof eog_slot / sizeof eog_slot[0]; i++)
        if (v->sid[eog_slot[i]] >= 0) v->attr[v->sid[eog_slot[i]]] |= A_EOG;
    /* llama.cpp's workarounds: o200k_harmony / solar-open end a turn with <|return|> or
     * <|call|>, so their <|end|> is not EOG (and becomes user-defined); Gemma 4 and PaddleOCR
     * use </s> as text, not as EOG (it becomes normal). */
    int32_t end = eog_id(v, "<|end|>"), s_id = eog_id(v, "</s>");
    bool call = eog_id(v, "<|call|>") >= 0 || eog_id(v, "<|calls|>") >= 0;
    if (end >= 0 && call && (eog_id(v, "<|return|>") >= 0 || eog_id(v, "<|flush|>") >= 0))
        v->attr[end] = A_USER;
    if (s_id >= 0 && eog_id(v, "<|tool_response>") >= 0) v->attr[s_id] = A_NORMAL;
}

/* The special-token list the partition uses, longest text first, then lowest id. */
static int sort_specials(struct tok_vocab *v, struct err_info *ei)
{
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

    return 0;
}

/* Phi-3 space eating, and the token each byte falls back to. */
static void last_fixups(struct tok_vocab *v, const struct gguf_ctx *g)
{
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
        int32_t id = tok_lookup(v, hx, 6);
        if (id < 0) id = tok_lookup(v, &raw, 1);
        v->byte_tok[b] = id >= 0 ? id : v->sid[S_UNK];
    }
}

/* Special ids, flags, end-of-generation set and attribute fix-ups, in llama.cpp's order.
 * On entry sid[] and add_* hold the defaults of the vocabulary's kind (tok_load). */
static int load_specials(struct tok_vocab *v, const struct gguf_ctx *g, struct err_info *ei)
{
    int rc = read_special_ids(v, g, ei);
    if (rc) return rc;
    mark_specials(v);
    if ((rc = sort_specials(v, ei))) return rc;
    last_fixups(v, g);
    return 0;
}

struct piece {
    const char *p;
    size_t n;
    bool unescape;
};
static bool piece_of(const struct tok_vocab *v, int32_t id, bool special, struct piece *pc, char *byte);
static char piece_next(const struct piece *pc, size_t *i);

/* The vocabulary view: every token's printed bytes (special = true) back to back, and flags. */
static int build_view(struct tok_vocab *v, struct err_info *ei)
{
    uint64_t total = 0;
    for (uint32_t id = 0; id < v->n; id++) total += v->len[id];
    if (total > UINT32_MAX) return err_set(ei, ERR_LIMIT, ERR_NO_OFFSET, "tokenizer: token texts too long");
    v->view_off = malloc(((size_t)v->n + 1) * sizeof *v->view_off);
    v->view_text = malloc(total ? (size_t)total : 1); /* printing never lengthens a piece */
    v->view_flags = calloc(v->n, 1);
    if (!v->view_off || !v->view_text || !v->view_flags)
        return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "tokenizer: out of memory for the vocabulary view");
    uint32_t w = 0;
    for (uint32_t id = 0; id < v->n; id++) {
        v->view_off[id] = w;
        struct piece pc;
        char byte;
        if (piece_of(v, (int32_t)id, true, &pc, &byte))
            for (size_t i = 0; i < pc.n && w < total;) v->view_text[w++] = piece_next(&pc, &i);
        uint16_t at = v->attr[id];
        uint8_t f = 0;
        if (at & A_CONTROL) f |= VOCAB_CONTROL;
        if (at & A_EOG) f |= VOCAB_EOG;
        if (at & A_BYTE) f |= VOCAB_BYTE;
        if (at & A_USER) f |= VOCAB_USER;
        if ((at & (A_UNKNOWN | A_UNUSED)) || !(at & (A_NORMAL | A_CONTROL | A_USER | A_BYTE))) f |= VOCAB_UNUSED;
        v->view_flags[id] = f;
    }
    v->view_off[v->n] = w;
    v->view = (struct vocab_view){v->n, v->view_off, v->view_text, v->view_flags, v->sid[S_BOS], v->sid[S_EOS]};
    return 0;
}

const struct vocab_view *tok_view(const struct tok_vocab *v) { return v ? &v->view : NULL; }

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
    bool spm = gguf_str_eq(model, "llama"), gemma4 = gguf_str_eq(model, "gemma4");
    if (!spm && !gemma4 && !gguf_str_eq(model, "gpt2"))
        return err_set(ei, ERR_UNSUPPORTED, ERR_NO_OFFSET, "tokenizer: unknown tokenizer.ggml.model "
                       "'%.*s'; supported: 'llama' (SentencePiece), 'gpt2' (byte-level BPE), "
                       "'gemma4' (BPE)", shown, model.ptr);

    /* BPE: the pre-tokenizer by name (absent: "default", as llama.cpp with its warning). */
    enum tok_pre pre = TOK_PRE_DEFAULT;
    bool ignore_merges = false, bpe_add_bos = false;
    struct gguf_str pre_name = {"default", 7};
    if (gemma4) {
        pre_name = (struct gguf_str){"gemma4", 6}; /* llama.cpp ignores the file's name here */
    } else if (!spm && (rc = gguf_get_str(g, "tokenizer.ggml.pre", &pre_name)) != 0) {
        if (rc != ERR_NOT_FOUND)
            return err_set(ei, rc, ERR_NO_OFFSET, "tokenizer: tokenizer.ggml.pre must be a string");
        pre_name = (struct gguf_str){"default", 7};
    }
    if (!spm && !tok_pre_by_name(pre_name.ptr, pre_name.len, &pre, &ignore_merges, &bpe_add_bos))
        return err_set(ei, ERR_UNSUPPORTED, ERR_NO_OFFSET, "tokenizer: unknown pre-tokenizer "
                       "tokenizer.ggml.pre = '%.*s'", pre_name.len > 40 ? 40 : (int)pre_name.len,
                       pre_name.ptr);

    const struct gguf_kv *tk, *sc = NULL, *ty = NULL;
    if ((rc = get_array(g, "tokenizer.ggml.tokens", GGUF_VT_STRING, GGUF_VT_STRING, 0, &tk, ei)))
        return rc;
    if (tk->arr_n < 1 || tk->arr_n > TOK_MAX_VOCAB)
        return err_set(ei, ERR_LIMIT, tk->offset, "tokenizer: %llu tokens, expected 1..%u",
                       (unsigned long long)tk->arr_n, TOK_MAX_VOCAB);
    /* llama.cpp also reads INT32 scores; the lengths must match exactly. BPE files need
     * neither scores nor types (llama.cpp: scores 0, every token NORMAL). */
    if (spm || gguf_find_kv(g, "tokenizer.ggml.scores"))
        rc = get_array(g, "tokenizer.ggml.scores", GGUF_VT_FLOAT32, GGUF_VT_INT32, tk->arr_n, &sc, ei);
    if (!rc && (spm || gguf_find_kv(g, "tokenizer.ggml.token_type")))
        rc = get_array(g, "tokenizer.ggml.token_type", GGUF_VT_INT32, GGUF_VT_INT32, tk->arr_n, &ty, ei);
    if (rc) return rc;

    struct tok_vocab *v = calloc(1, sizeof *v);
    if (!v) return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "tokenizer: out of memory");
    v->n = (uint32_t)tk->arr_n;
    for (int k = 0; k < S_N; k++) v->sid[k] = -1;
    if (spm) { /* llama.cpp's defaults per kind */
        v->kind = TOK_KIND_SPM;
        v->sid[S_BOS] = 1, v->sid[S_EOS] = 2, v->sid[S_UNK] = 0;
        v->add_bos = v->add_space_prefix = true;
    } else {
        v->kind = TOK_KIND_BPE;
        v->pre = pre;
        v->byte_level = !gemma4;
        v->escape_spaces = gemma4;
        v->ignore_merges = ignore_merges;
        v->add_bos = bpe_add_bos;
        if (!gemma4) v->sid[S_BOS] = v->sid[S_EOS] = 11;
        snprintf(v->pre_name, sizeof v->pre_name, "%.*s", (int)pre_name.len, pre_name.ptr);
    }
    snprintf(v->model, sizeof v->model, "%s", spm ? "llama" : gemma4 ? "gemma4" : "gpt2");
    if ((rc = load_tokens(v, tk, sc, ty, ei)) || (v->kind == TOK_KIND_BPE && (rc = tok_bpe_load(v, g, ei))) ||
        (rc = load_specials(v, g, ei)) || (rc = build_view(v, ei))) {
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
    free(v->view_off), free(v->view_text), free(v->view_flags);
    tok_bpe_free(v);
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

/* Can t[0..tl) occur in a text whose adjacent byte pairs (and bytes) are marked in `seen`?
 * Bit (a << 8 | b) is pair ab; bit 65536 + a is byte a. */
static bool may_occur(const uint8_t *seen, const char *t, uint32_t tl)
{
    if (tl == 1) {
        unsigned k = 65536u + (unsigned char)t[0];
        return seen[k >> 3] & (1u << (k & 7));
    }
    for (uint32_t i = 0; i + 1 < tl; i++) {
        unsigned k = (unsigned)(unsigned char)t[i] << 8 | (unsigned char)t[i + 1];
        if (!(seen[k >> 3] & (1u << (k & 7)))) return false;
    }
    return true;
}

/* llama.cpp's tokenizer_st_partition: cut special-token texts out of the raw fragments, one
 * special token at a time over the whole list, longest token first. Fragments only shrink, so
 * a token that cannot occur in the whole text is skipped without a scan. */
static int partition(struct enc *e, const char *text, size_t len, bool parse_special)
{
    const struct tok_vocab *v = e->v;
    if (frag_new(e, 0, (uint32_t)len, -1, -1) < 0) return ERR_NOMEM;
    if (v->n_special == 0) return 0;
    uint8_t *seen = calloc((65536 + 256) / 8, 1);
    if (!seen) return ERR_NOMEM;
    for (size_t i = 0; i < len; i++) {
        unsigned a = (unsigned char)text[i], k = 65536u + a;
        seen[k >> 3] |= (uint8_t)(1u << (k & 7));
        if (i + 1 < len) {
            k = a << 8 | (unsigned char)text[i + 1];
            seen[k >> 3] |= (uint8_t)(1u << (k & 7));
        }
    }
    int rc = 0;
    for (uint32_t k = 0; !rc && k < v->n_special; k++) {
        int32_t id = v->special[k];
        uint16_t at = v->attr[id];
        if (!parse_special && (at & (A_CONTROL | A_UNKNOWN))) continue;
        const char *t = text_of(v, id);
        uint32_t tl = v->len[id];
        if (!may_occur(seen, t, tl)) continue;
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
            if (rl && (r = frag_new(e, ro, rl, -1, f.next)) < 0) {
                rc = ERR_NOMEM;
                break;
            }
            int32_t after = r >= 0 ? r : f.next;
            if (ll) { /* node i keeps the left part, the token follows it */
                if ((tn = frag_new(e, 0, 0, id, after)) < 0) {
                    rc = ERR_NOMEM;
                    break;
                }
                e->fr[i] = (struct frag){f.off, ll, -1, tn};
            } else {
                e->fr[i] = (struct frag){0, 0, id, after};
            }
            i = after; /* the right part is searched again for the same token */
        }
    }
    free(seen);
    return rc;
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
    int32_t id = tok_lookup(e->v, e->esc + e->sym[l].off, size);
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
        int32_t id = tok_lookup(e->v, p, e->sym[i].n);
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
    if (len && v->kind == TOK_KIND_BPE && (rc = partition(&e, text, len, parse_special)) == 0) {
        struct tok_bpe_scratch bs = {0};
        struct tok_out o = {out, cap, e.n};
        for (int32_t i = 0; !rc && i >= 0; i = e.fr[i].next) {
            if (e.fr[i].id >= 0) tok_out_emit(&o, e.fr[i].id);
            else rc = tok_bpe_fragment(v, &bs, text + e.fr[i].off, e.fr[i].len, &o);
        }
        tok_bpe_scratch_free(&bs);
        e.n = o.n;
    } else if (len && (rc = partition(&e, text, len, parse_special)) == 0) {
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

/* What a token prints, as llama_token_to_piece: raw text, U+2581-unescaped text (SPM and
 * gemma4 NORMAL tokens), the mapped-back bytes (byte-level BPE NORMAL tokens), or a byte. */
static bool piece_of(const struct tok_vocab *v, int32_t id, bool special, struct piece *pc, char *byte)
{
    if (!valid_id(v, id)) return false;
    uint16_t at = v->attr[id];
    const char *t = text_of(v, id);
    if (!special && (at & (A_UNKNOWN | A_CONTROL))) return false;
    *pc = (struct piece){t, v->len[id], false};
    if (at & (A_UNKNOWN | A_CONTROL)) return true;
    /* Deliberate difference: llama.cpp prints user-defined tokens raw, so a gemma4 vocabulary's
     * user-defined "▁▁" (two spaces) would print as "▁▁"; we unescape them like NORMAL ones. */
    if (at & A_USER) {
        pc->unescape = v->escape_spaces;
        return true;
    }
    if (at & A_NORMAL && v->byte_level) {
        *pc = (struct piece){v->dec_blob + v->dec_off[id], v->dec_len[id], false};
        return true;
    }
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

static void feed(struct tok_detok *d, unsigned char b, char *out, size_t cap, size_t *w)
{
    for (;;) {
        if (d->n_pend == 0) {
            size_t l = (size_t)util_utf8_seq_len(b);
            if (l == 1) put(out, cap, w, (const char *)&b, 1);
            else if (l == 0) put(out, cap, w, "\xef\xbf\xbd", 3);
            else d->pend[d->n_pend++] = (char)b;
            return;
        }
        unsigned char lead = (unsigned char)d->pend[0];
        if (util_utf8_cont_ok(lead, d->n_pend, b)) {
            d->pend[d->n_pend++] = (char)b;
            if (d->n_pend == (size_t)util_utf8_seq_len(lead)) {
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
