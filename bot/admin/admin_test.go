package admin

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/store"
	"github.com/difybot/difybot/dify"
	"github.com/rs/zerolog"
)

const adminTestToken = "admin-test-token-7f3a9c2e51d8"

// Secrets planted where a careless view would pick them up: in adapter fields of the message, in adapter state,
// in raw errors and in replies. None may leave through the admin API.
const (
	leakReplyToken = "LEAK-reply-token-5b1e0c"
	leakFileURL    = "LEAK-file-url-token-93ad21"
	leakExtra      = "LEAK-extra-secret-0f4c77"
	leakState      = "LEAK-state-secret-c81e9d"
	leakText       = "LEAK-message-text-6a2b10"
	leakDifyKey    = "app-LEAKdifykey8c4f1e2d"    // In a raw step error: only Redact can catch it.
	leakSlackToken = "xoxb-LEAK-slack-4d5e6f7a8b" // In a diagnosis detail.
)

var adminLeaks = []string{adminTestToken, leakReplyToken, leakFileURL, leakExtra, leakState, leakText, leakDifyKey, leakSlackToken}

// adminEnv is the admin handler over a real SQLite store and a real breaker. Every response it sees is kept,
// so the secrets test can search all of them.
type adminEnv struct {
	store   *store.Store
	breaker *dify.Breaker
	handler http.Handler
	now     time.Time

	mu        sync.Mutex
	exchanges []adminExchange
}

// adminExchange is one request (without its headers, which hold the token) and the whole response.
type adminExchange struct{ request, response string }

// newAdminEnv builds the handler; edit, when given, changes its Config first (About, OpenFile).
func newAdminEnv(t *testing.T, extra map[string]http.Handler, edit ...func(*Config)) *adminEnv {
	t.Helper()
	st, err := store.Open(t.Context(), store.Config{SQLitePath: filepath.Join(t.TempDir(), "admin.db"), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &adminEnv{store: st, breaker: dify.NewBreaker(dify.BreakerConfig{}, zerolog.Nop()),
		now: time.Date(2025, 6, 1, 9, 30, 0, 0, time.UTC)}
	cfg := Config{Token: adminTestToken, Store: st, Breaker: e.breaker, Logger: zerolog.Nop(),
		Now: func() time.Time { return e.now }, Extra: extra, Redact: []string{leakDifyKey, leakSlackToken}}
	for _, f := range edit {
		f(&cfg)
	}
	e.handler = mustNew(t, cfg)
	return e
}

func mustNew(t *testing.T, cfg Config) http.Handler {
	t.Helper()
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// do sends one request with the given Authorization header ("" for none).
func (e *adminEnv) do(t *testing.T, method, target, auth, body string) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd) // RemoteAddr is 192.0.2.1:1234.
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	e.mu.Lock()
	e.exchanges = append(e.exchanges, adminExchange{request: method + " " + target + "\n" + body,
		response: fmt.Sprintf("%d %v\n%s", rec.Code, rec.Header(), rec.Body)})
	e.mu.Unlock()
	return rec
}

// api sends an authorised request and decodes the JSON answer into out, failing unless the status is want.
func (e *adminEnv) api(t *testing.T, method, target, body string, want int, out any) {
	t.Helper()
	rec := e.do(t, method, target, "Bearer "+adminTestToken, body)
	if rec.Code != want {
		t.Fatalf("%s %s = %d, want %d: %s", method, target, rec.Code, want, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s %s: Content-Type %q", method, target, ct)
	}
	if out != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, target, err, rec.Body)
		}
	}
}

func errorOf(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
		t.Fatalf("want a JSON {\"error\":…}, got %d %q", rec.Code, rec.Body)
	}
	return e.Error
}

type seedRun struct {
	platform string
	status   bot.RunStatus
	code     bot.Code
}

