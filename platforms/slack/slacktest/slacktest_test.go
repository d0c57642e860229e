package slacktest_test

import (
	"context"
	"io"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/difybot/difybot/platforms/slack/slacktest"
)

func TestSignatureVerifiesWithSlackGo(t *testing.T) {
	body := slacktest.DM{EventID: "Ev1", Channel: "D1", User: "U1", Text: "hi", TS: "1.2"}.Body()
	h := http.Header{}
	slacktest.Sign(h, slacktest.SigningSecret, time.Now(), body)
	sv, err := slack.NewSecretsVerifier(h, slacktest.SigningSecret)
	if err != nil {
		t.Fatal(err)
	}
	sv.Write(body)
	if err := sv.Ensure(); err != nil {
		t.Errorf("slack-go rejects the signature: %v", err)
	}
	req, err := slacktest.EventsRequest("http://127.0.0.1", slacktest.SigningSecret, body, 2)
	if err != nil || req.Header.Get("X-Slack-Retry-Num") != "2" || req.Header.Get("X-Slack-Signature") != h.Get("X-Slack-Signature") {
		t.Errorf("EventsRequest headers %v, %v", req.Header, err)
	}
}

// The fake answers slack-go as Slack does: the bot's identity, messages that exist until deleted, files with
// the bot token only, and the answers FailWith injects.
func TestServerSpeaksToSlackGo(t *testing.T) {
	s := slacktest.Start(t, slacktest.Options{})
	ctx := context.Background()
	api := slack.New(slacktest.BotToken, slack.OptionAPIURL(s.URL()))
	id, err := api.AuthTestContext(ctx)
	if err != nil || id.UserID != slacktest.BotUserID || id.TeamID != slacktest.TeamID {
		t.Fatalf("auth.test = %+v, %v", id, err)
	}
	_, ts, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("⏳ Working on it…", false), slack.MsgOptionTS("1.1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := api.UpdateMessageContext(ctx, "C1", ts, slack.MsgOptionText("The answer", false)); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := api.UpdateMessageContext(ctx, "C2", ts, slack.MsgOptionText("x", false)); err == nil || err.Error() != "message_not_found" {
		t.Errorf("update in another channel: %v, want message_not_found", err)
	}
	if m := s.Messages(); len(m) != 1 || !reflect.DeepEqual(m[0], slacktest.Message{Channel: "C1", TS: ts, ThreadTS: "1.1", Text: "The answer"}) {
		t.Errorf("messages = %+v", m)
	}
	if _, _, err := api.DeleteMessageContext(ctx, "C1", ts); err != nil || len(s.Messages()) != 0 {
		t.Errorf("delete: %v, messages %+v", err, s.Messages())
	}
	if _, err := slack.New("xoxb-wrong", slack.OptionAPIURL(s.URL())).AuthTestContext(ctx); err == nil || err.Error() != "invalid_auth" {
		t.Errorf("a wrong token: %v, want invalid_auth", err)
	}

	s.FailWith("chat.postMessage", slacktest.RateLimited)
	if _, _, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("x", false)); err == nil {
		t.Error("a rate-limited post succeeded")
	}
	s.FailWith("chat.postMessage", nil)
	if n := len(s.CallsTo("chat.postMessage")); n != 2 {
		t.Errorf("%d chat.postMessage calls recorded, want 2", n)
	}

	f := s.AddFile("F1", slacktest.File{Name: "a.png", Mimetype: "image/png", Body: []byte("\x89PNG")})
	if f.URL != s.FileURL("F1", "a.png") || f.Size != 4 {
		t.Errorf("shared file %+v", f)
	}
	for token, want := range map[string]int{slacktest.BotToken: http.StatusOK, "xoxb-wrong": http.StatusNotFound} {
		req, _ := http.NewRequest(http.MethodGet, f.URL, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != want || (want == http.StatusOK && string(b) != "\x89PNG") {
			t.Errorf("download with %s: %d %q", token, res.StatusCode, b)
		}
	}
	if got := s.ServedBytes(); got != 4 {
		t.Errorf("served %d bytes, want 4", got)
	}
}
