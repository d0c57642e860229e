package difytest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Human Input (dify-api-2026.md §4): a node that pauses the run for a person. The stream that started the run
// sends human_input_required and workflow_paused and closes; the run then waits for POST
// /v1/form/human_input/{token} (or the form's expiry) and goes on, its further events reaching only those who
// follow GET /v1/workflow/{id}/events.

// Route keys of Human Input.
const (
	RouteForm       = "GET /v1/form/human_input/{token}"
	RouteFormSubmit = "POST /v1/form/human_input/{token}"
	RouteEvents     = "GET /v1/workflow/{id}/events"
)

// DefaultFormTimeout is how long a simulated form waits when Options.FormTimeout is zero: the node's timeout.
const DefaultFormTimeout = time.Hour

// humanNode is a Human Input node of a scenario's graph.
type humanNode struct {
	node
	content string
	inputs  []humanInput
	actions []humanAction
	noToken bool // No WebApp delivery: form_token is null and the form routes answer 404.
}

type humanInput struct {
	typ, name string
	options   []string // select.
	def       string   // paragraph: the default value.
}

type humanAction struct{ id, title, style string }

// The Human Input nodes of the catalogue.
var (
	checkNode = humanNode{node: node{"1711528920377", "human-input", "Check the product"},
		content: "**Please check the product.**\n\nWhich one is it, anything to add, and a close-up of the label?",
		inputs: []humanInput{
			{typ: "select", name: "product", options: []string{"Green tea", "Barley tea", "Oolong tea"}},
			{typ: "paragraph", name: "note", def: "Looks fine"},
			{typ: "file", name: "label"},
		},
		actions: []humanAction{{"approve", "Approve", "primary"}, {"send_back", "Send back", "default"}}}
	sizeNode = humanNode{node: node{"1711528920412", "human-input", "Pick a size"},
		content: "Which size should we order?",
		inputs:  []humanInput{{typ: "select", name: "size", options: []string{"S", "M", "L"}}},
		actions: []humanAction{{"next", "Next", "primary"}}}
	confirmNode = humanNode{node: node{"1711528920455", "human-input", "Confirm the order"},
		content: "Anything the shop should know?",
		inputs:  []humanInput{{typ: "paragraph", name: "note"}},
		actions: []humanAction{{"order", "Order", "primary"}, {"cancel", "Cancel", "default"}}}
)

// Submission is one form submission the fake accepted.
type Submission struct {
	FormID string                     `json:"form_id"`
	Node   string                     `json:"node"`
	Action string                     `json:"action"`
	User   string                     `json:"user"`
	Inputs map[string]json.RawMessage `json:"inputs"`
}

// Submissions returns the accepted form submissions, oldest first: a test proves with it that a form was
// submitted once with every input.
func (s *Sim) Submissions() []Submission {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.submitted)
}

// form is one paused node's form. Guarded by Sim.mu.
type form struct {
	id, token string
	n         humanNode
	run       *run
	expires   time.Time
	status    string // waiting, submitted, timeout.
	done      chan Submission
}

// live is a run's events after its first stream closed: the ones followers of the events route see.
type live struct {
	history [][]byte // workflow_started and node events, for the state snapshot.
	paused  []byte   // The workflow_paused of the pause in force, or nil.
	frames  [][]byte // Everything sent since the first pause.
	grew    chan struct{}
	ended   bool
}

// publish appends a frame for followers. Sim.mu must be held.
func (l *live) publish(f []byte) {
	l.frames = append(l.frames, f)
	close(l.grew)
	l.grew = make(chan struct{})
}

