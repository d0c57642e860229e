package loadtest

import (
	"fmt"
	"image"
	_ "image/png"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/platforms/slack/slacktest"
)

func TestClassifyKnowsEveryBotText(t *testing.T) {
	for _, c := range bot.Codes() {
		text := bot.Diagnosis{Code: c}.UserText(bot.LangEN, "20261122-abc")
		k, code := Classify(text)
		if k != KindDiagnosis || code == "" {
			t.Errorf("%s: Classify = %v %q", c, k, code)
		}
		// Codes that share a text are told apart by nobody; what matters is that the text is a diagnosis.
		same := (bot.Diagnosis{Code: code}).UserText(bot.LangEN, "") == (bot.Diagnosis{Code: c}).UserText(bot.LangEN, "")
		if code != c && !same {
			t.Errorf("%s: classified as %s", c, code)
		}
	}
	for _, c := range []bot.Code{bot.CodeBreakerOpen, bot.CodeBreakerMaintenance} {
		if k, _ := Classify(bot.HeldText(bot.LangEN, c, "ref")); k != KindHeld {
			t.Errorf("held text for %s: %v", c, k)
		}
	}
	for text, want := range map[string]Kind{
		"⏳ Working on it…":                                  KindWorking,
		"⏳ Working on it… running *Analyse image* (1 done)": KindWorking,
		"Received a PNG image, 640×480 px, 9.5 MB.":         KindAnswer,
		"No image was attached. You said: hi.":              KindAnswer,
	} {
		if k, _ := Classify(text); k != want {
			t.Errorf("Classify(%q) = %v, want %v", text, k, want)
		}
	}
}

func TestSummarize(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	d := Summarize(ds)
	if d.N != 100 || d.P50 != 50*time.Millisecond || d.P90 != 90*time.Millisecond || d.P99 != 99*time.Millisecond || d.Max != 100*time.Millisecond {
		t.Errorf("Summarize = %+v", d)
	}
	if (Summarize(nil) != Dist{}) {
		t.Error("Summarize(nil) is not zero")
	}
}

func TestBlobIsWhatItClaims(t *testing.T) {
	png := Blob{Kind: "png", Size: 50_000_000, Width: 4000, Height: 3000}
	n, err := io.Copy(io.Discard, png.Open())
	if err != nil || n != png.Size {
		t.Fatalf("png stream: %d bytes, %v", n, err)
	}
	head := make([]byte, 512)
	io.ReadFull(png.Open(), head)
	if ct := http.DetectContentType(head); ct != "image/png" {
		t.Errorf("png sniffs as %s", ct)
	}
	cfg, format, err := image.DecodeConfig(png.Open())
	if err != nil || format != "png" || cfg.Width != 4000 || cfg.Height != 3000 {
		t.Errorf("DecodeConfig = %+v %s %v", cfg, format, err)
	}
	pdf := Blob{Kind: "pdf", Size: 1000}
	io.ReadFull(pdf.Open(), head)
	if ct := http.DetectContentType(head); ct != "application/pdf" {
		t.Errorf("pdf sniffs as %s", ct)
	}
	if n, _ := io.Copy(io.Discard, Blob{Kind: "png", Size: 10}.Open()); n != 10 {
		t.Errorf("a blob smaller than its header is %d bytes", n)
	}
}

func TestFakesCountWhatEachLINEChatGot(t *testing.T) {
	f := NewFakes()
	defer f.Close()
	f.LINE.IssueToken("rt1", "Ua")
	call := func(path, key, body string) int {
		req, _ := http.NewRequest(http.MethodPost, f.LINE.URL()+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+LINEChannelToken)
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("X-Line-Retry-Key", key)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	const key = "5f0e9c2a-3b1d-4e6f-8a7b-9c0d1e2f3a4b"
	answer := `"messages":[{"type":"text","text":"Received a PNG image."}]`
	got := []int{
		call("/v2/bot/message/reply", "", `{"replyToken":"rt1",`+answer+`}`),
		call("/v2/bot/message/reply", "", `{"replyToken":"rt1",`+answer+`}`), // Used.
		call("/v2/bot/message/push", key, `{"to":"Ua",`+answer+`}`),
		call("/v2/bot/message/push", key, `{"to":"Ua",`+answer+`}`), // Same key.
	}
	if fmt.Sprint(got) != "[200 400 200 409]" {
		t.Errorf("statuses %v, want [200 400 200 409]", got)
	}
	if c := f.Conversations()["Ua"]; c.Finals != 2 || c.Outcome != "answer" {
		t.Errorf("conversation %+v, want 2 finals (the reply and one push)", c)
	}
}

func TestFakesCountWhatASlackChannelShows(t *testing.T) {
	f := NewFakes()
	defer f.Close()
	call := func(method string, form string) string {
		req, _ := http.NewRequest(http.MethodPost, f.Slack.URL()+method, strings.NewReader(form))
		req.Header.Set("Authorization", "Bearer "+SlackBotToken)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	out := call("chat.postMessage", "channel=D1&thread_ts=1.1&text=%E2%8F%B3+Working+on+it%E2%80%A6")
	ts := out[strings.Index(out, `"ts":"`)+6:]
	ts = ts[:strings.Index(ts, `"`)]
	call("chat.update", "channel=D1&ts="+ts+"&text=The+answer")
	call("chat.update", "channel=D1&ts="+ts+"&text=The+answer") // A repeated edit after a crash: still one message.
	call("chat.postMessage", "channel=D2&thread_ts=1.2&text=%E2%8F%B3+Working+on+it%E2%80%A6")
	convs := f.Conversations()
	if c := convs["D1"]; c.Finals != 1 || c.FinalWrites != 2 || c.Working != 0 {
		t.Errorf("D1 %+v, want 1 final message, 2 final writes", c)
	}
	if c := convs["D2"]; c.Finals != 0 || c.Working != 1 {
		t.Errorf("D2 %+v, want a placeholder left", c)
	}
	if !strings.Contains(call("auth.test", ""), slacktest.BotUserID) {
		t.Error("auth.test does not name the bot")
	}
}
