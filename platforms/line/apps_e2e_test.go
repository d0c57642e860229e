package line

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/dify"
	"github.com/difybot/difybot/dify/difytest"
)

// Issue 20 through the real LINE adapter, bot and store: two Dify apps on two simulated hosts behind one LINE
// channel, routed by group and, in the one-on-one chat, by keyword and the person's stored choice (quick replies).

const fieldGroup = "C0fieldfieldfieldfieldfieldfield1" // Routed to damage; groupID goes to receipts.

// appsSystem is a system whose bot has the apps receipts and damage, each on its own simulated host that takes
// only its own key.
func appsSystem(t *testing.T) (s *system, receipts, damage *difytest.Server) {
	t.Helper()
	receipts = difytest.NewServer(difytest.Options{APIKey: "app-receipts", PingEvery: 5 * time.Millisecond})
	t.Cleanup(receipts.Close)
	damage = difytest.NewServer(difytest.Options{APIKey: "app-damage", PingEvery: 5 * time.Millisecond})
	t.Cleanup(damage.Close)
	app := func(name string, sim *difytest.Server, key, group string) bot.AppConfig {
		h := dify.NewHost(dify.HostOf(sim.URL()), dify.BreakerConfig{}, dify.LimitConfig{}, zerolog.Nop())
		dc, err := dify.New(dify.Config{BaseURL: sim.URL(), APIKey: key, Host: h, Logger: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		return bot.AppConfig{Name: name, Workflows: dc, Keywords: []string{strings.TrimSuffix(name, "s")}, Chats: []string{"line:" + group}}
	}
	s = newSystem(t, e2eOptions{config: func(c *bot.Config) {
		c.Apps = []bot.AppConfig{app("receipts", receipts, "app-receipts", groupID), app("damage", damage, "app-damage", fieldGroup)}
		c.Routes = bot.Routes{Default: "receipts"}
	}})
	return s, receipts, damage
}

func TestAppsRoutedByGroup(t *testing.T) {
	t.Parallel()
	s, receipts, damage := appsSystem(t)
	s.send(t, said{group: groupID, text: "total please"}, said{group: fieldGroup, text: "how bad is it"})
	runs := s.settled(t, 2)
	apps := []string{runs[0].App, runs[1].App}
	slices.Sort(apps)
	if !slices.Equal(apps, []string{"damage", "receipts"}) {
		t.Fatalf("apps of the runs: %v", apps)
	}
	if r, d := receipts.WorkflowRuns(), damage.WorkflowRuns(); len(r) != 1 || len(d) != 1 || !strings.Contains(r[0], "total please") || !strings.Contains(d[0], "how bad is it") {
		t.Errorf("receipts ran %v, damage ran %v; want one run each, with its group's message", r, d)
	}
}

func TestAppsKeywordAndStoredChoiceOneOnOne(t *testing.T) {
	t.Parallel()
	s, receipts, damage := appsSystem(t)

	// No choice yet: the apps are offered as quick replies and nothing runs.
	s.send(t, said{text: "hello"})
	s.settled(t, 1)
	offer := s.delivered()[0].Messages[0]
	if !strings.HasPrefix(offer.Text, "Which assistant would you like?") || offer.QuickReply == nil || len(offer.QuickReply.Items) != 2 {
		t.Fatalf("offer %+v; want the apps as quick replies", offer)
	}
	if a := offer.QuickReply.Items[1].Action.Text; a != "/damage" {
		t.Fatalf("second quick reply sends %q, want /damage", a)
	}

	// The tapped quick reply is a text message: it chooses damage, and the next photo goes there.
	s.send(t, said{text: offer.QuickReply.Items[1].Action.Text})
	s.settled(t, 2)
	if got := s.texts("You're now using “damage”"); len(got) != 1 {
		t.Errorf("the choice is not confirmed: %v", s.texts(""))
	}
	s.send(t, said{photo: 5})
	s.settled(t, 3)
	if d := damage.WorkflowRuns(); len(d) != 1 || len(receipts.WorkflowRuns()) != 0 {
		t.Errorf("damage ran %v, receipts %v; want the photo at damage, the stored choice", d, receipts.WorkflowRuns())
	}

	// A keyword sends one message to receipts, without the keyword, and makes it the choice.
	s.send(t, said{text: "receipt: what did I spend"})
	s.settled(t, 4)
	s.send(t, said{text: "and last week"})
	s.settled(t, 5)
	if r := receipts.WorkflowRuns(); len(r) != 2 || !strings.Contains(r[0], `"what did I spend"`) || !strings.Contains(r[1], "and last week") {
		t.Errorf("receipts ran %v; want the keyword's message without it, then the next one", r)
	}
}
