package slack_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/slack-go/slack/slacktest"

	"github.com/difybot/difybot/bot"
	slackadapter "github.com/difybot/difybot/platforms/slack"
)

// The identities the payloads in testdata use.
const (
	botToken     = "xoxb-1234567890-0987654321-TestTokenValue"
	secret       = "8f742231b10e8888abcd99yyyzzz85a5"
	botUser      = "U06BQ4XLKD2"
	person       = "U02ABCDEF12"
	channel      = "C05L8JQ2M1T"
	dmChannel    = "D05M9KDR3PQ"
	realFileHost = "https://files.slack.com/"
)

// apiCall is one request the fake Slack received.
type apiCall struct {
	Method string // The Web API method, or "download".
	Form   url.Values
	Auth   string
	Path   string
}

// fakeFile is a file the fake serves; status and html make it refuse the way Slack does.
type fakeFile struct {
	name, mime string
	body       []byte
	status     int  // Non-zero: the download answers this status.
	signIn     bool // The download redirects to the sign-in page.
	noScope    bool // files.info answers missing_scope.
}

// fakeSlack is slacktest's server with the methods the adapter uses, recording every call.
type fakeSlack struct {
	srv *slacktest.Server

	mu        sync.Mutex
	calls     []apiCall
	seq       int
	files     map[string]*fakeFile
	fail      map[string]func(w http.ResponseWriter) bool // By method: answer instead of the normal handler.
	onCall    func(apiCall)
	socketURL string // What apps.connections.open answers.
}

func newFakeSlack(t *testing.T) *fakeSlack {
	t.Helper()
	f := &fakeSlack{files: map[string]*fakeFile{}, fail: map[string]func(http.ResponseWriter) bool{}}
	f.srv = slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/auth.test", f.method("auth.test", func(w http.ResponseWriter, form url.Values) {
			writeJSON(w, map[string]any{"ok": true, "url": "https://example.slack.com/", "team": "Example", "user": "difybot",
				"team_id": "T0AB12CDE", "user_id": botUser, "bot_id": "B06BQ4XKJ8N", "is_enterprise_install": false})
		}))
		c.Handle("/chat.postMessage", f.method("chat.postMessage", func(w http.ResponseWriter, form url.Values) {
			ts := f.nextTS()
			writeJSON(w, map[string]any{"ok": true, "channel": form.Get("channel"), "ts": ts,
				"message": map[string]any{"type": "message", "text": form.Get("text"), "ts": ts, "thread_ts": form.Get("thread_ts"), "bot_id": "B06BQ4XKJ8N"}})
		}))
		c.Handle("/chat.update", f.method("chat.update", func(w http.ResponseWriter, form url.Values) {
			writeJSON(w, map[string]any{"ok": true, "channel": form.Get("channel"), "ts": form.Get("ts"), "text": form.Get("text")})
		}))
		c.Handle("/chat.delete", f.method("chat.delete", func(w http.ResponseWriter, form url.Values) {
			writeJSON(w, map[string]any{"ok": true, "channel": form.Get("channel"), "ts": form.Get("ts")})
		}))
		c.Handle("/chat.postEphemeral", f.method("chat.postEphemeral", func(w http.ResponseWriter, form url.Values) {
			writeJSON(w, map[string]any{"ok": true, "message_ts": f.nextTS()})
		}))
		c.Handle("/files.info", f.method("files.info", f.filesInfo))
		c.Handle("/apps.connections.open", f.method("apps.connections.open", func(w http.ResponseWriter, _ url.Values) {
			f.mu.Lock()
			u := f.socketURL
			f.mu.Unlock()
			writeJSON(w, map[string]any{"ok": true, "url": u})
		}))
		c.Handle("/files-pri/", f.download)
	})
	f.srv.Start()
	t.Cleanup(f.srv.Stop)
	return f
}

// URL is the API URL, ending in a slash.
func (f *fakeSlack) URL() string { return f.srv.GetAPIURL() }

