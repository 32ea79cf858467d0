/* eng: the one door into the engine. Every front end (the CLI commands, `serve`, `batch`, bench)
 * does everything through this header: open a model, describe it, open sessions, tokenize, render
 * a chat, generate, evaluate. Nothing above eng includes model, kv, kern or gguf headers.
 *
 * Owners: struct eng_model and struct eng_session are opaque; eng allocates, owns and frees
 * them, and nothing outside eng writes into them. Plain structs in this header (params, results,
 * info) belong to whoever declares them.
 *
 * No I/O and no threads of its own: callers pass a sink (text and progress callbacks and a
 * cancel flag). A model may be shared by sessions used from one thread at a time (rpc's worker).
 *
 * The generation loop is a sequence of named steps (eng_gen.c), in the spirit of llama2.c's
 * generate(): prefill, then per token: logits → constraint → sample → accept → end check →
 * detokenize → stop strings → emit. Seams for what comes next, none of which needs the loop to
 * change: a constraint (grammars, tool calls), a context-full hook (a shift), a hook after
 * prefill (a prompt cache), and chat rendering behind one function (templates).
 *
 * The token loop allocates nothing: every buffer it touches is sized when the session is
 * created; a constraint's own work is its own business. */
#ifndef LMPIPE_ENG_ENG_H
#define LMPIPE_ENG_ENG_H

#include "../samp/samp.h"
#include "../util/blk.h"
#include "../util/err.h"
#include "../util/vocab.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_t; /* jansson's value (the chat API takes JSON; this header does not need jansson.h) */

/* ================================ models ================================ */

struct eng_model;

/* KV cache element types of a session (src/kv/kv.h has the layouts and the memory formula):
 * F32 is what llama.cpp's reference outputs were made with; F16 (half the memory, logits within
 * ~1e-3 of F32's on float models) is what the front ends use unless told otherwise; Q8_0 (a
 * quarter plus scales) needs a head size that is a multiple of 32. */
enum eng_kv_type { ENG_KV_F32 = 0, ENG_KV_F16 = 1, ENG_KV_Q8_0 = 2, ENG_KV_TYPES };
#define ENG_KV_DEFAULT ENG_KV_F16
const char *eng_kv_type_name(int type);         /* "f32", "f16", "q8_0" ("?" otherwise) */
int eng_kv_type_parse(const char *s, int *out); /* those, any case, also "fp32" "fp16" "q8"; ERR_INVALID */

/* Open a GGUF model: weights (mapped, validated), tokenizer, thread pool. n_threads <= 0: the
 * number of online cores. */
int eng_model_open(struct eng_model **out, const char *path, int n_threads, struct err_info *ei);
/* Open only the tokenizer of a GGUF file (vocab-only files work): tokenize, detokenize and
 * the vocabulary view, no sessions. */
int eng_model_open_vocab(struct eng_model **out, const char *path, struct err_info *ei);
void eng_model_free(struct eng_model *em); /* NULL-safe */

/* The vocabulary view (util/vocab.h) the sampler and constraints see; valid until free. */
const struct vocab_view *eng_model_vocab(const struct eng_model *em);
uint32_t eng_model_n_vocab(const struct eng_model *em);
/* Context lengths: the training context, and n_ctx capped to it (0: the training context). */
uint32_t eng_model_n_ctx_train(const struct eng_model *em);
uint32_t eng_model_ctx_cap(const struct eng_model *em, uint32_t n_ctx);
/* Read every page of the weights once, so the first request does not pay for paging them in.
 * progress (may be NULL) hears stage "mapped" (0 of total), "paging" every 64 MiB, "ready". */
typedef void (*eng_stage_fn)(void *ud, const char *stage, uint64_t done, uint64_t total);
void eng_model_prefault(const struct eng_model *em, eng_stage_fn progress, void *ud);

/* ---- describing a model: one struct that `lmpipe info` and the protocol's model/info print ----
 * Metadata scalars are rendered as text the way the file holds them (strings up to 200 bytes,
 * numbers in %g / %lld), so a strange file is shown as it is. */
#define ENG_INFO_TEXT 208
struct eng_info_kv {
    const char *key;   /* GGUF key, e.g. "tokenizer.ggml.bos_token_id" */
    const char *label; /* short name, e.g. "bos_token_id" */
    bool present;
    char text[ENG_INFO_TEXT];
};
enum eng_info_meta { /* indices into eng_model_info.meta */
    ENG_META_NAME, ENG_META_ARCH, ENG_META_TOK_MODEL, ENG_META_TOK_PRE,
    ENG_META_BOS, ENG_META_EOS, ENG_META_EOT, ENG_META_EOM, ENG_META_UNK, ENG_META_PAD,
    ENG_META_ADD_BOS, ENG_META_ADD_EOS, ENG_META_ADD_SPACE_PREFIX,
    ENG_META_N_
};
#define ENG_META_FIRST_SPECIAL ENG_META_BOS /* BOS..ADD_SPACE_PREFIX: the tokenizer's specials */

