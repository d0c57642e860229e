package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/dify/difytest"
	"github.com/difybot/difybot/platforms/web"
)

// TestKilledWhileAWorkflowAsksBack is issue 19's crash case, with real processes and SIGKILL: once while the
// first form waits for its answer, and once right after the action's message submitted it. Nothing is asked
// twice, each form is submitted once, the run is followed to its second question and to its answer, which
// arrives once.
func TestKilledWhileAWorkflowAsksBack(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills real processes")
	}
	sim := difytest.NewServer(difytest.Options{Scenario: "human_input_twice", Latency: 300 * time.Millisecond, PingEvery: 50 * time.Millisecond})
	defer sim.Close()
	dataDir := t.TempDir()
	env := map[string]string{"DIFY_BASE_URL": sim.URL(), "DATA_DIR": dataDir}
	db := openDB(t, dataDir)
	session := "session-" + web.NewID()
	ask := func(p *proc, text, want string) (string, web.Event) {
		t.Helper()
		run := p.sendIn(t, session, text, nil)
		ev := p.finalReply(t, run)
		if !strings.Contains(ev.Text, want) || ev.Code != "" {
			t.Fatalf("reply to %q = %+v, want %q", text, ev, want)
		}
		return run, ev
	}

	a := startServe(t, env)
	first, ev := ask(a, "order tea", "Which size should we order?")
	if !slices.Equal(ev.Choices, []string{"S", "M", "L"}) {
		t.Fatalf("choices %v", ev.Choices)
	}
	a.killHard(t) // The form waits.

	b := startServe(t, env)
	size, _ := ask(b, "M", "What should happen next? Next.")
	next := b.sendIn(t, session, "Next", nil)
	deadline := time.Now().Add(30 * time.Second)
	for len(sim.Submissions()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the form was never submitted\n%s", b.logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.killHard(t) // Right after the submit, while the run goes on to its second question.

	c := startServe(t, env)
	// The kill may have come before or after the second question was delivered: either way it is asked once.
	for status, reply := c.adminRun(t, next); status != "waiting"; status, reply = c.adminRun(t, next) {
		if time.Now().After(deadline) {
			t.Fatalf("after the restart, the action's message is %s %q, want waiting with the second question", status, reply)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, reply := c.adminRun(t, next); !strings.Contains(reply, "Anything the shop should know?") {
		t.Fatalf("the action's message answered %q, want the second question", reply)
	}
	note, _ := ask(c, "ring twice", "What should happen next? Order / Cancel.")
	order, ev := ask(c, "Order", "Confirm the order: Order")
	if !strings.Contains(ev.Text, "size=M") || !strings.Contains(ev.Text, "note=ring twice") {
		t.Errorf("answer %q", ev.Text)
	}
	c.stop(t)
	t.Logf("form submits sent: %d (a second one after the restart is answered 412, already submitted)", sim.Calls(difytest.RouteFormSubmit))

	subs := sim.Submissions()
	if len(subs) != 2 || subs[0].Node != "Pick a size" || subs[1].Node != "Confirm the order" {
		t.Errorf("submissions %+v, want one per form", subs)
	}
	if sim.Started() != 1 || sim.Calls(difytest.RouteRun) != 1 {
		t.Errorf("workflow runs started %d, POSTs %d; want 1 and 1", sim.Started(), sim.Calls(difytest.RouteRun))
	}
	for _, id := range []string{first, size, next, note, order} {
		var replies int
		db.QueryRow("SELECT count(*) FROM steps WHERE run_id = ? AND name = 'reply' AND status = 'done'", id).Scan(&replies)
		if replies != 1 {
			t.Errorf("run %s: %d reply steps done, want exactly 1", id, replies)
		}
	}
}
