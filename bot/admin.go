package bot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed" // The admin page.
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/difybot/difybot/dify"
	"github.com/rs/zerolog"
)

// BreakerSwitch is the part of the breaker the admin API reads and switches. *dify.Breaker implements it.
type BreakerSwitch interface {
	Status() dify.BreakerStatus
	SetMode(m dify.Mode, reason string)
}

// AdminConfig wires the admin API and page.
type AdminConfig struct {
	Token   string // ADMIN_TOKEN; empty turns every /admin/ route into a 404.
	Store   Store
	Breaker BreakerSwitch
	Logger  zerolog.Logger
	Now     func() time.Time
	// Extra are more admin routes, keyed by their path under /admin/ (such as "/admin/sim/scenario"); they sit
	// behind the same token and answer every method on that path themselves.
	Extra map[string]http.Handler
	// Redact lists secret values (API keys, platform tokens) that must never leave in a response, even when a
	// raw error or a reply happens to carry one. The token is always redacted. Values under 8 bytes are ignored:
	// they would match ordinary text.
	Redact []string
}

// Admin API limits.
const (
	adminDefaultLimit = 50
	adminMaxLimit     = 200 // The store's ceiling is 500; the cursor's tie-break needs headroom above a page.
	storeListCeiling  = 500
	adminMaxReason    = 500
	adminMaxBody      = 16 << 10
	adminHistoryLimit = 50
	adminExcerptRunes = 140
	adminMinRedact    = 8
)

//go:embed admin.html
var adminHTML []byte

// adminPage is the page with the diagnosis codes filled in, and the policy that allows exactly its inline script
// and style: the page needs no other origin, so a strict policy costs nothing.
var adminPage, adminCSP = preparePage(adminHTML)

var inlineBlock = regexp.MustCompile(`(?s)<(script|style)>(.*?)</(?:script|style)>`)

func preparePage(page []byte) ([]byte, string) {
	var opts strings.Builder
	for _, c := range Codes() {
		fmt.Fprintf(&opts, `<option value="%[1]s">%[1]s</option>`, html.EscapeString(string(c)))
	}
	page = bytes.Replace(page, []byte("<!--codes-->"), []byte(opts.String()), 1)
	hashes := map[string][]string{}
	for _, m := range inlineBlock.FindAllSubmatch(page, -1) {
		sum := sha256.Sum256(m[2])
		tag := string(m[1])
		hashes[tag] = append(hashes[tag], "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
	}
	csp := fmt.Sprintf("default-src 'none'; script-src %s; style-src %s; connect-src 'self'; img-src 'self' data:; "+
		"base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
		strings.Join(append(hashes["script"], "'self'"), " "), strings.Join(append(hashes["style"], "'self'"), " "))
	return page, csp
}

type admin struct {
	cfg      AdminConfig
	log      zerolog.Logger
	tokenSum [sha256.Size]byte
	mux      *http.ServeMux
	redact   *strings.Replacer
}

// NewAdmin returns the admin API and page, to be mounted at "/admin/". With an empty Token every route answers
// 404, so an unconfigured deployment does not even reveal that the admin API exists. It panics when Token is
// set but Store or Breaker is missing, or when an Extra path is not under /admin/: those are wiring bugs.
func NewAdmin(cfg AdminConfig) http.Handler {
	if cfg.Token == "" {
		return http.NotFoundHandler()
	}
	if cfg.Store == nil || cfg.Breaker == nil {
		panic("bot: NewAdmin needs a Store and a Breaker")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &admin{cfg: cfg, log: cfg.Logger.With().Str("component", "admin").Logger(), tokenSum: sha256.Sum256([]byte(cfg.Token))}
	a.redact = newRedactor(append(slices.Clone(cfg.Redact), cfg.Token))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/runs", a.listRuns)
	mux.HandleFunc("GET /admin/runs/{id}", a.getRun)
	mux.HandleFunc("GET /admin/breaker", a.getBreaker)
	mux.HandleFunc("PUT /admin/breaker", a.putBreaker)
	// Method-less fallbacks turn the mux's plain-text 405 and 404 into JSON the page can show.
	mux.HandleFunc("/admin/runs", methodNotAllowed("GET"))
	mux.HandleFunc("/admin/runs/{id}", methodNotAllowed("GET"))
	mux.HandleFunc("/admin/breaker", methodNotAllowed("GET, PUT"))
	mux.HandleFunc("/admin/", func(w http.ResponseWriter, r *http.Request) {
		a.writeError(w, http.StatusNotFound, "no admin route "+r.Method+" "+r.URL.Path)
	})
	for path, h := range cfg.Extra {
		if !strings.HasPrefix(path, "/admin/") || strings.ContainsAny(path, " {}") {
			panic(fmt.Sprintf("bot: admin Extra route %q must be a plain path under /admin/", path))
		}
		mux.Handle(path, h)
	}
	a.mux = mux
	return a
}

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeAdminJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": r.Method + " is not allowed here; use " + allow})
	}
}

