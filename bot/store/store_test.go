package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/store"
	"github.com/difybot/difybot/bot/store/storetest"
)

// defaultPostgres is what CI provides; DIFYBOT_TEST_POSTGRES overrides it.

// testDB and eachBackend come from storetest, shared with the bot and cmd tests.
type testDB = storetest.DB

func eachBackend(t *testing.T, fn func(t *testing.T, d testDB)) { storetest.Each(t, fn) }

func sqliteDB(t testing.TB) testDB {
	t.Helper()
	return storetest.SQLite(t)
}

// fakeProc is a Processor that records every call and answers with fn.
type fakeProc struct {
	fn    func(ctx context.Context, runID string, n int) error // n counts this run's calls from 1.
	calls chan call                                            // Sent when a call returns.

	mu sync.Mutex
	n  map[string]int
}

type call struct {
	runID string
	n     int
	err   error
}

func newFake(fn func(ctx context.Context, runID string, n int) error) *fakeProc {
	return &fakeProc{fn: fn, calls: make(chan call, 100), n: map[string]int{}}
}

func (f *fakeProc) Process(ctx context.Context, runID string) error {
	f.mu.Lock()
	f.n[runID]++
	n := f.n[runID]
	f.mu.Unlock()
	var err error
	if f.fn != nil {
		err = f.fn(ctx, runID, n)
	}
	f.calls <- call{runID: runID, n: n, err: err}
	return err
}

func (f *fakeProc) count(runID string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n[runID]
}

// next waits for the next finished call.
func (f *fakeProc) next(t testing.TB, within time.Duration) call {
	t.Helper()
	select {
	case c := <-f.calls:
		return c
	case <-time.After(within):
		t.Fatalf("no Process call within %s", within)
		return call{}
	}
}

// quiet fails if any call arrives within d.
func (f *fakeProc) quiet(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case c := <-f.calls:
		t.Fatalf("unexpected Process call %+v", c)
	case <-time.After(d):
	}
}

func start(t testing.TB, s *store.Store, p store.Processor) {
	t.Helper()
	if err := s.Start(t.Context(), p); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
}

func message(event string) bot.Message {
	return bot.Message{
		Platform:   "slack",
		EventID:    event,
		ChatID:     "C1",
		ThreadID:   "1700000000.000100",
		UserID:     "U1",
		Text:       "what is in this picture?",
		Files:      []bot.File{{ID: "F1", Name: "cat.png", MIMEType: "image/png", Size: 1234, URL: "https://files.example/F1"}},
		ReceivedAt: time.Date(2026, 11, 22, 9, 30, 0, 123456789, time.UTC),
		Extra:      map[string]string{"team": "T1"},
	}
}

func TestEnqueueRoundTrip(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, d testDB) {
		s := d.Open(t)
		ctx := t.Context()
		m := message("Ev1")
		r, dup, err := s.Enqueue(ctx, m)
		if err != nil || dup {
			t.Fatalf("Enqueue = %v, dup %v", err, dup)
		}
		if !strings.HasPrefix(r.ID, "r_") || len(r.ID) != 28 {
			t.Errorf("id %q: want r_ and 26 characters", r.ID)
		}
		if r.Status != bot.RunQueued || r.Attempt != 1 || r.CreatedAt.IsZero() || r.Platform != "slack" || r.EventID != "Ev1" {
			t.Errorf("enqueued run = %+v", r)
		}
		got, err := s.Run(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("Run = %+v\nwant  %+v", got, r)
		}
		if !reflect.DeepEqual(got.Message, m) {
			t.Errorf("message = %+v\nwant      %+v", got.Message, m)
		}
		if _, err := s.Run(ctx, "r_missing"); !errors.Is(err, bot.ErrNotFound) {
			t.Errorf("Run(missing) = %v, want ErrNotFound", err)
		}
		if err := s.Ping(ctx); err != nil {
			t.Errorf("Ping: %v", err)
		}
	})
}

