package bot_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/bottest"
	"github.com/difybot/difybot/dify/difytest"
)

// TestPhotosForASingleFileInput sends three photos in one message to a workflow whose image input takes one file:
// three runs, answered in order, each saying which photo it covers, and a repeated delivery queues nothing twice.
func TestPhotosForASingleFileInput(t *testing.T) {
	h := newHarness(t, "ok")
	ctx := context.Background()
	m := h.withImage("F1", bottest.PNG(t, 10, 10))
	for _, id := range []string{"F2", "F3"} {
		h.plat.AddFile(id, bottest.PNG(t, 20, 20))
		m.Files = append(m.Files, bot.File{ID: id, Name: id + ".png"})
	}
	m.EventID = "ev-three"
	first, err := h.send(t, m)
	if err != nil {
		t.Fatal(err)
	}
	var replies []string
	replies = append(replies, first.Reply)
	next := first
	for i := 2; i <= 3; i++ {
		if err := h.bot.Process(ctx, next.ID); err != nil { // Delivered again: the next photos are queued once.
			t.Fatal(err)
		}
		runs, err := h.store.ListRuns(ctx, bot.RunFilter{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) != i {
			t.Fatalf("%d runs after answering photo %d, want %d", len(runs), i-1, i)
		}
		next = runs[0] // Newest first.
		if err := h.bot.Process(ctx, next.ID); err != nil {
			t.Fatal(err)
		}
		next, _ = h.store.Run(ctx, next.ID)
		replies = append(replies, next.Reply)
	}
	for i, want := range []string{"Photo 1 of 3\n", "Photo 2 of 3\n", "Photo 3 of 3\n"} {
		if !strings.HasPrefix(replies[i], want) || !strings.Contains(replies[i], "You said: what is this?") {
			t.Errorf("reply %d = %q, want it to start with %q", i+1, replies[i], want)
		}
	}
	if !strings.Contains(replies[0], "10×10") || !strings.Contains(replies[2], "20×20") {
		t.Errorf("replies do not follow the photos' order: %q", replies)
	}
	if n := h.sim.Calls(difytest.RouteRun); n != 3 {
		t.Errorf("%d workflow runs, want 3", n)
	}
	if err := h.bot.Process(ctx, next.ID); err != nil {
		t.Fatal(err)
	}
	if runs, _ := h.store.ListRuns(ctx, bot.RunFilter{Limit: 10}); len(runs) != 3 {
		t.Errorf("%d runs after the last photo, want 3", len(runs))
	}
}

// TestPhotoSetRunsOnce sends a LINE-style image set (one message per photo): the last photo goes on with all
// three, the others end without a word; with a photo missing, the latest goes on after the set wait.
func TestPhotoSetRunsOnce(t *testing.T) {
	tests := []struct {
		name   string
		send   []int // Indexes that arrive.
		later  time.Duration
		photos int // Photos in the run that answers.
	}{
		{"all three", []int{1, 2, 3}, 0, 3},
		{"one lost", []int{1, 2}, 20 * time.Second, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
			h := newHarness(t, "ok", func(c *bot.Config) { c.Now = func() time.Time { return now } })
			ctx := context.Background()
			var runs []bot.Run
			for _, i := range tt.send {
				m := h.withImage(fmt.Sprintf("F%d", i), bottest.PNG(t, 10*i, 10))
				m.EventID, m.Text = fmt.Sprintf("ev-%d", i), ""
				m.Set = &bot.PhotoSet{ID: "set-1", Index: i, Total: 3}
				r, err := h.send(t, m)
				var hold *bot.HoldError
				if err != nil && !errors.As(err, &hold) {
					t.Fatal(err)
				}
				runs = append(runs, r)
			}
			now = now.Add(tt.later)
			for _, r := range runs { // The queue comes back to each held photo.
				if err := h.bot.Process(ctx, r.ID); err != nil {
					t.Fatalf("run of %s: %v", r.Message.EventID, err)
				}
			}
			var answered []bot.Run
			for _, r := range runs {
				got, _ := h.store.Run(ctx, r.ID)
				if got.Status != bot.RunSucceeded {
					t.Errorf("%s: %s", got.Message.EventID, got.Status)
				}
				if got.Reply != "" {
					answered = append(answered, got)
				}
			}
			if len(answered) != 1 || len(h.plat.Finals()) != 1 {
				t.Fatalf("%d runs answered, %d replies; want one", len(answered), len(h.plat.Finals()))
			}
			a := answered[0]
			if a.Batch == nil || a.Batch.Total != tt.photos || !strings.Contains(a.Reply, "10×10") {
				t.Errorf("answer %q batch %+v, want photo 1 of %d first", a.Reply, a.Batch, tt.photos)
			}
		})
	}
}
