package slack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/bottest"
	"github.com/difybot/difybot/bot/store"
	"github.com/difybot/difybot/dify"
	"github.com/difybot/difybot/dify/difytest"
	slackadapter "github.com/difybot/difybot/platforms/slack"
	"github.com/difybot/difybot/platforms/slack/slacktest"
)

// e2eWait bounds every wait of the end-to-end tests; the runs themselves take milliseconds.
const e2eWait = 20 * time.Second

// system is the whole pipeline: this adapter against the fake Slack, the real bot and store (SQLite), and the
// real Dify client against the fake Dify.
type system struct {
	slack  *slacktest.Server
	sim    *difytest.Sim
	store  *store.Store
	bot    *bot.Bot
	events http.Handler
	// postDelay slows the fake's chat.postMessage answers, so a placeholder is still being posted when the
	// run ends.
	postDelay atomic.Int64
	inter     http.Handler
	log       *order // Webhook answers, Dify run requests and Slack writes, in the order they happened.
}

// newSystem starts the system on the simulator's opts (scenario, shape); edit changes the bot's configuration.
func newSystem(t testing.TB, opts difytest.Options, edit ...func(*bot.Config)) *system {
	t.Helper()
	s := newIdleSystem(t, opts, edit...)
	s.startQueue(t)
	return s
}

// startQueue lets the store's workers run the queued runs.
func (s *system) startQueue(t testing.TB) {
	t.Helper()
	if err := s.store.Start(context.Background(), s.bot); err != nil {
		t.Fatal(err)
	}
}

// newIdleSystem is newSystem with the fast lane running but no worker yet: messages are acknowledged and
// queued, and wait for startQueue.
func newIdleSystem(t testing.TB, opts difytest.Options, edit ...func(*bot.Config)) *system {
	t.Helper()
	return newIdleSystemWith(t, opts, nil, edit...)
}