// pause sends the events of a Human Input node and waits for its form. It reports how the run goes on: the
// answer's addition, or false when the run ends stopped.
func (s *Sim) pause(ctx context.Context, p *plan, n humanNode, execID string, index int, prev string, start time.Time) (string, bool) {
	timeout := s.opts.FormTimeout
	if timeout <= 0 {
		timeout = DefaultFormTimeout
	}
	f := &form{id: newID(), n: n, run: p.run, expires: time.Now().Add(timeout), status: "waiting", done: make(chan Submission, 1)}
	if !n.noToken {
		f.token = token22()
	}
	var inputs []obj
	defaults := obj{}
	for _, in := range n.inputs {
		o := obj{{"type", in.typ}, {"output_variable_name", in.name}}
		switch in.typ {
		case "paragraph":
			var def any
			if in.def != "" {
				def = obj{{"type", "constant"}, {"selector", []string{}}, {"value", in.def}}
			}
			o = append(o, kv{"default", def})
			defaults = append(defaults, kv{in.name, in.def})
		case "select":
			o = append(o, kv{"option_source", obj{{"type", "constant"}, {"selector", []string{}}, {"value", in.options}}})
		case "file", "file-list":
			o = append(o, kv{"allowed_file_types", []string{"image"}}, kv{"allowed_file_extensions", []string{}},
				kv{"allowed_file_upload_methods", []string{"local_file", "remote_url"}})
		}
		inputs = append(inputs, o)
	}
	var actions []obj
	for _, a := range n.actions {
		actions = append(actions, obj{{"id", a.id}, {"title", a.title}, {"button_style", a.style}})
	}
	formData := obj{{"form_id", f.id}, {"form_token", nullable(f.token)}, {"node_id", n.id}, {"node_title", n.title},
		{"form_content", n.content}, {"inputs", inputs}, {"actions", actions}, {"display_in_ui", false},
		{"resolved_default_values", defaults}, {"expiration_time", f.expires.Unix()}}
	reason := append(obj{{"TYPE", "human_input_required"}}, formData...)
	s.mu.Lock()
	p.run.status = "paused"
	if f.token != "" {
		s.forms.put(f.token, f)
	}
	s.mu.Unlock()
	p.workflowEvent("human_input_required", formData, false)
	p.workflowEvent("workflow_paused", obj{{"workflow_run_id", p.run.id}, {"paused_nodes", []string{n.id}},
		{"outputs", obj{}}, {"reasons", []obj{reason}}, {"status", "paused"}, {"created_at", p.run.createdAt.Unix()},
		{"elapsed_time", secs(time.Since(p.run.createdAt).Seconds())}, {"total_tokens", 0}, {"total_steps", index}}, false)
	p.detach()

	t := time.NewTimer(time.Until(f.expires))
	defer t.Stop()
	var sub Submission
	select {
	case sub = <-f.done:
	case <-t.C:
	case <-ctx.Done():
		return "", false
	case <-p.run.stop:
		return "", false
	}
	// Dify resumes the run on a worker queue, a moment after the submit (the latency, here).
	if !p.wait(ctx, p.latency) {
		return "", false
	}
	s.mu.Lock()
	p.run.status = "running"
	p.run.live.paused = nil
	timedOut := f.status == "waiting"
	if timedOut {
		f.status = "timeout"
	}
	s.mu.Unlock()
	if timedOut {
		p.workflowEvent("human_input_form_timeout", obj{{"node_id", n.id}, {"node_title", n.title}, {"expiration_time", f.expires.Unix()}}, false)
		p.workflowEvent("node_finished", p.nodeFinished(n.node, execID, index, prev, start, "succeeded", ""), false)
		return fmt.Sprintf("No one answered %q in time.", n.title), true
	}
	title := sub.Action
	for _, a := range n.actions {
		if a.id == sub.Action {
			title = a.title
		}
	}
	p.workflowEvent("human_input_form_filled", obj{{"node_id", n.id}, {"node_title", n.title}, {"rendered_content", n.content},
		{"action_id", sub.Action}, {"action_text", title}, {"submitted_data", sub.Inputs}}, false)
	p.workflowEvent("node_finished", p.nodeFinished(n.node, execID, index, prev, start, "succeeded", ""), false)
	var got []string
	for _, in := range n.inputs {
		got = append(got, in.name+"="+s.describeAnswer(sub.Inputs[in.name]))
	}
	return fmt.Sprintf("%s: %s (%s).", n.title, title, strings.Join(got, ", ")), true
}