func (a *admin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store") // Runs and breaker state are live data, and nothing here should be cached.
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	if r.URL.Path == "/admin/" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		// The page holds no data, so it is served without the token; it asks for the token itself.
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", adminCSP)
		http.ServeContent(w, r, "admin.html", time.Time{}, bytes.NewReader(adminPage))
		return
	}
	if msg, ok := a.authorized(r); !ok {
		challenge := `Bearer realm="difybot admin"`
		if msg == errTokenWrong {
			challenge += `, error="invalid_token"`
		}
		h.Set("WWW-Authenticate", challenge)
		a.log.Info().Str("remote", adminRemoteIP(r)).Str("path", r.URL.Path).Str("problem", msg).Msg("admin request refused")
		a.writeError(w, http.StatusUnauthorized, msg)
		return
	}
	a.mux.ServeHTTP(&redactingWriter{ResponseWriter: w, redact: a.redact}, r)
}

const (
	errTokenMissing = "missing admin token: send Authorization: Bearer <ADMIN_TOKEN>"
	errTokenWrong   = "wrong admin token"
)

// authorized compares SHA-256 sums of the tokens in constant time: equal lengths mean neither the compare
// nor its early exit on a length mismatch can tell an attacker how long the token is.
func (a *admin) authorized(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return errTokenMissing, false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	if subtle.ConstantTimeCompare(sum[:], a.tokenSum[:]) != 1 {
		return errTokenWrong, false
	}
	return "", true
}

// RunSummary is one run in the admin list.
type RunSummary struct {
	ID           string    `json:"id"`
	Platform     string    `json:"platform"`
	Status       RunStatus `json:"status"`
	Code         Code      `json:"code,omitempty"`
	Summary      string    `json:"summary,omitempty"` // The diagnosis's one-line explanation.
	Attempt      int       `json:"attempt"`
	CreatedAt    time.Time `json:"created_at"`
	FinishedAt   time.Time `json:"finished_at,omitzero"`
	DurationMS   float64   `json:"duration_ms,omitempty"` // From creation to the outcome; absent while in flight.
	Files        int       `json:"files"`
	ReplyExcerpt string    `json:"reply_excerpt,omitempty"`
}

// RunList is the answer to GET /admin/runs. Next is the before-cursor of the following page, "" at the end.
type RunList struct {
	Runs []RunSummary `json:"runs"`
	Next string       `json:"next"`
}

// RunDetail is the answer to GET /admin/runs/{id}.
type RunDetail struct {
	Run        RunView     `json:"run"`
	Steps      []StepView  `json:"steps"`
	Nodes      []NodeView  `json:"nodes"`       // One entry per node execution, started and finished merged.
	NodeEvents []NodeEvent `json:"node_events"` // The events as Dify streamed them.
	Diagnosis  *Diagnosis  `json:"diagnosis"`
}

