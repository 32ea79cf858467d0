/* chat: built-in chat templates (see chat.h for the contract).
 *
 * Design. Every llama.cpp built-in format is one row of `rows`: fixed text around each message,
 * chosen by the message's role, plus a handful of flags for the few position-dependent quirks
 * (first message, last message, open/closed [INST] turns, system text merged into the next
 * user turn). One renderer walks any row. That keeps the 55 formats as data one can read side by
 * side with llama.cpp's llm_chat_apply_template, instead of 55 loops.
 *
 * A message is rendered as
 *     pre  ROLE  mid  [pending system text "\n\n"]  content  post
 * where ROLE is the role echoed (raw, upper-cased or capitalised) or nothing, and content is
 * optionally whitespace-trimmed (C-locale isspace, as llama.cpp's trim()). The format used is
 * the row's first override whose role matches exactly, else the row's default. A format marked
 * SKIP drops the message: that is how a template ignores roles it does not know.
 *
 * Invariants: the renderer never writes past cap (the sink counts everything and copies what
 * fits), every length addition is overflow-checked, and output only depends on (row, msgs,
 * add_generation_prompt), so measuring and writing are the same pass.
 *
 * Detection is an ordered first-match list of substring rules, the flattening of llama.cpp's
 * llm_chat_detect_template if/else chain: each nested branch keeps its position and ends with
 * the rule that catches the rest of its outer condition. */
#include "chat.h"

#include "../util/util.h"

#include <stdint.h>
#include <string.h>

/* ---- formats ---------------------------------------------------------------------------- */

enum role_echo { ECHO_NONE, ECHO_RAW, ECHO_UPPER, ECHO_CAPITAL };

enum fmt_flag {
    F_SKIP = 1 << 0,          /* drop the message */
    F_TRIM = 1 << 1,          /* trim the content */
    F_PRE_NOT_FIRST = 1 << 2, /* no `pre` on message 0 (monarch's in-history <s>) */
    F_FIRST_ONLY = 1 << 3,    /* only at message 0, else dropped (a leading system prompt) */
    F_TO_PENDING = 1 << 4,    /* content is held back and merged into the next F_TAKES_PENDING */
    F_TAKES_PENDING = 1 << 5, /* emits held-back system text + "\n\n" before its content */
    F_CLOSES_TURN = 1 << 6,   /* ends an [INST] turn: the next message re-opens one */
    F_GEN_IF_LAST = 1 << 7,   /* emit the row's gen text after this message if it is the last */
};

struct fmt {
    const char *pre;
    unsigned char echo; /* enum role_echo */
    const char *mid;
    const char *post;
    unsigned flags;
};

struct override {
    const char *role;
    struct fmt f;
};

enum row_flag {
    R_IGNORE_GEN = 1 << 0,   /* add_generation_prompt has no effect (llama.cpp ignores it) */
    R_START_INSIDE = 1 << 1, /* turn tracking starts inside a turn (prologue opened it) */
    R_NOSYS_EMPTY = 1 << 2,  /* `nosys` text also for an empty conversation */
};

#define MAX_OVR 5

struct row {
    const char *name;
    unsigned flags;
    const char *prologue;  /* emitted first, always */
    const char *nosys;     /* emitted when the first message is not a system message */
    const char *turn_open; /* non-NULL: open/closed turn tracking, this re-opens a turn */
    struct fmt dflt;
    struct override ovr[MAX_OVR]; /* role == NULL ends the list */
    const char *gen;              /* the generation prompt */
};

/* Fixed text around the content, role not echoed. */
#define FX(pre_, post_, fl_) {(pre_), ECHO_NONE, "", (post_), (fl_)}
/* pre ROLE mid content post. */
#define FR(pre_, mid_, post_, fl_) {(pre_), ECHO_RAW, (mid_), (post_), (fl_)}
#define SKIP {"", ECHO_NONE, "", "", F_SKIP}

/* U+FF5C FULLWIDTH VERTICAL LINE and U+2581 LOWER ONE EIGHTH BLOCK, as DeepSeek/Hunyuan use. */
#define DS_EOS "<｜end▁of▁sentence｜>"
#define HY_PH2 "<｜hy_place▁holder▁no▁2｜>"
#define HY_PH3 "<｜hy_place▁holder▁no▁3｜>"
#define CR_TURN "<|START_OF_TURN_TOKEN|>"
#define CR_END "<|END_OF_TURN_TOKEN|>"

/* llama2 and its variants share everything but the system block, the re-opening text and
 * trimming. */
#define LLAMA2_ROW(name_, sys_, reopen_, tr_)                                                     \
    {                                                                                             \
        .name = (name_), .flags = R_IGNORE_GEN | R_START_INSIDE, .prologue = "[INST] ",           \
        .turn_open = (reopen_), .dflt = FX("", "</s>", F_CLOSES_TURN | (tr_)),                    \
        .ovr = {{"system", sys_}, {"user", FX("", " [/INST]", (tr_))}},                           \
    }
