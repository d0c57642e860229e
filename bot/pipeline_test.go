package bot_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/bottest"
	"github.com/difybot/difybot/bot/store"
	"github.com/difybot/difybot/dify"
	"github.com/difybot/difybot/dify/difytest"
	"github.com/rs/zerolog"
)

type harness struct {
	sim   *difytest.Server
	dify  *dify.Client
	store *store.Store
	bot   *bot.Bot
	inbox bot.Inbox
	plat  *bottest.Platform
	logs  *bytes.Buffer
	now   time.Time
}

type option func(*bot.Config)

func newHarness(t testing.TB, scenario string, opts ...option) *harness {
	t.Helper()
	return newHarnessWith(t, difytest.Options{Scenario: scenario}, opts...)
}

// newHarnessWith is newHarness with more of the simulator's options.
func newHarnessWith(t testing.TB, so difytest.Options, opts ...option) *harness {
	t.Helper()
	ctx := context.Background()
	so.PingEvery = 5 * time.Millisecond
	sim := difytest.NewServer(so)
	t.Cleanup(sim.Close)
	h := &harness{sim: sim, plat: bottest.NewPlatform("fake"), logs: &bytes.Buffer{}}
	log := zerolog.New(zerolog.SyncWriter(h.logs))
	dc, err := dify.New(dify.Config{BaseURL: sim.URL(), APIKey: "app-test", Logger: log,
		Retry: dify.RetryPolicy{Base: time.Millisecond, Max: 5 * time.Millisecond}, PollEvery: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, store.Config{SQLitePath: filepath.Join(t.TempDir(), "bot.db"), Workers: 2, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := bot.Config{Store: st, Workflows: dc, Platforms: []bot.Platform{h.plat}, Logger: log, Timeout: 10 * time.Second, TempDir: t.TempDir()}
	for _, o := range opts {
		o(&cfg)
	}
	b, err := bot.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.dify, h.store, h.bot = dc, st, b
	if h.inbox, err = bot.NewInbox(bot.InboxConfig{Store: st, Logger: log}); err != nil {
		t.Fatal(err)
	}
	return h
}

// send accepts a message and processes it the way the queue would.
func (h *harness) send(t testing.TB, m bot.Message) (bot.Run, error) {
	t.Helper()
	ctx := context.Background()
	if m.Platform == "" {
		m.Platform = "fake"
	}
	if m.ChatID == "" {
		m.ChatID, m.UserID = "C1", "U1"
	}
	r, _, err := h.inbox.Accept(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	perr := h.bot.Process(ctx, r.ID)
	got, err := h.store.Run(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	return got, perr
}

func (h *harness) withImage(id string, b []byte) bot.Message {
	h.plat.AddFile(id, b)
	return bot.Message{EventID: "ev-" + id, Text: "what is this?", Files: []bot.File{{ID: id, Name: "photo.png", MIMEType: "image/png"}}}
}

func stepNames(steps []bot.Step) string {
	var s []string
	for _, st := range steps {
		s = append(s, fmt.Sprintf("%d/%d %s %s", st.N, st.Of, st.Name, st.Status))
	}
	return strings.Join(s, ", ")
}

func TestImageMessageAnswered(t *testing.T) {
	h := newHarness(t, "ok")
	r, err := h.send(t, h.withImage("F1", bottest.PNG(t, 64, 48)))
	if err != nil {
		t.Fatalf("Process: %v", err)
	}
	if r.Status != bot.RunSucceeded || !strings.Contains(r.Reply, "Received a PNG image, 64×48 px") || !strings.Contains(r.Reply, "You said: what is this?") {
		t.Fatalf("run %s reply %q", r.Status, r.Reply)
	}
	finals := h.plat.Finals()
	if len(finals) != 1 || finals[0].Text != r.Reply || finals[0].RunID != r.ID {
		t.Errorf("final replies = %+v", finals)
	}
	steps, _ := h.store.Steps(context.Background(), r.ID)
	want := "1/8 receive done, 2/8 enqueue done, 3/8 fetch done, 4/8 check done, 5/8 upload done, 6/8 run done, 7/8 format done, 8/8 reply done"
	if got := stepNames(steps); got != want {
		t.Errorf("steps:\n got %s\nwant %s", got, want)
	}
	nodes, _ := h.store.NodeEvents(context.Background(), r.ID)
	if len(nodes) < 4 || nodes[0].Event != "node_started" || nodes[0].Title != "Start" {
		t.Errorf("node events = %+v", nodes)
	}
	if r.DifyRunID == "" {
		t.Error("the Dify run id was not stored")
	}
	// One JSON line per step, in DESIGN's shape, and never the message text.
	logs := h.logs.String()
	for _, want := range []string{`"step":"upload","n":5,"of":8,"status":"done"`, `"message":"[STEP 5/8] upload: done"`, `"run_id":"` + r.ID} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s", want)
		}
	}
	if strings.Contains(logs, "what is this?") {
		t.Error("the message text reached the log")
	}
	if len(h.plat.Reported()) == 0 || h.plat.Reported()[0].Step != "start" {
		t.Errorf("progress = %+v, want a start then node progress", h.plat.Reported())
	}
}

func TestTextMessageHasFiveSteps(t *testing.T) {
	h := newHarness(t, "ok")
	r, err := h.send(t, bot.Message{EventID: "t1", Text: "hello"})
	if err != nil || r.Status != bot.RunSucceeded {
		t.Fatalf("status %s err %v reply %q", r.Status, err, r.Reply)
	}
	steps, _ := h.store.Steps(context.Background(), r.ID)
	if got, want := stepNames(steps), "1/5 receive done, 2/5 enqueue done, 3/5 run done, 4/5 format done, 5/5 reply done"; got != want {
		t.Errorf("steps:\n got %s\nwant %s", got, want)
	}
	if h.sim.Calls(difytest.RouteUpload) != 0 {
		t.Error("a text message uploaded something")
	}
}

func TestFailuresAreDiagnosed(t *testing.T) {
	tests := []struct {
		scenario string
		msg      func(h *harness) bot.Message
		code     bot.Code
		step     string
	}{
		{"auth_invalid", nil, bot.CodeDifyAuthInvalid, bot.StepCheck},
		{"plugin_error", nil, bot.CodeDifyPluginError, bot.StepRun},
		{"upload_too_large", nil, bot.CodeDifyFileTooLarge, bot.StepUpload},
		{"no_output", nil, bot.CodeDifyNoOutput, bot.StepFormat},
		{"ok", func(h *harness) bot.Message { return h.withImage("PDF", []byte("%PDF-1.7 not an image")) }, bot.CodeImageUnsupported, bot.StepCheck},
		{"ok", func(h *harness) bot.Message {
			m := h.withImage("GONE", nil)
			h.plat.RemoveFile("GONE")
			return m
		}, bot.CodePlatformDownloadFailed, bot.StepFetch},
		{"ok", func(h *harness) bot.Message { return h.withImage("BIG", make([]byte, bot.DefaultMaxImageBytes+1)) }, bot.CodeImageTooLarge, bot.StepFetch},
	}
	for _, tt := range tests {
		t.Run(tt.scenario+"/"+string(tt.code), func(t *testing.T) {
			h := newHarness(t, tt.scenario)
			m := h.withImage("F1", bottest.PNG(t, 8, 8))
			if tt.msg != nil {
				m = tt.msg(h)
			}
			r, err := h.send(t, m)
			if err != nil {
				t.Fatalf("Process: %v (a diagnosed failure is an answer, not a queue error)", err)
			}
			if r.Status != bot.RunFailed || r.Code != tt.code || r.Diagnosis == nil {
				t.Fatalf("status %s code %s, want failed %s", r.Status, r.Code, tt.code)
			}
			finals := h.plat.Finals()
			if len(finals) != 1 || !strings.Contains(finals[0].Text, "Reference: "+r.ID) || finals[0].Diagnosis == nil {
				t.Fatalf("the person got %+v", finals)
			}
			steps, _ := h.store.Steps(context.Background(), r.ID)
			var failed []string
			for _, s := range steps {
				if s.Status == "failed" {
					failed = append(failed, s.Name)
					if s.Code != tt.code || s.Error == "" {
						t.Errorf("failed step %s: code %q error %q", s.Name, s.Code, s.Error)
					}
				}
			}
			if strings.Join(failed, ",") != tt.step {
				t.Errorf("failed steps %v, want %s (all: %s)", failed, tt.step, stepNames(steps))
			}
		})
	}
}

func TestBreakerHoldsThenAnswers(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	h := newHarness(t, "ok", func(c *bot.Config) { c.Now = clock; c.HoldMax = time.Hour })
	ctx := context.Background()
	h.dify.Breaker().SetMode(dify.ModeOpen, "test")

	r, _, _ := h.inbox.Accept(ctx, bot.Message{Platform: "fake", EventID: "held", ChatID: "C", UserID: "U", Text: "hi"})
	for i := range 3 {
		err := h.bot.Process(ctx, r.ID)
		var held *bot.HoldError
		if !errors.As(err, &held) || !errors.Is(err, dify.ErrMaintenance) {
			t.Fatalf("process %d while in maintenance: %v, want a HoldError", i, err)
		}
	}
	if len(h.plat.Replies()) != 1 || h.plat.Replies()[0].Final || !strings.Contains(h.plat.Replies()[0].Text, "maintenance") {
		t.Fatalf("replies while held = %+v, want one interim maintenance notice", h.plat.Replies())
	}
	if h.sim.Calls(difytest.RouteRun) != 0 {
		t.Fatal("a held run reached Dify")
	}
	h.dify.Breaker().SetMode(dify.ModeAuto, "done")
	if err := h.bot.Process(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if f := h.plat.Finals(); len(f) != 1 || !strings.Contains(f[0].Text, "You said: hi") {
		t.Errorf("final replies = %+v", f)
	}

	// A run held past HoldMax ends with the breaker's diagnosis.
	h.dify.Breaker().SetMode(dify.ModeOpen, "long")
	r2, _, _ := h.inbox.Accept(ctx, bot.Message{Platform: "fake", EventID: "held2", ChatID: "C", UserID: "U", Text: "hi"})
	h.bot.Process(ctx, r2.ID)
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	if err := h.bot.Process(ctx, r2.ID); err != nil {
		t.Fatal(err)
	}
	got, _ := h.store.Run(ctx, r2.ID)
	if got.Status != bot.RunFailed || got.Code != bot.CodeBreakerMaintenance {
		t.Errorf("after HoldMax: %s %s", got.Status, got.Code)
	}
}

func TestResumeWaitsForTheStartedRun(t *testing.T) {
	h := newHarness(t, "ok")
	ctx := context.Background()
	// A first worker ran the workflow and died before replying.
	first, err := h.send(t, bot.Message{EventID: "crash", Text: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	crashed := first
	crashed.Status, crashed.Reply, crashed.PostedAttempt, crashed.RepliedAttempt = bot.RunRunning, "", 1, 0
	if err := h.store.SaveRun(ctx, crashed); err != nil {
		t.Fatal(err)
	}
	h.plat.Reset()
	if err := h.bot.Process(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	if n := h.sim.Calls(difytest.RouteRun); n != 1 {
		t.Errorf("workflow POSTed %d times, want 1", n)
	}
	if n := h.sim.Calls(difytest.RouteRunDetail); n == 0 {
		t.Error("the resumed run was not read back from Dify")
	}
	got, _ := h.store.Run(ctx, first.ID)
	if got.Status != bot.RunSucceeded || got.Reply != first.Reply || len(h.plat.Finals()) != 1 {
		t.Errorf("resumed: %s %q, replies %d", got.Status, got.Reply, len(h.plat.Finals()))
	}
	// Processing a delivered run again sends nothing more.
	if err := h.bot.Process(ctx, first.ID); err != nil || len(h.plat.Finals()) != 1 {
		t.Errorf("second Process: %v, %d replies", err, len(h.plat.Finals()))
	}
}

func TestInterruptedBeforeConfirmationIsNotPostedAgain(t *testing.T) {
	h := newHarness(t, "ok")
	ctx := context.Background()
	r, _, _ := h.inbox.Accept(ctx, bot.Message{Platform: "fake", EventID: "x", ChatID: "C", UserID: "U", Text: "hi"})
	r.Status, r.PostedAttempt = bot.RunRunning, 1
	h.store.SaveRun(ctx, r)
	if err := h.bot.Process(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	got, _ := h.store.Run(ctx, r.ID)
	if h.sim.Calls(difytest.RouteRun) != 0 || got.Code != bot.CodeInternal {
		t.Errorf("posts %d, code %s", h.sim.Calls(difytest.RouteRun), got.Code)
	}
}

// interruptible is the pipeline against a simulator behind a test's own handler, with a dify client whose
// retries wait as long as Dify's Retry-After says (up to 2 s), so a test can stop a run between two tries.
func interruptible(t *testing.T, wrap func(sim *difytest.Sim) http.Handler) (*harness, *difytest.Sim) {
	t.Helper()
	h := newHarness(t, "ok")
	sim := difytest.NewHandler(difytest.Options{Scenario: "ok", PingEvery: 5 * time.Millisecond})
	srv := httptest.NewServer(wrap(sim))
	t.Cleanup(srv.Close)
	t.Cleanup(sim.Close)
	dc, err := dify.New(dify.Config{BaseURL: srv.URL + "/v1", APIKey: "app-test", Logger: zerolog.Nop(),
		Retry: dify.RetryPolicy{MaxAttempts: 20, Base: time.Millisecond, Max: 2 * time.Second}, PollEvery: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	b, err := bot.New(bot.Config{Store: h.store, Workflows: dc, Platforms: []bot.Platform{h.plat}, Logger: zerolog.Nop(),
		Timeout: 10 * time.Second, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.App(context.Background()); err != nil { // Known before Dify goes down, as in a running bot.
		t.Fatal(err)
	}
	h.dify, h.bot = dc, b
	return h, sim
}

// TestKilledWhileRetryingA502IsPostedAgain: a run whose POST met a gateway's 502 page and was waiting to be sent
// again certainly did not start; interrupted there (what kill -9 does), the next attempt sends it and answers,
// instead of failing it as "internal" for fear of running it twice.
func TestKilledWhileRetryingA502IsPostedAgain(t *testing.T) {
	h, sim := interruptible(t, func(sim *difytest.Sim) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v1/workflows/run" {
				w.Header().Set("Retry-After", "1") // The client waits 1 s before the next try: the test stops it there.
			}
			sim.ServeHTTP(w, r)
		})
	})
	if err := sim.SetScenario("gateway_502"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r, _, _ := h.inbox.Accept(ctx, bot.Message{Platform: "fake", EventID: "k502", ChatID: "C", UserID: "U", Text: "hi"})
	done := make(chan error, 1)
	go func() { done <- h.bot.Process(ctx, r.ID) }()
	for sim.Calls(difytest.RouteRun) < 2 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // The second 502 page is read; the client waits its second.
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Process = %v, want the run handed back", err)
	}
	if len(h.plat.Finals()) != 0 {
		t.Fatalf("the person was told %+v", h.plat.Finals())
	}

	if err := sim.SetScenario("ok"); err != nil { // Dify is back when the bot restarts.
		t.Fatal(err)
	}
	posts := sim.Calls(difytest.RouteRun)
	if err := h.bot.Process(context.Background(), r.ID); err != nil {
		t.Fatal(err)
	}
	got, _ := h.store.Run(context.Background(), r.ID)
	if got.Status != bot.RunSucceeded || got.Code != "" || sim.Calls(difytest.RouteRun) != posts+1 || sim.Started() != 1 {
		t.Errorf("after the restart: %s %q, %d more POSTs, %d runs started; want succeeded with one POST and one run",
			got.Status, got.Code, sim.Calls(difytest.RouteRun)-posts, sim.Started())
	}
	if f := h.plat.Finals(); len(f) != 1 || f[0].Diagnosis != nil {
		t.Errorf("replies %+v, want one answer", f)
	}
}

// TestKilledWhileThePostIsInFlightIsNotPostedAgain: once a try may have reached Dify (sent, no answer yet), an
// interrupted run is never sent again, whatever the client knew about the tries before it.
func TestKilledWhileThePostIsInFlightIsNotPostedAgain(t *testing.T) {
	arrived := make(chan struct{}, 10)
	var posts atomic.Int32
	h, sim := interruptible(t, func(sim *difytest.Sim) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v1/workflows/run" {
				arrived <- struct{}{}
				if posts.Add(1) == 3 { // The third try: Dify got it and has not answered yet.
					io.Copy(io.Discard, r.Body) // Read to the end, so the server notices the client leave.
					<-r.Context().Done()
					return
				}
			}
			sim.ServeHTTP(w, r)
		})
	})
	if err := sim.SetScenario("flaky"); err != nil { // Two 502 pages first: tries that certainly did not start.
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r, _, _ := h.inbox.Accept(ctx, bot.Message{Platform: "fake", EventID: "kin", ChatID: "C", UserID: "U", Text: "hi"})
	done := make(chan error, 1)
	go func() { done <- h.bot.Process(ctx, r.ID) }()
	for range 3 {
		<-arrived
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Process = %v, want the run handed back", err)
	}
	if err := sim.SetScenario("ok"); err != nil {
		t.Fatal(err)
	}
	if err := h.bot.Process(context.Background(), r.ID); err != nil {
		t.Fatal(err)
	}
	got, _ := h.store.Run(context.Background(), r.ID)
	if got.Code != bot.CodeInternal || len(arrived) != 0 {
		t.Errorf("after the restart: code %q, %d more POSTs; want internal and none", got.Code, len(arrived))
	}
}

func TestReplyFailureIsRetriedWithoutRerunning(t *testing.T) {
	h := newHarness(t, "ok")
	ctx := context.Background()
	h.plat.FailReplies(errors.New("slack is down"))
	r, err := h.send(t, bot.Message{EventID: "rf", Text: "hello"})
	if err == nil || bot.Diagnose(err).Code != bot.CodePlatformReplyFailed {
		t.Fatalf("Process = %v, want a platform_reply_failed error for the queue to retry", err)
	}
	h.plat.FailReplies(nil)
	if err := h.bot.Process(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if h.sim.Calls(difytest.RouteRun) != 1 || len(h.plat.Finals()) != 1 {
		t.Errorf("runs %d replies %d, want 1 and 1", h.sim.Calls(difytest.RouteRun), len(h.plat.Finals()))
	}
}

func TestChatAppKeepsOneConversationPerThread(t *testing.T) {
	h := newHarness(t, "chat_ok")
	m := bot.Message{Platform: "fake", EventID: "c1", ChatID: "C", ThreadID: "T", UserID: "U", Text: "first"}
	r1, err := h.send(t, m)
	if err != nil || r1.Status != bot.RunSucceeded || r1.ConversationID == "" {
		t.Fatalf("first: %v %s conv %q reply %q", err, r1.Status, r1.ConversationID, r1.Reply)
	}
	m.EventID, m.Text = "c2", "second"
	if _, err := h.send(t, m); err != nil {
		t.Fatal(err)
	}
	conv, _ := h.store.Conversation(context.Background(), m.ConversationKey())
	if conv != r1.ConversationID {
		t.Errorf("conversation %q, want %q", conv, r1.ConversationID)
	}
	reqs := h.sim.Requests()
	last := reqs[len(reqs)-1]
	if !strings.Contains(string(last.Body), r1.ConversationID) {
		t.Errorf("second message body %s does not continue the conversation", last.Body)
	}
}

func TestShutdownLeavesTheRunForTheNextStart(t *testing.T) {
	h := newHarness(t, "slow")
	ctx, cancel := context.WithCancel(context.Background())
	r, _, _ := h.inbox.Accept(ctx, bot.Message{Platform: "fake", EventID: "stop", ChatID: "C", UserID: "U", Text: "hi"})
	done := make(chan error, 1)
	go func() { done <- h.bot.Process(ctx, r.ID) }()
	for { // Until Dify's run id is stored: the run has started in Dify.
		if got, _ := h.store.Run(context.Background(), r.ID); got.DifyRunID != "" {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel() // What Store.Stop does to runs still in flight at the end of the grace period.
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Process = %v, want it to hand the run back", err)
	}
	if len(h.plat.Finals()) != 0 {
		t.Fatalf("the person was told %+v during a shutdown", h.plat.Finals())
	}
	got, _ := h.store.Run(context.Background(), r.ID)
	if got.Status != bot.RunRunning || got.DifyRunID == "" {
		t.Errorf("after the interruption: %s, dify run %q", got.Status, got.DifyRunID)
	}
}

// pendingCounter is the store, counting its Pending lookups and its writes of a run.
type pendingCounter struct {
	*store.Store
	n       atomic.Int32
	saves   atomic.Int32 // SaveRun and Admit calls.
	outputs atomic.Int32 // OutputFiles lookups.
}

func (s *pendingCounter) OutputFiles(ctx context.Context, runID string) ([]bot.OutputFile, error) {
	s.outputs.Add(1)
	return s.Store.OutputFiles(ctx, runID)
}

func (s *pendingCounter) Pending(ctx context.Context, runID string) (bot.Pending, error) {
	s.n.Add(1)
	return s.Store.Pending(ctx, runID)
}

func (s *pendingCounter) PendingOf(ctx context.Context, runID, key string, now time.Time) (bot.PendingView, error) {
	s.n.Add(1)
	return s.Store.PendingOf(ctx, runID, key, now)
}

func (s *pendingCounter) Waiting(ctx context.Context, key string, now time.Time) ([]bot.Pending, error) {
	s.n.Add(1)
	return s.Store.Waiting(ctx, key, now)
}

func (s *pendingCounter) TakePending(ctx context.Context, taker string, runIDs []string) ([]bot.Pending, error) {
	s.n.Add(1)
	return s.Store.TakePending(ctx, taker, runIDs)
}

func (s *pendingCounter) SaveRun(ctx context.Context, r bot.Run) error {
	s.saves.Add(1)
	return s.Store.SaveRun(ctx, r)
}

func (s *pendingCounter) Admit(ctx context.Context, r bot.Run, share bot.Share, now time.Time) (bot.Admission, error) {
	s.saves.Add(1)
	return s.Store.Admit(ctx, r, share, now)
}

// TestTextMessageSavesItsRunFiveTimes: a text message's run is written where recovery needs it and nowhere
// else: admitted (the fair share's decision and the running mark in one), posted to Dify, named by Dify,
// finished, replied. Routing and the running mark have no saves of their own, and an answer that named no
// files looks for none before its reply.
func TestTextMessageSavesItsRunFiveTimes(t *testing.T) {
	var pc *pendingCounter
	h := newHarness(t, "ok", func(cfg *bot.Config) {
		pc = &pendingCounter{Store: cfg.Store.(*store.Store)}
		cfg.Store, cfg.Share = pc, bot.Share{Runs: 2}
	})
	if r, err := h.send(t, bot.Message{EventID: "ev-saves", Text: "hello"}); err != nil || r.Status != bot.RunSucceeded {
		t.Fatalf("%s %v", r.Status, err)
	}
	if got := pc.saves.Load(); got != 5 {
		t.Errorf("%d writes of the run, want 5", got)
	}
	if got := pc.outputs.Load(); got != 0 {
		t.Errorf("%d lookups of output files for an answer without files, want 0", got)
	}
}

// TestTextMessageLooksUpItsPendingOnce: planning a run reads what it holds, its own record and the messages
// waiting for it in one lookup; whether a message's files are kept for a later run is asked of the store only
// when it has files.
func TestTextMessageLooksUpItsPendingOnce(t *testing.T) {
	var pc *pendingCounter
	h := newHarness(t, "ok", func(cfg *bot.Config) {
		pc = &pendingCounter{Store: cfg.Store.(*store.Store)}
		cfg.Store = pc
	})
	for _, tc := range []struct {
		name string
		m    bot.Message
		want int32
	}{
		{"text", bot.Message{EventID: "ev-text", Text: "hello"}, 1},
		{"photo", h.withImage("p1", bottest.PNG(t, 10, 10)), 2},
	} {
		pc.n.Store(0)
		if r, err := h.send(t, tc.m); err != nil || r.Status != bot.RunSucceeded {
			t.Fatalf("%s: %s %v", tc.name, r.Status, err)
		}
		if got := pc.n.Load(); got != tc.want {
			t.Errorf("%s message: %d pending lookups, want %d", tc.name, got, tc.want)
		}
	}
}
