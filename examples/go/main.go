// A Go parent for lmpipe, standard library only (os/exec + bufio + encoding/json).
//
// It spawns `lmpipe serve -m MODEL`, initializes, streams a chat and a raw completion, cancels a
// request mid-generation (and still gets its answer, -32800 with the partial text), uses a
// session across two turns, then runs `lmpipe batch` over a small JSONL file. It exits non-zero
// if anything is not as the protocol (protocol/PROTOCOL.md) says, so CI can run it end to end.
//
// Usage: go run . -lmpipe ../../lmpipe -model ../../../shared/models/stories260K-F32.gguf
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

type rpcError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

func (e *rpcError) Error() string { return fmt.Sprintf("%d %s", e.Code, e.Message) }

type message struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method,omitempty"`
	Params  json.RawMessage `json:"params,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
}

type delta struct {
	ID    json.RawMessage `json:"id"`
	Index int             `json:"index"`
	Text  string          `json:"text"`
}

// Client: one goroutine reads stdout and routes responses to the waiting call and gen/delta
// notifications to the call's delta channel.
type Client struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	mu      sync.Mutex
	nextID  int
	pending map[string]chan message
	deltas  map[string]chan delta
	done    chan struct{}
}

func Start(bin string, args ...string) (*Client, error) {
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &Client{cmd: cmd, stdin: in, pending: map[string]chan message{}, deltas: map[string]chan delta{}, done: make(chan struct{})}
	go c.readLoop(out)
	return c, nil
}

func (c *Client) readLoop(r io.Reader) {
	defer close(c.done)
	sc := bufio.NewScanner(r) // default 64 KiB line limit: lmpipe promises shorter lines
	for sc.Scan() {
		var m message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			fmt.Fprintf(os.Stderr, "bad line from lmpipe: %v\n", err)
			continue
		}
		if m.Method == "gen/delta" {
			var d delta
			if json.Unmarshal(m.Params, &d) == nil {
				c.mu.Lock()
				ch := c.deltas[string(d.ID)]
				c.mu.Unlock()
				if ch != nil {
					ch <- d
				}
			}
			continue
		}
		if m.Method != "" {
			continue // gen/progress, model/progress: ignored here
		}
		c.mu.Lock()
		ch := c.pending[string(m.ID)]
		delete(c.pending, string(m.ID))
		if dch := c.deltas[string(m.ID)]; dch != nil {
			close(dch) // every delta of a request comes before its response
			delete(c.deltas, string(m.ID))
		}
		c.mu.Unlock()
		if ch != nil {
			ch <- m
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "reading lmpipe: %v\n", err)
	}
}

func (c *Client) send(v interface{}) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err = c.stdin.Write(append(b, '\n'))
	return err
}

// Go starts a request and returns its id, the channel of its response and, when stream is
// true, the channel of its deltas (closed before the response is delivered).
func (c *Client) Go(method string, params map[string]interface{}, stream bool) (int, chan message, chan delta, error) {
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	key := fmt.Sprint(id)
	ch := make(chan message, 1)
	c.pending[key] = ch
	var dch chan delta
	if stream {
		dch = make(chan delta, 1024)
		c.deltas[key] = dch
		params["stream"] = true
	}
	c.mu.Unlock()
	err := c.send(map[string]interface{}{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	return id, ch, dch, err
}

func (c *Client) Call(method string, params map[string]interface{}, result interface{}) error {
	if params == nil {
		params = map[string]interface{}{}
	}
	_, ch, _, err := c.Go(method, params, false)
	if err != nil {
		return err
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			return m.Error
		}
		if result != nil {
			return json.Unmarshal(m.Result, result)
		}
		return nil
	case <-c.done:
		return errors.New("lmpipe exited")
	case <-time.After(60 * time.Second):
		return errors.New("timeout")
	}
}

func (c *Client) Cancel(id int) error {
	return c.send(map[string]interface{}{"jsonrpc": "2.0", "method": "notifications/cancelled",
		"params": map[string]interface{}{"requestId": id, "reason": "user"}})
}

// Close ends the session the MCP way: close stdin, wait for exit 0.
func (c *Client) Close() error {
	c.stdin.Close()
	return c.cmd.Wait()
}

type genResult struct {
	Text         string `json:"text"`
	FinishReason string `json:"finish_reason"`
	Session      string `json:"session"`
	Usage        struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		CachedTokens     int `json:"cached_tokens"`
	} `json:"usage"`
	Timings struct {
		PredictedPerSecond float64 `json:"predicted_per_second"`
	} `json:"timings"`
}

func fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", a...)
	os.Exit(1)
}

func main() {
	bin := flag.String("lmpipe", "lmpipe", "path of the lmpipe binary")
	model := flag.String("model", "../shared/models/stories260K-F32.gguf", "GGUF model")
	flag.Parse()

	c, err := Start(*bin, "-m", *model)
	if err != nil {
		fail("start: %v", err)
	}
	var init struct {
		ProtocolVersion string `json:"protocolVersion"`
		ServerInfo      struct{ Name, Version string }
	}
	if err := c.Call("initialize", map[string]interface{}{"protocolVersion": "2025-06-18",
		"clientInfo": map[string]string{"name": "go-example", "version": "1"}}, &init); err != nil {
		fail("initialize: %v", err)
	}
	c.send(map[string]interface{}{"jsonrpc": "2.0", "method": "notifications/initialized"})
	fmt.Printf("server %s %s, protocol %s\n", init.ServerInfo.Name, init.ServerInfo.Version, init.ProtocolVersion)

	// 1. stream a raw completion; the deltas add up to the final text
	_, resp, deltas, err := c.Go("generate", map[string]interface{}{"prompt": "Once upon a time", "max_tokens": 40, "temperature": 0}, true)
	if err != nil {
		fail("generate: %v", err)
	}
	var sb strings.Builder
	fmt.Print("generate: Once upon a time")
	for d := range deltas {
		fmt.Print(d.Text)
		sb.WriteString(d.Text)
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

	// 2. stream a chat in a session, then a second turn that re-uses the cache
	var sess struct{ Session string }
	if err := c.Call("session/create", nil, &sess); err != nil {
		fail("session/create: %v", err)
	}
	msgs := []map[string]string{{"role": "system", "content": "You tell short stories."}, {"role": "user", "content": "Tell me about a cat."}}
	_, resp, deltas, _ = c.Go("chat", map[string]interface{}{"session": sess.Session, "messages": msgs, "max_tokens": 24, "temperature": 0}, true)
	fmt.Print("chat: ")
	for d := range deltas {
		fmt.Print(d.Text)
	}
	m = <-resp
	if m.Error != nil || json.Unmarshal(m.Result, &g) != nil {
		fail("chat answered %v", m.Error)
	}
	fmt.Printf("\n  [%s]\n", g.FinishReason)
	msgs = append(msgs, map[string]string{"role": "assistant", "content": g.Text}, map[string]string{"role": "user", "content": "And a dog?"})
	if err := c.Call("chat", map[string]interface{}{"session": sess.Session, "messages": msgs, "max_tokens": 8, "temperature": 0}, &g); err != nil {
		var re *rpcError
		if !errors.As(err, &re) || !strings.Contains(re.Message, "context_length_exceeded") {
			fail("second turn: %v", err)
		}
		fmt.Println("second turn: context full (the agent would compress history and retry)")
	} else {
		fmt.Printf("second turn: %d of %d prompt tokens came from the cache\n", g.Usage.CachedTokens, g.Usage.PromptTokens)
		if g.Usage.CachedTokens == 0 {
			fail("the session cache was not reused")
		}
	}
	c.Call("session/close", map[string]interface{}{"session": sess.Session}, nil)

	// 3. cancel a request mid-generation: it is still answered, with the partial text
	id, resp, deltas, _ := c.Go("generate", map[string]interface{}{"prompt": "Once upon a time", "max_tokens": -1, "ignore_eos": true, "temperature": 0}, true)
	<-deltas // first piece of text: it is running
	c.Cancel(id)
	for range deltas {
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
	err = c.Call("chat", map[string]interface{}{"messages": msgs, "tools": []map[string]string{{"type": "function"}}}, nil)
	var re *rpcError
	if !errors.As(err, &re) || re.Code != -32602 || !strings.Contains(re.Message, "tools[0]") {
		fail("a tool without a function should be -32602 naming tools[0], got %v", err)
	}
	fmt.Printf("bad tool: %s\n", re.Message)

	if err := c.Close(); err != nil {
		fail("lmpipe exit: %v", err)
	}

	// 5. a batch job: one request per line, one response per line, matched by id
	dir, _ := os.MkdirTemp("", "lmpipe-go")
	defer os.RemoveAll(dir)
	in, out := filepath.Join(dir, "in.jsonl"), filepath.Join(dir, "out.jsonl")
	var lines []string
	for i, p := range []string{"Once upon a time", "Tom had a", "The sun"} {
		b, _ := json.Marshal(map[string]interface{}{"id": fmt.Sprintf("job-%d", i), "prompt": p, "max_tokens": 16, "temperature": 0})
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
		var bm message
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
