package bot_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/bottest"
	"github.com/difybot/difybot/dify/difytest"
)

// shaped is a harness whose simulated app has the given shape (difytest.Shapes).
func shaped(t *testing.T, shape string, opts ...option) *harness {
	t.Helper()
	h := newHarness(t, "ok", opts...)
	if err := h.sim.SetShape(shape); err != nil {
		t.Fatal(err)
	}
	return h
}

func photos(t *testing.T, h *harness, event string, n int) bot.Message {
	m := bot.Message{EventID: event, Text: "what are these?"}
	for i := range n {
		id := fmt.Sprintf("%s-F%d", event, i+1)
		h.plat.AddFile(id, bottest.PNG(t, 10+i, 10))
		m.Files = append(m.Files, bot.File{ID: id, Name: id + ".png"})
	}
	return m
}

func TestStartFormShapes(t *testing.T) {
	tests := []struct {
		name, shape string
		opt         option
		msg         func(t *testing.T, h *harness) bot.Message
		want        []string // In the reply.
		code        bot.Code
		runs        int
	}{
		{name: "a photo to a required question with a default runs at once", shape: "text_default",
			msg:  func(t *testing.T, h *harness) bot.Message { m := photos(t, h, "ev", 1); m.Text = ""; return m },
			want: []string{`question="Describe this photo."`}, runs: 1},
		{name: "a select's default is sent", shape: "select_default",
			msg: func(t *testing.T, h *harness) bot.Message { return photos(t, h, "ev", 1) }, want: []string{`language="English"`}, runs: 1},
		{name: "DIFY_INPUTS is sent", shape: "select_default", opt: func(c *bot.Config) { c.App.Inputs = map[string]any{"language": "Japanese"} },
			msg: func(t *testing.T, h *harness) bot.Message { return photos(t, h, "ev", 1) }, want: []string{`language="Japanese"`}, runs: 1},
		{name: "a required field without a value is named, and nothing is sent", shape: "required_select",
			msg:  func(t *testing.T, h *harness) bot.Message { return photos(t, h, "ev", 1) },
			want: []string{"Reference"}, code: bot.CodeDifyInputInvalid, runs: 0},
		{name: "three photos go in one run to a file list", shape: "file_list",
			msg: func(t *testing.T, h *harness) bot.Message { return photos(t, h, "ev", 3) }, want: []string{"photos=3 files"}, runs: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []option
			if tt.opt != nil {
				opts = append(opts, tt.opt)
			}
			h := shaped(t, tt.shape, opts...)
			r, err := h.send(t, tt.msg(t, h))
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.Reply, w) {
					t.Errorf("reply %q lacks %q", r.Reply, w)
				}
			}
			if r.Code != tt.code {
				t.Errorf("code %q, want %q", r.Code, tt.code)
			}
			if tt.code != "" && !strings.Contains(r.Diagnosis.Detail+r.Diagnosis.Summary, "language") {
				t.Errorf("diagnosis does not name the field: %+v", r.Diagnosis)
			}
			if n := h.sim.Calls(difytest.RouteRun); n != tt.runs {
				t.Errorf("%d runs, want %d", n, tt.runs)
			}
		})
	}
}

// TestFileListOverItsLimit sends four photos to a file list of at most three: two runs, in order.
func TestFileListOverItsLimit(t *testing.T) {
	h := shaped(t, "file_list")
	ctx := context.Background()
	first, err := h.send(t, photos(t, h, "ev", 4))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(first.Reply, "Photos 1–3 of 4\n") || !strings.Contains(first.Reply, "photos=3 files") {
		t.Fatalf("first run: %q", first.Reply)
	}
	runs, _ := h.store.ListRuns(ctx, bot.RunFilter{Limit: 5})
	if len(runs) != 2 {
		t.Fatalf("%d runs, want the rest queued as a second", len(runs))
	}
	if err := h.bot.Process(ctx, runs[0].ID); err != nil {
		t.Fatal(err)
	}
	second, _ := h.store.Run(ctx, runs[0].ID)
	if !strings.HasPrefix(second.Reply, "Photo 4 of 4\n") || !strings.Contains(second.Reply, "photos=1 file,") {
		t.Errorf("second run: %q", second.Reply)
	}
}

