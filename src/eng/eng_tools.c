/* eng_tools: the request's tools and tool_choice checked and kept, call ids, and the growable
 * string the tool-calling files build text with.
 *
 * A tool set owns a reference to each tool's argument schema (a copy with "type": "object" when
 * the request left the type out), so it outlives nothing and is freed with the request's
 * processing. Ids come from one process-wide atomic counter, so two calls never share an id
 * within a process whatever thread asks. */
#include "eng_tools.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---------------- growable string ---------------- */

static bool sb_room(struct eng_sb *b, size_t n)
{
    if (b->oom) return false;
    if (n > SIZE_MAX / 2 - b->len) {
        b->oom = true;
        return false;
    }
    if (b->len + n + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void eng_sb_add(struct eng_sb *b, const void *s, size_t n)
{
    if (!sb_room(b, n)) return;
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void eng_sb_str(struct eng_sb *b, const char *s) { eng_sb_add(b, s, strlen(s)); }

void eng_sb_printf(struct eng_sb *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !sb_room(b, (size_t)n)) {
        b->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void eng_sb_json_str(struct eng_sb *b, const char *s, size_t n)
{
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        eng_sb_add(b, s + from, i - from);
        from = i + 1;
        switch (c) {
        case '"': eng_sb_str(b, "\\\""); break;
        case '\\': eng_sb_str(b, "\\\\"); break;
        case '\n': eng_sb_str(b, "\\n"); break;
        case '\r': eng_sb_str(b, "\\r"); break;
        case '\t': eng_sb_str(b, "\\t"); break;
        case '\b': eng_sb_str(b, "\\b"); break;
        case '\f': eng_sb_str(b, "\\f"); break;
        default: eng_sb_printf(b, "\\u%04x", c);
        }
    }
    eng_sb_add(b, s + from, n - from);
}

void eng_sb_free(struct eng_sb *b)
{
    if (!b) return;
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---------------- tools ---------------- */

static bool name_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/* The arguments' schema of tool i: an object schema. */
static int tool_params(const json_t *fn, size_t i, const char *name, json_t **out,
                       struct err_info *ei)
{
    json_t *p = json_object_get(fn, "parameters");
    if (!p || json_is_null(p)) {
        *out = json_pack("{s:s,s:{}}", "type", "object", "properties");
        return *out ? 0 : err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    }
    if (!json_is_object(p))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                       "tools[%zu] (%s): 'parameters' must be a JSON Schema object", i, name);
    json_t *type = json_object_get(p, "type");
    if (type && !(json_is_string(type) && !strcmp(json_string_value(type), "object")))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                       "tools[%zu] (%s): 'parameters' must be an object schema (\"type\": "
                       "\"object\"): arguments are a JSON object",
                       i, name);
    if (type) {
        *out = json_incref(p);
        return 0;
    }
    *out = json_copy(p); /* shallow: the members stay shared, read-only */
    if (!*out || json_object_set_new(*out, "type", json_string("object"))) {
        json_decref(*out);
        *out = NULL;
        return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    }
    return 0;
}

static int tool_parse(const json_t *def, size_t i, struct eng_tool *t, struct err_info *ei)
{
    json_t *type = json_object_get(def, "type"), *fn = json_object_get(def, "function");
    if (!json_is_object(def) || !json_is_string(type) ||
        strcmp(json_string_value(type), "function") != 0 || !json_is_object(fn))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                       "tools[%zu] must be {\"type\": \"function\", \"function\": {\"name\", "
                       "\"description\", \"parameters\"}}",
                       i);
    json_t *name = json_object_get(fn, "name");
    if (!json_is_string(name))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "tools[%zu].function.name must be a string", i);
    const char *s = json_string_value(name);
    size_t n = json_string_length(name);
    bool ok = n >= 1 && n <= ENG_TOOL_NAME_MAX;
    for (size_t k = 0; ok && k < n; k++) ok = name_byte((unsigned char)s[k]);
    if (!ok)
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                       "tools[%zu].function.name '%.80s' must be 1 to %d characters of a-z, A-Z, "
                       "0-9, '_' and '-'",
                       i, s, ENG_TOOL_NAME_MAX);
    json_t *desc = json_object_get(fn, "description");
    if (desc && !json_is_null(desc) && !json_is_string(desc))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                       "tools[%zu] (%s): 'description' must be a string", i, s);
    memcpy(t->name, s, n);
    t->name[n] = 0;
    t->name_len = n;
    t->fn = json_incref(fn);
    return tool_params(fn, i, t->name, &t->params, ei);
}