#define LLAMA2_SYS_BLOCK(tr_) FX("<<SYS>>\n", "\n<</SYS>>\n\n", (tr_))

/* mistral v1/v3/v3-tekken: turn text, the space before [/INST] and before the answer, and v3's
 * trimming of the answer. */
#define MISTRAL_ROW(name_, open_, lead_, trail_, tr_)                                             \
    {                                                                                             \
        .name = (name_), .flags = R_IGNORE_GEN, .turn_open = (open_),                             \
        .dflt = FX(trail_, "</s>", F_CLOSES_TURN | (tr_)),                                        \
        .ovr = {{"system", FX("", "\n\n", 0)}, {"user", FX("", lead_ "[/INST]", 0)}},             \
    }
#define MISTRAL7_ROW(name_, sp_)                                                                  \
    {                                                                                             \
        .name = (name_), .flags = R_IGNORE_GEN, .dflt = FX(sp_, "</s>", 0),                       \
        .ovr = {{"system", FX("[SYSTEM_PROMPT]" sp_, "[/SYSTEM_PROMPT]", 0)},                     \
                {"user", FX("[INST]" sp_, "[/INST]", 0)}},                                        \
    }
#define VICUNA_ROW(name_, sys_)                                                                   \
    {                                                                                             \
        .name = (name_), .dflt = SKIP,                                                            \
        .ovr = {{"system", sys_},                                                                 \
                {"user", FX("USER: ", "\n", 0)},                                                  \
                {"assistant", FX("ASSISTANT: ", "</s>\n", 0)}},                                   \
        .gen = "ASSISTANT:",                                                                      \
    }
#define EXAONE_ROW(name_, tool_role_)                                                             \
    {                                                                                             \
        .name = (name_), .dflt = SKIP,                                                            \
        .ovr = {{"system", FX("[|system|]", "[|endofturn|]\n", F_TRIM)},                          \
                {"user", FX("[|user|]", "\n", F_TRIM)},                                           \
                {"assistant", FX("[|assistant|]", "[|endofturn|]\n", F_TRIM)},                    \
                {tool_role_, FX("[|tool|]", "[|endofturn|]\n", F_TRIM)}},                         \
        .gen = "[|assistant|]",                                                                   \
    }
#define GRANITE_ROW(name_, toolcall_pre_)                                                         \
    {                                                                                             \
        .name = (name_),                                                                          \
        .dflt = FR("<|start_of_role|>", "<|end_of_role|>", "<|end_of_text|>\n", 0),               \
        .ovr = {{"assistant_tool_call", FX(toolcall_pre_, "<|end_of_text|>\n", 0)}},              \
        .gen = "<|start_of_role|>assistant<|end_of_role|>",                                       \
    }
#define BAILING_ROW(name_, gen_)                                                                  \
    {                                                                                             \
        .name = (name_), .dflt = {"<role>", ECHO_UPPER, "</role>", "", 0},                        \
        .ovr = {{"user", FX("<role>HUMAN</role>", "", 0)}}, .gen = (gen_),                        \
    }