/* What chat renders with by default (eng_model_info.chat; see "chat" below). */
enum eng_chat_source {
    ENG_CHAT_NONE = 0, /* the file has no chat template: built-in chatml (fallback set) */
    ENG_CHAT_MODEL,    /* the file's tokenizer.chat_template, run as Jinja */
    ENG_CHAT_FILE,     /* a Jinja template given with eng_model_set_chat_template */
    ENG_CHAT_DETECTED, /* the file's template does not parse as Jinja: the built-in family
                          detected from its text (chatml with fallback set when none matches) */
};
#define ENG_EOT_MAX 48 /* longest end-of-turn text derived from a template */
struct eng_chat_info {
    int source;          /* enum eng_chat_source */
    bool jinja;          /* source is ENG_CHAT_MODEL or ENG_CHAT_FILE */
    const char *builtin; /* !jinja: the built-in template's name */
    bool fallback;       /* !jinja: chatml because no template was recognised */
    bool tool_use;       /* the file's tokenizer.chat_template.tool_use parsed: it renders the
                            requests that have tools (ENG_CHAT_MODEL only) */
    char name[256];      /* ENG_CHAT_FILE: the name the template was given (a path) */
    char parse_error[ERR_MSG_MAX]; /* ENG_CHAT_DETECTED: why the file's template does not
                                      parse ("line L, column C: ..."); else "" */
    char end_of_turn[ENG_EOT_MAX + 1]; /* jinja: the template's end-of-turn text, a stop string
                                          of every chat ("" when none could be derived) */
    /* jinja: what the template accepts, probed once (see eng_chat_render for the fixes) */
    bool system_role, typed_content, tools, tool_calls, object_arguments, parallel_calls;
    const char *tool_syntax; /* how the model writes tool calls: "hermes", "llama3", "mistral",
                                ..., "derived" (from rendering the template) or "generic" */
};

struct eng_model_info {
    /* the file */
    char path[1024];
    uint64_t file_size;
    uint32_t gguf_version, alignment;
    uint64_t n_kv, n_tensors, n_params;
    uint64_t type_count[BLK_T_COUNT_], type_bytes[BLK_T_COUNT_]; /* tensor-type histogram */
    bool type_supported[BLK_T_COUNT_];                          /* this build's kernels run it */
    struct eng_info_kv meta[ENG_META_N_];
    /* the model (when model_ok; else model_error says why it cannot be loaded) */
    bool model_ok;
    char model_error[ERR_MSG_MAX + 64];
    char arch[32];
    uint32_t n_vocab, n_ctx_train, n_embd, n_ff, n_layer, n_head, n_head_kv, head_dim, rope_dim;
    float rms_eps, rope_base, rope_scale;
    bool output_tied;
    uint32_t n_ctx;              /* the context the sizes below are for */
    uint64_t kv_bytes;           /* K and V cache at n_ctx (F32) */
    uint64_t session_bytes;      /* everything a session allocates at n_ctx (F32) */
    uint64_t kv_type_bytes[ENG_KV_TYPES];      /* K and V per KV type (0: the type cannot run it) */
    uint64_t session_type_bytes[ENG_KV_TYPES]; /* everything a session allocates, per KV type */
    /* the tokenizer (when tok_ok) */
    bool tok_ok;
    char tok_model[16];          /* "llama", "gpt2", "gemma4" */
    uint64_t n_tokens;           /* entries of tokenizer.ggml.tokens */
    int32_t bos, eos;            /* -1: none */
    /* chat */
    bool has_chat_template;      /* tokenizer.chat_template is present */
    uint64_t chat_template_bytes;
    struct eng_chat_info chat;   /* what chat renders with by default */
    /* how it runs here */
    const char *isa;             /* kernel set in use ("avx2", "neon", "scalar", ...) */
    int threads;                 /* 0 for eng_file_info: nothing is running */
};
/* Describe an open model; n_ctx as for eng_model_ctx_cap. */
int eng_model_info(const struct eng_model *em, uint32_t n_ctx, struct eng_model_info *out);
/* Describe a file without keeping it open. Fails only when it is no readable GGUF file; a model
 * or tokenizer that cannot be loaded is described as such (model_ok / tok_ok false). */
int eng_file_info(const char *path, uint32_t n_ctx, struct eng_model_info *out,
                  struct err_info *ei);

/* ---- the weights' finiteness: `lmpipe info --check`, model/load {check: true} ----
 * Every tensor's stored values scanned in one pass over the mapped file, in file order: every
 * element of F32/F16/BF16/F64 tensors, every fp16 scale (d, dmin, m) of quantized blocks (the
 * quants themselves are integers). llama.cpp's --check-tensors does the same. */
#define ENG_CHECK_NAME 96
struct eng_check_tensor {
    char name[ENG_CHECK_NAME]; /* cut to fit (a GGUF name may be longer) */
    uint32_t type;             /* enum blk_type */
    uint64_t n_bad;            /* stored values that are NaN or infinite */
};
struct eng_check {
    uint64_t n_tensors, n_checked; /* n_tensors - n_checked: types with no check (IQ1_M) */
    uint64_t bytes;                /* tensor data scanned */
    double seconds;
    uint64_t n_bad_values;         /* over every tensor */
    size_t n_bad;                  /* tensors with any */
    struct eng_check_tensor *bad;  /* [n_bad], in file order */
};
/* Scan the open model's weights (ERR_NOMEM only). */
int eng_model_check(const struct eng_model *em, struct eng_check *out, struct err_info *ei);
/* Open a file, scan it, close it. */
int eng_file_check(const char *path, struct eng_check *out, struct err_info *ei);
void eng_check_free(struct eng_check *c); /* safe on zeroed */
/* ERR_NONFINITE_WEIGHTS naming the first bad tensors and their counts, or 0 when c found none. */
int eng_check_error(const struct eng_check *c, struct err_info *ei);

