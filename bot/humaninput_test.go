package bot_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/bottest"
	"github.com/difybot/difybot/dify"
	"github.com/difybot/difybot/dify/difytest"
)

// say sends a text from user and checks the run ends as want, returning it.
func (h *harness) say(t *testing.T, event, user, text string, want bot.RunStatus) bot.Run {
	t.Helper()
	r, err := h.send(t, bot.Message{EventID: event, ChatID: "C1", UserID: user, Text: text})
	if err != nil || r.Status != want {
		t.Fatalf("%q: run %s %s (want %s), reply %q, err %v", text, r.ID, r.Status, want, r.Reply, err)
	}
	return r
}

// A workflow that asks back: the select, the paragraph, the photo and the action are asked one by one and
// answered by the person's next messages; the form is submitted once with every input, and the run's answer
// arrives once. A second tap on the action changes nothing.
func TestHumanInputAnsweredInChat(t *testing.T) {
	h := newHarness(t, "human_input")
	ctx := context.Background()
	a := h.say(t, "ev1", "U1", "what tea is this?", bot.RunWaiting)
	if !strings.Contains(a.Reply, "Please check the product.") || !strings.Contains(a.Reply, "Please choose product: Green tea / Barley tea / Oolong tea.") ||
		!slices.Equal(a.Choices, []string{"Green tea", "Barley tea", "Oolong tea"}) || !strings.Contains(a.Reply, "UTC") {
		t.Fatalf("first prompt %q, choices %v", a.Reply, a.Choices)
	}
	steps, _ := h.store.Steps(ctx, a.ID)
	if !strings.Contains(stepNames(steps), "run paused") || !strings.Contains(stepNames(steps), "answer asking") {
		t.Errorf("steps of the run that paused: %s", stepNames(steps))
	}

	// Not one of the choices: asked again.
	again := h.say(t, "ev2", "U1", "Jasmine", bot.RunSucceeded)
	if !strings.HasPrefix(again.Reply, "That is not one of the choices.") || len(again.Choices) != 3 {
		t.Errorf("asked again: %q %v", again.Reply, again.Choices)
	}
	b1 := h.say(t, "ev3", "U1", "Barley tea", bot.RunSucceeded)
	if !strings.Contains(b1.Reply, "Please type note") || !slices.Equal(b1.Choices, []string{"Looks fine"}) {
		t.Errorf("paragraph prompt %q %v", b1.Reply, b1.Choices)
	}
	b2 := h.say(t, "ev4", "U1", "Fresh batch", bot.RunSucceeded)
	if !strings.Contains(b2.Reply, "Please send a photo for label.") {
		t.Errorf("photo prompt %q", b2.Reply)
	}
	// A text where a photo is due asks again.
	h.say(t, "ev5", "U1", "here", bot.RunSucceeded)
	h.plat.AddFile("L1", bottest.PNG(t, 40, 30))
	b3, err := h.send(t, bot.Message{EventID: "ev6", ChatID: "C1", UserID: "U1", Files: []bot.File{{ID: "L1", Name: "label.png", MIMEType: "image/png"}}})
	if err != nil || b3.Status != bot.RunSucceeded || !strings.Contains(b3.Reply, "What should happen next?") ||
		!slices.Equal(b3.Choices, []string{"Approve", "Send back"}) {
		t.Fatalf("action prompt: %s %q %v %v", b3.Status, b3.Reply, b3.Choices, err)
	}
	steps, _ = h.store.Steps(ctx, b3.ID)
	if got := stepNames(steps); !strings.Contains(got, "fetch done") || !strings.Contains(got, "upload done") || !strings.Contains(got, "answer done") {
		t.Errorf("the photo's steps: %s", got)
	}
	before := len(h.plat.Finals())
	b4 := h.say(t, "ev7", "U1", "Approve", bot.RunSucceeded)
	for _, want := range []string{"Check the product: Approve", "product=Barley tea", "note=Fresh batch", "label=label.png (image/png)"} {
		if !strings.Contains(b4.Reply, want) {
			t.Errorf("answer %q lacks %q", b4.Reply, want)
		}
	}
	subs := h.sim.Submissions()
	if len(subs) != 1 || subs[0].Action != "approve" || len(subs[0].Inputs) != 3 || subs[0].User != "fake-U1" {
		t.Fatalf("submissions %+v", subs)
	}
	var label dify.FileRef
	if err := json.Unmarshal(subs[0].Inputs["label"], &label); err != nil || label.TransferMethod != "local_file" || label.UploadFileID == "" {
		t.Errorf("label submitted as %s (%v)", subs[0].Inputs["label"], err)
	}
	// A second tap on Approve: nothing is submitted, nothing runs; the person hears the answer is in.
	if dup := h.say(t, "ev8", "U1", "Approve", bot.RunSucceeded); dup.Reply != "Your answer is already in." {
		t.Errorf("a second tap answered %q", dup.Reply)
	}
	if n := len(h.sim.Submissions()); n != 1 || h.sim.Started() != 1 {
		t.Errorf("after a second tap: %d submissions, %d runs started", n, h.sim.Started())
	}
	answers := 0
	for _, f := range h.plat.Finals()[before:] {
		if strings.Contains(f.Text, "Check the product: Approve") {
			answers++
		}
	}
	if answers != 1 {
		t.Errorf("the answer arrived %d times, want once", answers)
	}
}