// RunView is a run as admins see it. It is built field by field, never by copying Run, so that whatever an
// adapter keeps with a run (reply tokens, file URLs, state) cannot leak through a new field.
type RunView struct {
	RunSummary
	EventID        string      `json:"event_id,omitempty"`
	UpdatedAt      time.Time   `json:"updated_at"`
	DifyRunID      string      `json:"dify_run_id,omitempty"`
	DifyTaskID     string      `json:"dify_task_id,omitempty"`
	ConversationID string      `json:"conversation_id,omitempty"`
	Reply          string      `json:"reply,omitempty"`
	HeldNotified   bool        `json:"held_notified"`
	Message        MessageView `json:"message"`
}

// MessageView describes what the person sent without its text: admins need its shape, not its content.
type MessageView struct {
	ChatID     string     `json:"chat_id"`
	ThreadID   string     `json:"thread_id,omitempty"`
	UserID     string     `json:"user_id"`
	TextChars  int        `json:"text_chars"`
	Files      []FileView `json:"files"`
	ReceivedAt time.Time  `json:"received_at"`
	Redelivery bool       `json:"redelivery,omitempty"`
}

// FileView is an attachment without its URL, which for Slack and LINE leads to the person's file.
type FileView struct {
	ID       string `json:"id"`
	Name     string `json:"name,omitempty"`
	MIMEType string `json:"mime_type,omitempty"`
	Size     int64  `json:"size,omitempty"`
}

// StepView is one numbered step; Label is "[n/of]" as the log line shows it.
type StepView struct {
	Attempt    int            `json:"attempt"`
	N          int            `json:"n"`
	Of         int            `json:"of"`
	Label      string         `json:"label"`
	Name       string         `json:"step"`
	Status     string         `json:"status"`
	Start      time.Time      `json:"start"`
	DurationMS float64        `json:"duration_ms"`
	Code       Code           `json:"code,omitempty"`
	Error      string         `json:"error,omitempty"`
	Fields     map[string]any `json:"fields,omitempty"`
}

