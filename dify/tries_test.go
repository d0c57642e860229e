package dify

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/difybot/difybot/dify/difytest"
)

// tryLog records what Tries reports, as "send" and "not started".
type tryLog []string

func (l *tryLog) tries(sendErr error) Tries {
	return Tries{
		OnSend:       func() error { *l = append(*l, "send"); return sendErr },
		OnNotStarted: func(error) { *l = append(*l, "not started") },
	}
}

// TestTriesReportWhatCertainlyDidNotStart: every try is announced before it is sent, and each one that certainly
// started nothing is reported, so the caller's "posted" mark is set only while a try may have reached Dify.
func TestTriesReportWhatCertainlyDidNotStart(t *testing.T) {
	tests := []struct {
		scenario string
		want     []string
	}{
		{"ok", []string{"send"}},
		{"flaky", []string{"send", "not started", "send", "not started", "send"}}, // Two 502 pages, then the run.
		{"gateway_502", []string{"send", "not started", "send", "not started", "send", "not started"}},
		{"rate_limited", []string{"send", "not started", "send", "not started", "send", "not started"}},
		{"daily_limit", []string{"send", "not started"}}, // Not sent again, but certainly not started.
		{"gateway_504", []string{"send"}},                // May hide a running workflow.
		{"stream_error", []string{"send"}},               // Started, then failed.
		{"stream_cut_lost", []string{"send"}},            // 200 and nothing: it may have started.
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			sim := newSim(t, difytest.Options{Scenario: tt.scenario})
			c := newTestClient(t, sim.URL())
			var got tryLog
			_, err := c.RunWorkflow(context.Background(), RunRequest{User: "u", Inputs: map[string]any{"query": "hi"}, Tries: got.tries(nil)})
			if (err == nil) != (tt.scenario == "ok" || tt.scenario == "flaky") {
				t.Errorf("err = %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("tries %q, want %q", got, tt.want)
			}
		})
	}

	t.Run("chat conversation gone", func(t *testing.T) {
		sim := newSim(t, difytest.Options{Shape: "chatflow_per_user"})
		c := newTestClient(t, sim.URL())
		first, err := c.SendChatMessage(context.Background(), ChatRequest{Query: "hi", User: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		var got tryLog
		_, err = c.SendChatMessage(context.Background(), ChatRequest{Query: "hi", User: "bob", ConversationID: first.ConversationID, Tries: got.tries(nil)})
		if !errors.Is(err, ErrConversationGone) || !slices.Equal(got, []string{"send", "not started"}) {
			t.Errorf("err %v, tries %q", err, got)
		}
	})

	t.Run("breaker open", func(t *testing.T) {
		sim := newSim(t, difytest.Options{})
		c := newTestClient(t, sim.URL())
		c.Breaker().SetMode(ModeOpen, "maintenance")
		var got tryLog
		if _, err := c.RunWorkflow(context.Background(), RunRequest{User: "u", Tries: got.tries(nil)}); !errors.Is(err, ErrMaintenance) || len(got) != 0 {
			t.Errorf("err %v, tries %q; want nothing tried", err, got)
		}
	})

	t.Run("OnSend fails", func(t *testing.T) {
		sim := newSim(t, difytest.Options{})
		c := newTestClient(t, sim.URL())
		stored := errors.New("database is locked")
		var got tryLog
		_, err := c.RunWorkflow(context.Background(), RunRequest{User: "u", Tries: got.tries(stored)})
		if !errors.Is(err, stored) || !slices.Equal(got, []string{"send"}) || sim.Calls(difytest.RouteRun) != 0 {
			t.Errorf("err %v, tries %q, %d POSTs; want the error and nothing sent", err, got, sim.Calls(difytest.RouteRun))
		}
		if s := c.Breaker().Status(); s.Failures != 0 {
			t.Errorf("the breaker counted the caller's failure: %+v", s)
		}
	})
}
