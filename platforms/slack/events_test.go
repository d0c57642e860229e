package slack_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/bottest"
	slackadapter "github.com/difybot/difybot/platforms/slack"
	"github.com/difybot/difybot/platforms/slack/slacktest"
)

var received = time.Date(2026, 11, 22, 9, 30, 0, 0, time.UTC)

func fixedNow(c *slackadapter.Config) { c.Now = func() time.Time { return received } }

func TestEventsBecomeMessages(t *testing.T) {
	fs := slacktest.Start(t, slacktest.Options{})
	photo := bot.File{ID: "F07KX2B9M4Q", Name: "photo.png", MIMEType: "image/png", Size: 67,
		URL: fs.FileURL("F07KX2B9M4Q", "photo.png")}
	receipt := bot.File{ID: "F07KX3C0N5R", Name: "receipt.jpg", MIMEType: "image/jpeg", Size: 48213,
		URL: fs.FileURL("F07KX3C0N5R", "receipt.jpg")}
	mentionMsg := bot.Message{Platform: "slack", EventID: "Ev07KX3C1D4E", ChatID: channel, ThreadID: "1763800100.000200",
		UserID: person, Text: "please check this receipt & total it", Files: []bot.File{receipt},
		ReceivedAt: received, Extra: map[string]string{"ts": "1763800100.000200"}}
	threadReply := bot.Message{Platform: "slack", EventID: "Ev07KX5E3F6A", ChatID: channel, ThreadID: "1763800100.000200",
		UserID: person, Text: "And what about the second page?", ReceivedAt: received, Extra: map[string]string{"ts": "1763800300.000400"}}

	tests := []struct {
		name   string
		before []string // Payloads delivered first, such as the mention that put the bot in a thread.
		body   func(t *testing.T) []byte
		want   []bot.Message // Everything accepted, before included.
	}{
		{
			name: "DM with an image (file_share)",
			body: func(t *testing.T) []byte { return payload(t, "message_file_share.json", fs) },
			want: []bot.Message{{Platform: "slack", EventID: "Ev07KX2BA1B2", ChatID: dmChannel, Conversation: dmChannel, ThreadID: "1763800000.123456",
				UserID: person, Text: "What is in this photo?", Files: []bot.File{photo}, ReceivedAt: received,
				Extra: map[string]string{"ts": "1763800000.123456"}}},
		},
		{
			name: "app_mention in a channel with a file",
			body: func(t *testing.T) []byte { return payload(t, "app_mention_file.json", fs) },
			want: []bot.Message{mentionMsg},
		},
		{
			name: "DM text: links, channels and entities made plain",
			body: func(t *testing.T) []byte { return payload(t, "message_im.json", fs) },
			want: []bot.Message{{Platform: "slack", EventID: "Ev07KX4D2E5F", ChatID: dmChannel, Conversation: dmChannel, ThreadID: "1763800200.000300",
				UserID: person, Text: "Summarise the report (https://example.com/report) for #general, is 3 < 4?", ReceivedAt: received,
				Extra: map[string]string{"ts": "1763800200.000300"}}},
		},
		{
			name:   "reply in a thread the bot was mentioned in",
			before: []string{"app_mention_file.json"},
			body:   func(t *testing.T) []byte { return payload(t, "message_thread_reply.json", fs) },
			want:   []bot.Message{mentionMsg, threadReply},
		},
		{
			name: "reply in a thread the bot started",
			body: func(t *testing.T) []byte {
				return edited(t, payload(t, "message_thread_reply.json", fs), func(p map[string]any) {
					p["event"].(map[string]any)["parent_user_id"] = botUser
				})
			},
			want: []bot.Message{threadReply},
		},
		{
			name: "file_share with a partial file object",
			body: func(t *testing.T) []byte { return payload(t, "message_file_share_partial.json", fs) },
			want: []bot.Message{{Platform: "slack", EventID: "Ev07KX6F4G7C", ChatID: dmChannel, Conversation: dmChannel, ThreadID: "1763800400.000500",
				UserID: person, Files: []bot.File{{ID: "F07KX6F4G7B"}}, ReceivedAt: received,
				Extra: map[string]string{"ts": "1763800400.000500"}}},
		},
		{
			name: "thread_broadcast in a DM",
			body: func(t *testing.T) []byte {
				return edited(t, payload(t, "message_im.json", fs), func(p map[string]any) {
					ev := p["event"].(map[string]any)
					ev["subtype"], ev["thread_ts"], ev["text"] = "thread_broadcast", "1763800000.123456", "also this"
				})
			},
			want: []bot.Message{{Platform: "slack", EventID: "Ev07KX4D2E5F", ChatID: dmChannel, Conversation: dmChannel, ThreadID: "1763800000.123456",
				UserID: person, Text: "also this", ReceivedAt: received, Extra: map[string]string{"ts": "1763800200.000300"}}},
		},
		// Ignored: acknowledged, never accepted.
		{name: "channel message that mentions the bot (app_mention runs it)", body: file("message_channel_mention.json", fs)},
		{name: "edit", body: file("message_changed.json", fs)},
		{name: "deletion", body: file("message_deleted.json", fs)},
		{name: "the bot's own message", body: file("message_bot_own.json", fs)},
		{name: "another bot's message", body: file("bot_message.json", fs)},
		{name: "reply in a thread the bot is not in", body: file("message_thread_reply.json", fs)},
		{
			name: "channel message without a mention",
			body: func(t *testing.T) []byte {
				return edited(t, payload(t, "message_thread_reply.json", fs), func(p map[string]any) {
					delete(p["event"].(map[string]any), "thread_ts")
				})
			},
		},
		{
			name: "app_mention by a bot",
			body: func(t *testing.T) []byte {
				return edited(t, payload(t, "app_mention_file.json", fs), func(p map[string]any) {
					p["event"].(map[string]any)["bot_id"] = "B01CIBOT123"
				})
			},
		},
		{
			name: "edited app_mention",
			body: func(t *testing.T) []byte {
				return edited(t, payload(t, "app_mention_file.json", fs), func(p map[string]any) {
					p["event"].(map[string]any)["edited"] = map[string]any{"user": person, "ts": "1763800150.000000"}
				})
			},
		},
		{
			name: "unknown inner event",
			body: func(t *testing.T) []byte {
				return edited(t, payload(t, "message_im.json", fs), func(p map[string]any) {
					p["event"].(map[string]any)["type"] = "some_future_event"
				})
			},
		},
		{
			name: "app_rate_limited",
			body: func(t *testing.T) []byte {
				return []byte(`{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","type":"app_rate_limited","team_id":"T0AB12CDE","minute_rate_limited":1763800020,"api_app_id":"A0AB12CDE"}`)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acc := &bottest.Inbox{}
			h := newAdapter(t, fs, acc, fixedNow).EventsHandler()
			for _, name := range tt.before {
				if w := serve(h, eventRequest(payload(t, name, fs))); w.Code != http.StatusOK {
					t.Fatalf("%s: status %d", name, w.Code)
				}
			}
			w := serve(h, eventRequest(tt.body(t)))
			if w.Code != http.StatusOK {
				t.Fatalf("status = %d, want 200 (body %q)", w.Code, w.Body.String())
			}
			if got := acc.Accepted(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("accepted:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func file(name string, fs *slacktest.Server) func(t *testing.T) []byte {
	return func(t *testing.T) []byte { return payload(t, name, fs) }
}

func TestURLVerification(t *testing.T) {
	fs := slacktest.Start(t, slacktest.Options{})
	acc := &bottest.Inbox{}
	w := serve(newAdapter(t, fs, acc).EventsHandler(), eventRequest(payload(t, "url_verification.json", nil)))
	if w.Code != http.StatusOK || w.Body.String() != "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" {
		t.Fatalf("got %d %q, want 200 with the challenge", w.Code, w.Body.String())
	}
	if ct := w.Header().Get("Content-Type"); ct != "text/plain" {
		t.Errorf("Content-Type = %q, want text/plain", ct)
	}
	if len(acc.Accepted()) != 0 || len(fs.Calls()) != 0 {
		t.Errorf("url_verification accepted %d messages and made %d Slack calls", len(acc.Accepted()), len(fs.Calls()))
	}
}

func TestEventsRefuseBadSignatures(t *testing.T) {
	body := payload(t, "message_im.json", nil)
	tests := []struct {
		name string
		req  func() *http.Request
	}{
		{"forged", func() *http.Request {
			r := eventRequest(body)
			slacktest.Sign(r.Header, "not-the-secret", time.Now(), body)
			return r
		}},
		{"stale", func() *http.Request {
			r := eventRequest(body)
			slacktest.Sign(r.Header, secret, time.Now().Add(-6*time.Minute), body)
			return r
		}},
		{"from the future", func() *http.Request {
			r := eventRequest(body)
			slacktest.Sign(r.Header, secret, time.Now().Add(6*time.Minute), body)
			return r
		}},
		{"tampered body", func() *http.Request {
			r := eventRequest(body)
			r.Body = io.NopCloser(bytes.NewReader(bytes.Replace(body, []byte("Summarise"), []byte("Delete all"), 1)))
			return r
		}},
		{"unsigned", func() *http.Request {
			r := eventRequest(body)
			r.Header.Del("X-Slack-Signature")
			r.Header.Del("X-Slack-Request-Timestamp")
			return r
		}},
		{"malformed signature", func() *http.Request {
			r := eventRequest(body)
			r.Header.Set("X-Slack-Signature", "v1=abc")
			return r
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := slacktest.Start(t, slacktest.Options{})
			acc := &bottest.Inbox{}
			a := newAdapter(t, fs, acc)
			for _, h := range []http.Handler{a.EventsHandler(), a.InteractionsHandler()} {
				w := serve(h, tt.req())
				if w.Code != http.StatusUnauthorized {
					t.Errorf("status = %d, want 401", w.Code)
				}
				if got := strings.TrimSpace(w.Body.String()); got != "unauthorized" {
					t.Errorf("body = %q: a refusal must not say why", got)
				}
			}
			if len(acc.Accepted()) != 0 || len(acc.Retried()) != 0 || len(fs.Calls()) != 0 {
				t.Errorf("a refused request reached the bot or Slack: %d accepted, %d retried, %d calls",
					len(acc.Accepted()), len(acc.Retried()), len(fs.Calls()))
			}
		})
	}
}

func TestEventsRefuseOversizeBody(t *testing.T) {
	fs := slacktest.Start(t, slacktest.Options{})
	acc := &bottest.Inbox{}
	a := newAdapter(t, fs, acc, func(c *slackadapter.Config) { c.MaxBodyBytes = 1024 })
	body := edited(t, payload(t, "message_im.json", nil), func(p map[string]any) {
		p["event"].(map[string]any)["text"] = strings.Repeat("x", 2048)
	})
	w := serve(a.EventsHandler(), eventRequest(body))
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status = %d, want 413", w.Code)
	}
	if len(acc.Accepted()) != 0 {
		t.Errorf("an oversize body was accepted")
	}
}

func TestEventsRefuseOtherMethods(t *testing.T) {
	fs := slacktest.Start(t, slacktest.Options{})
	w := serve(newAdapter(t, fs, &bottest.Inbox{}).EventsHandler(), httptest.NewRequest(http.MethodGet, "/slack/events", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("status = %d, want 405", w.Code)
	}
}

// Slack's retries are deduplicated by the store, by event id: the adapter must pass every delivery on with the
// same EventID (a retry may be the only delivery that got through) and answer 200 each time.
func TestEventsRedeliveriesKeepTheEventID(t *testing.T) {
	fs := slacktest.Start(t, slacktest.Options{})
	acc := &bottest.Inbox{}
	h := newAdapter(t, fs, acc).EventsHandler()
	body := payload(t, "message_file_share.json", fs)
	for n := range 3 {
		r := eventRequest(body)
		if n > 0 {
			r.Header.Set("X-Slack-Retry-Num", string(rune('0'+n)))
			r.Header.Set("X-Slack-Retry-Reason", "http_timeout")
		}
		if w := serve(h, r); w.Code != http.StatusOK {
			t.Fatalf("delivery %d: status %d, want 200", n+1, w.Code)
		}
	}
	got := acc.Accepted()
	if len(got) != 3 {
		t.Fatalf("Accept called %d times, want 3", len(got))
	}
	for i, m := range got {
		if m.EventID != "Ev07KX2BA1B2" {
			t.Errorf("delivery %d: EventID = %q, want Ev07KX2BA1B2", i+1, m.EventID)
		}
		if want := i > 0; m.Redelivery != want {
			t.Errorf("delivery %d: Redelivery = %v, want %v", i+1, m.Redelivery, want)
		}
	}
	if n := len(fs.CallsTo("auth.test")); n != 1 {
		t.Errorf("auth.test called %d times, want once (cached)", n)
	}
}

func TestEventsAnswer500WhenNotStored(t *testing.T) {
	fs := slacktest.Start(t, slacktest.Options{})
	acc := &bottest.Inbox{Err: errors.New("database is locked")}
	h := newAdapter(t, fs, acc).EventsHandler()
	body := payload(t, "message_im.json", nil)
	if w := serve(h, eventRequest(body)); w.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500 so that Slack delivers again", w.Code)
	}
	acc.SetErr(nil)
	r := eventRequest(body)
	r.Header.Set("X-Slack-Retry-Num", "1")
	r.Header.Set("X-Slack-Retry-Reason", "http_error")
	if w := serve(h, r); w.Code != http.StatusOK {
		t.Fatalf("redelivery: status = %d, want 200", w.Code)
	}
}

func TestEventsAnswer500WhenIdentityUnknown(t *testing.T) {
	fs := slacktest.Start(t, slacktest.Options{})
	fs.FailWith("auth.test", slacktest.Refuse("invalid_auth"))
	acc := &bottest.Inbox{}
	w := serve(newAdapter(t, fs, acc).EventsHandler(), eventRequest(payload(t, "message_im.json", nil)))
	if w.Code != http.StatusInternalServerError || len(acc.Accepted()) != 0 {
		t.Fatalf("status = %d with %d accepted, want 500 and none", w.Code, len(acc.Accepted()))
	}
}

// The adapter must never log tokens, signatures, bodies or what people wrote.
func TestEventsLogNoSecretsOrText(t *testing.T) {
	fs := slacktest.Start(t, slacktest.Options{})
	var logs syncBuffer
	acc := &bottest.Inbox{}
	a := newAdapter(t, fs, acc, func(c *slackadapter.Config) { c.Logger = zerolog.New(&logs).Level(zerolog.DebugLevel) })
	h := a.EventsHandler()
	for _, name := range []string{"message_file_share.json", "app_mention_file.json", "message_im.json", "message_changed.json"} {
		serve(h, eventRequest(payload(t, name, fs)))
		r := eventRequest(payload(t, name, fs))
		r.Header.Set("X-Slack-Retry-Num", "1")
		serve(h, r)
	}
	forged := eventRequest(payload(t, "message_im.json", nil))
	forged.Header.Set("X-Slack-Signature", "v0=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
	serve(h, forged)
	out := logs.String()
	if out == "" {
		t.Fatal("nothing was logged; the test would prove nothing")
	}
	for _, s := range []string{botToken, secret, "v0=", "What is in this photo", "receipt", "Summarise", "Jhj5dZrVaK7ZwHHjRyZWjbDl"} {
		if strings.Contains(out, s) {
			t.Errorf("the log contains %q:\n%s", s, out)
		}
	}
}