func TestEnqueueDeduplicates(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, d testDB) {
		s := d.Open(t)
		ctx := t.Context()

		var first bot.Run
		for i := range 3 {
			r, dup, err := s.Enqueue(ctx, message("EvSeq"))
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				first = r
			}
			if dup != (i > 0) || r.ID != first.ID {
				t.Errorf("enqueue %d: id %s dup %v; want id %s dup %v", i, r.ID, dup, first.ID, i > 0)
			}
		}

		type result struct {
			id  string
			dup bool
			err error
		}
		results := make(chan result, 3)
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				r, dup, err := s.Enqueue(ctx, message("EvConcurrent"))
				results <- result{r.ID, dup, err}
			})
		}
		wg.Wait()
		close(results)
		ids, dups := map[string]bool{}, 0
		for res := range results {
			if res.err != nil {
				t.Fatal(res.err)
			}
			ids[res.id] = true
			if res.dup {
				dups++
			}
		}
		if len(ids) != 1 || dups != 2 {
			t.Errorf("concurrent enqueues: %d runs, %d duplicates; want 1 run, 2 duplicates", len(ids), dups)
		}
		var concurrent string
		for id := range ids {
			concurrent = id
		}

		// Without an event id there is nothing to deduplicate on: each message is its own run.
		noEvent := message("")
		a, _, err := s.Enqueue(ctx, noEvent)
		if err != nil {
			t.Fatal(err)
		}
		b, dup, err := s.Enqueue(ctx, noEvent)
		if err != nil || dup || a.ID == b.ID {
			t.Errorf("second message without event id: %v, dup %v, same id %v", err, dup, a.ID == b.ID)
		}

		f := newFake(nil)
		start(t, s, f)
		want := map[string]bool{first.ID: true, concurrent: true, a.ID: true, b.ID: true}
		for range want {
			c := f.next(t, 10*time.Second)
			if !want[c.runID] {
				t.Errorf("processed unexpected run %s", c.runID)
			}
		}
		f.quiet(t, 500*time.Millisecond)
		for id := range want {
			if n := f.count(id); n != 1 {
				t.Errorf("run %s processed %d times, want 1", id, n)
			}
		}
	})
}

