/* rpc_int: the parts of the protocol server shared by its files (not for use outside src/rpc/).
 *
 * One struct rpc_server holds everything. Three kinds of code touch it, and each field below is
 * marked with who may:
 *   [loop]   the thread that reads stdin and writes stdout (the libuv loop in `serve`, the main
 *            thread in `batch` and in the fuzz harness): dispatch, responses, the active-request
 *            list, cancel flags.
 *   [worker] the one inference thread: the loaded model and every eng_session. Nothing else ever
 *            calls into eng, so eng needs no locks.
 *   [mu]     shared, only under s->mu: the job queue, the event queue, the session registry,
 *            model metadata, counters, outbound byte accounting.
 * In inline mode (batch, fuzz) there is no worker thread: a submitted job runs at once on the
 * calling thread and its events are handled before rpc_submit returns.
 *
 * JSON values (jansson) are never shared between threads: the loop parses params into plain C
 * fields of a struct rpc_job (a chat's request is a deep copy the job owns, handed to the worker
 * with the job and read only by it until DONE), the worker fills plain C results, the loop turns
 * them back into JSON.
 *
 * Files, and who calls whom (no cycles): rpc_serve.c and rpc_batch.c (transports) → rpc_core.c
 * (the protocol) → rpc_req.c (params → job) and rpc_exec.c (jobs against eng) → rpc_json.c
 * (encoding, error shapes) and rpc_lines.c. The worker hands events back through s->deliver. */
#ifndef LMPIPE_RPC_RPC_INT_H
#define LMPIPE_RPC_RPC_INT_H

#include "rpc.h"

#include "../eng/eng.h"
#include "../util/err.h"
#include "../util/version.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define RPC_SERVER_NAME "lmpipe"
#define RPC_SERVER_VERSION LMPIPE_VERSION
#define RPC_PROTOCOL_VERSION "lmpipe/0.1"

#define RPC_LINE_IN_DEFAULT ((size_t)8 << 20) /* inbound line limit (--max-line) */
#define RPC_LINE_IN_MIN ((size_t)1024)
#define RPC_LINE_OUT_MAX ((size_t)60 * 1024) /* every line we write, '\n' included */
#define RPC_DELTA_MAX 8000   /* raw text bytes per gen/delta: ≤ 6x escaping stays < 48 KiB */
#define RPC_ID_MAX 256       /* longest string id accepted (ids are echoed in every reply) */
#define RPC_MAX_SESSIONS 64
#define RPC_SESSION_ID_MAX 24
#define RPC_QUEUE_DEFAULT 16
#define RPC_WRITE_LIMIT_DEFAULT ((size_t)256 * 1024) /* outbound bytes before the worker waits */
#define RPC_MAX_BIAS 4096
#define RPC_MAX_MESSAGES 4096
#define RPC_DEFAULT_CTX 4096 /* default session context, capped at the model's own */

/* JSON-RPC error codes of the protocol itself and their data.kind (protocol/PROTOCOL.md,
 * "Errors"). X(name, code, kind). Engine errors are answered RPC_E_ENGINE_BASE + ERR_x with the
 * engine's own kind (err_kind). */
#define RPC_ERR_LIST(X)                                     \
    X(RPC_E_PARSE, -32700, "parse_error")                   \
    X(RPC_E_INVALID_REQUEST, -32600, "invalid_request")     \
    X(RPC_E_METHOD, -32601, "method_not_found")             \
    X(RPC_E_PARAMS, -32602, "invalid_params")               \
    X(RPC_E_INTERNAL, -32603, "internal_error")             \
    X(RPC_E_CANCELLED, -32800, "cancelled")                 \
    X(RPC_E_NOT_INITIALIZED, -32002, "not_initialized")

enum {
#define RPC_ERR_ENUM_(name, code, kind) name = code,
    RPC_ERR_LIST(RPC_ERR_ENUM_)
#undef RPC_ERR_ENUM_
    RPC_E_ENGINE_BASE = -32050 /* engine error ERR_x (negative) answers RPC_E_ENGINE_BASE + ERR_x */
};

enum rpc_method {
    RPC_M_GENERATE = 0,
    RPC_M_CHAT,
    RPC_M_TOKENIZE,
    RPC_M_DETOKENIZE,
    RPC_M_LOAD,
    RPC_M_UNLOAD,
    RPC_M_SESSION_CREATE,
    RPC_M_SESSION_CLOSE,
    RPC_M_SESSION_SAVE,
    RPC_M_SESSION_LOAD,
    RPC_M_CHAT_RENDER,
};

