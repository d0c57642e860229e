package slack_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/bottest"
	slackadapter "github.com/difybot/difybot/platforms/slack"
	"github.com/difybot/difybot/platforms/slack/slacktest"
)

// thread is the message every platform test answers: a mention in a channel.
var thread = bot.Message{Platform: "slack", EventID: "Ev07KX3C1D4E", ChatID: channel, ThreadID: "1763800100.000200", UserID: person}

func TestOpenFileStreamsWithBotToken(t *testing.T) {
	fs := slacktest.Start(t, slacktest.Options{})
	img := bottest.PNG(t, 2, 2)
	fs.AddFile("F07KX2B9M4Q", slacktest.File{Name: "photo.png", Mimetype: "image/png", Body: img})
	a := newAdapter(t, fs, &bottest.Inbox{})
	f := bot.File{ID: "F07KX2B9M4Q", Name: "photo.png", MIMEType: "image/png", Size: int64(len(img)), URL: fs.FileURL("F07KX2B9M4Q", "photo.png")}
	rc, err := a.OpenFile(context.Background(), thread, f)
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, img) {
		t.Fatalf("read %d bytes, err %v; want the %d bytes served", len(got), err, len(img))
	}
	calls := fs.Calls()
	if len(calls) != 1 || calls[0].Method != "download" || calls[0].Auth != "Bearer "+botToken {
		t.Fatalf("calls = %+v, want one download with the bot token", calls)
	}
}

func TestOpenFileAsksFilesInfoForPartialFiles(t *testing.T) {
	fs := slacktest.Start(t, slacktest.Options{})
	img := bottest.PNG(t, 2, 2)
	fs.AddFile("F07KX6F4G7B", slacktest.File{Name: "scan.png", Mimetype: "image/png", Body: img})
	a := newAdapter(t, fs, &bottest.Inbox{})
	rc, err := a.OpenFile(context.Background(), thread, bot.File{ID: "F07KX6F4G7B"})
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, img) {
		t.Fatalf("read %d bytes, err %v; want the %d bytes served", len(got), err, len(img))
	}
	var methods []string
	for _, c := range fs.Calls() {
		methods = append(methods, c.Method)
	}
	if want := []string{"files.info", "download"}; !reflect.DeepEqual(methods, want) {
		t.Fatalf("calls = %v, want %v", methods, want)
	}
	if info := fs.CallsTo("files.info")[0]; info.Form.Get("file") != "F07KX6F4G7B" {
		t.Errorf("files.info asked for %q", info.Form.Get("file"))
	}
}

func TestOpenFileFailures(t *testing.T) {
	tests := []struct {
		name      string
		file      slacktest.File
		url       func(fs *slacktest.Server) string // "" asks files.info.
		size      int64
		failsOn   string // "open" or "read".
		downloads int
	}{
		{name: "files.info without files:read", file: slacktest.File{NoScope: true}, url: nil, failsOn: "open"},
		{name: "download forbidden", file: slacktest.File{Name: "a.png", Mimetype: "image/png", Status: http.StatusForbidden},
			url: func(fs *slacktest.Server) string { return fs.FileURL("F1", "a.png") }, failsOn: "open", downloads: 1},
		{name: "download not found", file: slacktest.File{Name: "a.png", Mimetype: "image/png", Status: http.StatusNotFound},
			url: func(fs *slacktest.Server) string { return fs.FileURL("F1", "a.png") }, failsOn: "open", downloads: 1},
		{name: "sign-in page instead of the file", file: slacktest.File{Name: "a.png", Mimetype: "image/png", SignIn: true},
			url: func(fs *slacktest.Server) string { return fs.FileURL("F1", "a.png") }, failsOn: "open", downloads: 2},
		{name: "token never sent off Slack", file: slacktest.File{Name: "a.png", Mimetype: "image/png"},
			url: func(*slacktest.Server) string { return "https://evil.example/files-pri/T0AB12CDE-F1/download/a.png" }, failsOn: "open"},
		{name: "token never sent to another port of Slack", file: slacktest.File{Name: "a.png", Mimetype: "image/png"},
			url: func(*slacktest.Server) string {
				return "https://files.slack.com:8443/files-pri/T0AB12CDE-F1/download/a.png"
			}, failsOn: "open"},
		{name: "more bytes than announced", file: slacktest.File{Name: "a.png", Mimetype: "image/png", Body: bytes.Repeat([]byte("x"), 100)},
			url: func(fs *slacktest.Server) string { return fs.FileURL("F1", "a.png") }, size: 10, failsOn: "read", downloads: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := slacktest.Start(t, slacktest.Options{})
			fs.AddFile("F1", tt.file)
			a := newAdapter(t, fs, &bottest.Inbox{})
			f := bot.File{ID: "F1", Size: tt.size}
			if tt.url != nil {
				f.URL = tt.url(fs)
			}
			rc, err := a.OpenFile(context.Background(), thread, f)
			if tt.failsOn == "read" {
				if err != nil {
					t.Fatalf("OpenFile: %v", err)
				}
				_, err = io.ReadAll(rc)
				rc.Close()
			} else if rc != nil {
				rc.Close()
				t.Fatal("OpenFile returned a body for a file it cannot read")
			}
			var be *bot.Error
			if !errors.As(err, &be) || be.Code != bot.CodePlatformDownloadFailed {
				t.Fatalf("err = %v, want a %s error", err, bot.CodePlatformDownloadFailed)
			}
			if !strings.Contains(err.Error(), "files:read") {
				t.Errorf("err = %q, want it to name the files:read scope", err)
			}
			if strings.Contains(err.Error(), botToken) {
				t.Errorf("err leaks the token: %q", err)
			}
			if n := len(fs.CallsTo("download")); n != tt.downloads {
				t.Errorf("%d download requests, want %d", n, tt.downloads)
			}
		})
	}
}