func TestSaveRunStepsAndNodeEvents(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, d testDB) {
		s := d.Open(t)
		ctx := t.Context()
		r, _, err := s.Enqueue(ctx, message("EvSave"))
		if err != nil {
			t.Fatal(err)
		}

		r.Status = bot.RunFailed
		r.FinishedAt = time.Date(2026, 11, 22, 9, 31, 0, 5, time.UTC)
		r.DifyRunID, r.DifyTaskID, r.ConversationID = "wr-1", "task-1", "conv-1"
		r.Reply = "Something went wrong.\nReference: " + r.ID
		r.Code = bot.CodeDifyAuthInvalid
		r.Diagnosis = &bot.Diagnosis{Code: bot.CodeDifyAuthInvalid, Summary: "401", Causes: []string{"key rotated"}}
		r.HeldNotified = true
		r.State = map[string]string{"placeholder_ts": "1700000000.000200"}
		r.PostedAttempt, r.RepliedAttempt = 1, 1
		if err := s.SaveRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		got, err := s.Run(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.UpdatedAt.Before(r.UpdatedAt) {
			t.Errorf("UpdatedAt went back: %s < %s", got.UpdatedAt, r.UpdatedAt)
		}
		r.UpdatedAt = got.UpdatedAt
		if !reflect.DeepEqual(got, r) {
			t.Errorf("after SaveRun, Run = %+v\nwant %+v", got, r)
		}
		if err := s.SaveRun(ctx, bot.Run{ID: "r_missing"}); !errors.Is(err, bot.ErrNotFound) {
			t.Errorf("SaveRun(missing) = %v, want ErrNotFound", err)
		}

		t0 := time.Date(2026, 11, 22, 9, 30, 1, 0, time.UTC)
		steps := []bot.Step{
			{RunID: r.ID, Attempt: 1, N: 1, Of: 8, Name: "receive", Status: "done", Start: t0},
			{RunID: r.ID, Attempt: 1, N: 5, Of: 8, Name: "upload", Status: "done", Start: t0.Add(time.Second),
				Duration: 140 * time.Millisecond, Fields: map[string]any{"file_id": "f-1", "bytes": float64(1234)}},
			{RunID: r.ID, Attempt: 1, N: 6, Of: 8, Name: "run", Status: "failed", Start: t0.Add(2 * time.Second),
				Duration: time.Second, Code: bot.CodeDifyAuthInvalid, Error: "401 unauthorized"},
		}
		for _, st := range steps {
			if err := s.AddStep(ctx, st); err != nil {
				t.Fatal(err)
			}
		}
		gotSteps, err := s.Steps(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(gotSteps, steps) {
			t.Errorf("Steps = %+v\nwant %+v", gotSteps, steps)
		}

		events := []bot.NodeEvent{
			{RunID: r.ID, Seq: 1, Event: "node_started", NodeID: "n1", NodeType: "llm", Title: "LLM", Index: 2, At: t0},
			{RunID: r.ID, Seq: 2, Event: "node_finished", NodeID: "n1", NodeType: "llm", Title: "LLM", Index: 2,
				Status: "failed", Elapsed: 1.25, Error: "PluginDaemonInnerError", At: t0.Add(time.Second)},
		}
		for _, e := range events {
			if err := s.AddNodeEvents(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		gotEvents, err := s.NodeEvents(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(gotEvents, events) {
			t.Errorf("NodeEvents = %+v\nwant %+v", gotEvents, events)
		}
		if none, err := s.Steps(ctx, "r_other"); err != nil || len(none) != 0 {
			t.Errorf("Steps(other) = %v, %v", none, err)
		}
	})
}

func TestListRuns(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, d testDB) {
		s := d.Open(t)
		ctx := t.Context()
		// Oldest first: slack queued, line failed/auth, slack failed/rate, line succeeded, slack failed/auth.
		specs := []struct {
			platform string
			status   bot.RunStatus
			code     bot.Code
		}{
			{"slack", bot.RunQueued, ""},
			{"line", bot.RunFailed, bot.CodeDifyAuthInvalid},
			{"slack", bot.RunFailed, bot.CodeDifyRateLimited},
			{"line", bot.RunSucceeded, ""},
			{"slack", bot.RunFailed, bot.CodeDifyAuthInvalid},
		}
		var runs []bot.Run
		for i, sp := range specs {
			m := message("EvList" + string(rune('a'+i)))
			m.Platform = sp.platform
			r, _, err := s.Enqueue(ctx, m)
			if err != nil {
				t.Fatal(err)
			}
			r.Status, r.Code = sp.status, sp.code
			if err := s.SaveRun(ctx, r); err != nil {
				t.Fatal(err)
			}
			runs = append(runs, r)
			time.Sleep(2 * time.Millisecond) // Distinct creation times make the expected order certain.
		}
		ids := func(rs []bot.Run) []string {
			var out []string
			for _, r := range rs {
				out = append(out, r.ID)
			}
			return out
		}
		pick := func(idx ...int) []string {
			var out []string
			for _, i := range idx {
				out = append(out, runs[i].ID)
			}
			return out
		}
		tests := []struct {
			name string
			f    bot.RunFilter
			want []string
		}{
			{"all newest first", bot.RunFilter{}, pick(4, 3, 2, 1, 0)},
			{"status", bot.RunFilter{Status: bot.RunFailed}, pick(4, 2, 1)},
			{"platform", bot.RunFilter{Platform: "line"}, pick(3, 1)},
			{"code", bot.RunFilter{Code: bot.CodeDifyAuthInvalid}, pick(4, 1)},
			{"combined", bot.RunFilter{Platform: "slack", Code: bot.CodeDifyAuthInvalid}, pick(4)},
			{"limit", bot.RunFilter{Limit: 2}, pick(4, 3)},
			{"before cursor", bot.RunFilter{Before: runs[2].CreatedAt, Limit: 2}, pick(1, 0)},
			{"nothing", bot.RunFilter{Platform: "web"}, nil},
		}
		for _, tt := range tests {
			got, err := s.ListRuns(ctx, tt.f)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if !reflect.DeepEqual(ids(got), tt.want) {
				t.Errorf("%s: ListRuns = %v, want %v", tt.name, ids(got), tt.want)
			}
		}
		got, err := s.ListRuns(ctx, bot.RunFilter{Limit: 1})
		if err != nil || len(got) != 1 || got[0].Status != bot.RunFailed || got[0].Message.Text == "" {
			t.Errorf("ListRuns returns whole runs: %+v, %v", got, err)
		}
	})
}

func TestConversations(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, d testDB) {
		s := d.Open(t)
		ctx := t.Context()
		key := message("").ConversationKey()
		if id, err := s.Conversation(ctx, key); err != nil || id != "" {
			t.Errorf("new key: %q, %v; want empty", id, err)
		}
		for _, want := range []string{"conv-1", "conv-2"} {
			if err := s.SetConversation(ctx, key, want); err != nil {
				t.Fatal(err)
			}
			if id, err := s.Conversation(ctx, key); err != nil || id != want {
				t.Errorf("Conversation = %q, %v; want %q", id, err, want)
			}
		}
		if id, err := s.Conversation(ctx, "line:U2"); err != nil || id != "" {
			t.Errorf("other key: %q, %v; want empty", id, err)
		}
	})
}