// fileURL is where the fake serves a file, on the API host as slack-go's guard requires in tests.
func (f *fakeSlack) fileURL(id, name string) string {
	return f.URL() + "files-pri/T0AB12CDE-" + id + "/download/" + name
}

func (f *fakeSlack) addFile(id string, ff *fakeFile) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files[id] = ff
}

func (f *fakeSlack) nextTS() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	return fmt.Sprintf("1763900000.%06d", f.seq)
}

func (f *fakeSlack) failWith(method string, fn func(w http.ResponseWriter) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[method] = fn
}

func (f *fakeSlack) record(c apiCall) {
	f.mu.Lock()
	f.calls = append(f.calls, c)
	hook := f.onCall
	f.mu.Unlock()
	if hook != nil {
		hook(c)
	}
}

func (f *fakeSlack) method(name string, h func(w http.ResponseWriter, form url.Values)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.record(apiCall{Method: name, Form: r.PostForm, Auth: r.Header.Get("Authorization"), Path: r.URL.Path})
		f.mu.Lock()
		fail := f.fail[name]
		f.mu.Unlock()
		if fail != nil && fail(w) {
			return
		}
		h(w, r.PostForm)
	}
}

func (f *fakeSlack) filesInfo(w http.ResponseWriter, form url.Values) {
	f.mu.Lock()
	ff := f.files[form.Get("file")]
	f.mu.Unlock()
	switch {
	case ff == nil:
		writeJSON(w, map[string]any{"ok": false, "error": "file_not_found"})
	case ff.noScope:
		writeJSON(w, map[string]any{"ok": false, "error": "missing_scope", "needed": "files:read", "provided": "app_mentions:read,chat:write"})
	default:
		id := form.Get("file")
		writeJSON(w, map[string]any{"ok": true, "file": map[string]any{
			"id": id, "name": ff.name, "title": ff.name, "mimetype": ff.mime, "filetype": strings.TrimPrefix(ff.mime, "image/"),
			"size": len(ff.body), "mode": "hosted", "is_external": false, "file_access": "visible",
			"url_private":          f.URL() + "files-pri/T0AB12CDE-" + id + "/" + ff.name,
			"url_private_download": f.fileURL(id, ff.name),
		}, "comments": []any{}, "response_metadata": map[string]any{"next_cursor": ""}})
	}
}

// download serves /files-pri/T0AB12CDE-<id>/download/<name> the way files.slack.com does.
func (f *fakeSlack) download(w http.ResponseWriter, r *http.Request) {
	f.record(apiCall{Method: "download", Auth: r.Header.Get("Authorization"), Path: r.URL.Path})
	if r.URL.Path == "/files-pri/signin" {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, "<!DOCTYPE html><html><head><title>Slack</title></head><body>Sign in to your workspace</body></html>")
		return
	}
	seg := strings.Split(strings.TrimPrefix(r.URL.Path, "/files-pri/"), "/")
	id := strings.TrimPrefix(seg[0], "T0AB12CDE-")
	f.mu.Lock()
	ff := f.files[id]
	f.mu.Unlock()
	switch {
	case ff == nil || r.Header.Get("Authorization") != "Bearer "+botToken:
		http.NotFound(w, r)
	case ff.status != 0:
		w.WriteHeader(ff.status)
	case ff.signIn:
		http.Redirect(w, r, "/files-pri/signin?redir="+url.QueryEscape(r.URL.Path), http.StatusFound)
	default:
		w.Header().Set("Content-Type", ff.mime)
		w.Header().Set("Content-Length", strconv.Itoa(len(ff.body)))
		_, _ = w.Write(ff.body)
	}
}

// callsTo returns the recorded calls of one method, oldest first.
func (f *fakeSlack) callsTo(method string) []apiCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []apiCall
	for _, c := range f.calls {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// writes returns the calls that change what the thread shows.
func (f *fakeSlack) writes() []apiCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []apiCall
	for _, c := range f.calls {
		switch c.Method {
		case "chat.postMessage", "chat.update", "chat.delete", "chat.postEphemeral":
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeSlack) allCalls() []apiCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]apiCall(nil), f.calls...)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(v)
}

