/* gram_schema: JSON Schema (draft 2020-12, with draft-04/07 spellings and OpenAPI's nullable)
 * to a GBNF grammar for gram_parse.
 *
 * The promise: the grammar never accepts a text whose JSON value the schema rejects. That holds
 * under JSON Schema's exact (decimal) number comparison and ECMA-262 patterns, and also under
 * double-based validators (Python's jsonschema, jansson) and Unicode-aware regex engines
 * (Python's re): where they disagree the grammar takes what both accept. Anything the converter
 * cannot express that way is refused (ERR_UNSUPPORTED, with every offending keyword and its
 * JSON pointer in the message), never ignored.
 *
 * The converse is close but not total. Valid instances the grammar rejects:
 *   - whitespace beyond opts.ws characters per gap (compact JSON is always accepted);
 *   - keys of declared properties written with needless escapes ("f\u006fo" for "foo"), and
 *     const/enum strings likewise (they are written the way json.dumps writes them);
 *   - objects with more than opts.any_order_max declared properties whose properties do not
 *     follow the schema's order (smaller objects accept every order);
 *   - exponents in numbers with a minimum or maximum; integers written with a fraction other
 *     than .0+, a negative exponent, or (fraction / exponent forms) more than 16 digits or a
 *     bound past 2^53; numbers within one double ulp of a bound where doubles and decimals
 *     disagree;
 *   - pattern / format matches that need a non-BMP character inside a class or `.`, or a
 *     non-ASCII character in \D, \W or a negated class holding \d or \w.
 *
 * Supported: boolean schemas; type (and lists); enum; const; nullable (OpenAPI: adds null to a
 * type); minimum, maximum, exclusiveMinimum, exclusiveMaximum (numbers or draft-04 booleans);
 * minLength, maxLength (code points; an escape is one); pattern (gram_schema_rx.c lists the
 * subset); format date, time, date-time, uuid, email (dot-atom@hostname), ipv4; items,
 * prefixItems (and draft-07 array items / additionalItems), minItems, maxItems; properties,
 * required, additionalProperties; allOf (merged), anyOf; oneOf when its branches provably
 * exclude each other (or two branches match everything: then nothing matches); $ref to "#",
 * "#/json/pointer", "#anchor" (or the root's $id followed by those) through $defs/definitions,
 * recursion included; uniqueItems false and minProperties 0 (no constraint). Annotations
 * (title, description, default, examples, $comment, x-*, ...) are ignored.
 *
 * Objects: declared keys appear at most once and as required; other keys are allowed when
 * additionalProperties allows them (in tool mode an object that declares properties allows no
 * others unless it says so, like OpenAI's strict mode) and can never spell a declared key in
 * any escape form. Up to any_order_max declared keys (default 6, at most 10) are accepted in
 * any order: a rule per subset of keys already written, 2^n rules of up to n alternatives;
 * beyond that, schema order with optional keys skippable (n rules).
 *
 * Limits (ERR_LIMIT, with what and where): schema nesting 64 (a $ref chain counts), enum 1024
 * values, 1024 properties of 1024 bytes, patterns of 4096 bytes / 20000 NFA / 2000 DFA states /
 * quantifiers <= 1000, 4096 states for patterns x formats x length counter, counts up to
 * 65535^2, numeric bounds of 400 digits, 2048 anyOf/oneOf/enum combinations, 20000 rules,
 * opts.max_bytes of grammar (default 4 MiB). */
#ifndef LMPIPE_GRAM_SCHEMA_H
#define LMPIPE_GRAM_SCHEMA_H

#include "../util/err.h"

#include <stddef.h>

struct json_t; /* jansson */

enum gram_schema_mode {
    GRAM_SCHEMA_PLAIN = 0, /* JSON Schema as written */
    GRAM_SCHEMA_TOOL = 1,  /* tool arguments: objects with properties default to no extras */
};

enum {
    /* Formats other than the supported ones are annotations (as JSON Schema 2020-12 says)
     * instead of a refusal. */
    GRAM_SCHEMA_LAX_FORMAT = 1u << 0,
};

struct gram_schema_opts {
    int mode;                 /* enum gram_schema_mode */
    const char *root;         /* name of the schema's rule; NULL: "root" (single schema only) */
    const char *prefix;       /* prepended to every other rule's name; NULL: "" */
    unsigned ws;              /* whitespace characters allowed in each gap; 0: compact only */
    unsigned any_order_max;   /* 0: default (6); at most 10 */
    unsigned flags;           /* GRAM_SCHEMA_* */
    size_t max_bytes;         /* grammar size limit; 0: default (4 MiB) */
};

void gram_schema_opts_default(struct gram_schema_opts *o);

/* Convert schema JSON text. On success *gbnf (malloc'd, NUL-terminated, caller frees) holds
 * the rules, the schema's own rule named opts->root, and *gbnf_len (optional) its length.
 * Errors: ERR_SYNTAX (not JSON: jansson's message, line, column, byte offset), ERR_INVALID
 * (not a valid schema), ERR_UNSUPPORTED, ERR_LIMIT, ERR_DUPLICATE, ERR_NOMEM; *gbnf is NULL. */
int gram_schema_to_gbnf(const char *json, size_t len, const struct gram_schema_opts *opts,
                        char **gbnf, size_t *gbnf_len, struct err_info *ei);
/* The same for a parsed schema (borrowed; parse it with JSON_ALLOW_NUL to keep \u0000). */
int gram_schema_to_gbnf_json(const struct json_t *schema, const struct gram_schema_opts *opts,
                             char **gbnf, size_t *gbnf_len, struct err_info *ei);

/* Several schemas in one grammar, e.g. each tool's arguments: schema i gets the rule named
 * rule[i] (letters, digits, dashes; distinct), its own rules are named opts->prefix + rule[i] +
 * "-...", and shared building blocks (strings, numbers, whitespace, character sets) are defined
 * once, named opts->prefix + "char", "string", ... opts->root is not used and no rule named
 * root is written unless a rule[i] is "root": the caller appends its own start rule, e.g.
 *   root ::= "{\"name\":\"exec\",\"arguments\":" exec-args "}" | ...            */
struct gram_schema_entry {
    const struct json_t *schema;
    const char *rule;
};
int gram_schema_to_gbnf_multi(const struct gram_schema_entry *e, size_t n,
                              const struct gram_schema_opts *opts, char **gbnf, size_t *gbnf_len,
                              struct err_info *ei);

#endif
