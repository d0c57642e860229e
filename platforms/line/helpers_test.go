package line

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/bottest"
	"github.com/difybot/difybot/platforms/line/linetest"
)

// The channel's credentials: the fake LINE's.
const (
	testSecret = linetest.ChannelSecret
	testToken  = linetest.ChannelToken
)

// epoch is the clock of the unit tests: one second after the image_user.json event.
var epoch = time.UnixMilli(1716000002000).UTC()

func newAdapter(t testing.TB, f *linetest.Server, a bot.Inbox, opts ...func(*Config)) *Adapter {
	t.Helper()
	cfg := Config{ChannelSecret: testSecret, ChannelToken: testToken, APIURL: f.URL(), DataAPIURL: f.URL(),
		HTTPClient: &http.Client{Timeout: 10 * time.Second}, Logger: zerolog.Nop(), Now: func() time.Time { return epoch }}
	for _, o := range opts {
		o(&cfg)
	}
	if a == nil {
		a = &bottest.Inbox{}
	}
	cfg.Inbox = a
	ad, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ad.allowPrivate = true
	return ad
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// post sends body to the adapter's webhook with the given signature and returns the status.
func post(t testing.TB, a *Adapter, body []byte, signature string) int {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/line/webhook", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	if signature != "" {
		req.Header.Set("X-Line-Signature", signature)
	}
	rec := httptest.NewRecorder()
	a.Routes()[0].Handler.ServeHTTP(rec, req)
	return rec.Code
}

// postSigned sends body signed with the test secret.
func postSigned(t testing.TB, a *Adapter, body []byte) int {
	t.Helper()
	return post(t, a, body, linetest.Signature(testSecret, body))
}

// eventually waits for cond, failing the test after d.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// imageHost serves external images, as a LIFF app's server would, and remembers any Authorization header.
type imageHost struct {
	*httptest.Server
	mu   sync.Mutex
	auth string
}

func newImageHost(t testing.TB, body []byte) *imageHost {
	t.Helper()
	h := &imageHost{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := r.Header.Get("Authorization"); a != "" {
			h.mu.Lock()
			h.auth = a
			h.mu.Unlock()
		}
		if r.URL.Path != "/photo.png" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		w.Write(body)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *imageHost) authorization() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.auth
}

func readAll(t testing.TB, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
