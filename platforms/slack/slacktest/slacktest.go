// Package slacktest fakes Slack for tests: the Web API methods difybot calls (auth.test, chat.postMessage,
// chat.update, chat.delete, chat.postEphemeral, chat.startStream, chat.appendStream, chat.stopStream,
// assistant.threads.setStatus, setTitle and setSuggestedPrompts, files.info, files.getUploadURLExternal,
// files.completeUploadExternal, apps.connections.open), files.slack.com downloads and the upload URLs, on one
// httptest server speaking Slack's wire format; the v0 signature Slack puts on the requests
// it sends; and builders of the Events API payloads it delivers.
//
// The fake keeps every call it answered and what each channel shows now, and can be told to answer a method
// otherwise (rate limited, an error) or to refuse a file the ways Slack does. It does not import the adapter,
// so the adapter's own tests can use it.
package slacktest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The identity the fake answers with, and the secret its payloads are signed with. They match the recorded
// payloads in platforms/slack/testdata. They are test values, never real ones.
const (
	BotToken      = "xoxb-1234567890-0987654321-TestTokenValue"
	SigningSecret = "8f742231b10e8888abcd99yyyzzz85a5"
	TeamID        = "T0AB12CDE"
	BotUserID     = "U06BQ4XLKD2"
	BotID         = "B06BQ4XKJ8N"
)

// Options configures a Server. The zero value is usable.
type Options struct {
	// BotToken is the bearer token every Web API method (but apps.connections.open, which wants an xapp- app
	// token) and every download requires; default BotToken.
	BotToken string
	// MaxCalls bounds the call log to the latest calls, for long load runs; 0 keeps every call.
	MaxCalls int
	// OnCall, when set, is called with every call once the fake has decided its answer.
	OnCall func(Call)
	// Scopes are the bot token's scopes, which auth.test lists in its X-OAuth-Scopes header; nil is every scope
	// difybot asks for.
	Scopes []string
}

// DefaultScopes are the scopes the README's manifest gives the app.
var DefaultScopes = []string{"app_mentions:read", "channels:history", "groups:history", "im:history", "im:read", "chat:write",
	"files:read", "files:write", "assistant:write"}

// Upload is a file the bot uploaded: its bytes once POSTed, and where files.completeUploadExternal shared it.
type Upload struct {
	ID, Name string
	Size     int64  // As files.getUploadURLExternal was told.
	Body     []byte // nil until the bytes arrive.
	Shares   []Share
}

// Share is one files.completeUploadExternal of a file: a channel and thread.
type Share struct{ Channel, ThreadTS string }

// Call is one request the fake received.
type Call struct {
	Method string     // The Web API method, or "download" for a file.
	Form   url.Values // The method's arguments.
	Auth   string     // The Authorization header.
	Path   string
	At     time.Time     // When it arrived.
	Took   time.Duration // How long the fake took to answer.
	Status int           // The HTTP status answered.
	OK     bool          // The fake's own handler answered "ok": true (not an injected answer).
	Error  string        // Slack's error code when the fake answered "ok": false.
	TS     string        // The message posted or edited.
}

// Message is a message a channel shows: posted by chat.postMessage (or AddMessage), edited by chat.update,
// gone after chat.delete; or streamed: begun by chat.startStream, grown by chat.appendStream's markdown_text
// chunks (Text) and task_update chunks (Tasks), finished by chat.stopStream.
type Message struct {
	Channel, TS, ThreadTS, Text string
	Streaming                   bool   // chat.startStream began it and chat.stopStream has not ended it.
	Streamed                    bool   // It began as a stream.
	Blocks                      string // The blocks JSON it carries, as last set.
	Tasks                       []Task
}

// Task is a task_update chunk's card as a streamed message shows it.
type Task struct{ ID, Title, Status string }

// File is a file the fake serves. Its content is Body, or, for files too large to hold, Size bytes read from
// Open. Status, SignIn and NoScope make Slack's refusals.
type File struct {
	Name, Mimetype string
	Body           []byte
	Size           int64            // With Open: the content's length.
	Open           func() io.Reader // Streams the content when Body is nil.
	Status         int              // Non-zero: the download answers this status.
	SignIn         bool             // The download redirects to the workspace sign-in page.
	NoScope        bool             // files.info answers missing_scope.
}

func (f *File) size() int64 {
	if f.Open != nil && f.Body == nil {
		return f.Size
	}
	return int64(len(f.Body))
}

func (f *File) content() io.Reader {
	if f.Open != nil && f.Body == nil {
		return f.Open()
	}
	return strings.NewReader(string(f.Body))
}

