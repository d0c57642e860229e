package slack_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/dify/difytest"
	slackadapter "github.com/difybot/difybot/platforms/slack"
	"github.com/difybot/difybot/platforms/slack/slacktest"
)

// newStreamSystem is newSystem with the adapter streaming (SLACK_STREAMING=auto unless edit says otherwise).
func newStreamSystem(t testing.TB, opts difytest.Options, edit func(*slackadapter.Config)) *system {
	t.Helper()
	s := newIdleSystemWith(t, opts, func(c *slackadapter.Config) {
		c.Streaming = slackadapter.StreamingAuto
		if edit != nil {
			edit(c)
		}
	})
	s.startQueue(t)
	return s
}

// answered waits until n runs have replied to their attempt.
func (s *system) answered(t testing.TB, n int) []bot.Run {
	t.Helper()
	var runs []bot.Run
	eventually(t, e2eWait, "the answers", func() bool {
		var err error
		runs, err = s.store.ListRuns(context.Background(), bot.RunFilter{})
		done := 0
		for _, r := range runs {
			if r.RepliedAttempt == r.Attempt {
				done++
			}
		}
		return err == nil && done == n
	})
	return runs
}

// methods are the methods of the fake's writes (and assistant calls), in order, with consecutive appends as one.
func methods(s *slacktest.Server) []string {
	var out []string
	for _, c := range s.Calls() {
		switch {
		case c.Method == "chat.appendStream" && len(out) > 0 && out[len(out)-1] == "chat.appendStream+":
		case c.Method == "chat.appendStream":
			out = append(out, "chat.appendStream+")
		case strings.HasPrefix(c.Method, "chat.") || strings.HasPrefix(c.Method, "assistant.") || c.Method == "files.completeUploadExternal":
			out = append(out, c.Method)
		}
	}
	return out
}

func equal(a, b []string) bool { return strings.Join(a, " ") == strings.Join(b, " ") }

// streamedText is the markdown a message's stream calls carried, in order.
func streamedText(s *slacktest.Server, ts string) string {
	var b strings.Builder
	for _, c := range s.Calls() {
		if c.TS != ts || !strings.HasPrefix(c.Method, "chat.") || !strings.Contains(c.Method, "Stream") {
			continue
		}
		var chunks []struct{ Type, Text string }
		json.Unmarshal([]byte(c.Form.Get("chunks")), &chunks)
		for _, ch := range chunks {
			if ch.Type == "markdown_text" {
				b.WriteString(ch.Text)
			}
		}
	}
	return b.String()
}

// onlyMessage is the one message the fake shows besides the ones the test put there.
func onlyMessage(t testing.TB, s *slacktest.Server) slacktest.Message {
	t.Helper()
	msgs := s.Messages()
	if len(msgs) != 1 {
		t.Fatalf("the channels show %d messages, want the one answer: %+v", len(msgs), msgs)
	}
	return msgs[0]
}

// A photo in a DM, a workflow: the answer is one message, streamed as Dify writes it and stopped with the rest;
// the nodes are its timeline.
func TestStreamDMPhotoWorkflow(t *testing.T) {
	s := newStreamSystem(t, difytest.Options{Scenario: "ok"}, nil)
	s.deliver(t, s.imageDM(t), 0)
	s.answered(t, 1)

	if got, want := methods(s.slack), []string{"chat.startStream", "chat.appendStream+", "chat.stopStream"}; !equal(got, want) {
		t.Fatalf("calls = %v, want %v", got, want)
	}
	start := s.slack.CallsTo("chat.startStream")[0].Form
	if start.Get("channel") != dmChannel || start.Get("thread_ts") != "1763800000.123456" || start.Get("task_display_mode") != "timeline" {
		t.Errorf("chat.startStream = %v, want it in the message's thread, as a timeline", start)
	}
	m := onlyMessage(t, s.slack)
	if !m.Streamed || m.Streaming || !strings.Contains(m.Text, "Received a PNG image") || !strings.Contains(m.Text, "You said: What is in this photo?") {
		t.Errorf("message = %+v, want the whole answer, stopped", m)
	}
	if len(m.Tasks) == 0 {
		t.Fatal("no task chunks: the nodes were not shown")
	}
	for _, task := range m.Tasks {
		if task.Status != "complete" || task.Title == "" {
			t.Errorf("task %+v, want every node complete", task)
		}
	}
}

