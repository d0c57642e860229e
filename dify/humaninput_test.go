package dify

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/dify/difytest"
)

// onePixelPNG is the smallest PNG, for a form's photo.
var onePixelPNG, _ = base64.StdEncoding.DecodeString("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")

func pausedAt(t *testing.T, err error) *PausedError {
	t.Helper()
	var pe *PausedError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a *PausedError", err)
	}
	return pe
}

// A run that pauses at a Human Input node returns its form; submitting every input with an action resumes it,
// and FollowRun follows it to the answer, which holds what was submitted.
func TestHumanInputPauseSubmitFollow(t *testing.T) {
	sim := newSim(t, difytest.Options{Scenario: "human_input"})
	c := newTestClient(t, sim.URL())
	ctx := context.Background()
	run, err := c.RunWorkflow(ctx, RunRequest{Inputs: map[string]any{"query": "what tea is this?"}, User: "u1"})
	pe := pausedAt(t, err)
	if run == nil || run.Status != "paused" || pe.RunID == "" || len(pe.Forms) != 1 {
		t.Fatalf("run %+v, paused %+v", run, pe)
	}
	f := pe.Forms[0]
	if f.Token == "" || f.NodeTitle != "Check the product" || len(f.Inputs) != 3 || len(f.Actions) != 2 ||
		f.Defaults["note"] != "Looks fine" || f.Expires.IsZero() || !strings.Contains(f.Content, "Please check") {
		t.Fatalf("form %+v", f)
	}
	if in := f.Inputs[0]; in.Type != "select" || in.Name != "product" || len(in.Options) != 3 {
		t.Errorf("select %+v", in)
	}
	got, err := c.GetForm(ctx, f.Token)
	if err != nil || len(got.Actions) != 2 || got.Inputs[0].Options[1] != "Barley tea" {
		t.Fatalf("GetForm: %+v, %v", got, err)
	}
	// The detail of a paused run says so.
	if _, err := c.WaitRun(ctx, pe.RunID); !errors.As(err, new(*PausedError)) {
		t.Errorf("WaitRun of a paused run: %v", err)
	}

	// Missing inputs are refused, and the form stays open.
	var ae *APIError
	err = c.SubmitForm(ctx, f.Token, Submission{Inputs: map[string]any{"product": "Barley tea"}, Action: "approve", User: "u1"})
	if !errors.As(err, &ae) || ae.Code != "invalid_form_data" {
		t.Fatalf("incomplete submit: %v", err)
	}
	up, err := c.UploadFile(ctx, Upload{User: "u1", Name: "label.png", MIMEType: "image/png", Body: bytes.NewReader(onePixelPNG)})
	if err != nil {
		t.Fatal(err)
	}
	sub := Submission{Inputs: map[string]any{"product": "Barley tea", "note": "Fresh batch", "label": LocalImage(up.ID)}, Action: "approve", User: "u1"}
	if err := c.SubmitForm(ctx, f.Token, sub); err != nil {
		t.Fatal(err)
	}
	// Sent again (a lost answer, a second replica): 412 already submitted is success, and nothing changes.
	if err := c.SubmitForm(ctx, f.Token, sub); err != nil {
		t.Errorf("second submit: %v", err)
	}
	if n := len(sim.Submissions()); n != 1 {
		t.Errorf("%d submissions accepted, want 1", n)
	}
	var events []string
	done, err := c.FollowRun(ctx, FollowRequest{RunID: pe.RunID, User: "u1", Answered: []string{f.ID},
		OnEvent: func(ev Event) { events = append(events, ev.Event) }})
	if err != nil {
		t.Fatalf("FollowRun: %v (events %v)", err, events)
	}
	text, _ := done.Outputs["text"].(string)
	for _, want := range []string{"Approve", "product=Barley tea", "note=Fresh batch", "label=label.png (image/png)"} {
		if !strings.Contains(text, want) {
			t.Errorf("answer %q lacks %q", text, want)
		}
	}
	// A finished run's events route answers with its workflow_finished alone.
	again, err := c.FollowRun(ctx, FollowRequest{RunID: pe.RunID, User: "u1"})
	if err != nil || again.Status != "succeeded" {
		t.Errorf("following a finished run: %+v, %v", again, err)
	}
}