func TestProgressShowsOnePlaceholderThenThrottledEdits(t *testing.T) {
	fs := slacktest.Start(t, slacktest.Options{})
	clk := &clock{t: received}
	a := newAdapter(t, fs, &bottest.Inbox{}, func(c *slackadapter.Config) { c.Now = clk.Now })
	ctx, st := context.Background(), &bottest.State{}
	progress := func(step, node string, done int) {
		t.Helper()
		if err := a.Progress(ctx, thread, bot.Progress{RunID: "run-1", State: st, Step: step, Node: node, Done: done}); err != nil {
			t.Fatalf("Progress(%s %s): %v", step, node, err)
		}
	}
	progress("start", "", 0)
	clk.Add(500 * time.Millisecond)
	progress(bot.StepRun, "Start", 0) // Dropped: the placeholder was just posted.
	clk.Add(2500 * time.Millisecond)
	progress(bot.StepRun, "Analyse image", 1)
	clk.Add(time.Second)
	progress(bot.StepRun, "Format reply", 2) // Dropped.
	clk.Add(2 * time.Second)
	progress(bot.StepRun, "End", 3)
	clk.Add(30 * time.Second)
	progress(bot.StepRun, "End", 3) // Dropped: the pipeline's heartbeat on a long node; the message shows it already.

	posts, updates := fs.CallsTo("chat.postMessage"), fs.CallsTo("chat.update")
	if len(posts) != 1 {
		t.Fatalf("%d chat.postMessage, want the one placeholder", len(posts))
	}
	if p := posts[0].Form; p.Get("channel") != channel || p.Get("thread_ts") != thread.ThreadID || p.Get("text") != "⏳ Working on it…" {
		t.Errorf("placeholder = %v", p)
	}
	ts := st.Get("slack_ts")
	if ts == "" {
		t.Fatal("the placeholder's ts was not stored in the run state")
	}
	var texts []string
	for _, u := range updates {
		if u.Form.Get("ts") != ts || u.Form.Get("channel") != channel {
			t.Errorf("chat.update of %s/%s, want the placeholder %s/%s", u.Form.Get("channel"), u.Form.Get("ts"), channel, ts)
		}
		texts = append(texts, u.Form.Get("text"))
	}
	want := []string{"⏳ Working on it… running *Analyse image* (1 done)", "⏳ Working on it… running *End* (3 done)"}
	if !reflect.DeepEqual(texts, want) {
		t.Errorf("edits = %q, want %q", texts, want)
	}

	// A retry after a crash starts again with the same state: it reuses the placeholder.
	progress("start", "", 0)
	if n := len(fs.CallsTo("chat.postMessage")); n != 1 {
		t.Errorf("%d chat.postMessage after a restart, want still 1", n)
	}
	last := fs.CallsTo("chat.update")
	if u := last[len(last)-1].Form; u.Get("ts") != ts || u.Get("text") != "⏳ Working on it…" {
		t.Errorf("restart edit = %v, want the placeholder reset", u)
	}
}

