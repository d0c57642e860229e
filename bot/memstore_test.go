package bot_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/bottest"
	"github.com/difybot/difybot/dify"
	"github.com/difybot/difybot/dify/difytest"
	"github.com/rs/zerolog"
)

// memPlatform is the least a text run needs from a platform: it records the replies.
type memPlatform struct {
	mu      sync.Mutex
	replies []bot.Reply
}

func (*memPlatform) Name() string { return "mem" }

func (*memPlatform) OpenFile(context.Context, bot.Message, bot.File) (io.ReadCloser, error) {
	return nil, errors.New("no files here")
}

func (p *memPlatform) Reply(_ context.Context, _ bot.Message, r bot.Reply) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.replies = append(p.replies, r)
	return nil
}

// TestTextMessageOnMemoryStore runs a text message through the pipeline on bottest's in-memory store: no
// database, the same steps.
func TestTextMessageOnMemoryStore(t *testing.T) {
	sim := difytest.NewServer(difytest.Options{Scenario: "ok", PingEvery: 5 * time.Millisecond})
	t.Cleanup(sim.Close)
	dc, err := dify.New(dify.Config{BaseURL: sim.URL(), APIKey: "app-test", Logger: zerolog.Nop(),
		Retry: dify.RetryPolicy{Base: time.Millisecond, Max: 5 * time.Millisecond}, PollEvery: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	st, plat := bottest.NewStore(), &memPlatform{}
	b, err := bot.New(bot.Config{Store: st, Workflows: dc, Platforms: []bot.Platform{plat}, Logger: zerolog.Nop(),
		Timeout: 10 * time.Second, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := bot.NewInbox(bot.InboxConfig{Store: st, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}

	ctx := t.Context()
	accepted, dup, err := inbox.Accept(ctx, bot.Message{Platform: "mem", EventID: "m1", ChatID: "C1", UserID: "U1", Text: "hello"})
	if err != nil || dup {
		t.Fatalf("Accept = %v, dup %v", err, dup)
	}
	if q := st.Queued(); !slices.Equal(q, []string{accepted.ID}) {
		t.Fatalf("queued %v, want the accepted run %s", q, accepted.ID)
	}
	if err := b.Process(ctx, accepted.ID); err != nil {
		t.Fatalf("Process: %v", err)
	}

	r, err := st.Run(ctx, accepted.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != bot.RunSucceeded || r.Reply != "No image was attached. You said: hello." {
		t.Fatalf("run %s, reply %q", r.Status, r.Reply)
	}
	plat.mu.Lock()
	replies := slices.Clone(plat.replies)
	plat.mu.Unlock()
	if len(replies) != 1 || !replies[0].Final || replies[0].Text != r.Reply || replies[0].RunID != r.ID {
		t.Errorf("replies = %+v, want the one final answer", replies)
	}
	var steps []string
	for _, s := range st.Steps(r.ID) {
		steps = append(steps, fmt.Sprintf("%d/%d %s %s", s.N, s.Of, s.Name, s.Status))
	}
	want := []string{"1/5 receive done", "2/5 enqueue done", "3/5 run done", "4/5 format done", "5/5 reply done"}
	if !slices.Equal(steps, want) {
		t.Errorf("steps:\n got %q\nwant %q", steps, want)
	}
}
