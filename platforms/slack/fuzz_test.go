package slack_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/difybot/difybot/bot/bottest"
	slackadapter "github.com/difybot/difybot/platforms/slack"
	"github.com/difybot/difybot/platforms/slack/slacktest"
)

const fuzzSecret = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"

// fuzzAdapter is an adapter whose Slack API, answered in memory, counts every call: the adapter calls
// Slack (auth.test) only for an event it has parsed.
func fuzzAdapter(tb testing.TB) (*slackadapter.Adapter, *bottest.Inbox, *atomic.Int64) {
	tb.Helper()
	var calls atomic.Int64
	api := fuzzTransport(func(r *http.Request) *http.Response {
		calls.Add(1)
		return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}}, Request: r,
			Body: io.NopCloser(strings.NewReader(`{"ok":true,"user_id":"U06BQ4XLKD2","team_id":"T0AB12CDE"}`))}
	})
	acc := &bottest.Inbox{}
	a, err := slackadapter.New(slackadapter.Config{Inbox: acc, BotToken: "xoxb-1-2-fuzz", SigningSecret: fuzzSecret, APIURL: "https://slack.test/api/",
		HTTPClient: &http.Client{Transport: api}, Logger: zerolog.Nop()})
	if err != nil {
		tb.Fatal(err)
	}
	return a, acc, &calls
}

type fuzzTransport func(*http.Request) *http.Response

func (t fuzzTransport) RoundTrip(r *http.Request) (*http.Response, error) { return t(r), nil }

// fuzzSeeds are the recorded payloads in testdata, plus shapes that are not Slack's at all.
func fuzzSeeds(tb testing.TB) [][]byte {
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
	return append(out, []byte(""), []byte("{"), []byte("null"), []byte(`{"type":"event_callback","event":null}`),
		[]byte(`{"type":"event_callback","event":{"type":"message","channel_type":"im","channel":"D1","user":"U1","ts":"1.2"},"event_id":"Ev1"}`),
		[]byte(`{"type":"url_verification","challenge":"x"}`), []byte("payload=%7B%22type%22%3A%22block_actions%22%7D"))
}

// FuzzEventsUnsigned: whatever the body and headers, a request without Slack's signature is answered 401 and
// never reaches the parser: nothing is accepted or retried, and Slack's API is never called.
//
//	go test -run XXX -fuzz FuzzEventsUnsigned -fuzztime 60s ./platforms/slack
func FuzzEventsUnsigned(f *testing.F) {
	a, acc, calls := fuzzAdapter(f)
	now := strconv.FormatInt(time.Now().Unix(), 10)
	for _, body := range fuzzSeeds(f) {
		f.Add(body, "", "")
		f.Add(body, now, "")
		f.Add(body, now, "v0=00")
		f.Add(body, now, slacktest.Signature("the-wrong-secret", now, body))                   // Forged.
		f.Add(body, "1500000000", slacktest.Signature(fuzzSecret, "1500000000", body))         // Stale: signed, 2017.
		f.Add(body, now, slacktest.Signature(fuzzSecret, now, append(bytes.Clone(body), ' '))) // Signed for other bytes.
		f.Add(body, now+"0", slacktest.Signature(fuzzSecret, now, body))                       // Timestamp changed.
		f.Add(body, now, "v1="+slacktest.Signature(fuzzSecret, now, body)[3:])                 // Wrong version.
	}
	handlers := map[string]http.Handler{"/slack/events": a.EventsHandler(), "/slack/interactions": a.InteractionsHandler()}
	f.Fuzz(func(t *testing.T, body []byte, ts, sig string) {
		if sig == slacktest.Signature(fuzzSecret, ts, body) {
			if n, err := strconv.ParseInt(ts, 10, 64); err == nil && time.Since(time.Unix(n, 0)).Abs() < 5*time.Minute {
				t.Skip("a valid signature: FuzzEventsSigned covers those")
			}
		}
		for path, h := range handlers {
			req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
			if ts != "" {
				req.Header.Set("X-Slack-Request-Timestamp", ts)
			}
			if sig != "" {
				req.Header.Set("X-Slack-Signature", sig)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			want := http.StatusUnauthorized
			if len(body) > slackadapter.DefaultMaxBodyBytes {
				want = http.StatusRequestEntityTooLarge
			}
			if rec.Code != want {
				t.Fatalf("%s: unsigned request answered %d, want %d", path, rec.Code, want)
			}
		}
		if n := acc.Reached(); n != 0 {
			t.Fatalf("an unsigned request reached Accept/Retry (%d calls)", n)
		}
		if n := calls.Load(); n != 0 {
			t.Fatalf("an unsigned request made the adapter call Slack (%d calls)", n)
		}
	})
}

// FuzzEventsSigned: a correctly signed body of any shape never panics the handler, and is answered 200
// (handled or ignored) or 400 (not JSON); anything accepted is a Slack message.
//
//	go test -run XXX -fuzz FuzzEventsSigned -fuzztime 60s ./platforms/slack
func FuzzEventsSigned(f *testing.F) {
	a, acc, _ := fuzzAdapter(f)
	for _, body := range fuzzSeeds(f) {
		f.Add(body, false)
		f.Add(body, true)
	}
	h := a.EventsHandler()
	f.Fuzz(func(t *testing.T, body []byte, redelivery bool) {
		if len(body) > slackadapter.DefaultMaxBodyBytes {
			t.Skip("over the body cap: FuzzEventsUnsigned and the bad-input table cover 413")
		}
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		req := httptest.NewRequest(http.MethodPost, "/slack/events", bytes.NewReader(body))
		req.Header.Set("X-Slack-Request-Timestamp", ts)
		req.Header.Set("X-Slack-Signature", slacktest.Signature(fuzzSecret, ts, body))
		if redelivery {
			req.Header.Set("X-Slack-Retry-Num", "1")
		}
		acc.Reset()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest {
			t.Fatalf("signed body answered %d %q, want 200 or 400", rec.Code, rec.Body)
		}
		for _, m := range acc.Accepted() {
			// Slack always sends channel, ts and event_id; a signed body without them is accepted as it is.
			if m.Platform != "slack" || m.Redelivery != redelivery {
				t.Fatalf("accepted a malformed message: %+v", m)
			}
		}
	})
}
