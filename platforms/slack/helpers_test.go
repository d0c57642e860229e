package slack_test

import (
	"bytes"
	"encoding/json"
	"image"
	"image/jpeg"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/difybot/difybot/bot"
	slackadapter "github.com/difybot/difybot/platforms/slack"
	"github.com/difybot/difybot/platforms/slack/slacktest"
)

// The identities the payloads in testdata use: the fake Slack's, and the people's.
const (
	botToken     = slacktest.BotToken
	secret       = slacktest.SigningSecret
	botUser      = slacktest.BotUserID
	person       = "U02ABCDEF12"
	channel      = "C05L8JQ2M1T"
	dmChannel    = "D05M9KDR3PQ"
	realFileHost = "https://files.slack.com/"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer collects log lines from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newAdapter builds an adapter against fs with edit applied to its config. It does not stream unless edit says
// so: most tests are about the placeholder and chat.update, which streaming falls back to.
func newAdapter(t testing.TB, fs *slacktest.Server, acc bot.Inbox, edit ...func(*slackadapter.Config)) *slackadapter.Adapter {
	t.Helper()
	cfg := slackadapter.Config{Inbox: acc, BotToken: botToken, SigningSecret: secret, APIURL: fs.URL(), Logger: zerolog.Nop(),
		Streaming: slackadapter.StreamingOff}
	for _, e := range edit {
		e(&cfg)
	}
	a, err := slackadapter.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

// payload reads a testdata file, pointing Slack's file URLs at the fake.
func payload(t testing.TB, name string, fs *slacktest.Server) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if fs != nil {
		b = bytes.ReplaceAll(b, []byte(realFileHost), []byte(fs.FilesURL()))
	}
	return b
}

// edited decodes a payload, lets fn change it, and encodes it again.
func edited(t testing.TB, body []byte, fn func(p map[string]any)) []byte {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	fn(p)
	out, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// eventRequest is a signed Events API delivery.
func eventRequest(body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/slack/events", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	slacktest.Sign(r.Header, secret, time.Now(), body)
	return r
}

// interactionRequest is a signed interactivity delivery: the JSON in a form's payload field.
func interactionRequest(payloadJSON []byte) *http.Request {
	body := []byte("payload=" + url.QueryEscape(string(payloadJSON)))
	r := httptest.NewRequest(http.MethodPost, "/slack/interactions", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	slacktest.Sign(r.Header, secret, time.Now(), body)
	return r
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// jpegBytes is a real 2×2 JPEG.
func jpegBytes(t testing.TB) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 2, 2))
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// decodeBlocks decodes the blocks form field for comparison; "" decodes to nil.
func decodeBlocks(t testing.TB, s string) any {
	t.Helper()
	if s == "" {
		return nil
	}
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("blocks %q: %v", s, err)
	}
	return v
}
