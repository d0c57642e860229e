package bot_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/dify"
	"github.com/difybot/difybot/dify/difytest"
	"github.com/rs/zerolog"
)

// twoApps gives the harness's bot the apps receipts (the harness's simulator) and damage (a second one).
func twoApps(t testing.TB, damage *difytest.Server) option {
	return func(c *bot.Config) {
		dc, err := dify.New(dify.Config{BaseURL: damage.URL(), APIKey: "app-test", Logger: zerolog.Nop(), PollEvery: 5 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		c.Apps = []bot.AppConfig{{Name: "receipts", Workflows: c.Workflows, Keywords: []string{"receipt"}},
			{Name: "damage", Workflows: dc, Keywords: []string{"damage"}}}
		c.Routes = bot.Routes{Default: "receipts"}
	}
}

// A route naming an app the bot does not have (a stored choice from before the apps file changed, the CLI's -app)
// is answered with the apps to choose from, and never runs another app's workflow.
func TestUnknownAppIsAnsweredNotRun(t *testing.T) {
	damage := difytest.NewServer(difytest.Options{PingEvery: 5 * time.Millisecond})
	defer damage.Close()
	h := newHarness(t, "ok", twoApps(t, damage))
	ctx := context.Background()
	m := bot.Message{Platform: "fake", ChatID: "D1", UserID: "U7", Text: "hello"}
	if err := h.store.SetConversation(ctx, "app-choice:fake:U7", "ghost"); err != nil {
		t.Fatal(err)
	}
	for i, m := range []bot.Message{m, {Platform: "fake", ChatID: "C1", UserID: "U8", App: "ghost", Text: "hi"}} {
		m.EventID = "ev-ghost-" + string(rune('a'+i))
		r, err := h.send(t, m)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != bot.RunSucceeded || !strings.Contains(r.Reply, "“ghost”, which this bot does not have") ||
			strings.Join(r.Choices, " ") != "/receipt /damage" {
			t.Errorf("run %+v; want the unknown app named and the apps offered", r)
		}
	}
	if n := h.sim.Started() + damage.Started(); n != 0 {
		t.Errorf("%d workflows ran for a route to an unknown app", n)
	}
}

// A retry runs the app of the run's first attempt, whatever the routes say by then, without the keyword.
func TestRetryKeepsTheApp(t *testing.T) {
	damage := difytest.NewServer(difytest.Options{PingEvery: 5 * time.Millisecond})
	defer damage.Close()
	h := newHarness(t, "ok", twoApps(t, damage))
	r, err := h.send(t, bot.Message{EventID: "ev-dmg", Text: "damage: a dent"})
	if err != nil || r.App != "damage" || !strings.Contains(r.Reply, "You said: a dent.") {
		t.Fatalf("first attempt: %+v, %v", r, err)
	}
	ctx := context.Background()
	if err := h.store.Requeue(ctx, r.ID, r.Attempt); err != nil {
		t.Fatal(err)
	}
	if err := h.bot.Process(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if r, _ = h.store.Run(ctx, r.ID); r.App != "damage" || r.Attempt != 2 || !strings.Contains(r.Reply, "You said: a dent.") {
		t.Errorf("retry: %+v", r)
	}
	if damage.Started() != 2 || h.sim.Started() != 0 {
		t.Errorf("damage ran %d, receipts %d; want both attempts at damage", damage.Started(), h.sim.Started())
	}
}

// Each app has its own conversations: a chat app's conversation is kept under the person's key and the app, and
// the default app keeps the key of a bot with one app.
func TestConversationsPerApp(t *testing.T) {
	damage := difytest.NewServer(difytest.Options{Shape: "chatbot", PingEvery: 5 * time.Millisecond})
	defer damage.Close()
	h := newHarness(t, "ok", twoApps(t, damage))
	r, err := h.send(t, bot.Message{EventID: "ev-conv", Text: "damage: hello"})
	if err != nil || r.App != "damage" || r.ConversationID == "" {
		t.Fatalf("run %+v, %v; want a damage chat with a conversation", r, err)
	}
	ctx := context.Background()
	own, _ := h.store.Conversation(ctx, r.Message.ConversationKey()+"@damage")
	dflt, _ := h.store.Conversation(ctx, r.Message.ConversationKey())
	if own != r.ConversationID || dflt != "" {
		t.Errorf("conversation under the app %q, under the default key %q; want %q and none", own, dflt, r.ConversationID)
	}
}