// newIdleSystemWith is newIdleSystem with adapter's edit applied to the Slack adapter's config.
func newIdleSystemWith(t testing.TB, opts difytest.Options, adapter func(*slackadapter.Config), edit ...func(*bot.Config)) *system {
	t.Helper()
	s := &system{log: &order{}}
	s.slack = slacktest.Start(t, slacktest.Options{OnCall: func(c slacktest.Call) {
		switch c.Method {
		case "chat.postMessage", "chat.update":
			s.log.add("slack " + c.Method + ": " + c.Form.Get("text"))
		}
		if c.Method == "chat.postMessage" {
			time.Sleep(time.Duration(s.postDelay.Load())) // Slack's answer is on its way meanwhile.
		}
	}})
	s.sim = difytest.NewHandler(opts)
	difySrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		run := r.Method == http.MethodPost && r.URL.Path == "/v1/workflows/run"
		if run {
			s.log.add("dify run started")
		}
		s.sim.ServeHTTP(w, r)
		if run {
			s.log.add("dify run ended")
		}
	}))
	t.Cleanup(difySrv.Close)
	t.Cleanup(s.sim.Close) // Before the server closes: it ends the runs in flight.

	dc, err := dify.New(dify.Config{BaseURL: difySrv.URL + "/v1", APIKey: "app-test", Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{SQLitePath: filepath.Join(t.TempDir(), "difybot.db"), Workers: 2,
		JobTimeout: time.Minute, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	s.store = st
	// As serve wires it, unless an edit sets another: the fast lane sends the placeholder at once.
	cfg := bot.Config{Store: st, Workflows: dc, Logger: zerolog.Nop(), TempDir: t.TempDir(), Lane: bot.NewLane(64)}
	for _, e := range edit {
		e(&cfg)
	}
	fast := cfg.Lane
	inbox, err := bot.NewInbox(bot.InboxConfig{Store: st, Lane: fast})
	if err != nil {
		t.Fatal(err)
	}
	ad := newAdapter(t, s.slack, inbox, func(c *slackadapter.Config) {
		c.ProgressEvery = time.Nanosecond
		if adapter != nil {
			adapter(c)
		}
	})
	cfg.Platforms = []bot.Platform{ad}
	b, err := bot.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.bot = b
	lane, stopLane := context.WithCancel(ctx)
	laneDone := make(chan struct{})
	go func() { defer close(laneDone); b.Feedback(lane) }()
	for !fast.Sending() { // So that the first message is already the lane's.
		time.Sleep(time.Millisecond)
	}
	// Registered last, so it runs first: runs in flight are cancelled before Dify and Slack go away.
	t.Cleanup(func() {
		stopLane()
		<-laneDone
		if err := st.Close(); err != nil {
			t.Errorf("store Close: %v", err)
		}
	})
	s.events, s.inter = ad.EventsHandler(), ad.InteractionsHandler()
	return s
}

// deliver posts a signed event and logs the answer.
func (s *system) deliver(t testing.TB, body []byte, retry int) {
	t.Helper()
	r := eventRequest(body)
	if retry > 0 {
		r.Header.Set("X-Slack-Retry-Num", string(rune('0'+retry)))
		r.Header.Set("X-Slack-Retry-Reason", "http_timeout")
	}
	w := serve(s.events, r)
	s.log.add("webhook answered " + http.StatusText(w.Code))
	if w.Code != http.StatusOK {
		t.Fatalf("webhook answered %d, want 200", w.Code)
	}
}

// updateContaining waits for a chat.update whose text contains sub and returns it.
func (s *system) updateContaining(t testing.TB, sub string) slacktest.Call {
	t.Helper()
	var found slacktest.Call
	eventually(t, e2eWait, "a chat.update containing "+sub, func() bool {
		for _, u := range s.slack.CallsTo("chat.update") {
			if strings.Contains(u.Form.Get("text"), sub) {
				found = u
				return true
			}
		}
		return false
	})
	return found
}

// imageDM is testdata's DM with a photo, served by the fake as a real PNG.
func (s *system) imageDM(t testing.TB) []byte {
	t.Helper()
	img := bottest.PNG(t, 2, 2)
	s.slack.AddFile("F07KX2B9M4Q", slacktest.File{Name: "photo.png", Mimetype: "image/png", Body: img})
	return edited(t, payload(t, "message_file_share.json", s.slack), func(p map[string]any) {
		p["event"].(map[string]any)["files"].([]any)[0].(map[string]any)["size"] = len(img)
	})
}

func TestEndToEndImageAnswered(t *testing.T) {
	s := newSystem(t, difytest.Options{Scenario: "ok"})
	s.deliver(t, s.imageDM(t), 0)
	answer := s.updateContaining(t, "Received a PNG image")

	if !strings.Contains(answer.Form.Get("text"), "You said: What is in this photo?") {
		t.Errorf("answer = %q, want the question echoed", answer.Form.Get("text"))
	}
	posts := s.slack.CallsTo("chat.postMessage")
	if len(posts) != 1 {
		t.Fatalf("%d chat.postMessage, want the one placeholder", len(posts))
	}
	p := posts[0].Form
	if p.Get("channel") != dmChannel || p.Get("thread_ts") != "1763800000.123456" || p.Get("text") != "⏳ Working on it…" {
		t.Errorf("placeholder = %v, want it in the message's thread", p)
	}
	var progress bool
	for _, u := range s.slack.CallsTo("chat.update") {
		if u.Form.Get("ts") != answer.Form.Get("ts") {
			t.Errorf("edited %s, want only the placeholder", u.Form.Get("ts"))
		}
		progress = progress || strings.Contains(u.Form.Get("text"), "running *Analyse image*")
	}
	if !progress {
		t.Error("no progress edit named the node running")
	}
	if d := s.slack.CallsTo("download"); len(d) != 1 || d[0].Auth != "Bearer "+botToken {
		t.Errorf("downloads = %+v, want one with the bot token", d)
	}
}

// Slack delivers again when the first answer is slow (http_timeout), and may do so after the run finished:
// the thread still gets one placeholder and one answer.
func TestEndToEndRedeliveriesAnswerOnce(t *testing.T) {
	s := newSystem(t, difytest.Options{Scenario: "ok"})
	body := s.imageDM(t)
	s.deliver(t, body, 0)
	s.deliver(t, body, 1)
	s.updateContaining(t, "Received a PNG image")
	s.deliver(t, body, 2)

	ctx := context.Background()
	eventually(t, e2eWait, "the run to finish", func() bool {
		runs, err := s.store.ListRuns(ctx, bot.RunFilter{})
		return err == nil && len(runs) == 1 && runs[0].Status == bot.RunSucceeded && runs[0].RepliedAttempt == 1
	})
	runs, _ := s.store.ListRuns(ctx, bot.RunFilter{})
	if len(runs) != 1 {
		t.Fatalf("%d runs, want 1", len(runs))
	}
	if n := len(s.slack.CallsTo("chat.postMessage")); n != 1 {
		t.Errorf("%d chat.postMessage, want 1", n)
	}
	answers := 0
	for _, u := range s.slack.CallsTo("chat.update") {
		if strings.Contains(u.Form.Get("text"), "Received a PNG image") {
			answers++
		}
	}
	if answers != 1 {
		t.Errorf("the answer was written %d times, want once", answers)
	}
}

// The webhook is answered as soon as the message is stored, while Dify works for minutes.
func TestEndToEndAckDoesNotWaitForDify(t *testing.T) {
	s := newSystem(t, difytest.Options{Scenario: "slow", Latency: 30 * time.Second})
	s.deliver(t, s.imageDM(t), 0)
	atAck := s.log.get()

	s.updateContaining(t, "running *") // Dify has started the run and is on its first node.
	if n := s.sim.Calls(difytest.RouteRun); n != 1 {
		t.Fatalf("%d workflow runs, want 1 in progress", n)
	}
	later := s.log.get()
	for _, e := range atAck {
		if e == "dify run ended" || strings.Contains(e, "Received") {
			t.Fatalf("the webhook was answered after the run: %q", atAck)
		}
	}
	ack, started := index(later, "webhook answered OK"), index(later, "dify run started")
	if ack < 0 || started < 0 || index(later, "dify run ended") >= 0 {
		t.Fatalf("events = %q, want the answer while the run is in progress", later)
	}
	runs, err := s.store.ListRuns(context.Background(), bot.RunFilter{})
	if err != nil || len(runs) != 1 || runs[0].Status != bot.RunRunning {
		t.Fatalf("runs = %+v (err %v), want one running", runs, err)
	}
	// Cleanup cancels the run.
}

func index(log []string, entry string) int {
	for i, e := range log {
		if e == entry {
			return i
		}
	}
	return -1
}

// failedWithRetry sends a photo that fails (plugin_error) and returns the Retry button's value, its run id, and
// the message carrying it, once the failure is recorded.
func (s *system) failedWithRetry(t testing.TB) (value, runID string, failure slacktest.Call) {
	t.Helper()
	s.slack.AddFile("F07KX3C0N5R", slacktest.File{Name: "receipt.jpg", Mimetype: "image/jpeg", Body: jpegBytes(t)})
	s.deliver(t, payload(t, "app_mention_file.json", s.slack), 0)
	eventually(t, e2eWait, "the diagnosis with a Retry button", func() bool {
		for _, u := range s.slack.CallsTo("chat.update") {
			if strings.Contains(u.Form.Get("blocks"), slackadapter.RetryActionID) {
				failure = u
				return true
			}
		}
		return false
	})
	var blocks []struct {
		Elements []struct {
			ActionID string `json:"action_id"`
			Value    string `json:"value"`
		} `json:"elements"`
	}
	if err := json.Unmarshal([]byte(failure.Form.Get("blocks")), &blocks); err != nil || len(blocks) != 2 || len(blocks[1].Elements) != 1 {
		t.Fatalf("blocks = %s (%v), want a section and one button", failure.Form.Get("blocks"), err)
	}
	value = blocks[1].Elements[0].Value
	runID, attempt, _ := strings.Cut(value, ":")
	if attempt != "1" {
		t.Errorf("button value %q, want the run id and attempt 1", value)
	}
	if !strings.Contains(failure.Form.Get("text"), "plugin") || !strings.Contains(failure.Form.Get("text"), runID) {
		t.Errorf("failure text = %q, want the plugin diagnosis and reference %s", failure.Form.Get("text"), runID)
	}
	// A person clicks seconds later. Clicking within the milliseconds between the reply and the pipeline's
	// record of it loses the retry: that record (SaveRun) overwrites the requeued status (a bot/store race).
	eventually(t, e2eWait, "the failure reply to be recorded", func() bool {
		r, err := s.store.Run(context.Background(), runID)
		return err == nil && r.RepliedAttempt == 1
	})
	return value, runID, failure
}

// click is a signed Retry press on the failure message; sending the same request again is a replay.
func (s *system) click(t testing.TB, value string, failure slacktest.Call) func() *http.Request {
	click := strings.ReplaceAll(string(retryPayload(t, value)), "1763800101.000210", failure.Form.Get("ts"))
	req := interactionRequest([]byte(click))
	body, _ := io.ReadAll(req.Body)
	return func() *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/slack/interactions", bytes.NewReader(body))
		r.Header = req.Header.Clone()
		return r
	}
}

// A failed run shows its diagnosis with a Retry button; the button reruns it into the same message.
func TestEndToEndFailureThenRetry(t *testing.T) {
	s := newSystem(t, difytest.Options{Scenario: "plugin_error"})
	value, _, failure := s.failedWithRetry(t)
	ts := failure.Form.Get("ts")

	if err := s.sim.SetScenario("ok"); err != nil {
		t.Fatal(err)
	}
	if w := serve(s.inter, s.click(t, value, failure)()); w.Code != http.StatusOK {
		t.Fatalf("interaction answered %d, want 200", w.Code)
	}
	answer := s.updateContaining(t, "Received a JPEG image")
	if answer.Form.Get("ts") != ts || answer.Form.Get("blocks") != "[]" {
		t.Errorf("answer edited %s with blocks %s, want the failed message %s without its button", answer.Form.Get("ts"), answer.Form.Get("blocks"), ts)
	}
	if !strings.Contains(answer.Form.Get("text"), "You said: please check this receipt &amp; total it.") {
		t.Errorf("answer = %q", answer.Form.Get("text"))
	}
	if n := len(s.slack.CallsTo("chat.postMessage")); n != 1 {
		t.Errorf("%d chat.postMessage, want only the first placeholder", n)
	}
	log := s.log.get()
	if r, a := index(log, "slack chat.update: 🔁 Retrying…"), indexPrefix(log, "slack chat.update: Received a JPEG"); r < 0 || a < r {
		t.Errorf("events = %q, want Retrying before the answer", log)
	}
}

// The same signed Retry press delivered again (Slack retrying it, or someone replaying it within the
// signature's 5 minutes) is answered 200 and does nothing: the workflow runs once for the press, and the answer
// it gave stays on the message.
func TestEndToEndReplayedRetryRunsOnce(t *testing.T) {
	s := newSystem(t, difytest.Options{Scenario: "plugin_error"})
	value, runID, failure := s.failedWithRetry(t)
	if err := s.sim.SetScenario("ok"); err != nil {
		t.Fatal(err)
	}
	press := s.click(t, value, failure)
	for range 2 { // Delivered twice at once: one retry.
		if w := serve(s.inter, press()); w.Code != http.StatusOK {
			t.Fatalf("interaction answered %d, want 200", w.Code)
		}
	}
	s.updateContaining(t, "Received a JPEG image")
	eventually(t, e2eWait, "the retried answer to be recorded", func() bool {
		r, err := s.store.Run(context.Background(), runID)
		return err == nil && r.RepliedAttempt == 2
	})
	runs, updates := s.sim.Calls(difytest.RouteRun), len(s.slack.CallsTo("chat.update"))

	// Replayed later, after the answer.
	if w := serve(s.inter, press()); w.Code != http.StatusOK {
		t.Fatalf("replayed interaction answered %d, want 200", w.Code)
	}
	time.Sleep(300 * time.Millisecond) // A second run would have started by now.
	got, err := s.store.Run(context.Background(), runID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Attempt != 2 || got.Status != bot.RunSucceeded || runs != 2 || s.sim.Calls(difytest.RouteRun) != runs {
		t.Errorf("after the replays: attempt %d %s, %d workflow runs then %d; want attempt 2 succeeded and 2 runs (the failure and the retry)",
			got.Attempt, got.Status, runs, s.sim.Calls(difytest.RouteRun))
	}
	if n := len(s.slack.CallsTo("chat.update")); n != updates {
		t.Errorf("the replay edited the message %d times, want none (the answer stays)", n-updates)
	}
	if n := strings.Count(strings.Join(s.log.get(), "\n"), "slack chat.update: 🔁 Retrying…"); n != 1 {
		t.Errorf("Retrying shown %d times, want once", n)
	}
}

func indexPrefix(log []string, prefix string) int {
	for i, e := range log {
		if strings.HasPrefix(e, prefix) {
			return i
		}
	}
	return -1
}

// blockUntil is a stream that sends nothing until done is closed.
type blockUntil chan struct{}

func (b blockUntil) Read([]byte) (int, error) { <-b; return 0, io.EOF }

// TestEndToEndStalledDownloadIsAnswered: files.slack.com stops sending in the middle of the photo. The download
// has its own limits, so the placeholder becomes a platform_download_failed answer saying Slack sent nothing,
// within the idle limit, through the real adapter (its production HTTP client, whose own limit is 2 minutes)
// and pipeline.
func TestEndToEndStalledDownloadIsAnswered(t *testing.T) {
	s := newSystem(t, difytest.Options{Scenario: "ok"}, func(c *bot.Config) { c.FetchTimeout, c.FetchIdle = 5*time.Second, 500*time.Millisecond })
	stall := make(blockUntil)
	t.Cleanup(func() { close(stall) }) // Before the fake closes: its handler is still sending.
	const size = 1 << 20
	s.slack.AddFile("F07KX2B9M4Q", slacktest.File{Name: "photo.png", Mimetype: "image/png", Size: size, Open: func() io.Reader {
		return io.MultiReader(bytes.NewReader(make([]byte, 64<<10)), stall)
	}})
	body := edited(t, payload(t, "message_file_share.json", s.slack), func(p map[string]any) {
		p["event"].(map[string]any)["files"].([]any)[0].(map[string]any)["size"] = size
	})
	start := time.Now()
	s.deliver(t, body, 0)
	answer := s.updateContaining(t, "could not download your file")
	took := time.Since(start)
	runs, err := s.store.ListRuns(context.Background(), bot.RunFilter{})
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs %+v, %v", runs, err)
	}
	r := runs[0]
	if r.Code != bot.CodePlatformDownloadFailed || r.Diagnosis == nil || !strings.Contains(r.Diagnosis.Detail, "Slack sent no data for 500ms (after 65536 bytes)") {
		t.Fatalf("run = %s %s %+v", r.Status, r.Code, r.Diagnosis)
	}
	if !strings.Contains(answer.Form.Get("text"), r.ID) {
		t.Errorf("answer %q does not name the run", answer.Form.Get("text"))
	}
	if took > 5*time.Second {
		t.Errorf("answered after %s, want about the idle limit", took)
	}
	t.Logf("answered after %s: %s", took.Round(time.Millisecond), r.Diagnosis.Detail)
}

// The placeholder comes from the fast lane right after the ack, even while no worker is free, and the worker
// later edits that same message: one chat.postMessage per message, however the two race.
func TestEndToEndPlaceholderAtOnceThenEdited(t *testing.T) {
	s := newIdleSystem(t, difytest.Options{})
	s.deliver(t, s.imageDM(t), 0)
	eventually(t, e2eWait, "the placeholder, with no worker running", func() bool {
		return len(s.slack.CallsTo("chat.postMessage")) == 1
	})
	if n := s.sim.Calls(difytest.RouteRun); n != 0 {
		t.Fatalf("%d workflow runs before the queue started", n)
	}
	placeholder := s.slack.CallsTo("chat.postMessage")[0]
	if !strings.Contains(placeholder.Form.Get("text"), "Working") && !strings.Contains(placeholder.Form.Get("text"), "working") {
		t.Errorf("first post %q, want the placeholder", placeholder.Form.Get("text"))
	}
	s.startQueue(t)
	answer := s.updateContaining(t, "PNG image")
	if posts := s.slack.CallsTo("chat.postMessage"); len(posts) != 1 || answer.Form.Get("ts") == "" {
		t.Fatalf("%d chat.postMessage calls, answer edit of ts %q; want the placeholder edited", len(posts), answer.Form.Get("ts"))
	}
}

// Many messages at once: workers and the fast lane race for each message's first feedback, and every message
// still gets exactly one message in Slack, edited into its answer.
func TestEndToEndFastLaneRacesTheWorkers(t *testing.T) {
	s := newSystem(t, difytest.Options{})
	s.postDelay.Store(int64(300 * time.Millisecond)) // Longer than a run of the simulator.
	const n = 20
	s.deliverDMs(t, n)
	posts := map[string]int{}
	for _, c := range s.slack.CallsTo("chat.postMessage") {
		posts[c.Form.Get("channel")]++
	}
	for i := range n {
		if ch := fmt.Sprintf("D%02d", i); posts[ch] != 1 {
			t.Errorf("channel %s got %d chat.postMessage calls, want 1 (the placeholder, then edited)", ch, posts[ch])
		}
	}
}

// deliverDMs delivers n direct messages at once, each in a channel of its own (D00, D01, …), and waits until
// every one is answered.
func (s *system) deliverDMs(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		body := edited(t, payload(t, "message_im.json", s.slack), func(p map[string]any) {
			p["event_id"] = fmt.Sprintf("EvDM%02d", i)
			ev := p["event"].(map[string]any)
			ev["channel"], ev["ts"], ev["text"] = fmt.Sprintf("D%02d", i), fmt.Sprintf("1763800%03d.000100", i), fmt.Sprintf("question %d", i)
		})
		s.deliver(t, body, 0)
	}
	eventually(t, e2eWait, "every message answered", func() bool {
		runs, err := s.store.ListRuns(context.Background(), bot.RunFilter{Limit: 100})
		if err != nil || len(runs) != n {
			return false
		}
		for _, r := range runs {
			if r.RepliedAttempt != 1 {
				return false
			}
		}
		return true
	})
}

