package web_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/bottest"
	"github.com/difybot/difybot/bot/store"
	"github.com/difybot/difybot/dify"
	"github.com/difybot/difybot/dify/difytest"
	"github.com/difybot/difybot/platforms/web"
	"github.com/rs/zerolog"
)

// newChat wires the chat to the real pipeline: a SQLite store working the queue and the simulated Dify. edit
// changes the simulator's options (its shape) and the bot's configuration.
func newChat(t testing.TB, token string, edit ...func(*difytest.Options, *bot.Config)) (*httptest.Server, *difytest.Server) {
	return newChatWith(t, chatOptions{token: token, edit: edit})
}

// chatOptions vary newChatWith's pipeline.
type chatOptions struct {
	token string
	wrap  func(*dify.Client) bot.Workflows // Stands between the pipeline and the Dify client when set.
	lang  bot.Lang                         // BOT_LANGUAGE; default en.
	dir   string                           // The chat's UploadDir; default a new temporary directory.
	edit  []func(*difytest.Options, *bot.Config)
}

func newChatWith(t testing.TB, o chatOptions) (*httptest.Server, *difytest.Server) {
	t.Helper()
	token := o.token
	ctx := context.Background()
	opts := difytest.Options{PingEvery: 5 * time.Millisecond, Latency: 5 * time.Millisecond}
	var cfg bot.Config
	for _, e := range o.edit {
		e(&opts, &cfg)
	}
	sim := difytest.NewServer(opts)
	t.Cleanup(sim.Close)
	dc, err := dify.New(dify.Config{BaseURL: sim.URL(), APIKey: "app-test", Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, store.Config{SQLitePath: filepath.Join(t.TempDir(), "db"), Workers: 2, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := bot.NewInbox(bot.InboxConfig{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	chat, err := web.New(web.Config{Inbox: inbox, UploadDir: cmp.Or(o.dir, t.TempDir()), Token: token, MaxImageBytes: 1 << 20, Language: o.lang})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store, cfg.Workflows, cfg.Platforms, cfg.Logger, cfg.TempDir = st, bot.Workflows(dc), []bot.Platform{chat}, zerolog.Nop(), t.TempDir()
	if o.wrap != nil {
		cfg.Workflows = o.wrap(dc)
	}
	b, err := bot.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Start(ctx, b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		st.Stop(sctx)
		st.Close()
	})
	// The chat and the answers' files, as serve mounts them.
	mux := http.NewServeMux()
	mux.Handle("/", chat.Routes()[0].Handler)
	mux.Handle("GET /files/{id}", bot.FilesHandler(bot.FilesConfig{Store: st}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, sim
}

func form(t testing.TB, fields map[string]string, img []byte) (*bytes.Buffer, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	if img != nil {
		fw, _ := mw.CreateFormFile("image", "photo.png")
		fw.Write(img)
	}
	mw.Close()
	return &buf, mw.FormDataContentType()
}

func post(t testing.TB, srv *httptest.Server, token string, fields map[string]string, img []byte) (int, map[string]any) {
	t.Helper()
	body, ctype := form(t, fields, img)
	req, _ := http.NewRequest("POST", srv.URL+"/api/messages", body)
	req.Header.Set("Content-Type", ctype)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

// follow reads the run's events until the final reply.
func follow(t testing.TB, srv *httptest.Server, token, runID string) []web.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/runs/"+runID+"/events", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var evs []web.Event
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var ev web.Event
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				t.Fatal(err)
			}
			evs = append(evs, ev)
		}
	}
	return evs
}

func TestImageMessageGetsProgressAndAnswer(t *testing.T) {
	srv, sim := newChat(t, "")
	id := web.NewID()
	status, out := post(t, srv, "", map[string]string{"id": id, "session": "session-1", "text": "what is this?"}, bottest.PNG(t, 40, 30))
	if status != http.StatusAccepted || out["run_id"] == "" {
		t.Fatalf("post: %d %v", status, out)
	}
	evs := follow(t, srv, "", out["run_id"].(string))
	if len(evs) < 2 {
		t.Fatalf("events = %+v", evs)
	}
	var nodes []string
	for _, ev := range evs[:len(evs)-1] {
		if ev.Type == "progress" && ev.Node != "" {
			nodes = append(nodes, ev.Node)
		}
	}
	last := evs[len(evs)-1]
	if last.Type != "reply" || !last.Final || !strings.Contains(last.Text, "PNG image, 40×30 px") || last.Code != "" {
		t.Errorf("final event = %+v", last)
	}
	if len(nodes) == 0 {
		t.Errorf("no node progress before the answer: %+v", evs)
	}
	// The page retries a send with the same id: it is the same run, answered once.
	status, again := post(t, srv, "", map[string]string{"id": id, "session": "session-1", "text": "what is this?"}, bottest.PNG(t, 40, 30))
	if status != http.StatusAccepted || again["run_id"] != out["run_id"] || again["duplicate"] != true {
		t.Errorf("second post: %d %v", status, again)
	}
	if n := sim.Started(); n != 1 {
		t.Errorf("%d workflow runs, want 1", n)
	}
}

func TestBadInput(t *testing.T) {
	srv, _ := newChat(t, "s3cret-token-for-tests")
	tests := []struct {
		name   string
		token  string
		fields map[string]string
		img    []byte
		status int
		msg    string
	}{
		{"no token", "", map[string]string{"id": "abcdefgh", "session": "abcdefgh", "text": "x"}, nil, 401, "token"},
		{"wrong token", "nope", map[string]string{"id": "abcdefgh", "session": "abcdefgh", "text": "x"}, nil, 401, "token"},
		{"empty message", "s3cret-token-for-tests", map[string]string{"id": "abcdefgh", "session": "abcdefgh"}, nil, 400, "Type a message"},
		{"bad id", "s3cret-token-for-tests", map[string]string{"id": "x", "session": "abcdefgh", "text": "x"}, nil, 400, "id and session"},
		{"too large", "s3cret-token-for-tests", map[string]string{"id": "abcdefgh", "session": "abcdefgh"}, make([]byte, 2<<20), 413, "up to 1 MiB. Please send a smaller image, such as a screenshot or a photo at a lower resolution.\nReference: abcdefgh"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, out := post(t, srv, tt.token, tt.fields, tt.img)
			if status != tt.status || !strings.Contains(out["error"].(string), tt.msg) {
				t.Errorf("got %d %v, want %d with %q", status, out, tt.status, tt.msg)
			}
			if strings.Contains(out["error"].(string), "s3cret") {
				t.Error("the token leaked into an error")
			}
		})
	}
}

// TestTooLargeInTheChatsLanguage: the refusal of a photo over MAX_IMAGE_BYTES is the catalogue's, in
// BOT_LANGUAGE, with the limit in the unit it was set in and a reference.
func TestTooLargeInTheChatsLanguage(t *testing.T) {
	for _, tt := range []struct {
		lang  bot.Lang
		limit int64
		want  string
	}{
		{bot.LangJA, 10 << 20, "画像が大きすぎます（ボットが受け付けるのは 10 MiB までです）。スクリーンショットや解像度を下げた写真など、より小さい画像を送ってください。\n参照番号: abcdefgh"},
		{bot.LangEN, 10e6, "Your image is too large: the bot takes images up to 10 MB."},
	} {
		chat, err := web.New(web.Config{Inbox: &bottest.Inbox{}, UploadDir: t.TempDir(), MaxImageBytes: tt.limit, Language: tt.lang})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(chat.Routes()[0].Handler)
		status, out := post(t, srv, "", map[string]string{"id": "abcdefgh", "session": "abcdefgh"}, make([]byte, 11<<20))
		srv.Close()
		if msg, _ := out["error"].(string); status != 413 || !strings.HasPrefix(msg, tt.want) || out["code"] != "image_too_large" {
			t.Errorf("%s: got %d %v, want 413 with %q", tt.lang, status, out, tt.want)
		}
	}
}

// A photo that waits for its question is read again by the run that completes the request: the answer asking
// for the question keeps the upload, and the final answer of a finished request removes it.
func TestWaitingAnswerKeepsTheUpload(t *testing.T) {
	dir := t.TempDir()
	chat, err := web.New(web.Config{Inbox: &bottest.Inbox{}, UploadDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "img-waiting")
	if err := os.WriteFile(path, bottest.PNG(t, 4, 4), 0o600); err != nil {
		t.Fatal(err)
	}
	m := bot.Message{Platform: "web", Files: []bot.File{{ID: "img-waiting"}}}
	ctx := context.Background()
	chat.Reply(ctx, m, bot.Reply{Text: "Got your photo.", RunID: "r1", Attempt: 1, Final: true, KeepFiles: true})
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the waiting photo's upload is gone: %v", err)
	}
	chat.Reply(ctx, m, bot.Reply{Text: "An answer.", RunID: "r1", Attempt: 1, Final: true})
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the upload outlived the final answer: %v", err)
	}
}

// The chat's own refusals speak BOT_LANGUAGE too.
func TestRefusalsInTheChatsLanguage(t *testing.T) {
	for lang, want := range map[bot.Lang]string{bot.LangJA: "メッセージを入力するか、写真を添付してください。", bot.LangEN: "Type a message or attach a photo."} {
		chat, err := web.New(web.Config{Inbox: &bottest.Inbox{}, UploadDir: t.TempDir(), Language: lang})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(chat.Routes()[0].Handler)
		status, out := post(t, srv, "", map[string]string{"id": "abcdefgh", "session": "abcdefgh"}, nil)
		srv.Close()
		if status != 400 || out["error"] != want {
			t.Errorf("%s: an empty message got %d %v, want 400 %q", lang, status, out, want)
		}
	}
}

// A long answer appears as Dify writes it: stream events whose text grows, reasoning never shown, then the reply.
func TestLongAnswerStreams(t *testing.T) {
	srv, _ := newChat(t, "", func(o *difytest.Options, _ *bot.Config) { o.Scenario, o.Latency = "stream_long", 300*time.Millisecond })
	_, out := post(t, srv, "", map[string]string{"id": web.NewID(), "session": "session-1", "text": "tell me all"}, nil)
	evs := follow(t, srv, "", out["run_id"].(string))
	var texts []string
	for _, ev := range evs {
		if ev.Type == "stream" && ev.Text != "" {
			texts = append(texts, ev.Text)
		}
	}
	last := evs[len(evs)-1]
	if len(texts) < 3 {
		t.Fatalf("%d stream events with text, want the answer in several steps: %+v", len(texts), evs)
	}
	for i, tx := range texts {
		if strings.Contains(tx, "think") || strings.Contains(tx, "The person sent") {
			t.Errorf("stream event %d shows reasoning: %.60q", i, tx)
		}
		if i > 0 && !strings.HasPrefix(tx, texts[i-1]) {
			t.Errorf("stream event %d does not go on from the one before", i)
		}
		if !strings.HasPrefix(last.Text, tx) {
			t.Errorf("stream event %d is not the beginning of the answer", i)
		}
	}
	if last.Type != "reply" || !last.Final || len(last.Text) < 1800 {
		t.Errorf("final event = %+v", last)
	}
}
