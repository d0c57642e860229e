package slack_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/bottest"
	slackadapter "github.com/difybot/difybot/platforms/slack"
	"github.com/difybot/difybot/platforms/slack/slacktest"
)

// socketEvent wraps a testdata payload the way socketmode.Client delivers it.
func socketEvent(t testing.TB, name string, retryAttempt int) socketmode.Event {
	t.Helper()
	raw := payload(t, name, nil)
	ev, err := slackevents.ParseEvent(json.RawMessage(raw), slackevents.OptionNoVerifyToken())
	if err != nil {
		t.Fatal(err)
	}
	return socketmode.Event{Type: socketmode.EventTypeEventsAPI, Data: ev,
		Request: &socketmode.Request{Type: "events_api", EnvelopeID: "env-" + name, Payload: raw, RetryAttempt: retryAttempt}}
}

// order records what happened, across the fake acceptor and the acker.
type order struct {
	mu  sync.Mutex
	log []string
}

func (o *order) add(s string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.log = append(o.log, s)
}

func (o *order) get() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.log...)
}

func TestSocketModeAcksOnlyAfterAccept(t *testing.T) {
	tests := []struct {
		name       string
		evt        func(t *testing.T) socketmode.Event
		acceptErr  error
		want       []string
		redelivery bool
	}{
		{name: "accepted", evt: func(t *testing.T) socketmode.Event { return socketEvent(t, "message_file_share.json", 0) },
			want: []string{"accept Ev07KX2BA1B2", "ack env-message_file_share.json"}},
		{name: "redelivered", evt: func(t *testing.T) socketmode.Event { return socketEvent(t, "message_im.json", 2) },
			want: []string{"accept Ev07KX4D2E5F", "ack env-message_im.json"}, redelivery: true},
		{name: "not stored: no ack, Slack delivers again", evt: func(t *testing.T) socketmode.Event { return socketEvent(t, "message_im.json", 0) },
			acceptErr: errors.New("database is locked"), want: []string{"accept Ev07KX4D2E5F"}},
		{name: "ignored: acked without accepting", evt: func(t *testing.T) socketmode.Event { return socketEvent(t, "message_changed.json", 0) },
			want: []string{"ack env-message_changed.json"}},
		{name: "connection events are not acked", evt: func(*testing.T) socketmode.Event {
			return socketmode.Event{Type: socketmode.EventTypeConnected, Data: &socketmode.ConnectedEvent{}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := slacktest.Start(t, slacktest.Options{})
			var o order
			acc := &bottest.Inbox{Err: tt.acceptErr, OnAccept: func(m bot.Message) { o.add("accept " + m.EventID) }}
			a := newAdapter(t, fs, acc)
			a.HandleSocketEvent(context.Background(), tt.evt(t), func(id string) error { o.add("ack " + id); return nil })
			if got := o.get(); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("events = %q, want %q", got, tt.want)
			}
			if msgs := acc.Given(); len(msgs) > 0 && msgs[0].Redelivery != tt.redelivery {
				t.Errorf("Redelivery = %v, want %v", msgs[0].Redelivery, tt.redelivery)
			}
		})
	}
}

func TestSocketModeRetryButton(t *testing.T) {
	fs := slacktest.Start(t, slacktest.Options{})
	fs.AddMessage(failedMessage)
	acc := &bottest.Inbox{}
	a := newAdapter(t, fs, acc)
	var ic slack.InteractionCallback
	if err := json.Unmarshal(retryPayload(t, "run-9:1"), &ic); err != nil {
		t.Fatal(err)
	}
	var acks []string
	a.HandleSocketEvent(context.Background(), socketmode.Event{Type: socketmode.EventTypeInteractive, Data: ic,
		Request: &socketmode.Request{Type: "interactive", EnvelopeID: "env-int"}}, func(id string) error { acks = append(acks, id); return nil })
	if got := acc.Retried(); !reflect.DeepEqual(got, []string{"run-9"}) {
		t.Fatalf("Retry calls = %v, want [run-9]", got)
	}
	if !reflect.DeepEqual(acks, []string{"env-int"}) {
		t.Errorf("acks = %v, want [env-int]", acks)
	}
	if u := fs.CallsTo("chat.update"); len(u) != 1 || u[0].Form.Get("text") != "🔁 Retrying…" {
		t.Errorf("updates = %+v, want the Retrying edit", u)
	}
}

// A Socket Mode server speaking Slack's envelopes: hello, one events_api envelope, then it waits for the ack.
func TestRunSocketMode(t *testing.T) {
	fs := slacktest.Start(t, slacktest.Options{})
	acks := make(chan string, 1)
	upgrader := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }} // Slack's client sends Origin: https://api.slack.com.
	ws := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		hello := `{"type":"hello","num_connections":1,"debug_info":{"host":"applink-1","build_number":1,"approximate_connection_time":18060},"connection_info":{"app_id":"A0AB12CDE"}}`
		envelope := `{"envelope_id":"dbdd0ef3-1543-4f94-bfb4-133d0e6c1545","payload":` + string(payload(t, "message_im.json", nil)) +
			`,"type":"events_api","accepts_response_payload":false,"retry_attempt":0,"retry_reason":""}`
		for _, m := range []string{hello, envelope} {
			if conn.WriteMessage(websocket.TextMessage, []byte(m)) != nil {
				return
			}
		}
		for {
			_, msg, err := conn.ReadMessage()
			if err != nil {
				return
			}
			var ack struct {
				EnvelopeID string `json:"envelope_id"`
			}
			if json.Unmarshal(msg, &ack) == nil && ack.EnvelopeID != "" {
				select {
				case acks <- ack.EnvelopeID:
				default:
				}
			}
		}
	}))
	t.Cleanup(ws.Close)
	fs.SetSocketURL("ws" + strings.TrimPrefix(ws.URL, "http"))

	acc := &bottest.Inbox{}
	a := newAdapter(t, fs, acc, func(c *slackadapter.Config) { c.SigningSecret, c.AppToken = "", "xapp-1-A0AB12CDE-1234-abcd" })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.RunSocketMode(ctx) }()

	select {
	case id := <-acks:
		if id != "dbdd0ef3-1543-4f94-bfb4-133d0e6c1545" {
			t.Errorf("acked %q", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the envelope was never acknowledged")
	}
	if msgs := acc.Accepted(); len(msgs) != 1 || msgs[0].EventID != "Ev07KX4D2E5F" {
		t.Errorf("accepted %+v, want the DM's event before the ack", msgs)
	}
	if open := fs.CallsTo("apps.connections.open"); len(open) != 1 || open[0].Auth != "Bearer xapp-1-A0AB12CDE-1234-abcd" {
		t.Errorf("apps.connections.open calls = %+v, want one with the app token", open)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("RunSocketMode = %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RunSocketMode did not return after its context ended")
	}
}

func TestRunSocketModeNeedsAppToken(t *testing.T) {
	fs := slacktest.Start(t, slacktest.Options{})
	if err := newAdapter(t, fs, &bottest.Inbox{}).RunSocketMode(context.Background()); err == nil {
		t.Fatal("RunSocketMode without AppToken succeeded")
	}
}