/* A failure to answer: JSON-RPC code, data.kind, data.retryable and the message. */
struct rpc_fail {
    int code;         /* JSON-RPC code */
    const char *kind; /* stable data.kind */
    bool retryable;
    char msg[320];
};

/* Growable byte buffer (the generated text of one request). */
struct rpc_buf {
    char *p;
    size_t len, cap;
};
int rpc_buf_add(struct rpc_buf *b, const char *s, size_t n); /* 0 or ERR_NOMEM */
void rpc_buf_free(struct rpc_buf *b);

struct rpc_job {
    struct rpc_job *next;        /* [mu] job queue link */
    struct rpc_job *active_next; /* [loop] active list link */
    int method;                  /* enum rpc_method */
    json_t *id;                  /* [loop] the request id (own reference) */
    atomic_bool cancel;          /* set by the loop, read by the worker */
    char session[RPC_SESSION_ID_MAX]; /* "" = the anonymous session */
    bool stream, return_tokens;

    /* generate / chat */
    char *prompt; /* NUL-terminated, prompt_len bytes */
    size_t prompt_len;
    struct eng_gen_params gp;
    char *stops[ENG_MAX_STOPS];
    struct samp_bias *bias;
    struct eng_grammar *grammar; /* compiled by the loop, read by the worker (gp.grammar) */
    /* chat: the request (a deep copy of the params, owned) and the template choice */
    json_t *chat;
    struct eng_chat_opts copts;
    char tmpl_name[64];
    /* tokenize / detokenize */
    bool add_bos, special;
    int32_t *toks; /* detokenize input, tokenize output */
    size_t n_toks;
    /* model/load, session/create, session/save, session/load */
    char *path;
    uint32_t n_ctx;
    int threads;
    int kv_type; /* session/create: -1 for the server's default */
    bool check;  /* model/load: scan the weights for NaN/inf first (result or error in chk) */
    struct eng_check chk;
    /* generate / chat: context_shift {keep} (the session's ctx_full hook while the job runs) */
    bool shift;
    struct eng_ctx_shift shift_arg;

    /* results, written by the worker, read by the loop after RPC_EV_DONE */
    int rc;
    struct { /* chat/render: what rendered it (the text is in out, its token count in n_toks) */
        char tmpl[256];
        bool jinja;
        char stop[ENG_MAX_TMPL_STOPS][ENG_MAX_STOP_LEN + 1];
        size_t n_stop;
    } render;
    bool params_error; /* rc is about the request's params: answer -32602 */
    struct err_info ei;
    struct eng_gen_result res;
    struct rpc_buf out; /* generated text, or detokenized text */
    uint32_t n_ctx_out; /* session/create: n_ctx; save, load: tokens */
    uint64_t bytes_out; /* session/save: bytes written */
    /* chat: the reply's tool calls; id and name are written once, when the call begins (before
     * its first RPC_EV_TOOL), args when it ends (validated) */
    struct rpc_call {
        char id[32];
        char name[72];
        struct rpc_buf args;
        bool done;
    } calls[ENG_MAX_TOOL_CALLS];
    uint32_t n_calls;
    /* [worker] streaming state */
    double last_progress;
    uint32_t n_deltas; /* [loop] gen/delta notifications sent */
    uint32_t n_tool_notes; /* [loop] gen/tool_call notifications sent */
};

enum rpc_ev_kind {
    RPC_EV_DELTA = 0,
    RPC_EV_PROGRESS,
    RPC_EV_MODEL_PROGRESS,
    RPC_EV_DONE,
    RPC_EV_EXIT,
    RPC_EV_TOOL, /* a tool call's piece: a = call index, text = arguments piece (owned) */
};

struct rpc_event {
    struct rpc_event *next;
    int kind;
    struct rpc_job *job;
    char *text; /* DELTA, TOOL: owned copy; MODEL_PROGRESS: stage name (static) */
    size_t len;
    int32_t token;
    uint64_t a, b; /* PROGRESS: processed, total */
    size_t acct;   /* bytes counted in out_pending for this event */
};

struct rpc_sess {
    bool used;    /* [mu] slot in use */
    bool ready;   /* [mu] es initialised (set by the worker) */
    bool closing; /* [mu] session/close accepted: new requests do not see it */
    bool busy;    /* [mu] a generate/chat for it is queued or running */
    char id[RPC_SESSION_ID_MAX];
    uint32_t n_ctx_req, n_ctx, n_tokens; /* [mu] */
    int kv_type;                         /* [mu] set when ready */
    struct eng_session *es;              /* [worker] */
};

