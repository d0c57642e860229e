package slack_test

import (
	"context"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/dify"
	"github.com/difybot/difybot/dify/difytest"
	"github.com/difybot/difybot/platforms/slack/slacktest"
)

// Issue 20 through the real Slack adapter, bot and store: two Dify apps on two simulated hosts behind one bot,
// routed by channel, keyword and the person's stored choice in a DM; an outage of one host holds only its runs.

const (
	expenses = "C0EXPENSES1" // Routed to receipts.
	fieldOps = "C0FIELDOPS1" // Routed to damage.
)

// twoApps is a system whose bot has the apps receipts and damage, each on its own simulated Dify host that takes
// only its own key.
type twoApps struct {
	*system
	receipts, damage *difytest.Server
	hosts            map[string]*dify.Host
}

func newTwoApps(t *testing.T, direct string) *twoApps {
	t.Helper()
	a := &twoApps{hosts: map[string]*dify.Host{}}
	a.receipts = difytest.NewServer(difytest.Options{APIKey: "app-receipts"})
	t.Cleanup(a.receipts.Close)
	a.damage = difytest.NewServer(difytest.Options{APIKey: "app-damage"})
	t.Cleanup(a.damage.Close)
	app := func(name string, sim *difytest.Server, key string, chats ...string) bot.AppConfig {
		h := dify.NewHost(dify.HostOf(sim.URL()), dify.BreakerConfig{MinRequests: 2, FailureRatio: 0.5}, dify.LimitConfig{}, zerolog.Nop())
		a.hosts[name] = h
		dc, err := dify.New(dify.Config{BaseURL: sim.URL(), APIKey: key, Host: h, Logger: zerolog.Nop(), Retry: dify.RetryPolicy{MaxAttempts: 1}})
		if err != nil {
			t.Fatal(err)
		}
		return bot.AppConfig{Name: name, Workflows: dc, Keywords: []string{strings.TrimSuffix(name, "s")}, Chats: chats}
	}
	a.system = newSystem(t, difytest.Options{}, func(c *bot.Config) {
		c.Apps = []bot.AppConfig{app("receipts", a.receipts, "app-receipts", "slack:"+expenses), app("damage", a.damage, "app-damage", "slack:"+fieldOps)}
		c.Routes = bot.Routes{Default: "receipts", Direct: direct}
	})
	return a
}

// threads are the distinct threads of the bot's messages.
func threads(calls []slacktest.Call) map[string]bool {
	out := map[string]bool{}
	for _, c := range calls {
		out[c.Form.Get("thread_ts")] = true
	}
	return out
}

func TestAppsRoutedByChannel(t *testing.T) {
	t.Parallel()
	a := newTwoApps(t, "")
	a.send(t, said{where: inChannel, ch: expenses, text: "total please"})
	a.send(t, said{where: inChannel, ch: fieldOps, text: "how bad is it"})
	runs := a.settled(t, 2)
	if runs[0].App != "receipts" || runs[1].App != "damage" {
		t.Fatalf("apps of the runs: %q, %q; want receipts, damage", runs[0].App, runs[1].App)
	}
	if r, d := a.receipts.WorkflowRuns(), a.damage.WorkflowRuns(); len(r) != 1 || len(d) != 1 || !strings.Contains(r[0], "total please") || !strings.Contains(d[0], "how bad is it") {
		t.Errorf("receipts ran %v, damage ran %v; want one run each, with its channel's message", r, d)
	}
	if got := a.posted("You said: total please"); len(got) != 1 || got[0].Form.Get("channel") != expenses {
		t.Errorf("the receipts answer: %+v", got)
	}
}

