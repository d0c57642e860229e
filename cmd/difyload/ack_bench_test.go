package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/store"
	"github.com/difybot/difybot/bot/store/storetest"
	"github.com/difybot/difybot/internal/loadtest"
	"github.com/difybot/difybot/platforms/line"
	"github.com/difybot/difybot/platforms/line/linetest"
	"github.com/difybot/difybot/platforms/slack"
	"github.com/difybot/difybot/platforms/slack/slacktest"
)

// BenchmarkAck is the ack path in-process, without HTTP between sender and bot: the real Slack and LINE
// handlers verify, parse and Accept (one transaction on the real store), one webhook after another. It is
// the floor under the ack latencies of docs/benchmarks.md.
//
//	go test -run XXX -bench Ack -benchtime 2000x ./cmd/difyload
func BenchmarkAck(b *testing.B) {
	stores := map[string]func(b *testing.B) store.Config{
		"sqlite": func(b *testing.B) store.Config {
			return store.Config{SQLitePath: filepath.Join(b.TempDir(), "difybot.db"), Logger: zerolog.Nop()}
		},
		"postgres": func(b *testing.B) store.Config {
			u, drop, err := loadtest.NewDatabase(b.Context(), postgresURL(b))
			if err != nil {
				b.Skipf("PostgreSQL: %v", err)
			}
			b.Cleanup(drop)
			return store.Config{DatabaseURL: u, Logger: zerolog.Nop()}
		},
	}
	for _, name := range []string{"sqlite", "postgres"} {
		for _, platform := range []string{"slack", "line"} {
			b.Run(name+"/"+platform, func(b *testing.B) {
				st, err := store.Open(b.Context(), stores[name](b))
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				inbox, err := bot.NewInbox(bot.InboxConfig{Store: st, Logger: zerolog.New(io.Discard)})
				if err != nil {
					b.Fatal(err)
				}
				fs := slacktest.Start(b, slacktest.Options{})
				var h http.Handler
				var mk func(i int) *http.Request
				tag := fmt.Sprintf("%X", time.Now().UnixNano())
				switch platform {
				case "slack":
					a, err := slack.New(slack.Config{BotToken: slacktest.BotToken, SigningSecret: slacktest.SigningSecret,
						APIURL: fs.URL(), Logger: zerolog.Nop(), Inbox: inbox})
					if err != nil {
						b.Fatal(err)
					}
					h = a.Routes()[0].Handler
					mk = func(i int) *http.Request {
						id := fmt.Sprintf("%s%07d", tag, i)
						body := slacktest.DM{EventID: "Ev" + id, Channel: "D" + id, User: "U" + id, Text: "hi",
							TS: fmt.Sprintf("%d.%06d", time.Now().Unix(), i%1000000)}.Body()
						req := httptest.NewRequest(http.MethodPost, "/slack/events", bytes.NewReader(body))
						req.Header.Set("Content-Type", "application/json")
						slacktest.Sign(req.Header, slacktest.SigningSecret, time.Now(), body)
						return req
					}
				case "line":
					a, err := line.New(line.Config{ChannelSecret: linetest.ChannelSecret, ChannelToken: linetest.ChannelToken,
						Logger: zerolog.Nop(), Inbox: inbox})
					if err != nil {
						b.Fatal(err)
					}
					h = a.Routes()[0].Handler
					mk = func(i int) *http.Request {
						id := fmt.Sprintf("%s%07d", tag, i)
						body := linetest.Message{EventID: "01" + id, UserID: "U" + id, ReplyToken: "rt" + id, Text: "hi",
							Timestamp: time.Now()}.Body()
						req := httptest.NewRequest(http.MethodPost, "/line/webhook", bytes.NewReader(body))
						req.Header.Set("X-Line-Signature", linetest.Signature(linetest.ChannelSecret, body))
						return req
					}
				}
				h.ServeHTTP(httptest.NewRecorder(), mk(-1)) // auth.test once, outside the loop.
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, mk(i))
					if rec.Code != http.StatusOK {
						b.Fatalf("ack %d: %d %s", i, rec.Code, rec.Body)
					}
					i++
				}
			})
		}
	}
}

func postgresURL(tb testing.TB) string {
	tb.Helper()
	if u := os.Getenv("DIFYBOT_TEST_POSTGRES"); u != "" {
		return u
	}
	return storetest.DefaultPostgres
}
