/* seeds_tparse: writes the starting corpus for fuzz_tparse at run time: one call-section text
 * per family (byte 0 = the family's index in fuzz_tparse's list, byte 1 = chunk size), complete
 * and cut short, with one and two calls.
 *
 * usage: seeds_tparse <dir> [ignored ...] */
#include "seed_io.h"

#include <string.h>

static const char *const k_texts[] = {
    /* generic / hermes */
    "<tool_call>\n{\"name\": \"exec\", \"arguments\": {\"command\": \"ls\"}}\n</tool_call>\n"
    "<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>",
    /* granite */
    "<|tool_call|>[{\"name\": \"weather\", \"arguments\": {\"location\": \"Oslo\"}}, "
    "{\"name\": \"now\", \"arguments\": {}}]",
    /* llama3 */
    "{\"name\": \"exec\", \"parameters\": {\"command\": \"a \\\"b\\\" {c}\"}}",
    /* mistral */
    "[TOOL_CALLS][{\"name\": \"exec\", \"arguments\": {\"command\": \"ls\", \"timeout\": 5}}]",
    /* qwen3-coder */
    "<tool_call>\n<function=exec>\n<parameter=command>\nls -la\n</parameter>\n<parameter=timeout>\n"
    "5\n</parameter>\n</function>\n</tool_call>",
    /* functionary */
    ">>>exec\n{\"command\": \"ls\"}>>>now\n{}",
    /* pythonic */
    "<|tool_call_start|>[exec(command=\"ls\", timeout=5), now()]<|tool_call_end|>",
    /* deepseek-r1 */
    "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>exec\n```json\n"
    "{\"command\": \"ls\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s <dir>\n", argv[0]);
        return 2;
    }
    for (size_t i = 0; i < sizeof k_texts / sizeof k_texts[0]; i++) {
        for (int cut = 0; cut < 2; cut++) {
            char buf[1024], name[64];
            size_t n = strlen(k_texts[i]);
            if (cut) n = n * 2 / 3;
            buf[0] = (char)i;
            buf[1] = (char)(cut ? 2 : 6);
            memcpy(buf + 2, k_texts[i], n);
            snprintf(name, sizeof name, "seed%02zu%c", i, cut ? 'c' : 'f');
            if (seed_write("seeds_tparse", argv[1], name, buf, n + 2)) return 1;
        }
    }
    return 0;
}
