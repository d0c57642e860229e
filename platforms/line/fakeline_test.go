package line

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/difybot/difybot/bot"
)

const (
	testSecret = "8c570fa6dd201bb328f1c1eac23a96d8"
	testToken  = "test-channel-token"
)

// fakeLINE is the Messaging API and the content API as an httptest server. It records every call and
// applies LINE's rules that the adapter depends on: single-use reply tokens, X-Line-Retry-Key with 409 for a
// key already accepted, the monthly quota's 429, and the message limits.
type fakeLINE struct {
	srv *httptest.Server

	mu       sync.Mutex
	calls    []apiCall
	order    []string        // Calls and test notes in the order they happened.
	keys     map[string]bool // Retry keys of accepted pushes.
	used     map[string]bool // Spent or expired reply tokens.
	content  map[string][]byte
	quota    bool          // Push answers the monthly limit's 429.
	badQuote string        // A quote token LINE refuses.
	gate     chan struct{} // When set, content waits for it to close.
}

// apiCall is one request the fake received.
type apiCall struct {
	Path     string
	Status   int
	RetryKey string
	Token    string // The reply token of a reply.
	To       string // The push target or the loading animation's chat.
	Seconds  int
	Messages []sentMessage
}

type sentMessage struct {
	Type       string `json:"type"`
	Text       string `json:"text"`
	QuoteToken string `json:"quoteToken"`
}

func newFakeLINE(t *testing.T) *fakeLINE {
	t.Helper()
	f := &fakeLINE{keys: map[string]bool{}, used: map[string]bool{}, content: map[string][]byte{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v2/bot/message/reply", f.reply)
	mux.HandleFunc("POST /v2/bot/message/push", f.push)
	mux.HandleFunc("POST /v2/bot/chat/loading/start", f.loading)
	mux.HandleFunc("GET /v2/bot/message/{id}/content", f.getContent)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			writeJSON(w, http.StatusUnauthorized, `{"message":"Authentication failed. Confirm that the access token in the authorization header is valid."}`)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func (f *fakeLINE) record(c apiCall) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
	f.order = append(f.order, fmt.Sprintf("%s %d", c.Path, c.Status))
}

// note adds a test event to the order log.
func (f *fakeLINE) note(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.order = append(f.order, s)
}

func (f *fakeLINE) orderLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.order...)
}

// accepted returns the calls to path that LINE accepted (2xx).
func (f *fakeLINE) accepted(path string) []apiCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []apiCall
	for _, c := range f.calls {
		if c.Path == path && c.Status/100 == 2 {
			out = append(out, c)
		}
	}
	return out
}

// all returns every call to path, accepted or not.
func (f *fakeLINE) all(path string) []apiCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []apiCall
	for _, c := range f.calls {
		if c.Path == path {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeLINE) set(fn func(f *fakeLINE)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

const (
	pathReply   = "/v2/bot/message/reply"
	pathPush    = "/v2/bot/message/push"
	pathLoading = "/v2/bot/chat/loading/start"
	pathContent = "/v2/bot/message/content"
)

// checkMessages applies LINE's limits: 1 to 5 messages, non-empty text of at most 5,000 UTF-16 units.
func (f *fakeLINE) checkMessages(ms []sentMessage) string {
	if len(ms) == 0 || len(ms) > 5 {
		return `{"message":"The request body has 1 error(s)","details":[{"message":"Size must be between 1 and 5","property":"messages"}]}`
	}
	for i, m := range ms {
		if m.Type != "text" || m.Text == "" || units(m.Text) > 5000 {
			return fmt.Sprintf(`{"message":"The request body has 1 error(s)","details":[{"message":"Length must be between 1 and 5000","property":"messages[%d].text"}]}`, i)
		}
		if f.badQuote != "" && m.QuoteToken == f.badQuote {
			return fmt.Sprintf(`{"message":"The request body has 1 error(s)","details":[{"message":"The quote token is invalid","property":"messages[%d].quoteToken"}]}`, i)
		}
	}
	return ""
}

func (f *fakeLINE) reply(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ReplyToken string        `json:"replyToken"`
		Messages   []sentMessage `json:"messages"`
	}
	json.NewDecoder(r.Body).Decode(&req)
	c := apiCall{Path: pathReply, Token: req.ReplyToken, Messages: req.Messages}
	f.mu.Lock()
	status, body := http.StatusOK, `{"sentMessages":[{"id":"461230966842064897","quoteToken":"IStG5h1Tz7b"}]}`
	if bad := f.checkMessages(req.Messages); bad != "" {
		status, body = http.StatusBadRequest, bad
	} else if f.used[req.ReplyToken] || req.ReplyToken == "" {
		status, body = http.StatusBadRequest, `{"message":"Invalid reply token"}`
	} else {
		f.used[req.ReplyToken] = true
	}
	f.mu.Unlock()
	c.Status = status
	f.record(c)
	writeJSON(w, status, body)
}

func (f *fakeLINE) push(w http.ResponseWriter, r *http.Request) {
	var req struct {
		To       string        `json:"to"`
		Messages []sentMessage `json:"messages"`
	}
	json.NewDecoder(r.Body).Decode(&req)
	key := r.Header.Get("X-Line-Retry-Key")
	c := apiCall{Path: pathPush, To: req.To, RetryKey: key, Messages: req.Messages}
	f.mu.Lock()
	status, body := http.StatusOK, `{"sentMessages":[{"id":"461230966842064898","quoteToken":"IStG5h1Tz7c"}]}`
	if _, err := uuid.Parse(key); key != "" && err != nil {
		status, body = http.StatusBadRequest, `{"message":"The value for the 'X-Line-Retry-Key' header is invalid"}`
	} else if f.quota {
		status, body = http.StatusTooManyRequests, `{"message":"You have reached your monthly limit."}`
	} else if key != "" && f.keys[key] {
		status, body = http.StatusConflict, `{"message":"The retry key is already accepted","sentMessages":[{"id":"461230966842064898","quoteToken":"IStG5h1Tz7c"}]}`
	} else if bad := f.checkMessages(req.Messages); bad != "" {
		status, body = http.StatusBadRequest, bad
	} else if key != "" {
		f.keys[key] = true
	}
	f.mu.Unlock()
	c.Status = status
	f.record(c)
	writeJSON(w, status, body)
}

func (f *fakeLINE) loading(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ChatID  string `json:"chatId"`
		Seconds int    `json:"loadingSeconds"`
	}
	json.NewDecoder(r.Body).Decode(&req)
	status, body := http.StatusAccepted, `{}`
	if !strings.HasPrefix(req.ChatID, "U") || req.Seconds < 5 || req.Seconds > 60 || req.Seconds%5 != 0 {
		status, body = http.StatusBadRequest, `{"message":"The request body has 1 error(s)"}`
	}
	f.record(apiCall{Path: pathLoading, Status: status, To: req.ChatID, Seconds: req.Seconds})
	writeJSON(w, status, body)
}

