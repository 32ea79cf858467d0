/* gram_schema: JSON Schema (draft 2020-12, with draft-04/07 spellings and OpenAPI's nullable)
 * to a GBNF grammar for gram_parse.
 *
 * The promise: the grammar never accepts a text whose JSON value the schema rejects. Anything
 * the converter cannot express exactly is refused (ERR_UNSUPPORTED, with every offending
 * keyword and its JSON pointer in the message), never ignored. The converse is close but not
 * total: valid instances written in ways the grammar does not generate are rejected, namely
 *   - whitespace beyond opts.ws characters per gap (compact JSON is always accepted);
 *   - keys of declared properties written with needless escapes ("f\u006fo" for "foo"), and
 *     const/enum strings likewise (they are written the way json.dumps writes them);
 *   - objects with more than opts.any_order_max declared properties whose properties do not
 *     follow the schema's order (smaller objects accept any order);
 *   - exponents in numbers with a minimum or maximum, and integers written with a fraction
 *     other than .0+ or with a negative exponent;
 *   - pattern and format matches that need a non-BMP character inside a class or `.`.
 * Numbers compare as exact decimals (JSON Schema's mathematical comparison); a real bound is
 * taken as the shortest decimal that reads back as the same double.
 *
 * Supported: boolean schemas; type (and lists); enum; const; nullable; minimum, maximum,
 * exclusiveMinimum, exclusiveMaximum (numbers or draft-04 booleans); minLength, maxLength;
 * pattern (gram_schema_str.c lists the regex subset); format date, time, date-time, uuid,
 * email, ipv4; items, prefixItems (and draft-07 array items / additionalItems), minItems,
 * maxItems; properties, required, additionalProperties; allOf, anyOf; oneOf when its branches
 * provably exclude each other; $ref to "#", "#/json/pointer", "#anchor" (or the root's $id
 * followed by those) through $defs/definitions, recursion included. Annotations (title,
 * description, default, examples, $comment, ...) are ignored.
 *
 * Objects: declared property keys are required / optional as the schema says, each at most
 * once; other keys are allowed when additionalProperties allows them (in tool mode an object
 * that declares properties allows no others unless it says so, like OpenAI's strict mode), and
 * can never spell a declared key. */
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
    const char *root;         /* name of the schema's rule; NULL: "root" */
    const char *prefix;       /* prepended to every other rule name; NULL: "" */
    unsigned ws;              /* whitespace characters allowed in each gap; 0: compact only */
    unsigned any_order_max;   /* 0: default (6); at most 10 */
    unsigned flags;           /* GRAM_SCHEMA_* */
    size_t max_bytes;         /* grammar size limit; 0: default (4 MiB) */
};

void gram_schema_opts_default(struct gram_schema_opts *o);

/* Convert schema JSON text. On success *gbnf (malloc'd, NUL-terminated, caller frees) holds
 * the rules, the schema's own rule named opts->root. Errors: ERR_SYNTAX (not JSON: offset
 * and jansson's message), ERR_INVALID (not a valid schema), ERR_UNSUPPORTED, ERR_LIMIT,
 * ERR_NOMEM. */
int gram_schema_to_gbnf(const char *json, size_t len, const struct gram_schema_opts *opts,
                        char **gbnf, size_t *gbnf_len, struct err_info *ei);
/* The same for a parsed schema (borrowed). */
int gram_schema_to_gbnf_json(const struct json_t *schema, const struct gram_schema_opts *opts,
                             char **gbnf, size_t *gbnf_len, struct err_info *ei);

/* Several schemas in one grammar, e.g. each tool's arguments: schema i gets the rule named
 * rule[i] and its private rules are named rule[i] + "-..."; shared building blocks (strings,
 * numbers, whitespace) are defined once, named with opts->prefix. opts->root is not used and no
 * rule named root is written unless a rule[i] is "root": the caller appends its own, e.g.
 *   root ::= "{\"name\":\"exec\",\"arguments\":" exec-args "}" | ...            */
struct gram_schema_entry {
    const struct json_t *schema;
    const char *rule;
};
int gram_schema_to_gbnf_multi(const struct gram_schema_entry *e, size_t n,
                              const struct gram_schema_opts *opts, char **gbnf, size_t *gbnf_len,
                              struct err_info *ei);

#endif
