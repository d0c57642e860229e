package line

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/platforms/line/linetest"
)

// withFiles starts a system whose bot serves /files over TLS at PUBLIC_URL, as behind Caddy: LINE fetches
// images only over https.
func withFiles(t *testing.T, o e2eOptions) (*system, *httptest.Server) {
	t.Helper()
	var files http.Handler = http.NotFoundHandler()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { files.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	o.config = func(c *bot.Config) { c.PublicURL = srv.URL }
	s := newSystem(t, o)
	mux := http.NewServeMux()
	mux.Handle("GET /files/{id}", bot.FilesHandler(bot.FilesConfig{Store: s.store}))
	files = mux // Before any message is delivered.
	return s, srv
}

// fetch gets a URL the way LINE would, through the TLS server's client.
func fetch(t *testing.T, srv *httptest.Server, u string) []byte {
	t.Helper()
	res, err := srv.Client().Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", u, res.StatusCode, b)
	}
	return b
}

// The annotated image arrives as an image message whose original LINE fetches back from /files/… byte for byte,
// the CSV as a link, and the text as before.
func TestEndToEndFilesAsImageMessageAndLink(t *testing.T) {
	t.Parallel()
	s, srv := withFiles(t, e2eOptions{scenario: "file_list_output"})
	s.deliver(t, "text_user.json", nil)
	runs, _ := s.accepts.Runs()
	s.waitReplied(t, runs[0])
	replies := s.line.Accepted(linetest.PathReply)
	if len(replies) != 1 {
		t.Fatalf("replies %+v", replies)
	}
	ms := replies[0].Messages
	if len(ms) != 3 || ms[0].Type != "text" || ms[1].Type != "image" || ms[2].Type != "text" {
		t.Fatalf("messages %+v, want text, image, text", ms)
	}
	if !strings.Contains(ms[0].Text, "You said: What is a good name for a cat?") {
		t.Errorf("text %q", ms[0].Text)
	}
	img := ms[1]
	if !strings.HasPrefix(img.OriginalContentURL, srv.URL+"/files/") || !bytes.Equal(fetch(t, srv, img.OriginalContentURL), s.sim.File("annotated.png")) {
		t.Errorf("image message %+v: its original is not the bytes Dify served", img)
	}
	if !bytes.Equal(fetch(t, srv, img.PreviewImageURL), s.sim.File("annotated.png")) {
		t.Error("a small image is its own preview")
	}
	link := ms[2].Text
	if !strings.HasPrefix(link, "📎 labels.csv\n"+srv.URL+"/files/") {
		t.Fatalf("link message %q", link)
	}
	if got := fetch(t, srv, strings.TrimPrefix(link, "📎 labels.csv\n")); !bytes.Equal(got, s.sim.File("labels.csv")) {
		t.Errorf("the CSV link serves %q", got)
	}
}

// Without PUBLIC_URL, LINE cannot fetch anything from the bot: the answer says which files it had.
func TestEndToEndFilesWithoutPublicURL(t *testing.T) {
	t.Parallel()
	s := newSystem(t, e2eOptions{scenario: "image_output", lang: "ja"})
	s.deliver(t, "text_user.json", nil)
	runs, _ := s.accepts.Runs()
	s.waitReplied(t, runs[0])
	ms := s.line.Accepted(linetest.PathReply)[0].Messages
	if len(ms) != 2 || ms[1].Type != "text" || !strings.Contains(ms[1].Text, "ファイル（annotated.png）") || !strings.Contains(ms[1].Text, "PUBLIC_URL") {
		t.Errorf("messages %+v, want the text and a note naming the file", ms)
	}
}