func TestProgressSkipsWhenRateLimited(t *testing.T) {
	fs := slacktest.Start(t, slacktest.Options{})
	a := newAdapter(t, fs, &bottest.Inbox{}, func(c *slackadapter.Config) { c.ProgressEvery = time.Nanosecond })
	st := &bottest.State{}
	ctx := context.Background()
	if err := a.Progress(ctx, thread, bot.Progress{RunID: "run-1", State: st, Step: "start"}); err != nil {
		t.Fatal(err)
	}
	fs.FailWith("chat.update", slacktest.RateLimited)
	if err := a.Progress(ctx, thread, bot.Progress{RunID: "run-1", State: st, Step: bot.StepRun, Node: "LLM", Done: 1}); err != nil {
		t.Fatalf("Progress while rate limited = %v, want nil (skipped)", err)
	}
}

func TestReplyReplacesThePlaceholder(t *testing.T) {
	fs := slacktest.Start(t, slacktest.Options{})
	a := newAdapter(t, fs, &bottest.Inbox{})
	ctx, st := context.Background(), &bottest.State{}
	if err := a.Progress(ctx, thread, bot.Progress{RunID: "run-1", State: st, Step: "start"}); err != nil {
		t.Fatal(err)
	}
	r := bot.Reply{Text: "## Total\nThe **total** is ¥1,200 & tax is [included](https://example.com/tax).", RunID: "run-1", Final: true, State: st}
	for range 2 { // The second call is the pipeline repeating the delivery after a crash.
		if err := a.Reply(ctx, thread, r); err != nil {
			t.Fatalf("Reply: %v", err)
		}
	}
	if n := len(fs.CallsTo("chat.postMessage")); n != 1 {
		t.Fatalf("%d chat.postMessage, want only the placeholder", n)
	}
	updates := fs.CallsTo("chat.update")
	if len(updates) != 2 {
		t.Fatalf("%d chat.update, want 2", len(updates))
	}
	for _, u := range updates {
		f := u.Form
		if f.Get("ts") != st.Get("slack_ts") || f.Get("channel") != channel {
			t.Errorf("updated %s/%s, want the placeholder", f.Get("channel"), f.Get("ts"))
		}
		if want := "*Total*\nThe *total* is ¥1,200 &amp; tax is <https://example.com/tax|included>."; f.Get("text") != want {
			t.Errorf("text = %q, want %q", f.Get("text"), want)
		}
		if f.Get("blocks") != "[]" {
			t.Errorf("blocks = %q, want [] (clears a Retry button left from a failure)", f.Get("blocks"))
		}
	}
}

func TestReplyWithoutPlaceholderPostsInThread(t *testing.T) {
	fs := slacktest.Start(t, slacktest.Options{})
	a := newAdapter(t, fs, &bottest.Inbox{})
	st := &bottest.State{}
	if err := a.Reply(context.Background(), thread, bot.Reply{Text: "hello", RunID: "run-1", Final: true, State: st}); err != nil {
		t.Fatal(err)
	}
	posts := fs.CallsTo("chat.postMessage")
	if len(posts) != 1 || posts[0].Form.Get("thread_ts") != thread.ThreadID || posts[0].Form.Get("text") != "hello" {
		t.Fatalf("posts = %+v, want one reply in the thread", posts)
	}
	if st.Get("slack_ts") == "" {
		t.Error("the reply's ts was not stored")
	}
}

