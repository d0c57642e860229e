package line

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/bottest"
	"github.com/difybot/difybot/platforms/line/linetest"
)

// chat returns a message from the given source, received age before the test clock.
func chat(source string, age time.Duration) bot.Message {
	m := bot.Message{Platform: "line", EventID: "01HXZ1T7B9F2K8M4N6P0R3S5V7", ChatID: userID, UserID: userID,
		ReplyToken: "7840b71058e24a5d91f9b5726c7512c9", ReceivedAt: epoch.Add(-age),
		Extra: map[string]string{"source": source, "quote_token": "qt-1"}}
	switch source {
	case sourceGroup:
		m.ChatID = groupID
	case sourceRoom:
		m.ChatID = roomID
	}
	return m
}

func final(text string, st bot.RunState) bot.Reply {
	return bot.Reply{Text: text, RunID: "01J0RUN", Final: true, State: st}
}

func TestReplyChoosesReplyTokenOrPush(t *testing.T) {
	stale := chat(sourceUser, 51*time.Second)
	redelivered := chat(sourceUser, time.Second)
	redelivered.Redelivery = true
	noToken := chat(sourceUser, time.Second)
	noToken.ReplyToken = ""
	imageSet := chat(sourceUser, time.Second)
	imageSet.Extra[extraImageSetID] = setID
	used := bottest.NewState(map[string]string{stateTokenUsed: "2024-05-18T00:00:00Z"})
	tests := []struct {
		name      string
		m         bot.Message
		st        *bottest.State
		wantPath  string
		wantQuote string
	}{
		{"fresh token in a one-on-one chat", chat(sourceUser, time.Second), &bottest.State{}, linetest.PathReply, ""},
		{"fresh token in a group quotes the question", chat(sourceGroup, time.Second), &bottest.State{}, linetest.PathReply, "qt-1"},
		{"fresh token for one image of a set quotes it", imageSet, &bottest.State{}, linetest.PathReply, "qt-1"},
		{"token older than the TTL", stale, &bottest.State{}, linetest.PathPush, "qt-1"},
		{"redelivered event", redelivered, &bottest.State{}, linetest.PathPush, "qt-1"},
		{"token already used for this run", chat(sourceUser, time.Second), used, linetest.PathPush, "qt-1"},
		{"no token", noToken, &bottest.State{}, linetest.PathPush, "qt-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := linetest.Start(t, linetest.Options{})
			a := newAdapter(t, f, nil)
			if err := a.Reply(t.Context(), tt.m, final("**A cat** on a [sofa](https://x.test/s).", tt.st)); err != nil {
				t.Fatal(err)
			}
			calls := append(f.Calls(linetest.PathReply), f.Calls(linetest.PathPush)...)
			if len(calls) != 1 || calls[0].Path != tt.wantPath || calls[0].Status/100 != 2 {
				t.Fatalf("calls = %+v, want one accepted %s", calls, tt.wantPath)
			}
			c := calls[0]
			if len(c.Messages) != 1 || c.Messages[0].Text != "A cat on a sofa (https://x.test/s)." || c.Messages[0].QuoteToken != tt.wantQuote {
				t.Errorf("messages = %+v, want the plain text quoting %q", c.Messages, tt.wantQuote)
			}
			if tt.wantPath == linetest.PathPush {
				if _, err := uuid.Parse(c.RetryKey); err != nil || c.To != tt.m.ChatID {
					t.Errorf("push to %q with retry key %q, want %q and a UUID", c.To, c.RetryKey, tt.m.ChatID)
				}
			} else if tt.st.Get(stateTokenUsed) == "" {
				t.Error("the reply token was not recorded as used")
			}
		})
	}
}

