package difytest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/dify/difytest"
)

const key = "app-test"

func newServer(t testing.TB, opts difytest.Options) *difytest.Server {
	t.Helper()
	s := difytest.NewServer(opts)
	t.Cleanup(s.Close)
	return s
}

// result is an answer, decoded as far as it goes.
type result struct {
	status  int
	header  http.Header
	body    []byte
	readErr error
	env     map[string]any // The JSON body, when it is a JSON object.
}

func (r result) str(k string) string {
	s, _ := r.env[k].(string)
	return s
}

func do(t testing.TB, ctx context.Context, method, url, auth, ctype string, body io.Reader) result {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	r := result{status: resp.StatusCode, header: resp.Header}
	r.body, r.readErr = io.ReadAll(resp.Body)
	json.Unmarshal(r.body, &r.env)
	return r
}

func get(t testing.TB, s *difytest.Server, path string) result {
	t.Helper()
	return do(t, t.Context(), http.MethodGet, s.URL()+path, "Bearer "+key, "", nil)
}

func postJSON(t testing.TB, s *difytest.Server, path string, v any) result {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, t.Context(), http.MethodPost, s.URL()+path, "Bearer "+key, "application/json", bytes.NewReader(b))
}

// runBody is a workflows/run request body.
func runBody(mode string, inputs map[string]any) map[string]any {
	if inputs == nil {
		inputs = map[string]any{"query": "what is this?"}
	}
	return map[string]any{"inputs": inputs, "response_mode": mode, "user": "u1"}
}

func chatBody(mode, conv string) map[string]any {
	return map[string]any{"query": "hi", "inputs": map[string]any{}, "response_mode": mode, "user": "u1",
		"conversation_id": conv}
}

// uploadFile streams a multipart upload through a pipe, as difybot does, so the body is never in memory.
func uploadFile(t testing.TB, s *difytest.Server, name, ctype string, content io.Reader) result {
	t.Helper()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		mw.WriteField("user", "u1")
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="file"; filename="`+name+`"`)
		if ctype != "" {
			h.Set("Content-Type", ctype)
		}
		w, err := mw.CreatePart(h)
		if err == nil {
			_, err = io.Copy(w, content)
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	return do(t, t.Context(), http.MethodPost, s.URL()+"/files/upload", "Bearer "+key, mw.FormDataContentType(), pr)
}

func pngBytes(t testing.TB, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewRGBA(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// uploadPNG uploads a PNG and returns its file id.
func uploadPNG(t testing.TB, s *difytest.Server, w, h int) string {
	t.Helper()
	r := uploadFile(t, s, "photo.png", "image/png", bytes.NewReader(pngBytes(t, w, h)))
	if r.status != http.StatusCreated {
		t.Fatalf("upload: got %d %s, want 201", r.status, r.body)
	}
	return r.str("id")
}

func photo(id string) map[string]any {
	return map[string]any{"type": "image", "transfer_method": "local_file", "upload_file_id": id}
}

// event is one SSE block: a ping, or a data payload.
type event struct {
	ping bool
	raw  string // The data payload as sent.
	m    map[string]any
}

func (e event) name() string {
	if e.ping {
		return "ping"
	}
	s, _ := e.m["event"].(string)
	return s
}

func (e event) data() map[string]any {
	d, _ := e.m["data"].(map[string]any)
	return d
}

// sse reads a Dify stream block by block.
type sse struct {
	t    testing.TB
	resp *http.Response
	br   *bufio.Reader
}

func openStream(t testing.TB, ctx context.Context, s *difytest.Server, path string, body any) *sse {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL()+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &sse{t: t, resp: resp, br: bufio.NewReader(resp.Body)}
}

// next returns the next block, checking Dify's framing on the way.
func (s *sse) next() (event, error) {
	s.t.Helper()
	var lines []string
	for {
		line, err := s.br.ReadString('\n')
		if err != nil {
			if line != "" {
				s.t.Errorf("stream ended inside a line: %q", line)
			}
			return event{}, err
		}
		if line == "\n" {
			break
		}
		lines = append(lines, strings.TrimSuffix(line, "\n"))
	}
	switch {
	case len(lines) == 1 && lines[0] == "event: ping":
		return event{ping: true}, nil
	case len(lines) == 1 && strings.HasPrefix(lines[0], "data: "):
		e := event{raw: strings.TrimPrefix(lines[0], "data: ")}
		if err := json.Unmarshal([]byte(e.raw), &e.m); err != nil {
			s.t.Errorf("data is not JSON: %q", e.raw)
		}
		return e, nil
	}
	s.t.Errorf("block is neither one data line nor a ping: %q", lines)
	return event{}, io.ErrUnexpectedEOF
}

// all reads to the end of the stream.
func (s *sse) all() ([]event, error) {
	var evs []event
	for {
		e, err := s.next()
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return evs, err
		}
		evs = append(evs, e)
	}
}

func names(evs []event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.name())
	}
	return out
}

func last(evs []event) event {
	for i := len(evs) - 1; i >= 0; i-- {
		if !evs[i].ping {
			return evs[i]
		}
	}
	return event{}
}

var titleRE = regexp.MustCompile(`<title>(.*?)</title>`)

func title(body []byte) string {
	m := titleRE.FindSubmatch(body)
	if m == nil {
		return ""
	}
	return string(m[1])
}

// waitRun polls the run detail until the run leaves "running", as difybot recovers a cut stream.
func waitRun(t testing.TB, s *difytest.Server, id string) result {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := get(t, s, "/workflows/run/"+id)
		if r.status != http.StatusOK || r.str("status") != "running" || time.Now().After(deadline) {
			return r
		}
		time.Sleep(5 * time.Millisecond)
	}
}
