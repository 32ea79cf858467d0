#!/usr/bin/env python3
"""bench_tools: the latency of one tool call, lmpipe against llama-server --jinja, side by side.

Both serve the same model file: by default Qwen2.5-0.5B's shape with random weights and the real
Qwen2 vocabulary (`lmpipe dev synth --preset qwen2.5-0.5b --vocab-from ggml-vocab-qwen2.gguf`,
Q8_0, cached in BENCH_DIR like `make bench`'s files), given Qwen2.5's chat template and 4096
positions with `lmpipe dev edit`, so both read the same tokenizer.chat_template (the Hermes
`<tool_call>` syntax, whose markers are single tokens of that vocabulary). MODEL=stories runs the
same on stories260K (llama.cpp answers it with text: its vocabulary has no <tool_call> token).
The request is the same: a system and a user message, 5 tools, tool_choice "required" (CHOICE=exec
names `exec` instead: llama-server 34af94cd takes only a string there and silently treats an object
as "auto", so only "required" is the same request to both), one call (parallel_tool_calls false),
temperature 0. The prompt is cached first (one warm-up request
each: lmpipe in a session, llama-server with cache_prompt), then ROUNDS requests alternate
between the two and each request's wall time (send to full answer, over the loopback for
llama-server and a pipe for lmpipe) is recorded. Prints medians and best times, the tokens
generated, and whether each answer was one call of a declared tool (of `exec` when named) with
arguments that parse as an object. Random weights
write different (valid) arguments in the two engines, so ms per generated token is printed too.

usage: python3 tests/bench_tools.py LMPIPE_BIN LLAMA_SERVER [SHARED] [ROUNDS]
env:   BENCH_DIR (.cache/bench), MODEL (qwen | stories | a .gguf path: a real model, its own
       template), BENCH_T (threads, 2),
       CHOICE (required | exec | auto; required), SERVER_LOG (a file for llama-server's log)
(`make bench-tools PEER_SERVER=/path/to/llama-server`). Standard library only.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "the weather in a city", "parameters": {
        "type": "object", "properties": {"city": {"type": "string", "maxLength": 20}, "unit": {"enum": ["c", "f"]}},
        "required": ["city", "unit"]}}},
    {"type": "function", "function": {"name": "exec", "description": "run a shell command", "parameters": {
        "type": "object", "properties": {"command": {"type": "string", "maxLength": 40}}, "required": ["command"]}}},
    {"type": "function", "function": {"name": "read_file", "description": "read a file", "parameters": {
        "type": "object", "properties": {"path": {"type": "string", "maxLength": 40}}, "required": ["path"]}}},
    {"type": "function", "function": {"name": "web_search", "description": "search the web", "parameters": {
        "type": "object", "properties": {"query": {"type": "string", "maxLength": 40},
                                         "count": {"type": "integer", "minimum": 1, "maximum": 10}},
        "required": ["query"]}}},
    {"type": "function", "function": {"name": "send_message", "description": "send a message", "parameters": {
        "type": "object", "properties": {"to": {"type": "string", "maxLength": 20}, "text": {"type": "string", "maxLength": 40}},
        "required": ["to", "text"]}}},
]
MESSAGES = [{"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the weather in Paris?"}]
NAMES = {t["function"]["name"] for t in TOOLS}


CHOICE_ARG = os.environ.get("CHOICE", "required")
CHOICE = {"type": "function", "function": {"name": "exec"}} if CHOICE_ARG == "exec" else CHOICE_ARG
THREADS = os.environ.get("BENCH_T", "2")


def valid(calls):
    if not calls or len(calls) != 1:
        return False
    f = calls[0].get("function", {})
    try:
        args = json.loads(f.get("arguments", ""))
    except ValueError:
        return False
    if CHOICE_ARG == "exec" and f.get("name") != "exec":
        return False
    return f.get("name") in NAMES and isinstance(args, dict)


class Lmpipe:
    def __init__(self, binary, model):
        self.p = subprocess.Popen([binary, "serve", "-m", model, "-t", THREADS], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self.n = 0
        self.call("initialize", {})
        self.session = self.call("session/create", None)["session"]

    def call(self, method, params):
        self.n += 1
        msg = {"jsonrpc": "2.0", "id": self.n, "method": method}
        if params is not None:
            msg["params"] = params
        self.p.stdin.write(json.dumps(msg) + "\n")
        self.p.stdin.flush()
        while True:
            r = json.loads(self.p.stdout.readline())
            if r.get("id") == self.n:
                if "error" in r:
                    raise SystemExit("lmpipe: %s" % r["error"])
                return r["result"]

    def tool_call(self):
        r = self.call("chat", {"messages": MESSAGES, "tools": TOOLS, "tool_choice": CHOICE,
                               "parallel_tool_calls": False, "temperature": 0, "max_tokens": 200,
                               "session": self.session})
        return r.get("tool_calls"), r["usage"], r.get("finish_reason"), r.get("content") or ""

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)
        self.p.stdout.close()


class Server:
    def __init__(self, binary, model, port):
        self.url = "http://127.0.0.1:%d" % port
        log = os.environ.get("SERVER_LOG")
        self.log = open(log, "w") if log else subprocess.DEVNULL
        self.p = subprocess.Popen([binary, "-m", model, "--jinja", "-c", "4096", "-t", THREADS, "-np", "1",
                                   "--port", str(port), "--host", "127.0.0.1"],
                                  stdout=subprocess.DEVNULL, stderr=self.log)
        for _ in range(600):
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("llama-server did not start")

    def tool_call(self):
        body = json.dumps({"messages": MESSAGES, "tools": TOOLS, "tool_choice": CHOICE,
                           "parallel_tool_calls": False, "temperature": 0, "max_tokens": 200,
                           "cache_prompt": True}).encode()
        req = urllib.request.Request(self.url + "/v1/chat/completions", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            j = json.loads(r.read())
        c = j["choices"][0]
        return c["message"].get("tool_calls"), j.get("usage", {}), c.get("finish_reason"), c["message"].get("content") or ""

    def close(self):
        self.p.terminate()
        self.p.wait(timeout=30)
        if self.log is not subprocess.DEVNULL:
            self.log.close()


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    lm_bin, server_bin = sys.argv[1], sys.argv[2]
    shared = sys.argv[3] if len(sys.argv) > 3 else "../shared"
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 10
    which = os.environ.get("MODEL", "qwen")
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "bench-tools.gguf")
        template = os.path.join(shared, "chat", "jinja", "Qwen-Qwen2.5-7B-Instruct.jinja")
        if os.path.isfile(which):  # a real model: its own chat template
            src, label, template = which, os.path.basename(which), None
        elif which == "stories":
            src, label = os.path.join(shared, "models", "stories260K-F32.gguf"), "stories260K F32"
        else:
            bdir = os.environ.get("BENCH_DIR", ".cache/bench")
            os.makedirs(bdir, exist_ok=True)
            src, label = os.path.join(bdir, "qwen2.5-0.5b-qwen2-Q8_0.gguf"), "Qwen2.5-0.5B shape, Q8_0, random weights"
            if not os.path.exists(src):
                print("bench-tools: generating %s (once)" % src, flush=True)
                subprocess.run([lm_bin, "dev", "synth", src, "--preset", "qwen2.5-0.5b", "--type", "Q8_0",
                                "--vocab-from", os.path.join(shared, "vocab", "ggml-vocab-qwen2.gguf")], check=True)
        subprocess.run([lm_bin, "dev", "edit", src, model, "--ctx", "4096"] +
                       (["--chat-template-file", template] if template else []), check=True,
                       stdout=subprocess.DEVNULL)
        lm, srv = Lmpipe(lm_bin, model), Server(server_bin, model, 18000 + os.getpid() % 1000)
        try:
            times = {"lmpipe": [], "llama-server": []}
            ok = {"lmpipe": 0, "llama-server": 0}
            called = {"lmpipe": {}, "llama-server": {}}
            last = {}
            usage = {}
            for name, eng in (("lmpipe", lm), ("llama-server", srv)):
                eng.tool_call()  # warm-up: the prompt into the cache
            for _ in range(rounds):
                for name, eng in (("lmpipe", lm), ("llama-server", srv)):
                    t0 = time.perf_counter()
                    calls, usage[name], finish, content = eng.tool_call()
                    times[name].append((time.perf_counter() - t0) * 1000)
                    last[name] = (finish, content)
                    ok[name] += valid(calls)
                    for c in calls or []:
                        tool = c.get("function", {}).get("name", "?")
                        called[name][tool] = called[name].get(tool, 0) + 1
            print("one tool call (tool_choice %s), 5 tools, prompt cached, %s, %s template, %s threads, "
                  "%d rounds:" % (json.dumps(CHOICE), label, "Qwen2.5" if template else "its own", THREADS, rounds))
            for name in times:
                n = usage[name].get("completion_tokens", 0)
                med = statistics.median(times[name])
                print("  %-13s median %8.2f ms  best %8.2f ms  %3d tokens (%.2f ms/token)  valid calls %d/%d"
                      "  prompt %s, cached %s, called %s" % (
                          name, med, min(times[name]), n, med / n if n else 0, ok[name], rounds,
                          usage[name].get("prompt_tokens"), usage[name].get("cached_tokens",
                          usage[name].get("prompt_tokens_details", {}).get("cached_tokens")),
                          json.dumps(called[name], sort_keys=True)))
                print("  %-13s last answer: finish_reason %s, content %s" % (
                    "", last[name][0], json.dumps(last[name][1][:60] + ("..." if len(last[name][1]) > 60 else ""))))
            if ok["lmpipe"] == rounds and ok["llama-server"] == rounds:
                print("  ratio of medians per call (llama-server / lmpipe): %.2fx" % (
                    statistics.median(times["llama-server"]) / statistics.median(times["lmpipe"])))
            else:
                print("  no per-call ratio: not every answer of both was a valid call")
            per_tok = {k: statistics.median(times[k]) / usage[k].get("completion_tokens", 0)
                       for k in times if usage[k].get("completion_tokens")}
            if len(per_tok) == 2:
                print("  ratio of ms per generated token (llama-server / lmpipe): %.2fx" % (
                    per_tok["llama-server"] / per_tok["lmpipe"]))
        finally:
            lm.close()
            srv.close()


if __name__ == "__main__":
    main()
