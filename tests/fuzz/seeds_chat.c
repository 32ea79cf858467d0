/* seeds_chat: writes the starting corpus for fuzz_chat into a directory, at run time: chat
 * requests that pass (string content, text parts, several roles, null fields, an empty tools
 * list, tools with calls and results, documents, template variables) and ones that each fail
 * one rule (no messages, a bad role, an image part, a bad tool, a bad tool call, a NUL, a
 * tool_choice not supported yet), so mutations start on both sides of every check.
 *
 * usage: seeds_chat <dir> [ignored ...] */
#include <stdio.h>
#include <string.h>

static const char *const k_seeds[] = {
    "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}",
    ("{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":"
     "\"What is 2+2?\"},{\"role\":\"assistant\",\"content\":\"4\"},{\"role\":\"user\",\"content\":"
     "\"And 3+3?\"}]}"),
    ("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
     "{\"type\":\"text\",\"text\":\"\\u00e9\"}]}],\"tools\":[],\"tool_choice\":\"auto\"}"),
    "{\"messages\":[{\"role\":\"tool\",\"content\":null}],\"tools\":null}",
    "{\"messages\":[]}",
    "{\"messages\":[{\"role\":\"\",\"content\":\"x\"}]}",
    "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}",
    "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"function\"}]}",
    "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{}]}]}",
    "{\"messages\":[{\"role\":\"user\",\"content\":\"a\\u0000b\"}]}",
    /* Jinja templates: tools, a call with object and with string arguments and its result,
     * the developer role, documents and template variables */
    ("{\"messages\":[{\"role\":\"developer\",\"content\":\"d\"},{\"role\":\"user\",\"content\":"
     "\"w\"},{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":"
     "\"function\",\"function\":{\"name\":\"get\",\"arguments\":{\"city\":\"Paris\"}}},{\"id\":\"c2\","
     "\"type\":\"function\",\"function\":{\"name\":\"get\",\"arguments\":\"{\\\"city\\\":1}\"}}]},"
     "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"21\"}],\"tools\":[{\"type\":"
     "\"function\",\"function\":{\"name\":\"get\",\"parameters\":{\"type\":\"object\"}}}],"
     "\"parallel_tool_calls\":false}"),
    ("{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"documents\":[{\"title\":\"t\","
     "\"text\":\"x\"}],\"chat_template_kwargs\":{\"enable_thinking\":false,\"bos_token\":\"B\"},"
     "\"add_generation_prompt\":false}"),
    "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tool_choice\":\"required\"}",
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s <dir>\n", argv[0]);
        return 2;
    }
    for (size_t i = 0; i < sizeof k_seeds / sizeof k_seeds[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/seed%02zu.json", argv[1], i);
        FILE *f = fopen(path, "wb");
        size_t n = strlen(k_seeds[i]);
        if (!f || fwrite(k_seeds[i], 1, n, f) != n || fclose(f) != 0) {
            fprintf(stderr, "seeds_chat: cannot write %s\n", path);
            return 1;
        }
    }
    return 0;
}
