/* err: code table lookups and first-error-wins recording. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int err_set(struct err_info *ei, int code, uint64_t offset, const char *fmt, ...)
{
    if (ei && ei->code == 0) {
        ei->code = code;
        ei->offset = offset;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ei->msg, sizeof ei->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void err_clear(struct err_info *ei)
{
    if (ei) {
        memset(ei, 0, sizeof *ei);
        ei->offset = ERR_NO_OFFSET;
    }
}

const char *err_kind(int code)
{
    switch (code) {
#define ERR_KIND_(name, val, kind, desc) \
    case val:                            \
        return kind;
        ERR_LIST(ERR_KIND_)
#undef ERR_KIND_
    }
    return "unknown";
}

const char *err_str(int code)
{
    switch (code) {
#define ERR_DESC_(name, val, kind, desc) \
    case val:                            \
        return desc;
        ERR_LIST(ERR_DESC_)
#undef ERR_DESC_
    }
    return "unknown error";
}

const char *err_format(const struct err_info *ei, int code, char *buf, size_t len)
{
    if (ei && ei->code != 0 && ei->msg[0]) {
        if (ei->offset != ERR_NO_OFFSET)
            snprintf(buf, len, "%s (at byte %llu)", ei->msg, (unsigned long long)ei->offset);
        else
            snprintf(buf, len, "%s", ei->msg);
    } else {
        snprintf(buf, len, "%s", err_str(code));
    }
    return buf;
}