// In a channel thread Slack wants the recipient named.
func TestStreamChannelThread(t *testing.T) {
	s := newStreamSystem(t, difytest.Options{Scenario: "ok"}, nil)
	s.slack.AddFile("F07KX3C0N5R", slacktest.File{Name: "receipt.jpg", Mimetype: "image/jpeg", Body: jpegBytes(t)})
	s.deliver(t, payload(t, "app_mention_file.json", s.slack), 0)
	s.answered(t, 1)

	if got, want := methods(s.slack), []string{"chat.startStream", "chat.appendStream+", "chat.stopStream"}; !equal(got, want) {
		t.Fatalf("calls = %v, want %v", got, want)
	}
	start := s.slack.CallsTo("chat.startStream")[0].Form
	if start.Get("recipient_team_id") != slacktest.TeamID || start.Get("recipient_user_id") != "U02ABCDEF12" {
		t.Errorf("chat.startStream = %v, want the recipient team and user", start)
	}
	if m := onlyMessage(t, s.slack); !strings.Contains(m.Text, "Received a JPEG image") {
		t.Errorf("message = %+v", m)
	}
}

// A chatflow streams its message events.
func TestStreamChatflowAnswer(t *testing.T) {
	s := newStreamSystem(t, difytest.Options{Scenario: "chat_ok"}, nil)
	s.deliver(t, payload(t, "message_im.json", s.slack), 0)
	s.answered(t, 1)

	if got, want := methods(s.slack), []string{"chat.startStream", "chat.appendStream+", "chat.stopStream"}; !equal(got, want) {
		t.Fatalf("calls = %v, want %v", got, want)
	}
	m := onlyMessage(t, s.slack)
	if !strings.Contains(m.Text, "You said: Summarise the report") || m.Streaming {
		t.Errorf("message = %+v, want the chat answer", m)
	}
	if streamedText(s.slack, m.TS) != m.Text {
		t.Errorf("the stream carried %q, the message shows %q", streamedText(s.slack, m.TS), m.Text)
	}
}

// A failure stops the stream and shows the diagnosis with its Retry button on the same message; the Retry
// starts a new stream in its place.
func TestStreamFailureThenRetry(t *testing.T) {
	s := newStreamSystem(t, difytest.Options{Scenario: "plugin_error"}, nil)
	value, _, failure := s.failedWithRetry(t)
	ts := failure.Form.Get("ts")
	got := methods(s.slack)
	if want := []string{"chat.startStream", "chat.appendStream+", "chat.stopStream", "chat.update"}; !equal(got, want) &&
		!equal(got, []string{"chat.startStream", "chat.stopStream", "chat.update"}) {
		t.Fatalf("calls = %v, want %v", got, want)
	}
	if s.slack.CallsTo("chat.startStream")[0].TS != ts || s.slack.CallsTo("chat.stopStream")[0].TS != ts {
		t.Errorf("the diagnosis went to %s, want the stream's message", ts)
	}

	if err := s.sim.SetScenario("ok"); err != nil {
		t.Fatal(err)
	}
	if w := serve(s.inter, s.click(t, value, failure)()); w.Code != http.StatusOK {
		t.Fatalf("interaction answered %d, want 200", w.Code)
	}
	eventually(t, e2eWait, "the retried answer", func() bool {
		msgs := s.slack.Messages()
		return len(msgs) == 1 && msgs[0].TS != ts && !msgs[0].Streaming && strings.Contains(msgs[0].Text, "Received a JPEG image")
	})
	if n := len(s.slack.CallsTo("chat.startStream")); n != 2 {
		t.Errorf("%d streams, want one per attempt", n)
	}
	if n := len(s.slack.CallsTo("chat.postMessage")); n != 0 {
		t.Errorf("%d chat.postMessage, want none", n)
	}
}

// greeter is Dify's opening statement and five suggested questions.
type greeter struct{}

func (greeter) Greeting(context.Context) (bot.Greeting, error) {
	return bot.Greeting{Text: "Send me a photo and ask about it.", Prompts: []string{"What is this?", "Is it damaged?", "How old is it?", "What does it cost?", "Anything else?"}}, nil
}

// sharedThreads is the store's side of the adapter's thread memory: threads and values by key.
type sharedThreads struct {
	mu sync.Mutex
	kv map[string]string
}

func (m *sharedThreads) JoinThread(_ context.Context, key string) error {
	return m.SetConversation(context.Background(), key, "joined")
}

