#!/usr/bin/env python3
"""An asyncio parent for lmpipe, standard library only.

Spawns `lmpipe serve -m MODEL`, streams a completion, runs two requests concurrently (the server
queues them; the deltas of each carry its id), cancels one mid-generation and still gets its
answer (-32800 with the partial text), then has the model call a tool (tool_choice "required")
and sends the result back. The reader keeps asyncio's default 64 KiB line limit on
purpose: lmpipe promises shorter lines. Exits non-zero when something is off.

usage: python3 examples/python/client.py [LMPIPE_BIN] [MODEL]
"""
import asyncio
import itertools
import json
import os
import subprocess
import sys
import tempfile


class RpcError(Exception):
    def __init__(self, err):
        super().__init__(f"{err['code']} {err['message']}")
        self.code, self.data = err["code"], err.get("data", {})


class Lmpipe:
    def __init__(self, proc):
        self.proc = proc
        self.ids = itertools.count(1)
        self.pending = {}  # id -> Future
        self.streams = {}  # id -> asyncio.Queue of text pieces (None ends)
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, binary, *args):
        proc = await asyncio.create_subprocess_exec(
            binary, "serve", *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        return cls(proc)

    async def _read(self):
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                break
            msg = json.loads(line)
            if msg.get("method") == "gen/delta":
                q = self.streams.get(msg["params"]["id"])
                if q:
                    q.put_nowait(msg["params"]["text"])
            elif "method" not in msg:
                q = self.streams.pop(msg.get("id"), None)
                if q:
                    q.put_nowait(None)  # all deltas come before the response
                fut = self.pending.pop(msg.get("id"), None)
                if fut and not fut.done():
                    if "error" in msg:
                        fut.set_exception(RpcError(msg["error"]))
                    else:
                        fut.set_result(msg["result"])
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(EOFError("lmpipe exited"))

    def _send(self, obj):
        self.proc.stdin.write(json.dumps(obj).encode() + b"\n")

    def request(self, method, params=None, stream=False):
        """Returns (id, future of the result, queue of streamed text or None)."""
        rid = next(self.ids)
        fut = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        q = None
        if stream:
            q = self.streams[rid] = asyncio.Queue()
            params = dict(params or {}, stream=True)
        self._send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or {}})
        return rid, fut, q

    async def call(self, method, params=None):
        return await self.request(method, params)[1]

    def cancel(self, rid):
        self._send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": rid}})

    async def close(self):
        self.proc.stdin.close()  # stdin EOF: the server cancels what is left and exits 0
        rc = await self.proc.wait()
        await self.reader
        return rc


async def collect(q):
    parts = []
    while (piece := await q.get()) is not None:
        parts.append(piece)
    return "".join(parts)


async def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "lmpipe")
    model = sys.argv[2] if len(sys.argv) > 2 else os.path.join(root, "..", "shared", "models", "stories260K-F32.gguf")
    lm = await Lmpipe.start(binary, "-m", model)
    init = await lm.call("initialize", {"protocolVersion": "2025-06-18", "clientInfo": {"name": "py-example"}})
    print("server", init["serverInfo"], "protocol", init["protocolVersion"])

    # streamed completion: the deltas add up to the final text
    _, fut, q = lm.request("generate", {"prompt": "Once upon a time", "max_tokens": 32, "temperature": 0}, stream=True)
    text = await collect(q)
    res = await fut
    assert text == res["text"] and "little girl named Lily" in text, (text, res)
    print("generate:", repr(text), res["usage"])

    # two at once: both answered, each with its own deltas
    a = lm.request("generate", {"prompt": "Tom had a", "max_tokens": 16, "temperature": 0}, stream=True)
    b = lm.request("generate", {"prompt": "The sun", "max_tokens": 16, "temperature": 0}, stream=True)
    ta, tb = await asyncio.gather(collect(a[2]), collect(b[2]))
    ra, rb = await asyncio.gather(a[1], b[1])
    assert ta == ra["text"] and tb == rb["text"]
    print("concurrent:", repr(ta), "|", repr(tb))

    # cancel mid-generation: a generation that never ends by itself (no limit; when the
    # 128-token context fills, context_shift drops old tokens), so the cancel always finds it
    rid, fut, q = lm.request("generate", {"prompt": "Once upon a time", "max_tokens": -1,
                                          "ignore_eos": True, "temperature": 0,
                                          "context_shift": {"keep": 1}}, stream=True)
    await q.get()  # it is running
    lm.cancel(rid)
    try:
        await fut
        raise SystemExit("FAIL: a cancelled request returned a result")
    except RpcError as e:
        assert e.code == -32800, e
        print("cancelled:", e.data["kind"], "after", repr(e.data["text"]))

    rc = await lm.close()
    assert rc == 0, rc

    # a tool call: the tools' descriptions need more than stories260K's 128 positions, so the
    # model is copied with 2048 (`lmpipe dev edit`); tool_choice "required" guarantees a call of
    # a declared tool whose arguments validate against its schema, even from this tiny model
    with tempfile.TemporaryDirectory() as tmp:
        big = os.path.join(tmp, "s2k.gguf")
        subprocess.run([binary, "dev", "edit", model, big, "--ctx", "2048"], check=True)
        lm = await Lmpipe.start(binary, "-m", big)
        await lm.call("initialize", {"protocolVersion": "2025-06-18", "clientInfo": {"name": "py-example"}})
        tools = [{"type": "function", "function": {
            "name": "get_weather", "description": "the weather in a city",
            "parameters": {"type": "object", "properties": {
                "city": {"type": "string", "maxLength": 20}, "unit": {"enum": ["c", "f"]}},
                "required": ["city", "unit"]}}}]
        messages = [{"role": "user", "content": "What is the weather in Paris?"}]
        res = await lm.call("chat", {"messages": messages, "tools": tools, "tool_choice": "required",
                                     "parallel_tool_calls": False, "temperature": 0.8, "seed": 1,
                                     "max_tokens": 200})
        assert res["finish_reason"] == "tool_calls", res
        call = res["tool_calls"][0]
        args = json.loads(call["function"]["arguments"])  # OpenAI's JSON string
        assert call["function"]["name"] == "get_weather" and args["unit"] in ("c", "f"), call
        print("tool call:", call["id"], call["function"]["name"], args)
        # the result goes back as a "tool" message; the model continues the conversation
        messages += [{"role": "assistant", "content": res["content"], "tool_calls": [call]},
                     {"role": "tool", "tool_call_id": call["id"], "content": "sunny, 21 C"}]
        res = await lm.call("chat", {"messages": messages, "tools": tools, "max_tokens": 16, "temperature": 0})
        print("after the result:", res["finish_reason"], repr(res["text"]))
        rc = await lm.close()
        assert rc == 0, rc
    print("ok")


if __name__ == "__main__":
    asyncio.run(main())
