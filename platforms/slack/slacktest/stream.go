package slacktest

import (
	"encoding/json"
	"strings"
)

// The streaming methods as Slack answers them: chat.startStream must name the thread it answers in (and, outside
// DMs, the recipient team and user), chat.appendStream and chat.stopStream only take a message that is still
// streaming. ExpireStreams ends every stream as Slack does after about five minutes; FailWith with Refuse makes
// chat.startStream refuse the way Slack does (channel_type_not_supported, not_allowed_token_type, missing_scope).

// streamChunk is one element of a streaming method's chunks argument.
type streamChunk struct {
	Type   string `json:"type"`
	Text   string `json:"text"`
	ID     string `json:"id"`
	Title  string `json:"title"`
	Status string `json:"status"`
}

func (s *Server) startStream(c *Call) map[string]any {
	ch, thread := c.Form.Get("channel"), c.Form.Get("thread_ts")
	switch {
	case ch == "" || thread == "":
		return map[string]any{"ok": false, "error": "invalid_arguments"}
	case !strings.HasPrefix(ch, "D") && c.Form.Get("recipient_team_id") == "":
		return map[string]any{"ok": false, "error": "missing_recipient_team_id"}
	case !strings.HasPrefix(ch, "D") && c.Form.Get("recipient_user_id") == "":
		return map[string]any{"ok": false, "error": "missing_recipient_user_id"}
	}
	chunks, ok := readChunks(c)
	if !ok {
		return map[string]any{"ok": false, "error": "invalid_chunks"}
	}
	ts := s.nextTS()
	m := &Message{Channel: ch, TS: ts, ThreadTS: thread, Streaming: true, Streamed: true}
	m.apply(chunks)
	s.mu.Lock()
	s.msgs[ts] = m
	c.TS = ts
	s.mu.Unlock()
	return map[string]any{"ok": true, "channel": ch, "ts": ts}
}

func (s *Server) appendStream(c *Call) map[string]any { return s.streamTo(c, false) }

func (s *Server) stopStream(c *Call) map[string]any { return s.streamTo(c, true) }

func (s *Server) streamTo(c *Call, stop bool) map[string]any {
	ch, ts := c.Form.Get("channel"), c.Form.Get("ts")
	chunks, ok := readChunks(c)
	if !ok {
		return map[string]any{"ok": false, "error": "invalid_chunks"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c.TS = ts
	m := s.msgs[ts]
	switch {
	case m == nil || m.Channel != ch:
		return map[string]any{"ok": false, "error": "message_not_found"}
	case !m.Streaming:
		return map[string]any{"ok": false, "error": "message_not_in_streaming_state"}
	case !stop && len(chunks) == 0:
		return map[string]any{"ok": false, "error": "no_text"}
	}
	m.apply(chunks)
	if stop {
		m.Streaming = false
		if b := c.Form.Get("blocks"); b != "" {
			m.Blocks = b
		}
	}
	return map[string]any{"ok": true, "channel": ch, "ts": ts}
}

// readChunks reads the chunks argument, and markdown_text as the markdown chunk it stands for.
func readChunks(c *Call) ([]streamChunk, bool) {
	var chunks []streamChunk
	if raw := c.Form.Get("chunks"); raw != "" {
		if err := json.Unmarshal([]byte(raw), &chunks); err != nil {
			return nil, false
		}
	}
	if t := c.Form.Get("markdown_text"); t != "" {
		chunks = append(chunks, streamChunk{Type: "markdown_text", Text: t})
	}
	for _, ch := range chunks {
		switch ch.Type {
		case "markdown_text", "task_update", "plan_update", "blocks":
		default:
			return nil, false
		}
	}
	return chunks, true
}

// apply adds chunks to what a streamed message shows. Sim.mu held.
func (m *Message) apply(chunks []streamChunk) {
	for _, ch := range chunks {
		switch ch.Type {
		case "markdown_text":
			m.Text += ch.Text
		case "task_update":
			i := 0
			for i < len(m.Tasks) && m.Tasks[i].ID != ch.ID {
				i++
			}
			if i == len(m.Tasks) {
				m.Tasks = append(m.Tasks, Task{ID: ch.ID})
			}
			m.Tasks[i].Title, m.Tasks[i].Status = ch.Title, ch.Status
		}
	}
}

// ExpireStreams ends every open stream, as Slack does with a stream left open for minutes: appends and stops
// then answer message_not_in_streaming_state.
func (s *Server) ExpireStreams() {
	s.with(func() {
		for _, m := range s.msgs {
			m.Streaming = false
		}
	})
}

// assistantCall answers an assistant.threads method: the thread must be named, and prompts must be one to four.
func (s *Server) assistantCall(kind string) func(c *Call) map[string]any {
	return func(c *Call) map[string]any {
		ch, thread := c.Form.Get("channel_id"), c.Form.Get("thread_ts")
		if ch == "" || thread == "" {
			return map[string]any{"ok": false, "error": "invalid_arguments"}
		}
		if kind == "prompts" {
			var p []struct{ Title, Message string }
			if json.Unmarshal([]byte(c.Form.Get("prompts")), &p) != nil || len(p) == 0 || len(p) > 4 {
				return map[string]any{"ok": false, "error": "invalid_arguments"}
			}
		}
		return map[string]any{"ok": true}
	}
}