func (m *sharedThreads) InThread(ctx context.Context, key string) (bool, error) {
	v, err := m.Conversation(ctx, key)
	return v != "", err
}

func (m *sharedThreads) Conversation(_ context.Context, key string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.kv[key], nil
}

func (m *sharedThreads) SetConversation(_ context.Context, key, value string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.kv[key] = value
	return nil
}

// An assistant thread: greeted with the opening statement and four prompts; a question there, a photo, is
// answered like a DM, with the thread's status naming what runs, its title the question, and the channel the
// person has open beside it kept with the message.
func TestStreamAssistantThread(t *testing.T) {
	s := newStreamSystem(t, difytest.Options{Scenario: "ok"}, func(c *slackadapter.Config) {
		c.Greeter, c.Threads = greeter{}, &sharedThreads{kv: map[string]string{}}
	})
	s.deliver(t, payload(t, "assistant_thread_started.json", s.slack), 0)
	s.deliver(t, payload(t, "assistant_thread_started.json", s.slack), 1) // Delivered again: greeted once.
	s.deliver(t, edited(t, payload(t, "assistant_thread_started.json", s.slack), func(p map[string]any) {
		p["event_id"] = "Ev07KX5A3T02"
		ev := p["event"].(map[string]any)
		ev["type"] = "assistant_thread_context_changed"
		ev["assistant_thread"].(map[string]any)["context"].(map[string]any)["channel_id"] = "C0NOWOPEN1"
	}), 0)
	if got, want := methods(s.slack), []string{"chat.postMessage", "assistant.threads.setSuggestedPrompts"}; !equal(got, want) {
		t.Fatalf("calls = %v, want %v", got, want)
	}
	greet := s.slack.CallsTo("chat.postMessage")[0].Form
	if greet.Get("text") != "Send me a photo and ask about it." || greet.Get("thread_ts") != "1763800300.000400" {
		t.Errorf("greeting = %v", greet)
	}
	var prompts []struct{ Title, Message string }
	json.Unmarshal([]byte(s.slack.CallsTo("assistant.threads.setSuggestedPrompts")[0].Form.Get("prompts")), &prompts)
	if len(prompts) != 4 || prompts[0].Message != "What is this?" {
		t.Errorf("prompts = %+v, want Dify's first four questions", prompts)
	}

	q := edited(t, s.imageDM(t), func(p map[string]any) { // A photo, as in a DM.
		p["event"].(map[string]any)["thread_ts"] = "1763800300.000400"
	})
	s.deliver(t, q, 0)
	runs := s.answered(t, 1)
	if x := runs[0].Message.Extra; x["assistant"] != "1" || x["context_channel"] != "C0NOWOPEN1" {
		t.Errorf("message extra = %v, want it marked as the assistant thread's, with the channel open beside it", x)
	}
	got := methods(s.slack)[2:]
	if len(got) < 5 || got[0] != "assistant.threads.setStatus" || got[1] != "assistant.threads.setTitle" || got[2] != "chat.startStream" ||
		got[len(got)-1] != "chat.stopStream" {
		t.Fatalf("calls = %v, want the status, the title, then the stream", got)
	}
	status := s.slack.CallsTo("assistant.threads.setStatus")
	if status[0].Form.Get("status") != "is thinking…" || status[0].Form.Get("thread_ts") != "1763800300.000400" {
		t.Errorf("status = %v", status[0].Form)
	}
	named := false
	for _, c := range status {
		named = named || c.Form.Get("loading_messages") == "Analyse image"
	}
	if !named {
		t.Errorf("no status named the node running: %+v", status)
	}
	if title := s.slack.CallsTo("assistant.threads.setTitle")[0].Form.Get("title"); title != "What is in this photo?" {
		t.Errorf("title = %q, want the question", title)
	}
	var answer slacktest.Message
	for _, m := range s.slack.Messages() {
		if m.Streamed {
			answer = m
		}
	}
	if answer.ThreadTS != "1763800300.000400" || !strings.Contains(answer.Text, "Received a PNG image") {
		t.Errorf("answer = %+v, want it in the assistant thread", answer)
	}
}

