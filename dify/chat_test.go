package dify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/dify/difytest"
)

func newSim(t *testing.T, opts difytest.Options) *difytest.Server {
	t.Helper()
	if opts.PingEvery == 0 {
		opts.PingEvery = time.Hour
	}
	s := difytest.NewServer(opts)
	t.Cleanup(s.Close)
	return s
}

func TestAgentAppStreamsWhenBlockingIsRefused(t *testing.T) {
	sim := newSim(t, difytest.Options{Shape: "agent"})
	c := newTestClient(t, sim.URL())
	var events []string
	reply, err := c.SendChatMessage(context.Background(), ChatRequest{Query: "what is this?", User: "u1", Mode: Blocking,
		OnEvent: func(ev Event) { events = append(events, ev.Event) }})
	if err != nil {
		t.Fatal(err)
	}
	// The closing message carries the whole answer: taken as it is, not appended to the agent_message deltas.
	const want = "No image was attached. You said: what is this? Inputs: none."
	if reply.Answer != want || reply.ConversationID == "" || reply.MessageID == "" || reply.TaskID == "" {
		t.Errorf("reply %+v, want answer %q", reply, want)
	}
	if n := sim.Calls(difytest.RouteChat); n != 2 || sim.Started() != 1 {
		t.Errorf("chat-messages called %d times, %d started; want the refused blocking request and one stream", n, sim.Started())
	}
	if !strings.Contains(strings.Join(events, " "), "agent_message message message_end") {
		t.Errorf("events %v", events)
	}
	// The client remembers: the next blocking message streams at once.
	reply, err = c.SendChatMessage(context.Background(), ChatRequest{Query: "and now?", User: "u1", Mode: Blocking, ConversationID: reply.ConversationID})
	if err != nil || !strings.Contains(reply.Answer, "You said: and now?") {
		t.Fatalf("second message: %+v, %v", reply, err)
	}
	if n := sim.Calls(difytest.RouteChat); n != 3 {
		t.Errorf("chat-messages called %d times after the second message, want 3", n)
	}
	if s := c.Breaker().Status(); s.Failures != 0 {
		t.Errorf("breaker counted %d failures", s.Failures)
	}
}

// A chatflow still answers blocking, and its message events are deltas.
func TestChatflowAnswersBlocking(t *testing.T) {
	sim := newSim(t, difytest.Options{Scenario: "chat_ok"})
	c := newTestClient(t, sim.URL())
	for _, mode := range []ResponseMode{Blocking, Streaming} {
		reply, err := c.SendChatMessage(context.Background(), ChatRequest{Query: "hi", User: "u1", Mode: mode})
		if err != nil || reply.Answer != "No image was attached. You said: hi." {
			t.Errorf("%s: %+v, %v", mode, reply, err)
		}
	}
	if n := sim.Calls(difytest.RouteChat); n != 2 {
		t.Errorf("chat-messages called %d times, want 2", n)
	}
}

// chatServer answers blocking chat messages with refusal (if set) and streams events otherwise.
func chatServer(t *testing.T, refusal string, events ...string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept") != "text/event-stream" {
			if refusal == "" {
				t.Errorf("a blocking request reached a stream-only server")
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, refusal)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for _, e := range events {
			fmt.Fprintf(w, "data: %s\n\n", e)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestChatAnswerAccumulation(t *testing.T) {
	ev := func(event, answer string) string {
		return fmt.Sprintf(`{"event":%q,"conversation_id":"c1","message_id":"m1","task_id":"t1","answer":%q}`, event, answer)
	}
	end := `{"event":"message_end","conversation_id":"c1","message_id":"m1","task_id":"t1","metadata":{}}`
	tests := []struct {
		name   string
		events []string
		want   string
	}{
		{"chatbot deltas", []string{ev("message", "Hel"), ev("message", "lo"), end}, "Hello"},
		{"agent-chat deltas, no closing message", []string{`{"event":"agent_thought","id":"th1","position":1}`,
			ev("agent_message", "Hel"), ev("agent_message", "lo"), end}, "Hello"},
		{"new agent: the closing message is the whole answer", []string{ev("agent_message", "Hel"), ev("agent_message", "lo <think>x</think>"),
			ev("message", "Hello"), end}, "Hello"},
		{"new agent answering without deltas", []string{ev("message", "Hello"), end}, "Hello"},
		{"moderation replaces", []string{ev("message", "bad"), ev("message_replace", "Sorry."), end}, "Sorry."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, chatServer(t, "", tt.events...).URL+"/v1")
			reply, err := c.SendChatMessage(context.Background(), ChatRequest{Query: "q", User: "u"})
			if err != nil || reply.Answer != tt.want || reply.ConversationID != "c1" {
				t.Errorf("reply %+v, %v; want answer %q", reply, err, tt.want)
			}
		})
	}
}

