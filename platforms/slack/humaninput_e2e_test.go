package slack_test

import (
	"strings"
	"testing"

	"github.com/difybot/difybot/dify/difytest"
	"github.com/difybot/difybot/platforms/slack/slacktest"
)

// prompt is the one message of the bot that contains sub, and its buttons' labels.
func (s *system) prompt(t testing.TB, sub string) (slacktest.Call, []button) {
	t.Helper()
	got := s.posted(sub)
	if len(got) != 1 {
		t.Fatalf("messages with %q: %+v, want one", sub, got)
	}
	return got[0], buttons(t, got[0].Form.Get("blocks"))
}

// A workflow that asks back, through the real Slack adapter: the prompts come as thread replies with buttons;
// the select and the paragraph's default are tapped, the photo is sent, the action tapped. The form is
// submitted once with every input, and the run's answer arrives once.
func TestHumanInputThroughSlack(t *testing.T) {
	t.Parallel()
	s := newSystem(t, difytest.Options{Scenario: "human_input"})
	s.send(t, said{where: inDM, text: "what tea is this?"})
	s.settled(t, 1)
	q, bs := s.prompt(t, "Please choose product")
	if len(bs) != 3 || bs[2].Label != "Oolong tea" || !strings.Contains(q.Form.Get("text"), "Please check the product.") {
		t.Fatalf("first prompt %q, buttons %+v", q.Form.Get("text"), bs)
	}
	s.tap(t, person, q, bs[0])
	s.settled(t, 2)
	q, bs = s.prompt(t, "Please type note")
	if len(bs) != 1 || bs[0].Label != "Looks fine" {
		t.Fatalf("paragraph buttons %+v", bs)
	}
	s.tap(t, bob, q, bs[0]) // Someone else's tap is not theirs to make.
	s.settled(t, 3)
	if got := s.posted("this question is for the person who asked"); len(got) != 1 {
		t.Fatalf("someone else's tap was not told: %+v", got)
	}
	s.tap(t, person, q, bs[0])
	s.settled(t, 4)
	s.prompt(t, "Please send a photo for label")
	s.send(t, said{where: inDM, files: []slacktest.SharedFile{s.photo(t, "F0HI000001", 9)}})
	s.settled(t, 5)
	q, bs = s.prompt(t, "What should happen next?")
	if len(bs) != 2 || bs[0].Label != "Approve" {
		t.Fatalf("action buttons %+v", bs)
	}
	s.tap(t, person, q, bs[0])
	s.tap(t, person, q, bs[0]) // A double tap submits once and answers once.
	s.settled(t, 7)
	answer, _ := s.prompt(t, "Check the product: Approve")
	s.prompt(t, "Your answer is already in.")
	for _, m := range s.slack.Messages() {
		if strings.Contains(m.Text, "Working on it") {
			t.Errorf("a placeholder was left in the thread: %+v", m)
		}
	}
	for _, want := range []string{"product=Green tea", "note=Looks fine", "label=f0hi000001.png (image/png)"} {
		if !strings.Contains(answer.Form.Get("text"), want) {
			t.Errorf("answer %q lacks %q", answer.Form.Get("text"), want)
		}
	}
	if subs := s.sim.Submissions(); len(subs) != 1 || len(subs[0].Inputs) != 3 || subs[0].Action != "approve" {
		t.Errorf("submissions %+v", subs)
	}
	if n := s.sim.Started(); n != 1 {
		t.Errorf("%d Dify runs, want 1", n)
	}
}
