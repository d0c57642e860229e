package slack_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/bottest"
	"github.com/difybot/difybot/platforms/slack/slacktest"
)

// retryPayload is testdata's block_actions for a Retry click on a button whose value is value ("run-42:1": run
// run-42, attempt 1); the message's reference shows the run id.
func retryPayload(t testing.TB, value string) []byte {
	t.Helper()
	runID, _, _ := strings.Cut(value, ":")
	p := bytes.ReplaceAll(payload(t, "block_actions.json", nil), []byte(`"value": "RUN_ID"`), []byte(`"value": "`+value+`"`))
	return bytes.ReplaceAll(p, []byte("RUN_ID"), []byte(runID))
}

// retries records the requests an adapter makes of the inbox.
type retries struct {
	bottest.Inbox
	mu   sync.Mutex
	reqs []bot.RetryRequest
}

func (r *retries) Retry(ctx context.Context, req bot.RetryRequest) error {
	r.mu.Lock()
	r.reqs = append(r.reqs, bot.RetryRequest{RunID: req.RunID, Attempt: req.Attempt})
	r.mu.Unlock()
	return r.Inbox.Retry(ctx, req)
}

// failedMessage is the failure reply whose Retry button block_actions.json clicks.
var failedMessage = slacktest.Message{Channel: channel, TS: "1763800101.000210", ThreadTS: "1763800100.000200",
	Text: "The AI workflow failed.\nReference: RUN_ID"}

func TestRetryButton(t *testing.T) {
	const msgTS = "1763800101.000210"
	tests := []struct {
		name      string
		retryErr  error
		wantTexts []string // chat.update texts, in order.
		wantBtn   bool     // The last edit puts the button back.
		ephemeral bool
	}{
		{name: "queued", wantTexts: []string{"🔁 Retrying…"}},
		{name: "run gone", retryErr: fmt.Errorf("bot: retry run r: %w", bot.ErrNotFound),
			wantTexts: []string{"This request can no longer be retried."}},
		{name: "store failed", retryErr: errors.New("database is locked"),
			wantTexts: []string{"🔁 Retrying…", "The AI workflow failed.\nReference: run-42"}, wantBtn: true, ephemeral: true},
		// Pressed before, or this very press delivered again: nothing is queued and nothing is shown.
		{name: "attempt retried already", retryErr: fmt.Errorf("bot: retry run r: %w", bot.ErrStaleAttempt)},
		{name: "still running", retryErr: fmt.Errorf("bot: retry run r: %w", bot.ErrNotFinished)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := slacktest.Start(t, slacktest.Options{})
			fs.AddMessage(failedMessage)
			acc := &retries{Inbox: bottest.Inbox{RetryErr: tt.retryErr}}
			w := serve(newAdapter(t, fs, acc).InteractionsHandler(), interactionRequest(retryPayload(t, "run-42:1")))
			if w.Code != http.StatusOK {
				t.Fatalf("status = %d, want 200", w.Code)
			}
			if got := acc.reqs; !reflect.DeepEqual(got, []bot.RetryRequest{{RunID: "run-42", Attempt: 1}}) {
				t.Fatalf("Retry calls = %+v, want run-42 attempt 1", got)
			}
			var texts []string
			updates := fs.CallsTo("chat.update")
			for _, u := range updates {
				if u.Form.Get("channel") != channel || u.Form.Get("ts") != msgTS {
					t.Errorf("edited %s/%s, want the message with the button %s/%s", u.Form.Get("channel"), u.Form.Get("ts"), channel, msgTS)
				}
				texts = append(texts, u.Form.Get("text"))
			}
			if !reflect.DeepEqual(texts, tt.wantTexts) {
				t.Errorf("edits = %q, want %q", texts, tt.wantTexts)
			}
			if len(updates) == 0 {
				if len(fs.Writes()) != 0 {
					t.Errorf("Slack writes %v, want none", fs.Writes())
				}
				return
			}
			if first := updates[0].Form.Get("blocks"); first != "[]" {
				t.Errorf("first edit blocks = %q, want [] (the button removed)", first)
			}
			last := updates[len(updates)-1].Form.Get("blocks")
			if hasBtn := bytes.Contains([]byte(last), []byte(`"value":"run-42:1"`)); hasBtn != tt.wantBtn {
				t.Errorf("last edit blocks = %s; button present = %v, want %v", last, hasBtn, tt.wantBtn)
			}
			eph := fs.CallsTo("chat.postEphemeral")
			if (len(eph) == 1) != tt.ephemeral {
				t.Errorf("%d ephemeral notes, want %v", len(eph), tt.ephemeral)
			}
			if tt.ephemeral && (eph[0].Form.Get("user") != person || eph[0].Form.Get("thread_ts") != "1763800100.000200") {
				t.Errorf("ephemeral = %v, want it to the person in the thread", eph[0].Form)
			}
		})
	}
}

// A button shown before buttons carried their attempt still retries (whatever attempt the run is at).
func TestRetryButtonWithoutAttempt(t *testing.T) {
	fs := slacktest.Start(t, slacktest.Options{})
	acc := &retries{}
	h := newAdapter(t, fs, acc).InteractionsHandler()
	for _, value := range []string{"run-42", "run-42:x", "run:42:2"} {
		if w := serve(h, interactionRequest(retryPayload(t, value))); w.Code != http.StatusOK {
			t.Fatalf("status = %d, want 200", w.Code)
		}
	}
	want := []bot.RetryRequest{{RunID: "run-42"}, {RunID: "run-42:x"}, {RunID: "run:42", Attempt: 2}}
	if !reflect.DeepEqual(acc.reqs, want) {
		t.Errorf("Retry calls = %+v, want %+v", acc.reqs, want)
	}
}

func TestOtherInteractionsAreAcknowledged(t *testing.T) {
	fs := slacktest.Start(t, slacktest.Options{})
	acc := &bottest.Inbox{}
	h := newAdapter(t, fs, acc).InteractionsHandler()
	other := edited(t, retryPayload(t, "run-42:1"), func(p map[string]any) {
		p["actions"].([]any)[0].(map[string]any)["action_id"] = "someone_elses_button"
	})
	shortcut := []byte(`{"type":"shortcut","token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","action_ts":"1763800170.000100","team":{"id":"T0AB12CDE","domain":"example"},"user":{"id":"U02ABCDEF12","username":"alice","team_id":"T0AB12CDE"},"is_enterprise_install":false,"enterprise":null,"callback_id":"ask_dify","trigger_id":"7981234567892.1234567890123.aa"}`)
	for _, body := range [][]byte{other, shortcut} {
		if w := serve(h, interactionRequest(body)); w.Code != http.StatusOK {
			t.Fatalf("status = %d, want 200", w.Code)
		}
	}
	if len(acc.Retried()) != 0 || len(fs.Writes()) != 0 {
		t.Errorf("%d retries and %d Slack writes, want none", len(acc.Retried()), len(fs.Writes()))
	}
}

func TestInteractionWithoutPayloadIsBadRequest(t *testing.T) {
	fs := slacktest.Start(t, slacktest.Options{})
	body := []byte("foo=bar")
	r := httptest.NewRequest(http.MethodPost, "/slack/interactions", bytes.NewReader(body))
	slacktest.Sign(r.Header, secret, time.Now(), body)
	if w := serve(newAdapter(t, fs, &bottest.Inbox{}).InteractionsHandler(), r); w.Code != http.StatusBadRequest {
		t.Fatalf("status = %d, want 400", w.Code)
	}
}
