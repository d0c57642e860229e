package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/dify"
)

// QuestionContract checks s's Human Input questions: stored once with the whole form, listed while asking in
// their place, saved by one of two racing answers only, and found when their form expired. bot/store runs it on
// each back end, bot/bottest on memory.
func QuestionContract(t *testing.T, s bot.Store) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	r, _, err := s.Enqueue(ctx, bot.Message{Platform: "web", EventID: "EvQ1", ChatID: "C1", UserID: "U1", Text: "check this"})
	if err != nil {
		t.Fatal(err)
	}
	form := dify.Form{ID: "form-1", Token: "tok_abc", NodeID: "n1", NodeTitle: "Check", Content: "**Check** it",
		Inputs:  []dify.FormInput{{Type: "select", Name: "product", Options: []string{"A", "B"}}, {Type: "file", Name: "label", FileTypes: []string{"image"}}},
		Actions: []dify.FormAction{{ID: "approve", Title: "Approve", Style: "primary"}}, Defaults: map[string]string{"product": "A"},
		Expires: now.Add(time.Hour)}
	q := bot.Question{ID: form.ID, RunID: r.ID, DifyRunID: "dify-run", Place: "web:C1", UserID: "U1", Message: r.Message,
		Form: form, Status: bot.QuestionAsking, CreatedAt: now, UpdatedAt: now}
	for range 2 { // Adding again (a resumed run) changes nothing.
		if err := s.AddQuestion(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Question(ctx, q.ID)
	if err != nil || got.Form.Token != "tok_abc" || got.Form.Inputs[0].Options[1] != "B" || !got.Form.Expires.Equal(form.Expires) ||
		got.Form.Defaults["product"] != "A" || got.Message.EventID != "EvQ1" || got.Version != 0 {
		t.Fatalf("Question = %+v, %v", got, err)
	}
	if _, err := s.Question(ctx, "nope"); !errors.Is(err, bot.ErrNotFound) {
		t.Errorf("unknown question: %v", err)
	}
	asking, err := s.Asking(ctx, "web:C1", now.Add(time.Hour))
	if err != nil || len(asking) != 1 {
		t.Fatalf("Asking = %v, %v", asking, err)
	}
	if other, _ := s.Asking(ctx, "web:C2", now.Add(time.Hour)); len(other) != 0 {
		t.Errorf("another place asks %v", other)
	}

	// Two answers to the same version: the first wins, the second is told the question moved.
	a, b := got, got
	a.Asked, a.Answers, a.By = 1, map[string]any{"product": "B"}, []string{"run-a"}
	b.Asked, b.Answers = 1, map[string]any{"product": "A"}
	if err := s.SaveQuestion(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveQuestion(ctx, b); !errors.Is(err, bot.ErrQuestionMoved) {
		t.Errorf("the second answer: %v, want ErrQuestionMoved", err)
	}
	got, _ = s.Question(ctx, q.ID)
	if got.Version != 1 || got.Asked != 1 || got.Answers["product"] != "B" || len(got.By) != 1 {
		t.Errorf("after the answer: %+v", got)
	}

	if due, _ := s.DueQuestions(ctx, now.Add(time.Minute)); len(due) != 0 {
		t.Errorf("due before expiry: %v", due)
	}
	due, err := s.DueQuestions(ctx, now.Add(time.Hour))
	if err != nil || len(due) != 1 || due[0].ID != q.ID {
		t.Fatalf("DueQuestions = %v, %v", due, err)
	}
	got.Status, got.UpdatedAt = bot.QuestionExpired, now.Add(time.Hour)
	if err := s.SaveQuestion(ctx, got); err != nil {
		t.Fatal(err)
	}
	if asking, _ := s.Asking(ctx, "web:C1", now.Add(2*time.Hour)); len(asking) != 0 {
		t.Errorf("an expired question still asks: %v", asking)
	}
	// Until since passes it, a question that stopped asking is still listed: a late second tap is known.
	if recent, _ := s.Asking(ctx, "web:C1", now.Add(time.Hour)); len(recent) != 1 || recent[0].Status != bot.QuestionExpired {
		t.Errorf("a question expired just now: %v", recent)
	}
	if due, _ := s.DueQuestions(ctx, now.Add(2*time.Hour)); len(due) != 0 {
		t.Errorf("an expired question is due again: %v", due)
	}
}
