package loadtest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/difybot/difybot/dify/difytest"
)

// Sim is difytest's simulator on its own server, with a meter in front that attributes every request to the
// Dify user it is for (the user field of runs and uploads) and counts, per user, the workflow runs that
// started (a response that carried workflow_started) and the time Dify spent answering.
type Sim struct {
	*difytest.Sim
	srv *httptest.Server

	streaming atomic.Int64 // Run responses in progress that have carried workflow_started.

	mu    sync.Mutex
	users map[string]*SimUser
}

// Streaming is how many workflow runs are being streamed right now after workflow_started: a crash now
// lands after Dify started work.
func (s *Sim) Streaming() int { return int(s.streaming.Load()) }

// SimUser is what one Dify user cost and got.
type SimUser struct {
	Started int           // Workflow runs that began (workflow_started was sent).
	Posts   int           // POST /v1/workflows/run requests.
	Busy    time.Duration // Time spent answering this user's requests, streams included.
	// FirstText is when the first text_chunk with answer text (after any <think> block) was written to the
	// user's first run; zero when none was.
	FirstText time.Time
}

// NewSim starts a simulator with opts. Close it when done.
func NewSim(opts difytest.Options) *Sim {
	s := &Sim{Sim: difytest.NewHandler(opts), users: map[string]*SimUser{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.meter))
	return s
}

// URL is DIFY_BASE_URL.
func (s *Sim) URL() string { return s.srv.URL + "/v1" }

// Close stops the runs in flight and the server.
func (s *Sim) Close() {
	s.Sim.Close()
	s.srv.Close()
}

// Users returns a copy of the per-user counts.
func (s *Sim) Users() map[string]SimUser {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]SimUser, len(s.users))
	for k, v := range s.users {
		out[k] = *v
	}
	return out
}

var multipartUser = regexp.MustCompile(`name="user"\r\n\r\n([^\r\n]*)\r\n`)

func (s *Sim) meter(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	head := &headBuffer{max: 2048}
	run := r.Method == http.MethodPost && r.URL.Path == "/v1/workflows/run"
	if r.Body != nil {
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.TeeReader(r.Body, head), r.Body}
	}
	rw := &startWatcher{ResponseWriter: w, now: time.Now}
	if run {
		rw.onStart = func() { s.streaming.Add(1) }
	}
	// Deferred: the simulator cuts streams by panicking with http.ErrAbortHandler.
	defer s.account(r, head, rw, run, start)
	s.Sim.ServeHTTP(rw, r)
}

func (s *Sim) account(r *http.Request, head *headBuffer, rw *startWatcher, run bool, start time.Time) {
	if run && rw.started {
		s.streaming.Add(-1)
	}
	var user string
	if m := multipartUser.FindSubmatch(head.b); m != nil {
		user = string(m[1])
	} else if bytes.HasPrefix(bytes.TrimSpace(head.b), []byte("{")) {
		var v struct {
			User string `json:"user"`
		}
		json.Unmarshal(head.b, &v) // A body longer than the head fails here; run bodies are short.
		user = v.User
	}
	if user == "" {
		user = r.URL.Query().Get("user")
	}
	if user == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[user]
	if u == nil {
		u = &SimUser{}
		s.users[user] = u
	}
	u.Busy += time.Since(start)
	if u.FirstText.IsZero() {
		u.FirstText = rw.firstText
	}
	if run {
		u.Posts++
		if rw.started {
			u.Started++
		}
	}
}

// headBuffer keeps the first max bytes written to it.
type headBuffer struct {
	b   []byte
	max int
}

func (h *headBuffer) Write(p []byte) (int, error) {
	if n := h.max - len(h.b); n > 0 {
		h.b = append(h.b, p[:min(n, len(p))]...)
	}
	return len(p), nil
}

// startWatcher notices workflow_started in a response, streaming or blocking, and when the answer's text began:
// the first text_chunk event, or the one that closes the reasoning before it.
type startWatcher struct {
	http.ResponseWriter
	tail      []byte
	started   bool
	onStart   func()
	now       func() time.Time
	thinking  bool
	firstText time.Time
}

var (
	textChunk  = []byte(`"text_chunk"`)
	thinkOpens = [][]byte{[]byte("<think>"), []byte(`\u003cthink\u003e`)}
	thinkEnds  = [][]byte{[]byte("</think>"), []byte(`\u003c/think\u003e`)}
)

func containsAny(p []byte, marks [][]byte) bool {
	for _, m := range marks {
		if bytes.Contains(p, m) {
			return true
		}
	}
	return false
}

var startedMarks = [][]byte{[]byte(`workflow_started"`), []byte(`"workflow_run_id"`)}

func (s *startWatcher) Write(p []byte) (int, error) {
	if s.firstText.IsZero() && bytes.Contains(p, textChunk) {
		s.thinking = s.thinking || containsAny(p, thinkOpens)
		if containsAny(p, thinkEnds) || !s.thinking {
			s.firstText = s.now() // The events are written one at a time: this one carries the answer's first words.
			s.thinking = false
		}
	}
	if !s.started {
		buf := append(s.tail, p...)
		for _, m := range startedMarks {
			if !s.started && bytes.Contains(buf, m) {
				s.started = true
				if s.onStart != nil {
					s.onStart()
				}
			}
		}
		s.tail = append(s.tail[:0], buf[max(0, len(buf)-32):]...)
	}
	return s.ResponseWriter.Write(p)
}

func (s *startWatcher) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *startWatcher) Unwrap() http.ResponseWriter { return s.ResponseWriter }
