package bot_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/bottest"
	"github.com/difybot/difybot/bot/store/storetest"
	"github.com/difybot/difybot/dify"
	"github.com/difybot/difybot/dify/difytest"
	"github.com/rs/zerolog"
)

// TestRedeliveredEventAnsweredOnce delivers one event three times at once, as Slack's retries and LINE's
// redeliveries do, and checks one run and one reply on both back ends, through the real queue.
func TestRedeliveredEventAnsweredOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, d storetest.DB) {
		ctx := context.Background()
		sim := difytest.NewServer(difytest.Options{PingEvery: 5 * time.Millisecond, Latency: 10 * time.Millisecond})
		defer sim.Close()
		dc, _ := dify.New(dify.Config{BaseURL: sim.URL(), APIKey: "app-test", Logger: zerolog.Nop()})
		st := d.Open(t)
		plat := bottest.NewPlatform("fake")
		plat.AddFile("F", bottest.PNG(t, 10, 10))
		b, err := bot.New(bot.Config{Store: st, Workflows: dc, Platforms: []bot.Platform{plat}, Logger: zerolog.Nop(), TempDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		inbox, err := bot.NewInbox(bot.InboxConfig{Store: st})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Start(ctx, b); err != nil {
			t.Fatal(err)
		}
		m := bot.Message{Platform: "fake", EventID: "Ev123", ChatID: "C", UserID: "U", Text: "hi", Files: []bot.File{{ID: "F", Name: "a.png"}}}
		var wg sync.WaitGroup
		ids := make([]string, 3)
		dups := make([]bool, 3)
		for i := range 3 {
			wg.Go(func() {
				r, dup, err := inbox.Accept(ctx, m)
				if err != nil {
					t.Error(err)
				}
				ids[i], dups[i] = r.ID, dup
			})
		}
		wg.Wait()
		if ids[0] != ids[1] || ids[1] != ids[2] {
			t.Fatalf("three deliveries made runs %v", ids)
		}
		if n := countTrue(dups); n != 2 {
			t.Fatalf("%d deliveries were duplicates, want 2", n)
		}
		waitStatus(t, st, ids[0], bot.RunSucceeded)
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := st.Stop(sctx); err != nil { // Nothing may still be in flight when we count.
			t.Fatal(err)
		}
		if got := len(plat.Finals()); got != 1 {
			t.Errorf("%d final replies, want 1", got)
		}
		if n := sim.Started(); n != 1 {
			t.Errorf("%d workflow runs, want 1", n)
		}
	})
}

func countTrue(bs []bool) (n int) {
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// waitStatus polls the store until the run reaches want; it fails the test after 30 s.
func waitStatus(t testing.TB, st bot.Store, id string, want bot.RunStatus) bot.Run {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := st.Run(context.Background(), id)
		if err == nil && r.Status == want {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s is %s after 30 s, want %s (err %v)", id, r.Status, want, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
