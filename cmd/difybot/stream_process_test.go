package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/dify/difytest"
	"github.com/difybot/difybot/internal/loadtest"
	"github.com/difybot/difybot/platforms/slack/slacktest"
)

// TestKilledMidStreamIsAnsweredOnceAfterRestart kills serve (SIGKILL) while it streams a long answer into Slack,
// and starts it again: the same message is finished with the whole answer, nothing else is posted, and the
// workflow ran once.
func TestKilledMidStreamIsAnsweredOnceAfterRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills real processes")
	}
	ctx := t.Context()
	rig, err := loadtest.NewRig(ctx, loadtest.RigConfig{Bin: binary(t), Dir: t.TempDir(),
		Sim: difytest.Options{Scenario: "stream_long", Latency: 2 * time.Second, PingEvery: 100 * time.Millisecond},
		Env: map[string]string{"SLACK_STREAMING": "auto"}})
	if err != nil {
		t.Fatal(err)
	}
	defer rig.Close()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("serve logs (tail):\n%s", rig.Serve.Tail(12000))
		}
	})
	m := rig.Message("slack", "tell me all", nil)
	if _, status, err := rig.Deliver(ctx, http.DefaultClient, m, 5*time.Second, time.Now().Add(30*time.Second)); err != nil || status != http.StatusOK {
		t.Fatalf("delivery: %d %v", status, err)
	}
	in := func(method string) []slacktest.Call {
		var out []slacktest.Call
		for _, c := range rig.Slack.CallsTo(method) {
			if c.Form.Get("channel") == m.Conv && c.OK {
				out = append(out, c)
			}
		}
		return out
	}
	waitFor(t, "the answer to be streaming", func() bool {
		for _, c := range in("chat.appendStream") {
			if strings.Contains(c.Form.Get("chunks"), "markdown_text") {
				return true
			}
		}
		return false
	})
	if err := rig.Serve.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := rig.Serve.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	var msgs []slacktest.Message
	waitFor(t, "the answer after the restart", func() bool {
		msgs = msgs[:0]
		for _, msg := range rig.Slack.Messages() {
			if msg.Channel == m.Conv {
				msgs = append(msgs, msg)
			}
		}
		return len(msgs) == 1 && !msgs[0].Streaming && strings.HasSuffix(strings.TrimSpace(msgs[0].Text), "the question you asked.")
	})
	if !msgs[0].Streamed || strings.Count(msgs[0].Text, "The photo was looked at") != 6 {
		t.Errorf("message = %+v, want the stream's message with the whole answer once", msgs[0])
	}
	if n := len(in("chat.startStream")); n != 1 {
		t.Errorf("%d streams started, want 1", n)
	}
	if n := len(in("chat.postMessage")); n != 0 {
		t.Errorf("%d chat.postMessage, want none", n)
	}
	if u := rig.Sim.Users()[m.DifyUser]; u.Started != 1 || u.Posts != 1 {
		t.Errorf("Dify runs started %d, POSTs %d; want 1 and 1", u.Started, u.Posts)
	}
}

// waitFor polls cond for up to a minute.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
