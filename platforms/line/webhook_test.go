package line

import (
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/line/line-bot-sdk-go/v8/linebot/webhook"
	"github.com/rs/zerolog"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/bottest"
	"github.com/difybot/difybot/platforms/line/linetest"
)

const (
	userID  = "U4af4980629a1b2c3d4e5f6a7b8c9d0e1"
	groupID = "Ca56f94637c8d9e0f1a2b3c4d5e6f7a8b"
	roomID  = "Ra8dbf4673c4c812cd491258042226c99"
	setID   = "E005D41A7288F41B65593ED38FF6E9834B046AB36A37921A56BC236F13A91855"
)

func ms(n int64) time.Time { return time.UnixMilli(n).UTC() }

func TestWebhookAcceptsMessages(t *testing.T) {
	quote := "q3Plxr4AgKd5Jg0tY2a9fPVTqpAZCQvOBLhzAArQNw3hOtfcTVVqgaKs-LV6Dna3tZaKWGqsdi5N84q9VyvrrQPuHFaAbd-5t-X3SbdyH3ZaaS-gcFTrJe0TqY5kRnOOnL8iHi1t-Dn2YsUX9I1TlQ"
	setImage := func(i int, id, ev, token string, ts int64) bot.Message {
		idx := string(rune('0' + i))
		return bot.Message{Platform: "line", EventID: ev, ChatID: userID, UserID: userID,
			Files: []bot.File{{ID: id, Name: "line-" + id}}, ReplyToken: token, ReceivedAt: ms(ts),
			Set: &bot.PhotoSet{ID: setID, Index: i, Total: 3},
			Extra: map[string]string{"source": "user", "message_id": id,
				"quote_token":  "Qs" + idx + "kQ2wE6rT0yU4iO8pA2sD6fG0hJ4kL8zX2cV6bN0mQ4wE8rT2yU6iO0pA4sD8fG2hJ6kL0zX4cV8bN2mQ6wE0rT4yU8iO2pA" + idx,
				"image_set_id": setID, "image_set_index": idx, "image_set_total": "3"}}
	}
	tests := []struct {
		file string
		want []bot.Message
	}{
		{"text_user.json", []bot.Message{{Platform: "line", EventID: "01HXZ1S0M3S9Y7D0X4V2Q8K5T1", ChatID: userID, UserID: userID,
			Text: "What is a good name for a cat?", ReplyToken: "b60d432864f44d079f6d8efe86cf404b", ReceivedAt: ms(1716000000000),
			Extra: map[string]string{"source": "user", "message_id": "468789577898262530", "quote_token": quote}}}},
		{"image_user.json", []bot.Message{{Platform: "line", EventID: "01HXZ1T7B9F2K8M4N6P0R3S5V7", ChatID: userID, UserID: userID,
			Files: []bot.File{{ID: "354718705033693859", Name: "line-354718705033693859"}}, ReplyToken: "7840b71058e24a5d91f9b5726c7512c9",
			ReceivedAt: ms(1716000001000), Extra: map[string]string{"source": "user", "message_id": "354718705033693859", "quote_token": quote}}}},
		{"image_external.json", []bot.Message{{Platform: "line", EventID: "01HXZ1V2C4E6G8J0L2N4Q6S8U0", ChatID: userID, UserID: userID,
			Files:      []bot.File{{URL: "https://images.example.com/liff/photo.jpg?sig=abc123", Name: "photo.jpg"}},
			ReplyToken: "0f3779fba3b349968c5d07db31eab56f", ReceivedAt: ms(1716000002000),
			Extra: map[string]string{"source": "user", "message_id": "354718705033693861",
				"quote_token": "yHAz4Ua2wx7s6QuY3s9Y1Lk0oYt1hM3yXnSq7ZcA-8DfTnV0bB1eRqK2uW3zX5cV7bN9mJ1hG3fD5sA7qW9eR1tY3uI5oP7aS9dF"}}}},
		// The bot's own mention is removed; another person's stays.
		{"text_group.json", []bot.Message{{Platform: "line", EventID: "01HXZ1W5D7F9H1K3M5P7R9T1V3", ChatID: groupID, UserID: userID,
			Text: "what does this error mean? cc @Sato", ReplyToken: "8cf9239d56244f4197887e939187e19e", ReceivedAt: ms(1716000003000),
			Extra: map[string]string{"source": "group", "message_id": "468789577898262531",
				"quote_token": "Xa1rT5yU9iO3pA7sD1fG5hJ9kL3zX7cV1bN5mQ9wE3rT7yU1iO5pA9sD3fG7hJ1kL5zX9cV3bN7mQ1wE5rT9yU3iO7pA1sD5fG9"}}}},
		{"image_room.json", []bot.Message{{Platform: "line", EventID: "01HXZ1X8E0G2J4L6N8Q0S2U4W6", ChatID: roomID, UserID: "U1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e",
			Files: []bot.File{{ID: "354718705033693870", Name: "line-354718705033693870"}}, ReplyToken: "f50c1ff5c2d84c01b9a0c1d4a5b7e9f0",
			ReceivedAt: ms(1716000004000), Extra: map[string]string{"source": "room", "message_id": "354718705033693870",
				"quote_token": "Rm7kQ2wE6rT0yU4iO8pA2sD6fG0hJ4kL8zX2cV6bN0mQ4wE8rT2yU6iO0pA4sD8fG2hJ6kL0zX4cV8bN2mQ6wE0rT4yU8iO2pA6"}}}},
		{"image_group.json", []bot.Message{{Platform: "line", EventID: "01HXZ23D5F7H9K1M3P5R7T9V1X", ChatID: groupID, UserID: "U1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e",
			Files: []bot.File{{ID: "354718705033693890", Name: "line-354718705033693890"}}, ReplyToken: "a1c3e5f7b9d1e3f5a7c9e1b3d5f7a9c1",
			ReceivedAt: ms(1716000008000), Extra: map[string]string{"source": "group", "message_id": "354718705033693890",
				"quote_token": "Gp3kQ2wE6rT0yU4iO8pA2sD6fG0hJ4kL8zX2cV6bN0mQ4wE8rT2yU6iO0pA4sD8fG2hJ6kL0zX4cV8bN2mQ6wE0rT4yU8iO2pG3"}}}},
		// Each image of a set is its own message, answered on its own (docs/line.md says why).
		{"image_set.json", []bot.Message{
			setImage(1, "354718705033693881", "01HXZ1Z1A3C5E7G9J1L3N5Q7S1", "1a2b3c4d5e6f47a8b9c0d1e2f3a4b5c6", 1716000005000),
			setImage(2, "354718705033693882", "01HXZ1Z1A3C5E7G9J1L3N5Q7S2", "2a2b3c4d5e6f47a8b9c0d1e2f3a4b5c6", 1716000005010),
			setImage(3, "354718705033693883", "01HXZ1Z1A3C5E7G9J1L3N5Q7S3", "3a2b3c4d5e6f47a8b9c0d1e2f3a4b5c6", 1716000005020)}},
		{"redelivery.json", []bot.Message{{Platform: "line", EventID: "01HXZ20A2B4D6F8H0K2M4P6R8T", ChatID: userID, UserID: userID,
			Text: "Are you there?", ReplyToken: "3d5f7b9a1c2e4f6a8b0c2d4e6f8a0b2c", ReceivedAt: ms(1715999940000), Redelivery: true,
			Extra: map[string]string{"source": "user", "message_id": "468789577898262599", "quote_token": quote}}}},
		{"verify.json", nil},
		{"sticker.json", nil},
		// Follow, unfollow, join, video, file, unsend, a standby-mode text and an event type the SDK does not know.
		{"others.json", nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			rec := &bottest.Inbox{}
			a := newAdapter(t, linetest.Start(t, linetest.Options{}), rec)
			if code := postSigned(t, a, readTestdata(t, tt.file)); code != http.StatusOK {
				t.Fatalf("status %d, want 200", code)
			}
			got := rec.Accepted()
			if !reflect.DeepEqual(got, tt.want) {
				g, _ := json.MarshalIndent(got, "", "  ")
				w, _ := json.MarshalIndent(tt.want, "", "  ")
				t.Errorf("accepted:\n%s\nwant:\n%s", g, w)
			}
		})
	}
}

