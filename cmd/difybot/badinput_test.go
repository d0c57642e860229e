package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/dify/difytest"
	"github.com/difybot/difybot/internal/loadtest"
	"github.com/difybot/difybot/platforms/line/linetest"
	"github.com/difybot/difybot/platforms/slack/slacktest"
)

// TestBadInput sends bad input through a real serve process (the real Slack and LINE handlers, the store and
// the pipeline), with the fake Slack, LINE and Dify, and checks each gets its clear outcome: the HTTP answer
// to the webhook, whether a run was stored, and the final reply the person sees. docs/reliability.md shows
// the same table; -v prints it.
func TestBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a real serve process")
	}
	rig, err := loadtest.NewRig(t.Context(), loadtest.RigConfig{Bin: binary(t), Dir: t.TempDir(),
		Sim: difytest.Options{PingEvery: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer rig.Close()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("serve logs (tail):\n%s", rig.Serve.Tail(12000))
		}
	})
	base := rig.Serve.URL()
	post := func(path string, h http.Header, body io.Reader) int {
		req, _ := http.NewRequest(http.MethodPost, base+path, body)
		for k, v := range h {
			req.Header[k] = v
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	slackHeader := func(secret string, at time.Time, body []byte) http.Header {
		h := http.Header{"Content-Type": {"application/json"}}
		slacktest.Sign(h, secret, at, body)
		return h
	}
	lineHeader := func(body []byte, secret string) http.Header {
		h := http.Header{"Content-Type": {"application/json"}}
		if secret != "" {
			h.Set("X-Line-Signature", linetest.Signature(secret, body))
		}
		return h
	}
	n := 0
	slackMsg := func(text string, files ...slacktest.SharedFile) slacktest.DM {
		n++
		id := fmt.Sprintf("BAD%04d", n)
		return slacktest.DM{EventID: "Ev" + id, Channel: "D" + id, User: "U" + id, Text: text,
			TS: fmt.Sprintf("%d.%06d", time.Now().Unix(), n), Files: files}
	}
	lineMsg := func(text, image string) linetest.Message {
		n++
		id := fmt.Sprintf("bad%04d", n)
		m := linetest.Message{EventID: "01BAD" + id, UserID: "U" + id, ReplyToken: "rt" + id, Text: text, ImageID: image,
			Timestamp: time.Now()} // Fixed, so that every Body() is the same bytes.
		rig.LINE.IssueToken(m.ReplyToken, m.UserID)
		return m
	}
	const mb = 1_000_000
	const fiftyMB = 50 * mb

	type outcome struct {
		statuses []int  // The webhook's answers, one per POST.
		runs     int    // Runs stored for the event.
		reply    string // "answer", a diagnosis code, or "" for no reply at all.
	}
	type testCase struct {
		platform, input string
		send            func() (statuses []int, eventID, conv string)
		want            outcome
		check           func(t *testing.T) // More to check once the outcome is in.
	}
	var lineServedBefore int64
	cases := []testCase{
		{"slack", "forged signature (signed with another secret)", func() ([]int, string, string) {
			m := slackMsg("hi")
			return []int{post("/slack/events", slackHeader("not-the-signing-secret", time.Now(), m.Body()), bytes.NewReader(m.Body()))}, m.EventID, m.Channel
		}, outcome{[]int{401}, 0, ""}, nil},
		{"slack", "no signature headers", func() ([]int, string, string) {
			m := slackMsg("hi")
			return []int{post("/slack/events", http.Header{"Content-Type": {"application/json"}}, bytes.NewReader(m.Body()))}, m.EventID, m.Channel
		}, outcome{[]int{401}, 0, ""}, nil},
		{"slack", "stale timestamp (correctly signed 10 minutes ago)", func() ([]int, string, string) {
			m := slackMsg("hi")
			h := slackHeader(loadtest.SlackSigningSecret, time.Now().Add(-10*time.Minute), m.Body())
			return []int{post("/slack/events", h, bytes.NewReader(m.Body()))}, m.EventID, m.Channel
		}, outcome{[]int{401}, 0, ""}, nil},
		{"slack", "body changed after signing", func() ([]int, string, string) {
			m := slackMsg("hi")
			h := slackHeader(loadtest.SlackSigningSecret, time.Now(), m.Body())
			return []int{post("/slack/events", h, bytes.NewReader(bytes.Replace(m.Body(), []byte(`"hi"`), []byte(`"ho"`), 1)))}, m.EventID, m.Channel
		}, outcome{[]int{401}, 0, ""}, nil},
		{"slack", "replayed delivery (the same signed request 3 times)", func() ([]int, string, string) {
			m := slackMsg("replay me")
			h := slackHeader(loadtest.SlackSigningSecret, time.Now(), m.Body())
			var st []int
			for range 3 {
				st = append(st, post("/slack/events", h, bytes.NewReader(m.Body())))
			}
			return st, m.EventID, m.Channel
		}, outcome{[]int{200, 200, 200}, 1, "answer"}, nil},
		{"slack", "oversize body (1 MiB + 1 byte, signed)", func() ([]int, string, string) {
			body := append([]byte(`{"type":"event_callback","pad":"`), bytes.Repeat([]byte("x"), 1<<20)...)
			body = append(body, `"}`...)
			return []int{post("/slack/events", slackHeader(loadtest.SlackSigningSecret, time.Now(), body), bytes.NewReader(body))}, "", ""
		}, outcome{[]int{413}, 0, ""}, nil},
		{"slack", "broken JSON (signed)", func() ([]int, string, string) {
			body := []byte(`{"type":"event_callback","event":{"type":"message",`)
			return []int{post("/slack/events", slackHeader(loadtest.SlackSigningSecret, time.Now(), body), bytes.NewReader(body))}, "", ""
		}, outcome{[]int{400}, 0, ""}, nil},
		{"slack", "a PDF named photo.png (claimed image/png)", func() ([]int, string, string) {
			f := rig.AddSlackFile(fmt.Sprintf("FPDF%d", n), "photo.png", loadtest.Blob{Kind: "pdf", Size: 200_000})
			f.Mimetype = "image/png"
			m := slackMsg("what is this?", f)
			return []int{post("/slack/events", slackHeader(loadtest.SlackSigningSecret, time.Now(), m.Body()), bytes.NewReader(m.Body()))}, m.EventID, m.Channel
		}, outcome{[]int{200}, 1, "image_unsupported"}, nil},
		{"slack", "a 50 MB image (Slack says 50 MB)", func() ([]int, string, string) {
			f := rig.AddSlackFile(fmt.Sprintf("FBIG%d", n), "huge.png", loadtest.Blob{Kind: "png", Size: fiftyMB})
			m := slackMsg("", f)
			return []int{post("/slack/events", slackHeader(loadtest.SlackSigningSecret, time.Now(), m.Body()), bytes.NewReader(m.Body()))}, m.EventID, m.Channel
		}, outcome{[]int{200}, 1, "image_too_large"}, func(t *testing.T) {
			if got := rig.Slack.ServedBytes(); got > mb {
				t.Errorf("the fake Slack served %d bytes; a file announced over the limit should not be downloaded", got)
			}
		}},
		{"slack", "a 50 MB image Slack claims is 1 MB", func() ([]int, string, string) {
			f := rig.AddSlackFile(fmt.Sprintf("FLIE%d", n), "liar.png", loadtest.Blob{Kind: "png", Size: fiftyMB})
			f.Size = mb
			m := slackMsg("", f)
			return []int{post("/slack/events", slackHeader(loadtest.SlackSigningSecret, time.Now(), m.Body()), bytes.NewReader(m.Body()))}, m.EventID, m.Channel
		}, outcome{[]int{200}, 1, "platform_download_failed"}, func(t *testing.T) {
			got := rig.Slack.ServedBytes()
			t.Logf("the fake Slack wrote %d bytes of the 50 MB file before the bot hung up", got)
			if got > 20*mb {
				t.Errorf("the fake Slack served %d bytes of a 50 MB file; the download should stop past the announced 1 MB", got)
			}
		}},
		{"slack", "not for the bot (a channel message without a mention)", func() ([]int, string, string) {
			m := slackMsg("just chatting")
			body := bytes.Replace(bytes.Replace(m.Body(), []byte(`"channel_type":"im"`), []byte(`"channel_type":"channel"`), 1), []byte(`"channel":"D`), []byte(`"channel":"C`), 1)
			return []int{post("/slack/events", slackHeader(loadtest.SlackSigningSecret, time.Now(), body), bytes.NewReader(body))}, m.EventID, m.Channel
		}, outcome{[]int{200}, 0, ""}, nil},
		{"slack", "GET instead of POST", func() ([]int, string, string) {
			res, err := http.Get(base + "/slack/events")
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			return []int{res.StatusCode}, "", ""
		}, outcome{[]int{405}, 0, ""}, nil},

		{"line", "forged signature (signed with another secret)", func() ([]int, string, string) {
			m := lineMsg("hi", "")
			return []int{post("/line/webhook", lineHeader(m.Body(), "not-the-channel-secret"), bytes.NewReader(m.Body()))}, m.EventID, m.UserID
		}, outcome{[]int{401}, 0, ""}, nil},
		{"line", "no X-Line-Signature", func() ([]int, string, string) {
			m := lineMsg("hi", "")
			return []int{post("/line/webhook", lineHeader(m.Body(), ""), bytes.NewReader(m.Body()))}, m.EventID, m.UserID
		}, outcome{[]int{401}, 0, ""}, nil},
		{"line", "replayed delivery (the same signed request 3 times)", func() ([]int, string, string) {
			m := lineMsg("replay me", "")
			var st []int
			for range 3 {
				st = append(st, post("/line/webhook", lineHeader(m.Body(), loadtest.LINEChannelSecret), bytes.NewReader(m.Body())))
			}
			return st, m.EventID, m.UserID
		}, outcome{[]int{200, 200, 200}, 1, "answer"}, nil},
		{"line", "oversize body (1 MiB + 1 byte, signed)", func() ([]int, string, string) {
			body := append([]byte(`{"events":[],"pad":"`), bytes.Repeat([]byte("x"), 1<<20)...)
			body = append(body, `"}`...)
			return []int{post("/line/webhook", lineHeader(body, loadtest.LINEChannelSecret), bytes.NewReader(body))}, "", ""
		}, outcome{[]int{413}, 0, ""}, nil},
		{"line", "broken JSON (signed)", func() ([]int, string, string) {
			body := []byte(`{"events":[{"type":"message"`)
			return []int{post("/line/webhook", lineHeader(body, loadtest.LINEChannelSecret), bytes.NewReader(body))}, "", ""
		}, outcome{[]int{400}, 0, ""}, nil},
		{"line", "a PDF sent as an image", func() ([]int, string, string) {
			m := lineMsg("", fmt.Sprintf("7%017d", n))
			rig.AddLINEContent(m.ImageID, loadtest.Blob{Kind: "pdf", Size: 200_000})
			return []int{post("/line/webhook", lineHeader(m.Body(), loadtest.LINEChannelSecret), bytes.NewReader(m.Body()))}, m.EventID, m.UserID
		}, outcome{[]int{200}, 1, "image_unsupported"}, nil},
		{"line", "a 200 MB image (streamed, no size given)", func() ([]int, string, string) {
			m := lineMsg("", fmt.Sprintf("8%017d", n))
			rig.AddLINEContent(m.ImageID, loadtest.Blob{Kind: "png", Size: 200 * mb})
			lineServedBefore = rig.LINE.ServedBytes()
			return []int{post("/line/webhook", lineHeader(m.Body(), loadtest.LINEChannelSecret), bytes.NewReader(m.Body()))}, m.EventID, m.UserID
		}, outcome{[]int{200}, 1, "image_too_large"}, func(t *testing.T) {
			// The bot stops at MAX_IMAGE_BYTES + 1; what the fake wrote beyond that sat in socket buffers, which
			// loopback lets grow to the kernel's tcp_rmem and tcp_wmem maximums (32 MiB and 4 MiB here).
			got := rig.LINE.ServedBytes() - lineServedBefore
			allowed := 25<<20 + tcpBufferMax(t, "tcp_rmem") + tcpBufferMax(t, "tcp_wmem") + mb
			t.Logf("the fake LINE wrote %d bytes of the 200 MB image before the bot hung up (at most %d may sit in buffers)", got, allowed)
			if got > int64(allowed) {
				t.Errorf("the fake LINE served %d bytes of a 200 MB image; reading should stop past MAX_IMAGE_BYTES (25 MiB)", got)
			}
		}},
		{"line", "webhook verification (no events)", func() ([]int, string, string) {
			body := []byte(`{"destination":"U0DIFYLOADBOT","events":[]}`)
			return []int{post("/line/webhook", lineHeader(body, loadtest.LINEChannelSecret), bytes.NewReader(body))}, "", ""
		}, outcome{[]int{200}, 0, ""}, nil},
		{"line", "a sticker (not text or an image)", func() ([]int, string, string) {
			m := lineMsg("x", "")
			body := bytes.Replace(m.Body(), []byte(`"type":"text"`), []byte(`"type":"sticker","packageId":"446","stickerId":"1988"`), 1)
			return []int{post("/line/webhook", lineHeader(body, loadtest.LINEChannelSecret), bytes.NewReader(body))}, m.EventID, m.UserID
		}, outcome{[]int{200}, 0, ""}, nil},
	}

	var table strings.Builder
	table.WriteString("| platform | input | webhook answer | runs stored | the person sees |\n|---|---|---|---|---|\n")
	for _, tc := range cases {
		t.Run(tc.platform+"/"+tc.input, func(t *testing.T) {
			statuses, eventID, conv := tc.send()
			got := outcome{statuses: statuses}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			for tc.want.reply != "" && ctx.Err() == nil && rig.Conversations()[conv].FinalWrites == 0 {
				time.Sleep(20 * time.Millisecond)
			}
			if tc.want.reply == "" {
				time.Sleep(200 * time.Millisecond) // Long enough for a wrongly accepted message to be answered.
			}
			if eventID != "" {
				var err error
				if _, got.runs, err = rig.StoredRun(ctx, eventID); err != nil {
					t.Fatal(err)
				}
			}
			c := rig.Conversations()[conv]
			got.reply = c.Outcome
			if conv == "" || c.Finals == 0 && c.FinalWrites == 0 {
				got.reply = ""
			}
			if fmt.Sprint(got.statuses) != fmt.Sprint(tc.want.statuses) || got.runs != tc.want.runs || got.reply != tc.want.reply {
				t.Errorf("got answers %v, %d runs, reply %q; want %v, %d runs, reply %q", got.statuses, got.runs, got.reply,
					tc.want.statuses, tc.want.runs, tc.want.reply)
			}
			if tc.want.reply != "" && c.Finals != 1 {
				t.Errorf("%d final replies visible, want exactly 1", c.Finals)
			}
			if tc.check != nil {
				tc.check(t)
			}
			seen := "nothing"
			if got.reply == "answer" {
				seen = "the answer, once"
			} else if got.reply != "" {
				seen = "diagnosis `" + got.reply + "`, once"
			}
			fmt.Fprintf(&table, "| %s | %s | %s | %d | %s |\n", tc.platform, tc.input, strings.Trim(fmt.Sprint(got.statuses), "[]"), got.runs, seen)
		})
	}
	t.Logf("bad input through serve:\n%s", table.String())
	if users := rig.Sim.Users(); len(users) > 0 {
		for u, s := range users {
			if s.Started > 1 {
				t.Errorf("Dify user %s: %d workflow runs started", u, s.Started)
			}
		}
	}
}

// tcpBufferMax is the largest socket buffer the kernel grows to, from /proc/sys/net/ipv4/NAME ("min default max").
func tcpBufferMax(t *testing.T, name string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/ipv4/" + name)
	if err != nil {
		return 8 << 20
	}
	f := strings.Fields(string(b))
	n, err := strconv.Atoi(f[len(f)-1])
	if err != nil {
		t.Fatalf("%s: %q", name, b)
	}
	return n
}