func TestReplyIsSentOnce(t *testing.T) {
	stale := chat(sourceUser, time.Minute)
	t.Run("called again with the same state", func(t *testing.T) {
		f := linetest.Start(t, linetest.Options{})
		a := newAdapter(t, f, nil)
		st := &bottest.State{}
		for range 2 {
			if err := a.Reply(t.Context(), stale, final("answer", st)); err != nil {
				t.Fatal(err)
			}
		}
		if n := len(f.Accepted(linetest.PathPush)); n != 1 {
			t.Errorf("%d pushes accepted, want 1", n)
		}
	})
	t.Run("crash after LINE accepted the push", func(t *testing.T) {
		// The push got through but recording it failed, as when the process dies right after the call.
		// The retry pushes with the same key; LINE answers 409, which is success, and the person sees one message.
		f := linetest.Start(t, linetest.Options{})
		a := newAdapter(t, f, nil)
		st := &bottest.State{}
		st.Refuse(stateSentPrefix)
		if err := a.Reply(t.Context(), stale, final("answer", st)); err == nil {
			t.Fatal("Reply succeeded although its state could not be saved")
		}
		st.Refuse("")
		if err := a.Reply(t.Context(), stale, final("answer", st)); err != nil {
			t.Fatalf("retry: %v", err)
		}
		all := f.Calls(linetest.PathPush)
		if len(all) != 2 || all[1].Status != http.StatusConflict || all[0].RetryKey != all[1].RetryKey {
			t.Errorf("pushes = %+v, want the same key twice, the second answered 409", all)
		}
		if n := len(f.Accepted(linetest.PathPush)); n != 1 {
			t.Errorf("%d pushes accepted, want 1", n)
		}
	})
	t.Run("an admin retry of the run is a new answer", func(t *testing.T) {
		// The retried run's answer is a new attempt: it must not be taken for the old one.
		f := linetest.Start(t, linetest.Options{})
		a := newAdapter(t, f, nil)
		st := &bottest.State{}
		for attempt := range 2 {
			r := final("same answer", st)
			r.Attempt = attempt + 1
			if err := a.Reply(t.Context(), chat(sourceGroup, time.Minute), r); err != nil {
				t.Fatal(err)
			}
		}
		acc := f.Accepted(linetest.PathPush)
		if len(acc) != 2 || acc[0].RetryKey == acc[1].RetryKey {
			t.Errorf("accepted pushes = %+v, want two with different keys", acc)
		}
	})
}

func TestReplyFallsBackToPushOnInvalidToken(t *testing.T) {
	f := linetest.Start(t, linetest.Options{})
	m := chat(sourceUser, time.Second)
	f.SpendToken(m.ReplyToken) // Spent elsewhere, or expired early.
	a := newAdapter(t, f, nil)
	st := &bottest.State{}
	if err := a.Reply(t.Context(), m, final("answer", st)); err != nil {
		t.Fatal(err)
	}
	if r, p := f.Calls(linetest.PathReply), f.Accepted(linetest.PathPush); len(r) != 1 || r[0].Status != http.StatusBadRequest || len(p) != 1 {
		t.Errorf("replies %+v, pushes %+v; want a refused reply then one push", r, p)
	}
	if st.Get(stateTokenUsed) == "" {
		t.Error("the token was not recorded as used")
	}
}

func TestReplySplitsLongAnswers(t *testing.T) {
	var paras []string
	for i := range 7 {
		paras = append(paras, strings.Repeat(string(rune('a'+i)), 4000))
	}
	text := strings.Join(paras, "\n\n")
	tests := []struct {
		name string
		age  time.Duration
		want []string // Path of each call, in order.
	}{
		{"fresh: five by reply token, the rest by push", time.Second, []string{linetest.PathReply, linetest.PathPush}},
		{"stale: two pushes", time.Minute, []string{linetest.PathPush, linetest.PathPush}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := linetest.Start(t, linetest.Options{})
			a := newAdapter(t, f, nil)
			if err := a.Reply(t.Context(), chat(sourceUser, tt.age), final(text, &bottest.State{})); err != nil {
				t.Fatal(err)
			}
			calls := append(f.Accepted(linetest.PathReply), f.Accepted(linetest.PathPush)...)
			var paths, got []string
			keys := map[string]bool{}
			for _, c := range calls {
				paths = append(paths, c.Path)
				if len(c.Messages) > maxPerCall {
					t.Errorf("a call carried %d messages", len(c.Messages))
				}
				for _, m := range c.Messages {
					got = append(got, m.Text)
				}
				if c.RetryKey != "" {
					keys[c.RetryKey] = true
				}
			}
			if strings.Join(paths, ",") != strings.Join(tt.want, ",") {
				t.Errorf("calls %v, want %v", paths, tt.want)
			}
			if strings.Join(got, "\n\n") != text || len(got) != 7 {
				t.Errorf("the %d messages do not add up to the answer", len(got))
			}
			if n := len(f.Calls(linetest.PathPush)); len(keys) != n {
				t.Errorf("%d pushes share %d retry keys", n, len(keys))
			}
		})
	}
}

