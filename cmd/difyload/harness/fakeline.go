package harness

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"
)

// FakeLINE is the Messaging API (reply, push, loading animation) and the content API on one httptest
// server, with the rules difybot relies on: a reply token works once, and a push whose X-Line-Retry-Key was
// accepted before answers 409 and is not delivered again. It counts every message each chat received.
type FakeLINE struct {
	srv    *httptest.Server
	served atomic.Int64
	convs  convs

	mu      sync.Mutex
	tokens  map[string]lineToken // Reply tokens not used yet.
	keys    map[string]bool      // Accepted retry keys.
	content map[string]Blob
}

// NewFakeLINE starts the fake. Close it when done.
func NewFakeLINE() *FakeLINE {
	f := &FakeLINE{tokens: map[string]lineToken{}, keys: map[string]bool{}, content: map[string]Blob{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v2/bot/message/reply", f.reply)
	mux.HandleFunc("POST /v2/bot/message/push", f.push)
	mux.HandleFunc("POST /v2/bot/chat/loading/start", func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		var in struct {
			ChatID string `json:"chatId"`
		}
		json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&in)
		writeJSONBody(w, http.StatusAccepted, map[string]any{})
		f.convs.busy(in.ChatID, time.Since(start))
	})
	mux.HandleFunc("GET /v2/bot/message/{id}/content", f.getContent)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+LINEChannelToken {
			writeJSONBody(w, http.StatusUnauthorized, map[string]any{"message": "Authentication failed. Confirm that the access token in the authorization header is valid."})
			return
		}
		mux.ServeHTTP(w, r)
	}))
	return f
}

// URL is the base for LINE_API_URL and LINE_DATA_API_URL.
func (f *FakeLINE) URL() string { return f.srv.URL }

// Close stops the server.
func (f *FakeLINE) Close() { f.srv.Close() }

// lineToken is a reply token LINE issued: for one chat, usable once, for about a minute.
type lineToken struct {
	chat   string
	issued time.Time
}

// replyTokenTTL is how long LINE accepts a reply token.
const replyTokenTTL = time.Minute

// Expect registers a reply token LINE issued for a message from chat.
func (f *FakeLINE) Expect(token, chat string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens[token] = lineToken{chat: chat, issued: time.Now()}
}

// AddContent makes an image message's content downloadable.
func (f *FakeLINE) AddContent(messageID string, b Blob) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.content[messageID] = b
}

// ServedBytes is how many content bytes the fake has sent.
func (f *FakeLINE) ServedBytes() int64 { return f.served.Load() }

// Conversations returns what each chat received.
func (f *FakeLINE) Conversations() map[string]Conv { return f.convs.snapshot() }

type lineMessages struct {
	ReplyToken string `json:"replyToken"`
	To         string `json:"to"`
	Messages   []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"messages"`
}

func (f *FakeLINE) reply(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var in lineMessages
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&in); err != nil || len(in.Messages) == 0 || len(in.Messages) > 5 {
		writeJSONBody(w, http.StatusBadRequest, map[string]any{"message": "The request body has 1 error(s)"})
		return
	}
	f.mu.Lock()
	tok, ok := f.tokens[in.ReplyToken]
	delete(f.tokens, in.ReplyToken)
	f.mu.Unlock()
	chat := tok.chat
	if !ok || time.Since(tok.issued) > replyTokenTTL {
		writeJSONBody(w, http.StatusBadRequest, map[string]any{"message": "Invalid reply token"})
		return
	}
	for _, m := range in.Messages {
		f.convs.delivered(chat, m.Text, time.Now(), true)
	}
	writeJSONBody(w, http.StatusOK, map[string]any{"sentMessages": []any{}})
	f.convs.busy(chat, time.Since(start))
}

func (f *FakeLINE) push(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var in lineMessages
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&in); err != nil || in.To == "" || len(in.Messages) == 0 || len(in.Messages) > 5 {
		writeJSONBody(w, http.StatusBadRequest, map[string]any{"message": "The request body has 1 error(s)"})
		return
	}
	key := r.Header.Get("X-Line-Retry-Key")
	f.mu.Lock()
	seen := key != "" && f.keys[key]
	if key != "" {
		f.keys[key] = true
	}
	f.mu.Unlock()
	if seen {
		w.Header().Set("X-Line-Accepted-Request-Id", "accepted-before")
		writeJSONBody(w, http.StatusConflict, map[string]any{"message": "The retry key is already accepted"})
		f.convs.busy(in.To, time.Since(start))
		return
	}
	for _, m := range in.Messages {
		f.convs.delivered(in.To, m.Text, time.Now(), true)
	}
	writeJSONBody(w, http.StatusOK, map[string]any{"sentMessages": []any{}})
	f.convs.busy(in.To, time.Since(start))
}

func (f *FakeLINE) getContent(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	f.mu.Lock()
	b, ok := f.content[id]
	f.mu.Unlock()
	if !ok {
		writeJSONBody(w, http.StatusNotFound, map[string]any{"message": "Not found"})
		return
	}
	w.Header().Set("Content-Type", b.Mimetype())
	w.Header().Set("Content-Length", fmt.Sprint(b.Size))
	n, _ := io.Copy(w, b.Open())
	f.served.Add(n)
}
