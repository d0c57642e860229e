package line

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/difybot/difybot/bot/bottest"
	"github.com/difybot/difybot/platforms/line/linetest"
)

const fuzzChannelSecret = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b"

func fuzzWebhook(tb testing.TB) (*Adapter, *bottest.Inbox) {
	tb.Helper()
	acc := &bottest.Inbox{}
	a, err := New(Config{Inbox: acc, ChannelSecret: fuzzChannelSecret, ChannelToken: "fuzz-channel-token", Logger: zerolog.Nop()})
	if err != nil {
		tb.Fatal(err)
	}
	return a, acc
}

// fuzzBodies are the recorded webhooks in testdata and shapes that are not LINE's.
func fuzzBodies(tb testing.TB) [][]byte {
	tb.Helper()
	paths, _ := filepath.Glob("testdata/*.json")
	var out [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return append(out, []byte(""), []byte("{"), []byte("null"), []byte(`{"events":null}`), []byte(`{"events":[null,1,"x",{}]}`),
		[]byte(`{"events":[{"type":"message","source":{"type":"user"},"message":{"type":"text","text":"hi","mention":{"mentionees":[{"type":"user","index":-5,"length":99,"isSelf":true}]}}}]}`))
}

// FuzzWebhookUnsigned: whatever the body and X-Line-Signature, a request not signed with the channel secret is
// answered 401 and never reaches the parser: nothing is accepted.
//
//	go test -run XXX -fuzz FuzzWebhookUnsigned -fuzztime 60s ./platforms/line
func FuzzWebhookUnsigned(f *testing.F) {
	a, acc := fuzzWebhook(f)
	for _, body := range fuzzBodies(f) {
		f.Add(body, "")
		f.Add(body, "not base64 at all")
		f.Add(body, linetest.Signature("the-wrong-secret", body))                           // Forged.
		f.Add(body, linetest.Signature(fuzzChannelSecret, append(bytes.Clone(body), '\n'))) // Signed for other bytes.
		f.Add(body, linetest.Signature(fuzzChannelSecret, body)[:20])                       // Truncated.
	}
	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		if sig == linetest.Signature(fuzzChannelSecret, body) {
			t.Skip("a valid signature: FuzzWebhookSigned covers those")
		}
		req := httptest.NewRequest(http.MethodPost, "/line/webhook", bytes.NewReader(body))
		if sig != "" {
			req.Header.Set("X-Line-Signature", sig)
		}
		rec := httptest.NewRecorder()
		a.serveWebhook(rec, req)
		want := http.StatusUnauthorized
		if len(body) > DefaultMaxBodyBytes {
			want = http.StatusRequestEntityTooLarge
		}
		if rec.Code != want {
			t.Fatalf("unsigned request answered %d, want %d", rec.Code, want)
		}
		if n := len(acc.Accepted()); n != 0 {
			t.Fatalf("an unsigned request reached Accept (%d events)", n)
		}
	})
}

// FuzzWebhookSigned: a correctly signed body of any shape never panics the handler, is answered 200 or 400
// (not JSON), and whatever is accepted is a LINE message with an event id and a chat to answer in.
//
//	go test -run XXX -fuzz FuzzWebhookSigned -fuzztime 60s ./platforms/line
func FuzzWebhookSigned(f *testing.F) {
	a, acc := fuzzWebhook(f)
	for _, body := range fuzzBodies(f) {
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > DefaultMaxBodyBytes {
			t.Skip("over the body cap")
		}
		req := httptest.NewRequest(http.MethodPost, "/line/webhook", bytes.NewReader(body))
		req.Header.Set("X-Line-Signature", linetest.Signature(fuzzChannelSecret, body))
		acc.Reset()
		rec := httptest.NewRecorder()
		a.serveWebhook(rec, req)
		if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest {
			t.Fatalf("signed body answered %d %q, want 200 or 400", rec.Code, rec.Body)
		}
		for _, m := range acc.Accepted() {
			if m.Platform != platformName || m.EventID == "" || m.ChatID == "" || (m.Text == "" && len(m.Files) == 0) {
				t.Fatalf("accepted a malformed message: %+v", m)
			}
		}
	})
}
