package dify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// A workflow (or chatflow) may stop at a Human Input node and wait for a person: its stream sends
// human_input_required, one per form, then workflow_paused, and closes. The client reports that as a
// *PausedError carrying the forms; SubmitForm answers one, and FollowRun follows the run from there
// (dify-api-2026.md §4).

// Form is one Human Input node's form that a paused run waits on.
type Form struct {
	ID        string `json:"form_id"`
	Token     string `json:"form_token"` // "" when the node has no WebApp delivery: the API cannot answer it.
	NodeID    string `json:"node_id"`
	NodeTitle string `json:"node_title"`
	Content   string `json:"form_content"` // Markdown.
	Inputs    []FormInput
	Actions   []FormAction      `json:"actions"`
	Defaults  map[string]string `json:"resolved_default_values"`
	// Expires is when the form stops taking answers; zero when it never does.
	Expires time.Time
}

// FormInput is one field of a form: a paragraph of text, a choice, or files.
type FormInput struct {
	Type      string   `json:"type"` // paragraph, select, file, file-list.
	Name      string   `json:"output_variable_name"`
	Options   []string `json:"options,omitempty"`    // select: the choices.
	FileTypes []string `json:"file_types,omitempty"` // file, file-list: image, document, ….
	Limit     int      `json:"limit,omitempty"`      // file-list: the most files; 0 is no limit.
}

// FormAction is one of a form's buttons; submitting names one.
type FormAction struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Style string `json:"button_style,omitempty"`
}

// formJSON is a form as events, pause reasons and GET /form/human_input carry it.
type formJSON struct {
	Type      string            `json:"TYPE"` // Pause reasons only.
	ID        string            `json:"form_id"`
	Token     *string           `json:"form_token"`
	NodeID    string            `json:"node_id"`
	NodeTitle string            `json:"node_title"`
	Content   string            `json:"form_content"`
	Inputs    []formInputJSON   `json:"inputs"`
	Actions   []FormAction      `json:"actions"`
	User      []FormAction      `json:"user_actions"` // The GET route's name for actions.
	Defaults  map[string]string `json:"resolved_default_values"`
	Expires   *flexInt          `json:"expiration_time"`
}

type formInputJSON struct {
	Type      string   `json:"type"`
	Name      string   `json:"output_variable_name"`
	FileTypes []string `json:"allowed_file_types"`
	Limit     flexInt  `json:"number_limits"`
	Source    *struct {
		Value json.RawMessage `json:"value"`
	} `json:"option_source"`
}

func (f formJSON) form() Form {
	out := Form{ID: f.ID, NodeID: f.NodeID, NodeTitle: f.NodeTitle, Content: f.Content, Actions: f.Actions, Defaults: f.Defaults}
	if f.Token != nil {
		out.Token = *f.Token
	}
	if len(out.Actions) == 0 {
		out.Actions = f.User
	}
	if f.Expires != nil && *f.Expires > 0 {
		out.Expires = time.Unix(int64(*f.Expires), 0).UTC()
	}
	for _, in := range f.Inputs {
		fi := FormInput{Type: in.Type, Name: in.Name, FileTypes: in.FileTypes, Limit: int(in.Limit)}
		if in.Source != nil {
			_ = json.Unmarshal(in.Source.Value, &fi.Options) // A variable source not yet resolved has none.
		}
		out.Inputs = append(out.Inputs, fi)
	}
	return out
}

// PausedError is a run that waits at one or more Human Input nodes. It is not a failure: the run goes on once
// its forms are submitted (or time out). Forms may be empty when the pause was learned from the run's detail;
// FollowRun then reads them from the run's events.
type PausedError struct {
	Op             string
	RunID          string
	TaskID         string
	ConversationID string // Chatflows.
	MessageID      string
	Forms          []Form
}

func (e *PausedError) Error() string {
	var nodes []string
	for _, f := range e.Forms {
		nodes = append(nodes, fmt.Sprintf("%q", f.NodeTitle))
	}
	return fmt.Sprintf("dify: %s: run %s is paused at a Human Input node %s", e.Op, e.RunID, strings.Join(nodes, ", "))
}

// ErrFormExpired matches the *APIError of a form that expired before it was answered (412 human_input_form_expired).
var ErrFormExpired = errors.New("human input form expired")

// observePause keeps what a pause event says about the run's forms.
func (st *runState) observePause(data []byte) {
	var ev struct {
		Event string `json:"event"`
		Data  struct {
			formJSON
			Reasons []formJSON `json:"reasons"`
		} `json:"data"`
	}
	if json.Unmarshal(data, &ev) != nil {
		return
	}
	add := func(f formJSON) {
		if f.ID == "" || slices.ContainsFunc(st.forms, func(g Form) bool { return g.ID == f.ID }) {
			return
		}
		st.forms = append(st.forms, f.form())
	}
	switch ev.Event {
	case "human_input_required":
		add(ev.Data.formJSON)
	case "workflow_paused":
		for _, r := range ev.Data.Reasons {
			if r.Type == "" || r.Type == "human_input_required" || r.Type == "hitl_required" {
				add(r)
			}
		}
	}
}

func (st *runState) pausedError(op string) *PausedError {
	return &PausedError{Op: op, RunID: st.runID, TaskID: st.taskID, ConversationID: st.conversationID,
		MessageID: st.messageID, Forms: st.forms}
}