/* The kernels this CPU offers and runs (`lmpipe info --cpu`). */
#define ENG_MAX_ISAS 8
struct eng_cpu_info {
    char features[192];    /* CPU features the kernels look at, space-separated */
    const char *chosen;    /* the kernel set in use */
    const char *requested; /* LMPIPE_ISA as seen at start-up, NULL when unset */
    bool request_honoured;
    int n_isa;             /* kernel sets built for this target, in choice order */
    const char *isa[ENG_MAX_ISAS];
    bool isa_available[ENG_MAX_ISAS];
};
void eng_cpu_info(struct eng_cpu_info *out);

/* ================================ tokens ================================ */

/* Tokenize text[0..len) into out[0..cap). *n receives the number of ids the text needs; when
 * that exceeds cap the result is ERR_LIMIT and the caller may retry with cap = *n. add_bos
 * prepends BOS when the vocabulary's own default asks for one (tokenizer.ggml.add_bos_token);
 * special parses control-token text such as "<s>". */
int eng_tokenize(const struct eng_model *em, const char *text, size_t len, bool add_bos,
                 bool special, int32_t *out, size_t cap, size_t *n, struct err_info *ei);
/* The text of toks[0..n) as a streaming detokenizer prints it (complete UTF-8; control tokens
 * only with special). *out is malloc'd and NUL-terminated. An id outside the vocabulary is
 * ERR_RANGE, naming its index. */
int eng_detokenize(const struct eng_model *em, const int32_t *toks, size_t n, bool special,
                   char **out, size_t *len, struct err_info *ei);
/* A token's text exactly as the vocabulary stores it ("▁Once", "<0x7B>", "Ġworld"); "" with
 * *len 0 for an id outside the vocabulary. */
const char *eng_token_text(const struct eng_model *em, int32_t id, size_t *len);
/* The tokenizer kind: "llama", "gpt2" or "gemma4". */
const char *eng_tokenizer_name(const struct eng_model *em);

/* ================================ sessions ================================ */

/* A session owns a KV cache and the tokens in it; a new prompt reuses the longest common prefix
 * with them, so a conversation re-sent every turn is only processed from where it changed. */
struct eng_session;

/* The smallest context a session may have: one prompt token and one generated token (a
 * generation needs its prompt plus one position), so anything smaller could never generate. */
#define ENG_MIN_CTX 2u

/* n_ctx 0 or above the training context: the training context. A context (after that cap)
 * below ENG_MIN_CTX is ERR_RANGE. kv_type: enum eng_kv_type (ERR_INVALID for another value;
 * ERR_UNSUPPORTED, with the reason, when the model cannot run it). */
int eng_session_create_kv(struct eng_session **out, struct eng_model *em, uint32_t n_ctx, int kv_type,
                          struct err_info *ei);
/* eng_session_create_kv with an F32 cache (llama.cpp's reference type: conformance checks). */
int eng_session_create(struct eng_session **out, struct eng_model *em, uint32_t n_ctx,
                       struct err_info *ei);
int eng_session_kv_type(const struct eng_session *s);
void eng_session_free(struct eng_session *s); /* NULL-safe */
void eng_session_reset(struct eng_session *s); /* forget the cached tokens */
uint32_t eng_session_n_ctx(const struct eng_session *s);
uint32_t eng_session_n_tokens(const struct eng_session *s);

/* ---- snapshots: a session's cache in a file (protocol/SNAPSHOT.md) ----
 * Reuse rule, everywhere (prefix reuse, loads, the prompt cache): a prompt always evaluates at
 * least its last two tokens together, so its logits are computed exactly as a full evaluation
 * computes them (one batch path, whatever the split) and a restored prefix changes no output.
 * After a context shift only the positions before `keep` count as cached (model.h says why). */

/* Save the session's cached positions (at most n_tokens; after a shift, those before keep) to
 * path: a temporary file beside it, fsynced, renamed into place. *n_tokens and *bytes (may be
 * NULL) receive what was written. ERR_IO names the path and the reason; on any error the file at
 * path is as it was. */
int eng_session_save(struct eng_session *s, const char *path, uint32_t *n_tokens, uint64_t *bytes,
                     struct err_info *ei);
/* Load a snapshot into the session. Everything is checked before the session changes (model
 * fingerprint, KV type, shapes, context, token ids, the checksum over the whole file); any
 * refusal is ERR_SNAP_MODEL / ERR_SNAP_CORRUPT / ERR_SNAP_VERSION / ERR_SNAP_KV, or ERR_IO for a
 * path that is missing, unreadable, a directory, and the session is unchanged.
 * toks NULL: the session then holds exactly the snapshot's tokens (a next prompt reuses what it
 * shares with them). toks[0..n) given (the next prompt): only the common prefix is restored, at
 * most n - 1 positions; a snapshot that shares nothing with it is not read further and changes
 * nothing (*n_restored 0). *n_restored (may be NULL): positions now cached from the file. */
