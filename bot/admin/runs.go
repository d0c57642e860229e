package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/difybot/difybot/bot"
)

// runSummary is one run in the admin list.
type runSummary struct {
	ID           string        `json:"id"`
	Platform     string        `json:"platform"`
	App          string        `json:"app,omitempty"` // The Dify app, when the bot has several.
	Status       bot.RunStatus `json:"status"`
	Code         bot.Code      `json:"code,omitempty"`
	Summary      string        `json:"summary,omitempty"` // The diagnosis's one-line explanation.
	Attempt      int           `json:"attempt"`
	CreatedAt    time.Time     `json:"created_at"`
	FinishedAt   time.Time     `json:"finished_at,omitzero"`
	DurationMS   float64       `json:"duration_ms,omitempty"` // From creation to the outcome; absent while in flight.
	Files        int           `json:"files"`
	ReplyExcerpt string        `json:"reply_excerpt,omitempty"`
}

// runList is the answer to GET /admin/runs. Next is the before-cursor of the following page, "" at the end.
type runList struct {
	Runs []runSummary `json:"runs"`
	Next string       `json:"next"`
}

// runDetail is the answer to GET /admin/runs/{id}.
type runDetail struct {
	Run        runView         `json:"run"`
	Steps      []stepView      `json:"steps"`
	Nodes      []nodeView      `json:"nodes"`       // One entry per node execution, started and finished merged.
	NodeEvents []bot.NodeEvent `json:"node_events"` // The events as Dify streamed them.
	Diagnosis  *bot.Diagnosis  `json:"diagnosis"`
	// OutputFiles are the files of the run's answers, every attempt's, with their signed links (until they expire).
	OutputFiles []outputFileView `json:"output_files"`
}

// outputFileView is a file of an answer as admins see it.
type outputFileView struct {
	ID        string    `json:"id"`
	Attempt   int       `json:"attempt"`
	Name      string    `json:"name"`
	MIMEType  string    `json:"mime_type"`
	Size      int64     `json:"size"`
	Image     bool      `json:"image"`
	URL       string    `json:"url"` // "/files/{id}?…" on this bot.
	ExpiresAt time.Time `json:"expires_at"`
}

// runView is a run as admins see it. It is built field by field, never by copying Run, so that whatever an
// adapter keeps with a run (reply tokens, file URLs, state) cannot leak through a new field.
type runView struct {
	runSummary
	EventID        string      `json:"event_id,omitempty"`
	UpdatedAt      time.Time   `json:"updated_at"`
	DifyRunID      string      `json:"dify_run_id,omitempty"`
	DifyTaskID     string      `json:"dify_task_id,omitempty"`
	ConversationID string      `json:"conversation_id,omitempty"`
	Reply          string      `json:"reply,omitempty"`
	HeldNotified   bool        `json:"held_notified"`
	Message        messageView `json:"message"`
}

// messageView describes what the person sent without its text: admins need its shape, not its content.
type messageView struct {
	ChatID     string     `json:"chat_id"`
	ThreadID   string     `json:"thread_id,omitempty"`
	UserID     string     `json:"user_id"`
	TextChars  int        `json:"text_chars"`
	Files      []fileView `json:"files"`
	ReceivedAt time.Time  `json:"received_at"`
	Redelivery bool       `json:"redelivery,omitempty"`
}

// fileView is an attachment without its URL, which for Slack and LINE leads to the person's file.
type fileView struct {
	ID       string `json:"id"`
	Name     string `json:"name,omitempty"`
	MIMEType string `json:"mime_type,omitempty"`
	Size     int64  `json:"size,omitempty"`
}

// stepView is one numbered step; Label is "[n/of]" as the log line shows it.
type stepView struct {
	Attempt    int            `json:"attempt"`
	N          int            `json:"n"`
	Of         int            `json:"of"`
	Label      string         `json:"label"`
	Name       string         `json:"step"`
	Status     string         `json:"status"`
	Start      time.Time      `json:"start"`
	DurationMS float64        `json:"duration_ms"`
	Code       bot.Code       `json:"code,omitempty"`
	Error      string         `json:"error,omitempty"`
	Fields     map[string]any `json:"fields,omitempty"`
}

