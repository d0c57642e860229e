package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/difybot/difybot/dify/difytest"
	"github.com/difybot/difybot/internal/loadtest"
	"github.com/difybot/difybot/platforms/slack/slacktest"
)

// streamRuns is how many streamed answers are measured at once.
const streamRuns = 20

// stream measures Slack streaming (SLACK_STREAMING=auto) with difysim's stream_long: 20 DMs at once, each
// answered with about 2,000 characters written in many text_chunk events. For each answer it takes the time
// from Dify writing the answer's first words (the text_chunk that closes the <think> block) to the fake Slack
// receiving the first markdown chunk of the stream, and counts the Slack API calls the answer cost.
func (b *bench) stream(ctx context.Context) error {
	lat := max(b.o.latency, time.Second) // Per node: the LLM node writes its answer over it.
	fmt.Fprintf(b.out, "### Streamed answers in Slack (%d DMs at once; difysim stream_long, %s per node, 3 nodes)\n\n", streamRuns, lat)
	fmt.Fprintln(b.out, "| store | answer chars p50 | Dify's first answer chunk → Slack has it p50 | p99 | max | Slack calls per answer p50 | max | calls of the median answer |")
	fmt.Fprintln(b.out, "|---|---|---|---|---|---|---|---|")
	for _, st := range b.stores() {
		b.logf("stream: %s", st)
		if err := b.streamRow(ctx, st, lat); err != nil {
			return err
		}
	}
	fmt.Fprintln(b.out)
	return nil
}

func (b *bench) streamRow(ctx context.Context, st string, lat time.Duration) error {
	r, done, err := b.rigWith(ctx, st, difytest.Options{Scenario: "stream_long", Latency: lat, PingEvery: time.Second},
		map[string]string{"SLACK_STREAMING": "auto", "WORKERS": "32"})
	if err != nil {
		return err
	}
	defer done()
	c := loadtest.Client()
	warm := []loadtest.Msg{r.Message("slack", "warm-up", nil), r.Message("slack", "warm-up", nil)}
	for _, m := range warm {
		if _, code, err := r.Deliver(ctx, c, m, 5*time.Second, time.Now().Add(30*time.Second)); err != nil || code != http.StatusOK {
			return fmt.Errorf("stream: warm-up message: status %d, %v", code, err)
		}
	}
	if err := waitStreamed(ctx, r, warm, time.Minute); err != nil {
		return err
	}
	msgs := make([]loadtest.Msg, streamRuns)
	for i := range msgs {
		msgs[i] = r.Message("slack", fmt.Sprintf("tell me all %d", i), nil)
	}
	base := r.Serve.URL()
	shots := loadtest.Fire(ctx, c, 1000, len(msgs), len(msgs), func(i int) (*http.Request, error) { return msgs[i].Request(base, 0) })
	for i, s := range shots {
		if s.Status != http.StatusOK {
			return fmt.Errorf("stream: message %d answered %d", i, s.Status)
		}
	}
	if err := waitStreamed(ctx, r, msgs, 2*time.Minute); err != nil {
		return err
	}
	calls := map[string][]slacktest.Call{}
	for _, call := range r.Slack.Calls() {
		if ch := call.Form.Get("channel"); ch != "" {
			calls[ch] = append(calls[ch], call)
		}
	}
	texts := map[string]int{}
	for _, m := range r.Slack.Messages() {
		texts[m.Channel] = len(m.Text)
	}
	users := r.Sim.Users()
	var first []time.Duration
	var counts, chars []int
	perMethod := map[int]string{}
	for _, m := range msgs {
		u := users[m.DifyUser]
		for _, call := range calls[m.Conv] {
			if call.Method == "chat.appendStream" && strings.Contains(call.Form.Get("chunks"), `"markdown_text"`) && !u.FirstText.IsZero() {
				first = append(first, call.At.Sub(u.FirstText))
				break
			}
		}
		n := len(calls[m.Conv])
		counts, chars = append(counts, n), append(chars, texts[m.Conv])
		perMethod[n] = methodCounts(calls[m.Conv])
	}
	if len(first) < len(msgs) {
		return fmt.Errorf("stream: %d of %d answers were not streamed\n%s", len(msgs)-len(first), len(msgs), r.Serve.Tail(3000))
	}
	slices.Sort(counts)
	slices.Sort(chars)
	d := loadtest.Summarize(first)
	med := counts[len(counts)/2]
	fmt.Fprintf(b.out, "| %s | %d | %s | %s | %s | %d | %d | %s |\n", st, chars[len(chars)/2], loadtest.Ms(d.P50), loadtest.Ms(d.P99),
		loadtest.Ms(d.Max), med, counts[len(counts)-1], perMethod[med])
	return nil
}

// methodCounts names how many calls of each method one answer made.
func methodCounts(calls []slacktest.Call) string {
	n := map[string]int{}
	for _, c := range calls {
		n[c.Method]++
	}
	var parts []string
	for m, k := range n {
		parts = append(parts, fmt.Sprintf("%s ×%d", m, k))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// waitStreamed waits until every message's channel shows one finished answer.
func waitStreamed(ctx context.Context, r *loadtest.Rig, msgs []loadtest.Msg, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		done := map[string]bool{}
		for _, m := range r.Slack.Messages() {
			if !m.Streaming && strings.Contains(m.Text, "the question you asked.") {
				done[m.Channel] = true
			}
		}
		missing := 0
		for _, m := range msgs {
			if !done[m.Conv] {
				missing++
			}
		}
		if missing == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("stream: %d of %d answers not finished in %s\n%s", missing, len(msgs), timeout, r.Serve.Tail(3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