func TestWebhookRejectsUnverifiedRequests(t *testing.T) {
	body := readTestdata(t, "image_user.json")
	tampered := bytes.Replace(body, []byte("354718705033693859"), []byte("354718705033693860"), 1)
	big := append(bytes.Repeat([]byte(" "), 2048), body...)
	tests := []struct {
		name      string
		method    string
		body      []byte
		signature string
		want      int
	}{
		{"no signature", http.MethodPost, body, "", http.StatusUnauthorized},
		{"signed with another secret", http.MethodPost, body, linetest.Signature("another-secret", body), http.StatusUnauthorized},
		{"body changed after signing", http.MethodPost, tampered, linetest.Signature(testSecret, body), http.StatusUnauthorized},
		{"signature not base64", http.MethodPost, body, "not base64!", http.StatusUnauthorized},
		{"over the body cap, even when signed", http.MethodPost, big, linetest.Signature(testSecret, big), http.StatusRequestEntityTooLarge},
		{"signed but not JSON", http.MethodPost, []byte("events"), linetest.Signature(testSecret, []byte("events")), http.StatusBadRequest},
		{"GET", http.MethodGet, nil, "", http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &bottest.Inbox{}
			a := newAdapter(t, linetest.Start(t, linetest.Options{}), rec, func(c *Config) { c.MaxBodyBytes = int64(len(body)) + 100 })
			var code int
			if tt.method == http.MethodPost {
				code = post(t, a, tt.body, tt.signature)
			} else {
				req, _ := http.NewRequest(tt.method, "/line/webhook", nil)
				w := newRecorderWriter()
				a.serveWebhook(w, req)
				code = w.code
			}
			if code != tt.want {
				t.Errorf("status %d, want %d", code, tt.want)
			}
			if n := len(rec.Accepted()); n != 0 {
				t.Errorf("%d messages accepted, want none", n)
			}
		})
	}
}

