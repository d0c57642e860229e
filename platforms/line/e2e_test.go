package line

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/bottest"
	"github.com/difybot/difybot/bot/store"
	"github.com/difybot/difybot/dify"
	"github.com/difybot/difybot/dify/difytest"
	"github.com/difybot/difybot/platforms/line/linetest"
)

// system is the real pipeline: bot, SQLite store with its River queue, Dify client against the simulator,
// and this adapter against the fake LINE API.
type system struct {
	line    *linetest.Server
	sim     *difytest.Server
	store   *store.Store
	adapter *Adapter
	accepts *bottest.Inbox
}

type e2eOptions struct {
	scenario string
	latency  time.Duration
	ttl      time.Duration
	lang     bot.Lang
	shape    string            // The simulated app's shape; "" is difytest.DefaultShape.
	config   func(*bot.Config) // Changes the bot's configuration.
	// fetchTimeout and fetchIdle are the bot's download limits (FETCH_TIMEOUT, 15 s without a byte); 0 takes
	// the defaults. Setting either also gives the adapter its own default HTTP client, as in production.
	fetchTimeout, fetchIdle time.Duration
}

func newSystem(t testing.TB, o e2eOptions) *system {
	t.Helper()
	ctx := context.Background()
	sim := difytest.NewServer(difytest.Options{Scenario: o.scenario, Shape: o.shape, Latency: o.latency, PingEvery: 5 * time.Millisecond})
	t.Cleanup(sim.Close)
	dc, err := dify.New(dify.Config{BaseURL: sim.URL(), APIKey: "app-test", Logger: zerolog.Nop(),
		Retry: dify.RetryPolicy{Base: time.Millisecond, Max: 5 * time.Millisecond}, PollEvery: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, store.Config{SQLitePath: filepath.Join(t.TempDir(), "difybot.db"), Workers: 2,
		JobTimeout: time.Minute, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	inbox, err := bot.NewInbox(bot.InboxConfig{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	s := &system{line: linetest.Start(t, linetest.Options{}), sim: sim, store: st, accepts: &bottest.Inbox{Next: inbox}}
	hc := &http.Client{Timeout: 10 * time.Second}
	if o.fetchTimeout > 0 || o.fetchIdle > 0 {
		hc = nil
	}
	s.adapter, err = New(Config{Inbox: s.accepts, ChannelSecret: testSecret, ChannelToken: testToken, APIURL: s.line.URL(),
		DataAPIURL: s.line.URL(), HTTPClient: hc, Logger: zerolog.Nop(), ReplyTokenTTL: o.ttl, Language: o.lang})
	if err != nil {
		t.Fatal(err)
	}
	cfg := bot.Config{Store: st, Workflows: dc, Platforms: []bot.Platform{s.adapter}, Logger: zerolog.Nop(), Language: o.lang,
		Timeout: 30 * time.Second, TempDir: t.TempDir(), FetchTimeout: o.fetchTimeout, FetchIdle: o.fetchIdle}
	if o.config != nil {
		o.config(&cfg)
	}
	b, err := bot.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Start(ctx, b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		st.Stop(sctx)
	})
	return s
}

// deliver posts a testdata body as LINE would send it now, edited by edit, and notes the 200 in the order
// log before the content API is let go, so the run provably finished after the webhook was answered.
func (s *system) deliver(t testing.TB, file string, edit func(ev map[string]any)) {
	t.Helper()
	var body map[string]any
	if err := json.Unmarshal(readTestdata(t, file), &body); err != nil {
		t.Fatal(err)
	}
	for _, ev := range body["events"].([]any) {
		ev := ev.(map[string]any)
		ev["timestamp"] = time.Now().UnixMilli()
		if edit != nil {
			edit(ev)
		}
	}
	b, _ := json.Marshal(body)
	if code := postSigned(t, s.adapter, b); code != http.StatusOK {
		t.Fatalf("webhook status %d", code)
	}
	s.line.Note("webhook 200")
}

// waitReplied waits until the run finished and its reply was delivered.
func (s *system) waitReplied(t testing.TB, runID string) bot.Run {
	t.Helper()
	var r bot.Run
	eventually(t, 30*time.Second, "the run's reply", func() bool {
		var err error
		r, err = s.store.Run(context.Background(), runID)
		return err == nil && (r.Status == bot.RunSucceeded || r.Status == bot.RunFailed) && r.RepliedAttempt == 1
	})
	return r
}

// gateContent holds the content API until the returned func is called.
func (s *system) gateContent(id string, b []byte) func() {
	s.line.AddContent(id, linetest.Content{Body: b})
	return s.line.HoldContent()
}

// before reports whether a appears in log before b.
func before(log []string, a, b string) bool {
	i, j := slices.Index(log, a), slices.Index(log, b)
	return i >= 0 && j >= 0 && i < j
}

const imageID = "354718705033693859"

func TestEndToEndImageAnsweredByReplyToken(t *testing.T) {
	t.Parallel()
	s := newSystem(t, e2eOptions{scenario: "ok"})
	release := s.gateContent(imageID, bottest.PNG(t, 64, 48))
	s.deliver(t, "image_user.json", nil)
	release()
	runs, _ := s.accepts.Runs()
	if len(runs) != 1 {
		t.Fatalf("runs accepted: %v", runs)
	}
	r := s.waitReplied(t, runs[0])

	replies, pushes := s.line.Accepted(linetest.PathReply), s.line.Calls(linetest.PathPush)
	if len(replies) != 1 || len(pushes) != 0 {
		t.Fatalf("replies %+v, pushes %+v; want one reply", replies, pushes)
	}
	if got := replies[0].Messages[0].Text; !strings.Contains(got, "Received a PNG image, 64×48 px") || replies[0].Token != "7840b71058e24a5d91f9b5726c7512c9" {
		t.Errorf("reply %q with token %s (run %s: %s)", got, replies[0].Token, r.Status, r.Reply)
	}
	if l := s.line.Accepted(linetest.PathLoading); len(l) == 0 || l[0].To != userID {
		t.Errorf("loading animation calls = %+v", l)
	}
	log := s.line.Order()
	if !before(log, "webhook 200", linetest.PathContent+" 200") || !before(log, linetest.PathContent+" 200", linetest.PathReply+" 200") ||
		!before(log, linetest.PathLoading+" 202", linetest.PathReply+" 200") {
		t.Errorf("order = %v, want the webhook answered before the image was fetched, and loading before the reply", log)
	}
}

func TestEndToEndTextAndGroupImage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file        string
		imageID     string
		wantText    string
		wantLoading bool // One-on-one chats only.
		wantQuote   bool // Groups and rooms.
	}{
		{"text_user.json", "", "You said: What is a good name for a cat?", true, false},
		{"image_group.json", "354718705033693890", "Received a PNG image, 32×24 px", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			s := newSystem(t, e2eOptions{scenario: "ok"})
			if tt.imageID != "" {
				s.line.AddContent(tt.imageID, linetest.Content{Body: bottest.PNG(t, 32, 24)})
			}
			s.deliver(t, tt.file, nil)
			runs, _ := s.accepts.Runs()
			s.waitReplied(t, runs[0])
			replies := s.line.Accepted(linetest.PathReply)
			if len(replies) != 1 || len(s.line.Calls(linetest.PathPush)) != 0 || !strings.Contains(replies[0].Messages[0].Text, tt.wantText) {
				t.Fatalf("replies %+v, want one saying %q", replies, tt.wantText)
			}
			if quoted := replies[0].Messages[0].QuoteToken != ""; quoted != tt.wantQuote {
				t.Errorf("quoted = %v, want %v", quoted, tt.wantQuote)
			}
			if loading := len(s.line.Accepted(linetest.PathLoading)) > 0; loading != tt.wantLoading {
				t.Errorf("loading animation = %v, want %v", loading, tt.wantLoading)
			}
		})
	}
}

func TestEndToEndRedeliveredEventAnsweredOnce(t *testing.T) {
	t.Parallel()
	s := newSystem(t, e2eOptions{scenario: "ok"})
	release := s.gateContent(imageID, bottest.PNG(t, 8, 8))
	redeliver := func(ev map[string]any) { ev["deliveryContext"] = map[string]any{"isRedelivery": true} }
	s.deliver(t, "image_user.json", nil)
	s.deliver(t, "image_user.json", redeliver) // While the run works.
	release()
	runs, _ := s.accepts.Runs()
	s.waitReplied(t, runs[0])
	s.deliver(t, "image_user.json", redeliver) // After the answer went out.

	runs, dups := s.accepts.Runs()
	if len(runs) != 3 || runs[1] != runs[0] || runs[2] != runs[0] || !slices.Equal(dups, []bool{false, true, true}) {
		t.Errorf("accepts = %v %v, want one run and two duplicates", runs, dups)
	}
	if all, _ := s.store.ListRuns(context.Background(), bot.RunFilter{}); len(all) != 1 {
		t.Errorf("%d runs stored, want 1", len(all))
	}
	if r, p := s.line.Accepted(linetest.PathReply), s.line.Accepted(linetest.PathPush); len(r)+len(p) != 1 {
		t.Errorf("replies %+v, pushes %+v; want one message in total", r, p)
	}
}

func TestEndToEndSlowRunAnsweredByPush(t *testing.T) {
	t.Parallel()
	// The run outlasts the reply token's TTL, so the answer goes by push with a retry key.
	s := newSystem(t, e2eOptions{scenario: "ok", latency: 300 * time.Millisecond, ttl: 50 * time.Millisecond})
	release := s.gateContent(imageID, bottest.PNG(t, 16, 16))
	s.deliver(t, "image_user.json", nil)
	release()
	runs, _ := s.accepts.Runs()
	s.waitReplied(t, runs[0])

	pushes := s.line.Accepted(linetest.PathPush)
	if len(pushes) != 1 || len(s.line.Calls(linetest.PathReply)) != 0 {
		t.Fatalf("pushes %+v, replies %+v; want one push and no reply", pushes, s.line.Calls(linetest.PathReply))
	}
	p := pushes[0]
	if _, err := uuid.Parse(p.RetryKey); err != nil || p.To != userID || !strings.Contains(p.Messages[0].Text, "Received a PNG image, 16×16 px") {
		t.Errorf("push %+v, want the answer to %s with a UUID retry key", p, userID)
	}
	if len(s.line.Accepted(linetest.PathLoading)) == 0 {
		t.Error("no loading animation")
	}
	if log := s.line.Order(); !before(log, "webhook 200", linetest.PathPush+" 200") {
		t.Errorf("order = %v", log)
	}
}

func TestEndToEndFailureReachesThePersonInTheirLanguage(t *testing.T) {
	t.Parallel()
	s := newSystem(t, e2eOptions{scenario: "workflow_failed", lang: bot.LangJA})
	s.deliver(t, "text_group.json", nil)
	runs, _ := s.accepts.Runs()
	r := s.waitReplied(t, runs[0])

	replies := s.line.Accepted(linetest.PathReply)
	if r.Code != bot.CodeDifyWorkflowFailed || len(replies) != 1 {
		t.Fatalf("run code %s, replies %+v", r.Code, replies)
	}
	want := plainText(bot.Diagnosis{Code: bot.CodeDifyWorkflowFailed}.UserText(bot.LangJA, r.ID))
	if got := replies[0].Messages[0].Text; got != want || !strings.Contains(got, "参照番号: "+r.ID) {
		t.Errorf("reply %q, want %q", got, want)
	}
	if replies[0].Messages[0].QuoteToken == "" {
		t.Error("the answer in a group does not quote the question")
	}
	if n := len(s.line.Calls(linetest.PathLoading)); n != 0 {
		t.Errorf("%d loading calls in a group, want none", n)
	}
}

// blockUntil is a stream that sends nothing until done is closed.
type blockUntil chan struct{}

func (b blockUntil) Read([]byte) (int, error) { <-b; return 0, io.EOF }

// TestEndToEndStalledContentIsAnswered: LINE's content API stops sending, before answering or in the middle of
// the image. The download has its own limits (the job's would take an hour of retries), so the person gets a
// platform_download_failed reply that says LINE sent nothing, within the idle limit, through the real adapter
// (its production HTTP client) and pipeline.
func TestEndToEndStalledContentIsAnswered(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		hold   bool // Before the answer; else after 64 KiB of the image.
		detail string
	}{
		{"before answering", true, "LINE sent no data for 500ms"},
		{"mid-image", false, "LINE sent no data for 500ms (after 65536 bytes)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSystem(t, e2eOptions{scenario: "ok", fetchTimeout: 5 * time.Second, fetchIdle: 500 * time.Millisecond})
			stall := make(blockUntil)
			t.Cleanup(func() { close(stall) }) // Before the fake closes: its handler is still sending.
			if tt.hold {
				s.line.AddContent(imageID, linetest.Content{Body: bottest.PNG(t, 8, 8)})
				t.Cleanup(s.line.HoldContent())
			} else {
				s.line.AddContent(imageID, linetest.Content{Type: "image/png", Size: 1 << 20, Open: func() io.Reader {
					return io.MultiReader(bytes.NewReader(make([]byte, 64<<10)), stall)
				}})
			}
			start := time.Now()
			s.deliver(t, "image_user.json", nil)
			runs, _ := s.accepts.Runs()
			r := s.waitReplied(t, runs[0])
			took := time.Since(start)
			if r.Status != bot.RunFailed || r.Code != bot.CodePlatformDownloadFailed || r.Diagnosis == nil || !strings.Contains(r.Diagnosis.Detail, tt.detail) {
				t.Fatalf("run = %s %s %+v, want platform_download_failed saying %q", r.Status, r.Code, r.Diagnosis, tt.detail)
			}
			replies := s.line.Accepted(linetest.PathReply)
			if len(replies) != 1 || !strings.Contains(replies[0].Messages[0].Text, "could not download your file") {
				t.Fatalf("replies %+v, want the diagnosis", replies)
			}
			if took > 5*time.Second {
				t.Errorf("answered after %s, want about the idle limit", took)
			}
			t.Logf("answered after %s: %s", took.Round(time.Millisecond), r.Diagnosis.Detail)
		})
	}
}