static const struct row rows[CHAT_TMPL_N_] = {
    [CHAT_TMPL_BAILING] = BAILING_ROW("bailing", "<role>ASSISTANT</role>"),
    [CHAT_TMPL_BAILING_THINK] = BAILING_ROW("bailing-think", "<role>ASSISTANT</role><think>"),
    [CHAT_TMPL_BAILING2] = {
        .name = "bailing2", .flags = R_NOSYS_EMPTY,
        .nosys = "<role>SYSTEM</role>detailed thinking off<|role_end|>",
        .dflt = {"<role>", ECHO_UPPER, "</role>", "<|role_end|>", 0},
        .ovr = {{"user", FX("<role>HUMAN</role>", "<|role_end|>", 0)}},
        .gen = "<role>ASSISTANT</role>",
    },
    [CHAT_TMPL_CHATGLM3] = {
        .name = "chatglm3", .prologue = "[gMASK]sop",
        .dflt = FR("<|", "|>\n ", "", 0), .gen = "<|assistant|>",
    },
    [CHAT_TMPL_CHATGLM4] = {
        .name = "chatglm4", .prologue = "[gMASK]<sop>",
        .dflt = FR("<|", "|>\n", "", 0), .gen = "<|assistant|>\n",
    },
    [CHAT_TMPL_CHATML] = {
        .name = "chatml", .dflt = FR("<|im_start|>", "\n", "<|im_end|>\n", 0),
        .gen = "<|im_start|>assistant\n",
    },
    [CHAT_TMPL_COMMAND_R] = {
        .name = "command-r", .dflt = SKIP,
        .ovr = {{"system", FX(CR_TURN "<|SYSTEM_TOKEN|>", CR_END, F_TRIM)},
                {"user", FX(CR_TURN "<|USER_TOKEN|>", CR_END, F_TRIM)},
                {"assistant", FX(CR_TURN "<|CHATBOT_TOKEN|>", CR_END, F_TRIM)}},
        .gen = "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>",
    },
    [CHAT_TMPL_DEEPSEEK] = {
        .name = "deepseek", .dflt = SKIP,
        .ovr = {{"system", FX("", "", 0)},
                {"user", FX("### Instruction:\n", "\n", 0)},
                {"assistant", FX("### Response:\n", "\n<|EOT|>\n", 0)}},
        .gen = "### Response:\n",
    },
    [CHAT_TMPL_DEEPSEEK_OCR] = {
        .name = "deepseek-ocr", .flags = R_IGNORE_GEN, .dflt = FX("", "", 0),
    },
    [CHAT_TMPL_DEEPSEEK2] = {
        .name = "deepseek2", .dflt = SKIP,
        .ovr = {{"system", FX("", "\n\n", 0)},
                {"user", FX("User: ", "\n\n", 0)},
                {"assistant", FX("Assistant: ", DS_EOS, 0)}},
        .gen = "Assistant:",
    },
    [CHAT_TMPL_DEEPSEEK3] = {
        .name = "deepseek3", .dflt = SKIP,
        .ovr = {{"system", FX("", "\n\n", 0)},
                {"user", FX("<｜User｜>", "", 0)},
                {"assistant", FX("<｜Assistant｜>", DS_EOS, 0)}},
        .gen = "<｜Assistant｜>",
    },
    [CHAT_TMPL_EXAONE_MOE] = {
        .name = "exaone-moe", .dflt = SKIP,
        .ovr = {{"system", FX("<|system|>\n", "<|endofturn|>\n", F_TRIM)},
                {"user", FX("<|user|>\n", "<|endofturn|>\n", F_TRIM)},
                {"assistant", FX("<|assistant|>\n", "<|endofturn|>\n", F_TRIM)},
                {"tool", FX("<|tool|>\n", "<|endofturn|>\n", F_TRIM)}},
        .gen = "<|assistant|>\n",
    },
    [CHAT_TMPL_EXAONE3] = EXAONE_ROW("exaone3", NULL), /* exaone3 drops tool messages */
    [CHAT_TMPL_EXAONE4] = EXAONE_ROW("exaone4", "tool"),
    [CHAT_TMPL_FALCON3] = {
        .name = "falcon3", .dflt = FR("<|", "|>\n", "\n", 0), .gen = "<|assistant|>\n",
    },
    [CHAT_TMPL_GEMMA] = {
        .name = "gemma",
        .dflt = FR("<start_of_turn>", "\n", "<end_of_turn>\n", F_TRIM | F_TAKES_PENDING),
        .ovr = {{"system", FX("", "", F_TRIM | F_TO_PENDING)},
                /* gemma calls the assistant "model"; a model turn never takes the system text */
                {"assistant", FX("<start_of_turn>model\n", "<end_of_turn>\n", F_TRIM)},
                {"model", FX("<start_of_turn>model\n", "<end_of_turn>\n", F_TRIM)}},
        .gen = "<start_of_turn>model\n",
    },
    [CHAT_TMPL_GIGACHAT] = {
        .name = "gigachat", .prologue = "<s>", .dflt = SKIP,
        .ovr = {{"system", FX("", "<|message_sep|>", F_FIRST_ONLY)},
                {"user", FX("user<|role_sep|>",
                            "<|message_sep|>available functions<|role_sep|>[]<|message_sep|>", 0)},
                {"assistant", FX("assistant<|role_sep|>", "<|message_sep|>", 0)}},
        .gen = "assistant<|role_sep|>",
    },
    [CHAT_TMPL_GLMEDGE] = {
        .name = "glmedge", .dflt = FR("<|", "|>\n", "", 0), .gen = "<|assistant|>",
    },
    [CHAT_TMPL_GPT_OSS] = {
        .name = "gpt-oss", .dflt = FR("<|start|>", "<|message|>", "<|end|>", 0),
        .ovr = {{"assistant", FX("<|start|>assistant<|message|>", "<|return|>", 0)}},
        .gen = "<|start|>assistant",
    },
    [CHAT_TMPL_GRANITE] =
        GRANITE_ROW("granite", "<|start_of_role|>assistant_tool_call<|end_of_role|><|tool_call|>"),
    [CHAT_TMPL_GRANITE_4_0] =
        GRANITE_ROW("granite-4.0", "<|start_of_role|>assistant<|end_of_role|><|tool_call|>"),
    [CHAT_TMPL_GRANITE_4_1] =
        GRANITE_ROW("granite-4.1", "<|start_of_role|>assistant<|end_of_role|><|tool_call|>"),
    [CHAT_TMPL_GROK2] = {
        .name = "grok-2", .dflt = SKIP,
        .ovr = {{"system", FX("System: ", "<|separator|>\n\n", F_TRIM)},
                {"user", FX("Human: ", "<|separator|>\n\n", F_TRIM)},
                {"assistant", FX("Assistant: ", "<|separator|>\n\n", 0)}},
        .gen = "Assistant:",
    },
    [CHAT_TMPL_HUNYUAN_DENSE] = {
        .name = "hunyuan-dense", .flags = R_IGNORE_GEN, .dflt = SKIP,
        .ovr = {{"system", FX("", HY_PH3, F_FIRST_ONLY)},
                {"user", FX("<｜hy_User｜>", "<｜hy_Assistant｜>", 0)},
                {"assistant", FX("<｜hy_Assistant｜>", HY_PH2, 0)}},
    },
    [CHAT_TMPL_HUNYUAN_MOE] = {
        .name = "hunyuan-moe", .flags = R_IGNORE_GEN,
        .dflt = FX("<|startoftext|>", "<|extra_0|>", 0),
        .ovr = {{"system", FX("<|startoftext|>", "<|extra_4|>", 0)},
                {"assistant", FX("", "<|eos|>", 0)}},
    },
    [CHAT_TMPL_HUNYUAN_VL] = {
        .name = "hunyuan-vl", .flags = R_IGNORE_GEN, .prologue = "<｜hy_begin▁of▁sentence｜>",
        .dflt = SKIP,
        .ovr = {{"system", FX("", HY_PH3, F_FIRST_ONLY)},
                {"user", FX("", "<｜hy_User｜>", 0)},
                {"assistant", FX("", "<｜hy_Assistant｜>", 0)}},
    },
    [CHAT_TMPL_KIMI_K2] = {
        .name = "kimi-k2", .dflt = FX("", "<|im_end|>", 0),
        .ovr = {{"system", FX("<|im_system|>system<|im_middle|>", "<|im_end|>", 0)},
                {"user", FX("<|im_user|>user<|im_middle|>", "<|im_end|>", 0)},
                {"assistant", FX("<|im_assistant|>assistant<|im_middle|>", "<|im_end|>", 0)},
                {"tool", FX("<|im_system|>tool<|im_middle|>", "<|im_end|>", 0)}},
        .gen = "<|im_assistant|>assistant<|im_middle|>",
    },
    [CHAT_TMPL_LLAMA2] = LLAMA2_ROW("llama2", FX("", "\n", 0), "[INST] ", 0),
    [CHAT_TMPL_LLAMA2_SYS] = LLAMA2_ROW("llama2-sys", LLAMA2_SYS_BLOCK(0), "[INST] ", 0),
    [CHAT_TMPL_LLAMA2_SYS_BOS] =
        LLAMA2_ROW("llama2-sys-bos", LLAMA2_SYS_BLOCK(0), "<s>[INST] ", 0),
    [CHAT_TMPL_LLAMA2_SYS_STRIP] =
        LLAMA2_ROW("llama2-sys-strip", LLAMA2_SYS_BLOCK(F_TRIM), "[INST] ", F_TRIM),
    [CHAT_TMPL_LLAMA3] = {
        .name = "llama3",
        .dflt = FR("<|start_header_id|>", "<|end_header_id|>\n\n", "<|eot_id|>", F_TRIM),
        .gen = "<|start_header_id|>assistant<|end_header_id|>\n\n",
    },
    [CHAT_TMPL_LLAMA4] = {
        .name = "llama4", .dflt = FR("<|header_start|>", "<|header_end|>\n\n", "<|eot|>", F_TRIM),
        .gen = "<|header_start|>assistant<|header_end|>\n\n",
    },
    [CHAT_TMPL_MEGREZ] = {
        .name = "megrez", .dflt = FR("<|role_start|>", "<|role_end|>", "<|turn_end|>", 0),
        .gen = "<|role_start|>assistant<|role_end|>",
    },
    [CHAT_TMPL_MINICPM] = {
        .name = "minicpm", .flags = R_IGNORE_GEN, .dflt = FX("", "", F_TRIM),
        .ovr = {{"user", FX("<用户>", "<AI>", F_TRIM)}},
    },
    [CHAT_TMPL_MISTRAL_V1] = MISTRAL_ROW("mistral-v1", " [INST] ", " ", " ", 0),
    [CHAT_TMPL_MISTRAL_V3] = MISTRAL_ROW("mistral-v3", "[INST] ", "", " ", F_TRIM),
    [CHAT_TMPL_MISTRAL_V3_TEKKEN] = MISTRAL_ROW("mistral-v3-tekken", "[INST]", "", "", 0),
    [CHAT_TMPL_MISTRAL_V7] = MISTRAL7_ROW("mistral-v7", " "),
    [CHAT_TMPL_MISTRAL_V7_TEKKEN] = MISTRAL7_ROW("mistral-v7-tekken", ""),
    [CHAT_TMPL_MONARCH] = {
        .name = "monarch", .dflt = FR("<s>", "\n", "</s>\n", F_PRE_NOT_FIRST),
        .gen = "<s>assistant\n",
    },
    [CHAT_TMPL_OPENCHAT] = {
        .name = "openchat", .dflt = {"GPT4 Correct ", ECHO_CAPITAL, ": ", "<|end_of_turn|>", 0},
        .ovr = {{"system", FX("", "<|end_of_turn|>", 0)}},
        .gen = "GPT4 Correct Assistant:",
    },
    [CHAT_TMPL_ORION] = {
        .name = "orion", .flags = R_IGNORE_GEN, .dflt = FX("", "</s>", 0),
        .ovr = {{"system", FX("", "", F_TO_PENDING)},
                {"user", FX("Human: ", "\n\nAssistant: </s>", F_TAKES_PENDING)}},
    },
    [CHAT_TMPL_PANGU_EMBEDDED] = {
        .name = "pangu-embedded", .nosys = "[unused9]系统：[unused10]", .dflt = SKIP,
        .ovr = {{"system", FX("[unused9]系统：", "[unused10]", 0)},
                {"user", FX("[unused9]用户：", "[unused10]", 0)},
                {"assistant", FX("[unused9]助手：", "[unused10]", 0)},
                {"tool", FX("[unused9]工具：", "[unused10]", 0)},
                {"function", FX("[unused9]方法：", "[unused10]", 0)}},
        .gen = "[unused9]助手：",
    },
    [CHAT_TMPL_PHI3] = {
        .name = "phi3", .dflt = FR("<|", "|>\n", "<|end|>\n", 0), .gen = "<|assistant|>\n",
    },
    [CHAT_TMPL_PHI4] = {
        .name = "phi4", .dflt = FR("<|im_start|>", "<|im_sep|>", "<|im_end|>", 0),
        .gen = "<|im_start|>assistant<|im_sep|>",
    },
    [CHAT_TMPL_RWKV_WORLD] = {
        /* "\n\n" is this model's end-of-turn; the answer cue follows a final user turn */
        .name = "rwkv-world", .flags = R_IGNORE_GEN, .dflt = SKIP,
        .ovr = {{"system", FX("System: ", "\n\n", F_TRIM)},
                {"user", FX("User: ", "\n\n", F_TRIM | F_GEN_IF_LAST)},
                {"assistant", FX("Assistant: ", "\n\n", F_TRIM)}},
        .gen = "Assistant:",
    },
    [CHAT_TMPL_SEED_OSS] = {
        .name = "seed_oss", .dflt = FR("<seed:bos>", "\n", "<seed:eos>", 0),
        .ovr = {{"assistant", FX("<seed:bos>assistant\n", "<seed:eos>", F_TRIM)}},
        .gen = "<seed:bos>assistant\n",
    },
    [CHAT_TMPL_SMOLVLM] = {
        /* <|im_start|> is SmolVLM's BOS here, not a chatml turn */
        .name = "smolvlm", .prologue = "<|im_start|>",
        .dflt = FX("Assistant: ", "<end_of_utterance>\n", 0),
        .ovr = {{"system", FX("", "\n\n", 0)},
                {"user", FX("User: ", "<end_of_utterance>\n", 0)}},
        .gen = "Assistant:",
    },
    [CHAT_TMPL_SOLAR_OPEN] = {
        .name = "solar-open", .dflt = FR("<|begin|>", "<|content|>", "<|end|>", 0),
        .gen = "<|begin|>assistant",
    },
    [CHAT_TMPL_VICUNA] = VICUNA_ROW("vicuna", FX("", "\n\n", 0)),
    [CHAT_TMPL_VICUNA_ORCA] = VICUNA_ROW("vicuna-orca", FX("SYSTEM: ", "\n", 0)),
    [CHAT_TMPL_YANDEX] = {
        .name = "yandex", .dflt = SKIP,
        .ovr = {{"user", FX(" Пользователь: ", "\n\n", 0)},
                {"assistant", FX(" Ассистент: ", "\n\n", 0)}},
        .gen = " Ассистент:[SEP]",
    },
    [CHAT_TMPL_ZEPHYR] = {
        .name = "zephyr", .dflt = FR("<|", "|>\n", "<|endoftext|>\n", 0), .gen = "<|assistant|>\n",
    },
    [CHAT_TMPL_DOTS1] = {
        .name = "dots1", .dflt = FX("<|response|>", "<|endofresponse|>", 0),
        .ovr = {{"system", FX("<|system|>", "<|endofsystem|>", 0)},
                {"user", FX("<|userprompt|>", "<|endofuserprompt|>", 0)}},
        .gen = "<|response|>",
    },
};

