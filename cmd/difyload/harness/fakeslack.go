package harness

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// FakeSlack is the part of Slack's Web API difybot uses (auth.test, chat.postMessage, chat.update,
// chat.delete, files.info) and files.slack.com downloads, on one httptest server. It keeps every message the
// bot posted, so at the end it can say what each channel shows.
type FakeSlack struct {
	srv *httptest.Server

	seq    atomic.Int64
	served atomic.Int64 // File bytes sent.
	convs  convs

	mu    sync.Mutex
	msgs  map[string]*slackMsg // By ts.
	files map[string]fakeSlackFile
}

type slackMsg struct {
	channel, text string
}

type fakeSlackFile struct {
	name string
	blob Blob
}

// NewFakeSlack starts the fake. Close it when done.
func NewFakeSlack() *FakeSlack {
	f := &FakeSlack{msgs: map[string]*slackMsg{}, files: map[string]fakeSlackFile{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/auth.test", f.method(func(w http.ResponseWriter, form url.Values) string {
		writeJSONBody(w, http.StatusOK, map[string]any{"ok": true, "url": "https://difyload.slack.com/", "team": "difyload",
			"user": "difybot", "team_id": "T0DIFYLOAD", "user_id": SlackBotUser, "bot_id": "B0DIFYBOT1"})
		return ""
	}))
	mux.HandleFunc("/api/chat.postMessage", f.method(f.post))
	mux.HandleFunc("/api/chat.update", f.method(f.update))
	mux.HandleFunc("/api/chat.delete", f.method(f.delete))
	mux.HandleFunc("/api/files.info", f.method(f.filesInfo))
	mux.HandleFunc("/files/", f.download)
	f.srv = httptest.NewServer(mux)
	return f
}

// URL is the API URL for SLACK_API_URL.
func (f *FakeSlack) URL() string { return f.srv.URL + "/api/" }

// Close stops the server.
func (f *FakeSlack) Close() { f.srv.Close() }

// AddFile makes a file downloadable and returns it as a message attachment. The bot downloads it from the
// fake's host, which is the API host, so it sends its token there.
func (f *FakeSlack) AddFile(id, name string, b Blob) SlackFile {
	f.mu.Lock()
	f.files[id] = fakeSlackFile{name: name, blob: b}
	f.mu.Unlock()
	return SlackFile{ID: id, Name: name, Mimetype: b.Mimetype(), Size: b.Size, URL: f.srv.URL + "/files/" + id + "/" + name}
}

// ServedBytes is how many file bytes the fake has sent.
func (f *FakeSlack) ServedBytes() int64 { return f.served.Load() }

// Conversations returns what each channel got. Finals and Working are what the channel shows now.
func (f *FakeSlack) Conversations() map[string]Conv {
	out := f.convs.snapshot()
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, c := range out {
		c.Finals, c.Working, c.Held = 0, 0, 0
		out[k] = c
	}
	for _, m := range f.msgs {
		c := out[m.channel]
		switch k, _ := Classify(m.text); {
		case k.Final():
			c.Finals++
		case k == KindHeld:
			c.Held++
		default:
			c.Working++
		}
		out[m.channel] = c
	}
	return out
}

// method wraps a Web API method: it checks the token, parses the form and records the time spent per channel.
func (f *FakeSlack) method(h func(w http.ResponseWriter, form url.Values) string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		tok := r.Header.Get("Authorization")
		if tok == "" {
			tok = "Bearer " + r.PostForm.Get("token")
		}
		if tok != "Bearer "+SlackBotToken {
			writeJSONBody(w, http.StatusOK, map[string]any{"ok": false, "error": "invalid_auth"})
			return
		}
		if ch := h(w, r.PostForm); ch != "" {
			f.convs.busy(ch, time.Since(start))
		}
	}
}

func (f *FakeSlack) post(w http.ResponseWriter, form url.Values) string {
	ch, text := form.Get("channel"), form.Get("text")
	ts := fmt.Sprintf("1763900000.%06d", f.seq.Add(1))
	f.mu.Lock()
	f.msgs[ts] = &slackMsg{channel: ch, text: text}
	f.mu.Unlock()
	f.convs.delivered(ch, text, time.Now(), false)
	writeJSONBody(w, http.StatusOK, map[string]any{"ok": true, "channel": ch, "ts": ts,
		"message": map[string]any{"type": "message", "text": text, "ts": ts, "thread_ts": form.Get("thread_ts"), "bot_id": "B0DIFYBOT1"}})
	return ch
}

func (f *FakeSlack) update(w http.ResponseWriter, form url.Values) string {
	ch, ts, text := form.Get("channel"), form.Get("ts"), form.Get("text")
	f.mu.Lock()
	m := f.msgs[ts]
	if m != nil && m.channel == ch {
		m.text = text
	}
	f.mu.Unlock()
	if m == nil || m.channel != ch {
		writeJSONBody(w, http.StatusOK, map[string]any{"ok": false, "error": "message_not_found"})
		return ch
	}
	f.convs.delivered(ch, text, time.Now(), false)
	writeJSONBody(w, http.StatusOK, map[string]any{"ok": true, "channel": ch, "ts": ts, "text": text})
	return ch
}

func (f *FakeSlack) delete(w http.ResponseWriter, form url.Values) string {
	ch, ts := form.Get("channel"), form.Get("ts")
	f.mu.Lock()
	m := f.msgs[ts]
	if m != nil && m.channel == ch {
		delete(f.msgs, ts)
	}
	f.mu.Unlock()
	if m == nil {
		writeJSONBody(w, http.StatusOK, map[string]any{"ok": false, "error": "message_not_found"})
		return ch
	}
	writeJSONBody(w, http.StatusOK, map[string]any{"ok": true, "channel": ch, "ts": ts})
	return ch
}

func (f *FakeSlack) filesInfo(w http.ResponseWriter, form url.Values) string {
	id := form.Get("file")
	f.mu.Lock()
	ff, ok := f.files[id]
	f.mu.Unlock()
	if !ok {
		writeJSONBody(w, http.StatusOK, map[string]any{"ok": false, "error": "file_not_found"})
		return ""
	}
	u := f.srv.URL + "/files/" + id + "/" + ff.name
	writeJSONBody(w, http.StatusOK, map[string]any{"ok": true, "file": map[string]any{"id": id, "name": ff.name,
		"mimetype": ff.blob.Mimetype(), "size": ff.blob.Size, "mode": "hosted", "url_private": u, "url_private_download": u}})
	return ""
}

// download serves /files/{id}/{name} with the bot token, streaming the blob.
func (f *FakeSlack) download(w http.ResponseWriter, r *http.Request) {
	id, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/files/"), "/")
	f.mu.Lock()
	ff, ok := f.files[id]
	f.mu.Unlock()
	if !ok || r.Header.Get("Authorization") != "Bearer "+SlackBotToken {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", ff.blob.Mimetype())
	w.Header().Set("Content-Length", fmt.Sprint(ff.blob.Size))
	n, _ := io.Copy(w, ff.blob.Open())
	f.served.Add(n)
}

func writeJSONBody(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