// Two Human Input nodes in a row: the answer to the first form leads to the second question.
func TestHumanInputTwoQuestions(t *testing.T) {
	h := newHarness(t, "human_input_twice")
	a := h.say(t, "ev1", "U1", "order tea", bot.RunWaiting)
	if !slices.Equal(a.Choices, []string{"S", "M", "L"}) {
		t.Fatalf("first prompt %q %v", a.Reply, a.Choices)
	}
	h.say(t, "ev2", "U1", "M", bot.RunSucceeded)
	second := h.say(t, "ev3", "U1", "Next", bot.RunWaiting)
	if !strings.Contains(second.Reply, "Anything the shop should know?") || !strings.Contains(second.Reply, "Please type note") {
		t.Fatalf("second question %q", second.Reply)
	}
	h.say(t, "ev4", "U1", "ring twice", bot.RunSucceeded)
	done := h.say(t, "ev5", "U1", "Order", bot.RunSucceeded)
	if !strings.Contains(done.Reply, "size=M") || !strings.Contains(done.Reply, "note=ring twice") {
		t.Errorf("answer %q", done.Reply)
	}
	if n := len(h.sim.Submissions()); n != 2 {
		t.Errorf("%d submissions, want 2", n)
	}
}

// Under HUMAN_INPUT_BY=requester someone else's tap is told it is not theirs; under anyone it counts.
func TestHumanInputWhoAnswers(t *testing.T) {
	h := newHarness(t, "human_input_twice")
	h.say(t, "ev1", "U1", "order tea", bot.RunWaiting)
	other := h.say(t, "ev2", "U2", "L", bot.RunSucceeded)
	if !strings.Contains(other.Reply, "this question is for the person who asked") {
		t.Errorf("someone else's tap: %q", other.Reply)
	}
	// Someone else's ordinary message is their own request.
	h.say(t, "ev3", "U2", "hello", bot.RunWaiting)
	mine := h.say(t, "ev4", "U1", "S", bot.RunSucceeded)
	if !strings.Contains(mine.Reply, "What should happen next?") {
		t.Errorf("the requester's answer: %q", mine.Reply)
	}

	h = newHarness(t, "human_input_twice", func(c *bot.Config) { c.HumanInputBy = bot.AnswerByAnyone })
	h.say(t, "ev1", "U1", "order tea", bot.RunWaiting)
	if r := h.say(t, "ev2", "U2", "L", bot.RunSucceeded); !strings.Contains(r.Reply, "What should happen next?") {
		t.Errorf("anyone's answer: %q", r.Reply)
	}
}

// A form answered elsewhere first (Dify answers the submit 412 already submitted) still leads to the answer.
func TestHumanInputSubmittedElsewhere(t *testing.T) {
	h := newHarness(t, "human_input_twice")
	h.say(t, "ev1", "U1", "order tea", bot.RunWaiting)
	h.say(t, "ev2", "U1", "S", bot.RunSucceeded)
	qs, err := h.store.Asking(context.Background(), "fake:C1", time.Now())
	if err != nil || len(qs) != 1 {
		t.Fatal(qs, err)
	}
	if err := h.dify.SubmitForm(context.Background(), qs[0].Form.Token, dify.Submission{Inputs: map[string]any{"size": "L"}, Action: "next", User: "web-x"}); err != nil {
		t.Fatal(err)
	}
	r := h.say(t, "ev3", "U1", "Next", bot.RunWaiting) // The 412 is success: on to the second question.
	if !strings.Contains(r.Reply, "Anything the shop should know?") {
		t.Errorf("after a 412: %q", r.Reply)
	}
	if n := len(h.sim.Submissions()); n != 1 {
		t.Errorf("%d submissions accepted, want 1 (the other)", n)
	}
}