struct rpc_model_meta {
    bool loaded;
    struct eng_model_info info; /* info.n_ctx: the context of new sessions */
};

struct rpc_counters {
    uint64_t requests, errors, cancelled, lines_in, bad_lines;
    uint64_t prompt_tokens, completion_tokens, cached_tokens; /* [mu] */
};

struct rpc_server;
/* Write one complete line (ownership of `line`, malloc'd, passes to the sink). The sink calls
 * rpc_written(s, len) once the bytes are gone (at once for synchronous sinks). Returns 0 or a
 * negative code (the line is freed either way). */
typedef int (*rpc_write_fn)(struct rpc_server *s, char *line, size_t len);

struct rpc_config {
    size_t max_line_in;
    size_t max_line_out; /* SIZE_MAX: no limit (batch output files) */
    size_t queue_max;
    size_t write_limit;
    bool inline_exec; /* run jobs on the calling thread (batch, fuzz) */
    bool allow_files; /* model/load, model/unload, session/save, session/load permitted (off in
                       * the fuzz harness: a fuzzed request must not read or write any path) */
    bool batch;       /* batch mode: no sessions, no streaming, already initialised */
    uint32_t n_ctx;   /* default session context (0: min(model, RPC_DEFAULT_CTX)) */
    int threads;
    int kv_type;      /* KV cache type of sessions that name none (enum eng_kv_type) */
    struct rpc_chat_template chat_template; /* replaces each loaded model's own (src NULL: not) */
};

struct rpc_server {
    struct rpc_config cfg;
    rpc_write_fn write_line;
    void *sink_ud;
    void (*wake)(struct rpc_server *s); /* serve: uv_async_send */
    /* Inline mode: where the worker's events go at once (rpc_core's rpc_handle_event). */
    void (*deliver)(struct rpc_server *s, struct rpc_event *ev);
    void (*on_stop)(struct rpc_server *s); /* serve: begin the shutdown sequence */

    /* [loop] */
    bool initialized, client_ready, stopping;
    struct rpc_job *active;
    uint64_t next_session;
    double t_start;
    char client_name[64];

    /* [mu] */
    uv_mutex_t mu;
    uv_cond_t job_cv, space_cv;
    bool mu_ok;
    struct rpc_job *q_head, *q_tail;
    size_t q_len;
    struct rpc_event *ev_head, *ev_tail;
    size_t out_pending, out_peak;
    uint64_t bp_waits;
    bool quit;  /* the worker exits once its queue is empty */
    bool hurry; /* shutting down: the worker no longer waits for output space */
    struct rpc_job *running;
    struct rpc_sess sessions[RPC_MAX_SESSIONS];
    struct rpc_model_meta meta;
    struct rpc_counters n;
    bool has_pcache;
    struct eng_pcache_stats pcache_stats; /* copied from the worker's after every job */

    /* [worker] */
    struct eng_model *em;
    struct eng_session *anon; /* requests without a session, created on first use */
    struct eng_pcache *pcache; /* the disk prompt cache every session uses, or NULL (freed last) */
};

/* ---- rpc_lines.c: bounded line splitter ---- */
struct rpc_lines {
    char *buf;
    size_t len, cap, max;
    bool discarding;  /* inside a line longer than max: drop bytes up to its newline */
    size_t discarded; /* bytes of that line so far */
};
/* Called with each complete line (without '\n' and one trailing '\r'), or with line NULL and
 * len = its length when the line was longer than the limit. */
typedef void (*rpc_line_fn)(void *ud, const char *line, size_t len);
void rpc_lines_init(struct rpc_lines *l, size_t max);
void rpc_lines_free(struct rpc_lines *l);
/* Out of memory for a line makes it an overlong line (dropped and reported). */
void rpc_lines_feed(struct rpc_lines *l, const char *data, size_t n, rpc_line_fn fn, void *ud);
/* End of input: a last line without '\n' is delivered too. */
void rpc_lines_finish(struct rpc_lines *l, rpc_line_fn fn, void *ud);

/* ---- rpc_json.c: output encoding and error objects ---- */
/* Serialise compactly, escape U+2028, U+2029, U+0085, append '\n' (and a NUL not counted in
 * *len). NULL on failure. */