int eng_session_load(struct eng_session *s, const char *path, const int32_t *toks, size_t n,
                     uint32_t *n_restored, struct err_info *ei);

/* ---- the disk prompt cache (src/kv/kv.h: layout, lookups, eviction) ----
 * One per process, shared by its sessions (and by every process using the same directory).
 * A session with a cache: before a prompt is evaluated, when at least min_tokens of it are not
 * in the session's memory, the entry sharing the longest prefix with it is restored (counted in
 * cached_tokens); after it is evaluated, a prompt of at least min_tokens is kept as an entry
 * (unless an entry already covers all but fewer than min_tokens of it). A damaged entry is
 * removed and the prompt evaluated as if there were none: the cache never changes an output. */
#define ENG_PCACHE_MIN_DEFAULT 256u
#define ENG_PCACHE_MAX_DEFAULT ((uint64_t)1 << 30) /* 1 GiB */
struct eng_pcache;
int eng_pcache_open(struct eng_pcache **out, const char *dir, uint32_t min_tokens, uint64_t max_bytes,
                    struct err_info *ei);
void eng_pcache_free(struct eng_pcache *pc); /* NULL-safe; sessions using it must be gone */
struct eng_pcache_stats {
    const char *dir;
    uint32_t min_tokens;
    uint64_t max_bytes;
    uint64_t lookups, hits, misses; /* lookups made; those that restored an entry; the others */
    uint64_t hit_tokens;            /* positions restored */
    uint64_t stores, evictions, errors;
    uint64_t bytes_read, bytes_written;
    uint64_t entries, disk_bytes;   /* the directory at the last scan (after each store) */
};
void eng_pcache_stats(const struct eng_pcache *pc, struct eng_pcache_stats *out);
void eng_session_set_pcache(struct eng_session *s, struct eng_pcache *pc); /* NULL: none */

/* What a caller hears while eng works. Every member may be NULL. on_text gets each piece of
 * released text (complete UTF-8, stop strings held back) and the token that released it (-1
 * for a final flush); a nonzero return stops the generation (finish "cancelled").
 * on_progress hears prefill progress (positions evaluated of those not cached).
 * A chat's tool calls go to its options' on_tool (struct eng_chat_opts). */
typedef int (*eng_text_fn)(void *ud, const char *text, size_t len, int32_t token);
typedef void (*eng_progress_fn)(void *ud, uint32_t done, uint32_t total);
struct eng_sink {
    eng_text_fn on_text;
    eng_progress_fn on_progress;
    void *ud;
    const atomic_bool *cancel; /* checked before every step */
};

/* Make the cache hold exactly toks[0..n): keep the common prefix, evaluate the rest (at least
 * the last token, so logits exist). *n_cached (may be NULL) receives the tokens reused. This is
 * what bench times: a prefill from an empty cache, and decode steps as prefills one longer. */
int eng_prefill(struct eng_session *s, const int32_t *toks, size_t n, const struct eng_sink *sink,
                uint32_t *n_cached, struct err_info *ei);

/* Teacher-forced evaluation (`lmpipe eval`): evaluate toks[0..n) from an empty cache and call
 * on_logits with the logits after every position; a nonzero return stops and is returned. */
typedef int (*eng_logits_fn)(void *ud, uint32_t pos, int32_t token, const float *logits,
                             uint32_t n_vocab);
int eng_evaluate(struct eng_session *s, const int32_t *toks, size_t n, eng_logits_fn on_logits,
                 void *ud, struct err_info *ei);

/* ================================ seams ================================ */

/* ---- constraints ----
 * A constraint decides which tokens may come next (a grammar, a tool-call format). The loop
 * samples first and asks check() about the token it drew; only when that token is refused does
 * it ask mask() for the whole allowed set and draw again from those (most steps never build a
 * mask). End-of-generation tokens are ordinary ids to a constraint (VOCAB_EOG in the vocabulary
 * view): allowing one means "the text may end here". A step where nothing is allowed is
 * ERR_DEAD_END, never a loop. Prompt tokens are not shown to a constraint.
 *   check(self, tok)      1: allowed, 0: not, < 0: an error code
 *   mask(self, bits)      set bit i of bits[i / 64] for every allowed id (bits arrive zeroed,
 *                         (n_vocab + 63) / 64 words); 0 or an error code
 *   accept(self, tok)     tok is the next token of the text (sampled or forced); 0 or error
 *   forced(self, toks, cap, n)   optional: the next tokens are certain (only one id is possible
 *                         at each of the next *n steps): up to cap of them into toks. eng
 *                         accepts them without sampling and evaluates them as one batch.
 *   complete(self)        optional: 1 when the text is complete: the generation ends cleanly
 *                         (finish "stop") whatever the stop settings, ignore_eos included
 *   reset(self)           optional: back to the start (eng calls it when a generation begins)
 *   free(self)            optional: called by eng only for constraints a factory made */
