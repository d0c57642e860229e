package bot_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/bottest"
	"github.com/difybot/difybot/dify/difytest"
)

// A new conversation opens with the app's opening statement and suggested questions (a Slack assistant thread).
func TestGreetingIsTheAppsOpening(t *testing.T) {
	h := newHarnessWith(t, difytest.Options{Shape: "chatflow_per_user"})
	g, err := h.bot.Greeting(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if g.Text != "Send me a photo and ask about it." || len(g.Prompts) == 0 || strings.TrimSpace(g.Prompts[0]) == "" {
		t.Errorf("greeting = %+v, want the opening statement and the suggested questions", g)
	}
}

// streamer is a platform that records what the pipeline streams.
type streamer struct {
	*bottest.Platform
	mu  sync.Mutex
	got []bot.Stream
}

func (s *streamer) Stream(_ context.Context, _ bot.Message, st bot.Stream) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, st)
	return nil
}

// The pipeline streams a workflow's text as it comes, reasoning held back, with its nodes; the final reply is the
// whole answer the stream began.
func TestPipelineStreamsTheAnswer(t *testing.T) {
	sp := &streamer{Platform: bottest.NewPlatform("fake")}
	h := newHarnessWith(t, difytest.Options{Scenario: "stream_long", Latency: 300 * time.Millisecond},
		func(c *bot.Config) { c.Platforms = []bot.Platform{sp} })
	r, err := h.send(t, bot.Message{EventID: "ev-long", Text: "tell me all"})
	if err != nil || r.Status != bot.RunSucceeded {
		t.Fatalf("run %+v: %v", r, err)
	}
	var texts []string
	started, running := false, false
	for _, s := range sp.got {
		if s.RunID != r.ID || s.Attempt != 1 || s.State == nil {
			t.Errorf("stream %+v, want the run's id, attempt and state", s)
		}
		if s.Text != "" {
			texts = append(texts, s.Text)
		}
		for _, task := range s.Tasks {
			started = started || task.Title == "Start" && task.Status == bot.TaskDone
			running = running || task.Title == "Analyse image" && task.Status == bot.TaskRunning
		}
	}
	if len(texts) < 3 || len(texts) > 2000/256+4 {
		t.Fatalf("%d streams with text, want a few, batched", len(texts))
	}
	for i, tx := range texts {
		if strings.Contains(tx, "think") || !strings.HasPrefix(r.Reply, strings.TrimSpace(tx)) {
			t.Errorf("stream %d = %.80q, want a beginning of the answer without its reasoning", i, tx)
		}
	}
	if !started || !running {
		t.Errorf("the streams' tasks showed the start node done %v, the LLM node running %v; want both", started, running)
	}
}