// recorderWriter is the least ResponseWriter, for requests httptest.NewRequest would not build.
type recorderWriter struct {
	h    http.Header
	code int
}

func newRecorderWriter() *recorderWriter              { return &recorderWriter{h: http.Header{}, code: 200} }
func (w *recorderWriter) Header() http.Header         { return w.h }
func (w *recorderWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *recorderWriter) WriteHeader(code int)        { w.code = code }

func TestWebhookAcceptFailureAnswers500(t *testing.T) {
	// The second image of the set cannot be stored: LINE must get a 500 to redeliver, and the third event
	// is not accepted out of order.
	rec := &bottest.Inbox{FailAt: 2}
	a := newAdapter(t, linetest.Start(t, linetest.Options{}), rec)
	if code := postSigned(t, a, readTestdata(t, "image_set.json")); code != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", code)
	}
	if got := rec.Accepted(); len(got) != 1 || got[0].EventID != "01HXZ1Z1A3C5E7G9J1L3N5Q7S1" {
		t.Errorf("accepted %+v, want only the first image", got)
	}
}

func TestWebhookSkipsAnEventItCannotRead(t *testing.T) {
	// An event without a type breaks the SDK's decoder; the good event next to it is still accepted.
	body := []byte(`{"destination":"U1","events":[{"timestamp":1},` + string(eventOf(t, "text_user.json")) + `]}`)
	rec := &bottest.Inbox{}
	a := newAdapter(t, linetest.Start(t, linetest.Options{}), rec)
	if code := postSigned(t, a, body); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if got := rec.Accepted(); len(got) != 1 || got[0].Text != "What is a good name for a cat?" {
		t.Errorf("accepted %+v", got)
	}
}

// eventOf returns the first event of a testdata body.
func eventOf(t testing.TB, file string) []byte {
	t.Helper()
	var cb struct {
		Events []json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(readTestdata(t, file), &cb); err != nil {
		t.Fatal(err)
	}
	return cb.Events[0]
}

func TestWithoutSelfMentions(t *testing.T) {
	self := func(i, n int32) webhook.MentioneeInterface {
		return webhook.UserMentionee{Index: i, Length: n, IsSelf: true}
	}
	other := func(i, n int32) webhook.MentioneeInterface { return webhook.UserMentionee{Index: i, Length: n} }
	tests := []struct {
		name  string
		text  string
		ments []webhook.MentioneeInterface
		want  string
	}{
		{"no mention", "hello", nil, "hello"},
		{"bot first", "@Bot hi", []webhook.MentioneeInterface{self(0, 4)}, " hi"},
		{"someone else stays", "@Ann hi", []webhook.MentioneeInterface{other(0, 4)}, "@Ann hi"},
		// LINE counts UTF-16 units: the emoji before the mention is two of them.
		{"after an emoji", "😀@Bot 写真", []webhook.MentioneeInterface{self(2, 4)}, "😀 写真"},
		{"only the mention", "@Bot", []webhook.MentioneeInterface{self(0, 4)}, ""},
		{"positions out of range", "@Bot", []webhook.MentioneeInterface{self(2, 9)}, "@Bot"},
		{"all mention is not the bot", "@All hi", []webhook.MentioneeInterface{webhook.AllMentionee{Index: 0, Length: 4}}, "@All hi"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m *webhook.Mention
			if tt.ments != nil {
				m = &webhook.Mention{Mentionees: tt.ments}
			}
			if got := withoutSelfMentions(tt.text, m); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLogsHoldNoSecretsOrText(t *testing.T) {
	var buf bytes.Buffer
	f := linetest.Start(t, linetest.Options{})
	rec := &bottest.Inbox{}
	a := newAdapter(t, f, rec, func(c *Config) { c.Logger = zerolog.New(&buf).Level(zerolog.DebugLevel) })
	body := readTestdata(t, "text_user.json")
	sig := linetest.Signature(testSecret, body)
	post(t, a, body, sig)
	post(t, a, body, linetest.Signature("wrong", body))
	msgs := rec.Accepted()
	if len(msgs) != 1 {
		t.Fatalf("accepted %d", len(msgs))
	}
	if err := a.Reply(t.Context(), msgs[0], final("The answer text", &bottest.State{})); err != nil {
		t.Fatal(err)
	}
	if buf.Len() == 0 {
		t.Fatal("nothing was logged")
	}
	for _, secret := range []string{"good name for a cat", "The answer text", msgs[0].ReplyToken, testToken, testSecret, sig, msgs[0].Extra["quote_token"]} {
		if strings.Contains(buf.String(), secret) {
			t.Errorf("the log contains %q:\n%s", secret, buf.String())
		}
	}
}