/* ---- names -------------------------------------------------------------------------------- */

size_t chat_template_count(void)
{
    return CHAT_TMPL_N_BUILTIN;
}

const char *chat_template_name(int id)
{
    if (id < 0 || id >= CHAT_TMPL_N_) return NULL;
    return rows[id].name;
}

int chat_template_by_name(const char *name)
{
    if (!name) return ERR_NOT_FOUND;
    for (int i = 0; i < CHAT_TMPL_N_BUILTIN; i++)
        if (strcmp(rows[i].name, name) == 0) return i;
    return ERR_NOT_FOUND;
}

/* ---- detection ---------------------------------------------------------------------------- */

/* One rule: the text must contain every `all` marker, at least one `any` marker when any[0] is
 * set, and (when `mistral`) either start with "mistral" or contain "[INST]". */
struct rule {
    bool mistral;
    const char *any[2];
    const char *all[4];
    int id;
};

#define V1_OR_TOOLS {"' [INST] ' + system_message", "[AVAILABLE_TOOLS]"}

static const struct rule rules[] = {
    /* <|im_start|> family */
    {false, {NULL}, {"<|im_start|>", "<|im_sep|>"}, CHAT_TMPL_PHI4},
    {false, {NULL}, {"<|im_start|>", "<end_of_utterance>"}, CHAT_TMPL_SMOLVLM},
    {false, {NULL}, {"<|im_start|>"}, CHAT_TMPL_CHATML},
    /* [INST] family: mistral v7, the official v1/v3 templates, then llama2 variants */
    {true, {NULL}, {"[SYSTEM_PROMPT]"}, CHAT_TMPL_MISTRAL_V7},
    {true, V1_OR_TOOLS, {" [INST]"}, CHAT_TMPL_MISTRAL_V1},
    {true, V1_OR_TOOLS, {"\"[INST]\""}, CHAT_TMPL_MISTRAL_V3_TEKKEN},
    {true, V1_OR_TOOLS, {NULL}, CHAT_TMPL_MISTRAL_V3},
    {true, {NULL}, {"content.strip()"}, CHAT_TMPL_LLAMA2_SYS_STRIP},
    {true, {NULL}, {"bos_token + '[INST]"}, CHAT_TMPL_LLAMA2_SYS_BOS},
    {true, {NULL}, {"<<SYS>>"}, CHAT_TMPL_LLAMA2_SYS},
    {true, {NULL}, {NULL}, CHAT_TMPL_LLAMA2},
    /* the rest, in llama.cpp's order */
    {false, {NULL}, {"<|assistant|>", "<|end|>"}, CHAT_TMPL_PHI3},
    {false, {NULL}, {"[gMASK]<sop>"}, CHAT_TMPL_CHATGLM4},
    {false, {NULL}, {"<|assistant|>", "<|user|>", "<|tool_declare|>"}, CHAT_TMPL_EXAONE_MOE},
    {false, {NULL}, {"<|assistant|>", "<|user|>", "</s>"}, CHAT_TMPL_FALCON3},
    {false, {NULL}, {"<|assistant|>", "<|user|>"}, CHAT_TMPL_GLMEDGE},
    {false, {NULL}, {"<|{{ item['role'] }}|>", "<|begin_of_image|>"}, CHAT_TMPL_GLMEDGE},
    {false, {NULL}, {"<|user|>", "<|endoftext|>"}, CHAT_TMPL_ZEPHYR},
    {false, {NULL}, {"bos_token + message['role']"}, CHAT_TMPL_MONARCH},
    {false, {NULL}, {"<start_of_turn>"}, CHAT_TMPL_GEMMA},
    {false, {NULL}, {"'\\n\\nAssistant: ' + eos_token"}, CHAT_TMPL_ORION},
    {false, {NULL}, {"GPT4 Correct "}, CHAT_TMPL_OPENCHAT},
    {false, {NULL}, {"USER: ", "ASSISTANT: ", "SYSTEM: "}, CHAT_TMPL_VICUNA_ORCA},
    {false, {NULL}, {"USER: ", "ASSISTANT: "}, CHAT_TMPL_VICUNA},
    {false, {NULL}, {"### Instruction:", "<|EOT|>"}, CHAT_TMPL_DEEPSEEK},
    {false, {NULL}, {"<|START_OF_TURN_TOKEN|>", "<|USER_TOKEN|>"}, CHAT_TMPL_COMMAND_R},
    {false, {NULL}, {"<|start_header_id|>", "<|end_header_id|>"}, CHAT_TMPL_LLAMA3},
    {false, {NULL}, {"[gMASK]sop"}, CHAT_TMPL_CHATGLM3},
    {false, {NULL}, {"<用户>"}, CHAT_TMPL_MINICPM},
    {false, {NULL}, {"'Assistant: ' + message['content'] + eos_token"}, CHAT_TMPL_DEEPSEEK2},
    {false, {NULL}, {"<｜Assistant｜>", "<｜User｜>", DS_EOS}, CHAT_TMPL_DEEPSEEK3},
    {false, {NULL}, {"[|system|]", "[|assistant|]", "[|endofturn|]", "[|tool|]"},
     CHAT_TMPL_EXAONE4},
    {false, {NULL}, {"[|system|]", "[|assistant|]", "[|endofturn|]"}, CHAT_TMPL_EXAONE3},
    {false, {"rwkv-world", "{{- 'User: ' + message['content']|trim + '\\n\\n' -}}"}, {NULL},
     CHAT_TMPL_RWKV_WORLD},
    /* granite: tool support means 4.x; 4.0 is told apart by its default system message */
    {false, {"<tool_call>", "<tools>"}, {"<|start_of_role|>", "g4_default_system_message"},
     CHAT_TMPL_GRANITE_4_0},
    {false, {"<tool_call>", "<tools>"}, {"<|start_of_role|>"}, CHAT_TMPL_GRANITE_4_1},
    {false, {NULL}, {"<|start_of_role|>"}, CHAT_TMPL_GRANITE},
    {false, {NULL},
     {"message['role'] + additional_special_tokens[0] + message['content'] + "
      "additional_special_tokens[1]"},
     CHAT_TMPL_GIGACHAT},
    {false, {NULL}, {"<|role_start|>"}, CHAT_TMPL_MEGREZ},
    {false, {NULL}, {" Ассистент:"}, CHAT_TMPL_YANDEX},
    {false, {NULL}, {"<role>ASSISTANT</role>", "'HUMAN'"}, CHAT_TMPL_BAILING},
    {false, {NULL}, {"<role>ASSISTANT</role>", "\"HUMAN\"", "<think>"}, CHAT_TMPL_BAILING_THINK},
    {false, {NULL}, {"<role>ASSISTANT</role>", "<role>HUMAN</role>", "<|role_end|>"},
     CHAT_TMPL_BAILING2},
    {false, {NULL}, {"<|header_start|>", "<|header_end|>"}, CHAT_TMPL_LLAMA4},
    {false, {NULL}, {"<|endofuserprompt|>"}, CHAT_TMPL_DOTS1},
    {false, {NULL}, {"<|extra_0|>", "<|extra_4|>"}, CHAT_TMPL_HUNYUAN_MOE},
    {false, {NULL}, {"<|start|>", "<|channel|>"}, CHAT_TMPL_GPT_OSS},
    {false, {NULL}, {"<｜hy_Assistant｜>", "<｜hy_begin▁of▁sentence｜>"}, CHAT_TMPL_HUNYUAN_VL},
    {false, {NULL}, {"<｜hy_Assistant｜>", HY_PH3}, CHAT_TMPL_HUNYUAN_DENSE},
    {false, {NULL}, {"<|im_assistant|>assistant<|im_middle|>"}, CHAT_TMPL_KIMI_K2},
    {false, {NULL}, {"<seed:bos>"}, CHAT_TMPL_SEED_OSS},
    {false, {NULL}, {"'Assistant: '  + message['content'] + '<|separator|>"}, CHAT_TMPL_GROK2},
    {false, {NULL}, {"[unused9]系统：[unused10]"}, CHAT_TMPL_PANGU_EMBEDDED},
    {false, {NULL}, {"<|begin|>", "<|end|>", "<|content|>"}, CHAT_TMPL_SOLAR_OPEN},
};

