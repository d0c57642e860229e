package bot_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/bottest"
)

// failingSaves is a store whose SaveRun fails while the run is running, as a database that keeps refusing
// writes does: every attempt fails before it can finish, and only the end of the run can be stored.
type failingSaves struct {
	bot.Store
	fails atomic.Int64
}

func (s *failingSaves) SaveRun(ctx context.Context, r bot.Run) error {
	if r.Status == bot.RunRunning {
		s.fails.Add(1)
		return errors.New("database is locked")
	}
	return s.Store.SaveRun(ctx, r)
}

// TestLastAttemptReplies: on the queue's last attempt (bot.FinalAttempt), whatever stops the attempt ends the
// run with a diagnosis and a reply, instead of an error nobody retries; before it, the error goes back to the
// queue and the person hears nothing yet.
func TestLastAttemptReplies(t *testing.T) {
	t.Parallel()
	var fs *failingSaves
	h := newHarness(t, "ok", func(c *bot.Config) { fs = &failingSaves{Store: c.Store}; c.Store = fs })
	ctx := t.Context()
	r, _, err := h.inbox.Accept(ctx, bot.Message{Platform: "fake", EventID: "ev-locked", ChatID: "C1", UserID: "U1", Text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if err := h.bot.Process(ctx, r.ID); err == nil || !strings.Contains(err.Error(), "database is locked") {
			t.Fatalf("attempt %d: %v, want the store's error for the queue", i+1, err)
		}
	}
	if got := h.plat.Finals(); len(got) != 0 {
		t.Fatalf("replies before the last attempt: %+v", got)
	}
	if err := h.bot.Process(bot.FinalAttempt(ctx), r.ID); err != nil {
		t.Fatalf("last attempt: %v, want the run ended", err)
	}
	got, _ := h.store.Run(ctx, r.ID)
	if got.Status != bot.RunFailed || got.Code != bot.CodeInternal || got.Diagnosis == nil ||
		!strings.Contains(got.Diagnosis.Detail, "the queue's last try failed") || !strings.Contains(got.Diagnosis.Detail, "database is locked") {
		t.Fatalf("run = %s %s %+v", got.Status, got.Code, got.Diagnosis)
	}
	finals := h.plat.Finals()
	if len(finals) != 1 || !strings.Contains(finals[0].Text, "Reference: "+r.ID) || finals[0].Diagnosis == nil {
		t.Fatalf("the person got %+v", finals)
	}
	if fs.fails.Load() != 5 {
		t.Errorf("%d failed saves, want one per attempt", fs.fails.Load())
	}
}

// TestLastAttemptOutOfTime: the last attempt keeps back part of the job's time, and a run still going when the
// rest is spent ends with the code of what was slow, not with a deadline blamed on Dify.
func TestLastAttemptOutOfTime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		scenario string // "slow": each workflow node takes 2 s.
		stall    bool   // The platform's download never ends (but for its context).
		code     bot.Code
		detail   string
	}{
		{"download", "ok", true, bot.CodePlatformDownloadFailed, "while downloading the photos from the platform"},
		{"dify run", "slow", false, bot.CodeDifyWorkflowTimeout, "while waiting for Dify's run"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, tt.scenario, func(c *bot.Config) {
				c.FetchTimeout, c.FetchIdle, c.Timeout = time.Hour, time.Hour, time.Hour // Only the job's time limits them.
			})
			m := h.withImage("F1", bottest.PNG(t, 8, 8))
			if tt.stall {
				h.plat.AddFileFunc("F1", func(ctx context.Context) (io.ReadCloser, error) {
					return &dripBody{ctx: ctx, stall: true}, nil
				})
			}
			m.Platform, m.ChatID, m.UserID = "fake", "C1", "U1"
			r, _, err := h.inbox.Accept(t.Context(), m)
			if err != nil {
				t.Fatal(err)
			}
			// The job's context, as the queue gives it on its last attempt: a quarter of it is kept back for the
			// ending, which leaves room for a machine busy with the other tests under -race.
			const jobTime = 4 * time.Second
			ctx, cancel := context.WithTimeout(bot.FinalAttempt(t.Context()), jobTime)
			defer cancel()
			start := time.Now()
			if err := h.bot.Process(ctx, r.ID); err != nil {
				t.Fatalf("last attempt: %v, want the run ended", err)
			}
			if took := time.Since(start); took > jobTime {
				t.Errorf("the last attempt took %s, past its job's deadline", took)
			}
			got, _ := h.store.Run(t.Context(), r.ID)
			if got.Status != bot.RunFailed || got.Code != tt.code || got.Diagnosis == nil || !strings.Contains(got.Diagnosis.Detail, tt.detail) {
				t.Fatalf("run = %s %s %+v", got.Status, got.Code, got.Diagnosis)
			}
			if finals := h.plat.Finals(); len(finals) != 1 || finals[0].Diagnosis == nil || finals[0].Diagnosis.Code != tt.code {
				t.Fatalf("the person got %+v", finals)
			}
			t.Logf("%s: %s", got.Code, got.Diagnosis.Detail)
		})
	}
}

// TestLastAttemptReplyFails: when the reply itself fails on every attempt, nobody can be told; the run says so
// (platform_reply_failed, for the admin) and the queue gets the error.
func TestLastAttemptReplyFails(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "ok")
	h.plat.FailReplies(errors.New("channel_not_found"))
	ctx := t.Context()
	r, _, err := h.inbox.Accept(ctx, bot.Message{Platform: "fake", EventID: "ev-noreply", ChatID: "C1", UserID: "U1", Text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.bot.Process(ctx, r.ID); err == nil {
		t.Fatal("a failed reply must go back to the queue")
	}
	err = h.bot.Process(bot.FinalAttempt(ctx), r.ID)
	if d := bot.Diagnose(err); err == nil || d.Code != bot.CodePlatformReplyFailed {
		t.Fatalf("last attempt: %v (%s), want platform_reply_failed", err, d.Code)
	}
	got, _ := h.store.Run(ctx, r.ID)
	if got.Status != bot.RunFailed || got.Code != bot.CodePlatformReplyFailed || !strings.Contains(got.Reply, "You said: hi") {
		t.Fatalf("run = %s %s reply %q", got.Status, got.Code, got.Reply)
	}
}

// TestLastAttemptShutdownIsNotTheEnd: a shutdown cancelling the last attempt spends nothing; the run resumes.
func TestLastAttemptShutdownIsNotTheEnd(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "ok")
	m := h.withImage("F1", nil)
	h.plat.AddFileFunc("F1", func(ctx context.Context) (io.ReadCloser, error) { return &dripBody{ctx: ctx, stall: true}, nil })
	m.Platform, m.ChatID, m.UserID = "fake", "C1", "U1"
	r, _, err := h.inbox.Accept(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bot.FinalAttempt(t.Context()))
	time.AfterFunc(200*time.Millisecond, cancel)
	if err := h.bot.Process(ctx, r.ID); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled last attempt: %v, want context.Canceled for the queue", err)
	}
	if got, _ := h.store.Run(t.Context(), r.ID); got.Status == bot.RunFailed || len(h.plat.Finals()) != 0 {
		t.Fatalf("a shutdown ended the run: %s %s, replies %+v", got.Status, got.Code, h.plat.Finals())
	}
}