// NodeView is one execution of a workflow node. Status is Dify's, or "running" while the run goes on, or
// "unfinished" when the run ended without the node's finish event.
type NodeView struct {
	NodeID     string    `json:"node_id"`
	NodeType   string    `json:"node_type"`
	Title      string    `json:"title"`
	Index      int       `json:"index"`
	Status     string    `json:"status"`
	ElapsedS   float64   `json:"elapsed_s"`
	Error      string    `json:"error,omitempty"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// BreakerView is the answer to GET and PUT /admin/breaker.
type BreakerView struct {
	Mode        string           `json:"mode"`         // The stored override every replica applies within 5 s.
	AppliedMode dify.Mode        `json:"applied_mode"` // The override this replica applies now.
	State       string           `json:"state"`        // This replica's effective state (closed, open, half-open, forced-open, forced-closed).
	AutoState   string           `json:"auto_state"`   // The automatic breaker's own state, which keeps running under an override.
	Since       time.Time        `json:"since"`        // When the automatic state last changed.
	Counts      BreakerCounts    `json:"counts"`
	LastChange  *BreakerSetting  `json:"last_change"` // Null when no operator ever switched it.
	History     []BreakerSetting `json:"history"`     // Newest first.
}

// BreakerCounts are the automatic breaker's counts in its current window.
type BreakerCounts struct {
	Requests  uint32 `json:"requests"`
	Failures  uint32 `json:"failures"`
	Successes uint32 `json:"successes"`
}

var (
	runStatuses = []RunStatus{RunQueued, RunRunning, RunHeld, RunSucceeded, RunFailed}
	listParams  = []string{"status", "platform", "code", "limit", "before"}
	platformRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)
)

// requestError is a problem with the request itself, answered with 400 and its text.
type requestError string

func (e requestError) Error() string { return string(e) }

func badRequest(format string, args ...any) error { return requestError(fmt.Sprintf(format, args...)) }

func (a *admin) listRuns(w http.ResponseWriter, r *http.Request) {
	f, limit, cursor, err := a.parseList(r)
	var bad requestError
	if errors.As(err, &bad) {
		a.writeError(w, http.StatusBadRequest, bad.Error())
		return
	}
	if err != nil {
		a.internal(w, r, "read the cursor run", err)
		return
	}
	runs, err := a.page(r.Context(), f, limit, cursor)
	if err != nil {
		a.internal(w, r, "list runs", err)
		return
	}
	out := RunList{Runs: make([]RunSummary, 0, min(len(runs), limit))}
	if len(runs) > limit {
		runs = runs[:limit]
		out.Next = runs[limit-1].ID
	}
	for _, run := range runs {
		out.Runs = append(out.Runs, a.summarize(run))
	}
	a.writeJSON(w, http.StatusOK, out)
}

// parseList reads the list's query. Unknown parameters are refused: a misspelt filter would otherwise
// silently list everything.
func (a *admin) parseList(r *http.Request) (f RunFilter, limit int, cursor *Run, err error) {
	q := r.URL.Query()
	for k, vs := range q {
		if !slices.Contains(listParams, k) {
			return f, 0, nil, badRequest("unknown parameter %q (want %s)", k, strings.Join(listParams, ", "))
		}
		if len(vs) > 1 {
			return f, 0, nil, badRequest("parameter %q is given %d times", k, len(vs))
		}
	}
	if s := q.Get("status"); s != "" {
		if !slices.Contains(runStatuses, RunStatus(s)) {
			return f, 0, nil, badRequest("unknown status %q (want queued, running, held, succeeded or failed)", s)
		}
		f.Status = RunStatus(s)
	}
	if p := q.Get("platform"); p != "" {
		if !platformRE.MatchString(p) {
			return f, 0, nil, badRequest("platform %q is not a platform name (such as slack, line, web)", clipRunes(p, 40))
		}
		f.Platform = p
	}
	if c := q.Get("code"); c != "" {
		if !slices.Contains(Codes(), Code(c)) {
			return f, 0, nil, badRequest("unknown diagnosis code %q", clipRunes(c, 60))
		}
		f.Code = Code(c)
	}
	limit = adminDefaultLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > adminMaxLimit {
			return f, 0, nil, badRequest("limit must be a whole number from 1 to %d, not %q", adminMaxLimit, clipRunes(s, 20))
		}
		limit = n
	}
	if b := q.Get("before"); b != "" {
		// A "+" in an unescaped offset arrives as a space; put it back rather than refuse a correct time.
		if t, err := time.Parse(time.RFC3339Nano, strings.Replace(b, " ", "+", 1)); err == nil {
			f.Before = t
			return f, limit, nil, nil
		}
		run, err := a.cfg.Store.Run(r.Context(), b)
		if errors.Is(err, ErrNotFound) {
			return f, 0, nil, badRequest("before %q is neither an RFC 3339 time nor a run id; pass the \"next\" value of the previous page", clipRunes(b, 60))
		}
		if err != nil {
			return f, 0, nil, err
		}
		cursor = &run
	}
	return f, limit, cursor, nil
}

// page returns up to limit+1 runs (the extra one says whether there is a next page). After a cursor run it
// lists from the cursor's creation time inclusive and drops the runs at that instant that the previous page
// already showed, so runs created in the same nanosecond are neither skipped nor repeated.
func (a *admin) page(ctx context.Context, f RunFilter, limit int, cursor *Run) ([]Run, error) {
	want, extra := limit+1, 0
	if cursor != nil {
		f.Before, extra = cursor.CreatedAt.Add(time.Nanosecond), 8
	}
	for {
		f.Limit = min(want+extra, storeListCeiling)
		runs, err := a.cfg.Store.ListRuns(ctx, f)
		if err != nil {
			return nil, err
		}
		if cursor == nil {
			return runs, nil
		}
		out := runs[:0]
		for _, r := range runs {
			if r.CreatedAt.Equal(cursor.CreatedAt) && r.ID >= cursor.ID {
				continue // Shown on an earlier page: the store orders ties by id, descending.
			}
			out = append(out, r)
		}
		if len(out) >= want || len(runs) < f.Limit || f.Limit == storeListCeiling {
			return out, nil
		}
		extra = storeListCeiling // Hundreds of runs in one nanosecond: take all the store gives.
	}
}

// summarize redacts the reply before clipping it: a secret cut in half would no longer match the redactor.
func (a *admin) summarize(r Run) RunSummary {
	reply := r.Reply
	if a.redact != nil {
		reply = a.redact.Replace(reply)
	}
	s := RunSummary{ID: r.ID, Platform: r.Platform, Status: r.Status, Code: r.Code, Attempt: r.Attempt,
		CreatedAt: r.CreatedAt, FinishedAt: r.FinishedAt, Files: len(r.Message.Files), ReplyExcerpt: replyExcerpt(reply)}
	if r.Diagnosis != nil {
		s.Summary = r.Diagnosis.Summary
		if s.Code == "" {
			s.Code = r.Diagnosis.Code
		}
	}
	if !r.FinishedAt.IsZero() && (r.Status == RunSucceeded || r.Status == RunFailed) {
		s.DurationMS = durationMS(r.FinishedAt.Sub(r.CreatedAt))
	}
	return s
}

// replyExcerpt is the start of a reply on one line, for the list.
func replyExcerpt(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return clipRunes(s, adminExcerptRunes)
}

func clipRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

// durationMS is a duration in milliseconds, to the microsecond: most steps take well under one.
func durationMS(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (a *admin) getRun(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	run, err := a.cfg.Store.Run(r.Context(), id)
	if errors.Is(err, ErrNotFound) {
		a.writeError(w, http.StatusNotFound, fmt.Sprintf("no run %q", clipRunes(id, 60)))
		return
	}
	if err != nil {
		a.internal(w, r, "load run", err)
		return
	}
	steps, err := a.cfg.Store.Steps(r.Context(), id)
	if err != nil {
		a.internal(w, r, "load steps", err)
		return
	}
	events, err := a.cfg.Store.NodeEvents(r.Context(), id)
	if err != nil {
		a.internal(w, r, "load node events", err)
		return
	}
	d := RunDetail{Run: a.viewRun(run), Steps: make([]StepView, 0, len(steps)), NodeEvents: events,
		Nodes: mergeNodes(events, run.Status == RunSucceeded || run.Status == RunFailed), Diagnosis: run.Diagnosis}
	if d.NodeEvents == nil {
		d.NodeEvents = []NodeEvent{}
	}
	for _, s := range steps {
		d.Steps = append(d.Steps, StepView{Attempt: s.Attempt, N: s.N, Of: s.Of, Label: fmt.Sprintf("[%d/%d]", s.N, s.Of),
			Name: s.Name, Status: s.Status, Start: s.Start, DurationMS: durationMS(s.Duration), Code: s.Code, Error: s.Error,
			Fields: s.Fields})
	}
	a.writeJSON(w, http.StatusOK, d)
}

func (a *admin) viewRun(r Run) RunView {
	m := r.Message
	v := RunView{RunSummary: a.summarize(r), EventID: r.EventID, UpdatedAt: r.UpdatedAt, DifyRunID: r.DifyRunID,
		DifyTaskID: r.DifyTaskID, ConversationID: r.ConversationID, Reply: r.Reply, HeldNotified: r.HeldNotified,
		Message: MessageView{ChatID: m.ChatID, ThreadID: m.ThreadID, UserID: m.UserID,
			TextChars: utf8.RuneCountInString(m.Text), Files: make([]FileView, 0, len(m.Files)), ReceivedAt: m.ReceivedAt,
			Redelivery: m.Redelivery}}
	for _, f := range m.Files {
		v.Message.Files = append(v.Message.Files, FileView{ID: f.ID, Name: f.Name, MIMEType: f.MIMEType, Size: f.Size})
	}
	return v
}

// mergeNodes pairs each node_finished with the earliest unmatched node_started of the same node, so nodes that
// run more than once (inside an iteration or a loop) each get their own entry.
func mergeNodes(events []NodeEvent, ended bool) []NodeView {
	out := []NodeView{}
	open := map[string][]int{}
	for _, e := range events {
		switch e.Event {
		case "node_started":
			status := "running"
			if ended {
				status = "unfinished"
			}
			open[e.NodeID] = append(open[e.NodeID], len(out))
			out = append(out, NodeView{NodeID: e.NodeID, NodeType: e.NodeType, Title: e.Title, Index: e.Index,
				Status: status, StartedAt: e.At})
		case "node_finished":
			i := -1
			if q := open[e.NodeID]; len(q) > 0 {
				i, open[e.NodeID] = q[0], q[1:]
			} else {
				out = append(out, NodeView{NodeID: e.NodeID, NodeType: e.NodeType, Title: e.Title, Index: e.Index})
				i = len(out) - 1
			}
			n := &out[i]
			n.Status, n.ElapsedS, n.Error, n.FinishedAt = e.Status, e.Elapsed, e.Error, e.At
			if n.Status == "" {
				n.Status = "finished"
			}
		}
	}
	return out
}

func (a *admin) getBreaker(w http.ResponseWriter, r *http.Request) {
	v, err := a.breakerView(r.Context())
	if err != nil {
		a.internal(w, r, "read the breaker setting", err)
		return
	}
	a.writeJSON(w, http.StatusOK, v)
}

func (a *admin) breakerView(ctx context.Context) (BreakerView, error) {
	set, err := a.cfg.Store.BreakerSetting(ctx)
	if err != nil {
		return BreakerView{}, err
	}
	hist, err := a.cfg.Store.BreakerHistory(ctx, adminHistoryLimit)
	if err != nil {
		return BreakerView{}, err
	}
	st := a.cfg.Breaker.Status()
	v := BreakerView{Mode: set.Mode, AppliedMode: st.Mode, State: st.State, AutoState: st.Auto, Since: st.Since,
		Counts:  BreakerCounts{Requests: st.Requests, Failures: st.Failures, Successes: st.Success},
		History: hist}
	if v.Mode == "" {
		v.Mode = string(dify.ModeAuto)
	}
	if !set.At.IsZero() {
		v.LastChange = &set
	}
	if v.History == nil {
		v.History = []BreakerSetting{}
	}
	return v, nil
}

// breakerRequest is PUT /admin/breaker's body. Pointers tell a missing field from an empty one.
type breakerRequest struct {
	Mode   *string `json:"mode"`
	Reason *string `json:"reason"`
}

const breakerUsage = `send {"mode":"open|closed|auto","reason":"why"}`

func (a *admin) putBreaker(w http.ResponseWriter, r *http.Request) {
	mode, reason, msg := readBreakerRequest(w, r)
	if msg != "" {
		a.writeError(w, http.StatusBadRequest, msg)
		return
	}
	set := BreakerSetting{Mode: string(mode), Reason: reason, Actor: breakerActor(r), At: a.cfg.Now().UTC()}
	// The store first: it is what every replica follows, so a change it did not keep must not take effect here.
	if err := a.cfg.Store.SetBreakerSetting(r.Context(), set); err != nil {
		a.internal(w, r, "store the breaker setting", err)
		return
	}
	a.cfg.Breaker.SetMode(mode, reason)
	a.log.Warn().Str("mode", set.Mode).Str("reason", reason).Str("actor", set.Actor).Msg("breaker mode set by an operator")
	v, err := a.breakerView(r.Context())
	if err != nil {
		a.internal(w, r, "read the breaker setting", err)
		return
	}
	a.writeJSON(w, http.StatusOK, v)
}

// readBreakerRequest validates the body and says exactly what is wrong with it.
func readBreakerRequest(w http.ResponseWriter, r *http.Request) (dify.Mode, string, string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, adminMaxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return "", "", fmt.Sprintf("body is larger than %d bytes; %s", adminMaxBody, breakerUsage)
	case err != nil:
		return "", "", "could not read the body: " + err.Error()
	case len(bytes.TrimSpace(body)) == 0:
		return "", "", "body is empty; " + breakerUsage
	}
	var req breakerRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return "", "", "body is not valid: " + adminJSONProblem(err) + "; " + breakerUsage
	}
	if dec.More() {
		return "", "", "body has data after the JSON object; " + breakerUsage
	}
	if req.Mode == nil || strings.TrimSpace(*req.Mode) == "" {
		return "", "", `mode is required: "open" (maintenance), "closed" (let every call through) or "auto"`
	}
	mode, err := dify.ParseMode(strings.ToLower(strings.TrimSpace(*req.Mode)))
	if err != nil {
		return "", "", fmt.Sprintf(`unknown mode %q: want "open", "closed" or "auto"`, clipRunes(*req.Mode, 40))
	}
	if req.Reason == nil || strings.TrimSpace(*req.Reason) == "" {
		return "", "", "reason is required: say why, for the audit history (for example \"Dify upgrade until 14:00\")"
	}
	reason := strings.TrimSpace(*req.Reason)
	if n := utf8.RuneCountInString(reason); n > adminMaxReason {
		return "", "", fmt.Sprintf("reason is %d characters long; at most %d", n, adminMaxReason)
	}
	if strings.ContainsFunc(reason, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }) {
		return "", "", "reason contains control characters"
	}
	return mode, reason, ""
}

// adminJSONProblem describes a decoding error without Go type names.
func adminJSONProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("not JSON (%s at byte %d)", strings.TrimPrefix(syn.Error(), "json: "), syn.Offset)
	case errors.As(err, &typ) && typ.Field != "":
		return fmt.Sprintf("%s must be a string", typ.Field)
	case errors.As(err, &typ):
		return "want a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON ends early"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// breakerActor labels who switched the breaker: the caller's address, not the token, which is shared and secret.
// Behind a proxy this is the proxy's address; forwarded headers are not trusted because anyone can send them.
func breakerActor(r *http.Request) string {
	if ip := adminRemoteIP(r); ip != "" {
		return "admin@" + ip
	}
	return "admin"
}

func adminRemoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (a *admin) internal(w http.ResponseWriter, r *http.Request, what string, err error) {
	a.log.Error().Err(err).Str("path", r.URL.Path).Msg("admin: could not " + what)
	// Store errors can name hosts and tables; the log has them, the response only says where to look.
	a.writeError(w, http.StatusInternalServerError, "could not "+what+"; the server log has the details")
}

func (a *admin) writeError(w http.ResponseWriter, status int, msg string) {
	a.writeJSON(w, status, map[string]string{"error": msg})
}

func (a *admin) writeJSON(w http.ResponseWriter, status int, v any) {
	if a.redact != nil {
		if _, ok := w.(*redactingWriter); !ok {
			w = &redactingWriter{ResponseWriter: w, redact: a.redact}
		}
	}
	writeAdminJSON(w, status, v)
}

func writeAdminJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"could not encode the response"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// newRedactor replaces each secret, raw and as JSON escapes it, with [redacted]. It returns nil when there is
// nothing to redact.
func newRedactor(secrets []string) *strings.Replacer {
	var pairs []string
	seen := map[string]bool{}
	for _, s := range secrets {
		if len(s) < adminMinRedact {
			continue
		}
		forms := []string{s}
		if b, err := json.Marshal(s); err == nil {
			forms = append(forms, string(b[1:len(b)-1]))
		}
		for _, f := range forms {
			if !seen[f] {
				seen[f] = true
				pairs = append(pairs, f, "[redacted]")
			}
		}
	}
	if len(pairs) == 0 {
		return nil
	}
	return strings.NewReplacer(pairs...)
}

// redactingWriter redacts what admin handlers write, Extra routes included. Bodies are small JSON documents
// written in one Write; a secret split across two writes would escape, which is why the handlers here write once.
type redactingWriter struct {
	http.ResponseWriter
	redact      *strings.Replacer
	wroteHeader bool
}

// WriteHeader drops a Content-Length the handler set: redaction can change the length.
func (w *redactingWriter) WriteHeader(status int) {
	if !w.wroteHeader && w.redact != nil {
		w.Header().Del("Content-Length")
	}
	w.wroteHeader = true
	w.ResponseWriter.WriteHeader(status)
}

func (w *redactingWriter) Write(p []byte) (int, error) {
	if w.redact == nil {
		return w.ResponseWriter.Write(p)
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if _, err := w.ResponseWriter.Write([]byte(w.redact.Replace(string(p)))); err != nil {
		return 0, err
	}
	return len(p), nil // The caller wrote p; its length changed only here.
}

func (w *redactingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
