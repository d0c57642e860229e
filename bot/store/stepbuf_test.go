package store_test

import (
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/store"
)

// TestStepRecordsGoWithTheRunsSave: a step record waits for its run's next save and is written with it; one
// the run never saves past is written on its own soon after, and Close writes what is still held.
func TestStepRecordsGoWithTheRunsSave(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, d testDB) {
		cfg := d.Config
		s := d.Open(t)
		ctx := t.Context()
		r, _, err := s.Enqueue(ctx, message("EvSteps"))
		if err != nil {
			t.Fatal(err)
		}
		stored := func(s *store.Store) int {
			t.Helper()
			n, err := store.Count(ctx, s, `SELECT COUNT(*) FROM steps WHERE run_id = ?`, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		step := func(n int, name string) bot.Step {
			return bot.Step{RunID: r.ID, Attempt: 1, N: n, Of: 5, Name: name, Status: "done", Start: time.Now(),
				Fields: map[string]any{"n": n}}
		}
		for i, name := range []string{bot.StepReceive, bot.StepEnqueue} {
			if err := s.AddStep(ctx, step(i+1, name)); err != nil {
				t.Fatal(err)
			}
		}
		if n := stored(s); n != 0 {
			t.Fatalf("%d step records written before the run's save; want them held for it", n)
		}
		r.Status = bot.RunRunning
		if err := s.SaveRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		if n := stored(s); n != 2 {
			t.Fatalf("after the save: %d step records stored, want 2", n)
		}

		// A step the run does not save after is written by the store's own flush.
		if err := s.AddStep(ctx, step(3, bot.StepRun)); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for stored(s) != 3 {
			if time.Now().After(deadline) {
				t.Fatalf("a held step record was not written on its own: %d stored, want 3", stored(s))
			}
			time.Sleep(20 * time.Millisecond)
		}

		// Steps reads what is held; Close writes it.
		if err := s.AddStep(ctx, step(4, bot.StepFormat)); err != nil {
			t.Fatal(err)
		}
		got, err := s.Steps(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 4 || got[3].Name != bot.StepFormat || got[3].Fields["n"] != float64(4) {
			t.Fatalf("Steps: %+v; want the four records, the held one last", got)
		}
		if err := s.AddStep(ctx, step(5, bot.StepReply)); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		again := d.Open(t, func(c *store.Config) { *c = cfg })
		if n := stored(again); n != 5 {
			t.Fatalf("after Close and reopen: %d step records, want 5", n)
		}
	})
}

// TestJoinThreadWritesAKeyOnce: Slack joins a thread on the placeholder and again on the reply; the second
// finds the key remembered and writes nothing, so a row removed behind the store's back stays removed.
func TestJoinThreadWritesAKeyOnce(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, d testDB) {
		s := d.Open(t)
		ctx := t.Context()
		for _, key := range []string{"C1:1.0", "C1:2.0"} {
			if err := s.JoinThread(ctx, key); err != nil {
				t.Fatal(err)
			}
		}
		d.Exec(t, `DELETE FROM threads WHERE key = 'C1:1.0'`)
		for range 3 {
			if err := s.JoinThread(ctx, "C1:1.0"); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := store.Count(ctx, s, `SELECT COUNT(*) FROM threads`); err != nil || n != 1 {
			t.Fatalf("threads rows: %d (%v); want 1: a key joined before is not written again", n, err)
		}
		if in, err := s.InThread(ctx, "C1:2.0"); err != nil || !in {
			t.Fatalf("InThread(C1:2.0) = %v, %v; want true", in, err)
		}
	})
}