// Server is the fake on its own httptest server. It is safe for concurrent use.
type Server struct {
	srv    *httptest.Server
	opts   Options
	seq    atomic.Int64
	served atomic.Int64 // File bytes sent.

	mu        sync.Mutex
	calls     []*Call
	msgs      map[string]*Message // By ts.
	files     map[string]*File
	uploads   map[string]*Upload
	order     []string                                    // Upload ids in the order they were asked for.
	fail      map[string]func(w http.ResponseWriter) bool // By method: answer instead of the fake.
	hold      map[string]chan struct{}                    // By method: answer only once closed.
	socketURL string
}

// NewServer starts a fake. Close it when done.
func NewServer(opts Options) *Server {
	if opts.BotToken == "" {
		opts.BotToken = BotToken
	}
	if opts.Scopes == nil {
		opts.Scopes = DefaultScopes
	}
	s := &Server{opts: opts, msgs: map[string]*Message{}, files: map[string]*File{}, uploads: map[string]*Upload{},
		fail: map[string]func(http.ResponseWriter) bool{}, hold: map[string]chan struct{}{}}
	mux := http.NewServeMux()
	for name, h := range map[string]func(c *Call) map[string]any{
		"auth.test":                             s.authTest,
		"chat.postMessage":                      s.post,
		"chat.update":                           s.update,
		"chat.delete":                           s.delete,
		"chat.postEphemeral":                    func(*Call) map[string]any { return map[string]any{"ok": true, "message_ts": s.nextTS()} },
		"chat.startStream":                      s.startStream,
		"chat.appendStream":                     s.appendStream,
		"chat.stopStream":                       s.stopStream,
		"assistant.threads.setStatus":           s.assistantCall("status"),
		"assistant.threads.setTitle":            s.assistantCall("title"),
		"assistant.threads.setSuggestedPrompts": s.assistantCall("prompts"),
		"files.info":                            s.filesInfo,
		"files.getUploadURLExternal":            s.uploadURL,
		"files.completeUploadExternal":          s.completeUpload,
		"apps.connections.open":                 s.connectionsOpen,
	} {
		mux.Handle("/api/"+name, s.method(name, h))
	}
	mux.HandleFunc("/files-pri/", s.download)
	mux.HandleFunc("POST /upload/v1/{id}", s.receiveUpload)
	s.srv = httptest.NewServer(mux)
	return s
}

// Start starts a fake that is closed when the test ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s := NewServer(opts)
	tb.Cleanup(s.Close)
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// URL is the Web API URL, ending in a slash: the adapter's APIURL, SLACK_API_URL.
func (s *Server) URL() string { return s.srv.URL + "/api/" }

// FilesURL stands for https://files.slack.com/: file URLs start with it. It is the API's host, the one host
// besides Slack's own that the adapter sends its token to.
func (s *Server) FilesURL() string { return s.srv.URL + "/" }

// FileURL is where the fake serves file id: its url_private_download.
func (s *Server) FileURL(id, name string) string {
	return s.FilesURL() + "files-pri/" + TeamID + "-" + id + "/download/" + name
}

// AddFile makes a file readable by files.info and downloadable, and returns it as a message carries it.
func (s *Server) AddFile(id string, f File) SharedFile {
	s.mu.Lock()
	s.files[id] = &f
	s.mu.Unlock()
	return SharedFile{ID: id, Name: f.Name, Mimetype: f.Mimetype, Size: f.size(), URL: s.FileURL(id, f.Name)}
}

// AddMessage makes a channel show a message posted before the test, so that chat.update and chat.delete find it.
func (s *Server) AddMessage(m Message) { s.with(func() { s.msgs[m.TS] = &m }) }

// FailWith makes method answer with fn instead of the fake when fn returns true; nil undoes it. RateLimited
// and Refuse are the usual answers.
func (s *Server) FailWith(method string, fn func(w http.ResponseWriter) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fn == nil {
		delete(s.fail, method)
		return
	}
	s.fail[method] = fn
}

// HoldAnswer makes method do its work but hold its answer until release is called (or the caller goes away), as
// when the caller crashes after Slack acted and before it heard so.
func (s *Server) HoldAnswer(method string) (release func()) {
	gate := make(chan struct{})
	s.with(func() { s.hold[method] = gate })
	var once sync.Once
	return func() {
		once.Do(func() {
			s.with(func() { delete(s.hold, method) })
			close(gate)
		})
	}
}

// SetSocketURL is the websocket URL apps.connections.open answers.
func (s *Server) SetSocketURL(u string) { s.with(func() { s.socketURL = u }) }