/* Byte substring search; the text may hold NULs, so no strstr. */
static bool contains(const char *hay, size_t n, const char *needle)
{
    return util_mem_find(hay, n, needle, strlen(needle)) != NULL;
}

static bool rule_matches(const struct rule *r, const char *t, size_t n)
{
    if (r->mistral && !(n >= 7 && memcmp(t, "mistral", 7) == 0) && !contains(t, n, "[INST]"))
        return false;
    if (r->any[0] && !contains(t, n, r->any[0]) && !(r->any[1] && contains(t, n, r->any[1])))
        return false;
    for (size_t k = 0; k < 4 && r->all[k]; k++)
        if (!contains(t, n, r->all[k])) return false;
    return true;
}

int chat_template_detect(const char *jinja, size_t len, bool *fallback)
{
    if (fallback) *fallback = false;
    if (jinja && len > 0) {
        /* a built-in name given where a template is expected is taken at its word */
        for (int i = 0; i < CHAT_TMPL_N_BUILTIN; i++)
            if (strlen(rows[i].name) == len && memcmp(rows[i].name, jinja, len) == 0) return i;
        for (size_t k = 0; k < sizeof rules / sizeof rules[0]; k++)
            if (rule_matches(&rules[k], jinja, len)) return rules[k].id;
    }
    if (fallback) *fallback = true;
    return CHAT_TMPL_CHATML;
}

