package dify

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// streamServer answers every request with a recorded event stream from testdata/files.
func streamServer(t *testing.T, fixture string) *httptest.Server {
	t.Helper()
	body, err := os.ReadFile("testdata/files/" + fixture)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRunFilesFromOutputsAndFinishedEvent(t *testing.T) {
	c := newTestClient(t, streamServer(t, "workflow_stream.txt").URL+"/v1")
	run, err := c.RunWorkflow(context.Background(), RunRequest{User: "u"})
	if err != nil {
		t.Fatal(err)
	}
	// The chart appears in outputs and in data.files with a different signature: once, by its related_id.
	want := []OutputFile{
		{Key: "5f0c2a1e-3b7d-4e89-9a0b-1c2d3e4f5a6b", Type: "image", Name: "chart.png", MIMEType: "image/png", Size: 48213,
			URL: "/files/tools/5f0c2a1e-3b7d-4e89-9a0b-1c2d3e4f5a6b.png?timestamp=1753000000&nonce=aa&sign=Qm9n=="},
		{Key: "https://cdn.example.com/p1.pdf", Type: "document", Name: "p1.pdf", MIMEType: "application/pdf", Size: 1668, URL: "https://cdn.example.com/p1.pdf"},
		{Key: "0b1c", Type: "custom", Name: "rows.csv", MIMEType: "text/csv", Size: -1, URL: "https://files.example.com/files/tools/0b1c.csv?timestamp=1&nonce=b&sign=c%3D"},
	}
	if len(run.Files) != len(want) {
		t.Fatalf("files %+v, want %+v", run.Files, want)
	}
	for i := range want {
		if run.Files[i] != want[i] {
			t.Errorf("file %d = %+v, want %+v", i, run.Files[i], want[i])
		}
	}
	if run.Replaced != "Moderated." {
		t.Errorf("Replaced = %q, want the text_replace text", run.Replaced)
	}
}

func TestChatFilesFromMessageFileAndMessageEnd(t *testing.T) {
	c := newTestClient(t, streamServer(t, "chat_stream.txt").URL+"/v1")
	reply, err := c.SendChatMessage(context.Background(), ChatRequest{Query: "q", User: "u"})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, f := range reply.Files {
		keys = append(keys, f.Key+"="+f.Name)
	}
	// The person's own upload (belongs_to user) is not an answer; message_end repeats the assistant's file.
	if got := strings.Join(keys, " "); got != "file_id_1=file_id_1.png r2=notes.txt" {
		t.Errorf("files %s", got)
	}
}

func TestFilesInIgnoresWhatIsNotAFile(t *testing.T) {
	for _, raw := range []string{`null`, `"text"`, `{"a":{"url":"/files/x"}}`, `[1,2]`, `{"deep":{"inner":{"dify_model_identity":"__dify__file__","url":"/x"}}}`,
		`{"dify_model_identity":"__dify__file__","type":"image"}`} {
		if got := filesIn([]byte(raw)); len(got) != 0 {
			t.Errorf("filesIn(%s) = %+v, want none", raw, got)
		}
	}
}

func TestFileURL(t *testing.T) {
	tests := []struct{ base, files, url, want string }{
		{"https://dify.example.com/v1", "", "/files/tools/a.png?sign=x%3D", "https://dify.example.com/files/tools/a.png?sign=x%3D"},
		{"https://dify.example.com/v1", "https://files.example.com", "/files/tools/a.png?sign=x", "https://files.example.com/files/tools/a.png?sign=x"},
		{"https://example.com/dify/v1", "https://example.com/dify/", "/files/a/file-preview?t=1", "https://example.com/dify/files/a/file-preview?t=1"},
		{"https://dify.example.com/v1", "", "https://cdn.example.com/p.pdf", "https://cdn.example.com/p.pdf"},
	}
	for _, tt := range tests {
		c, err := New(Config{BaseURL: tt.base, APIKey: testKey, FilesURL: tt.files})
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.FileURL(OutputFile{URL: tt.url})
		if err != nil || got != tt.want {
			t.Errorf("FileURL(%q) with base %q, files %q = %q, %v; want %q", tt.url, tt.base, tt.files, got, err, tt.want)
		}
	}
	c := newTestClient(t, "https://dify.example.com/v1")
	for _, bad := range []string{"file:///etc/passwd", "ftp://x/y", "javascript:alert(1)"} {
		if _, err := c.FileURL(OutputFile{URL: bad}); err == nil {
			t.Errorf("FileURL(%q) accepted", bad)
		}
	}
}

// The API key never goes with a file download, on the API's origin or another.
func TestOpenFileSendsNoKey(t *testing.T) {
	var auth []string
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = append(auth, r.Header.Get("Authorization"))
		if r.URL.Path == "/files/gone.png" {
			http.Error(w, `{"code":"forbidden"}`, http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		io.WriteString(w, "PNGDATA")
	}))
	defer files.Close()
	c, err := New(Config{BaseURL: files.URL + "/v1", APIKey: testKey, Logger: zerolog.New(zerolog.NewTestWriter(t))})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"/files/tools/a.png?sign=1", files.URL + "/other/b.png"} {
		body, ctype, err := c.OpenFile(context.Background(), OutputFile{Name: "a.png", URL: u})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(body)
		body.Close()
		if string(b) != "PNGDATA" || ctype != "image/png" {
			t.Errorf("OpenFile(%s) = %q %q", u, b, ctype)
		}
	}
	_, _, err = c.OpenFile(context.Background(), OutputFile{Name: "gone.png", URL: "/files/gone.png"})
	var fe *FileError
	if !errors.As(err, &fe) || fe.Status != http.StatusForbidden || !strings.Contains(err.Error(), "expired") {
		t.Errorf("OpenFile of a refused link: %v", err)
	}
	for _, a := range auth {
		if a != "" {
			t.Errorf("a file download carried Authorization %q", a)
		}
	}
}

// TestForeignFileFromAnInternalHostIsRefused: a file whose link leaves Dify's origin (a tool's remote_url,
// which a prompt can steer) is fetched from the public internet only, never from an internal address.
func TestForeignFileFromAnInternalHostIsRefused(t *testing.T) {
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the internal host was reached: %s", r.URL)
		io.WriteString(w, "metadata")
	}))
	defer internal.Close()
	difySrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "PNGDATA") }))
	defer difySrv.Close()
	c, err := New(Config{BaseURL: difySrv.URL + "/v1", APIKey: testKey, Logger: zerolog.New(zerolog.NewTestWriter(t))})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.OpenFile(context.Background(), OutputFile{Name: "x.png", URL: internal.URL + "/latest/meta-data"}); err == nil ||
		!strings.Contains(err.Error(), "not a public address") {
		t.Errorf("OpenFile of an internal host: %v, want refused", err)
	}
	// Dify's own origin is trusted wherever it runs (here, loopback too).
	body, _, err := c.OpenFile(context.Background(), OutputFile{Name: "a.png", URL: "/files/a.png"})
	if err != nil {
		t.Fatal(err)
	}
	body.Close()
}