func TestBreakerSetting(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, d testDB) {
		s := d.Open(t)
		ctx := t.Context()
		if b, err := s.BreakerSetting(ctx); err != nil || b.Mode != "auto" {
			t.Errorf("default = %+v, %v; want mode auto", b, err)
		}
		if h, err := s.BreakerHistory(ctx, 10); err != nil || len(h) != 0 {
			t.Errorf("empty history = %+v, %v", h, err)
		}
		t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
		set := []bot.BreakerSetting{
			{Mode: "open", Reason: "Dify upgrade", Actor: "admin", At: t0},
			{Mode: "closed", Reason: "testing", Actor: "ops", At: t0.Add(time.Minute)},
			{Mode: "auto", Reason: "done", Actor: "admin", At: t0.Add(2 * time.Minute)},
		}
		for _, b := range set {
			if err := s.SetBreakerSetting(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		if b, err := s.BreakerSetting(ctx); err != nil || !reflect.DeepEqual(b, set[2]) {
			t.Errorf("BreakerSetting = %+v, %v; want %+v", b, err, set[2])
		}
		h, err := s.BreakerHistory(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		if want := []bot.BreakerSetting{set[2], set[1]}; !reflect.DeepEqual(h, want) {
			t.Errorf("BreakerHistory(2) = %+v, want %+v", h, want)
		}
		if err := s.SetBreakerSetting(ctx, bot.BreakerSetting{Mode: "half-open"}); err == nil {
			t.Error("SetBreakerSetting accepted mode half-open")
		}
		if err := s.SetBreakerSetting(ctx, bot.BreakerSetting{Mode: "open", Actor: "admin"}); err != nil {
			t.Fatal(err)
		}
		if b, err := s.BreakerSetting(ctx); err != nil || b.Mode != "open" || b.At.IsZero() {
			t.Errorf("setting without a time = %+v, %v; want mode open stamped now", b, err)
		}
	})
}

func TestRequeue(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, d testDB) {
		s := d.Open(t)
		ctx := t.Context()
		// The fake finishes each run the way the bot does: outcome first, then the reply marker. The second
		// attempt waits at the gate until the test has read the requeued run.
		gate := make(chan struct{})
		f := newFake(func(ctx context.Context, id string, n int) error {
			if n == 2 {
				<-gate
			}
			r, err := s.Run(ctx, id)
			if err != nil {
				return err
			}
			r.Status, r.Reply, r.Code, r.FinishedAt = bot.RunFailed, "failed", bot.CodeDifyServerError, time.Now()
			r.DifyRunID = "wr-" + string(rune('0'+n))
			r.State = map[string]string{"placeholder_ts": "1700000000.000200"}
			r.RepliedAttempt = r.Attempt
			return s.SaveRun(ctx, r)
		})
		r, _, err := s.Enqueue(ctx, message("EvRequeue"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Requeue(ctx, r.ID, 1); !errors.Is(err, store.ErrNotFinished) {
			t.Errorf("Requeue(queued run) = %v, want ErrNotFinished", err)
		}
		if err := s.Requeue(ctx, "r_missing", 0); !errors.Is(err, bot.ErrNotFound) {
			t.Errorf("Requeue(missing) = %v, want ErrNotFound", err)
		}
		start(t, s, f)
		if c := f.next(t, 10*time.Second); c.runID != r.ID || c.err != nil {
			t.Fatalf("first call = %+v", c)
		}
		if err := s.Requeue(ctx, r.ID, 1); err != nil { // The person pressed Retry on attempt 1's failure.
			t.Fatal(err)
		}
		got, err := s.Run(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		// The outcome is cleared and the attempt moves on; the message and the adapter's state stay.
		if got.Attempt != 2 || got.Code != "" || got.Reply != "" || !got.FinishedAt.IsZero() || got.DifyRunID != "" ||
			got.State["placeholder_ts"] == "" || got.RepliedAttempt != 1 || !reflect.DeepEqual(got.Message, r.Message) {
			t.Errorf("after Requeue: %+v", got)
		}
		close(gate)
		if c := f.next(t, 10*time.Second); c.runID != r.ID || c.n != 2 {
			t.Fatalf("second call = %+v, want run %s call 2", c, r.ID)
		}
		// Attempt 2 failed too; a late replay of attempt 1's press changes nothing.
		if err := s.Requeue(ctx, r.ID, 1); !errors.Is(err, bot.ErrStaleAttempt) {
			t.Errorf("Requeue of attempt 1 at attempt 2 = %v, want ErrStaleAttempt", err)
		}
		if got, _ := s.Run(ctx, r.ID); got.Attempt != 2 || got.Status != bot.RunFailed {
			t.Errorf("after a stale Requeue: attempt %d %s, want 2 failed", got.Attempt, got.Status)
		}
		// The person presses Retry on attempt 2's failure, and the same press arrives again at the same moment,
		// here and on another replica: attempt 2 is requeued once.
		errs := make(chan error, 3)
		for range 3 {
			go func() { errs <- s.Requeue(ctx, r.ID, 2) }()
		}
		var queued, stale int
		for range 3 {
			switch err := <-errs; {
			case err == nil:
				queued++
			case errors.Is(err, bot.ErrStaleAttempt):
				stale++
			default:
				t.Errorf("Requeue of the same attempt: %v", err)
			}
		}
		if queued != 1 || stale != 2 {
			t.Errorf("3 Requeues of attempt 2: %d queued, %d stale; want 1 and 2", queued, stale)
		}
		if c := f.next(t, 10*time.Second); c.runID != r.ID || c.n != 3 {
			t.Fatalf("third call = %+v, want run %s call 3", c, r.ID)
		}
		f.quiet(t, 300*time.Millisecond)
	})
}

func TestHoldSnoozesWithoutSpendingAttempts(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, d testDB) {
		s := d.Open(t)
		// More holds than River's 5 attempts: if a hold counted as a failure, the job would be discarded
		// before the last call.
		const holds = 6
		f := newFake(func(ctx context.Context, id string, n int) error {
			if n <= holds {
				return &bot.HoldError{After: 50 * time.Millisecond, Reason: errors.New("breaker open")}
			}
			return nil
		})
		start(t, s, f)
		r, _, err := s.Enqueue(t.Context(), message("EvHold"))
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= holds+1; i++ {
			c := f.next(t, 10*time.Second)
			if c.runID != r.ID || c.n != i {
				t.Fatalf("call %d = %+v", i, c)
			}
		}
		f.quiet(t, 300*time.Millisecond)
		if got, err := s.Run(t.Context(), r.ID); err != nil || got.Status == bot.RunFailed {
			t.Errorf("held run = %+v, %v; it must not be failed", got, err)
		}
	})
}