int chat_template_from_gguf(const struct gguf_ctx *g, bool *fallback)
{
    struct gguf_str s = {0};
    if (!g || gguf_get_str(g, "tokenizer.chat_template", &s) != 0 || s.len > SIZE_MAX)
        return chat_template_detect(NULL, 0, fallback);
    return chat_template_detect(s.ptr, (size_t)s.len, fallback);
}

/* ---- rendering ---------------------------------------------------------------------------- */

/* Counts every byte and copies the ones that fit; the first error sticks. */
struct sink {
    char *out;
    size_t cap;
    size_t len;
    int err;
};

static void put(struct sink *s, const char *p, size_t n)
{
    if (s->err || n == 0) return;
    if (n > SIZE_MAX - s->len) {
        s->err = ERR_OVERFLOW;
        return;
    }
    if (s->len < s->cap) {
        size_t room = s->cap - s->len;
        memcpy(s->out + s->len, p, n < room ? n : room);
    }
    s->len += n;
}

static void puts_(struct sink *s, const char *p)
{
    if (p) put(s, p, strlen(p));
}

/* ASCII only: llama.cpp maps bytes with toupper() in the C locale, which leaves bytes >= 0x80
 * alone, so UTF-8 roles pass through unchanged. */
static char upper(char c)
{
    return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

static void put_role(struct sink *s, const char *role, unsigned echo)
{
    if (echo == ECHO_RAW) {
        puts_(s, role);
    } else if (echo == ECHO_CAPITAL) {
        if (!role[0]) return;
        char c = upper(role[0]);
        put(s, &c, 1);
        puts_(s, role + 1);
    } else if (echo == ECHO_UPPER) {
        char buf[64];
        size_t k = 0;
        for (const char *p = role; *p; p++) {
            buf[k++] = upper(*p);
            if (k == sizeof buf) {
                put(s, buf, k);
                k = 0;
            }
        }
        put(s, buf, k);
    }
}

static bool is_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r'); /* C-locale isspace */
}