// describeAnswer renders a submitted value for the answer: text as it is, a file by what was uploaded.
func (s *Sim) describeAnswer(raw json.RawMessage) string {
	var text string
	if json.Unmarshal(raw, &text) == nil {
		return text
	}
	var files []json.RawMessage
	if json.Unmarshal(raw, &files) != nil {
		files = []json.RawMessage{raw}
	}
	var out []string
	for _, f := range files {
		ref, e := s.fileRef(f, "", false)
		switch {
		case e != nil:
			out = append(out, "an unreadable file")
		case ref.up != nil:
			out = append(out, fmt.Sprintf("%s (%s)", ref.up.name, ref.up.mime))
		default:
			out = append(out, ref.url)
		}
	}
	return strings.Join(out, " + ")
}

// detach ends the stream that started the run; what the run sends from now on goes to its followers.
func (p *plan) detach() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.detachedTo == nil {
		p.detachedTo = p.run.live
		p.closeEvents()
	}
}

// token22 is a form token as Dify makes them: 22 random letters and digits.
func token22() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 22)
	for i := range b {
		b[i] = alphabet[rand.IntN(len(alphabet))]
	}
	return string(b)
}

// getForm answers GET /v1/form/human_input/{token} (§4.2).
func (s *Sim) getForm(w http.ResponseWriter, r *http.Request, c *call) {
	s.mu.Lock()
	f, e := s.formFor(r.PathValue("token"))
	var out obj
	if e == nil {
		var inputs []obj
		for _, in := range f.n.inputs {
			o := obj{{"type", in.typ}, {"output_variable_name", in.name}}
			if in.typ == "select" {
				o = append(o, kv{"option_source", obj{{"type", "constant"}, {"selector", []string{}}, {"value", in.options}}})
			}
			inputs = append(inputs, o)
		}
		var actions []obj
		for _, a := range f.n.actions {
			actions = append(actions, obj{{"id", a.id}, {"title", a.title}, {"button_style", a.style}})
		}
		defaults := obj{}
		for _, in := range f.n.inputs {
			if in.def != "" {
				defaults = append(defaults, kv{in.name, in.def})
			}
		}
		out = obj{{"form_content", f.n.content}, {"inputs", inputs}, {"resolved_default_values", defaults},
			{"user_actions", actions}, {"expiration_time", f.expires.Unix()}}
	}
	s.mu.Unlock()
	if e != nil {
		writeErr(w, c.sc.dialect, *e)
		return
	}
	writeJSON(w, c.sc.dialect, http.StatusOK, out)
}

// formFor finds a form that can still be answered. Sim.mu must be held.
func (s *Sim) formFor(token string) (*form, *apiErr) {
	f, ok := s.forms.get(token)
	switch {
	case !ok:
		return nil, ptr(errNotFound("Form not found"))
	case f.status == "submitted":
		return nil, &apiErr{http.StatusPreconditionFailed, "human_input_form_submitted", "This form has already been submitted by another user, form_id=" + f.id, ""}
	case f.status != "waiting" || !time.Now().Before(f.expires):
		return nil, &apiErr{http.StatusPreconditionFailed, "human_input_form_expired", "This form has expired, form_id=" + f.id, ""}
	}
	return f, nil
}

// submitForm answers POST /v1/form/human_input/{token} (§4.3): every input and a valid action, once.
func (s *Sim) submitForm(w http.ResponseWriter, r *http.Request, c *call) {
	d := c.sc.dialect
	body, _ := io.ReadAll(io.LimitReader(r.Body, maxJSONBody))
	var in struct {
		Inputs map[string]json.RawMessage `json:"inputs"`
		Action string                     `json:"action"`
		User   string                     `json:"user"`
	}
	if json.Unmarshal(body, &in) != nil {
		writeErr(w, d, apiErr{http.StatusBadRequest, "bad_request", "The browser (or proxy) sent a request that this server could not understand.", ""})
		return
	}
	if in.User == "" {
		writeErr(w, d, errInvalid("Arg user must be provided."))
		return
	}
	s.mu.Lock()
	f, e := s.formFor(r.PathValue("token"))
	if e == nil {
		var missing []string
		for _, fi := range f.n.inputs {
			if _, ok := in.Inputs[fi.name]; !ok {
				missing = append(missing, fi.name)
			}
		}
		valid := slices.ContainsFunc(f.n.actions, func(a humanAction) bool { return a.id == in.Action })
		switch {
		case !valid:
			e = &apiErr{http.StatusBadRequest, "invalid_form_data", "Invalid action: " + in.Action, ""}
		case len(missing) > 0:
			e = &apiErr{http.StatusBadRequest, "invalid_form_data", "Missing required inputs: " + strings.Join(missing, ", "), ""}
		}
	}
	if e == nil {
		f.status = "submitted"
		sub := Submission{FormID: f.id, Node: f.n.title, Action: in.Action, User: in.User, Inputs: in.Inputs}
		s.submitted = append(s.submitted, sub)
		f.done <- sub
	}
	s.mu.Unlock()
	if e != nil {
		writeErr(w, d, *e)
		return
	}
	writeJSON(w, d, http.StatusOK, obj{})
}

