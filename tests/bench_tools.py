#!/usr/bin/env python3
"""bench_tools: the latency of one tool call, lmpipe against llama-server --jinja, side by side.

Both serve the same model file: stories260K copied with 2048 positions and Qwen2.5's chat template
(`lmpipe dev edit`, so both read the same tokenizer.chat_template: the Hermes call syntax). The
request is the same: a system and a user message, 5 tools, tool_choice "required", one call
(parallel_tool_calls false), temperature 0. The prompt is cached first (one warm-up request each:
lmpipe in a session, llama-server with cache_prompt), then ROUNDS requests alternate between the
two and each request's wall time (send to full answer, over the loopback for llama-server and a
pipe for lmpipe) is recorded. Prints medians and best times, and whether each answer was a call
of a declared tool with arguments that parse.

usage: python3 tests/bench_tools.py LMPIPE_BIN LLAMA_SERVER [SHARED] [ROUNDS]
(`make bench-tools PEER_SERVER=/path/to/llama-server`). Standard library only; threads: 2 each.
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


def valid(calls):
    if not calls:
        return False
    for c in calls:
        f = c.get("function", {})
        try:
            args = json.loads(f.get("arguments", ""))
        except ValueError:
            return False
        if f.get("name") not in NAMES or not isinstance(args, dict):
            return False
    return True


class Lmpipe:
    def __init__(self, binary, model):
        self.p = subprocess.Popen([binary, "serve", "-m", model, "-t", "2"], stdin=subprocess.PIPE,
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
        r = self.call("chat", {"messages": MESSAGES, "tools": TOOLS, "tool_choice": "required",
                               "parallel_tool_calls": False, "temperature": 0, "max_tokens": 100,
                               "session": self.session})
        return r.get("tool_calls"), r["usage"]

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)


class Server:
    def __init__(self, binary, model, port):
        self.url = "http://127.0.0.1:%d" % port
        self.p = subprocess.Popen([binary, "-m", model, "--jinja", "-c", "2048", "-t", "2", "-np", "1",
                                   "--port", str(port), "--host", "127.0.0.1"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(600):
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("llama-server did not start")

    def tool_call(self):
        body = json.dumps({"messages": MESSAGES, "tools": TOOLS, "tool_choice": "required",
                           "parallel_tool_calls": False, "temperature": 0, "max_tokens": 100,
                           "cache_prompt": True}).encode()
        req = urllib.request.Request(self.url + "/v1/chat/completions", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            j = json.loads(r.read())
        return j["choices"][0]["message"].get("tool_calls"), j.get("usage", {})

    def close(self):
        self.p.terminate()
        self.p.wait(timeout=30)


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    lm_bin, server_bin = sys.argv[1], sys.argv[2]
    shared = sys.argv[3] if len(sys.argv) > 3 else "../shared"
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 10
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "stories2k-qwen.gguf")
        subprocess.run([lm_bin, "dev", "edit", os.path.join(shared, "models", "stories260K-F32.gguf"), model,
                        "--ctx", "2048", "--chat-template-file",
                        os.path.join(shared, "chat", "jinja", "Qwen-Qwen2.5-7B-Instruct.jinja")], check=True)
        lm, srv = Lmpipe(lm_bin, model), Server(server_bin, model, 18000 + os.getpid() % 1000)
        try:
            times = {"lmpipe": [], "llama-server": []}
            ok = {"lmpipe": 0, "llama-server": 0}
            usage = {}
            for name, eng in (("lmpipe", lm), ("llama-server", srv)):
                calls, usage[name] = eng.tool_call()  # warm-up: the prompt into the cache
            for _ in range(rounds):
                for name, eng in (("lmpipe", lm), ("llama-server", srv)):
                    t0 = time.perf_counter()
                    calls, usage[name] = eng.tool_call()
                    times[name].append((time.perf_counter() - t0) * 1000)
                    ok[name] += valid(calls)
            print("one tool call, 5 tools, prompt cached, stories260K (2048 ctx, Qwen2.5 template), %d rounds:" % rounds)
            for name in times:
                print("  %-13s median %7.2f ms  best %7.2f ms  valid calls %d/%d  last usage %s" % (
                    name, statistics.median(times[name]), min(times[name]), ok[name], rounds, json.dumps(usage[name])))
        finally:
            lm.close()
            srv.close()


if __name__ == "__main__":
    main()