char *rpc_json_line(const json_t *msg, size_t *len);
/* A JSON string from bytes, invalid UTF-8 sequences replaced by U+FFFD. */
json_t *rpc_json_text(const char *s, size_t n);
/* Bytes s[0..n) takes inside a JSON string after escaping (ours and jansson's). */
size_t rpc_json_escaped_len(const char *s, size_t n);
/* Longest prefix of s[0..n), ending on a character boundary, whose escaped length <= budget. */
size_t rpc_text_fit(const char *s, size_t n, size_t budget);
/* Parse one inbound line with jansson's flags. When the only fault is integers outside 64 bits,
 * returns the document with each of them read as a real and *big_at = the first one's byte
 * offset; otherwise *big_at = SIZE_MAX, and NULL with jerr filled when the line is not JSON. */
json_t *rpc_json_parse(const char *line, size_t len, size_t flags, json_error_t *jerr, size_t *big_at);
/* Fill f. code: a protocol code (RPC_ERR_LIST), or 0 for RPC_E_ENGINE_BASE + err. err: an
 * engine error whose kind and retryability the answer carries, or 0 for the protocol code's
 * kind (not retryable). Returns err if set, else ERR_INVALID, so parsers can return it. */
int rpc_fail_set(struct rpc_fail *f, int code, int err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* {"code", "message", "data": {"kind", "retryable", ...extra}}; steals `extra` (may be NULL). */
json_t *rpc_error_obj(const struct rpc_fail *f, json_t *extra);
json_t *rpc_msg_result(json_t *id, json_t *result);   /* borrows id, steals result */
json_t *rpc_msg_error(json_t *id, json_t *error);     /* id NULL → null; steals error */
json_t *rpc_msg_notify(const char *method, json_t *params); /* steals params */
/* The protocol's kind for one of its codes ("internal_error" for others). */
const char *rpc_code_kind(int code);
/* JSON-RPC code and retryability for an engine error code. */
int rpc_engine_code(int err);
bool rpc_err_retryable(int err);

/* ---- rpc_req.c: params → job ---- */
/* Fill a job from the params of `method` (enum rpc_method). 0, or an error code with f filled. */
int rpc_req_parse(struct rpc_server *s, int method, json_t *params, struct rpc_job *job,
                  struct rpc_fail *f);
struct rpc_job *rpc_job_new(int method);
void rpc_job_free(struct rpc_job *job);

/* ---- rpc_core.c: dispatch and responses (loop side) ---- */
int rpc_server_init(struct rpc_server *s, const struct rpc_config *cfg);
void rpc_server_free(struct rpc_server *s); /* joins nothing: the worker must be gone */
void rpc_handle_line(void *ud, const char *line, size_t len); /* an rpc_line_fn */
/* 0 when the message was handled normally, else the error it was answered with. */
int rpc_handle_message(struct rpc_server *s, json_t *msg);
void rpc_handle_event(struct rpc_server *s, struct rpc_event *ev); /* takes ownership */
/* serve: the uv_async callback's work. True when the worker has posted its exit. */
bool rpc_drain_events(struct rpc_server *s);
void rpc_emit(struct rpc_server *s, json_t *msg); /* steals msg */
void rpc_written(struct rpc_server *s, size_t len);
void rpc_cancel_all(struct rpc_server *s);

/* ---- rpc_exec.c: jobs (worker side) ---- */
void rpc_exec_job(struct rpc_server *s, struct rpc_job *job); /* ends by posting RPC_EV_DONE */
void rpc_worker_main(void *arg);                               /* uv_thread entry, arg = s */
/* Load a model synchronously on the calling thread (serve -m, batch -m). */
int rpc_exec_load(struct rpc_server *s, const char *path, uint32_t n_ctx, int threads,
                  struct err_info *ei);
/* The context of new sessions: n_ctx, else cfg.n_ctx, else RPC_DEFAULT_CTX, within the model's. */
uint32_t rpc_session_ctx(const struct rpc_server *s, const struct eng_model *em, uint32_t n_ctx);
void rpc_exec_free_all(struct rpc_server *s); /* model + every session ([worker] or no worker) */
void rpc_exec_drop_sessions(struct rpc_server *s); /* every session, the model stays */
/* Open the disk prompt cache (serve / batch start-up, before the worker runs). */
int rpc_exec_pcache(struct rpc_server *s, const char *dir, uint32_t min_tokens, uint64_t max_bytes,
                    struct err_info *ei);

#endif
