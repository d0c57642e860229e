package dify

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/difybot/difybot/dify/difytest"
)

func TestLimiterAIMD(t *testing.T) {
	l := NewLimiter(LimitConfig{Start: 2, Max: 10})
	var tickets []uint64
	fill := func() int { // Takes every free slot; returns how many.
		n := 0
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		for {
			t, err := l.acquire(ctx)
			if err != nil {
				return n
			}
			n++
			tickets = append(tickets, t)
		}
	}
	release := func(full ...bool) { // Releases the oldest tickets, full as given, then not full.
		t := tickets[0]
		tickets = tickets[1:]
		l.release(t, len(full) > 0 && full[0], 0)
	}
	if n := fill(); n != 2 {
		t.Fatalf("took %d slots of a limit of 2", n)
	}
	// Slow start: each run that finished at the limit adds one.
	release()
	release()
	if s := l.Status(); s.Limit != 3 || s.InFlight != 0 {
		t.Errorf("after a round at the limit: %+v, want limit 3 (slow start adds one per run at the limit)", s)
	}
	for range 20 { // Run at the limit until the ceiling.
		n := fill()
		for range n {
			release()
		}
	}
	if s := l.Status(); s.Limit != 10 {
		t.Errorf("after many full rounds: %+v, want the ceiling 10", s)
	}
	// Dify says it is full with 10 in flight: a tenth less, once for the burst.
	n := fill()
	release(true)
	release(true)
	for range n - 2 {
		release()
	}
	if s := l.Status(); s.Limit != 9 {
		t.Errorf("after a burst of 429s at 10: %+v, want 9 (one cut for the burst)", s)
	}
	// A try let in after that cut is refused too: the cut was not enough, so it cuts again.
	fill()
	release(true)
	if s := l.Status(); s.Limit != 8 {
		t.Errorf("after a 429 of a try let in after the cut: %+v, want 8", s)
	}
	for len(tickets) > 0 {
		release()
	}
	// Below the limit, finished runs do not grow it: it only grows while it is what holds runs back.
	fill()
	release()
	for len(tickets) > 0 {
		release()
	}
	before := l.Status().Limit
	tk, _ := l.acquire(context.Background())
	l.release(tk, false, 0)
	if s := l.Status(); s.Limit != before {
		t.Errorf("after a run below the limit: %+v, want still %d", s, before)
	}
}

// TestLimiterFindsDifysCap runs many workflows at once against a Dify that takes 10 at a time and refuses more
// with 429: none fails, Dify never runs more than it takes, and the limit settles near 10.
func TestLimiterFindsDifysCap(t *testing.T) {
	sim := difytest.NewServer(difytest.Options{MaxActive: 10, Latency: 20 * time.Millisecond, PingEvery: time.Hour})
	defer sim.Close()
	c := newTestClient(t, sim.URL())
	c.retry = RetryPolicy{MaxAttempts: 50, Base: time.Millisecond, Max: 20 * time.Millisecond}.withDefaults()
	c.limiter = NewLimiter(LimitConfig{Start: 4, Max: 40})
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	for i := range 200 {
		wg.Go(func() {
			_, err := c.RunWorkflow(context.Background(), RunRequest{User: "u", Inputs: map[string]any{"query": fmt.Sprint("run ", i)}})
			if err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
				t.Log(err)
			}
		})
	}
	wg.Wait()
	if failed != 0 {
		t.Errorf("%d of 200 runs failed", failed)
	}
	if s := c.Limit(); s.Limit < 8 || s.Limit > 11 || s.InFlight != 0 {
		t.Errorf("limit %+v, want it near Dify's 10 (8..11) and nothing in flight", s)
	}
	if p := sim.PeakActive(); p > 10 {
		t.Errorf("Dify ran %d at once, more than it takes", p)
	}
	t.Logf("limit %+v, 429s %d", c.Limit(), sim.Calls(difytest.RouteRun)-200)
}

// TestLimiterFollowsLatency drives the limiter with Difys that take any number of runs without a 429. One
// queues beyond 20 (a run takes 1 s up to 20 at once, proportionally longer beyond): the limit settles where
// runs take twice as long (40) instead of growing to the ceiling. One never slows: the limit grows to the
// ceiling. One becomes ten times slower for every load: the limit falls, but never below its start.
func TestLimiterFollowsLatency(t *testing.T) {
	for _, tc := range []struct {
		name    string
		took    func(round, inFlight int) time.Duration
		low, hi int // Where the limit must end.
	}{
		{"queues beyond 20", func(_, n int) time.Duration { return time.Second * time.Duration(max(n, 20)) / 20 }, 30, 44},
		{"never slows", func(int, int) time.Duration { return time.Second }, 64, 64},
		{"slow for all after a while", func(round, _ int) time.Duration {
			if round > 100 {
				return 10 * time.Second
			}
			return time.Second
		}, 8, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLimiter(LimitConfig{Start: 8, Max: 64})
			for round := range 300 { // Fill every slot, then each run ends as long as the load made it.
				var tickets []uint64
				ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
				for {
					tk, err := l.acquire(ctx)
					if err != nil {
						break
					}
					tickets = append(tickets, tk)
				}
				cancel()
				took := tc.took(round, len(tickets))
				for _, tk := range tickets {
					l.release(tk, false, took)
				}
			}
			if s := l.Status(); s.Limit < tc.low || s.Limit > tc.hi {
				t.Errorf("limit after 300 rounds: %+v, want %d to %d", s, tc.low, tc.hi)
			}
		})
	}
}
