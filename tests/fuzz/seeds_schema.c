/* seeds_schema: writes the starting corpus for fuzz_schema into a directory, at run time: small
 * schemas that between them use every supported keyword (and a few refused ones), so mutations
 * start from inputs the converter goes deep into. Extra arguments are ignored (the fuzz-smoke
 * rule passes model files meant for other harnesses).
 *
 * usage: seeds_schema <dir> [ignored ...] */
#include <stdio.h>
#include <string.h>

static const char *const g_seeds[] = {
    "true",
    "false",
    "{}",
    "{\"type\":\"integer\",\"minimum\":-5,\"exclusiveMaximum\":300}",
    "{\"type\":\"number\",\"exclusiveMinimum\":1.1,\"maximum\":2.5e2}",
    "{\"type\":[\"string\",\"null\"],\"minLength\":2,\"maxLength\":5}",
    "{\"type\":\"string\",\"pattern\":\"^[a-z]+(-[a-z]+)*$\",\"maxLength\":12}",
    "{\"type\":\"string\",\"pattern\":\"a(b|c)*\\\\d{2,3}.\"}",
    "{\"type\":\"string\",\"format\":\"date-time\"}",
    "{\"type\":\"string\",\"format\":\"email\"}",
    "{\"type\":\"string\",\"format\":\"uuid\"}",
    "{\"enum\":[1,\"a\",null,[true],{\"k\":2.5}]}",
    "{\"const\":{\"x\":[1,{\"y\":\"z\"}]}}",
    "{\"type\":\"array\",\"prefixItems\":[{\"type\":\"string\"},{\"type\":\"integer\"}],\"items\":{\"type\":\"boolean\"},\"minItems\":1,\"maxItems\":4}",
    "{\"items\":[{\"const\":1}],\"additionalItems\":false}",
    "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"string\"},\"c\":{}},\"required\":[\"a\"],\"additionalProperties\":{\"type\":\"number\"}}",
    "{\"properties\":{\"foo\":{},\"f\":{},\"\\u00e9\":{}},\"additionalProperties\":false}",
    "{\"anyOf\":[{\"type\":\"integer\"},{\"minimum\":2}]}",
    "{\"allOf\":[{\"maximum\":30},{\"minimum\":20},{\"type\":\"integer\"}]}",
    "{\"oneOf\":[{\"type\":\"object\",\"properties\":{\"k\":{\"const\":\"a\"}},\"required\":[\"k\"]},{\"type\":\"object\",\"properties\":{\"k\":{\"const\":\"b\"}},\"required\":[\"k\"]}]}",
    "{\"$defs\":{\"n\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\"},\"next\":{\"$ref\":\"#/$defs/n\"}}}},\"$ref\":\"#/$defs/n\"}",
    "{\"properties\":{\"self\":{\"$ref\":\"#\"}},\"additionalProperties\":false}",
    "{\"definitions\":{\"s\":{\"$anchor\":\"S\",\"type\":\"string\",\"nullable\":true}},\"items\":{\"$ref\":\"#S\"}}",
    "{\"type\":\"number\",\"minimum\":0,\"exclusiveMinimum\":true}",
    "{\"not\":{},\"patternProperties\":{\"x\":{}},\"multipleOf\":2}",
    "{\"type\":\"object\",\"properties\":{\"command\":{\"type\":\"string\",\"minLength\":1},\"timeout\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":3600}},\"required\":[\"command\"],\"additionalProperties\":false}",
    "{\"type\":\"object\",\"properties\":{\"p1\":{},\"p2\":{},\"p3\":{},\"p4\":{},\"p5\":{},\"p6\":{},\"p7\":{},\"p8\":{}},\"required\":[\"p3\"]}",
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: seeds_schema <dir>\n");
        return 2;
    }
    for (size_t i = 0; i < sizeof g_seeds / sizeof g_seeds[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/seed-%02zu.json", argv[1], i);
        FILE *f = fopen(path, "wb");
        size_t n = strlen(g_seeds[i]);
        if (!f || fwrite(g_seeds[i], 1, n, f) != n || fclose(f) != 0) {
            fprintf(stderr, "seeds_schema: cannot write %s\n", path);
            return 1;
        }
    }
    return 0;
}
