package web_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/dify/difytest"
	"github.com/difybot/difybot/internal/cdptest"
	"github.com/difybot/difybot/platforms/web"
)

func fileList(t testing.TB) func(*difytest.Options, *bot.Config) {
	return func(o *difytest.Options, _ *bot.Config) { o.Scenario = "file_list_output" }
}

// The final reply lists the answer's files at the bot's signed links, which serve what Dify served.
func TestReplyCarriesFiles(t *testing.T) {
	srv, sim := newChat(t, "", fileList(t))
	_, out := post(t, srv, "", map[string]string{"id": web.NewID(), "session": "session-1", "text": "chart?"}, nil)
	evs := follow(t, srv, "", out["run_id"].(string))
	final := evs[len(evs)-1]
	if len(final.Files) != 2 || !final.Files[0].Image || final.Files[1].Image || final.Files[1].Type != "text/csv" {
		t.Fatalf("files %+v", final.Files)
	}
	for _, f := range final.Files {
		res, err := http.Get(srv.URL + f.URL)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !bytes.Equal(b, sim.File(f.Name)) {
			t.Errorf("GET %s: %d, %d bytes, not what Dify served", f.URL, res.StatusCode, len(b))
		}
		if !f.Image && !strings.HasPrefix(res.Header.Get("Content-Disposition"), "attachment") {
			t.Errorf("%s: Content-Disposition %q, want a download", f.Name, res.Header.Get("Content-Disposition"))
		}
	}
}

// In a browser the image shows inline (loaded from /files/ under the page's CSP) and the CSV is a download.
func TestFilesInABrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("drives a browser")
	}
	c := cdptest.Start(t)
	srv, _ := newChat(t, "", fileList(t))
	c.Navigate(srv.URL + "/")
	c.Eval(`document.querySelector("textarea, input[type=text]").value = "chart?"; document.querySelector("form").requestSubmit(); true`)
	c.WaitFor("the image to load", `(() => { const i = document.querySelector("img.output"); return !!i && i.complete && i.naturalWidth === 160; })()`)
	if got := c.Eval(`(() => { const a = document.querySelector("a.file"); return a ? a.textContent + "|" + a.getAttribute("download") + "|" + a.getAttribute("href").startsWith("/files/") : "none"; })()`); got != "📎 labels.csv|labels.csv|true" {
		t.Errorf("download link: %s", got)
	}
}