// TestChatflowPerPerson puts two people in one thread of a chatflow whose conversations belong to their user:
// each gets their own conversation, and a conversation Dify forgot is started again once and answered.
func TestChatflowPerPerson(t *testing.T) {
	h := shaped(t, "chatflow_per_user")
	ctx := context.Background()
	say := func(event, user, text string) bot.Run {
		r, err := h.send(t, bot.Message{EventID: event, ChatID: "G1", ThreadID: "T1", UserID: user, Text: text})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for i, user := range []string{"alice", "bob", "alice", "bob"} {
		if r := say(fmt.Sprintf("ev%d", i), user, "hello"); r.Status != bot.RunSucceeded {
			t.Fatalf("message %d from %s: %s %s %q", i, user, r.Status, r.Code, r.Reply)
		}
	}
	alice, _ := h.store.Conversation(ctx, bot.Message{Platform: "fake", ChatID: "G1", ThreadID: "T1", UserID: "alice"}.ConversationKey())
	bob, _ := h.store.Conversation(ctx, bot.Message{Platform: "fake", ChatID: "G1", ThreadID: "T1", UserID: "bob"}.ConversationKey())
	if alice == "" || bob == "" || alice == bob {
		t.Errorf("conversations alice %q bob %q, want two", alice, bob)
	}
	h.sim.ForgetConversations()
	before := h.sim.Calls(difytest.RouteChat)
	r := say("ev-after", "alice", "still there?")
	if r.Status != bot.RunSucceeded || h.sim.Calls(difytest.RouteChat)-before != 2 {
		t.Errorf("after Dify forgot: %s %q, %d sends", r.Status, r.Reply, h.sim.Calls(difytest.RouteChat)-before)
	}
	if again, _ := h.store.Conversation(ctx, r.Message.ConversationKey()); again == alice || again == "" {
		t.Errorf("the new conversation %q was not stored (old %q)", again, alice)
	}
}

func TestAgentAnswerIsNotDoubled(t *testing.T) {
	h := shaped(t, "agent")
	r, err := h.send(t, bot.Message{EventID: "ev", Text: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	// The agent streams the answer in chunks, then a closing message with the whole of it: taken once.
	if want := "No image was attached. You said: hello. Inputs: none."; r.Status != bot.RunSucceeded || r.Reply != want {
		t.Errorf("agent: %s %q, want %q", r.Status, r.Reply, want)
	}
}

// TestChatStreamCutIsAnswered cuts a plain chat app's stream after its first chunk: the answer is read back
// from the conversation (by the message id the stream announced), never sent twice, and the conversation kept.
func TestChatStreamCutIsAnswered(t *testing.T) {
	h := shaped(t, "chatbot")
	if err := h.sim.SetScenario("stream_cut"); err != nil {
		t.Fatal(err)
	}
	r, err := h.send(t, bot.Message{EventID: "ev1", Text: "what is this?"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != bot.RunSucceeded || !strings.Contains(r.Reply, "You said: what is this? Inputs: none.") {
		t.Fatalf("run %s %s %q, want the whole answer", r.Status, r.Code, r.Reply)
	}
	if r.DifyMessageID == "" || r.ConversationID == "" {
		t.Errorf("message %q conversation %q: the stream's ids were not stored", r.DifyMessageID, r.ConversationID)
	}
	if h.sim.Calls(difytest.RouteChat) != 1 || h.sim.Calls(difytest.RouteMessages) == 0 {
		t.Errorf("chat-messages %d, messages reads %d", h.sim.Calls(difytest.RouteChat), h.sim.Calls(difytest.RouteMessages))
	}
	if conv, _ := h.store.Conversation(context.Background(), r.Message.ConversationKey()); conv != r.ConversationID {
		t.Errorf("stored conversation %q, want %q", conv, r.ConversationID)
	}
	steps, _ := h.store.Steps(context.Background(), r.ID)
	found := false
	for _, s := range steps {
		if s.Name == bot.StepRun && s.Fields["recovered"] == true {
			found = true
		}
	}
	if !found {
		t.Errorf("the run step does not say the answer was recovered: %+v", steps)
	}
}