int eng_toolset_parse(const json_t *tools, struct eng_toolset *ts, struct err_info *ei)
{
    memset(ts, 0, sizeof *ts);
    if (!tools || json_is_null(tools)) return 0;
    if (!json_is_array(tools))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "'tools' must be an array of tools");
    size_t n = json_array_size(tools);
    if (n > ENG_TOOLS_MAX)
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET, "'tools' has %zu entries; at most %d", n,
                       ENG_TOOLS_MAX);
    if (n == 0) return 0;
    if (!(ts->t = calloc(n, sizeof *ts->t))) return err_set(ei, ERR_NOMEM, ERR_NO_OFFSET, "out of memory");
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        rc = tool_parse(json_array_get(tools, i), i, &ts->t[i], ei);
        ts->n = i + 1; /* the entry may hold a reference even when it failed */
        if (!rc && eng_toolset_find(ts, ts->t[i].name, ts->t[i].name_len) != (int)i)
            rc = err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                         "tools[%zu]: the name '%s' is declared twice", i, ts->t[i].name);
    }
    if (rc) eng_toolset_free(ts);
    return rc;
}

void eng_toolset_free(struct eng_toolset *ts)
{
    if (!ts) return;
    for (size_t i = 0; ts->t && i < ts->n; i++) {
        json_decref(ts->t[i].params);
        json_decref(ts->t[i].fn);
    }
    free(ts->t);
    memset(ts, 0, sizeof *ts);
}

int eng_toolset_find(const struct eng_toolset *ts, const char *name, size_t len)
{
    for (size_t i = 0; i < ts->n; i++)
        if (ts->t[i].name_len == len && memcmp(ts->t[i].name, name, len) == 0) return (int)i;
    return -1;
}

int eng_tool_choice_parse(const json_t *tc, const struct eng_toolset *ts, int *choice, int *named,
                          struct err_info *ei)
{
    *named = -1;
    *choice = ts->n ? ENG_TC_AUTO : ENG_TC_NONE;
    if (!tc || json_is_null(tc)) return 0;
    if (json_is_string(tc)) {
        const char *s = json_string_value(tc);
        if (!strcmp(s, "none")) *choice = ENG_TC_NONE;
        else if (!strcmp(s, "auto")) *choice = ts->n ? ENG_TC_AUTO : ENG_TC_NONE;
        else if (!strcmp(s, "required")) *choice = ENG_TC_REQUIRED;
        else
            return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                           "'tool_choice' must be \"none\", \"auto\", \"required\" or "
                           "{\"type\": \"function\", \"function\": {\"name\": ...}}");
        if (*choice == ENG_TC_REQUIRED && ts->n == 0)
            return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                           "'tool_choice' \"required\" needs at least one tool in 'tools'");
        return 0;
    }
    json_t *type = json_object_get(tc, "type"), *fn = json_object_get(tc, "function");
    json_t *name = json_object_get(fn, "name");
    if (!json_is_object(tc) || !json_is_string(type) ||
        strcmp(json_string_value(type), "function") != 0 || !json_is_string(name))
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                       "'tool_choice' must be \"none\", \"auto\", \"required\" or "
                       "{\"type\": \"function\", \"function\": {\"name\": ...}}");
    int k = eng_toolset_find(ts, json_string_value(name), json_string_length(name));
    if (k < 0)
        return err_set(ei, ERR_INVALID, ERR_NO_OFFSET,
                       "'tool_choice' names '%.80s', which is not a tool in 'tools'",
                       json_string_value(name));
    *choice = ENG_TC_NAMED;
    *named = k;
    return 0;
}

/* ---------------- call ids ---------------- */

static atomic_uint_fast64_t g_id_counter;
static atomic_uint_fast64_t g_id_seed;

/* splitmix64: a bijection on 64-bit values, so distinct counters give distinct ids. */
static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t id_seed(void)
{
    uint64_t s = atomic_load(&g_id_seed);
    if (s) return s;
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    s = mix64((uint64_t)t.tv_sec * 1000000007ull ^ (uint64_t)t.tv_nsec ^ ((uint64_t)getpid() << 32)) | 1;
    uint_fast64_t expect = 0;
    atomic_compare_exchange_strong(&g_id_seed, &expect, s);
    return atomic_load(&g_id_seed);
}

void eng_tool_call_id(int style, char out[32])
{
    uint64_t seed = id_seed(), k = atomic_fetch_add(&g_id_counter, 1);
    if (style == ENG_TID_ALNUM9) {
        /* 62^9 ids: seed + 7k mod 62^9 is a bijection on counters below 62^9 (7 is coprime
         * to 62), so ids repeat only after 1.3e16 calls; every term stays below 2^57. */
        static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        const uint64_t mod = 13537086546263552ull; /* 62^9 */
        uint64_t v = (seed % mod + (k % mod) * 7u) % mod;
        for (int i = 8; i >= 0; i--) {
            out[i] = al[v % 62];
            v /= 62;
        }
        out[9] = 0;
        return;
    }
    snprintf(out, 32, "call_%08llx%016llx", (unsigned long long)(seed >> 32),
             (unsigned long long)mix64(k ^ seed));
}
