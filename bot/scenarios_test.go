package bot_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/bottest"
	"github.com/difybot/difybot/dify"
	"github.com/difybot/difybot/dify/difytest"
	"github.com/rs/zerolog"
)

// outageCodes are the diagnoses that mean Dify, or the way to it, is unwell: only these may trip the breaker.
var outageCodes = map[string]bool{
	"dify_rate_limited": true, "dify_gateway_error": true, "dify_gateway_timeout": true,
	"dify_server_error": true, "dify_unreachable": true, "dify_bad_response": true,
}

// sequence does what the pipeline does with an image message, stopping at the first error.
func sequence(ctx context.Context, c *dify.Client, mode dify.ResponseMode, chat bool) (*dify.Run, error) {
	if _, err := c.Info(ctx); err != nil {
		return nil, err
	}
	var ae *dify.APIError
	if _, err := c.Parameters(ctx); err != nil && !(errors.As(err, &ae) && ae.Code == "app_unavailable") {
		return nil, err // The pipeline carries on after app_unavailable, as here: the run tells which it is.
	}
	f, err := c.UploadFile(ctx, dify.Upload{User: "u", Name: "photo.png", MIMEType: "image/png", Body: strings.NewReader(string(pngBytes))})
	if err != nil {
		return nil, err
	}
	if chat {
		_, err := c.SendChatMessage(ctx, dify.ChatRequest{Query: "hi", User: "u", Files: []dify.FileRef{dify.LocalImage(f.ID)}, Mode: mode})
		return nil, err
	}
	return c.RunWorkflow(ctx, dify.RunRequest{User: "u", Mode: mode,
		Inputs: map[string]any{"query": "hi", "photo": dify.LocalImage(f.ID)}})
}

var pngBytes = func() []byte { return bottest.PNG(&testing.T{}, 4, 4) }()

// TestEveryScenario drives the client through every simulator scenario, in both response modes, and checks
// the diagnosis code, the breaker effect, and that no workflow ever started twice.
func TestEveryScenario(t *testing.T) {
	for _, sc := range difytest.Scenarios() {
		if sc.Name == "slow" {
			continue
		}
		for _, mode := range []dify.ResponseMode{dify.Streaming, dify.Blocking} {
			t.Run(sc.Name+"/"+string(mode), func(t *testing.T) {
				t.Parallel()
				sim := difytest.NewServer(difytest.Options{Scenario: sc.Name, PingEvery: 5 * time.Millisecond})
				defer sim.Close()
				c, err := dify.New(dify.Config{BaseURL: sim.URL(), APIKey: "app-test", Logger: zerolog.Nop(),
					Retry:   dify.RetryPolicy{Base: time.Millisecond, Max: 3 * time.Millisecond},
					Breaker: dify.BreakerConfig{MinRequests: 1, FailureRatio: 0.01, OpenFor: time.Hour}, PollEvery: 2 * time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				chat := strings.HasPrefix(sc.Name, "chat") || sc.Name == "not_chat_app"
				run, err := sequence(context.Background(), c, mode, chat)
				code := ""
				var pe *dify.PausedError
				if err != nil && !(errors.As(err, &pe) && sc.Code == "") {
					// A pause the pipeline can ask (TestHumanInput*) is not a failure; one it cannot is diagnosed.
					code = string(bot.Diagnose(err).Code)
				}
				want := sc.Code
				if want == string(bot.CodeDifyNoOutput) {
					want = "" // The client succeeds; the pipeline finds no output to reply with (TestFailuresAreDiagnosed).
				}
				if code != want {
					t.Fatalf("diagnosis %q, want %q (err: %v)", code, want, err)
				}
				if err == nil && !chat && (run == nil || run.Status != "succeeded") || pe != nil && run.Status != "paused" {
					t.Fatalf("run = %+v", run)
				}
				tripped := c.Breaker().Status().State == "open"
				// Dify's own concurrency cap is capacity, not an outage (dify.Limiter); a proxy's 429 is one.
				outage := outageCodes[want] && !dify.ConcurrencyLimited(err)
				if tripped != outage {
					t.Errorf("breaker tripped = %v, want %v (%v)", tripped, outage, err)
				}
				if n := sim.Started(); n > 1 {
					t.Errorf("%d runs started, want at most 1", n)
				}
			})
		}
	}
}

func TestDroppedStreamIsRecoveredWithoutSecondPost(t *testing.T) {
	sim := difytest.NewServer(difytest.Options{Scenario: "stream_cut", PingEvery: 5 * time.Millisecond, Latency: 20 * time.Millisecond})
	defer sim.Close()
	c, _ := dify.New(dify.Config{BaseURL: sim.URL(), APIKey: "app-test", Logger: zerolog.Nop(), PollEvery: 5 * time.Millisecond})
	var events []string
	run, err := c.RunWorkflow(context.Background(), dify.RunRequest{User: "u", Inputs: map[string]any{"query": "hi"},
		OnEvent: func(e dify.Event) { events = append(events, e.Event) }})
	if err != nil {
		t.Fatal(err)
	}
	if !run.Recovered || run.Status != "succeeded" || run.Outputs["text"] == nil {
		t.Errorf("run = %+v", run)
	}
	if len(events) == 0 || events[0] != "workflow_started" {
		t.Errorf("events before the cut = %v", events)
	}
	if sim.Calls(difytest.RouteRun) != 1 || sim.Calls(difytest.RouteRunDetail) == 0 || sim.Started() != 1 {
		t.Errorf("POSTs %d, detail reads %d, started %d", sim.Calls(difytest.RouteRun), sim.Calls(difytest.RouteRunDetail), sim.Started())
	}
}

func TestOwnTimeoutStopsTheTask(t *testing.T) {
	sim := difytest.NewServer(difytest.Options{Scenario: "slow", Latency: time.Second, PingEvery: 5 * time.Millisecond})
	defer sim.Close()
	c, _ := dify.New(dify.Config{BaseURL: sim.URL(), APIKey: "app-test", Logger: zerolog.Nop()})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := c.RunWorkflow(ctx, dify.RunRequest{User: "u", Inputs: map[string]any{"query": "hi"}})
	var te *dify.TimeoutError
	if !errors.As(err, &te) || te.TaskID == "" || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a TimeoutError with the task id", err)
	}
	if sim.Calls(difytest.RouteStop) != 1 {
		t.Errorf("stop called %d times, want 1", sim.Calls(difytest.RouteStop))
	}
	if d := bot.Diagnose(err); d.Code != bot.CodeDifyWorkflowTimeout || d.Outage {
		t.Errorf("diagnosis %s outage %v", d.Code, d.Outage)
	}
}

func TestUnreachable(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	c, _ := dify.New(dify.Config{BaseURL: "http://" + addr + "/v1", APIKey: "app-test", Logger: zerolog.Nop(),
		Retry: dify.RetryPolicy{Base: time.Millisecond, Max: time.Millisecond}, Breaker: dify.BreakerConfig{MinRequests: 1, FailureRatio: 1}})
	_, err := c.Info(context.Background())
	if d := bot.Diagnose(err); d.Code != bot.CodeDifyUnreachable || !d.Outage || !strings.Contains(d.Summary, "refused") {
		t.Errorf("diagnosis %+v", d)
	}
	if _, err := c.Info(context.Background()); bot.Diagnose(err).Code != bot.CodeBreakerOpen {
		t.Errorf("second call: %v, want the breaker open", err)
	}
}