// with runs fn holding the fake's lock.
func (s *Server) with(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn()
}

// RateLimited answers 429 with Retry-After, as Slack does.
func RateLimited(w http.ResponseWriter) bool {
	w.Header().Set("Retry-After", "1")
	w.WriteHeader(http.StatusTooManyRequests)
	return true
}

// Refuse returns an answer of "ok": false with Slack's error code, such as invalid_auth or message_not_found.
func Refuse(code string) func(w http.ResponseWriter) bool {
	return func(w http.ResponseWriter) bool {
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": code})
		return true
	}
}

// Calls returns every call, oldest first (the latest MaxCalls when bounded).
func (s *Server) Calls() []Call { return s.callsWhere(func(*Call) bool { return true }) }

// CallsTo returns the calls of one method ("download" for files), oldest first.
func (s *Server) CallsTo(method string) []Call {
	return s.callsWhere(func(c *Call) bool { return c.Method == method })
}

// Writes returns the calls that change what a thread shows.
func (s *Server) Writes() []Call {
	return s.callsWhere(func(c *Call) bool {
		switch c.Method {
		case "chat.postMessage", "chat.update", "chat.delete", "chat.postEphemeral", "files.completeUploadExternal",
			"chat.startStream", "chat.appendStream", "chat.stopStream":
			return true
		}
		return false
	})
}

func (s *Server) callsWhere(keep func(*Call) bool) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if keep(c) {
			out = append(out, *c)
		}
	}
	return out
}

// Messages returns what the channels show now, by ts.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, 0, len(s.msgs))
	for _, m := range s.msgs {
		c := *m
		c.Tasks = slices.Clone(m.Tasks)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Message) int { return strings.Compare(a.TS, b.TS) })
	return out
}

// ServedBytes is how many file bytes the fake has sent.
func (s *Server) ServedBytes() int64 { return s.served.Load() }

func (s *Server) nextTS() string { return fmt.Sprintf("1763900000.%06d", s.seq.Add(1)) }

// begin records a call as it arrives.
func (s *Server) begin(c *Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
	if n := s.opts.MaxCalls; n > 0 && len(s.calls) > n {
		s.calls = slices.Delete(s.calls, 0, len(s.calls)-n)
	}
}

// end completes a call's record once it is answered, and tells OnCall.
func (s *Server) end(c *Call, status int) {
	s.mu.Lock()
	c.Took, c.Status = time.Since(c.At), status
	done := *c
	s.mu.Unlock()
	if s.opts.OnCall != nil {
		s.opts.OnCall(done)
	}
}

// method serves a Web API method: it records the call, applies FailWith, checks the token and answers h's
// result as JSON.
func (s *Server) method(name string, h func(c *Call) map[string]any) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c := &Call{Method: name, Form: r.PostForm, Auth: r.Header.Get("Authorization"), Path: r.URL.Path, At: time.Now()}
		s.begin(c)
		s.mu.Lock()
		fail := s.fail[name]
		s.mu.Unlock()
		if fail != nil {
			sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
			if fail(sw) {
				s.end(c, sw.status)
				return
			}
		}
		var res map[string]any
		if code := s.authorize(name, c); code != "" {
			res = map[string]any{"ok": false, "error": code}
		} else {
			res = h(c)
		}
		if name == "auth.test" && res["ok"] == true {
			w.Header().Set("X-OAuth-Scopes", strings.Join(s.opts.Scopes, ","))
		}
		s.mu.Lock()
		c.OK = res["ok"] == true
		c.Error, _ = res["error"].(string)
		s.mu.Unlock()
		s.end(c, http.StatusOK) // Before the answer, so a caller that has it finds the call complete.
		s.mu.Lock()
		gate := s.hold[name]
		s.mu.Unlock()
		if gate != nil {
			select { // Done, but not answered: the caller cannot know it was.
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		writeJSON(w, http.StatusOK, res)
	})
}

// authorize returns Slack's error for a call without the right token, or "".
func (s *Server) authorize(method string, c *Call) string {
	tok := c.Auth
	if tok == "" && c.Form.Get("token") != "" {
		tok = "Bearer " + c.Form.Get("token")
	}
	switch {
	case method == "apps.connections.open" && !strings.HasPrefix(tok, "Bearer xapp-"):
		return "not_allowed_token_type"
	case method != "apps.connections.open" && tok != "Bearer "+s.opts.BotToken:
		return "invalid_auth"
	}
	return ""
}