func TestStopWaitsForInFlightRun(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, d testDB) {
		s := d.Open(t)
		started, release := make(chan struct{}), make(chan struct{})
		var ctxErr error
		f := newFake(func(ctx context.Context, id string, n int) error {
			close(started)
			<-release
			ctxErr = ctx.Err()
			return nil
		})
		if err := s.Start(t.Context(), f); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Enqueue(t.Context(), message("EvStop")); err != nil {
			t.Fatal(err)
		}
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("the run did not start")
		}
		stopped := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			stopped <- s.Stop(ctx)
		}()
		select {
		case err := <-stopped:
			t.Fatalf("Stop returned before the run finished: %v", err)
		case <-time.After(300 * time.Millisecond):
		}
		close(release)
		select {
		case err := <-stopped:
			if err != nil {
				t.Fatalf("Stop: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Stop did not return after the run finished")
		}
		if c := f.next(t, time.Second); c.err != nil || ctxErr != nil {
			t.Errorf("the in-flight run was disturbed: %+v, ctx %v", c, ctxErr)
		}
	})
}

func TestRunInterruptedByStopResumesAfterRestart(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, d testDB) {
		short := func(c *store.Config) { c.JobTimeout, c.RescueAfter = 2*time.Second, 3*time.Second }
		s := d.Open(t, short)
		started := make(chan struct{}, 1)
		blocked := newFake(func(ctx context.Context, id string, n int) error {
			started <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		})
		if err := s.Start(t.Context(), blocked); err != nil {
			t.Fatal(err)
		}
		r, _, err := s.Enqueue(t.Context(), message("EvInterrupted"))
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("the run did not start")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if c := blocked.next(t, time.Second); !errors.Is(c.err, context.Canceled) {
			t.Fatalf("interrupted call = %+v, want context.Canceled", c)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}

		s2 := d.Open(t, short)
		f := newFake(nil)
		start(t, s2, f)
		if c := f.next(t, 10*time.Second); c.runID != r.ID {
			t.Fatalf("after restart, processed %+v; want run %s", c, r.ID)
		}
	})
}