// nodeView is one execution of a workflow node. Status is Dify's, or "running" while the run goes on, or
// "unfinished" when the run ended without the node's finish event.
type nodeView struct {
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

var (
	runStatuses = []bot.RunStatus{bot.RunQueued, bot.RunRunning, bot.RunHeld, bot.RunWaiting, bot.RunSucceeded, bot.RunFailed}
	listParams  = []string{"status", "platform", "app", "code", "limit", "before"}
	platformRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)
)

// requestError is a problem with the request itself, answered with 400 and its text.
type requestError string

func (e requestError) Error() string { return string(e) }

func badRequest(format string, args ...any) error { return requestError(fmt.Sprintf(format, args...)) }

func (a *api) listRuns(w http.ResponseWriter, r *http.Request) {
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
	out := runList{Runs: make([]runSummary, 0, min(len(runs), limit))}
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
func (a *api) parseList(r *http.Request) (f bot.RunFilter, limit int, cursor *bot.Run, err error) {
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
		if !slices.Contains(runStatuses, bot.RunStatus(s)) {
			return f, 0, nil, badRequest("unknown status %q (want queued, running, held, succeeded or failed)", s)
		}
		f.Status = bot.RunStatus(s)
	}
	if p := q.Get("platform"); p != "" {
		if !platformRE.MatchString(p) {
			return f, 0, nil, badRequest("platform %q is not a platform name (such as slack, line, web)", clipRunes(p, 40))
		}
		f.Platform = p
	}
	if app := q.Get("app"); app != "" {
		if !platformRE.MatchString(app) { // App names are spelt like platform names.
			return f, 0, nil, badRequest("app %q is not an app name (lower-case letters, digits, - or _)", clipRunes(app, 40))
		}
		f.App = app
	}
	if c := q.Get("code"); c != "" {
		if !slices.Contains(bot.Codes(), bot.Code(c)) {
			return f, 0, nil, badRequest("unknown diagnosis code %q", clipRunes(c, 60))
		}
		f.Code = bot.Code(c)
	}
	limit = defaultLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxLimit {
			return f, 0, nil, badRequest("limit must be a whole number from 1 to %d, not %q", maxLimit, clipRunes(s, 20))
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
		if errors.Is(err, bot.ErrNotFound) {
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
func (a *api) page(ctx context.Context, f bot.RunFilter, limit int, cursor *bot.Run) ([]bot.Run, error) {
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
func (a *api) summarize(r bot.Run) runSummary {
	reply := r.Reply
	if a.redact != nil {
		reply = a.redact.Replace(reply)
	}
	s := runSummary{ID: r.ID, Platform: r.Platform, App: r.App, Status: r.Status, Code: r.Code, Attempt: r.Attempt,
		CreatedAt: r.CreatedAt, FinishedAt: r.FinishedAt, Files: len(r.Message.Files), ReplyExcerpt: replyExcerpt(reply)}
	if r.Diagnosis != nil {
		s.Summary = r.Diagnosis.Summary
		if s.Code == "" {
			s.Code = r.Diagnosis.Code
		}
	}
	if !r.FinishedAt.IsZero() && (r.Status == bot.RunSucceeded || r.Status == bot.RunFailed) {
		s.DurationMS = durationMS(r.FinishedAt.Sub(r.CreatedAt))
	}
	return s
}

// replyExcerpt is the start of a reply on one line, for the list.
func replyExcerpt(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return clipRunes(s, excerptRunes)
}

func clipRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

// durationMS is a duration in milliseconds, to the microsecond: most steps take well under one.
func durationMS(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (a *api) getRun(w http.ResponseWriter, r *http.Request) {
	d, ok := a.detail(w, r)
	if ok {
		a.writeJSON(w, http.StatusOK, d)
	}
}

// detail loads a run with its steps and node events, or answers the request with why it could not.
func (a *api) detail(w http.ResponseWriter, r *http.Request) (runDetail, bool) {
	id := r.PathValue("id")
	run, err := a.cfg.Store.Run(r.Context(), id)
	if errors.Is(err, bot.ErrNotFound) {
		a.writeError(w, http.StatusNotFound, fmt.Sprintf("no run %q", clipRunes(id, 60)))
		return runDetail{}, false
	}
	if err != nil {
		a.internal(w, r, "load run", err)
		return runDetail{}, false
	}
	steps, err := a.cfg.Store.Steps(r.Context(), id)
	if err != nil {
		a.internal(w, r, "load steps", err)
		return runDetail{}, false
	}
	events, err := a.cfg.Store.NodeEvents(r.Context(), id)
	if err != nil {
		a.internal(w, r, "load node events", err)
		return runDetail{}, false
	}
	files, err := a.cfg.Store.OutputFiles(r.Context(), id)
	if err != nil {
		a.internal(w, r, "load output files", err)
		return runDetail{}, false
	}
	d := runDetail{Run: a.viewRun(run), Steps: make([]stepView, 0, len(steps)), NodeEvents: events,
		Nodes: mergeNodes(events, run.Status == bot.RunSucceeded || run.Status == bot.RunFailed), Diagnosis: run.Diagnosis,
		OutputFiles: make([]outputFileView, 0, len(files))}
	for _, f := range files {
		u, err := bot.FilePath(r.Context(), a.cfg.Store, f)
		if err != nil {
			a.internal(w, r, "sign output file link", err)
			return runDetail{}, false
		}
		d.OutputFiles = append(d.OutputFiles, outputFileView{ID: f.ID, Attempt: f.Attempt, Name: f.Name, MIMEType: f.MIMEType,
			Size: f.Size, Image: f.Image(), URL: u, ExpiresAt: f.ExpiresAt})
	}
	if d.NodeEvents == nil {
		d.NodeEvents = []bot.NodeEvent{}
	}
	for _, s := range steps {
		d.Steps = append(d.Steps, stepView{Attempt: s.Attempt, N: s.N, Of: s.Of, Label: fmt.Sprintf("[%d/%d]", s.N, s.Of),
			Name: s.Name, Status: s.Status, Start: s.Start, DurationMS: durationMS(s.Duration), Code: s.Code, Error: s.Error,
			Fields: s.Fields})
	}
	return d, true
}

func (a *api) viewRun(r bot.Run) runView {
	m := r.Message
	v := runView{runSummary: a.summarize(r), EventID: r.EventID, UpdatedAt: r.UpdatedAt, DifyRunID: r.DifyRunID,
		DifyTaskID: r.DifyTaskID, ConversationID: r.ConversationID, Reply: r.Reply, HeldNotified: r.HeldNotified,
		Message: messageView{ChatID: m.ChatID, ThreadID: m.ThreadID, UserID: m.UserID,
			TextChars: utf8.RuneCountInString(m.Text), Files: make([]fileView, 0, len(m.Files)), ReceivedAt: m.ReceivedAt,
			Redelivery: m.Redelivery}}
	for _, f := range m.Files {
		v.Message.Files = append(v.Message.Files, fileView{ID: f.ID, Name: f.Name, MIMEType: f.MIMEType, Size: f.Size})
	}
	return v
}

// mergeNodes pairs each node_finished with the earliest unmatched node_started of the same node, so nodes that
// run more than once (inside an iteration or a loop) each get their own entry.
func mergeNodes(events []bot.NodeEvent, ended bool) []nodeView {
	out := []nodeView{}
	open := map[string][]int{}
	for _, e := range events {
		switch e.Event {
		case "node_started":
			status := "running"
			if ended {
				status = "unfinished"
			}
			open[e.NodeID] = append(open[e.NodeID], len(out))
			out = append(out, nodeView{NodeID: e.NodeID, NodeType: e.NodeType, Title: e.Title, Index: e.Index,
				Status: status, StartedAt: e.At})
		case "node_finished":
			i := -1
			if q := open[e.NodeID]; len(q) > 0 {
				i, open[e.NodeID] = q[0], q[1:]
			} else {
				out = append(out, nodeView{NodeID: e.NodeID, NodeType: e.NodeType, Title: e.Title, Index: e.Index})
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