struct eng_constraint_ops {
    int (*check)(void *self, int32_t tok);
    int (*mask)(void *self, uint64_t *bits);
    int (*accept)(void *self, int32_t tok);
    int (*forced)(void *self, int32_t *toks, size_t cap, size_t *n);
    int (*complete)(void *self);
    void (*reset)(void *self);
    void (*free)(void *self);
};
struct eng_constraint {
    const struct eng_constraint_ops *ops; /* NULL: no constraint */
    void *self;
};
/* Make a fresh constraint for one generation over the model's vocabulary view (out->ops NULL:
 * none this time). 0 or an error code (ei names the problem). */
typedef int (*eng_constraint_make_fn)(void *ud, const struct vocab_view *v,
                                      struct eng_constraint *out, struct err_info *ei);
/* A constraint for every generation that names none in its params: per model handle, or for
 * the whole process (models opened afterwards start with it). NULL make: none. Set these before
 * generating; they are not synchronised with running generations. */
void eng_model_set_default_constraint(struct eng_model *em, eng_constraint_make_fn make, void *ud);
void eng_set_default_constraint(eng_constraint_make_fn make, void *ud);

/* ---- grammars ----
 * A grammar constrains a generation's text to a language: GBNF (llama.cpp's syntax), a JSON
 * Schema (converted to GBNF), or the built-in JSON grammar (grammars/json.gbnf, OpenAI's
 * response_format json_object). A struct eng_grammar is compiled once and immutable: it may
 * serve any number of generations, on any model, from any thread. A generation that names one
 * (eng_gen_params.grammar) runs under a fresh constraint made from it over the model's vocabulary
 * (built once per model, on first use, and shared): end-of-generation tokens only where the
 * grammar may end, control tokens only where it names them, a completed grammar ends the text
 * (finish "stop", ignore_eos included), forced runs (one token possible at each step) are taken
 * without sampling and evaluated as one batch, and a step where no token fits is ERR_DEAD_END.
 *
 * Errors of the makers (ei says where and why): GBNF ERR_SYNTAX / ERR_LIMIT / ERR_NOT_FOUND /
 * ERR_DUPLICATE with "line L:C: reason"; a schema ERR_SYNTAX (not JSON: line, column), ERR_INVALID
 * (not a schema), ERR_UNSUPPORTED (the keywords it cannot honour, with their JSON pointers),
 * ERR_LIMIT. strict: OpenAI's strict mode, where an object that declares properties allows no
 * others unless it says so (additionalProperties false by default); otherwise the schema is read
 * as JSON Schema says. */
struct eng_grammar;
int eng_grammar_parse(struct eng_grammar **out, const char *gbnf, size_t len, struct err_info *ei);
int eng_grammar_from_schema(struct eng_grammar **out, const char *json, size_t len, bool strict,
                            struct err_info *ei);
int eng_grammar_from_schema_json(struct eng_grammar **out, const struct json_t *schema,
                                 bool strict, struct err_info *ei);
int eng_grammar_json(struct eng_grammar **out, struct err_info *ei); /* the built-in JSON */
void eng_grammar_free(struct eng_grammar *g); /* NULL-safe */
/* A JSON Schema as GBNF text (`lmpipe grammar convert`): *gbnf malloc'd, NUL-terminated. */
int eng_schema_to_gbnf(const char *json, size_t len, bool strict, char **gbnf, size_t *gbnf_len,
                       struct err_info *ei);
/* Does the grammar accept the whole text? 0 yes; ERR_REJECTED with ei->offset at the first byte
 * that cannot continue (len when the text ends too early) and "text line L:C: ...; expected ...";
 * ERR_LIMIT when the grammar's state explodes. */
int eng_grammar_check(const struct eng_grammar *g, const char *text, size_t len,
                      struct err_info *ei);
/* A constraint for one generation on em's vocabulary (what eng_generate makes from
 * eng_gen_params.grammar; for callers that combine constraints). out->ops->free releases it.
 * ERR_INVALID when the grammar names a token the vocabulary lacks (its line:column). */
int eng_grammar_constraint(struct eng_model *em, const struct eng_grammar *g,
                           struct eng_constraint *out, struct err_info *ei);

/* ---- session hooks ---- */
enum eng_ctx_event {
    ENG_CTX_PROMPT = 0, /* the prompt does not fit the context (need = the positions it needs,
                           one more than its tokens when it leaves no room to generate): only an
                           error can answer it (0 or ENG_HOOK_END end with ERR_CONTEXT too) */
    ENG_CTX_GENERATE,   /* generating: the context is full (need = 1 more position) */
};
#define ENG_HOOK_END 1 /* ctx_full: end the generation (finish "length") */
struct eng_hooks {
    /* The context cannot hold what comes next. Return 0 after making room (the session's
     * n_tokens must then have dropped, e.g. a shift), ENG_HOOK_END to end the generation, or a
     * negative error. NULL: eng_ctx_full_default. */
    int (*ctx_full)(void *ud, struct eng_session *s, int event, size_t need, struct err_info *ei);
    /* The prompt toks[0..n) is in the cache (n_cached of it was reused). Nonzero: an error that
     * ends the generation. NULL: nothing. */
    int (*after_prefill)(void *ud, struct eng_session *s, const int32_t *toks, size_t n,
                         uint32_t n_cached, struct err_info *ei);
    void *ud;
};
/* The default: a prompt that does not fit, and a context that fills up while generating, are
 * ERR_CONTEXT with a message that contains "context_length_exceeded" (the text generated until
 * then stays emitted). */