// Two Human Input nodes in a row: following the run after the first form returns the second pause.
func TestHumanInputTwoNodes(t *testing.T) {
	sim := newSim(t, difytest.Options{Scenario: "human_input_twice"})
	c := newTestClient(t, sim.URL())
	ctx := context.Background()
	_, err := c.RunWorkflow(ctx, RunRequest{Inputs: map[string]any{"query": "order"}, User: "u1"})
	first := pausedAt(t, err).Forms[0]
	if err := c.SubmitForm(ctx, first.Token, Submission{Inputs: map[string]any{"size": "M"}, Action: "next", User: "u1"}); err != nil {
		t.Fatal(err)
	}
	_, err = c.FollowRun(ctx, FollowRequest{RunID: pausedAt(t, err).RunID, User: "u1", Answered: []string{first.ID}})
	second := pausedAt(t, err)
	if len(second.Forms) != 1 || second.Forms[0].NodeTitle != "Confirm the order" {
		t.Fatalf("second pause %+v", second)
	}
	f := second.Forms[0]
	if err := c.SubmitForm(ctx, f.Token, Submission{Inputs: map[string]any{"note": "ring twice"}, Action: "order", User: "u1"}); err != nil {
		t.Fatal(err)
	}
	run, err := c.FollowRun(ctx, FollowRequest{RunID: second.RunID, User: "u1", Answered: []string{first.ID, f.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if text, _ := run.Outputs["text"].(string); !strings.Contains(text, "size=M") || !strings.Contains(text, "note=ring twice") {
		t.Errorf("answer %q", text)
	}
}

// A form that expires is refused with ErrFormExpired, and the run goes on along the timeout branch.
func TestHumanInputExpiry(t *testing.T) {
	sim := newSim(t, difytest.Options{Scenario: "human_input", FormTimeout: 50 * time.Millisecond})
	c := newTestClient(t, sim.URL())
	ctx := context.Background()
	_, err := c.RunWorkflow(ctx, RunRequest{Inputs: map[string]any{"query": "q"}, User: "u1"})
	pe := pausedAt(t, err)
	run, err := c.FollowRun(ctx, FollowRequest{RunID: pe.RunID, User: "u1", Answered: []string{pe.Forms[0].ID}})
	if err != nil {
		t.Fatal(err)
	}
	if text, _ := run.Outputs["text"].(string); !strings.Contains(text, "in time") {
		t.Errorf("answer %q", text)
	}
	err = c.SubmitForm(ctx, pe.Forms[0].Token, Submission{Inputs: map[string]any{"product": "x", "note": "", "label": ""}, Action: "approve", User: "u1"})
	if !errors.Is(err, ErrFormExpired) {
		t.Errorf("late submit: %v", err)
	}
}

// A node without WebApp delivery pauses with a null token.
func TestHumanInputNoToken(t *testing.T) {
	sim := newSim(t, difytest.Options{Scenario: "human_input_no_token"})
	c := newTestClient(t, sim.URL())
	_, err := c.RunWorkflow(context.Background(), RunRequest{Inputs: map[string]any{"query": "q"}, User: "u1"})
	if pe := pausedAt(t, err); pe.Forms[0].Token != "" || pe.Forms[0].NodeTitle != "Check the product" {
		t.Errorf("form %+v", pe.Forms[0])
	}
}

// A chatflow pauses the same way, inside its chat envelope: the stream ends at workflow_paused without
// message_end, and the pause carries the form (here only in the pause reasons, with a token, the Graphon
// spelling of the reason, and the GET route's key for the actions) and the conversation.
func TestHumanInputChatflowPause(t *testing.T) {
	stream := `data: {"event":"workflow_started","task_id":"t1","workflow_run_id":"run-1","conversation_id":"conv-1","message_id":"msg-1","created_at":1,"data":{"id":"run-1"}}

data: {"event":"workflow_paused","task_id":"t1","workflow_run_id":"run-1","conversation_id":"conv-1","message_id":"msg-1","created_at":1,"data":{"workflow_run_id":"run-1","paused_nodes":["n1"],"outputs":{},"status":"paused","reasons":[{"TYPE":"hitl_required","form_id":"form-1","form_content":"Approve?","inputs":[{"type":"file-list","output_variable_name":"docs","allowed_file_types":["image"],"number_limits":"2"}],"user_actions":[{"id":"ok","title":"OK","button_style":"primary"}],"node_id":"n1","node_title":"Approval","resolved_default_values":{},"form_token":"tok_1234567890abcdefghij","expiration_time":1705494029}]}}

`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, stream)
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL+"/v1")
	_, err := c.SendChatMessage(context.Background(), ChatRequest{Query: "hi", User: "u1"})
	pe := pausedAt(t, err)
	if pe.RunID != "run-1" || pe.ConversationID != "conv-1" || len(pe.Forms) != 1 {
		t.Fatalf("paused %+v", pe)
	}
	f := pe.Forms[0]
	if f.Token != "tok_1234567890abcdefghij" || f.NodeTitle != "Approval" || len(f.Actions) != 1 || f.Actions[0].ID != "ok" ||
		f.Inputs[0].Type != "file-list" || f.Inputs[0].Limit != 2 || !f.Expires.Equal(time.Unix(1705494029, 0)) {
		t.Errorf("form %+v", f)
	}
	if s := c.Breaker().Status(); s.Failures != 0 {
		t.Errorf("a pause counted as %d breaker failures", s.Failures)
	}
}
