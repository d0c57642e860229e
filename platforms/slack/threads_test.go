package slack_test

import (
	"net/http"
	"testing"

	"github.com/difybot/difybot/bot/bottest"
	"github.com/difybot/difybot/bot/store/storetest"
	slackadapter "github.com/difybot/difybot/platforms/slack"
	"github.com/difybot/difybot/platforms/slack/slacktest"
)

// TestThreadsAreSharedByReplicas mentions the bot on one replica and replies in the thread on another: with the
// store as their thread memory, the second replica takes the reply as the bot's, as the first would.
func TestThreadsAreSharedByReplicas(t *testing.T) {
	fs := slacktest.Start(t, slacktest.Options{})
	st := storetest.SQLite(t).Open(t)
	tests := []struct {
		name    string
		threads slackadapter.ThreadMemory
		want    int // Messages the second replica accepts.
	}{
		{"each replica on its own", nil, 0},
		{"replicas sharing the store", st, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			share := func(c *slackadapter.Config) { c.Threads = tt.threads }
			first, second := &bottest.Inbox{}, &bottest.Inbox{}
			a := newAdapter(t, fs, first, fixedNow, share).EventsHandler()
			b := newAdapter(t, fs, second, fixedNow, share).EventsHandler()
			if w := serve(a, eventRequest(payload(t, "app_mention_file.json", fs))); w.Code != http.StatusOK || len(first.Accepted()) != 1 {
				t.Fatalf("mention on the first replica: %d, %d accepted", w.Code, len(first.Accepted()))
			}
			if w := serve(b, eventRequest(payload(t, "message_thread_reply.json", fs))); w.Code != http.StatusOK {
				t.Fatalf("thread reply on the second replica: %d", w.Code)
			}
			if n := len(second.Accepted()); n != tt.want {
				t.Errorf("the second replica accepted %d messages, want %d", n, tt.want)
			}
		})
	}
}