// A late answer is told the question expired; at expiry the bot follows the run to its end and answers with
// what the run produced.
func TestHumanInputExpired(t *testing.T) {
	h := newHarnessWith(t, difytest.Options{Scenario: "human_input", FormTimeout: 300 * time.Millisecond})
	ctx := context.Background()
	a := h.say(t, "ev1", "U1", "what tea is this?", bot.RunWaiting)
	qs, _ := h.store.Asking(ctx, "fake:C1", time.Now())
	for time.Now().Before(qs[0].Form.Expires) {
		time.Sleep(20 * time.Millisecond)
	}
	late := h.say(t, "ev2", "U1", "Barley tea", bot.RunSucceeded)
	if !strings.Contains(late.Reply, "This question has expired") {
		t.Errorf("late answer: %q", late.Reply)
	}
	if err := h.bot.ExpireQuestions(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.bot.ExpireQuestions(ctx); err != nil { // Once per question, however often the sweep runs.
		t.Fatal(err)
	}
	runs, err := h.store.ListRuns(ctx, bot.RunFilter{Status: bot.RunQueued})
	if err != nil || len(runs) != 1 || runs[0].Message.Question == "" {
		t.Fatalf("queued after expiry: %v %v", runs, err)
	}
	if err := h.bot.Process(ctx, runs[0].ID); err != nil {
		t.Fatal(err)
	}
	end, _ := h.store.Run(ctx, runs[0].ID)
	if end.Status != bot.RunSucceeded || !strings.Contains(end.Reply, "No answer came in time") || !strings.Contains(end.Reply, `No one answered "Check the product" in time.`) {
		t.Errorf("the run's end: %s %q", end.Status, end.Reply)
	}
	if n := len(h.sim.Submissions()); n != 0 {
		t.Errorf("%d submissions", n)
	}
	_ = a
}

// A Human Input node without WebApp delivery cannot be asked: the person hears the workflow waits for someone
// (never that it failed), and the admin's diagnosis names the node.
func TestHumanInputUnavailable(t *testing.T) {
	h := newHarness(t, "human_input_no_token")
	r := h.say(t, "ev1", "U1", "what tea is this?", bot.RunWaiting)
	if r.Code != bot.CodeDifyHumanInput || !strings.Contains(r.Reply, "waiting for someone") || strings.Contains(strings.ToLower(r.Reply), "fail") {
		t.Fatalf("code %s reply %q", r.Code, r.Reply)
	}
	if r.Diagnosis == nil || !strings.Contains(r.Diagnosis.Summary, `"Check the product"`) || !strings.Contains(strings.Join(r.Diagnosis.Checks, " "), "WebApp delivery") {
		t.Errorf("diagnosis %+v", r.Diagnosis)
	}
}

// BenchmarkHumanInputFlow is one workflow that asks back twice, through the pipeline on SQLite against the
// simulator: the run that pauses, two answers, the action that submits and is followed to the second question,
// its answer and action, and the answer: five messages per op.
func BenchmarkHumanInputFlow(b *testing.B) {
	h := newHarness(b, "human_input_twice")
	n := 0
	say := func(text string) {
		n++
		r, err := h.send(b, bot.Message{EventID: fmt.Sprintf("ev%d", n), ChatID: "C1", UserID: "U1", Text: text})
		if err != nil || r.Status == bot.RunFailed {
			b.Fatalf("%q: %s %q %v", text, r.Status, r.Reply, err)
		}
	}
	for b.Loop() {
		for _, text := range []string{"order tea", "M", "Next", "ring twice", "Order"} {
			say(text)
		}
	}
}

// A run resumed after a crash, whose Dify run paused meanwhile, learns the pause from the run's detail and the
// form from its events, and asks it.
func TestHumanInputLearnedAfterACrash(t *testing.T) {
	h := newHarness(t, "human_input")
	ctx := context.Background()
	_, err := h.dify.RunWorkflow(ctx, dify.RunRequest{Inputs: map[string]any{"query": "q"}, User: "fake-U1"})
	var pe *dify.PausedError
	if !errors.As(err, &pe) {
		t.Fatal(err)
	}
	r, _, err := h.inbox.Accept(ctx, bot.Message{Platform: "fake", EventID: "ev1", ChatID: "C1", UserID: "U1", Text: "q"})
	if err != nil {
		t.Fatal(err)
	}
	r.Status, r.DifyRunID, r.PostedAttempt = bot.RunRunning, pe.RunID, r.Attempt // As a crash after workflow_started leaves it.
	if err := h.store.SaveRun(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := h.bot.Process(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	got, _ := h.store.Run(ctx, r.ID)
	if got.Status != bot.RunWaiting || !strings.Contains(got.Reply, "Please choose product") || h.sim.Started() != 1 {
		t.Errorf("resumed run %s %q, %d runs started", got.Status, got.Reply, h.sim.Started())
	}
}