func TestReplyMonthlyQuota(t *testing.T) {
	tests := []struct {
		name      string
		age       time.Duration
		spent     bool // LINE refuses the reply token.
		wantWords []string
	}{
		{"stale token", time.Minute, false, []string{"monthly message quota"}},
		{"refused token", time.Second, true, []string{"monthly message quota", "refused the reply token"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := linetest.Start(t, linetest.Options{})
			m := chat(sourceUser, tt.age)
			f.SetQuota(true)
			if tt.spent {
				f.SpendToken(m.ReplyToken)
			}
			a := newAdapter(t, f, nil)
			err := a.Reply(t.Context(), m, final("answer", &bottest.State{}))
			if d := bot.Diagnose(err); d.Code != bot.CodePlatformReplyFailed {
				t.Fatalf("err = %v (code %s), want platform_reply_failed", err, d.Code)
			}
			for _, w := range tt.wantWords {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to say %q", err, w)
				}
			}
		})
	}
}

func TestReplyInterimThenFinal(t *testing.T) {
	// The interim notice spends the reply token (it would expire anyway); the answer follows by push.
	f := linetest.Start(t, linetest.Options{})
	a := newAdapter(t, f, nil)
	st := &bottest.State{}
	m := chat(sourceUser, time.Second)
	if err := a.Reply(t.Context(), m, bot.Reply{Text: "delayed", RunID: "01J0RUN", State: st}); err != nil {
		t.Fatal(err)
	}
	if err := a.Reply(t.Context(), m, final("answer", st)); err != nil {
		t.Fatal(err)
	}
	r, p := f.Accepted(linetest.PathReply), f.Accepted(linetest.PathPush)
	if len(r) != 1 || r[0].Messages[0].Text != "delayed" || len(p) != 1 || p[0].Messages[0].Text != "answer" {
		t.Errorf("replies %+v, pushes %+v", r, p)
	}
}

func TestReplyWithoutQuoteWhenLINERefusesIt(t *testing.T) {
	tests := []struct {
		name string
		age  time.Duration
		path string
	}{
		{"reply", time.Second, linetest.PathReply},
		{"push", time.Minute, linetest.PathPush},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := linetest.Start(t, linetest.Options{})
			f.RefuseQuote("qt-1")
			a := newAdapter(t, f, nil)
			if err := a.Reply(t.Context(), chat(sourceGroup, tt.age), final("answer", &bottest.State{})); err != nil {
				t.Fatal(err)
			}
			all, acc := f.Calls(tt.path), f.Accepted(tt.path)
			if len(all) != 2 || len(acc) != 1 || acc[0].Messages[0].QuoteToken != "" {
				t.Errorf("calls %+v, want a refused quoted call then an accepted unquoted one", all)
			}
		})
	}
}

func TestReplyRefusesEmptyAnswers(t *testing.T) {
	a := newAdapter(t, linetest.Start(t, linetest.Options{}), nil)
	err := a.Reply(t.Context(), chat(sourceUser, 0), final("  \n ", &bottest.State{}))
	if bot.Diagnose(err).Code != bot.CodePlatformReplyFailed {
		t.Errorf("err = %v", err)
	}
}

