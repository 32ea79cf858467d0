package main

// A PicoClaw-style agent loop over lmpipe.Client.Chat: the tools are declared with their JSON
// Schemas, every call the model makes is executed here and its result sent back as a "tool"
// message with the call's id, until the model answers without calling (or a turn limit).
//
// With a tiny or random-weight model (CI) the first turn asks for a call (tool_choice
// "required"): lmpipe then guarantees a declared tool and arguments that validate against its
// schema, which is what this checks before executing anything. Later turns are "auto".

import (
	"context"
	"fmt"
	"strings"
	"time"

	"lmpipe.example/client/lmpipe"
)

var agentTools = []lmpipe.ToolDefinition{
	{Type: "function", Function: lmpipe.ToolFunctionDefinition{
		Name: "get_time", Description: "the current time in a time zone",
		Parameters: map[string]any{"type": "object",
			"properties": map[string]any{"zone": map[string]any{"type": "string", "enum": []string{"UTC", "local"}}},
			"required":   []string{"zone"}}}},
	{Type: "function", Function: lmpipe.ToolFunctionDefinition{
		Name: "add", Description: "add two integers",
		Parameters: map[string]any{"type": "object",
			"properties": map[string]any{"a": map[string]any{"type": "integer", "minimum": -1000, "maximum": 1000},
				"b": map[string]any{"type": "integer", "minimum": -1000, "maximum": 1000}},
			"required": []string{"a", "b"}}}},
}

// execute runs one call; the arguments are checked as a careful agent would (lmpipe already
// validated them against the schema).
func execute(tc lmpipe.ToolCall) (string, error) {
	switch tc.Name {
	case "get_time":
		zone, ok := tc.Arguments["zone"].(string)
		if !ok || (zone != "UTC" && zone != "local") {
			return "", fmt.Errorf("get_time: bad zone %v", tc.Arguments["zone"])
		}
		t := time.Now()
		if zone == "UTC" {
			t = t.UTC()
		}
		return t.Format(time.RFC3339), nil
	case "add":
		a, okA := tc.Arguments["a"].(float64)
		b, okB := tc.Arguments["b"].(float64)
		if !okA || !okB || a != float64(int(a)) || b != float64(int(b)) {
			return "", fmt.Errorf("add: bad arguments %v", tc.Arguments)
		}
		return fmt.Sprint(int(a) + int(b)), nil
	}
	return "", fmt.Errorf("the model called an undeclared tool %q", tc.Name)
}

func runAgent(ctx context.Context, c *lmpipe.Client) error {
	var sess struct{ Session string }
	if err := c.Call(ctx, "session/create", nil, &sess); err != nil {
		return err
	}
	messages := []lmpipe.Message{
		{Role: "system", Content: "You are a helpful assistant. Use the tools."},
		{Role: "user", Content: "What time is it in UTC, and what is 2 + 3?"},
	}
	calls := 0
	for turn := 0; turn < 3; turn++ {
		opts := map[string]any{"session": sess.Session, "max_tokens": 256, "temperature": 0.8, "seed": turn + 1}
		if turn == 0 { // one call, then the reply must end: finish_reason "tool_calls"
			opts["tool_choice"] = "required"
			opts["parallel_tool_calls"] = false
		}
		streamed := map[int]*strings.Builder{}
		resp, err := c.ChatStream(ctx, messages, agentTools, c.GetDefaultModel(), opts, func(d lmpipe.Delta) {
			if d.IsCall {
				if streamed[d.CallIndex] == nil {
					streamed[d.CallIndex] = &strings.Builder{}
				}
				streamed[d.CallIndex].WriteString(d.Arguments)
			}
		})
		if err != nil {
			return fmt.Errorf("turn %d: %w", turn, err)
		}
		fmt.Printf("agent turn %d: %s, %d call(s), %d of %d prompt tokens cached\n", turn, resp.FinishReason,
			len(resp.ToolCalls), resp.Usage.CachedTokens, resp.Usage.PromptTokens)
		if turn > 0 && resp.Usage.CachedTokens == 0 {
			return fmt.Errorf("turn %d: the conversation's prefix was not reused", turn)
		}
		if turn == 0 && len(resp.ToolCalls) == 0 {
			return fmt.Errorf("tool_choice required gave no call (%s)", resp.FinishReason)
		}
		if len(resp.ToolCalls) == 0 {
			fmt.Printf("  answer: %q\n", resp.Content)
			break
		}
		// the streamed pieces of each complete call add up to its final arguments (a call cut
		// by max_tokens was streamed in part but is not in the result)
		for i, tc := range resp.ToolCalls {
			if sb := streamed[i]; sb == nil || sb.String() != tc.Function.Arguments {
				return fmt.Errorf("call %d: streamed arguments %v, final %q", i, sb, tc.Function.Arguments)
			}
		}
		messages = append(messages, lmpipe.Message{Role: "assistant", Content: resp.Content, ToolCalls: resp.ToolCalls})
		for _, tc := range resp.ToolCalls {
			out, err := execute(tc)
			if err != nil {
				return err
			}
			calls++
			fmt.Printf("  %s %s(%s) -> %s\n", tc.ID, tc.Name, tc.Function.Arguments, out)
			messages = append(messages, lmpipe.Message{Role: "tool", Content: out, ToolCallID: tc.ID})
		}
	}
	if calls == 0 {
		return fmt.Errorf("no tool was executed")
	}
	return c.Call(ctx, "session/close", map[string]any{"session": sess.Session}, nil)
}