// events answers GET /v1/workflow/{id}/events (§4.4): a finished run's workflow_finished, else (with
// include_state_snapshot) the run so far and then its live events, never those sent before subscribing.
func (s *Sim) events(w http.ResponseWriter, r *http.Request, c *call) {
	d := c.sc.dialect
	q := r.URL.Query()
	user := q.Get("user")
	switch {
	case user == "":
		writeErr(w, d, errInvalid("Arg user must be provided."))
		return
	case c.mode != "workflow" && c.mode != "advanced-chat":
		writeErr(w, d, apiErr{http.StatusBadRequest, "not_workflow_app", msgAppMode, ""})
		return
	}
	snapshot := strings.EqualFold(q.Get("include_state_snapshot"), "true")
	keepOnPause := strings.EqualFold(q.Get("continue_on_pause"), "true")
	s.mu.Lock()
	rn, _ := s.runByID.get(r.PathValue("id"))
	if rn == nil || rn.user != user || rn.live == nil {
		s.mu.Unlock()
		writeErr(w, d, errNotFound("Workflow run not found"))
		return
	}
	l := rn.live
	var first [][]byte
	if snapshot {
		first = slices.Clone(l.history)
		if l.paused != nil {
			first = append(first, l.paused)
		}
	}
	if l.ended {
		first = [][]byte{l.frames[len(l.frames)-1]}
	}
	next, grew, ended := len(l.frames), l.grew, l.ended
	s.mu.Unlock()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	write := func(f []byte) bool {
		fmt.Fprintf(w, "data: %s\n\n", f)
		return rc.Flush() == nil
	}
	terminal := func(f []byte) bool {
		var ev struct{ Event string }
		json.Unmarshal(f, &ev)
		return ev.Event == "workflow_finished" || ev.Event == "error" || ev.Event == "workflow_paused" && !keepOnPause
	}
	for _, f := range first {
		if !write(f) || terminal(f) {
			return
		}
	}
	if ended {
		return
	}
	ping := time.NewTicker(s.opts.PingEvery)
	defer ping.Stop()
	for {
		select {
		case <-grew:
		case <-ping.C:
			io.WriteString(w, "event: ping\n\n")
			if rc.Flush() != nil {
				return
			}
			continue
		case <-r.Context().Done():
			return
		case <-s.base.Done():
			return
		}
		s.mu.Lock()
		frames := slices.Clone(l.frames[next:])
		next, grew = len(l.frames), l.grew
		s.mu.Unlock()
		for _, f := range frames {
			if !write(f) || terminal(f) {
				return
			}
		}
	}
}

// newLive gives a run with Human Input nodes its follower state.
func newLive() *live { return &live{grew: make(chan struct{})} }

// keep records what a follower's snapshot or live stream needs of a frame. Sim.mu must be held.
func (l *live) keep(event string, f []byte, detached bool) {
	switch event {
	case "workflow_started", "node_started", "node_finished":
		l.history = append(l.history, f)
	case "workflow_paused":
		l.paused = f
	}
	if detached {
		l.publish(f)
	}
	if event == "workflow_finished" || event == "error" {
		l.ended = true
		if !detached {
			l.publish(f) // A finished run's events route answers with it.
		}
	}
}
