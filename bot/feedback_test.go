package bot_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/bottest"
	"github.com/difybot/difybot/bot/store"
)

// placeholderPlatform posts a placeholder on the first progress and keeps its id in the run's state, as
// Slack's adapter keeps the message's ts.
type placeholderPlatform struct {
	*bottest.Platform
	posts atomic.Int32
}

func (p *placeholderPlatform) Progress(ctx context.Context, m bot.Message, pr bot.Progress) error {
	if pr.State.Get("fake_ts") == "" {
		p.posts.Add(1)
		if err := pr.State.Set(ctx, "fake_ts", "ts-1"); err != nil {
			return err
		}
	}
	return p.Platform.Progress(ctx, m, pr)
}

// feedbackCounter is the store, counting what the first feedback costs it.
type feedbackCounter struct {
	*store.Store
	mu     sync.Mutex
	claims int
	reads  int
	sets   [][]string // The keys of each SetState.
}

func (s *feedbackCounter) ClaimFeedback(ctx context.Context, runID string, attempt int) (bool, error) {
	s.mu.Lock()
	s.claims++
	s.mu.Unlock()
	return s.Store.ClaimFeedback(ctx, runID, attempt)
}

func (s *feedbackCounter) Run(ctx context.Context, id string) (bot.Run, error) {
	s.mu.Lock()
	s.reads++
	s.mu.Unlock()
	return s.Store.Run(ctx, id)
}

func (s *feedbackCounter) SetState(ctx context.Context, runID string, attempt int, kv map[string]string) error {
	keys := []string{}
	for k := range kv {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	s.mu.Lock()
	s.sets = append(s.sets, keys)
	s.mu.Unlock()
	return s.Store.SetState(ctx, runID, attempt, kv)
}

// startLane runs h's fast lane until the test ends and returns an inbox that fills it.
func startLane(t *testing.T, h *harness, st bot.Store, lane *bot.Lane) bot.Inbox {
	t.Helper()
	inbox, err := bot.NewInbox(bot.InboxConfig{Store: st, Lane: lane})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.bot.Feedback(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for !lane.Sending() {
		time.Sleep(time.Millisecond)
	}
	return inbox
}

// TestFastLaneSendsWithOneWrite: the run is stored with its first feedback already claimed for the lane, the
// lane stores the placeholder's id and its mark in one write, and the worker of the same process takes them
// from the lane instead of claiming or reading the store again.
func TestFastLaneSendsWithOneWrite(t *testing.T) {
	lane := bot.NewLane(8)
	pp := &placeholderPlatform{Platform: bottest.NewPlatform("fake")}
	var fc *feedbackCounter
	h := newHarness(t, "ok", func(cfg *bot.Config) {
		fc = &feedbackCounter{Store: cfg.Store.(*store.Store)}
		cfg.Store, cfg.Lane, cfg.Platforms = fc, lane, []bot.Platform{pp}
	})
	inbox := startLane(t, h, fc, lane)
	r, _, err := inbox.Accept(context.Background(), bot.Message{Platform: "fake", EventID: "ev-lane", ChatID: "C1", UserID: "U1", Text: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		fc.mu.Lock()
		n := len(fc.sets)
		fc.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the lane did not send the first feedback")
		}
	}
	if err := h.bot.Process(context.Background(), r.ID); err != nil {
		t.Fatal(err)
	}
	got, err := h.store.Run(context.Background(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if fc.claims != 0 || fc.reads != 1 || len(fc.sets) != 1 || !slices.Equal(fc.sets[0], []string{"fake_ts", "feedback"}) {
		t.Errorf("%d claims, %d reads, state writes %v; want 0 claims, the worker's 1 read, 1 write of fake_ts and feedback",
			fc.claims, fc.reads, fc.sets)
	}
	if pp.posts.Load() != 1 || got.Status != bot.RunSucceeded || got.State["fake_ts"] != "ts-1" || got.State["feedback"] != "sent" {
		t.Errorf("%d placeholders, run %s with state %v; want one placeholder, its id kept", pp.posts.Load(), got.Status, got.State)
	}
}

// eagerWorker is the store with a worker that picks each laned run up the moment it is stored, before the
// inbox hands it to the lane.
type eagerWorker struct {
	*store.Store
	running chan struct{} // Closed when the worker has marked the run running, just before its first feedback.
	once    sync.Once
	work    func(runID string)
}

func (s *eagerWorker) EnqueueLaned(ctx context.Context, m bot.Message) (bot.Run, bool, error) {
	r, dup, err := s.Store.EnqueueLaned(ctx, m)
	if err == nil && !dup {
		go s.work(r.ID)
		<-s.running
		time.Sleep(20 * time.Millisecond) // The worker looks for the lane's entry meanwhile.
	}
	return r, dup, err
}

func (s *eagerWorker) SaveRun(ctx context.Context, r bot.Run) error {
	err := s.Store.SaveRun(ctx, r)
	if r.Status == bot.RunRunning {
		s.once.Do(func() { close(s.running) })
	}
	return err
}

// TestFastLaneWhenTheWorkerIsFirst: a worker that takes the lane's entry before the inbox hands the run to
// the lane still gets the lane's placeholder, and does not post one of its own.
func TestFastLaneWhenTheWorkerIsFirst(t *testing.T) {
	lane := bot.NewLane(8)
	pp := &placeholderPlatform{Platform: bottest.NewPlatform("fake")}
	var ew *eagerWorker
	h := newHarness(t, "ok", func(cfg *bot.Config) {
		ew = &eagerWorker{Store: cfg.Store.(*store.Store), running: make(chan struct{})}
		cfg.Store, cfg.Lane, cfg.Platforms = ew, lane, []bot.Platform{pp}
	})
	processed := make(chan error, 1)
	ew.work = func(id string) { processed <- h.bot.Process(context.Background(), id) }
	inbox := startLane(t, h, ew, lane)
	r, _, err := inbox.Accept(context.Background(), bot.Message{Platform: "fake", EventID: "ev-eager", ChatID: "C1", UserID: "U1", Text: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-processed; err != nil {
		t.Fatal(err)
	}
	got, err := h.store.Run(context.Background(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if pp.posts.Load() != 1 || got.Status != bot.RunSucceeded || got.State["feedback"] != "sent" || got.State["fake_ts"] != "ts-1" {
		t.Errorf("%d placeholders, run %s with state %v; want the lane's one placeholder, marked sent", pp.posts.Load(), got.Status, got.State)
	}
}
