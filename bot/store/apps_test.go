package store_test

import (
	"testing"

	"github.com/difybot/difybot/bot"
)

// A run's app is stored with it, kept by a retry, and filters the admin list.
func TestRunApp(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, d testDB) {
		s := d.Open(t)
		ctx := t.Context()
		var ids []string
		for i, app := range []string{"receipts", "damage", ""} {
			r, _, err := s.Enqueue(ctx, message("EvApp"+string(rune('a'+i))))
			if err != nil {
				t.Fatal(err)
			}
			r.App, r.Status = app, bot.RunSucceeded
			if err := s.SaveRun(ctx, r); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, r.ID)
		}
		got, err := s.ListRuns(ctx, bot.RunFilter{App: "damage"})
		if err != nil || len(got) != 1 || got[0].ID != ids[1] || got[0].App != "damage" {
			t.Fatalf("ListRuns(app=damage) = %+v, %v; want the damage run", got, err)
		}
		if err := s.Requeue(ctx, ids[0], 1); err != nil {
			t.Fatal(err)
		}
		r, err := s.Run(ctx, ids[0])
		if err != nil || r.App != "receipts" || r.Attempt != 2 {
			t.Errorf("after Requeue: app %q attempt %d, %v; want receipts at attempt 2 (a retry uses the same app)", r.App, r.Attempt, err)
		}
	})
}