func TestReplySplitsLongAnswers(t *testing.T) {
	fs := slacktest.Start(t, slacktest.Options{})
	a := newAdapter(t, fs, &bottest.Inbox{})
	ctx, st := context.Background(), &bottest.State{}
	if err := a.Progress(ctx, thread, bot.Progress{RunID: "run-1", State: st, Step: "start"}); err != nil {
		t.Fatal(err)
	}
	var paras []string
	for i := range 30 {
		paras = append(paras, strings.Repeat(string(rune('a'+i%26)), 300)) // 30 paragraphs of 300: three messages.
	}
	long := strings.Join(paras, "\n\n")
	r := bot.Reply{Text: long, RunID: "run-1", Final: true, State: st}
	if err := a.Reply(ctx, thread, r); err != nil {
		t.Fatal(err)
	}
	posts, updates := fs.CallsTo("chat.postMessage"), fs.CallsTo("chat.update")
	if len(posts) != 3 || len(updates) != 1 {
		t.Fatalf("%d posts and %d updates, want the placeholder + 2 more parts and 1 update", len(posts), len(updates))
	}
	parts := []string{updates[0].Form.Get("text"), posts[1].Form.Get("text"), posts[2].Form.Get("text")}
	for i, p := range parts {
		if n := utf8.RuneCountInString(p); n > 3900 {
			t.Errorf("part %d has %d characters, over 3,900", i+1, n)
		}
		if strings.HasPrefix(p, "\n") || strings.HasSuffix(p, "\n") {
			t.Errorf("part %d was not split on a paragraph boundary", i+1)
		}
	}
	if got := strings.Join(parts, "\n\n"); got != long {
		t.Error("the parts joined do not give back the answer")
	}
	for i, p := range posts[1:] {
		if p.Form.Get("thread_ts") != thread.ThreadID {
			t.Errorf("part %d posted outside the thread", i+2)
		}
	}
	if st.Get("slack_ts_2") == "" || st.Get("slack_ts_3") == "" {
		t.Fatalf("state = %v, want every part's ts", st.Map())
	}

	// Delivered again (a crash after posting): only edits, no new posts.
	if err := a.Reply(ctx, thread, r); err != nil {
		t.Fatal(err)
	}
	if n := len(fs.CallsTo("chat.postMessage")); n != 3 {
		t.Errorf("%d chat.postMessage after the repeat, want still 3", n)
	}
	updates = fs.CallsTo("chat.update")[1:]
	var edited []string
	for _, u := range updates {
		edited = append(edited, u.Form.Get("ts"))
	}
	if want := []string{st.Get("slack_ts"), st.Get("slack_ts_2"), st.Get("slack_ts_3")}; !reflect.DeepEqual(edited, want) {
		t.Errorf("repeat edited %v, want %v", edited, want)
	}

	// A shorter answer (a retried run) removes the parts it no longer needs.
	if err := a.Reply(ctx, thread, bot.Reply{Text: "short", RunID: "run-1", Final: true, State: st}); err != nil {
		t.Fatal(err)
	}
	deletes := fs.CallsTo("chat.delete")
	if len(deletes) != 2 || st.Get("slack_ts_2") != "" || st.Get("slack_ts_3") != "" {
		t.Errorf("%d chat.delete, state %v; want the 2 extra parts deleted and forgotten", len(deletes), st.Map())
	}
}

func TestReplyFailureHasRetryButton(t *testing.T) {
	fs := slacktest.Start(t, slacktest.Options{})
	a := newAdapter(t, fs, &bottest.Inbox{})
	ctx, st := context.Background(), &bottest.State{}
	if err := a.Progress(ctx, thread, bot.Progress{RunID: "run-7", State: st, Step: "start"}); err != nil {
		t.Fatal(err)
	}
	d := bot.Diagnosis{Code: bot.CodeDifyPluginError}
	text := d.UserText(bot.LangEN, "run-7")
	if err := a.Reply(ctx, thread, bot.Reply{Text: text, Diagnosis: &d, RunID: "run-7", Final: true, State: st}); err != nil {
		t.Fatal(err)
	}
	updates := fs.CallsTo("chat.update")
	if len(updates) != 1 {
		t.Fatalf("%d chat.update, want 1", len(updates))
	}
	want := decodeBlocks(t, `[
		{"type":"section","text":{"type":"mrkdwn","text":`+jsonString(t, updates[0].Form.Get("text"))+`}},
		{"type":"actions","block_id":"difybot_retry","elements":[
			{"type":"button","action_id":"difybot_retry","text":{"type":"plain_text","text":"Retry","emoji":true},"value":"run-7"}]}]`)
	if got := decodeBlocks(t, updates[0].Form.Get("blocks")); !reflect.DeepEqual(got, want) {
		t.Errorf("blocks:\n got %v\nwant %v", got, want)
	}
	if !strings.Contains(updates[0].Form.Get("text"), "Reference: run-7") {
		t.Errorf("text = %q, want the reference id", updates[0].Form.Get("text"))
	}

	// An interim notice (the breaker holds the run) has a diagnosis but no button: the run is still queued.
	st2 := &bottest.State{}
	if err := a.Reply(ctx, thread, bot.Reply{Text: "delayed", Diagnosis: &bot.Diagnosis{Code: bot.CodeBreakerOpen}, RunID: "run-8", State: st2}); err != nil {
		t.Fatal(err)
	}
	posts := fs.CallsTo("chat.postMessage")
	if b := posts[len(posts)-1].Form.Get("blocks"); b != "" {
		t.Errorf("interim notice blocks = %q, want none", b)
	}
}

