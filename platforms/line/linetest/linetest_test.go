package linetest_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/line/line-bot-sdk-go/v8/linebot/messaging_api"
	"github.com/line/line-bot-sdk-go/v8/linebot/webhook"

	"github.com/difybot/difybot/platforms/line/linetest"
)

func TestSignatureVerifiesWithTheLINESDK(t *testing.T) {
	body := linetest.Message{EventID: "01", UserID: "U1", ReplyToken: "rt", Text: "hi"}.Body()
	if !webhook.ValidateSignature(linetest.ChannelSecret, linetest.Signature(linetest.ChannelSecret, body), body) {
		t.Error("the LINE SDK rejects the signature")
	}
	req, err := linetest.WebhookRequest("http://127.0.0.1", linetest.ChannelSecret, body)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := webhook.ParseRequest(linetest.ChannelSecret, req)
	if err != nil || len(cb.Events) != 1 {
		t.Fatalf("the LINE SDK cannot parse the body: %v", err)
	}
	if _, ok := cb.Events[0].(webhook.MessageEvent); !ok {
		t.Errorf("event is %T", cb.Events[0])
	}
}

// The fake answers the LINE SDK with LINE's rules: a reply token works once, a retry key is delivered once.
func TestServerAppliesLINEsRules(t *testing.T) {
	s := linetest.Start(t, linetest.Options{IssuedTokensOnly: true})
	api, err := messaging_api.NewMessagingApiAPI(linetest.ChannelToken, messaging_api.WithEndpoint(s.URL()))
	if err != nil {
		t.Fatal(err)
	}
	info, err := api.GetBotInfo()
	if err != nil || info.UserId != linetest.BotUserID {
		t.Fatalf("bot info = %+v, %v", info, err)
	}
	s.IssueToken("rt1", "Ua")
	text := []messaging_api.MessageInterface{messaging_api.TextMessage{Text: "The answer"}}
	reply := func(tok string) error {
		_, err := api.ReplyMessage(&messaging_api.ReplyMessageRequest{ReplyToken: tok, Messages: text})
		return err
	}
	if err := reply("rt1"); err != nil {
		t.Fatal(err)
	}
	if err := reply("rt1"); err == nil || !strings.Contains(err.Error(), "Invalid reply token") {
		t.Errorf("the token again: %v, want Invalid reply token", err)
	}
	if err := reply("made-up"); err == nil {
		t.Error("a token LINE never issued was accepted")
	}
	const key = "5f0e9c2a-3b1d-4e6f-8a7b-9c0d1e2f3a4b"
	var statuses []int
	for range 2 {
		res, _, _ := api.PushMessageWithHttpInfo(&messaging_api.PushMessageRequest{To: "Ua", Messages: text}, key)
		statuses = append(statuses, res.StatusCode)
	}
	if statuses[0] != http.StatusOK || statuses[1] != http.StatusConflict {
		t.Errorf("push statuses %v, want 200 then 409", statuses)
	}
	if r := s.Accepted(linetest.PathReply); len(r) != 1 || r[0].To != "Ua" || r[0].Messages[0].Text != "The answer" {
		t.Errorf("accepted replies %+v", r)
	}
	if p := s.Calls(linetest.PathPush); len(p) != 2 || p[1].RetryKey != key {
		t.Errorf("pushes %+v", p)
	}
}