// agent-chat refuses blocking with its own text (400 invalid_param), and is streamed as well.
func TestAgentChatRefusal(t *testing.T) {
	srv := chatServer(t, `{"code":"invalid_param","message":"Agent Chat App does not support blocking mode","status":400}`,
		`{"event":"agent_message","conversation_id":"c1","message_id":"m1","task_id":"t1","answer":"Hi"}`,
		`{"event":"message_end","conversation_id":"c1","message_id":"m1","task_id":"t1"}`)
	c := newTestClient(t, srv.URL+"/v1")
	reply, err := c.SendChatMessage(context.Background(), ChatRequest{Query: "q", User: "u", Mode: Blocking})
	if err != nil || reply.Answer != "Hi" {
		t.Fatalf("reply %+v, %v", reply, err)
	}
	if !NotStarted(&APIError{Status: 400, Code: "invalid_param", Message: "Agent Chat App does not support blocking mode"}) {
		t.Error("NotStarted(agent-chat refusal) = false")
	}
}

func TestConversationGone(t *testing.T) {
	sim := newSim(t, difytest.Options{Shape: "chatflow_per_user"})
	c := newTestClient(t, sim.URL())
	ctx := context.Background()
	first, err := c.SendChatMessage(ctx, ChatRequest{Query: "hi", User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, err error) {
		t.Helper()
		var ae *APIError
		if !errors.Is(err, ErrConversationGone) || !errors.As(err, &ae) || ae.Status != 404 || !NotStarted(err) || IsOutage(err) {
			t.Errorf("%s: err %v: want a 404 APIError matching ErrConversationGone, not started, no outage", name, err)
		}
	}
	calls, started := sim.Calls(difytest.RouteChat), sim.Started()
	_, err = c.SendChatMessage(ctx, ChatRequest{Query: "hi", User: "bob", ConversationID: first.ConversationID})
	check("another user's conversation", err)
	sim.ForgetConversations()
	_, err = c.SendChatMessage(ctx, ChatRequest{Query: "again", User: "alice", ConversationID: first.ConversationID, Mode: Blocking})
	check("a forgotten conversation", fmt.Errorf("bot: %w", err))
	if n := sim.Calls(difytest.RouteChat) - calls; n != 2 || sim.Started() != started {
		t.Errorf("%d requests for 2 messages, %d runs started; want no resends and no runs", n, sim.Started()-started)
	}
	if s := c.Breaker().Status(); s.Failures != 0 {
		t.Errorf("breaker counted %d failures", s.Failures)
	}
	// What the caller does: send once more without the conversation id.
	if reply, err := c.SendChatMessage(ctx, ChatRequest{Query: "again", User: "alice"}); err != nil || reply.ConversationID == first.ConversationID {
		t.Errorf("new conversation: %+v, %v", reply, err)
	}

	completed := &APIError{Status: 400, Code: "conversation_completed", Message: "The conversation has ended. Please start a new conversation."}
	for _, err := range []error{completed, &APIError{Status: 404, Code: "not_found", Message: "Conversation Not Exists."}} {
		if !errors.Is(err, ErrConversationGone) || !NotStarted(err) || IsOutage(err) {
			t.Errorf("%v: gone %v, not started %v, outage %v", err, errors.Is(err, ErrConversationGone), NotStarted(err), IsOutage(err))
		}
	}
	for _, err := range []error{
		&APIError{Status: 404, Code: "not_found", Message: "Workflow run not found."},
		&APIError{Status: 404, Code: "not_found", Message: "Last Conversation Not Exists."},
		&APIError{Status: 400, Code: "invalid_param", Message: "conversation_id must be a valid UUID"},
		errors.New("Conversation Not Exists."),
	} {
		if errors.Is(err, ErrConversationGone) {
			t.Errorf("%v matches ErrConversationGone", err)
		}
	}
}

func TestPlanLimitIsNeverRetried(t *testing.T) {
	for _, scenario := range []string{"plan_limit", "daily_limit"} {
		t.Run(scenario, func(t *testing.T) {
			sim := newSim(t, difytest.Options{Scenario: scenario})
			c := newTestClient(t, sim.URL())
			_, err := c.RunWorkflow(context.Background(), RunRequest{User: "u", Inputs: map[string]any{"query": "hi"}})
			var ae *APIError
			if !errors.Is(err, ErrPlanLimit) || !errors.As(err, &ae) || ae.Status != 429 || ae.Code != "rate_limit_error" {
				t.Fatalf("err = %v, want 429 rate_limit_error matching ErrPlanLimit", err)
			}
			if IsOutage(err) || !NotStarted(err) || notStarted(err) || canRepeat(err) {
				t.Errorf("outage %v, NotStarted %v, resent %v, repeated %v; want false, true, false, false",
					IsOutage(err), NotStarted(err), notStarted(err), canRepeat(err))
			}
			if n := sim.Calls(difytest.RouteRun); n != 1 || sim.Started() != 0 {
				t.Errorf("workflows/run called %d times, %d started; want exactly one POST", n, sim.Started())
			}
			if s := c.Breaker().Status(); s.Failures != 0 || s.Success != 1 {
				t.Errorf("breaker counts %+v, want one success", s)
			}
		})
	}
	// The concurrency cap keeps being retried, whatever code carries its text.
	concurrency := &APIError{Status: 429, Code: "rate_limit_error", Message: "Too many requests. Please try again later. The current maximum concurrent requests allowed is 2."}
	if errors.Is(concurrency, ErrPlanLimit) || !notStarted(concurrency) || IsOutage(concurrency) {
		t.Errorf("concurrency cap under rate_limit_error: plan %v, resent %v, outage %v", errors.Is(concurrency, ErrPlanLimit), notStarted(concurrency), IsOutage(concurrency))
	}
	tooMany := &APIError{Status: 429, Code: "too_many_requests", Message: "Too many requests. Please try again later."}
	// Not an outage: Dify is well and full; the Limiter backs off instead of the breaker holding every run.
	if errors.Is(tooMany, ErrPlanLimit) || !notStarted(tooMany) || !canRepeat(tooMany) || IsOutage(tooMany) {
		t.Errorf("too_many_requests must stay retried, and not count as an outage")
	}
}

func TestNotStarted(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&NetError{Op: "x", Cause: CauseRefused, Sent: false}, true},
		{&NetError{Op: "x", Cause: CauseReset, Sent: true}, false},
		{&APIError{Status: 502, Title: "502 Bad Gateway"}, true},
		{&APIError{Status: 504, Title: "504 Gateway Time-out"}, false},
		{&APIError{Status: 429, Code: "too_many_requests"}, true},
		{&APIError{Status: 429, Code: "rate_limit_error", Message: "Rate Limit Error"}, true},
		{&APIError{Status: 400, Code: "bad_request", Message: "Agent App only supports streaming response mode."}, true},
		{&APIError{Status: 400, Code: "provider_not_initialize"}, false},
		{&APIError{Status: 429, Code: "rate_limit_error", InStream: true}, false},
		{&RunError{Status: "failed"}, false},
		{ErrBreakerOpen, true},
		{fmt.Errorf("x: %w", ErrMaintenance), true},
		{errors.New("x"), false},
	}
	for _, tt := range tests {
		if got := NotStarted(tt.err); got != tt.want {
			t.Errorf("NotStarted(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// A plain chat app runs no workflow, so a stream cut after its first chunk is read back from the
// conversation's messages by the id the stream announced, and the message is never sent twice.
func TestChatStreamCutIsReadBackFromMessages(t *testing.T) {
	for _, shape := range []string{"chatbot", "agent"} {
		t.Run(shape, func(t *testing.T) {
			sim := newSim(t, difytest.Options{Shape: shape, Scenario: "stream_cut", Latency: 40 * time.Millisecond})
			c := newTestClient(t, sim.URL())
			reply, err := c.SendChatMessage(context.Background(), ChatRequest{Query: "what is this?", User: "u1"})
			if err != nil {
				t.Fatal(err)
			}
			const want = "No image was attached. You said: what is this? Inputs: none."
			if reply.Answer != want || !reply.Recovered || reply.ConversationID == "" || reply.MessageID == "" {
				t.Errorf("reply %+v, want the whole answer %q, recovered", reply, want)
			}
			if sim.Calls(difytest.RouteChat) != 1 || sim.Calls(difytest.RouteMessages) == 0 || sim.Started() != 1 {
				t.Errorf("chat-messages %d, messages reads %d, started %d; want 1, >0, 1",
					sim.Calls(difytest.RouteChat), sim.Calls(difytest.RouteMessages), sim.Started())
			}
			// A later worker (after a crash) reads the same answer by the ids alone.
			again, err := c.WaitMessage(context.Background(), reply.ConversationID, reply.MessageID, "u1")
			if err != nil || again.Answer != want {
				t.Errorf("WaitMessage = %+v, %v", again, err)
			}
			// Another user cannot read it: the conversation is theirs only.
			if _, err := c.WaitMessage(context.Background(), reply.ConversationID, reply.MessageID, "u2"); !errors.Is(err, ErrConversationGone) {
				t.Errorf("WaitMessage as another user: %v, want ErrConversationGone", err)
			}
		})
	}
}

func TestWaitMessageOfAMessageThatIsNotThere(t *testing.T) {
	sim := newSim(t, difytest.Options{Shape: "chatbot"})
	c := newTestClient(t, sim.URL())
	reply, err := c.SendChatMessage(context.Background(), ChatRequest{Query: "hi", User: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.WaitMessage(context.Background(), reply.ConversationID, "5b4c1d7e-0000-4000-8000-000000000000", "u1")
	var be *BadResponseError
	if !errors.As(err, &be) || !strings.Contains(be.Reason, "not in its conversation") {
		t.Errorf("err = %v, want a bad response naming the missing message", err)
	}
}
