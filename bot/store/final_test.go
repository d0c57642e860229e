package store_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/bottest"
	"github.com/difybot/difybot/bot/store"
	"github.com/difybot/difybot/dify"
	"github.com/difybot/difybot/dify/difytest"
)

// lockedRuns is the store as the bot sees it when the database refuses a run's writes while it runs: every
// attempt fails, so it is the queue that gives up.
type lockedRuns struct {
	bot.Store
	fails atomic.Int64
}

func (s *lockedRuns) SaveRun(ctx context.Context, r bot.Run) error {
	if r.Status == bot.RunRunning {
		s.fails.Add(1)
		return errors.New("database is locked")
	}
	return s.Store.SaveRun(ctx, r)
}

// stalled is a download that sends nothing until its context ends, as a platform that stopped answering.
type stalled struct{ ctx context.Context }

func (s stalled) Read([]byte) (int, error) { <-s.ctx.Done(); return 0, s.ctx.Err() }
func (stalled) Close() error               { return nil }

// TestExhaustedRunReplies runs the real bot on the real queue until River's attempts are spent: by a store that
// keeps failing, and by a download that outlasts every attempt's job timeout (its own limits set too long).
// Either way the last attempt ends the run with a true diagnosis and the person gets the reply; none is silent.
func TestExhaustedRunReplies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		stall  bool
		code   bot.Code
		detail string
	}{
		{"store keeps failing", false, bot.CodeInternal, "database is locked"},
		{"every attempt times out", true, bot.CodePlatformDownloadFailed, "ran out of the job's time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eachBackend(t, func(t *testing.T, d testDB) {
				st := d.Open(t, func(c *store.Config) {
					c.RetryBase, c.JobTimeout, c.RescueAfter = time.Millisecond, time.Second, 5*time.Second
				})
				sim := difytest.NewServer(difytest.Options{PingEvery: 5 * time.Millisecond})
				t.Cleanup(sim.Close)
				dc, err := dify.New(dify.Config{BaseURL: sim.URL(), APIKey: "app-test", Logger: zerolog.Nop(),
					Retry: dify.RetryPolicy{Base: time.Millisecond, Max: 5 * time.Millisecond}})
				if err != nil {
					t.Fatal(err)
				}
				plat := bottest.NewPlatform("slack")
				var opens atomic.Int64
				plat.AddFileFunc("F1", func(ctx context.Context) (io.ReadCloser, error) {
					opens.Add(1)
					if tt.stall {
						return stalled{ctx}, nil
					}
					return io.NopCloser(strings.NewReader(string(bottest.PNG(t, 8, 8)))), nil
				})
				locked := &lockedRuns{Store: st}
				var bs bot.Store = st
				if !tt.stall {
					bs = locked
				}
				b, err := bot.New(bot.Config{Store: bs, Workflows: dc, Platforms: []bot.Platform{plat}, Logger: zerolog.Nop(),
					TempDir: t.TempDir(), FetchTimeout: time.Hour, FetchIdle: time.Hour})
				if err != nil {
					t.Fatal(err)
				}
				start(t, st, b)
				began := time.Now()
				r, _, err := st.Enqueue(t.Context(), message("EvExhausted"))
				if err != nil {
					t.Fatal(err)
				}
				var got bot.Run
				deadline := time.Now().Add(60 * time.Second)
				for len(plat.Finals()) == 0 && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
				took := time.Since(began)
				finals := plat.Finals()
				if len(finals) != 1 || finals[0].Diagnosis == nil || finals[0].Diagnosis.Code != tt.code || !strings.Contains(finals[0].Text, "Reference: "+r.ID) {
					t.Fatalf("after %s the person got %+v, want one %s reply", took, finals, tt.code)
				}
				got, _ = st.Run(t.Context(), r.ID)
				if got.Status != bot.RunFailed || got.Code != tt.code || got.Diagnosis == nil || !strings.Contains(got.Diagnosis.Detail, tt.detail) {
					t.Fatalf("run = %s %s %+v", got.Status, got.Code, got.Diagnosis)
				}
				tries := locked.fails.Load()
				if tt.stall {
					tries = opens.Load()
				}
				if tries != 5 {
					t.Errorf("%d attempts, want River's 5", tries)
				}
				t.Logf("%s: %d attempts, answered after %s: %s", d.Name, tries, took.Round(time.Millisecond), got.Diagnosis.Detail)
			})
		})
	}
}
