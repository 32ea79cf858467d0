// Package lmpipe runs a local model as a subprocess (`lmpipe serve`) and talks to it in
// line-delimited JSON-RPC on its stdin/stdout (protocol/PROTOCOL.md). Standard library only.
//
// Client.Chat has the shape of PicoClaw's LLMProvider.Chat (pkg/providers):
//
//	Chat(ctx, messages []Message, tools []ToolDefinition, model string, options map[string]any) (*LLMResponse, error)
//
// and Message, ToolCall, ToolDefinition and LLMResponse have the fields (and JSON names) of its
// protocoltypes, so an agent built that way adds a local provider with a few lines that copy
// fields (see README.md). Tool calls come back as OpenAI's: an id, the function's name and its
// arguments as a JSON string (also parsed into Arguments); lmpipe guarantees a declared tool
// and arguments that validate against the tool's JSON Schema.
//
// One goroutine reads the server's stdout and routes each response to its waiting request and
// each notification (gen/delta, gen/tool_call) to its request's stream. A request whose context
// is cancelled is cancelled on the server too (notifications/cancelled); its answer still comes.
package lmpipe

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
)

// ---- PicoClaw-shaped types ----

// FunctionCall is a call's function: its name and its arguments as a JSON object's text.
type FunctionCall struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// ToolCall is one call of a tool in an assistant message or a response. Name and Arguments
// repeat Function's (Arguments parsed) for convenience; they are not sent.
type ToolCall struct {
	ID        string         `json:"id"`
	Type      string         `json:"type,omitempty"`
	Function  *FunctionCall  `json:"function,omitempty"`
	Name      string         `json:"-"`
	Arguments map[string]any `json:"-"`
}