func TestOpenFile(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\n fake image bytes")
	ext := newImageHost(t, png)
	tests := []struct {
		name         string
		file         bot.File
		token        string
		publicOnly   bool
		want         []byte
		wantErrMatch string
	}{
		{"content API", bot.File{ID: "354718705033693859"}, testToken, false, png, ""},
		{"content gone", bot.File{ID: "354718705033693999"}, testToken, false, nil, "limited time"},
		{"wrong channel token", bot.File{ID: "354718705033693859"}, "wrong", false, nil, "LINE_CHANNEL_TOKEN"},
		{"not a message id", bot.File{ID: "../../v2/bot/info"}, testToken, false, nil, "not a LINE message id"},
		{"external URL", bot.File{URL: ext.URL + "/photo.png?sig=s3cret"}, testToken, false, png, ""},
		{"external URL missing", bot.File{URL: ext.URL + "/missing.png?sig=s3cret"}, testToken, false, nil, "HTTP 404"},
		{"external URL on a private address", bot.File{URL: ext.URL + "/photo.png"}, testToken, true, nil, "not a public address"},
		{"external URL not http", bot.File{URL: "file:///etc/passwd"}, testToken, false, nil, "not an http(s) URL"},
		{"neither id nor URL", bot.File{}, testToken, false, nil, "neither"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := linetest.Start(t, linetest.Options{})
			f.AddContent("354718705033693859", linetest.Content{Body: png})
			a := newAdapter(t, f, nil, func(c *Config) { c.ChannelToken = tt.token })
			a.allowPrivate = !tt.publicOnly
			rc, err := a.OpenFile(t.Context(), chat(sourceUser, 0), tt.file)
			if tt.wantErrMatch != "" {
				if err == nil {
					rc.Close()
					t.Fatal("OpenFile succeeded")
				}
				if bot.Diagnose(err).Code != bot.CodePlatformDownloadFailed || !strings.Contains(err.Error(), tt.wantErrMatch) {
					t.Errorf("err = %v, want platform_download_failed mentioning %q", err, tt.wantErrMatch)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Error("the error repeats the URL's signature")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			got := readAll(t, rc)
			if string(got) != string(tt.want) {
				t.Errorf("read %q, want %q", got, tt.want)
			}
		})
	}
	if h := ext.authorization(); h != "" {
		t.Errorf("the external host received Authorization %q; the channel token must never leave LINE", h)
	}
}

func TestProgressShowsLoadingInOneOnOneChats(t *testing.T) {
	now := epoch
	f := linetest.Start(t, linetest.Options{})
	a := newAdapter(t, f, nil, func(c *Config) { c.Now = func() time.Time { return now } })
	st := &bottest.State{}
	steps := []struct {
		at   time.Duration
		step string
		m    bot.Message
	}{
		{0, "start", chat(sourceUser, 0)},
		{10 * time.Second, "run", chat(sourceUser, 0)}, // Still showing: not renewed.
		{49 * time.Second, "run", chat(sourceUser, 0)}, // Eleven seconds left: not yet.
		{51 * time.Second, "run", chat(sourceUser, 0)}, // About to lapse: renewed.
		{52 * time.Second, "run", chat(sourceGroup, 0)},
		{120 * time.Second, "run", chat(sourceRoom, 0)},
	}
	for _, s := range steps {
		now = epoch.Add(s.at)
		if err := a.Progress(t.Context(), s.m, bot.Progress{RunID: "01J0RUN", State: st, Step: s.step}); err != nil {
			t.Fatal(err)
		}
	}
	calls := f.Accepted(linetest.PathLoading)
	if len(calls) != 2 {
		t.Fatalf("loading calls = %+v, want 2", calls)
	}
	for _, c := range calls {
		if c.To != userID || c.Seconds != 60 {
			t.Errorf("loading call %+v, want chatId %s for 60s", c, userID)
		}
	}
}

func TestProgressErrorIsReturned(t *testing.T) {
	// The caller logs and ignores it; the adapter only reports it.
	f := linetest.Start(t, linetest.Options{})
	a := newAdapter(t, f, nil, func(c *Config) { c.ChannelToken = "wrong" })
	err := a.Progress(t.Context(), chat(sourceUser, 0), bot.Progress{State: &bottest.State{}, Step: "start"})
	if e, ok := errors.AsType[*apiError](err); !ok || e.Status != http.StatusUnauthorized {
		t.Errorf("err = %v, want LINE's 401", err)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	_, err := New(Config{APIURL: "ftp://x"})
	for _, want := range []string{"ChannelSecret", "ChannelToken", "Inbox", "APIURL"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to name %s", err, want)
		}
	}
	a, err := New(Config{Inbox: &bottest.Inbox{}, ChannelSecret: "s", ChannelToken: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Name() != "line" || a.cfg.APIURL != DefaultAPIURL || a.cfg.DataAPIURL != DefaultDataAPIURL ||
		a.cfg.ReplyTokenTTL != 50*time.Second || a.cfg.MaxBodyBytes != 1<<20 || a.hc == nil || a.hc == http.DefaultClient {
		t.Errorf("defaults not applied: %+v", a.cfg)
	}
}