func jsonString(t testing.TB, s string) string {
	t.Helper()
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"', '\\':
			b.WriteString("\\" + string(r))
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func TestReplyRateLimitedReturnsTheError(t *testing.T) {
	fs := slacktest.Start(t, slacktest.Options{})
	fs.FailWith("chat.postMessage", slacktest.RateLimited)
	a := newAdapter(t, fs, &bottest.Inbox{})
	err := a.Reply(context.Background(), thread, bot.Reply{Text: "x", RunID: "run-1", Final: true, State: &bottest.State{}})
	var rl *slack.RateLimitedError
	if !errors.As(err, &rl) {
		t.Fatalf("err = %v, want a *slack.RateLimitedError for the queue to retry", err)
	}
}

func TestReplyPostsAgainWhenThePlaceholderWasDeleted(t *testing.T) {
	fs := slacktest.Start(t, slacktest.Options{})
	a := newAdapter(t, fs, &bottest.Inbox{})
	st := bottest.NewState(map[string]string{"slack_ts": "1763800101.000210"})
	fs.FailWith("chat.update", slacktest.Refuse("message_not_found"))
	if err := a.Reply(context.Background(), thread, bot.Reply{Text: "answer", RunID: "run-1", Final: true, State: st}); err != nil {
		t.Fatal(err)
	}
	posts := fs.CallsTo("chat.postMessage")
	if len(posts) != 1 || st.Get("slack_ts") == "1763800101.000210" {
		t.Fatalf("%d posts, slack_ts %q; want a new message and its ts stored", len(posts), st.Get("slack_ts"))
	}
}

// TestDownloadTokenStaysOnItsOrigin: files.slack.com (here the API URL's origin, which may receive the token)
// redirects the download to another port, or from https to http. Go's own policy keeps Authorization for the
// same host name; the adapter's client sends the token to no other origin, and refuses the downgrade.
func TestDownloadTokenStaysOnItsOrigin(t *testing.T) {
	img := bottest.PNG(t, 2, 2)
	for _, tls := range []bool{false, true} {
		name := "another port"
		if tls {
			name = "https to http"
		}
		t.Run(name, func(t *testing.T) {
			var mu sync.Mutex
			var got []string
			other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				got = append(got, r.Header.Get("Authorization"))
				mu.Unlock()
				w.Header().Set("Content-Type", "image/png")
				w.Write(img)
			}))
			defer other.Close()
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, other.URL+"/files-pri/T0AB12CDE-F1/download/a.png", http.StatusFound)
			})
			origin := httptest.NewServer(h)
			if tls {
				origin.Close()
				origin = httptest.NewTLSServer(h)
			}
			defer origin.Close()
			a, err := slackadapter.New(slackadapter.Config{Inbox: &bottest.Inbox{}, BotToken: botToken, SigningSecret: secret,
				APIURL: origin.URL + "/api/", HTTPClient: origin.Client()})
			if err != nil {
				t.Fatal(err)
			}
			rc, err := a.OpenFile(context.Background(), thread, bot.File{ID: "F1", URL: origin.URL + "/files-pri/T0AB12CDE-F1/download/a.png"})
			if rc != nil {
				rc.Close()
			}
			mu.Lock()
			defer mu.Unlock()
			if tls {
				if err == nil || !strings.Contains(err.Error(), "from https to http") || len(got) != 0 {
					t.Fatalf("err %v, requests to the http server %q; want the redirect refused", err, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("OpenFile: %v", err)
			}
			if len(got) != 1 || got[0] != "" {
				t.Fatalf("the other port got Authorization %q, want none", got)
			}
		})
	}
}