func TestRunOfDeadProcessIsRescued(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, d testDB) {
		short := func(c *store.Config) { c.JobTimeout, c.RescueAfter = 300*time.Millisecond, time.Second }
		s := d.Open(t, short)
		r, _, err := s.Enqueue(t.Context(), message("EvKilled"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		// What a kill -9 leaves behind: the job claimed and running, with nobody working it.
		d.Exec(t, `UPDATE river_job SET state = 'running', attempt = 1, attempted_at = created_at`)
		time.Sleep(1200 * time.Millisecond) // Past RescueAfter.

		s2 := d.Open(t, short)
		f := newFake(nil)
		start(t, s2, f)
		if c := f.next(t, 20*time.Second); c.runID != r.ID {
			t.Fatalf("after rescue, processed %+v; want run %s", c, r.ID)
		}
	})
}

func TestMessagesSurviveReopen(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, d testDB) {
		s := d.Open(t)
		r, _, err := s.Enqueue(t.Context(), message("EvDurable"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s2 := d.Open(t) // Migrations run again and must leave the data alone.
		got, err := s2.Run(t.Context(), r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("after reopen, Run = %+v\nwant %+v", got, r)
		}
		if _, dup, err := s2.Enqueue(t.Context(), message("EvDurable")); err != nil || !dup {
			t.Errorf("re-enqueue after reopen: dup %v, %v; want a duplicate", dup, err)
		}
	})
}

func TestOpenRejectsBadConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, cfg := range map[string]store.Config{
		"no database":              {},
		"rescue not after timeout": {SQLitePath: filepath.Join(dir, "a.db"), JobTimeout: time.Minute, RescueAfter: time.Minute},
		"bad schema":               {DatabaseURL: storetest.DefaultPostgres, Schema: "x; DROP TABLE runs"},
	} {
		if s, err := store.Open(t.Context(), cfg); err == nil {
			_ = s.Close()
			t.Errorf("%s: Open succeeded", name)
		}
	}
}

