package slacktest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Signature is Slack's v0 signature of body sent at ts (Unix seconds, as X-Slack-Request-Timestamp carries
// it): "v0=" and the hex HMAC-SHA256 of "v0:{ts}:{body}" with the signing secret.
func Signature(secret, ts string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("v0:" + ts + ":"))
	mac.Write(body)
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

// Sign sets the headers Slack signs a request with: X-Slack-Request-Timestamp (at) and X-Slack-Signature.
func Sign(h http.Header, secret string, at time.Time, body []byte) {
	ts := strconv.FormatInt(at.Unix(), 10)
	h.Set("X-Slack-Request-Timestamp", ts)
	h.Set("X-Slack-Signature", Signature(secret, ts, body))
}

// EventsRequest is a POST of body to base+"/slack/events" signed now with secret, as Slack delivers events.
// retry > 0 marks a redelivery, with X-Slack-Retry-Num.
func EventsRequest(base, secret string, body []byte, retry int) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodPost, base+"/slack/events", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	Sign(req.Header, secret, time.Now(), body)
	if retry > 0 {
		req.Header.Set("X-Slack-Retry-Num", strconv.Itoa(retry))
		req.Header.Set("X-Slack-Retry-Reason", "http_error")
	}
	return req, nil
}

// SharedFile is a file as a message event carries it.
type SharedFile struct {
	ID, Name, Mimetype, URL string
	Size                    int64
}

// DM is a direct message to the bot: an Events API message.im event.
type DM struct {
	EventID string
	Channel string // A D… channel: a DM with the bot.
	User    string
	Text    string
	TS      string // Also the thread the bot answers in.
	Files   []SharedFile
}

// Body is the event_callback JSON Slack POSTs to the events URL: the same bytes on every call.
func (m DM) Body() []byte {
	sec, _, _ := strings.Cut(m.TS, ".")
	eventTime, _ := strconv.ParseInt(sec, 10, 64)
	ev := map[string]any{"type": "message", "channel": m.Channel, "channel_type": "im", "user": m.User,
		"text": m.Text, "ts": m.TS, "event_ts": m.TS, "team": TeamID}
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
	b, _ := json.Marshal(map[string]any{"token": "legacy-verification-token", "team_id": TeamID,
		"api_app_id": "A0AB12CDE", "event": ev, "type": "event_callback", "event_id": m.EventID,
		"event_time":     eventTime,
		"authorizations": []map[string]any{{"team_id": TeamID, "user_id": BotUserID, "is_bot": true}}})
	return b
}