// In a DM a keyword picks the app (and is taken off the text), a keyword alone switches, the choice is kept
// for the person's next messages, and "help" offers the apps as buttons whose tap chooses.
func TestAppsKeywordAndStoredChoiceInDM(t *testing.T) {
	t.Parallel()
	a := newTwoApps(t, "")

	// No choice yet and no Direct app: the bot asks which, with a button per app, and runs nothing.
	a.send(t, said{text: "hello"})
	a.settled(t, 1)
	offers := a.posted("Which assistant would you like?")
	if len(offers) != 1 {
		t.Fatalf("offers: %+v", offers)
	}
	bs := buttons(t, offers[0].Form.Get("blocks"))
	if len(bs) != 2 || bs[0].Value != "/receipt" || bs[1].Value != "/damage" {
		t.Fatalf("buttons %+v; want /receipt and /damage", bs)
	}
	if len(a.receipts.WorkflowRuns())+len(a.damage.WorkflowRuns()) != 0 {
		t.Fatal("a message no route leads anywhere ran a workflow")
	}

	// The keyword sends this message to damage, without the keyword, and makes damage the person's choice.
	a.send(t, said{text: "damage: a dent in the door"})
	a.settled(t, 2)
	a.send(t, said{text: "and a scratch"})
	runs := a.settled(t, 3)
	if d := a.damage.WorkflowRuns(); len(d) != 2 || !strings.Contains(d[0], `"a dent in the door"`) || !strings.Contains(d[1], "and a scratch") {
		t.Errorf("damage ran %v; want the keyword's message without the keyword, then the next one (the stored choice)", d)
	}
	if runs[1].App != "damage" || runs[2].App != "damage" {
		t.Errorf("apps %q, %q; want damage twice", runs[1].App, runs[2].App)
	}

	// Tapping a button of the offer chooses the app; the next message goes there.
	a.tap(t, person, offers[0], bs[0])
	a.settled(t, 4)
	if got := a.posted("You're now using “receipts”"); len(got) != 1 {
		t.Errorf("the choice is not confirmed: %+v", got)
	}
	a.send(t, said{text: "what did I spend"})
	a.settled(t, 5)
	if r := a.receipts.WorkflowRuns(); len(r) != 1 || !strings.Contains(r[0], "what did I spend") {
		t.Errorf("receipts ran %v; want the message after the tap", r)
	}
	// "/receipt …" works as well as "receipt: …", and "help" asks again.
	a.send(t, said{text: "/damage rust on the frame"})
	a.send(t, said{text: "help"})
	a.settled(t, 7)
	if d := a.damage.WorkflowRuns(); len(d) != 3 || !strings.Contains(d[2], `"rust on the frame"`) {
		t.Errorf("damage ran %v; want the /damage message without the command", d)
	}
	if got := threads(a.posted("Which assistant would you like?")); len(got) != 2 {
		t.Errorf("help did not offer the apps again: offers in %v", got)
	}
}

// A breaker tripped by one host's outage holds that host's runs; the other host's apps answer as before.
func TestAppsBreakerPerHost(t *testing.T) {
	t.Parallel()
	a := newTwoApps(t, "")
	if err := a.damage.SetScenario("gateway_502"); err != nil {
		t.Fatal(err)
	}
	// The damage host's outage trips its breaker (two of its runs fail on it); its next run is held.
	a.send(t, said{where: inChannel, ch: fieldOps, text: "broken"})
	a.send(t, said{where: inChannel, ch: fieldOps, text: "broken again"})
	eventually(t, e2eWait, "the damage host's breaker tripped", func() bool { return a.hosts["damage"].Breaker.Ready() != nil })
	a.send(t, said{where: inChannel, ch: fieldOps, text: "held"})
	status := func(app string) bot.RunStatus {
		runs, _ := a.store.ListRuns(context.Background(), bot.RunFilter{App: app, Limit: 1})
		if len(runs) == 0 {
			return ""
		}
		return runs[0].Status
	}
	eventually(t, e2eWait, "a damage run held by its host's breaker", func() bool {
		return a.hosts["damage"].Breaker.Ready() != nil && status("damage") == bot.RunHeld
	})
	a.send(t, said{where: inChannel, ch: expenses, text: "still answered"})
	eventually(t, e2eWait, "the receipts run answered", func() bool { return status("receipts") == bot.RunSucceeded })
	if got := status("damage"); got != bot.RunHeld {
		t.Errorf("the damage run is %s; want held while its host is out", got)
	}
	if got := a.posted("The AI workflow service is having trouble right now, so your answer will be delayed"); len(got) == 0 {
		t.Error("the person was not told the damage answer is delayed")
	}
	if err := a.hosts["receipts"].Breaker.Ready(); err != nil {
		t.Errorf("the receipts host's breaker: %v; want closed", err)
	}
}
