// A Go parent for lmpipe, standard library only: the lmpipe package (./lmpipe) spawns
// `lmpipe serve` and speaks its JSON-RPC; this program uses it the way an agent would.
//
// It streams a raw completion, uses a session across two chat turns, cancels a request
// mid-generation (and still gets its answer, -32800 with the partial text), runs an agent loop
// that declares tools, executes the calls the model makes and sends the results back (agent.go),
// then runs `lmpipe batch` over a small JSONL file. It exits non-zero if anything is not as the
// protocol (protocol/PROTOCOL.md) says, so CI can run it end to end.
//
// Usage: go run . -lmpipe ../../lmpipe -model ../../../shared/models/stories260K-F32.gguf \
//
//	[-agent-model MODEL]   (a model with a chat template and room for the tools' descriptions;
//	                       default: -model)
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"lmpipe.example/client/lmpipe"
)

type genResult struct {
	Text         string `json:"text"`
	FinishReason string `json:"finish_reason"`
	Usage        struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		CachedTokens     int `json:"cached_tokens"`
	} `json:"usage"`
	Timings struct {
		PredictedPerSecond float64 `json:"predicted_per_second"`
	} `json:"timings"`
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", a...)
	os.Exit(1)
}

func main() {
	bin := flag.String("lmpipe", "lmpipe", "path of the lmpipe binary")
	model := flag.String("model", "../shared/models/stories260K-F32.gguf", "GGUF model")
	agentModel := flag.String("agent-model", "", "GGUF model for the agent loop (default: -model)")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	c, err := lmpipe.Start(ctx, *bin, *model)
	if err != nil {
		fail("start: %v", err)
	}

	// 1. stream a raw completion; the deltas add up to the final text
	_, resp, notes, err := c.Go("generate", map[string]any{"prompt": "Once upon a time", "max_tokens": 40, "temperature": 0}, true)
	if err != nil {
		fail("generate: %v", err)
	}
	var sb strings.Builder
	fmt.Print("generate: Once upon a time")
	for f := range notes {
		var d struct{ Text string }
		if f.Method == "gen/delta" && json.Unmarshal(f.Params, &d) == nil {
			fmt.Print(d.Text)
			sb.WriteString(d.Text)
		}
	}
	m := <-resp
	var g genResult
	if m.Error != nil || json.Unmarshal(m.Result, &g) != nil {
		fail("generate answered %v", m.Error)
	}
	fmt.Printf("\n  [%s, %d tokens, %.0f tok/s]\n", g.FinishReason, g.Usage.CompletionTokens, g.Timings.PredictedPerSecond)
	if sb.String() != g.Text || !strings.Contains(g.Text, "there was a little girl named Lily") {
		fail("streamed text %q, final %q", sb.String(), g.Text)
	}

	// 2. a chat in a session, then a second turn that re-uses the cache
	var sess struct{ Session string }
	if err := c.Call(ctx, "session/create", nil, &sess); err != nil {
		fail("session/create: %v", err)
	}
	msgs := []lmpipe.Message{{Role: "system", Content: "You tell short stories."}, {Role: "user", Content: "Tell me about a cat."}}
	fmt.Print("chat: ")
	r, err := c.ChatStream(ctx, msgs, nil, "", map[string]any{"session": sess.Session, "max_tokens": 24, "temperature": 0},
		func(d lmpipe.Delta) { fmt.Print(d.Text) })
	if err != nil {
		fail("chat: %v", err)
	}
	fmt.Printf("\n  [%s]\n", r.FinishReason)
	msgs = append(msgs, lmpipe.Message{Role: "assistant", Content: r.Content}, lmpipe.Message{Role: "user", Content: "And a dog?"})
	r, err = c.Chat(ctx, msgs, nil, "", map[string]any{"session": sess.Session, "max_tokens": 8, "temperature": 0})
	if err != nil {
		var re *lmpipe.RPCError
		if !errors.As(err, &re) || re.Kind() != "context_length_exceeded" {
			fail("second turn: %v", err)
		}
		fmt.Println("second turn: context full (the agent would compress history and retry)")
	} else {
		fmt.Printf("second turn: %d of %d prompt tokens came from the cache\n", r.Usage.CachedTokens, r.Usage.PromptTokens)
		if r.Usage.CachedTokens == 0 {
			fail("the session cache was not reused")
		}
	}
	c.Call(ctx, "session/close", map[string]any{"session": sess.Session}, nil)

	// 3. cancel a request mid-generation: it is still answered, with the partial text. It never
	// ends by itself (no limit; context_shift drops old tokens when the context is full), so the
	// cancel always finds it running.
	id, resp, notes, _ := c.Go("generate", map[string]any{"prompt": "Once upon a time", "max_tokens": -1, "ignore_eos": true, "temperature": 0,
		"context_shift": map[string]any{"keep": 1}}, true)
	<-notes // the first piece of text: it is running
	c.Cancel(id)
	for range notes {
	}
	m = <-resp
	if m.Error == nil || m.Error.Code != -32800 {
		fail("cancelled request answered %+v", m)
	}
	var partial struct {
		Kind string `json:"kind"`
		Text string `json:"text"`
	}
	json.Unmarshal(m.Error.Data, &partial)
	fmt.Printf("cancelled: %s after %q\n", partial.Kind, partial.Text)

	// 4. errors are data: a malformed tool is invalid params (-32602), with the field named
	err = c.Call(ctx, "chat", map[string]any{"messages": msgs, "tools": []map[string]string{{"type": "function"}}}, nil)
	var re *lmpipe.RPCError
	if !errors.As(err, &re) || re.Code != -32602 || !strings.Contains(re.Message, "tools[0]") {
		fail("a tool without a function should be -32602 naming tools[0], got %v", err)
	}
	fmt.Printf("bad tool: %s\n", re.Message)
	if err := c.Close(); err != nil {
		fail("lmpipe exit: %v", err)
	}

	// 5. an agent loop: tools declared, calls executed, results sent back
	am := *agentModel
	if am == "" {
		am = *model
	}
	a, err := lmpipe.Start(ctx, *bin, am)
	if err != nil {
		fail("start %s: %v", am, err)
	}
	if err := runAgent(ctx, a); err != nil {
		fail("agent: %v", err)
	}
	if err := a.Close(); err != nil {
		fail("lmpipe exit: %v", err)
	}

	// 6. a batch job: one request per line, one response per line, matched by id
	dir, _ := os.MkdirTemp("", "lmpipe-go")
	defer os.RemoveAll(dir)
	in, out := filepath.Join(dir, "in.jsonl"), filepath.Join(dir, "out.jsonl")
	var lines []string
	for i, p := range []string{"Once upon a time", "Tom had a", "The sun"} {
		b, _ := json.Marshal(map[string]any{"id": fmt.Sprintf("job-%d", i), "prompt": p, "max_tokens": 16, "temperature": 0})
		lines = append(lines, string(b))
	}
	os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	cmd := exec.Command(*bin, "batch", "-m", *model, in, "-o", out)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		fail("batch: %v", err)
	}
	f, _ := os.Open(out)
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		var bm lmpipe.Frame
		if err := json.Unmarshal(sc.Bytes(), &bm); err != nil || bm.Error != nil {
			fail("batch line %q", sc.Text())
		}
		json.Unmarshal(bm.Result, &g)
		fmt.Printf("batch %s: %q\n", bm.ID, g.Text)
		n++
	}
	if n != 3 {
		fail("batch wrote %d lines", n)
	}
	fmt.Println("ok")
}
