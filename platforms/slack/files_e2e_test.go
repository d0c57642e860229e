package slack_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/bottest"
	"github.com/difybot/difybot/dify/difytest"
	slackadapter "github.com/difybot/difybot/platforms/slack"
	"github.com/difybot/difybot/platforms/slack/slacktest"
)

// The workflow's image and CSV are uploaded into the thread, byte for byte what Dify served, and shared once,
// after the text answer.
func TestEndToEndFilesUploadedIntoTheThread(t *testing.T) {
	s := newSystem(t, difytest.Options{Scenario: "file_list_output"})
	s.deliver(t, s.imageDM(t), 0)
	s.updateContaining(t, "You said: What is in this photo?")
	eventually(t, e2eWait, "the files to be shared", func() bool {
		return len(s.slack.CallsTo("files.completeUploadExternal")) > 0
	})
	ups := s.slack.Uploads()
	if len(ups) != 2 || ups[0].Name != "annotated.png" || ups[1].Name != "labels.csv" {
		t.Fatalf("uploads %+v", ups)
	}
	for _, up := range ups {
		if !bytes.Equal(up.Body, s.sim.File(up.Name)) || up.Size != int64(len(up.Body)) {
			t.Errorf("%s: uploaded %d bytes (announced %d), not what Dify served", up.Name, len(up.Body), up.Size)
		}
		if len(up.Shares) != 1 || up.Shares[0] != (slacktest.Share{Channel: dmChannel, ThreadTS: "1763800000.123456"}) {
			t.Errorf("%s: shares %+v, want once in the message's thread", up.Name, up.Shares)
		}
	}
	if c := s.slack.CallsTo("files.completeUploadExternal"); len(c) != 1 || !strings.Contains(c[0].Form.Get("files"), `"title":"annotated.png"`) {
		t.Errorf("completions %+v, want one sharing both files", c)
	}
	if up := s.slack.CallsTo("upload"); len(up) != 2 || up[0].Auth != "Bearer "+botToken {
		t.Errorf("upload POSTs %+v", up)
	}
}

// Reply is idempotent for files too: called again with the same state (a crash after the files were shared, or
// between the upload and its completion), it shares nothing twice.
func TestReplyFilesOnce(t *testing.T) {
	fake := slacktest.Start(t, slacktest.Options{})
	ad := newAdapter(t, fake, &bottest.Inbox{})
	st := newState()
	files := []bot.ReplyFile{replyFile(t, "f_1", "chart.png", "image/png", []byte("\x89PNG\r\n\x1a\nchart")),
		replyFile(t, "f_2", "rows.csv", "text/csv", []byte("a,b\n"))}
	m := bot.Message{ChatID: "C1", ThreadID: "1.2"}
	r := bot.Reply{Text: "Here.", RunID: "r1", Attempt: 1, Final: true, State: st, Files: files}
	if err := ad.Reply(context.Background(), m, r); err != nil {
		t.Fatal(err)
	}
	if err := ad.Reply(context.Background(), m, r); err != nil {
		t.Fatal(err)
	}
	// A crash after the completion went through but before its outcome was stored: the state still says "up".
	for _, f := range files {
		v := st.Get("slack_file:" + f.ID)
		st.Set(context.Background(), "slack_file:"+f.ID, strings.Replace(v, "done:", "up:", 1))
	}
	if err := ad.Reply(context.Background(), m, r); err != nil {
		t.Fatal(err)
	}
	for _, up := range fake.Uploads() {
		if len(up.Shares) != 1 {
			t.Errorf("%s shared %d times, want once", up.Name, len(up.Shares))
		}
	}
	if n := len(fake.Uploads()); n != 2 {
		t.Errorf("%d uploads, want 2", n)
	}
}

// Without files:write the upload fails for good: the thread is told once, and the answer counts as delivered.
func TestReplyFilesWithoutScope(t *testing.T) {
	fake := slacktest.Start(t, slacktest.Options{})
	fake.FailWith("files.getUploadURLExternal", slacktest.Refuse("missing_scope"))
	ad := newAdapter(t, fake, &bottest.Inbox{})
	r := bot.Reply{Text: "Here.", RunID: "r1", Attempt: 1, Final: true, State: newState(),
		Files: []bot.ReplyFile{replyFile(t, "f_1", "chart.png", "image/png", []byte("png"))}}
	if err := ad.Reply(context.Background(), bot.Message{ChatID: "C1", ThreadID: "1.2"}, r); err != nil {
		t.Fatal(err)
	}
	var note string
	for _, m := range fake.Messages() {
		if strings.Contains(m.Text, "files:write") {
			note = m.Text
		}
	}
	if !strings.Contains(note, "chart.png") {
		t.Errorf("messages %+v, want a note naming the file and the scope", fake.Messages())
	}
}

func TestDoctorNamesMissingScopes(t *testing.T) {
	for _, tt := range []struct {
		scopes []string
		ok     bool
		want   string
	}{
		{nil, true, "files:write"},
		{[]string{"app_mentions:read", "channels:history", "groups:history", "im:history", "im:read", "chat:write", "files:read"}, false, "lacks files:write"},
	} {
		fake := slacktest.Start(t, slacktest.Options{Scopes: tt.scopes})
		ad := newAdapter(t, fake, &bottest.Inbox{})
		checks := ad.Checks(context.Background())
		if len(checks) != 3 || checks[1].Name != "Slack scopes" || checks[1].OK != tt.ok || !strings.Contains(checks[1].Detail, tt.want) {
			t.Errorf("scopes %v: checks %+v", tt.scopes, checks)
		}
	}
	_ = slackadapter.RequiredScopes
}

func TestDoctorSaysHowAnswersAreSent(t *testing.T) {
	for _, tt := range []struct {
		mode     string
		scopes   []string
		ok, warn bool
		want     string
	}{
		{slackadapter.StreamingAuto, nil, true, false, "auto: answers stream with chat.startStream"},
		{slackadapter.StreamingOn, []string{"chat:write", "files:read"}, true, true, "assistant threads are off"},
		{slackadapter.StreamingOff, nil, true, true, "off (SLACK_STREAMING=off)"},
		{slackadapter.StreamingOn, []string{"files:read"}, false, false, "lacks chat:write"},
	} {
		fake := slacktest.Start(t, slacktest.Options{Scopes: tt.scopes})
		ad := newAdapter(t, fake, &bottest.Inbox{}, func(c *slackadapter.Config) { c.Streaming = tt.mode })
		checks := ad.Checks(context.Background())
		c := checks[len(checks)-1]
		if c.Name != "Slack streaming" || c.OK != tt.ok || c.Warn != tt.warn || !strings.Contains(c.Detail, tt.want) {
			t.Errorf("%s with %v: check %+v, want %q", tt.mode, tt.scopes, c, tt.want)
		}
	}
}

func newState() *bottest.State { return bottest.NewState(nil) }

// replyFile is a file of an answer served from memory.
func replyFile(t testing.TB, id, name, mime string, b []byte) bot.ReplyFile {
	t.Helper()
	return bot.ReplyFile{OutputFile: bot.OutputFile{ID: id, Name: name, MIMEType: mime, Size: int64(len(b))},
		Open: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }}
}
