package bot

import (
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/dify"
)

func TestVisibleTextHoldsReasoningBack(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"Hello", "Hello"},
		{"<think>\nweighing it\n</think>\n\nThe answer", "The answer"},
		{"<think>\nstill weighing", ""},
		{"Intro <think>aside", "Intro "},
		{"The answer <thi", "The answer "},
		{"The answer <", "The answer "},
		{"a < b", "a < b"},
		{"reasoning the template opened</think>\nThe answer", "The answer"},
		{"<THINK attr=1>x</THINK>Done", "Done"},
		{"<thinking> is no tag of ours", "<thinking> is no tag of ours"}, // As stripThink reads it.
	} {
		if got := visibleText(tt.in); got != tt.want {
			t.Errorf("visibleText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestStreamFeedBatches(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	var sent []Stream
	f := &streamFeed{now: func() time.Time { return now }, send: func(s Stream) { sent = append(sent, s) }}
	ev := func(e dify.Event) { f.observe(e) }
	chunk := func(s string) dify.Event { return dify.Event{Event: "text_chunk", Data: dify.EventData{Text: s}} }

	ev(dify.Event{Event: "node_started", Data: dify.EventData{NodeID: "llm", Title: "LLM"}})
	ev(chunk("<think>hm</think>"))
	ev(chunk("Hel"))                            // The first text: at once.
	ev(chunk("lo"))                             // Held: soon after, and short.
	ev(chunk(strings.Repeat("x", streamChars))) // Enough new text: sent.
	now = now.Add(streamEvery)
	ev(dify.Event{Event: "node_finished", Data: dify.EventData{NodeID: "llm", Status: "succeeded"}}) // Time enough.
	ev(dify.Event{Event: "text_replace", Data: dify.EventData{Text: "Moderated"}})                   // Held.
	ev(dify.Event{Event: "ping"})                                                                    // Not an event of the stream.

	var texts []string
	for _, s := range sent {
		texts = append(texts, s.Text)
	}
	want := []string{"", "Hel", "Hello" + strings.Repeat("x", streamChars), "Hello" + strings.Repeat("x", streamChars)}
	if strings.Join(texts, "|") != strings.Join(want, "|") {
		t.Fatalf("sent %q, want %q", texts, want)
	}
	if s := sent[0]; len(s.Tasks) != 1 || s.Tasks[0].Status != TaskRunning {
		t.Errorf("first send's tasks = %+v, want the LLM node running", s.Tasks)
	}
	if s := sent[3]; len(s.Tasks) != 1 || s.Tasks[0].Status != TaskDone {
		t.Errorf("last send's tasks = %+v, want the LLM node done", s.Tasks)
	}
}

func TestStreamFeedChatEvents(t *testing.T) {
	for _, tt := range []struct {
		name   string
		events []dify.Event
		want   string
	}{
		{"chatflow", []dify.Event{{Event: "message", Answer: "Hi "}, {Event: "message", Answer: "there"}}, "Hi there"},
		{"replaced", []dify.Event{{Event: "message", Answer: "bad"}, {Event: "message_replace", Answer: "Moderated"}}, "Moderated"},
		{"agent closes with the whole", []dify.Event{{Event: "agent_message", Answer: "Hi "}, {Event: "agent_message", Answer: "there"},
			{Event: "message", Answer: "Hi there!"}}, "Hi there!"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Unix(0, 0)
			var last string
			f := &streamFeed{now: func() time.Time { now = now.Add(time.Second); return now }, send: func(s Stream) { last = s.Text }}
			for _, e := range tt.events {
				f.observe(e)
			}
			if last != tt.want {
				t.Errorf("streamed %q, want %q", last, tt.want)
			}
		})
	}
}
