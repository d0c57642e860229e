package bot_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/dify/difytest"
)

func TestOnePersonsShare(t *testing.T) {
	ctx := context.Background()
	accept := func(t *testing.T, h *harness, event, user string) bot.Run {
		r, _, err := h.inbox.Accept(ctx, bot.Message{Platform: "fake", EventID: event, ChatID: "C1", UserID: user, Text: "hello " + event})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	held := func(t *testing.T, err error) {
		t.Helper()
		var hold *bot.HoldError
		if !errors.As(err, &hold) {
			t.Fatalf("Process = %v, want a HoldError", err)
		}
	}

	t.Run("runs in flight", func(t *testing.T) {
		h := newHarness(t, "ok", func(c *bot.Config) { c.Share = bot.Share{Runs: 2} })
		// Two of U1's runs are in Dify right now.
		for _, ev := range []string{"ev1", "ev2"} {
			r := accept(t, h, ev, "U1")
			r.Status = bot.RunRunning
			if err := h.store.SaveRun(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		third := accept(t, h, "ev3", "U1")
		held(t, h.bot.Process(ctx, third.ID))
		held(t, h.bot.Process(ctx, third.ID))
		if got, _ := h.store.Run(ctx, third.ID); got.Status != bot.RunHeld {
			t.Errorf("third run is %s, want held", got.Status)
		}
		if n := h.sim.Calls(difytest.RouteRun); n != 0 {
			t.Errorf("%d workflow runs while the person had two in flight", n)
		}
		if p := h.plat.Reported(); len(p) != 1 || p[0].Step != "start" || len(h.plat.Replies()) != 0 {
			t.Errorf("progress %+v, replies %+v; want one placeholder and no words", p, h.plat.Replies())
		}
		// Someone else is not held by U1's share.
		if r, err := h.send(t, bot.Message{EventID: "ev-u2", UserID: "U2", ChatID: "C1", Text: "me too"}); err != nil || r.Status != bot.RunSucceeded {
			t.Errorf("another person's run: %s, %v", r.Status, err)
		}
		runs, _ := h.store.ListRuns(ctx, bot.RunFilter{Limit: 10})
		for _, r := range runs {
			if r.Message.EventID == "ev1" {
				r.Status = bot.RunSucceeded
				if err := h.store.SaveRun(ctx, r); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := h.bot.Process(ctx, third.ID); err != nil {
			t.Fatalf("after one finished: %v", err)
		}
		if got, _ := h.store.Run(ctx, third.ID); got.Status != bot.RunSucceeded {
			t.Errorf("third run is %s after one of the two finished, want succeeded", got.Status)
		}
		steps, _ := h.store.Steps(ctx, third.ID)
		if !hasStep(steps, bot.StepRun, "queued") {
			t.Errorf("no queued step in %+v", steps)
		}
	})

	t.Run("rate", func(t *testing.T) {
		c := &clock{now: time.Now()}
		h := newHarness(t, "ok", func(cfg *bot.Config) { cfg.Share = bot.Share{PerMinute: 2}; cfg.Now = c.Now })
		for _, ev := range []string{"ev1", "ev2"} {
			if r, err := h.send(t, bot.Message{EventID: ev, Text: "hi"}); err != nil || r.Status != bot.RunSucceeded {
				t.Fatalf("%s: %s %v", ev, r.Status, err)
			}
		}
		third := accept(t, h, "ev3", "U1")
		held(t, h.bot.Process(ctx, third.ID))
		held(t, h.bot.Process(ctx, third.ID))
		var busy []bot.Reply
		for _, r := range h.plat.Replies() {
			if !r.Final {
				busy = append(busy, r)
			}
		}
		if len(busy) != 1 || !strings.Contains(busy[0].Text, "waits its turn") || !strings.Contains(busy[0].Text, third.ID) {
			t.Errorf("notices %+v; want one saying the message waits, with its reference", busy)
		}
		// The runs were created by the real clock, which a loaded machine (-race) moves on by a second or more
		// while this fake one stands still: two minutes leave the earlier ones out of the minute for certain.
		c.Add(2 * time.Minute)
		if err := h.bot.Process(ctx, third.ID); err != nil {
			t.Fatalf("a minute later: %v", err)
		}
		if got, _ := h.store.Run(ctx, third.ID); got.Status != bot.RunSucceeded || !strings.Contains(got.Reply, "hello ev3") {
			t.Errorf("third run %s %q a minute later, want answered", got.Status, got.Reply)
		}
	})
}

func hasStep(steps []bot.Step, name, status string) bool {
	for _, s := range steps {
		if s.Name == name && s.Status == status {
			return true
		}
	}
	return false
}
