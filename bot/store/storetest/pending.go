package storetest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
)

// PendingContract checks s's pending messages: kept once, listed while fresh, taken by one run only (and again by
// the same run when it resumes), and expired once. bot/store runs it on each back end, bot/bottest on memory.
func PendingContract(t *testing.T, s bot.Store) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	run := func(event string) bot.Run {
		r, _, err := s.Enqueue(ctx, bot.Message{Platform: "slack", EventID: event, ChatID: "C1", UserID: "U1", Text: "hi"})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	photo1, photo2, old, text, other := run("EvP1"), run("EvP2"), run("EvOld"), run("EvText"), run("EvOther")
	add := func(r bot.Run, key string, created, ttl time.Duration) {
		p := bot.Pending{RunID: r.ID, Key: key, Message: r.Message, CreatedAt: now.Add(created), ExpiresAt: now.Add(created + ttl)}
		for range 2 { // Adding again (a resumed run) changes nothing.
			if err := s.AddPending(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	add(photo1, "k", 0, time.Minute)
	add(photo2, "k", time.Second, time.Minute)
	add(old, "k", -time.Hour, time.Minute)
	ids := func(ps []bot.Pending) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.RunID)
		}
		return out
	}
	waiting, err := s.Waiting(ctx, "k", now.Add(2*time.Second))
	if err != nil || !reflect.DeepEqual(ids(waiting), []string{photo1.ID, photo2.ID}) {
		t.Fatalf("Waiting = %v %v, want the two fresh photos, oldest first", ids(waiting), err)
	}
	if waiting[0].Message.EventID != "EvP1" || !waiting[0].ExpiresAt.Equal(now.Add(time.Minute)) {
		t.Errorf("stored pending: %+v", waiting[0])
	}
	if v, err := s.PendingOf(ctx, text.ID, "k", now.Add(2*time.Second)); err != nil || len(v.Held) != 0 || v.Own != nil ||
		!reflect.DeepEqual(ids(v.Waiting), ids(waiting)) {
		t.Fatalf("PendingOf before taking = %+v %v, want only the two waiting", v, err)
	}
	took, err := s.TakePending(ctx, text.ID, ids(waiting))
	if err != nil || !reflect.DeepEqual(ids(took), []string{photo1.ID, photo2.ID}) {
		t.Fatalf("TakePending = %v %v", ids(took), err)
	}
	// Another run cannot take them too; the taker gets the same ones again.
	if again, _ := s.TakePending(ctx, other.ID, ids(waiting)); len(again) != 0 {
		t.Errorf("a second taker got %v", ids(again))
	}
	if again, _ := s.TakePending(ctx, text.ID, nil); !reflect.DeepEqual(ids(again), ids(took)) {
		t.Errorf("the taker resumed with %v, want %v", ids(again), ids(took))
	}
	if w, _ := s.Waiting(ctx, "k", now); len(w) != 0 {
		t.Errorf("still waiting after being taken: %v", ids(w))
	}
	// What the taker holds, and what a taken photo's own run sees, in one read each.
	if v, err := s.PendingOf(ctx, text.ID, "k", now); err != nil || !reflect.DeepEqual(ids(v.Held), ids(took)) || v.Own != nil || len(v.Waiting) != 0 {
		t.Errorf("PendingOf the taker = %+v %v, want what it took", v, err)
	}
	if v, err := s.PendingOf(ctx, photo1.ID, "k", now); err != nil || v.Own == nil || v.Own.TakenBy != text.ID || len(v.Held) != 0 {
		t.Errorf("PendingOf a taken photo = %+v %v, want its own record, taken by the text", v, err)
	}
	expired, err := s.ExpirePending(ctx, now)
	if err != nil || !reflect.DeepEqual(ids(expired), []string{old.ID}) || expired[0].TakenBy != bot.PendingExpired {
		t.Errorf("ExpirePending = %+v %v, want the old one", expired, err)
	}
	if again, _ := s.ExpirePending(ctx, now); len(again) != 0 {
		t.Errorf("expired twice: %v", ids(again))
	}
}
