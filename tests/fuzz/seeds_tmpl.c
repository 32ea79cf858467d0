/* seeds_tmpl: writes the starting corpus for fuzz_tmpl into a directory, at run time: every
 * language case of check_tmpl (tests/tmpl_cases.h), a few hostile shapes (deep nesting,
 * recursion, big loops), and the real chat templates of $LMPIPE_SHARED/chat/jinja (default
 * ../shared) copied as they are. Nothing is committed: the fixtures stay in shared/.
 *
 * usage: seeds_tmpl <dir> [ignored...] */
#include "tmpl_cases.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int write_seed(const char *dir, const char *name, const void *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "seeds_tmpl: cannot write %s\n", path);
        if (f) fclose(f);
        return 1;
    }
    return 0;
}

static int copy_templates(const char *dir)
{
    const char *base = getenv("LMPIPE_SHARED");
    char src_dir[2048];
    snprintf(src_dir, sizeof src_dir, "%s/chat/jinja", base && *base ? base : "../shared");
    DIR *d = opendir(src_dir);
    if (!d) return 0; /* optional */
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < 7 || strcmp(e->d_name + l - 6, ".jinja") != 0) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", src_dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        static char buf[1 << 20];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        char name[512];
        snprintf(name, sizeof name, "real-%s", e->d_name);
        rc |= write_seed(dir, name, buf, n);
    }
    closedir(d);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s <dir>\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    int rc = 0;
    char name[64];
    for (size_t i = 0; i < sizeof g_tmpl_cases / sizeof g_tmpl_cases[0]; i++) {
        snprintf(name, sizeof name, "case-%03zu", i);
        rc |= write_seed(dir, name, g_tmpl_cases[i].tpl, strlen(g_tmpl_cases[i].tpl));
    }
    static const char *const hostile[] = {
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
        "{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}",
        "{% set l = [] %}{% set _ = l.append(l) %}{{ l }}{{ l|tojson }}",
        "{{ ((((((((((((((((((((1))))))))))))))))))) }}{% if 1 %}{% if 1 %}{% if 1 %}x{% endif %}{% endif %}{% endif %}",
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "{% for m in messages %}{{ m.role|upper }}: {{ m.content if m.content is string else m.content|tojson }}\n"
        "{% for c in m.tool_calls or [] %}{{ c.function.name }}({{ c.function.arguments|tojson(indent=2) }}){% endfor %}"
        "{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}",
    };
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        snprintf(name, sizeof name, "shape-%zu", i);
        rc |= write_seed(dir, name, hostile[i], strlen(hostile[i]));
    }
    rc |= copy_templates(dir);
    (void)argc;
    return rc;
}
