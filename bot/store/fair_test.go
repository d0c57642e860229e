package store_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
)

// TestAdmitKeepsOnePersonsShare: runs beyond a person's limit wait, others' runs do not, and of several
// replicas admitting one person's runs at once exactly as many as the limit start.
func TestAdmitKeepsOnePersonsShare(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, d testDB) {
		s := d.Open(t)
		ctx := t.Context()
		enqueue := func(event, user string) bot.Run {
			m := message(event)
			m.UserID = user
			r, _, err := s.Enqueue(ctx, m)
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		var mine []bot.Run
		for i := range 6 {
			mine = append(mine, enqueue("EvMine"+string(rune('a'+i)), "U1"))
		}
		other := enqueue("EvOther", "U2")
		share := bot.Share{Runs: 2}
		now := time.Now()

		// Six workers try to start U1's six runs at once: two may.
		var wg sync.WaitGroup
		admitted := make([]bool, len(mine))
		for i, r := range mine {
			wg.Go(func() {
				a, err := s.Admit(ctx, r, share, now)
				if err != nil {
					t.Error(err)
				}
				admitted[i] = a.OK
			})
		}
		wg.Wait()
		n := 0
		for _, ok := range admitted {
			if ok {
				n++
			}
		}
		if n != 2 {
			t.Errorf("%d of one person's runs admitted at once, want 2 (%v)", n, admitted)
		}
		if a, err := s.Admit(ctx, other, share, now); err != nil || !a.OK {
			t.Errorf("another person's run: %+v, %v; want admitted", a, err)
		}
		var waiting bot.Run
		for i, ok := range admitted {
			if !ok {
				waiting = mine[i]
				break
			}
		}
		a, err := s.Admit(ctx, waiting, share, now)
		if err != nil || a.OK || a.Reason != "runs" || a.Running != 2 {
			t.Errorf("a third run: %+v, %v; want held for runs, 2 running", a, err)
		}
		// One finishes: the next may start.
		for i, ok := range admitted {
			if ok {
				r, _ := s.Run(ctx, mine[i].ID)
				r.Status = bot.RunSucceeded
				if err := s.SaveRun(ctx, r); err != nil {
					t.Fatal(err)
				}
				break
			}
		}
		if a, err := s.Admit(ctx, waiting, share, now); err != nil || !a.OK {
			t.Errorf("after one finished: %+v, %v; want admitted", a, err)
		}

		// The rate counts the messages received in the minute before this one.
		rate := bot.Share{PerMinute: 3}
		last := mine[len(mine)-1] // Five of U1's messages came before it.
		a, err = s.Admit(ctx, last, rate, now)
		if err != nil || a.OK || a.Reason != "rate" || a.Recent != 5 || a.RetryAt.Sub(mine[0].CreatedAt) != time.Minute {
			t.Errorf("over the rate: %+v, %v; want held until the first message is a minute old", a, err)
		}
		if a, err := s.Admit(ctx, mine[1], rate, now); err != nil || !a.OK {
			t.Errorf("the second message (one before it): %+v, %v; want admitted", a, err)
		}
		if a, err := s.Admit(ctx, last, rate, now.Add(61*time.Second)); err != nil || !a.OK {
			t.Errorf("a minute later: %+v, %v; want admitted", a, err)
		}
		// An attempt a Retry replaced is not saved (one held is refused by the save that holds it).
		stale := last
		stale.Attempt++
		if _, err := s.Admit(ctx, stale, rate, now.Add(61*time.Second)); !errors.Is(err, bot.ErrStaleAttempt) {
			t.Error("admitting an attempt the run is not at succeeded")
		}
	})
}