// A lane too full to take a message leaves its first feedback to the worker, which holds the lane's claim: the
// placeholder still comes first, once, and is edited into the answer; the worker does not wait for a lane
// that will never send it.
func TestEndToEndFullLaneLeavesThePlaceholderToTheWorker(t *testing.T) {
	s := newSystem(t, difytest.Options{}, func(c *bot.Config) { c.Lane = bot.NewLane(0) })
	s.postDelay.Store(int64(200 * time.Millisecond)) // Every lane sender busy: the rest find the lane full.
	const n = 48
	s.deliverDMs(t, n)
	first, posts := map[string]string{}, map[string]int{}
	for _, c := range s.slack.CallsTo("chat.postMessage") {
		ch := c.Form.Get("channel")
		if posts[ch]++; posts[ch] == 1 {
			first[ch] = c.Form.Get("text")
		}
	}
	edits := map[string]int{}
	for _, c := range s.slack.CallsTo("chat.update") {
		edits[c.Form.Get("channel")]++
	}
	for i := range n {
		ch := fmt.Sprintf("D%02d", i)
		if posts[ch] != 1 || !strings.Contains(strings.ToLower(first[ch]), "working") || edits[ch] == 0 {
			t.Errorf("channel %s: %d chat.postMessage calls, the first %q, %d edits; want the placeholder once, then edited",
				ch, posts[ch], first[ch], edits[ch])
		}
	}
}