// Message is one turn: role "system", "user", "assistant" (with ToolCalls) or "tool" (the
// result of the call ToolCallID).
type Message struct {
	Role       string     `json:"role"`
	Content    string     `json:"content"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
}

// ToolFunctionDefinition declares a tool: Parameters is its arguments' JSON Schema.
type ToolFunctionDefinition struct {
	Name        string         `json:"name"`
	Description string         `json:"description"`
	Parameters  map[string]any `json:"parameters"`
}

// ToolDefinition is OpenAI's {"type": "function", "function": {...}}.
type ToolDefinition struct {
	Type     string                 `json:"type"`
	Function ToolFunctionDefinition `json:"function"`
}

// UsageInfo counts tokens; CachedTokens are prompt tokens found in the session's cache.
type UsageInfo struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
	CachedTokens     int `json:"cached_tokens"`
}

// LLMResponse is a chat reply: its text (before any call), its tool calls, why it ended
// ("stop", "length", "tool_calls").
type LLMResponse struct {
	Content      string     `json:"content"`
	ToolCalls    []ToolCall `json:"tool_calls,omitempty"`
	FinishReason string     `json:"finish_reason"`
	Usage        *UsageInfo `json:"usage,omitempty"`
}

// ---- the connection ----

// RPCError is a JSON-RPC error answer. Data holds data.kind, data.retryable and, for a cancelled
// request, data.text.
type RPCError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

func (e *RPCError) Error() string { return fmt.Sprintf("lmpipe: %d %s", e.Code, e.Message) }

// Kind is data.kind ("context_length_exceeded", "invalid_params", ...).
func (e *RPCError) Kind() string {
	var d struct {
		Kind string `json:"kind"`
	}
	json.Unmarshal(e.Data, &d)
	return d.Kind
}

// Frame is one line from the server: a response (ID, Result or Error) or a notification
// (Method, Params).
type Frame struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method,omitempty"`
	Params  json.RawMessage `json:"params,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *RPCError       `json:"error,omitempty"`
}

// Client is one lmpipe process. Safe for concurrent use (the server queues requests).
type Client struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	model   string
	mu      sync.Mutex
	nextID  int
	pending map[string]chan Frame
	streams map[string]chan Frame
	done    chan struct{}
}

// Start spawns `bin serve -m model args...` and initializes the connection. The server's stderr
// (its log) goes to this process's stderr.
func Start(ctx context.Context, bin, model string, args ...string) (*Client, error) {
	cmd := exec.Command(bin, append([]string{"serve", "-m", model}, args...)...)
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
	c := &Client{cmd: cmd, stdin: in, model: model, pending: map[string]chan Frame{},
		streams: map[string]chan Frame{}, done: make(chan struct{})}
	go c.readLoop(out)
	init := map[string]any{"protocolVersion": "2025-06-18",
		"clientInfo": map[string]string{"name": "lmpipe-go", "version": "1"}}
	if err := c.Call(ctx, "initialize", init, nil); err != nil {
		c.Close()
		return nil, fmt.Errorf("lmpipe initialize: %w", err)
	}
	return c, c.notify("notifications/initialized", nil)
}

func (c *Client) readLoop(r io.Reader) {
	defer close(c.done)
	sc := bufio.NewScanner(r) // 64 KiB lines: lmpipe writes shorter ones
	for sc.Scan() {
		var f Frame
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
			continue
		}
		if f.Method != "" { // a notification: its params.id names the request
			var p struct {
				ID json.RawMessage `json:"id"`
			}
			json.Unmarshal(f.Params, &p)
			c.mu.Lock()
			ch := c.streams[string(p.ID)]
			c.mu.Unlock()
			if ch != nil {
				ch <- f
			}
			continue
		}
		c.mu.Lock()
		ch := c.pending[string(f.ID)]
		delete(c.pending, string(f.ID))
		if sch := c.streams[string(f.ID)]; sch != nil {
			close(sch) // every notification of a request comes before its response
			delete(c.streams, string(f.ID))
		}
		c.mu.Unlock()
		if ch != nil {
			ch <- f
		}
	}
}

func (c *Client) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err = c.stdin.Write(append(b, '\n'))
	return err
}

func (c *Client) notify(method string, params any) error {
	m := map[string]any{"jsonrpc": "2.0", "method": method}
	if params != nil {
		m["params"] = params
	}
	return c.send(m)
}

// Go starts a request: its id, the channel of its response and, with stream, the channel of
// its notifications (closed before the response arrives).
func (c *Client) Go(method string, params map[string]any, stream bool) (int, <-chan Frame, <-chan Frame, error) {
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	key := fmt.Sprint(id)
	resp := make(chan Frame, 1)
	c.pending[key] = resp
	var notes chan Frame
	if stream {
		notes = make(chan Frame, 1024)
		c.streams[key] = notes
		params["stream"] = true
	}
	c.mu.Unlock()
	err := c.send(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	return id, resp, notes, err
}

// Cancel asks the server to stop request id; its answer still comes (-32800 with the partial
// text in data.text).
func (c *Client) Cancel(id int) error {
	return c.notify("notifications/cancelled", map[string]any{"requestId": id, "reason": "cancelled"})
}

// wait for a response, cancelling the request when ctx ends (then its -32800 answer is
// returned as ctx's error).
func (c *Client) wait(ctx context.Context, id int, resp <-chan Frame, notes <-chan Frame, onNote func(Frame)) (Frame, error) {
	cancelled := false
	for {
		select {
		case f, ok := <-notes:
			if !ok {
				notes = nil
				continue
			}
			if onNote != nil {
				onNote(f)
			}
		case f := <-resp:
			// select picks at random among ready cases: notifications still buffered when the
			// response is picked come first (the reader closed notes before sending it)
			if notes != nil {
				for n := range notes {
					if onNote != nil {
						onNote(n)
					}
				}
			}
			if cancelled {
				return f, ctx.Err()
			}
			if f.Error != nil {
				return f, f.Error
			}
			return f, nil
		case <-ctx.Done():
			if !cancelled {
				cancelled = true
				c.Cancel(id)
			}
			ctx = context.Background() // now wait for the answer
		case <-c.done:
			return Frame{}, errors.New("lmpipe exited")
		}
	}
}

// Call sends a request and decodes its result into result (may be nil).
func (c *Client) Call(ctx context.Context, method string, params map[string]any, result any) error {
	if params == nil {
		params = map[string]any{}
	}
	id, resp, _, err := c.Go(method, params, false)
	if err != nil {
		return err
	}
	f, err := c.wait(ctx, id, resp, nil, nil)
	if err != nil || result == nil {
		return err
	}
	return json.Unmarshal(f.Result, result)
}

// Close ends the connection the MCP way: stdin closed, the process waited for.
func (c *Client) Close() error {
	c.stdin.Close()
	return c.cmd.Wait()
}

// GetDefaultModel is the model file the process serves (PicoClaw's LLMProvider has it too).
func (c *Client) GetDefaultModel() string { return c.model }

// ---- chat ----

// Delta is one streamed piece of a reply: Text, or a piece of tool call CallIndex (Name set
// from its first piece on, Arguments the next bytes of its arguments' JSON).
type Delta struct {
	Text      string
	CallIndex int
	CallID    string
	Name      string
	Arguments string
	IsCall    bool
}

// Options understood by Chat (others are passed through as protocol fields, e.g. "seed",
// "top_k", "stop"): "max_tokens", "temperature", "tool_choice" ("auto", "none", "required" or a
// tool's name), "parallel_tool_calls", "session".
func chatParams(messages []Message, tools []ToolDefinition, options map[string]any) map[string]any {
	p := map[string]any{"messages": messages}
	if len(tools) > 0 {
		p["tools"] = tools
	}
	for k, v := range options {
		if k == "tool_choice" {
			if s, ok := v.(string); ok && s != "auto" && s != "none" && s != "required" {
				v = map[string]any{"type": "function", "function": map[string]string{"name": s}}
			}
		}
		p[k] = v
	}
	return p
}

type chatResult struct {
	Text         string     `json:"text"`
	Content      *string    `json:"content"`
	ToolCalls    []ToolCall `json:"tool_calls"`
	FinishReason string     `json:"finish_reason"`
	Usage        *UsageInfo `json:"usage"`
}

// Chat sends a conversation (and the tools the model may call) and returns the reply. model is
// informational (the process serves one model). The tool calls' Arguments are parsed for you.
func (c *Client) Chat(ctx context.Context, messages []Message, tools []ToolDefinition, model string, options map[string]any) (*LLMResponse, error) {
	return c.ChatStream(ctx, messages, tools, model, options, nil)
}

// ChatStream is Chat with the reply's text and tool calls heard as they are generated.
func (c *Client) ChatStream(ctx context.Context, messages []Message, tools []ToolDefinition, model string, options map[string]any, onDelta func(Delta)) (*LLMResponse, error) {
	_ = model
	id, resp, notes, err := c.Go("chat", chatParams(messages, tools, options), onDelta != nil)
	if err != nil {
		return nil, err
	}
	var onNote func(Frame)
	if onDelta != nil {
		onNote = func(f Frame) {
			var p struct {
				Text      string `json:"text"`
				CallIndex int    `json:"call_index"`
				CallID    string `json:"call_id"`
				Name      string `json:"name"`
				Arguments string `json:"arguments_delta"`
			}
			if json.Unmarshal(f.Params, &p) != nil {
				return
			}
			switch f.Method {
			case "gen/delta":
				onDelta(Delta{Text: p.Text})
			case "gen/tool_call":
				onDelta(Delta{IsCall: true, CallIndex: p.CallIndex, CallID: p.CallID, Name: p.Name, Arguments: p.Arguments})
			}
		}
	}
	f, err := c.wait(ctx, id, resp, notes, onNote)
	if err != nil {
		return nil, err
	}
	var r chatResult
	if err := json.Unmarshal(f.Result, &r); err != nil {
		return nil, fmt.Errorf("lmpipe chat result: %w", err)
	}
	out := &LLMResponse{Content: r.Text, ToolCalls: r.ToolCalls, FinishReason: r.FinishReason, Usage: r.Usage}
	if r.Content != nil {
		out.Content = *r.Content
	}
	for i := range out.ToolCalls {
		tc := &out.ToolCalls[i]
		if tc.Function == nil {
			return nil, fmt.Errorf("lmpipe chat result: tool call %d has no function", i)
		}
		tc.Name = tc.Function.Name
		if err := json.Unmarshal([]byte(tc.Function.Arguments), &tc.Arguments); err != nil {
			return nil, fmt.Errorf("lmpipe chat result: tool call %d arguments: %w", i, err)
		}
	}
	return out, nil
}