int eng_ctx_full_default(void *ud, struct eng_session *s, int event, size_t need,
                         struct err_info *ei);
/* Context shifting, as llama.cpp does it: a ctx_full hook (ud: a struct eng_ctx_shift) that,
 * when generating fills the context, keeps the first `keep` positions (BOS included), drops
 * n_discard = (n_past - keep) / 2 after them, moves the rest down and re-rotates their keys
 * (RoPE by -n_discard), and goes on. The kept cells still carry the dropped tokens in their
 * context, so afterwards only positions < keep count as cached. A prompt that does not fit is
 * still an error; keep >= n_past - 1 leaves nothing to drop: ERR_CONTEXT. */
struct eng_ctx_shift {
    uint32_t keep;
};
int eng_ctx_full_shift(void *ud, struct eng_session *s, int event, size_t need, struct err_info *ei);
void eng_session_set_hooks(struct eng_session *s, const struct eng_hooks *h); /* NULL: none */

/* ================================ generation ================================ */

#define ENG_MAX_STOPS 8      /* caller stop strings per generation */
#define ENG_MAX_STOP_LEN 256 /* bytes per stop string */

struct eng_gen_params {
    struct samp_params samp;
    int32_t max_tokens;        /* < 0: until the end of generation or a full context */
    const char *const *stop;   /* stop strings (the match is not emitted), n_stop of them */
    size_t n_stop;
    bool add_bos;              /* as the vocabulary's default says (see eng_tokenize) */
    bool parse_special;        /* control-token text in the prompt is parsed */
    bool ignore_eos;           /* end-of-generation tokens are text */
    const struct eng_constraint *constraint; /* borrowed; NULL: the model's default, if any */
    const struct eng_grammar *grammar; /* borrowed; the text must match it (not with constraint) */
    bool no_forced;            /* a constraint's forced runs are sampled token by token instead
                                  (benchmarks measure what the runs save) */
};
/* Defaults: samp_params_default, max_tokens -1, add_bos true, no stops, no constraint or grammar. */
void eng_gen_params_default(struct eng_gen_params *p);
/* Every range at once (sampling ranges, bias ids < n_vocab, stop strings, a grammar's token
 * references against the vocabulary): ERR_INVALID naming the field. eng_generate and eng_chat check too; front ends call this to tell a caller's
 * mistake from a failure. */
int eng_gen_params_check(const struct eng_model *em, const struct eng_gen_params *p,
                         struct err_info *ei);

enum eng_finish {
    ENG_FINISH_STOP = 0,
    ENG_FINISH_LENGTH,
    ENG_FINISH_CANCELLED,
    ENG_FINISH_ERROR,
    ENG_FINISH_TOOL_CALLS, /* a chat reply ended after complete tool calls */
};
const char *eng_finish_name(int f); /* "stop", "length", "cancelled", "error", "tool_calls" */

struct eng_gen_result {
    int finish;
    uint32_t prompt_tokens, cached_tokens, completion_tokens;
    uint32_t forced_tokens; /* of the completion tokens, those a constraint forced */
    double prefill_ms, decode_ms;
    uint32_t context_shifts; /* context shifts made (eng_ctx_full_shift) */
    double decode_cpu_ms;   /* the process's CPU time while decoding (steadier than decode_ms on a
                               busy machine: time spent waiting for a core is not in it) */
    double constraint_ms;   /* of decode_ms, the time a constraint took: its operations, the
                               logits copy and the redraw from its mask */
};

/* Generate a continuation of raw text prompt[0..len). Returns 0 when the generation ran (also
 * when it was cancelled: res->finish says so) or an error (res->finish "error"; text emitted
 * before it stays emitted). */
int eng_generate(struct eng_session *s, const char *prompt, size_t len,
                 const struct eng_gen_params *p, const struct eng_sink *sink,
                 struct eng_gen_result *res, struct err_info *ei);

/* ================================ chat ================================ */

