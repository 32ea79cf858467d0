/* err: the one list of error codes and the error-info struct every parser fills.
 *
 * Every function in lmpipe returns 0 on success or a negative code from ERR_LIST. Parsers also
 * take an optional `struct err_info *` (may be NULL): code, byte offset into the input where the
 * problem was found, and a human message saying what, where and why. The first error wins:
 * err_set() does not overwrite an error already recorded, so a low-level message is not lost
 * when a caller fails in turn. */
#ifndef LMPIPE_UTIL_ERR_H
#define LMPIPE_UTIL_ERR_H

#include <stddef.h>
#include <stdint.h>

/* X(name, value, kind-string, description) */
#define ERR_LIST(X)                                                          \
    X(ERR_OK, 0, "ok", "no error")                                           \
    X(ERR_NOMEM, -1, "out_of_memory", "out of memory")                       \
    X(ERR_IO, -2, "io_error", "input/output error")                          \
    X(ERR_TRUNCATED, -3, "truncated", "input ends too early")                \
    X(ERR_BAD_MAGIC, -4, "bad_magic", "not a GGUF file")                     \
    X(ERR_VERSION, -5, "bad_version", "unsupported format version")          \
    X(ERR_LIMIT, -6, "limit_exceeded", "a count or size exceeds a limit")    \
    X(ERR_OVERFLOW, -7, "overflow", "size arithmetic overflows")             \
    X(ERR_BAD_TYPE, -8, "bad_type", "unknown or unexpected type")            \
    X(ERR_DUPLICATE, -9, "duplicate", "duplicate name")                      \
    X(ERR_RANGE, -10, "out_of_range", "offset or value out of range")        \
    X(ERR_ALIGN, -11, "misaligned", "data not aligned")                      \
    X(ERR_NOT_FOUND, -12, "not_found", "required item missing")              \
    X(ERR_SHAPE, -13, "bad_shape", "tensor shape or hyperparameter mismatch") \
    X(ERR_UNSUPPORTED, -14, "unsupported", "not supported")                  \
    X(ERR_INVALID, -15, "invalid_argument", "invalid argument")              \
    X(ERR_CONTEXT, -16, "context_length_exceeded", "context length exceeded") \
    X(ERR_UTF8, -17, "bad_utf8", "invalid UTF-8")                            \
    X(ERR_CANCELLED, -18, "cancelled", "cancelled")                          \
    X(ERR_BUSY, -19, "overloaded", "busy or queue full")                     \
    X(ERR_STATE, -20, "bad_state", "operation not valid in this state")      \
    X(ERR_SYNTAX, -21, "syntax_error", "syntax error")                       \
    X(ERR_CHECKSUM, -22, "checksum_mismatch", "checksum mismatch")                 \
    X(ERR_DEAD_END, -23, "constraint_dead_end", "no token is allowed by the constraint") \
    X(ERR_REJECTED, -24, "rejected", "rejected by the grammar")                    \
    X(ERR_TEMPLATE, -25, "template_error", "the chat template refused the input or failed") \
    X(ERR_SNAP_MODEL, -26, "snapshot_model_mismatch", "snapshot is of another model") \
    X(ERR_SNAP_CORRUPT, -27, "snapshot_corrupt", "snapshot damaged or not a snapshot") \
    X(ERR_SNAP_VERSION, -28, "snapshot_version", "snapshot format version not supported") \
    X(ERR_SNAP_KV, -29, "snapshot_kv_mismatch", "snapshot KV cache does not fit this session") \
    X(ERR_NONFINITE, -30, "non_finite_logits", "the model computed logits that are NaN or infinite") \
    X(ERR_NONFINITE_WEIGHTS, -31, "non_finite_weights", "the model file stores NaN or infinite weights")

enum err_code {
#define ERR_ENUM_(name, val, kind, desc) name = val,
    ERR_LIST(ERR_ENUM_)
#undef ERR_ENUM_
    ERR_MIN_ = -31
};

#define ERR_MSG_MAX 256

struct err_info {
    int code;           /* 0 while no error has been recorded */
    uint64_t offset;    /* byte offset into the input, or UINT64_MAX when not about a byte */
    char msg[ERR_MSG_MAX];
};

#define ERR_NO_OFFSET UINT64_MAX

/* Record an error (first one wins) and return `code` so callers can `return err_set(...)`. */
int err_set(struct err_info *ei, int code, uint64_t offset, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
void err_clear(struct err_info *ei);
/* Stable short identifier, e.g. "truncated"; "unknown" for codes outside the list. */
const char *err_kind(int code);
/* One-line description of the code. */
const char *err_str(int code);
/* "msg (at byte N)" or just the description when ei is empty; writes into buf, returns buf. */
const char *err_format(const struct err_info *ei, int code, char *buf, size_t len);

#endif