/* The content, trimmed when asked. */
static void content_span(const char *c, unsigned flags, const char **p, size_t *n)
{
    size_t b = 0, e = strlen(c);
    if (flags & F_TRIM) {
        while (b < e && is_space((unsigned char)c[b])) b++;
        while (e > b && is_space((unsigned char)c[e - 1])) e--;
    }
    *p = c + b;
    *n = e - b;
}

static const struct fmt *fmt_for(const struct row *r, const char *role)
{
    for (size_t k = 0; k < MAX_OVR && r->ovr[k].role; k++)
        if (strcmp(r->ovr[k].role, role) == 0) return &r->ovr[k].f;
    return &r->dflt;
}

int chat_render(int tmpl, const struct chat_msg *msgs, size_t n, bool add_generation_prompt,
                char *out, size_t cap, size_t *needed)
{
    if (needed) *needed = 0;
    if (tmpl < 0 || tmpl >= CHAT_TMPL_N_ || (n > 0 && !msgs) || (cap > 0 && !out))
        return ERR_INVALID;
    for (size_t i = 0; i < n; i++)
        if (!msgs[i].role || !msgs[i].content) return ERR_INVALID;

    const struct row *r = &rows[tmpl];
    struct sink s = {out, cap, 0, 0};
    const char *cp;
    size_t cn;

    puts_(&s, r->prologue);
    bool first_is_sys = n > 0 && strcmp(msgs[0].role, "system") == 0;
    if (r->nosys && !first_is_sys && (n > 0 || (r->flags & R_NOSYS_EMPTY)))
        puts_(&s, r->nosys);

    bool inside = (r->flags & R_START_INSIDE) != 0;
    size_t pend_from = 0; /* held-back system messages lie in [pend_from, i) */
    bool pending = false; /* some of them is non-empty: llama.cpp merges only non-empty text */
    for (size_t i = 0; i < n; i++) {
        const struct fmt *f = fmt_for(r, msgs[i].role);
        if (r->turn_open && !inside) {
            puts_(&s, r->turn_open);
            inside = true;
        }
        if ((f->flags & F_SKIP) || ((f->flags & F_FIRST_ONLY) && i != 0)) continue;
        content_span(msgs[i].content, f->flags, &cp, &cn);
        if (f->flags & F_TO_PENDING) {
            pending = pending || cn > 0;
            continue;
        }
        if (!((f->flags & F_PRE_NOT_FIRST) && i == 0)) puts_(&s, f->pre);
        put_role(&s, msgs[i].role, f->echo);
        puts_(&s, f->mid);
        if ((f->flags & F_TAKES_PENDING) && pending) {
            for (size_t j = pend_from; j < i; j++) {
                const struct fmt *g = fmt_for(r, msgs[j].role);
                if (!(g->flags & F_TO_PENDING)) continue;
                const char *gp;
                size_t gn;
                content_span(msgs[j].content, g->flags, &gp, &gn);
                put(&s, gp, gn);
            }
            puts_(&s, "\n\n");
            pending = false;
            pend_from = i + 1;
        }
        put(&s, cp, cn);
        puts_(&s, f->post);
        if (f->flags & F_CLOSES_TURN) inside = false;
        if ((f->flags & F_GEN_IF_LAST) && i + 1 == n) puts_(&s, r->gen);
    }
    if (add_generation_prompt && !(r->flags & R_IGNORE_GEN)) puts_(&s, r->gen);

    if (s.err) return s.err;
    if (needed) *needed = s.len;
    if (s.len >= cap) { /* no room for the terminator: report the size, leave a prefix */
        if (cap > 0) out[cap - 1] = '\0';
        return ERR_LIMIT;
    }
    out[s.len] = '\0';
    return 0;
}
