package bottest_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/bottest"
)

func TestInbox(t *testing.T) {
	ctx := context.Background()
	in := &bottest.Inbox{FailAt: 2}
	m := bot.Message{Platform: "fake", EventID: "e1"}
	for range 3 {
		in.Accept(ctx, m)
	}
	if ids, dups := in.Runs(); !slices.Equal(ids, []string{"run-e1", "run-e1"}) || !slices.Equal(dups, []bool{false, true}) {
		t.Errorf("runs %v %v, want the second call refused and the third a duplicate", ids, dups)
	}
	if len(in.Given()) != 3 || len(in.Accepted()) != 2 {
		t.Errorf("given %d, accepted %d", len(in.Given()), len(in.Accepted()))
	}
	in.SetErr(errors.New("down"))
	if _, _, err := in.Accept(ctx, m); err == nil {
		t.Error("SetErr did not fail Accept")
	}
	in.RetryErr = bot.ErrNotFound
	before := 0
	req := bot.RetryRequest{RunID: "r1", Before: func(context.Context) { before++ }}
	if err := in.Retry(ctx, req); !errors.Is(err, bot.ErrNotFound) || !slices.Equal(in.Retried(), []string{"r1"}) || in.Reached() != 5 || before != 0 {
		t.Errorf("Retry = %v, retried %v, reached %d, Before called %d times", err, in.Retried(), in.Reached(), before)
	}
	in.RetryErr = bottest.ErrUnavailable // The queue could not be written: after Before.
	if err := in.Retry(ctx, req); !errors.Is(err, bottest.ErrUnavailable) || before != 1 {
		t.Errorf("Retry = %v, Before called %d times, want once", err, before)
	}
	next := &bottest.Inbox{}
	through := &bottest.Inbox{Next: next}
	through.Accept(ctx, m)
	if len(next.Accepted()) != 1 {
		t.Error("Accept did not pass to Next")
	}
}

func TestState(t *testing.T) {
	ctx := context.Background()
	s := bottest.NewState(map[string]string{"a": "1"})
	s.Refuse("sent_")
	if err := s.Set(ctx, "sent_1", "x"); !errors.Is(err, bottest.ErrUnavailable) || s.Get("sent_1") != "" {
		t.Errorf("refused Set = %v, stored %q", err, s.Get("sent_1"))
	}
	s.Refuse("")
	if err := s.Set(ctx, "sent_1", "x"); err != nil || s.Sets() != 1 {
		t.Errorf("Set = %v, %d sets", err, s.Sets())
	}
	c := s.Clone()
	c.Set(ctx, "b", "2")
	if s.Get("b") != "" || c.Get("a") != "1" || len(s.Map()) != 2 {
		t.Errorf("clone shares values: %v %v", s.Map(), c.Map())
	}
	var zero bottest.State
	if err := zero.Set(ctx, "k", "v"); err != nil || zero.Get("k") != "v" {
		t.Error("the zero State is not ready")
	}
}

func TestPlatform(t *testing.T) {
	ctx := context.Background()
	p := bottest.NewPlatform("")
	p.AddFile("F", bottest.PNG(t, 2, 2))
	rc, err := p.OpenFile(ctx, bot.Message{}, bot.File{ID: "F"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	if p.Name() != "fake" || len(b) == 0 {
		t.Errorf("name %q, %d bytes", p.Name(), len(b))
	}
	p.RemoveFile("F")
	if _, err := p.OpenFile(ctx, bot.Message{}, bot.File{ID: "F"}); err == nil {
		t.Error("a removed file opened")
	}
	p.Reply(ctx, bot.Message{}, bot.Reply{Text: "held"})
	p.Reply(ctx, bot.Message{}, bot.Reply{Text: "answer", Final: true})
	p.FailReplies(errors.New("down"))
	if err := p.Reply(ctx, bot.Message{}, bot.Reply{Text: "lost", Final: true}); err == nil {
		t.Error("FailReplies did not fail Reply")
	}
	p.Progress(ctx, bot.Message{}, bot.Progress{Step: "start"})
	if len(p.Replies()) != 2 || len(p.Finals()) != 1 || p.Finals()[0].Text != "answer" || len(p.Reported()) != 1 {
		t.Errorf("replies %+v, progress %+v", p.Replies(), p.Reported())
	}
	p.Reset()
	if len(p.Replies())+len(p.Reported()) != 0 {
		t.Error("Reset kept records")
	}
}