func (f *fakeLINE) getContent(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	f.mu.Lock()
	b, ok := f.content[r.PathValue("id")]
	f.mu.Unlock()
	if !ok {
		f.record(apiCall{Path: pathContent, Status: http.StatusNotFound})
		writeJSON(w, http.StatusNotFound, `{"message":"Not found"}`)
		return
	}
	f.record(apiCall{Path: pathContent, Status: http.StatusOK})
	w.Header().Set("Content-Type", "image/png")
	w.Write(b)
}

// recorder is an Inbox that keeps what it was given and can fail on the nth call.
type recorder struct {
	mu     sync.Mutex
	got    []bot.Message
	failAt int // 1-based; 0 never fails.
}

func (r *recorder) Accept(_ context.Context, m bot.Message) (bot.Run, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failAt > 0 && len(r.got)+1 == r.failAt {
		return bot.Run{}, false, errors.New("database is locked")
	}
	r.got = append(r.got, m)
	return bot.Run{ID: fmt.Sprintf("run-%d", len(r.got))}, false, nil
}

func (r *recorder) Retry(context.Context, string) error {
	return errors.New("LINE has no Retry button")
}

func (r *recorder) messages() []bot.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bot.Message(nil), r.got...)
}

// testState is a RunState in memory that can refuse writes of one key.
type testState struct {
	mu     sync.Mutex
	m      map[string]string
	refuse string
	sets   int
}

func newState() *testState { return &testState{m: map[string]string{}} }

func (s *testState) Get(k string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[k]
}

func (s *testState) Set(_ context.Context, k, v string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refuse != "" && strings.HasPrefix(k, s.refuse) {
		return errors.New("store unavailable")
	}
	s.m[k] = v
	s.sets++
	return nil
}

func (s *testState) clone() *testState {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := newState()
	for k, v := range s.m {
		c.m[k] = v
	}
	return c
}

// epoch is the clock of the unit tests: one second after the image_user.json event.
var epoch = time.UnixMilli(1716000002000).UTC()

func newAdapter(t *testing.T, f *fakeLINE, a bot.Inbox, opts ...func(*Config)) *Adapter {
	t.Helper()
	cfg := Config{ChannelSecret: testSecret, ChannelToken: testToken, APIURL: f.srv.URL, DataAPIURL: f.srv.URL,
		HTTPClient: &http.Client{Timeout: 10 * time.Second}, Logger: zerolog.Nop(), Now: func() time.Time { return epoch }}
	for _, o := range opts {
		o(&cfg)
	}
	if a == nil {
		a = &recorder{}
	}
	cfg.Inbox = a
	ad, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ad.allowPrivate = true
	return ad
}

func sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
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
	return post(t, a, body, sign(testSecret, body))
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

func newImageHost(t *testing.T, body []byte) *imageHost {
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