func (s *Server) authTest(*Call) map[string]any {
	return map[string]any{"ok": true, "url": "https://example.slack.com/", "team": "Example", "user": "difybot",
		"team_id": TeamID, "user_id": BotUserID, "bot_id": BotID, "is_enterprise_install": false}
}

func (s *Server) post(c *Call) map[string]any {
	ch, text, thread := c.Form.Get("channel"), c.Form.Get("text"), c.Form.Get("thread_ts")
	ts := s.nextTS()
	s.mu.Lock()
	s.msgs[ts] = &Message{Channel: ch, TS: ts, ThreadTS: thread, Text: text, Blocks: c.Form.Get("blocks")}
	c.TS = ts
	s.mu.Unlock()
	return map[string]any{"ok": true, "channel": ch, "ts": ts,
		"message": map[string]any{"type": "message", "text": text, "ts": ts, "thread_ts": thread, "bot_id": BotID}}
}

func (s *Server) update(c *Call) map[string]any {
	ch, ts, text := c.Form.Get("channel"), c.Form.Get("ts"), c.Form.Get("text")
	s.mu.Lock()
	defer s.mu.Unlock()
	c.TS = ts
	m := s.msgs[ts]
	if m == nil || m.Channel != ch {
		return map[string]any{"ok": false, "error": "message_not_found"}
	}
	if m.Streaming {
		return map[string]any{"ok": false, "error": "cant_update_message"} // A stream is stopped before it is edited.
	}
	m.Text, m.Blocks = text, c.Form.Get("blocks")
	return map[string]any{"ok": true, "channel": ch, "ts": ts, "text": text}
}

func (s *Server) delete(c *Call) map[string]any {
	ch, ts := c.Form.Get("channel"), c.Form.Get("ts")
	s.mu.Lock()
	defer s.mu.Unlock()
	c.TS = ts
	if m := s.msgs[ts]; m == nil || m.Channel != ch {
		return map[string]any{"ok": false, "error": "message_not_found"}
	}
	delete(s.msgs, ts)
	return map[string]any{"ok": true, "channel": ch, "ts": ts}
}

func (s *Server) connectionsOpen(*Call) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return map[string]any{"ok": true, "url": s.socketURL}
}

func (s *Server) filesInfo(c *Call) map[string]any {
	id := c.Form.Get("file")
	s.mu.Lock()
	f := s.files[id]
	up := s.uploads[id]
	var upInfo map[string]any
	if up != nil {
		upInfo = uploadInfo(up)
	}
	s.mu.Unlock()
	if upInfo != nil {
		return map[string]any{"ok": true, "file": upInfo, "comments": []any{}, "response_metadata": map[string]any{"next_cursor": ""}}
	}
	switch {
	case f == nil:
		return map[string]any{"ok": false, "error": "file_not_found"}
	case f.NoScope:
		return map[string]any{"ok": false, "error": "missing_scope", "needed": "files:read", "provided": "app_mentions:read,chat:write"}
	}
	return map[string]any{"ok": true, "file": map[string]any{
		"id": id, "name": f.Name, "title": f.Name, "mimetype": f.Mimetype, "filetype": strings.TrimPrefix(f.Mimetype, "image/"),
		"size": f.size(), "mode": "hosted", "is_external": false, "file_access": "visible",
		"url_private":          s.FilesURL() + "files-pri/" + TeamID + "-" + id + "/" + f.Name,
		"url_private_download": s.FileURL(id, f.Name),
	}, "comments": []any{}, "response_metadata": map[string]any{"next_cursor": ""}}
}

// uploadInfo is files.info's view of an uploaded file: its channels and shares once completed. Sim.mu held.
func uploadInfo(up *Upload) map[string]any {
	channels, shares := []string{}, map[string]any{}
	for _, sh := range up.Shares {
		if !slices.Contains(channels, sh.Channel) {
			channels = append(channels, sh.Channel)
		}
		shares[sh.Channel] = append(anySlice(shares[sh.Channel]), map[string]any{"ts": "1763900000.000001", "thread_ts": sh.ThreadTS})
	}
	info := map[string]any{"id": up.ID, "name": up.Name, "title": up.Name, "size": up.Size, "mode": "hosted",
		"file_access": "visible", "channels": channels, "groups": []string{}, "ims": []string{}}
	if len(shares) > 0 {
		info["shares"] = map[string]any{"public": shares}
	}
	return info
}

func anySlice(v any) []any { s, _ := v.([]any); return s }