/* How a conversation becomes a prompt. A model's chat template is the Jinja source in its
 * tokenizer.chat_template; eng parses it once when the model is opened (and
 * tokenizer.chat_template.tool_use when present), probes what it accepts (system role, content
 * parts, tool calls, object arguments, parallel calls) and derives its end-of-turn text: the
 * marker that follows an assistant reply when [user "X", assistant "Y"] is rendered without a
 * generation prompt (e.g. "<|im_end|>", "<|eot_id|>", "<|end|>"), whitespace trimmed, cut at
 * the first whitespace (a marker that opens with '<' or '[' at its closing bracket),
 * 2..ENG_EOT_MAX bytes and not only letters and digits. A template that
 * does not parse falls back to the built-in family its text is recognised as (chatml when none
 * is); a file without a template renders with chatml. eng_model_info().chat says which.
 *
 * A Jinja render gets what transformers' apply_chat_template passes: messages, tools (null when
 * absent), documents, add_generation_prompt, bos_token / eos_token (the vocabulary's token
 * texts, unset when the vocabulary has none), every key of the request's chat_template_kwargs
 * (they win), strftime_now from the clock (SOURCE_DATE_EPOCH, seconds, pins it, in UTC). Before
 * that, the conversation is fixed the way llama.cpp fixes it for such templates:
 *   - role "developer" becomes "system" (not for templates containing "<|channel|>", GPT-OSS);
 *   - no system role: a leading system message is folded into the next message ("\n" between);
 *   - templates that render tool calls: content "" on tool-call messages without content;
 *   - tool-call arguments as objects when the template renders object arguments, else as the
 *     JSON string OpenAI sends (either form is accepted in the request);
 *   - content parts joined into a string ("\n" between) for templates that do not take parts
 *     (a string becomes one part for a template that only takes parts), before the fold;
 *   - the tool_use variant renders only requests with tools;
 *   - parallel_tool_calls defaults to whether the template renders parallel calls.
 * A conversation the template still refuses is ERR_TEMPLATE with its own message
 * ("TemplateError: System role not supported (line 1, column 30)"), as is a render that hits a
 * bound (steps, memory, output, nesting): an untrusted template fails only that request. */

/* Which template renders a conversation. */
enum eng_tmpl_kind {
    ENG_TMPL_MODEL = 0, /* the model's own (above; or the one eng_model_set_chat_template set) */
    ENG_TMPL_BUILTIN,   /* a built-in template by name (eng_chat_template_name) */
};
/* A chat's tool calls as they are generated (a request with "tools"): a call BEGINs once its
 * name is complete, its arguments' JSON text streams in ARGS pieces, and END comes once the
 * arguments are complete and validated against the tool's schema, with all of them. The reply's
 * text (the sink's on_text) is only what came before the calls. A nonzero return stops the
 * generation (finish "cancelled"). */
#define ENG_MAX_TOOL_CALLS 16 /* calls in one reply */
enum eng_tool_ev { ENG_TOOL_BEGIN = 0, ENG_TOOL_ARGS, ENG_TOOL_END };
struct eng_tool_event {
    int kind;         /* enum eng_tool_ev */
    uint32_t index;   /* the call's index in the reply: 0, 1, ... */
    const char *id;   /* the call's id, unique in the process ("call_..."; Mistral: 9 of
                         [A-Za-z0-9]) */
    const char *name; /* the tool */
    const char *text; /* ARGS: the next piece of the arguments' JSON text; END: all of it */
    size_t len;
};
typedef int (*eng_tool_fn)(void *ud, const struct eng_tool_event *ev);

struct eng_chat_opts {
    int kind;                   /* enum eng_tmpl_kind */
    const char *name;           /* ENG_TMPL_BUILTIN */
    bool add_generation_prompt; /* open the assistant's turn (default true) */
    eng_tool_fn on_tool;        /* tool calls (NULL: not heard; they still end the reply) */
    void *tool_ud;
};
void eng_chat_opts_default(struct eng_chat_opts *o);
/* ERR_INVALID when the options name no template ("... is not a built-in template name"). */
int eng_chat_opts_check(const struct eng_chat_opts *o, struct err_info *ei);
size_t eng_chat_template_count(void);
const char *eng_chat_template_name(size_t i); /* NULL past the end */

#define ENG_MAX_MESSAGES 4096
#define ENG_MAX_TOOLS 1024
/* Validate a chat request without a model: an object whose "messages" is a non-empty array
 * (at most ENG_MAX_MESSAGES) of {role: non-empty string, content: string, null or an array of
 * {"type": "text", "text": string} parts, tool_calls?: [{function: {name: string, arguments:
 * a JSON string or an object}}]}; "tools" absent, null or an array (at most ENG_MAX_TOOLS) of
 * {type: "function", function: {name, description?, parameters?}} with valid, distinct names
 * and parameters the schema converter can enforce; "tool_choice" absent, null, "auto", "none",
 * "required" (with tools) or {"type": "function", "function": {"name": a declared tool}};
 * "parallel_tool_calls" and "add_generation_prompt" booleans; "documents" an array;
 * "chat_template_kwargs" an object. ERR_INVALID names the field and says why. */
int eng_chat_check(const struct json_t *request, struct err_info *ei);

/* A rendered conversation: the prompt text and how to generate from it. */
#define ENG_MAX_TMPL_STOPS 2
struct eng_prompt {
    char *text; /* malloc'd, NUL-terminated, len bytes */
    size_t len;
    /* end-of-turn texts of the template (static, or owned by the model: valid until it is
     * freed or its template replaced) */
    const char *stops[ENG_MAX_TMPL_STOPS];
    size_t n_stops;
    const char *tmpl;  /* the template used: a built-in name, "tokenizer.chat_template",
                          "tokenizer.chat_template.tool_use" or the name given to
                          eng_model_set_chat_template (owned like stops) */
    bool jinja;        /* rendered by a Jinja template */
    bool fallback;     /* the model's template was not recognised: chatml */
    bool bos_in_text;  /* the text starts with the BOS token's text (a Jinja template wrote it):
                          generation adds no second BOS */
    bool parallel_tool_calls; /* the request's, else what the template renders */
};
/* Render `request` (as eng_chat_check accepts) with the template o (NULL: defaults) chooses.
 * Tools, tool calls and tool results a template does not show are written into the
 * conversation in the model's call syntax (eng_trun_rewrite); a built-in template cannot render
 * documents (ERR_UNSUPPORTED) and ignores chat_template_kwargs. */
