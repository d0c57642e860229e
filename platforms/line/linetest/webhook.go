package linetest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"time"
)

// Signature is the X-Line-Signature of body: the base64 HMAC-SHA256 of it with the channel secret.
func Signature(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// WebhookRequest is a POST of body to base+"/line/webhook" signed with secret, as LINE delivers webhooks.
func WebhookRequest(base, secret string, body []byte) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodPost, base+"/line/webhook", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Line-Signature", Signature(secret, body))
	return req, nil
}

// Message is a one-on-one message to the bot: text, or an image whose content the fake serves by ImageID.
type Message struct {
	EventID    string
	UserID     string
	ReplyToken string
	Text       string
	ImageID    string // Set for an image message.
	Redelivery bool
	Timestamp  time.Time // When the person sent it; zero is now (then every Body differs).
}

// Body is the webhook JSON LINE POSTs to the webhook URL.
func (m Message) Body() []byte {
	msg := map[string]any{"type": "text", "id": "4" + m.EventID, "quoteToken": "q-" + m.EventID, "text": m.Text}
	if m.ImageID != "" {
		msg = map[string]any{"type": "image", "id": m.ImageID, "quoteToken": "q-" + m.EventID,
			"contentProvider": map[string]any{"type": "line"}}
	}
	ts := m.Timestamp
	if ts.IsZero() {
		ts = time.Now()
	}
	b, _ := json.Marshal(map[string]any{"destination": BotUserID, "events": []map[string]any{{
		"type": "message", "mode": "active", "timestamp": ts.UnixMilli(), "webhookEventId": m.EventID,
		"deliveryContext": map[string]any{"isRedelivery": m.Redelivery},
		"source":          map[string]any{"type": "user", "userId": m.UserID},
		"replyToken":      m.ReplyToken, "message": msg,
	}}})
	return b
}