// seed stores runs in order (so the last is the newest), each finished as given, with steps and node events
// on the failed ones, and secrets planted in the adapter's fields.
func (e *adminEnv) seed(t *testing.T, runs []seedRun) []bot.Run {
	t.Helper()
	ctx := t.Context()
	var out []bot.Run
	for i, s := range runs {
		m := bot.Message{Platform: s.platform, EventID: fmt.Sprintf("ev-%d", i), ChatID: "C1", UserID: "U1",
			Text: leakText, ReplyToken: leakReplyToken, ReceivedAt: time.Now().UTC(),
			Files: []bot.File{{ID: "F1", Name: "cat.png", MIMEType: "image/png", Size: 2048, URL: "https://files.example/cat.png?t=" + leakFileURL}},
			Extra: map[string]string{"secret": leakExtra}}
		r, _, err := e.store.Enqueue(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		r.Status, r.State = s.status, map[string]string{"ts": leakState}
		if s.status == bot.RunSucceeded || s.status == bot.RunFailed {
			r.FinishedAt = r.CreatedAt.Add(1500 * time.Millisecond)
			r.Reply = fmt.Sprintf("answer %d:   a long\nreply %s", i, strings.Repeat("x", 300))
		}
		if s.code != "" {
			d := bot.Diagnose(bot.Classified(s.code, "run", fmt.Errorf("upstream said token=%s", leakSlackToken)))
			r.Code, r.Diagnosis = d.Code, &d
			r.DifyRunID, r.DifyTaskID = "wr-"+r.ID, "task-"+r.ID
		}
		if err := e.store.SaveRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		if s.code != "" {
			e.addTimeline(t, r)
		}
		out = append(out, r)
	}
	return out
}

// addTimeline stores a failed image run's steps and its workflow nodes, one of which ran twice.
func (e *adminEnv) addTimeline(t *testing.T, r bot.Run) {
	t.Helper()
	start := r.CreatedAt
	names := []string{"receive", "enqueue", "fetch", "check", "upload", "run"}
	for i, name := range names {
		s := bot.Step{RunID: r.ID, Attempt: 1, N: i + 1, Of: 8, Name: name, Status: "done", Start: start,
			Duration: time.Duration(i) * 1250 * time.Microsecond}
		if name == "upload" {
			s.Fields = map[string]any{"file_id": "file-1"}
		}
		if name == "run" {
			s.Status, s.Code, s.Error = "failed", r.Code, "dify: POST /v1/workflows/run with key "+leakDifyKey+": 429"
		}
		if err := e.store.AddStep(t.Context(), s); err != nil {
			t.Fatal(err)
		}
	}
	events := []bot.NodeEvent{
		{Event: "node_started", NodeID: "start", NodeType: "start", Title: "Start", Index: 1},
		{Event: "node_finished", NodeID: "start", NodeType: "start", Title: "Start", Index: 1, Status: "succeeded", Elapsed: 0.01},
		{Event: "node_started", NodeID: "llm", NodeType: "llm", Title: "Describe", Index: 2},
		{Event: "node_finished", NodeID: "llm", NodeType: "llm", Title: "Describe", Index: 2, Status: "succeeded", Elapsed: 1.5},
		{Event: "node_started", NodeID: "llm", NodeType: "llm", Title: "Describe", Index: 3},
		{Event: "node_finished", NodeID: "llm", NodeType: "llm", Title: "Describe", Index: 3, Status: "failed", Elapsed: 0.2, Error: "rate limit"},
		{Event: "node_started", NodeID: "end", NodeType: "end", Title: "End", Index: 4},
	}
	for i, ev := range events {
		ev.RunID, ev.Seq, ev.At = r.ID, i+1, start.Add(time.Duration(i)*time.Second)
		if err := e.store.AddNodeEvents(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAdminRequiresToken(t *testing.T) {
	extra := map[string]http.Handler{"/admin/sim/scenario": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"scenario":"ok","scenarios":[]}`)
	})}
	e := newAdminEnv(t, extra)
	routes := []struct{ method, path, body string }{
		{"GET", "/admin/runs", ""},
		{"GET", "/admin/runs?status=failed", ""},
		{"GET", "/admin/runs/r_0123", ""},
		{"GET", "/admin/breaker", ""},
		{"PUT", "/admin/breaker", `{"mode":"open","reason":"intruder"}`},
		{"GET", "/admin/sim/scenario", ""},
		{"PUT", "/admin/sim/scenario", `{"scenario":"rate_limited"}`},
		{"GET", "/admin/no-such-route", ""},
		{"DELETE", "/admin/breaker", ""},
	}
	auths := []struct{ name, header, problem string }{
		{"missing", "", "missing"},
		{"empty bearer", "Bearer ", "missing"},
		{"other scheme", "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+adminTestToken)), "missing"},
		{"token without scheme", adminTestToken, "missing"},
		{"wrong", "Bearer not-the-token", "wrong"},
		{"prefix of the token", "Bearer " + adminTestToken[:len(adminTestToken)-1], "wrong"},
		{"token plus a suffix", "Bearer " + adminTestToken + "x", "wrong"},
		{"different case", "Bearer " + strings.ToUpper(adminTestToken), "wrong"},
	}
	for _, rt := range routes {
		for _, a := range auths {
			t.Run(rt.method+" "+rt.path+"/"+a.name, func(t *testing.T) {
				rec := e.do(t, rt.method, rt.path, a.header, rt.body)
				if rec.Code != http.StatusUnauthorized {
					t.Fatalf("status %d, want 401: %s", rec.Code, rec.Body)
				}
				if ch := rec.Header().Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Bearer") {
					t.Errorf("WWW-Authenticate = %q", ch)
				}
				if msg := errorOf(t, rec); !strings.Contains(msg, a.problem) {
					t.Errorf("error %q does not say the token is %s", msg, a.problem)
				}
			})
		}
	}
	// The refused PUT changed nothing.
	if hist, _ := e.store.BreakerHistory(t.Context(), 10); len(hist) != 0 || e.breaker.Mode() != dify.ModeAuto {
		t.Errorf("a refused PUT switched the breaker: mode %s, history %v", e.breaker.Mode(), hist)
	}

	// The right token, with the scheme in any case, gets through to every route.
	for _, rt := range routes {
		rec := e.do(t, rt.method, rt.path, "bearer "+adminTestToken, rt.body)
		if rec.Code == http.StatusUnauthorized {
			t.Errorf("%s %s refused the right token", rt.method, rt.path)
		}
	}

	// The page holds no data and is served without the token.
	rec := e.do(t, "GET", "/admin/", "", "")
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Errorf("GET /admin/ without a token = %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
}

func TestAdminDisabledWithoutToken(t *testing.T) {
	h := mustNew(t, Config{}) // No token: no Store or Breaker is needed either.
	for _, target := range []string{"/admin/", "/admin/runs", "/admin/runs/r_1", "/admin/breaker", "/admin/sim/scenario"} {
		for _, auth := range []string{"", "Bearer ", "Bearer anything"} {
			req := httptest.NewRequest("GET", target, nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusNotFound {
				t.Errorf("GET %s (%q) = %d, want 404", target, auth, rec.Code)
			}
		}
	}
	req := httptest.NewRequest("PUT", "/admin/breaker", strings.NewReader(`{"mode":"open","reason":"x"}`))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotFound {
		t.Errorf("PUT /admin/breaker = %d, want 404", rec.Code)
	}
}

type adminList struct {
	Runs []runSummary `json:"runs"`
	Next string       `json:"next"`
}

func ids(runs []runSummary) []string {
	out := make([]string, len(runs))
	for i, r := range runs {
		out[i] = r.ID
	}
	return out
}

// newestFirst returns the ids of runs that pass keep, newest first.
func newestFirst(runs []bot.Run, keep func(bot.Run) bool) []string {
	var out []string
	for i := len(runs) - 1; i >= 0; i-- {
		if keep(runs[i]) {
			out = append(out, runs[i].ID)
		}
	}
	return out
}

func TestAdminListRuns(t *testing.T) {
	e := newAdminEnv(t, nil)
	runs := e.seed(t, []seedRun{
		{"slack", bot.RunSucceeded, ""},
		{"line", bot.RunFailed, bot.CodeDifyRateLimited},
		{"slack", bot.RunFailed, bot.CodeDifyAuthInvalid},
		{"web", bot.RunHeld, ""},
		{"line", bot.RunSucceeded, ""},
		{"slack", bot.RunFailed, bot.CodeDifyRateLimited},
		{"slack", bot.RunQueued, ""},
	})
	all := func(bot.Run) bool { return true }

	filters := []struct {
		query string
		keep  func(bot.Run) bool
	}{
		{"", all},
		{"?status=failed", func(r bot.Run) bool { return r.Status == bot.RunFailed }},
		{"?platform=slack", func(r bot.Run) bool { return r.Platform == "slack" }},
		{"?code=dify_rate_limited", func(r bot.Run) bool { return r.Code == bot.CodeDifyRateLimited }},
		{"?status=failed&platform=slack&code=dify_rate_limited", func(r bot.Run) bool {
			return r.Status == bot.RunFailed && r.Platform == "slack" && r.Code == bot.CodeDifyRateLimited
		}},
		{"?status=held", func(r bot.Run) bool { return r.Status == bot.RunHeld }},
		{"?platform=cli", func(bot.Run) bool { return false }},
	}
	for _, f := range filters {
		t.Run("filter"+f.query, func(t *testing.T) {
			var got adminList
			e.api(t, "GET", "/admin/runs"+f.query, "", http.StatusOK, &got)
			want := newestFirst(runs, f.keep)
			if !slices.Equal(ids(got.Runs), want) {
				t.Errorf("runs = %v, want %v", ids(got.Runs), want)
			}
			if got.Runs == nil {
				t.Error(`"runs" is null; want [] so clients can iterate`)
			}
			if got.Next != "" {
				t.Errorf("next = %q on the only page", got.Next)
			}
		})

		// Walking the same filter two runs at a time visits every run once, in order.
		t.Run("cursor"+f.query, func(t *testing.T) {
			var seen []string
			next, pages := "", 0
			for {
				q := url.Values{"limit": {"2"}}
				if next != "" {
					q.Set("before", next)
				}
				target := "/admin/runs?" + q.Encode()
				if f.query != "" {
					target += "&" + strings.TrimPrefix(f.query, "?")
				}
				var page adminList
				e.api(t, "GET", target, "", http.StatusOK, &page)
				if len(page.Runs) > 2 {
					t.Fatalf("page of %d runs with limit 2", len(page.Runs))
				}
				seen = append(seen, ids(page.Runs)...)
				if pages++; page.Next == "" || pages > 10 {
					break
				}
				if page.Next != page.Runs[len(page.Runs)-1].ID {
					t.Errorf("next = %q, want the last run's id %q", page.Next, page.Runs[len(page.Runs)-1].ID)
				}
				next = page.Next
			}
			if want := newestFirst(runs, f.keep); !slices.Equal(seen, want) {
				t.Errorf("pages visited %v, want %v", seen, want)
			}
		})
	}

	t.Run("summary fields", func(t *testing.T) {
		var got adminList
		e.api(t, "GET", "/admin/runs?code=dify_auth_invalid", "", http.StatusOK, &got)
		if len(got.Runs) != 1 {
			t.Fatalf("runs = %v", got.Runs)
		}
		s := got.Runs[0]
		if s.Platform != "slack" || s.Status != bot.RunFailed || s.Code != bot.CodeDifyAuthInvalid || s.Summary == "" ||
			s.Attempt != 1 || s.Files != 1 || s.DurationMS != 1500 || s.CreatedAt.IsZero() || s.FinishedAt.IsZero() {
			t.Errorf("summary = %+v", s)
		}
		if n := len([]rune(s.ReplyExcerpt)); n != 140 || strings.ContainsAny(s.ReplyExcerpt, "\n") ||
			!strings.HasPrefix(s.ReplyExcerpt, "answer 2: a long reply ") {
			t.Errorf("excerpt (%d runes) = %q; want 140 runes on one line", n, s.ReplyExcerpt)
		}
	})

	t.Run("before a time", func(t *testing.T) {
		var got adminList
		cut := runs[3].CreatedAt // Strictly before the fourth run: the first three.
		for _, v := range []string{cut.Format(time.RFC3339Nano), cut.In(time.FixedZone("JST", 9*3600)).Format(time.RFC3339Nano)} {
			e.api(t, "GET", "/admin/runs?before="+url.QueryEscape(v), "", http.StatusOK, &got)
			if want := []string{runs[2].ID, runs[1].ID, runs[0].ID}; !slices.Equal(ids(got.Runs), want) {
				t.Errorf("before=%s: %v, want %v", v, ids(got.Runs), want)
			}
		}
		// An unescaped "+" in the offset arrives as a space and still works.
		v := cut.In(time.FixedZone("JST", 9*3600)).Format(time.RFC3339Nano)
		e.api(t, "GET", "/admin/runs?before="+v, "", http.StatusOK, &got)
		if len(got.Runs) != 3 {
			t.Errorf("before=%s (unescaped): %d runs, want 3", v, len(got.Runs))
		}
	})

	bad := []struct{ query, want string }{
		{"?status=done", `unknown status "done"`},
		{"?platform=Sl%20ack", "not a platform name"},
		{"?code=dify_nope", `unknown diagnosis code "dify_nope"`},
		{"?limit=0", "limit must be a whole number from 1 to 200"},
		{"?limit=201", "limit must be"},
		{"?limit=ten", "limit must be"},
		{"?before=yesterday", "neither an RFC 3339 time nor a run id"},
		{"?before=r_00000000000000000000000000", "neither an RFC 3339 time nor a run id"},
		{"?stauts=failed", `unknown parameter "stauts"`},
		{"?status=failed&status=held", `"status" is given 2 times`},
	}
	for _, b := range bad {
		t.Run("bad"+b.query, func(t *testing.T) {
			rec := e.do(t, "GET", "/admin/runs"+b.query, "Bearer "+adminTestToken, "")
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", rec.Code, rec.Body)
			}
			if msg := errorOf(t, rec); !strings.Contains(msg, b.want) {
				t.Errorf("error %q, want it to contain %q", msg, b.want)
			}
		})
	}
}

// tieStore lists runs that share one creation instant, which the real store almost never produces, to show
// that the cursor neither skips nor repeats them. It implements only what the list uses.
type tieStore struct {
	Store
	runs  []bot.Run // Newest first, as the store orders them: created_at, then id, descending.
	calls int
}

func (s *tieStore) Run(_ context.Context, id string) (bot.Run, error) {
	for _, r := range s.runs {
		if r.ID == id {
			return r, nil
		}
	}
	return bot.Run{}, bot.ErrNotFound
}

func (s *tieStore) ListRuns(_ context.Context, f bot.RunFilter) ([]bot.Run, error) {
	s.calls++
	limit := min(f.Limit, 500)
	var out []bot.Run
	for _, r := range s.runs {
		if (f.Before.IsZero() || r.CreatedAt.Before(f.Before)) && len(out) < limit {
			out = append(out, r)
		}
	}
	return out, nil
}

func TestAdminCursorTies(t *testing.T) {
	at := time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC)
	for _, n := range []int{7, 40} { // 40 ties overflow the first query's slack and need a second one.
		st := &tieStore{}
		for i := range n {
			st.runs = append(st.runs, bot.Run{ID: fmt.Sprintf("r_%03d", i), Platform: "web", Status: bot.RunSucceeded, CreatedAt: at})
		}
		st.runs = append(st.runs, bot.Run{ID: "r_older", Platform: "web", Status: bot.RunSucceeded, CreatedAt: at.Add(-time.Second)})
		sort.SliceStable(st.runs, func(i, j int) bool {
			a, b := st.runs[i], st.runs[j]
			if !a.CreatedAt.Equal(b.CreatedAt) {
				return a.CreatedAt.After(b.CreatedAt)
			}
			return a.ID > b.ID
		})
		h := mustNew(t, Config{Token: adminTestToken, Store: st, Breaker: dify.NewBreaker(dify.BreakerConfig{}, zerolog.Nop())})
		var seen []string
		next := ""
		for range 100 {
			target := "/admin/runs?limit=3"
			if next != "" {
				target += "&before=" + next
			}
			req := httptest.NewRequest("GET", target, nil)
			req.Header.Set("Authorization", "Bearer "+adminTestToken)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			var page adminList
			if err := json.Unmarshal(rec.Body.Bytes(), &page); rec.Code != 200 || err != nil {
				t.Fatalf("%s: %d %s", target, rec.Code, rec.Body)
			}
			seen = append(seen, ids(page.Runs)...)
			if next = page.Next; next == "" {
				break
			}
		}
		var want []string
		for _, r := range st.runs {
			want = append(want, r.ID)
		}
		if !slices.Equal(seen, want) {
			t.Errorf("%d ties: visited %v, want %v", n, seen, want)
		}
	}
}

type adminDetail struct {
	Run struct {
		runSummary
		EventID    string `json:"event_id"`
		DifyRunID  string `json:"dify_run_id"`
		DifyTaskID string `json:"dify_task_id"`
		Reply      string `json:"reply"`
		Message    struct {
			ChatID    string `json:"chat_id"`
			UserID    string `json:"user_id"`
			TextChars int    `json:"text_chars"`
			Files     []struct {
				ID       string `json:"id"`
				Name     string `json:"name"`
				MIMEType string `json:"mime_type"`
				Size     int64  `json:"size"`
			} `json:"files"`
		} `json:"message"`
	} `json:"run"`
	Steps      []stepView      `json:"steps"`
	Nodes      []nodeView      `json:"nodes"`
	NodeEvents []bot.NodeEvent `json:"node_events"`
	Diagnosis  *bot.Diagnosis  `json:"diagnosis"`
}

func TestAdminRunDetail(t *testing.T) {
	e := newAdminEnv(t, nil)
	runs := e.seed(t, []seedRun{{"line", bot.RunFailed, bot.CodeDifyRateLimited}, {"slack", bot.RunRunning, ""}})
	failed, running := runs[0], runs[1]

	var d adminDetail
	e.api(t, "GET", "/admin/runs/"+failed.ID, "", http.StatusOK, &d)
	r := d.Run
	if r.ID != failed.ID || r.Platform != "line" || r.Status != bot.RunFailed || r.Code != bot.CodeDifyRateLimited ||
		r.DifyRunID != "wr-"+failed.ID || r.DifyTaskID != "task-"+failed.ID || r.EventID != "ev-0" || r.Reply == "" {
		t.Errorf("run = %+v", r)
	}
	m := r.Message
	if m.ChatID != "C1" || m.UserID != "U1" || m.TextChars != len(leakText) || len(m.Files) != 1 ||
		m.Files[0].ID != "F1" || m.Files[0].Name != "cat.png" || m.Files[0].MIMEType != "image/png" || m.Files[0].Size != 2048 {
		t.Errorf("message = %+v", m)
	}

	var labels []string
	for _, s := range d.Steps {
		labels = append(labels, fmt.Sprintf("%s %s %s %.2f", s.Label, s.Name, s.Status, s.DurationMS))
	}
	wantSteps := []string{"[1/8] receive done 0.00", "[2/8] enqueue done 1.25", "[3/8] fetch done 2.50",
		"[4/8] check done 3.75", "[5/8] upload done 5.00", "[6/8] run failed 6.25"}
	if !slices.Equal(labels, wantSteps) {
		t.Errorf("steps = %q, want %q", labels, wantSteps)
	}
	if last := d.Steps[len(d.Steps)-1]; last.Code != bot.CodeDifyRateLimited || last.Error == "" || last.Attempt != 1 {
		t.Errorf("failed step = %+v", last)
	}
	if d.Steps[4].Fields["file_id"] != "file-1" {
		t.Errorf("upload fields = %v", d.Steps[4].Fields)
	}

	var nodes []string
	for _, n := range d.Nodes {
		nodes = append(nodes, fmt.Sprintf("%s/%s/%d %s %.2f %s", n.Title, n.NodeType, n.Index, n.Status, n.ElapsedS, n.Error))
	}
	wantNodes := []string{"Start/start/1 succeeded 0.01 ", "Describe/llm/2 succeeded 1.50 ", "Describe/llm/3 failed 0.20 rate limit",
		"End/end/4 unfinished 0.00 "}
	if !slices.Equal(nodes, wantNodes) {
		t.Errorf("nodes = %q, want %q", nodes, wantNodes)
	}
	if len(d.NodeEvents) != 7 || d.NodeEvents[0].Event != "node_started" || d.NodeEvents[6].Title != "End" {
		t.Errorf("node events = %+v", d.NodeEvents)
	}

	dg := d.Diagnosis
	if dg == nil || dg.Code != bot.CodeDifyRateLimited || dg.Summary == "" || len(dg.Causes) == 0 || len(dg.Checks) == 0 {
		t.Fatalf("diagnosis = %+v", dg)
	}
	if strings.Contains(dg.Detail, leakSlackToken) || !strings.Contains(dg.Detail, "[redacted]") {
		t.Errorf("detail = %q; want the planted token redacted", dg.Detail)
	}

	// A run in flight: no diagnosis, empty lists rather than nulls.
	rec := e.do(t, "GET", "/admin/runs/"+running.ID, "Bearer "+adminTestToken, "")
	if rec.Code != 200 {
		t.Fatalf("running run: %d %s", rec.Code, rec.Body)
	}
	for _, want := range []string{`"steps":[]`, `"nodes":[]`, `"node_events":[]`, `"diagnosis":null`, `"files":[{`} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("running run's detail lacks %s: %s", want, rec.Body)
		}
	}

	for _, id := range []string{"r_00000000000000000000000000", "nope", strings.Repeat("x", 500)} {
		rec := e.do(t, "GET", "/admin/runs/"+id, "Bearer "+adminTestToken, "")
		if rec.Code != http.StatusNotFound {
			t.Errorf("unknown run %.20s: %d, want 404", id, rec.Code)
		}
		if msg := errorOf(t, rec); !strings.HasPrefix(msg, "no run ") || len(msg) > 100 {
			t.Errorf("unknown run error = %q", msg)
		}
	}
}

type adminBreaker struct {
	Mode        string               `json:"mode"`
	AppliedMode string               `json:"applied_mode"`
	State       string               `json:"state"`
	AutoState   string               `json:"auto_state"`
	Since       time.Time            `json:"since"`
	Counts      map[string]int       `json:"counts"`
	LastChange  *bot.BreakerSetting  `json:"last_change"`
	History     []bot.BreakerSetting `json:"history"`
}

func TestAdminBreaker(t *testing.T) {
	e := newAdminEnv(t, nil)

	var b adminBreaker
	e.api(t, "GET", "/admin/breaker", "", http.StatusOK, &b)
	if b.Mode != "auto" || b.AppliedMode != "auto" || b.State != "closed" || b.AutoState != "closed" || b.Since.IsZero() ||
		b.LastChange != nil || b.History == nil || len(b.History) != 0 {
		t.Errorf("initial breaker = %+v", b)
	}
	for _, k := range []string{"requests", "failures", "successes"} {
		if _, ok := b.Counts[k]; !ok {
			t.Errorf("counts lack %q: %v", k, b.Counts)
		}
	}

	bad := []struct{ name, body, want string }{
		{"empty body", "", "body is empty"},
		{"not JSON", "mode=open", "not JSON"},
		{"truncated", `{"mode":"open"`, "ends early"},
		{"array", `["open"]`, "want a JSON object"},
		{"mode not a string", `{"mode":1,"reason":"x"}`, "mode must be a string"},
		{"unknown field", `{"mode":"open","reason":"x","actor":"root"}`, `unknown field "actor"`},
		{"two objects", `{"mode":"open","reason":"x"} {}`, "data after the JSON object"},
		{"missing mode", `{"reason":"upgrade"}`, "mode is required"},
		{"unknown mode", `{"mode":"half-open","reason":"upgrade"}`, `unknown mode "half-open"`},
		{"missing reason", `{"mode":"open"}`, "reason is required"},
		{"blank reason", `{"mode":"open","reason":"  \t "}`, "reason is required"},
		{"long reason", `{"mode":"open","reason":"` + strings.Repeat("あ", 501) + `"}`, "at most 500"},
		{"control characters", `{"mode":"open","reason":"a\u001b[31mred"}`, "control characters"},
		{"huge body", `{"mode":"open","reason":"` + strings.Repeat("x", 20000) + `"}`, "larger than"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			rec := e.do(t, "PUT", "/admin/breaker", "Bearer "+adminTestToken, c.body)
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", rec.Code, rec.Body)
			}
			if msg := errorOf(t, rec); !strings.Contains(msg, c.want) {
				t.Errorf("error %q, want it to contain %q", msg, c.want)
			}
		})
	}
	if hist, _ := e.store.BreakerHistory(t.Context(), 10); len(hist) != 0 || e.breaker.Mode() != dify.ModeAuto {
		t.Fatalf("a refused PUT switched the breaker: mode %s, history %v", e.breaker.Mode(), hist)
	}

	// Forcing it open takes effect here at once and is kept, with who and why, for the other replicas.
	e.api(t, "PUT", "/admin/breaker", `{"mode":" OPEN ","reason":"  Dify upgrade until 14:00 "}`, http.StatusOK, &b)
	if e.breaker.Mode() != dify.ModeOpen || e.breaker.Ready() != dify.ErrMaintenance {
		t.Errorf("local breaker mode = %s, Ready = %v", e.breaker.Mode(), e.breaker.Ready())
	}
	set, err := e.store.BreakerSetting(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := bot.BreakerSetting{Mode: "open", Reason: "Dify upgrade until 14:00", Actor: "admin@192.0.2.1", At: e.now}
	if !set.At.Equal(want.At) || set.Mode != want.Mode || set.Reason != want.Reason || set.Actor != want.Actor {
		t.Errorf("stored setting = %+v, want %+v", set, want)
	}
	if b.Mode != "open" || b.AppliedMode != "open" || b.State != "forced-open" || b.LastChange == nil ||
		b.LastChange.Actor != want.Actor || b.LastChange.Reason != want.Reason || len(b.History) != 1 {
		t.Errorf("PUT answer = %+v", b)
	}

	e.now = e.now.Add(time.Hour)
	e.api(t, "PUT", "/admin/breaker", `{"mode":"auto","reason":"upgrade done"}`, http.StatusOK, nil)
	e.api(t, "GET", "/admin/breaker", "", http.StatusOK, &b)
	if e.breaker.Mode() != dify.ModeAuto || b.Mode != "auto" || b.State != "closed" {
		t.Errorf("after auto: local %s, answer %+v", e.breaker.Mode(), b)
	}
	var hist []string
	for _, h := range b.History {
		hist = append(hist, h.Mode+": "+h.Reason)
	}
	if want := []string{"auto: upgrade done", "open: Dify upgrade until 14:00"}; !slices.Equal(hist, want) {
		t.Errorf("history = %q, want newest first %q", hist, want)
	}
	if b.LastChange == nil || b.LastChange.Reason != "upgrade done" || !b.LastChange.At.Equal(e.now) {
		t.Errorf("last change = %+v", b.LastChange)
	}

	// Another replica's change reaches the store first; GET says so while this replica catches up.
	if err := e.store.SetBreakerSetting(t.Context(), bot.BreakerSetting{Mode: "closed", Reason: "elsewhere", Actor: "admin@10.0.0.9"}); err != nil {
		t.Fatal(err)
	}
	e.api(t, "GET", "/admin/breaker", "", http.StatusOK, &b)
	if b.Mode != "closed" || b.AppliedMode != "auto" {
		t.Errorf("stored vs applied = %s vs %s, want closed vs auto", b.Mode, b.AppliedMode)
	}

	rec := e.do(t, "DELETE", "/admin/breaker", "Bearer "+adminTestToken, "")
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, PUT" {
		t.Errorf("DELETE = %d, Allow %q", rec.Code, rec.Header().Get("Allow"))
	}
	errorOf(t, rec)
}

// TestAdminNeverLeaksSecrets plants secrets wherever a run or a request can carry one and searches every
// admin response, headers included, error answers included.
func TestAdminNeverLeaksSecrets(t *testing.T) {
	extra := map[string]http.Handler{"/admin/sim/scenario": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// An extra route that carelessly echoes a key, with a Content-Length that redaction must not break.
		body := `{"scenario":"ok","note":"key ` + leakDifyKey + `"}`
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		io.WriteString(w, body)
	})}
	e := newAdminEnv(t, extra)
	runs := e.seed(t, []seedRun{{"slack", bot.RunFailed, bot.CodeDifyAuthInvalid}, {"line", bot.RunSucceeded, ""}})
	// A person pasted the admin token into a chat and the workflow echoed it.
	r := runs[1]
	r.Reply = "you said " + adminTestToken
	if err := e.store.SaveRun(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	e.api(t, "PUT", "/admin/breaker", `{"mode":"open","reason":"rotating `+leakDifyKey+`"}`, http.StatusOK, nil)

	auth := "Bearer " + adminTestToken
	for _, req := range []struct{ method, target, auth, body string }{
		{"GET", "/admin/", "", ""},
		{"GET", "/admin/runs", auth, ""},
		{"GET", "/admin/runs?limit=1", auth, ""},
		{"GET", "/admin/runs/" + runs[0].ID, auth, ""},
		{"GET", "/admin/runs/" + runs[1].ID, auth, ""},
		{"GET", "/admin/breaker", auth, ""},
		{"GET", "/admin/sim/scenario", auth, ""},
		{"GET", "/admin/runs/" + leakExtra, auth, ""},
		{"GET", "/admin/runs?before=" + leakExtra, auth, ""},
		{"GET", "/admin/runs?" + leakExtra + "=1", auth, ""},
		{"PUT", "/admin/breaker", auth, `{"mode":"` + leakExtra + `","reason":"x"}`},
		{"PUT", "/admin/breaker", auth, `{"` + leakState + `":1}`},
		{"GET", "/admin/breaker", "Bearer " + adminTestToken + "-wrong", ""},
		{"GET", "/admin/breaker", "Bearer " + leakReplyToken, ""},
	} {
		rec := e.do(t, req.method, req.target, req.auth, req.body)
		if req.target == "/admin/sim/scenario" {
			var v map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || v["scenario"] != "ok" {
				t.Errorf("extra route's redacted answer = %q (%v)", rec.Body, err)
			}
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, x := range e.exchanges {
		// A value the request itself carried (an unknown id or mode echoed in the error) is the caller's own;
		// what matters is what came from the store, the configuration or the Authorization header.
		for _, secret := range adminLeaks {
			if strings.Contains(x.response, secret) && !strings.Contains(x.request, secret) {
				t.Errorf("%s\nanswered with %q:\n%s", x.request, secret, x.response)
			}
		}
	}
	if len(e.exchanges) < 10 {
		t.Errorf("only %d responses were searched", len(e.exchanges))
	}
}

func TestAdminPage(t *testing.T) {
	e := newAdminEnv(t, nil)
	rec := e.do(t, "GET", "/admin/", "", "")
	page := rec.Body.String()
	if rec.Code != 200 {
		t.Fatalf("GET /admin/ = %d", rec.Code)
	}
	// The elements the browser test and people rely on.
	for _, id := range []string{"token", "runs", "runs-body", "runs-more", "run-detail", "run-steps", "run-nodes",
		"breaker-state", "breaker-mode", "breaker-reason", "breaker-apply", "breaker-history", "scenario",
		"filter-status", "filter-platform", "filter-code"} {
		if !strings.Contains(page, `id="`+id+`"`) {
			t.Errorf("page lacks #%s", id)
		}
	}
	for _, c := range bot.Codes() {
		if !strings.Contains(page, `<option value="`+string(c)+`">`) {
			t.Errorf("code filter lacks %s", c)
		}
	}
	// No CDN, no external font, no inline handlers (the policy would block them).
	if m := regexp.MustCompile(`(?i)(src|href)="(https?:)?//`).FindString(page); m != "" {
		t.Errorf("page loads something from elsewhere: %s", m)
	}
	if m := regexp.MustCompile(`(?i)\son[a-z]+="`).FindString(page); m != "" {
		t.Errorf("page has an inline event handler: %s", m)
	}
	if strings.Contains(page, "localStorage") {
		t.Error("page mentions localStorage; the token belongs in sessionStorage only")
	}

	// The policy allows exactly the page's own inline script and style.
	csp := rec.Header().Get("Content-Security-Policy")
	for _, tag := range []string{"script", "style"} {
		blocks := regexp.MustCompile(`(?s)<`+tag+`>(.*?)</`+tag+`>`).FindAllStringSubmatch(page, -1)
		if len(blocks) != 1 {
			t.Fatalf("%d <%s> blocks", len(blocks), tag)
		}
		sum := sha256.Sum256([]byte(blocks[0][1]))
		if want := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, tag+"-src "+want) {
			t.Errorf("CSP %q lacks %s for the inline %s", csp, want, tag)
		}
	}
	for _, want := range []string{"default-src 'none'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if rec.Header().Get("Cache-Control") != "no-store" || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers = %v", rec.Header())
	}

	// HEAD works without a token too; other methods on the page need one.
	if rec := e.do(t, "HEAD", "/admin/", "", ""); rec.Code != 200 {
		t.Errorf("HEAD /admin/ = %d", rec.Code)
	}
	if rec := e.do(t, "POST", "/admin/", "", "x"); rec.Code != http.StatusUnauthorized {
		t.Errorf("POST /admin/ without a token = %d, want 401", rec.Code)
	}

}

func TestAdminExtraRouteMustBeUnderAdmin(t *testing.T) {
	h, err := New(Config{Token: adminTestToken, Store: &tieStore{}, Breaker: dify.NewBreaker(dify.BreakerConfig{}, zerolog.Nop()),
		Extra: map[string]http.Handler{"/debug/pprof/": http.NotFoundHandler()}})
	if err == nil || h != nil {
		t.Error("New accepted an Extra route outside /admin/")
	}
}

func TestAdminNeedsStoreAndBreaker(t *testing.T) {
	br := dify.NewBreaker(dify.BreakerConfig{}, zerolog.Nop())
	for name, cfg := range map[string]Config{
		"no store":   {Token: adminTestToken, Breaker: br},
		"no breaker": {Token: adminTestToken, Store: &tieStore{}},
	} {
		if h, err := New(cfg); err == nil || h != nil {
			t.Errorf("%s: New = %v, %v; want an error", name, h, err)
		}
	}
}
