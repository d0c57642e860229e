package bot_test

import (
	"context"
	"strings"
	"testing"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/dify/difytest"
)

// TestPhotosForASingleFileInput sends three photos in one message to a workflow whose image input takes one file:
// three runs, answered in order, each saying which photo it covers, and a repeated delivery queues nothing twice.
func TestPhotosForASingleFileInput(t *testing.T) {
	h := newHarness(t, "ok")
	ctx := context.Background()
	m := h.withImage("F1", pngOf(t, 10, 10))
	for _, id := range []string{"F2", "F3"} {
		h.plat.files[id] = pngOf(t, 20, 20)
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
