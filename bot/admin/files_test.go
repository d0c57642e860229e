package admin

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
)

// A run's detail lists the files of its answers with working signed links, images marked for thumbnails.
func TestRunDetailListsOutputFiles(t *testing.T) {
	e := newAdminEnv(t, nil)
	r, _, err := e.store.Enqueue(t.Context(), bot.Message{Platform: "slack", EventID: "EvOut", ChatID: "C1", UserID: "U1", Text: "chart"})
	if err != nil {
		t.Fatal(err)
	}
	png := []byte("\x89PNG\r\n\x1a\n-not-really")
	now := time.Now()
	for _, f := range []bot.OutputFile{
		{ID: "f_img", RunID: r.ID, Attempt: 1, Key: "a", Name: "chart.png", MIMEType: "image/png", Size: int64(len(png)), CreatedAt: now, ExpiresAt: now.Add(time.Hour)},
		{ID: "f_csv", RunID: r.ID, Attempt: 1, Seq: 1, Key: "b", Name: "rows.csv", MIMEType: "text/csv", Size: 4, CreatedAt: now, ExpiresAt: now.Add(time.Hour)},
	} {
		data := png
		if f.ID == "f_csv" {
			data = []byte("a,b\n")
		}
		if err := e.store.AddOutputFile(t.Context(), f, data, nil); err != nil {
			t.Fatal(err)
		}
	}
	var d runDetail
	e.api(t, "GET", "/admin/runs/"+r.ID, "", http.StatusOK, &d)
	if len(d.OutputFiles) != 2 || !d.OutputFiles[0].Image || d.OutputFiles[1].Image || d.OutputFiles[1].Name != "rows.csv" {
		t.Fatalf("output files %+v", d.OutputFiles)
	}
	files := httptest.NewServer(filesMux(e))
	defer files.Close()
	res, err := http.Get(files.URL + d.OutputFiles[0].URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !bytes.Equal(b, png) || !strings.HasPrefix(d.OutputFiles[0].URL, "/files/f_img?") {
		t.Errorf("GET %s: %d %q", d.OutputFiles[0].URL, res.StatusCode, b)
	}
}

func filesMux(e *adminEnv) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /files/{id}", bot.FilesHandler(bot.FilesConfig{Store: e.store}))
	return mux
}