// Where Slack refuses to stream, the answer uses the placeholder and chat.update, once; a refusal for the whole
// app (auto) is remembered, so the next message does not ask again.
func TestStreamFallbacks(t *testing.T) {
	for _, tt := range []struct {
		name, code string
		mode       string
		starts     int // chat.startStream calls for two messages.
	}{
		{"channel type", "channel_type_not_supported", slackadapter.StreamingAuto, 2},
		{"not enabled", "not_allowed_token_type", slackadapter.StreamingAuto, 1},
		{"missing scope", "missing_scope", slackadapter.StreamingAuto, 1},
		{"on keeps trying", "missing_scope", slackadapter.StreamingOn, 2},
		{"off", "", slackadapter.StreamingOff, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newStreamSystem(t, difytest.Options{Scenario: "ok"}, func(c *slackadapter.Config) { c.Streaming = tt.mode })
			if tt.code != "" {
				s.slack.FailWith("chat.startStream", slacktest.Refuse(tt.code))
			}
			s.deliver(t, payload(t, "message_im.json", s.slack), 0)
			s.answered(t, 1)
			got := methods(s.slack)
			if tt.starts > 0 {
				got = got[1:] // The refused chat.startStream.
			}
			edits := len(got) >= 2 && got[0] == "chat.postMessage"
			for _, m := range got[1:] {
				edits = edits && m == "chat.update"
			}
			if !edits {
				t.Fatalf("calls = %v, want the placeholder and its edits", got)
			}
			s.deliver(t, edited(t, payload(t, "message_im.json", s.slack), func(p map[string]any) {
				p["event_id"] = "Ev07KX4D2E60"
				p["event"].(map[string]any)["ts"] = "1763800201.000300"
			}), 0)
			s.answered(t, 2)
			if n := len(s.slack.CallsTo("chat.startStream")); n != tt.starts {
				t.Errorf("%d chat.startStream for two messages, want %d", n, tt.starts)
			}
			for _, m := range s.slack.Messages() {
				if m.Streamed || !strings.Contains(m.Text, "You said: Summarise the report") {
					t.Errorf("message %+v, want the answer in the placeholder", m)
				}
			}
			if n := len(s.slack.Messages()); n != 2 {
				t.Errorf("%d messages, want one answer each", n)
			}
		})
	}
}

// A stream Slack ended mid-answer (it closes streams left open for minutes) is finished by editing the same
// message: no text is lost and no second answer is posted.
func TestStreamExpiredMidAnswer(t *testing.T) {
	s := newStreamSystem(t, difytest.Options{Scenario: "slow", Latency: 400 * time.Millisecond}, nil)
	s.deliver(t, payload(t, "message_im.json", s.slack), 0)
	eventually(t, e2eWait, "the first append", func() bool { return len(s.slack.CallsTo("chat.appendStream")) > 0 })
	s.slack.ExpireStreams()
	s.answered(t, 1)

	m := onlyMessage(t, s.slack)
	if !m.Streamed || !strings.Contains(m.Text, "You said: Summarise the report") {
		t.Errorf("message = %+v, want the stream's message edited with the whole answer", m)
	}
	updates := s.slack.CallsTo("chat.update")
	if len(updates) == 0 || updates[len(updates)-1].TS != m.TS {
		t.Errorf("updates = %+v, want the answer edited into %s", updates, m.TS)
	}
	if n := len(s.slack.CallsTo("chat.postMessage")); n != 0 {
		t.Errorf("%d chat.postMessage, want none", n)
	}
}

// A long answer with reasoning first: the reasoning is never streamed, the text goes out in a bounded number of
// appends, and the stream's stop completes it without an edit.
func TestStreamLongAnswer(t *testing.T) {
	s := newStreamSystem(t, difytest.Options{Scenario: "stream_long", Latency: 300 * time.Millisecond}, nil)
	s.deliver(t, payload(t, "message_im.json", s.slack), 0)
	s.answered(t, 1)

	if got, want := methods(s.slack), []string{"chat.startStream", "chat.appendStream+", "chat.stopStream"}; !equal(got, want) {
		t.Fatalf("calls = %v, want %v", got, want)
	}
	m := onlyMessage(t, s.slack)
	if strings.Contains(m.Text, "think") || strings.Contains(m.Text, "The person sent") || strings.Count(m.Text, "The photo was looked at") != 6 {
		t.Errorf("message = %q, want the answer without its reasoning", m.Text)
	}
	// 2,000 characters in chunks of at least 256 or half a second apart, plus the nodes' task chunks.
	if n := len(s.slack.CallsTo("chat.appendStream")); n > 2000/256+8 {
		t.Errorf("%d appends for one answer, want them batched", n)
	}
}
