package line

import (
	"slices"
	"strings"
	"testing"
)

// quick is the one delivered message containing sub, and its quick replies' texts.
func (s *system) quick(t testing.TB, sub string) []string {
	t.Helper()
	var found []string
	var texts []string
	for _, c := range s.delivered() {
		for _, m := range c.Messages {
			if !strings.Contains(m.Text, sub) {
				continue
			}
			found = append(found, m.Text)
			if m.QuickReply != nil {
				for _, it := range m.QuickReply.Items {
					texts = append(texts, it.Action.Text)
				}
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("messages with %q: %q, want one", sub, found)
	}
	return texts
}

// A workflow that asks back, through the real LINE adapter in a group: the prompts come with quick replies; the
// select is tapped (first by someone else, who is told it is not theirs), the paragraph typed, the photo sent,
// the action tapped. The form is submitted once with every input, and the run's answer arrives once.
func TestHumanInputThroughLINE(t *testing.T) {
	t.Parallel()
	s := newSystem(t, e2eOptions{scenario: "human_input"})
	s.send(t, said{group: groupID, text: "what tea is this?"})
	s.settled(t, 1)
	options := s.quick(t, "Please choose product")
	if !slices.Equal(options, []string{"Green tea", "Barley tea", "Oolong tea"}) {
		t.Fatalf("quick replies %q", options)
	}
	s.send(t, said{group: groupID, user: secondUser, text: options[1]})
	s.settled(t, 2)
	s.quick(t, "this question is for the person who asked")
	s.send(t, said{group: groupID, text: options[1]})
	s.settled(t, 3)
	if d := s.quick(t, "Please type note"); !slices.Equal(d, []string{"Looks fine"}) {
		t.Fatalf("paragraph quick replies %q", d)
	}
	s.send(t, said{group: groupID, text: "Label is smudged"})
	s.settled(t, 4)
	s.quick(t, "Please send a photo for label")
	s.send(t, said{group: groupID, photo: 11})
	s.settled(t, 5)
	actions := s.quick(t, "What should happen next?")
	if !slices.Equal(actions, []string{"Approve", "Send back"}) {
		t.Fatalf("action quick replies %q", actions)
	}
	s.send(t, said{group: groupID, text: actions[0]})
	s.settled(t, 6)
	answers := s.texts("Check the product: Approve")
	if len(answers) != 1 || !strings.Contains(answers[0], "product=Barley tea") || !strings.Contains(answers[0], "note=Label is smudged") ||
		!strings.Contains(answers[0], "(image/png)") {
		t.Fatalf("answers %q", answers)
	}
	if subs := s.sim.Submissions(); len(subs) != 1 || len(subs[0].Inputs) != 3 {
		t.Errorf("submissions %+v", subs)
	}
	if n := s.sim.Started(); n != 1 {
		t.Errorf("%d Dify runs, want 1", n)
	}
}