int eng_chat_render(const struct eng_model *em, const struct json_t *request,
                    const struct eng_chat_opts *o, struct eng_prompt *out, struct err_info *ei);
void eng_prompt_free(struct eng_prompt *p); /* safe on zeroed */

/* Render with a Jinja template of the caller's instead of the file's, for every chat of this
 * model from now on (`--chat-template-file`): parsed, probed and its end-of-turn text derived
 * here. name (may be NULL) is what eng_model_info and eng_prompt.tmpl call it. A template that
 * does not parse is ERR_SYNTAX (or ERR_UNSUPPORTED, ERR_UTF8, ERR_LIMIT) with "line L, column
 * C: ..." and leaves the model as it was. Not synchronised with running chats. */
int eng_model_set_chat_template(struct eng_model *em, const char *src, size_t len,
                                const char *name, struct err_info *ei);

/* ---- a Jinja template on its own (`lmpipe template render`, checking a file early) ---- */
struct eng_template;
/* Parse src[0..len): errors as eng_model_set_chat_template's. */
int eng_template_parse(const char *src, size_t len, struct eng_template **out,
                       struct err_info *ei);
void eng_template_free(struct eng_template *t); /* NULL-safe */
/* Render with the variables of the JSON object request[0..len): messages, tools, documents,
 * add_generation_prompt (default false, as transformers), chat_template_kwargs, and every other
 * top-level key as a variable of its own (bos_token, ...). No fixes, no model: the raw renderer,
 * for debugging templates. *out is malloc'd and NUL-terminated (the text itself may hold NUL
 * bytes: *out_len counts). ERR_INVALID when the request is not such an object (JSON errors say
 * line and column), ERR_TEMPLATE when the template refuses it or fails, ERR_LIMIT at a bound. */
int eng_template_render(const struct eng_template *t, const char *request, size_t len, char **out,
                        size_t *out_len, struct err_info *ei);

/* The chat: render, then generate with the template's markers parsed as special tokens and
 * its end-of-turn texts as extra stop strings. The one chat behaviour of every front end. */
int eng_chat(struct eng_session *s, const struct json_t *request, const struct eng_chat_opts *o,
             const struct eng_gen_params *p, const struct eng_sink *sink,
             struct eng_gen_result *res, struct err_info *ei);

/* A conversation kept by eng for front ends that do not speak JSON (the interactive chat):
 * messages are added and dropped at the end; request() is the chat request they make. */
struct eng_conv;
int eng_conv_create(struct eng_conv **out);
void eng_conv_free(struct eng_conv *c); /* NULL-safe */
int eng_conv_add(struct eng_conv *c, const char *role, const char *text, size_t len);
size_t eng_conv_len(const struct eng_conv *c);
void eng_conv_truncate(struct eng_conv *c, size_t n); /* keep the first n messages */
const struct json_t *eng_conv_request(const struct eng_conv *c);
/* Tools for every turn: json[0..len) is a JSON array of OpenAI tools (or an object whose "tools"
 * is one), tool_choice "auto", "none", "required" or a tool's name (NULL: auto). Checked as
 * eng_chat_check checks a request's: ERR_INVALID (or ERR_SYNTAX for text that is not JSON, with
 * line and column) says what is wrong, and the conversation is left as it was. */
int eng_conv_set_tools(struct eng_conv *c, const char *json, size_t len, const char *tool_choice,
                       struct err_info *ei);
/* A call the assistant made (from ENG_TOOL_END): added to the last message when it is the
 * assistant's, else to a new assistant message. args[0..len) is its arguments' JSON text. */
int eng_conv_add_call(struct eng_conv *c, const char *id, const char *name, const char *args,
                      size_t len);
/* The id of the oldest call of the last assistant message without a "tool" result after it, or
 * NULL. */
const char *eng_conv_pending_call(const struct eng_conv *c);
/* A tool's result for call id (a "tool" message). */
int eng_conv_add_tool_result(struct eng_conv *c, const char *id, const char *text, size_t len);
/* One call as the text of OpenAI's object {"id", "type": "function", "function": {"name",
 * "arguments": "<its JSON text as a string>"}} (malloc'd, NUL-terminated), or NULL. */
char *eng_tool_call_json(const char *id, const char *name, const char *args, size_t len);
/* The conversation as JSON text {"messages": [...]} (malloc'd, NUL-terminated), and back:
 * eng_conv_parse checks text as eng_chat_check does (ERR_INVALID / ERR_UNSUPPORTED naming the
 * problem) and only then replaces c's messages. What `lmpipe chat` keeps beside a snapshot. */
int eng_conv_dump(const struct eng_conv *c, char **text, size_t *len);
int eng_conv_parse(struct eng_conv *c, const char *text, size_t len, struct err_info *ei);

#endif