// uploadURL answers files.getUploadURLExternal: an upload URL on the fake's own host (the adapter sends its
// token only there or to Slack) and the file's id.
func (s *Server) uploadURL(c *Call) map[string]any {
	name, length := c.Form.Get("filename"), c.Form.Get("length")
	size, err := strconv.ParseInt(length, 10, 64)
	if name == "" || err != nil || size <= 0 {
		return map[string]any{"ok": false, "error": "invalid_arguments"}
	}
	id := fmt.Sprintf("FUP%06d", s.seq.Add(1))
	s.mu.Lock()
	s.uploads[id] = &Upload{ID: id, Name: name, Size: size}
	s.order = append(s.order, id)
	s.mu.Unlock()
	return map[string]any{"ok": true, "upload_url": s.srv.URL + "/upload/v1/" + id, "file_id": id}
}

// receiveUpload takes the bytes POSTed to an upload URL, as multipart "file" (slack-go's form) or the raw body.
func (s *Server) receiveUpload(w http.ResponseWriter, r *http.Request) {
	c := &Call{Method: "upload", Auth: r.Header.Get("Authorization"), Path: r.URL.Path, At: time.Now()}
	s.begin(c)
	status := http.StatusOK
	defer func() { s.end(c, status) }()
	var body []byte
	var err error
	if f, _, ferr := r.FormFile("file"); ferr == nil {
		body, err = io.ReadAll(f)
	} else {
		body, err = io.ReadAll(r.Body)
	}
	id := r.PathValue("id")
	s.mu.Lock()
	up := s.uploads[id]
	if up != nil && err == nil {
		up.Body = body
		c.OK = true
	}
	s.mu.Unlock()
	if up == nil || err != nil {
		status = http.StatusNotFound
		http.NotFound(w, r)
		return
	}
	io.WriteString(w, "OK - "+strconv.Itoa(len(body)))
}

// completeUpload answers files.completeUploadExternal: every file must have its bytes; each is shared in the
// channel (and thread). Completing a file again shares it again, as a second message would: tests count
// Shares to prove nothing was sent twice.
func (s *Server) completeUpload(c *Call) map[string]any {
	var files []struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	}
	if err := json.Unmarshal([]byte(c.Form.Get("files")), &files); err != nil || len(files) == 0 {
		return map[string]any{"ok": false, "error": "invalid_arguments"}
	}
	ch, thread := c.Form.Get("channel_id"), c.Form.Get("thread_ts")
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range files {
		if up := s.uploads[f.ID]; up == nil || up.Body == nil {
			return map[string]any{"ok": false, "error": "file_not_found"}
		}
	}
	var out []map[string]any
	for _, f := range files {
		up := s.uploads[f.ID]
		if ch != "" {
			up.Shares = append(up.Shares, Share{Channel: ch, ThreadTS: thread})
		}
		out = append(out, map[string]any{"id": f.ID, "title": f.Title})
	}
	return map[string]any{"ok": true, "files": out}
}

// Uploads returns the files uploaded, in the order their upload URLs were asked for.
func (s *Server) Uploads() []Upload {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Upload
	for _, id := range s.order {
		up := *s.uploads[id]
		up.Body = slices.Clone(up.Body)
		up.Shares = slices.Clone(up.Shares)
		out = append(out, up)
	}
	return out
}

// download serves /files-pri/{team}-{id}/download/{name} the way files.slack.com does, and its sign-in page.
func (s *Server) download(w http.ResponseWriter, r *http.Request) {
	c := &Call{Method: "download", Auth: r.Header.Get("Authorization"), Path: r.URL.Path, At: time.Now()}
	s.begin(c)
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	defer func() { s.end(c, sw.status) }()
	if r.URL.Path == "/files-pri/signin" {
		sw.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(sw, "<!DOCTYPE html><html><head><title>Slack</title></head><body>Sign in to your workspace</body></html>")
		return
	}
	seg, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/files-pri/"), "/")
	s.mu.Lock()
	f := s.files[strings.TrimPrefix(seg, TeamID+"-")]
	s.mu.Unlock()
	switch {
	case f == nil || c.Auth != "Bearer "+s.opts.BotToken:
		http.NotFound(sw, r)
	case f.Status != 0:
		sw.WriteHeader(f.Status)
	case f.SignIn:
		http.Redirect(sw, r, "/files-pri/signin?redir="+url.QueryEscape(r.URL.Path), http.StatusFound)
	default:
		sw.Header().Set("Content-Type", f.Mimetype)
		sw.Header().Set("Content-Length", strconv.FormatInt(f.size(), 10))
		n, _ := io.Copy(sw, f.content())
		s.served.Add(n)
		s.mu.Lock()
		c.OK = true
		s.mu.Unlock()
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// statusWriter remembers the status answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
