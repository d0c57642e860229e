package harness

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Credentials the harness gives difybot and signs with. They are test values, never real ones.
const (
	SlackBotToken      = "xoxb-1111111111-2222222222-difyloadTestToken"
	SlackSigningSecret = "5b1f0c9e8d7a6b5c4d3e2f1a0b9c8d7e"
	SlackBotUser       = "U0DIFYBOT1"
	LINEChannelSecret  = "6c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f"
	LINEChannelToken   = "difyload-test-channel-access-token-0123456789abcdefghijklmnopqrstuvwxyz"
)

// SignSlack returns the headers Slack sends with body at ts: X-Slack-Request-Timestamp and the v0 HMAC-SHA256
// X-Slack-Signature over "v0:{ts}:{body}".
func SignSlack(secret string, ts time.Time, body []byte) http.Header {
	sec := strconv.FormatInt(ts.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "v0:%s:", sec)
	mac.Write(body)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("X-Slack-Request-Timestamp", sec)
	h.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	return h
}

// SignLINE returns the X-Line-Signature of body: base64 HMAC-SHA256 with the channel secret.
func SignLINE(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// SlackFile is a file attached to a Slack message.
type SlackFile struct {
	ID, Name, Mimetype, URL string
	Size                    int64
}

// SlackMessage is a direct message to the bot (event message.im).
type SlackMessage struct {
	EventID string
	Channel string // A D… channel: a DM with the bot.
	User    string
	Text    string
	TS      string // Also the thread the bot answers in.
	Files   []SlackFile
}

// Body is the event_callback JSON Slack would POST to /slack/events. It is the same bytes on every call.
func (m SlackMessage) Body() []byte {
	sec, _, _ := strings.Cut(m.TS, ".")
	eventTime, _ := strconv.ParseInt(sec, 10, 64)
	ev := map[string]any{"type": "message", "channel": m.Channel, "channel_type": "im", "user": m.User,
		"text": m.Text, "ts": m.TS, "event_ts": m.TS, "team": "T0DIFYLOAD"}
	if len(m.Files) > 0 {
		ev["subtype"] = "file_share"
		var fs []map[string]any
		for _, f := range m.Files {
			fs = append(fs, map[string]any{"id": f.ID, "name": f.Name, "title": f.Name, "mimetype": f.Mimetype,
				"filetype": "png", "size": f.Size, "mode": "hosted", "is_external": false, "file_access": "visible",
				"url_private": f.URL, "url_private_download": f.URL})
		}
		ev["files"] = fs
	}
	b, _ := json.Marshal(map[string]any{"token": "legacy-verification-token", "team_id": "T0DIFYLOAD",
		"api_app_id": "A0DIFYLOAD", "event": ev, "type": "event_callback", "event_id": m.EventID,
		"event_time":     eventTime,
		"authorizations": []map[string]any{{"team_id": "T0DIFYLOAD", "user_id": SlackBotUser, "is_bot": true}}})
	return b
}

// SlackRequest builds a signed POST of body to base+"/slack/events". retry > 0 marks a redelivery, as Slack
// does with X-Slack-Retry-Num.
func SlackRequest(base string, body []byte, retry int) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodPost, base+"/slack/events", bytesReader(body))
	if err != nil {
		return nil, err
	}
	req.Header = SignSlack(SlackSigningSecret, time.Now(), body)
	if retry > 0 {
		req.Header.Set("X-Slack-Retry-Num", strconv.Itoa(retry))
		req.Header.Set("X-Slack-Retry-Reason", "http_error")
	}
	return req, nil
}

// LINEMessage is a one-on-one LINE message: text, or an image whose content the fake LINE serves by ImageID.
type LINEMessage struct {
	EventID    string
	UserID     string
	ReplyToken string
	Text       string
	ImageID    string // Set for an image message.
	Redelivery bool
	Timestamp  time.Time // When the person sent it; zero is now (then every Body differs).
}

// Body is the webhook JSON LINE would POST to /line/webhook.
func (m LINEMessage) Body() []byte {
	msg := map[string]any{"type": "text", "id": "4" + m.EventID, "quoteToken": "q-" + m.EventID, "text": m.Text}
	if m.ImageID != "" {
		msg = map[string]any{"type": "image", "id": m.ImageID, "quoteToken": "q-" + m.EventID,
			"contentProvider": map[string]any{"type": "line"}}
	}
	ts := m.Timestamp
	if ts.IsZero() {
		ts = time.Now()
	}
	b, _ := json.Marshal(map[string]any{"destination": "U0DIFYLOADBOT", "events": []map[string]any{{
		"type": "message", "mode": "active", "timestamp": ts.UnixMilli(), "webhookEventId": m.EventID,
		"deliveryContext": map[string]any{"isRedelivery": m.Redelivery},
		"source":          map[string]any{"type": "user", "userId": m.UserID},
		"replyToken":      m.ReplyToken, "message": msg,
	}}})
	return b
}

// LINERequest builds a signed POST of body to base+"/line/webhook".
func LINERequest(base string, body []byte) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodPost, base+"/line/webhook", bytesReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Line-Signature", SignLINE(LINEChannelSecret, body))
	return req, nil
}

// PlatformEnv is the environment that points difybot's Slack and LINE adapters at the fakes.
func PlatformEnv(slackAPI, lineAPI string) map[string]string {
	env := map[string]string{}
	if slackAPI != "" {
		env["SLACK_BOT_TOKEN"], env["SLACK_SIGNING_SECRET"], env["SLACK_API_URL"] = SlackBotToken, SlackSigningSecret, slackAPI
	}
	if lineAPI != "" {
		env["LINE_CHANNEL_SECRET"], env["LINE_CHANNEL_TOKEN"] = LINEChannelSecret, LINEChannelToken
		env["LINE_API_URL"], env["LINE_DATA_API_URL"] = lineAPI, lineAPI
	}
	return env
}
