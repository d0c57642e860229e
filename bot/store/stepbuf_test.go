package store_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/store"
)

// TestLogRowsAreWrittenTogether: step records and node events of the runs the store knows are held for the
// run's next save, which writes them with it; those of runs that do not save are written together by the
// store's own flush, in the order they came; a reader of a run sees its held rows, and Close writes the rest.
func TestLogRowsAreWrittenTogether(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, d testDB) {
		cfg := d.Config
		s := d.Open(t)
		ctx := t.Context()
		a, _, err := s.Enqueue(ctx, message("EvStepsA"))
		if err != nil {
			t.Fatal(err)
		}
		b, _, err := s.Enqueue(ctx, message("EvStepsB"))
		if err != nil {
			t.Fatal(err)
		}
		stored := func(s *store.Store) (steps, nodes int) {
			t.Helper()
			var err error
			if steps, err = store.Count(ctx, s, `SELECT COUNT(*) FROM steps`); err != nil {
				t.Fatal(err)
			}
			if nodes, err = store.Count(ctx, s, `SELECT COUNT(*) FROM node_events`); err != nil {
				t.Fatal(err)
			}
			return steps, nodes
		}
		step := func(r bot.Run, n int) bot.Step {
			return bot.Step{RunID: r.ID, Attempt: 1, N: n, Of: 5, Name: fmt.Sprintf("step%d", n), Status: "done",
				Start: time.Now(), Fields: map[string]any{"n": n}}
		}
		node := func(r bot.Run, seq int) bot.NodeEvent {
			return bot.NodeEvent{RunID: r.ID, Seq: seq, Event: "node_started", NodeID: "llm", Title: "LLM", At: time.Now()}
		}
		for n := 1; n <= 3; n++ {
			for _, r := range []bot.Run{a, b} {
				if err := s.AddStep(ctx, step(r, n)); err != nil {
					t.Fatal(err)
				}
				if err := s.AddNodeEvents(ctx, node(r, n)); err != nil {
					t.Fatal(err)
				}
			}
		}
		if steps, nodes := stored(s); steps != 0 || nodes != 0 {
			t.Fatalf("%d step records and %d node events written at once; want them held", steps, nodes)
		}
		r := a
		r.Status = bot.RunRunning
		if err := s.SaveRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		if steps, nodes := stored(s); steps != 3 || nodes != 3 {
			t.Fatalf("after the save of one run: %d step records and %d node events, want its 3 and 3", steps, nodes)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			steps, nodes := stored(s)
			if steps == 6 && nodes == 6 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the store's flush wrote %d step records and %d node events, want 6 and 6", steps, nodes)
			}
			time.Sleep(20 * time.Millisecond)
		}

		// A reader sees what is held, in order; Close writes the rest.
		if err := s.AddStep(ctx, step(a, 4)); err != nil {
			t.Fatal(err)
		}
		if err := s.AddNodeEvents(ctx, node(b, 4)); err != nil {
			t.Fatal(err)
		}
		got, err := s.Steps(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, st := range got {
			names = append(names, st.Name)
		}
		if want := []string{"step1", "step2", "step3", "step4"}; !slices.Equal(names, want) {
			t.Fatalf("Steps: %v; want %v", names, want)
		}
		events, err := s.NodeEvents(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(events) != 4 || events[3].Seq != 4 {
			t.Fatalf("NodeEvents: %+v; want the four, the held one last", events)
		}
		if err := s.AddStep(ctx, step(b, 4)); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		again := d.Open(t, func(c *store.Config) { *c = cfg })
		if steps, nodes := stored(again); steps != 8 || nodes != 7 {
			t.Fatalf("after Close and reopen: %d step records and %d node events, want 8 and 7", steps, nodes)
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