func TestSQLiteReleasesOrphansAtStart(t *testing.T) {
	t.Parallel()
	d := sqliteDB(t)
	s := d.Open(t) // Default timeouts: River's rescuer would wait 12 minutes.
	r, _, err := s.Enqueue(t.Context(), message("EvOrphan"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// What a kill -9 leaves behind: the job claimed and running, with nobody working it.
	d.Exec(t, `UPDATE river_job SET state = 'running', attempt = 1, attempted_at = created_at`)
	s2 := d.Open(t)
	f := newFake(nil)
	start(t, s2, f)
	if c := f.next(t, 10*time.Second); c.runID != r.ID {
		t.Fatalf("after restart, processed %+v; want run %s", c, r.ID)
	}
}

func TestSaveRunOfAReplacedAttemptIsRefused(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, d testDB) {
		s := d.Open(t)
		ctx := t.Context()
		r, _, err := s.Enqueue(ctx, message("EvStale"))
		if err != nil {
			t.Fatal(err)
		}
		r.Status = bot.RunFailed
		if err := s.SaveRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		if err := s.Requeue(ctx, r.ID, 1); err != nil { // The person pressed Retry.
			t.Fatal(err)
		}
		r.RepliedAttempt = 1 // The old attempt finishing late.
		if err := s.SaveRun(ctx, r); !errors.Is(err, bot.ErrStaleAttempt) {
			t.Fatalf("SaveRun of attempt 1 after a retry = %v, want ErrStaleAttempt", err)
		}
		got, _ := s.Run(ctx, r.ID)
		if got.Status != bot.RunQueued || got.Attempt != 2 {
			t.Errorf("the new attempt was overwritten: status %s attempt %d", got.Status, got.Attempt)
		}
		if err := s.SaveRun(ctx, bot.Run{ID: "r_missing", Attempt: 1}); !errors.Is(err, bot.ErrNotFound) {
			t.Errorf("SaveRun of an unknown run = %v, want ErrNotFound", err)
		}
	})
}

func TestQueueStats(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, d testDB) {
		s := d.Open(t)
		ctx := t.Context()
		if n, age, err := s.QueueStats(ctx); err != nil || n != 0 || age != 0 {
			t.Fatalf("empty: %d %v %v", n, age, err)
		}
		r, _, _ := s.Enqueue(ctx, message("EvQ1"))
		s.Enqueue(ctx, message("EvQ2"))
		r.Status = bot.RunSucceeded
		if err := s.SaveRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		n, age, err := s.QueueStats(ctx)
		if err != nil || n != 1 || age <= 0 {
			t.Errorf("QueueStats = %d, %v, %v; want 1 waiting with an age", n, age, err)
		}
	})
}

// TestReplicaTakesOverASilentReplicasRuns leaves on PostgreSQL what a replica killed mid-run leaves (a running
// job attempted by a replica whose heartbeat stopped) beside one of a replica that is still alive: a live
// replica takes over the first within the replica timeout, long before River's rescuer, and leaves the second.
func TestReplicaTakesOverASilentReplicasRuns(t *testing.T) {
	t.Parallel()
	d := storetest.Postgres(t)
	s := d.Open(t, func(c *store.Config) { c.ReplicaTimeout, c.ReplicaID = 3*time.Second, "alive" })
	dead, _, err := s.Enqueue(t.Context(), message("EvDead"))
	if err != nil {
		t.Fatal(err)
	}
	busy, _, err := s.Enqueue(t.Context(), message("EvBusy"))
	if err != nil {
		t.Fatal(err)
	}
	// River's rescuer would wait JobTimeout + 1m (31 s here); the takeover must not.
	d.Exec(t, `INSERT INTO replicas (id, started_at, seen_at) VALUES ('dead', 1, 1), ('other', 1, (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000000)::BIGINT + 3600000000000)`)
	d.Exec(t, `UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now(),
		attempted_by = ARRAY[CASE WHEN args->>'run_id' = '`+dead.ID+`' THEN 'dead' ELSE 'other' END]`)
	f := newFake(nil)
	begun := time.Now()
	start(t, s, f)
	if c := f.next(t, 10*time.Second); c.runID != dead.ID {
		t.Fatalf("processed %+v; want the dead replica's run %s", c, dead.ID)
	}
	t.Logf("taken over after %s", time.Since(begun).Round(10*time.Millisecond))
	select {
	case c := <-f.calls:
		t.Errorf("processed %+v, but its replica is alive (run %s)", c, busy.ID)
	case <-time.After(2 * time.Second):
	}
}