// rateLimited answers 429 with Retry-After, as Slack does.
func rateLimited(w http.ResponseWriter) bool {
	w.Header().Set("Retry-After", "1")
	w.WriteHeader(http.StatusTooManyRequests)
	return true
}

// fakeAcceptor records what the adapter hands to the bot.
type fakeAcceptor struct {
	mu       sync.Mutex
	msgs     []bot.Message
	retries  []string
	err      error
	retryErr error
	onAccept func(bot.Message)
}

func (f *fakeAcceptor) Accept(ctx context.Context, m bot.Message) (bot.Run, bool, error) {
	f.mu.Lock()
	f.msgs = append(f.msgs, m)
	err, hook := f.err, f.onAccept
	dup := false
	for _, old := range f.msgs[:len(f.msgs)-1] {
		dup = dup || old.EventID == m.EventID
	}
	f.mu.Unlock()
	if hook != nil {
		hook(m)
	}
	if err != nil {
		return bot.Run{}, false, err
	}
	return bot.Run{ID: "run-" + m.EventID, Message: m}, dup, nil
}

func (f *fakeAcceptor) Retry(ctx context.Context, runID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.retries = append(f.retries, runID)
	return f.retryErr
}

func (f *fakeAcceptor) accepted() []bot.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]bot.Message(nil), f.msgs...)
}

func (f *fakeAcceptor) retried() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.retries...)
}

// memState is a bot.RunState in memory.
type memState struct {
	mu sync.Mutex
	m  map[string]string
}

func newState() *memState { return &memState{m: map[string]string{}} }

func (s *memState) Get(k string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[k]
}

func (s *memState) Set(_ context.Context, k, v string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = v
	return nil
}

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

// newAdapter builds an adapter against fs with edit applied to its config.
func newAdapter(t *testing.T, fs *fakeSlack, acc bot.Inbox, edit ...func(*slackadapter.Config)) *slackadapter.Adapter {
	t.Helper()
	cfg := slackadapter.Config{Inbox: acc, BotToken: botToken, SigningSecret: secret, APIURL: fs.URL(), Logger: zerolog.Nop()}
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
func payload(t *testing.T, name string, fs *fakeSlack) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if fs != nil {
		b = bytes.ReplaceAll(b, []byte(realFileHost), []byte(fs.URL()))
	}
	return b
}

// edited decodes a payload, lets fn change it, and encodes it again.
func edited(t *testing.T, body []byte, fn func(p map[string]any)) []byte {
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

// sign adds Slack's v0 signature headers: hex HMAC-SHA256 of "v0:{ts}:{body}".
func sign(h http.Header, key string, at time.Time, body []byte) {
	ts := strconv.FormatInt(at.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(key))
	fmt.Fprintf(mac, "v0:%s:%s", ts, body)
	h.Set("X-Slack-Request-Timestamp", ts)
	h.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
}

// eventRequest is a signed Events API delivery.
func eventRequest(body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/slack/events", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	sign(r.Header, secret, time.Now(), body)
	return r
}

// interactionRequest is a signed interactivity delivery: the JSON in a form's payload field.
func interactionRequest(payloadJSON []byte) *http.Request {
	body := []byte("payload=" + url.QueryEscape(string(payloadJSON)))
	r := httptest.NewRequest(http.MethodPost, "/slack/interactions", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	sign(r.Header, secret, time.Now(), body)
	return r
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// pngBytes is a real 2×2 PNG.
func pngBytes(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 2, 2))
	img.Set(0, 0, color.RGBA{R: 255, A: 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// jpegBytes is a real 2×2 JPEG.
func jpegBytes(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 2, 2))
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
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
func decodeBlocks(t *testing.T, s string) any {
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