// GetForm reads a form by its token (GET /v1/form/human_input/{token}); a select whose options come from a
// variable has them resolved here.
func (c *Client) GetForm(ctx context.Context, token string) (*Form, error) {
	const op = "get human input form"
	var out formJSON
	err := c.call(ctx, c.retry, canRepeat, func() error {
		return c.getJSON(ctx, op, "/form/human_input/"+url.PathEscape(token), &out)
	})
	if err != nil {
		return nil, err
	}
	f := out.form()
	f.Token = token
	return &f, nil
}

// Submission answers a form: every input by its name, and the action taken.
type Submission struct {
	Inputs map[string]any
	Action string
	User   string
}

// SubmitForm submits a form (POST /v1/form/human_input/{token}). A form is one-shot, so sending it again is
// harmless: a lost answer is retried, and 412 human_input_form_submitted (it was, by us or another) is success.
// An expired form returns an *APIError matching ErrFormExpired.
func (c *Client) SubmitForm(ctx context.Context, token string, s Submission) error {
	const op = "submit human input form"
	if s.Inputs == nil {
		s.Inputs = map[string]any{}
	}
	body, err := json.Marshal(struct {
		Inputs map[string]any `json:"inputs"`
		Action string         `json:"action"`
		User   string         `json:"user"`
	}{s.Inputs, s.Action, s.User})
	if err != nil {
		return fmt.Errorf("dify: %s: %w", op, err)
	}
	err = c.call(ctx, c.retry, canRepeat, func() error {
		resp, err := c.send(ctx, request{op: op, method: http.MethodPost, route: "/form/human_input/" + url.PathEscape(token),
			body: bytes.NewReader(body), contentType: "application/json"})
		if err != nil {
			return err
		}
		var out map[string]any
		return decodeJSON(op, resp, &out)
	})
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusPreconditionFailed && ae.Code == "human_input_form_submitted" {
		return nil
	}
	return err
}

// FollowRequest follows a run after its forms were answered.
type FollowRequest struct {
	RunID string
	User  string // The run's end user: the events route is scoped to it.
	// Answered are the forms already answered (or expired): a pause that waits only on them is the old one,
	// before Dify resumed the run.
	Answered []string
	OnEvent  func(Event)
}

// FollowRun follows a run that was paused until it finishes or pauses at a form not in req.Answered. It reads
// GET /v1/workflow/{id}/events with the state snapshot (so nothing that happened before subscribing is
// missed, and a new pause is seen even if it came first), and, when that stream ends without an outcome,
// reads the run's detail before subscribing again. A run that finished returns like RunWorkflow's; a new pause
// returns a *PausedError. Like readRun it does not ask the breaker: the run is ours already.
func (c *Client) FollowRun(ctx context.Context, req FollowRequest) (*Run, error) {
	const op = "follow run"
	route := "/workflow/" + url.PathEscape(req.RunID) + "/events?" + url.Values{"user": {req.User},
		"include_state_snapshot": {"true"}, "continue_on_pause": {"true"}}.Encode()
	t := time.NewTimer(0)
	defer t.Stop()
	streams := true
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("dify: %s: %w", op, ctx.Err())
		case <-t.C:
		}
		t.Reset(c.pollEvery)
		if streams {
			st := runState{runID: req.RunID, started: true}
			run, err := c.followStream(ctx, op, route, &st, req)
			var ae *APIError
			switch {
			case err == nil:
				if run.Outputs == nil && len(st.answer) > 0 {
					run.Outputs = map[string]any{}
				}
				if _, ok := run.Outputs["answer"]; !ok && len(st.answer) > 0 {
					run.Outputs["answer"] = string(st.answer) // A chatflow's answer came as message events.
				}
				return run, runOutcome(op, run, &st)
			case errors.As(err, &ae) && !ae.InStream && ae.Status >= 400 && ae.Status < 500:
				// An older Dify without the events route: the run's detail is all there is.
				c.log.Info().Str("run_id", req.RunID).Err(err).Msg("the run's events cannot be followed; polling its detail")
				streams = false
			case isPause(err) || errors.As(err, new(*RunError)) || errors.As(err, &ae):
				return nil, err
			}
		}
		run, err := c.readRun(ctx, req.RunID)
		switch {
		case err != nil && (ctx.Err() != nil || !canRepeat(err)):
			return nil, err
		case err != nil || run.Status == "running" || run.Status == "paused":
			continue // Not yet resumed, or still going.
		}
		run.Recovered = true
		if run.ID == "" {
			run.ID = req.RunID
		}
		return run, runOutcome(op, run, &runState{})
	}
}

func isPause(err error) bool { var pe *PausedError; return errors.As(err, &pe) }

// followStream reads one subscription to a run's events, as readRunStream reads a run's first stream, except
// that a pause waiting only on answered forms is the old one and is read past.
func (c *Client) followStream(ctx context.Context, op, route string, st *runState, req FollowRequest) (*Run, error) {
	resp, err := c.send(ctx, request{op: op, method: http.MethodGet, route: route, stream: true})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	answered := req.Answered
	if answered == nil {
		answered = []string{}
	}
	return c.readRunStream(ctx, op, resp, st, req.OnEvent, answered)
}
