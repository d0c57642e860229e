package difytest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/dify/difytest"
)

func TestAuth(t *testing.T) {
	s := newServer(t, difytest.Options{})
	tests := []struct {
		auth, body, realm string
		status            int
	}{
		{"", `{"code":"unauthorized","message":"Authorization header must be provided and start with 'Bearer'","status":401}` + "\n", `Bearer realm="api"`, 401},
		{"Bearer", `{"code":"unauthorized","message":"Authorization header must be provided and start with 'Bearer'","status":401}` + "\n", `Bearer realm="api"`, 401},
		{"Basic app-test", `{"code":"unauthorized","message":"Authorization scheme must be 'Bearer'","status":401}` + "\n", `Bearer realm="api"`, 401},
		{"Bearer app-wrong", `{"code":"unauthorized","message":"Access token is invalid","status":401}` + "\n", `Bearer realm="api"`, 401},
		{"bearer app-test", "", "", 200},
		{"Bearer   app-test", "", "", 200},
	}
	for _, tt := range tests {
		r := do(t, t.Context(), http.MethodGet, s.URL()+"/info", tt.auth, "", nil)
		if r.status != tt.status || tt.body != "" && string(r.body) != tt.body {
			t.Errorf("Authorization %q: got %d %q, want %d %q", tt.auth, r.status, r.body, tt.status, tt.body)
		}
		if got := r.header.Get("WWW-Authenticate"); got != tt.realm {
			t.Errorf("Authorization %q: WWW-Authenticate %q, want %q", tt.auth, got, tt.realm)
		}
	}
}

func TestUnknownRouteIsDifyJSON(t *testing.T) {
	s := newServer(t, difytest.Options{})
	// Routing comes before the key check, so even without a key the answer is Dify's 404, not a 401.
	r := do(t, t.Context(), http.MethodGet, s.URL()+"/nope", "", "", nil)
	want := `{"code":"not_found","message":"` + msgNotFound + `","status":404}` + "\n"
	if r.status != 404 || string(r.body) != want {
		t.Errorf("GET /v1/nope: got %d %s, want 404 %s", r.status, r.body, want)
	}
	if s.Calls("") != 1 {
		t.Errorf(`Calls("") = %d, want 1`, s.Calls(""))
	}
}

func TestInfoAndParameters(t *testing.T) {
	s := newServer(t, difytest.Options{MaxImageBytes: 5 << 20})
	r := get(t, s, "/info")
	want := `{"name":"Photo Describer","description":"Describes the photo you send and answers your question about it.","tags":[],"mode":"workflow","author_name":"difybot"}` + "\n"
	if string(r.body) != want {
		t.Errorf("info: got %s, want %s", r.body, want)
	}
	var p struct {
		UserInputForm []map[string]struct {
			Variable         string   `json:"variable"`
			Required         bool     `json:"required"`
			AllowedFileTypes []string `json:"allowed_file_types"`
		} `json:"user_input_form"`
		FileUpload       map[string]any `json:"file_upload"`
		SystemParameters map[string]int `json:"system_parameters"`
	}
	r = get(t, s, "/parameters")
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("parameters: %v: %s", err, r.body)
	}
	if q := p.UserInputForm[0]["paragraph"]; q.Variable != "query" || q.Required {
		t.Errorf("first input %+v, want optional paragraph query", p.UserInputForm[0])
	}
	if f := p.UserInputForm[1]["file"]; f.Variable != "photo" || !slices.Equal(f.AllowedFileTypes, []string{"image"}) {
		t.Errorf("second input %+v, want file photo for images", p.UserInputForm[1])
	}
	if p.SystemParameters["image_file_size_limit"] != 5 || p.SystemParameters["file_size_limit"] != 15 {
		t.Errorf("system_parameters %v", p.SystemParameters)
	}
	if p.FileUpload["image"] == nil {
		t.Errorf("file_upload %v has no image", p.FileUpload)
	}
}

func TestUploadChecks(t *testing.T) {
	s := newServer(t, difytest.Options{MaxImageBytes: 1000})
	type part struct{ field, filename, ctype, content string }
	send := func(parts []part, ctype string) result {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		for _, p := range parts {
			h := textproto.MIMEHeader{}
			cd := `form-data; name="` + p.field + `"`
			if p.filename != "-" {
				cd += `; filename="` + p.filename + `"`
			}
			h.Set("Content-Disposition", cd)
			if p.ctype != "" {
				h.Set("Content-Type", p.ctype)
			}
			w, _ := mw.CreatePart(h)
			io.WriteString(w, p.content)
		}
		mw.Close()
		if ctype == "" {
			ctype = mw.FormDataContentType()
		}
		return do(t, t.Context(), http.MethodPost, s.URL()+"/files/upload", "Bearer "+key, ctype, &b)
	}
	small := strings.Repeat("x", 1000)
	tests := []struct {
		name   string
		parts  []part
		ctype  string
		status int
		code   string
		msg    string
	}{
		{"not multipart", nil, "application/json", 400, "no_file_uploaded", "Please upload your file."},
		{"only fields", []part{{"user", "-", "", "u1"}}, "", 400, "no_file_uploaded", "Please upload your file."},
		{"file under another name", []part{{"image", "a.png", "image/png", "x"}}, "", 400, "no_file_uploaded", "Please upload your file."},
		{"two file fields", []part{{"file", "a.png", "image/png", "x"}, {"extra", "b.png", "image/png", "x"}}, "", 400, "too_many_files", "Only one file is allowed."},
		{"no part mimetype", []part{{"file", "a.png", "", "x"}}, "", 415, "unsupported_file_type", "File type not allowed."},
		{"empty filename", []part{{"file", "", "image/png", "x"}}, "", 400, "filename_not_exists_error", "The specified filename does not exist."},
		{"slash in filename", []part{{"file", "dir/a.png", "image/png", "x"}}, "", 400, "invalid_param", "Filename contains invalid characters"},
		{"image over the limit", []part{{"file", "a.PNG", "image/png", small + "x"}}, "", 413, "file_too_large", "File size exceeded. {message}"},
		{"image at the limit", []part{{"file", "a.png", "image/png", small}}, "", 201, "", ""},
		{"document under its own limit", []part{{"file", "a.txt", "text/plain", small + "x"}}, "", 201, "", ""},
		// request.files is a MultiDict: two parts named file count as one field, and the first is used.
		{"two parts named file", []part{{"file", "a.png", "image/png", "x"}, {"file", "b.png", "image/png", "y"}}, "", 201, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := send(tt.parts, tt.ctype)
			if r.status != tt.status || r.str("code") != tt.code || r.str("message") != tt.msg {
				t.Errorf("got %d %s, want %d %s %q", r.status, r.body, tt.status, tt.code, tt.msg)
			}
		})
	}
}

// zeros is a reader of n zero bytes that never holds them.
type zeros struct{ n int64 }

func (z *zeros) Read(p []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), z.n))
	clear(p[:n])
	z.n -= int64(n)
	return n, nil
}

func TestUploadStreamedTooLarge(t *testing.T) {
	s := newServer(t, difytest.Options{})
	r := uploadFile(t, s, "big.jpg", "image/jpeg", &zeros{20 << 20})
	want := `{"code":"file_too_large","message":"File size exceeded. {message}","status":413}` + "\n"
	if r.status != 413 || string(r.body) != want {
		t.Errorf("20 MB image: got %d %s, want 413 %s", r.status, r.body, want)
	}
}

func TestUploadPNGThenRun(t *testing.T) {
	s := newServer(t, difytest.Options{})
	png := pngBytes(t, 640, 480)
	r := uploadFile(t, s, "photo.png", "image/png", bytes.NewReader(png))
	if r.status != 201 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	var keys []string
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.Token()
	for dec.More() {
		k, _ := dec.Token()
		keys = append(keys, k.(string))
		var skip json.RawMessage
		dec.Decode(&skip)
	}
	wantKeys := []string{"id", "name", "size", "extension", "mime_type", "created_by", "created_at", "preview_url",
		"source_url", "original_url", "user_id", "tenant_id", "conversation_id", "file_key"}
	if !slices.Equal(keys, wantKeys) {
		t.Errorf("upload keys %v, want %v", keys, wantKeys)
	}
	if r.str("name") != "photo.png" || r.str("extension") != "png" || r.str("mime_type") != "image/png" ||
		r.env["size"] != float64(len(png)) {
		t.Errorf("upload answer %s", r.body)
	}
	r = postJSON(t, s, "/workflows/run", runBody("blocking", map[string]any{"query": "what is this?", "photo": photo(r.str("id"))}))
	text, _ := r.env["data"].(map[string]any)["outputs"].(map[string]any)["text"].(string)
	want := "Received a PNG image, 640×480 px, " // The size depends on the encoder.
	if !strings.HasPrefix(text, want) || !strings.HasSuffix(text, " You said: what is this?") {
		t.Errorf("outputs.text = %q, want %q… You said: what is this?", text, want)
	}
	r = postJSON(t, s, "/workflows/run", runBody("blocking", map[string]any{}))
	if text := r.env["data"].(map[string]any)["outputs"].(map[string]any)["text"]; text != "No image was attached." {
		t.Errorf("outputs.text without a photo = %q", text)
	}
}

func TestRunValidation(t *testing.T) {
	s := newServer(t, difytest.Options{})
	id := uploadPNG(t, s, 2, 2)
	txt := uploadFile(t, s, "notes.txt", "text/plain", strings.NewReader("hello"))
	tests := []struct {
		name   string
		body   string
		ctype  string
		status int
		want   string
	}{
		{"no user", `{"inputs":{}}`, "", 400, `{"code":"invalid_param","message":"Arg user must be provided.","status":400}`},
		{"no inputs", `{"user":"u1"}`, "", 400, `{"code":"invalid_param","message":"Missing required parameter in the JSON body","params":"inputs","status":400}`},
		{"bad mode", `{"user":"u1","inputs":{},"response_mode":"fast"}`, "", 400, `{"code":"invalid_param","message":"The value 'fast' is not a valid choice for 'response_mode'.","params":"response_mode","status":400}`},
		{"bad JSON", `{"user":`, "", 400, `{"code":"bad_request","message":"Invalid JSON payload received or JSON payload is empty.","status":400}`},
		{"not JSON", `user=u1`, "application/x-www-form-urlencoded", 415, `{"code":"unsupported_media_type","message":"Did not attempt to load JSON data because the request Content-Type was not 'application/json'.","status":415}`},
		{"unknown file", `{"user":"u1","inputs":{"photo":{"type":"image","transfer_method":"local_file","upload_file_id":"72fa9618-8f89-4a37-9b33-7e1178a24a67"}}}`, "", 400, `{"code":"invalid_param","message":"Invalid upload file","status":400}`},
		{"bad file id", `{"user":"u1","inputs":{},"files":[{"type":"image","transfer_method":"local_file","upload_file_id":"42"}]}`, "", 400, `{"code":"invalid_param","message":"Invalid upload file id format","status":400}`},
		{"bad file type", `{"user":"u1","inputs":{},"files":[{"type":"picture","transfer_method":"remote_url","url":"https://x/a.png"}]}`, "", 400, `{"code":"invalid_param","message":"'picture' is not a valid FileType","status":400}`},
		{"photo not a file", `{"user":"u1","inputs":{"photo":"a.png"}}`, "", 400, `{"code":"invalid_param","message":"photo in input form must be a file","status":400}`},
		{"photo not an image", `{"user":"u1","inputs":{"photo":{"type":"document","transfer_method":"local_file","upload_file_id":"` + txt.str("id") + `"}}}`, "", 400, `{"code":"invalid_param","message":"File validation failed for file: notes.txt","status":400}`},
		{"photo ok", `{"user":"u1","inputs":{"photo":{"type":"image","transfer_method":"local_file","upload_file_id":"` + id + `"}}}`, "", 200, ""},
		{"remote image ok", `{"user":"u1","inputs":{},"files":[{"type":"image","transfer_method":"remote_url","url":"https://example.com/a.png"}]}`, "", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctype := tt.ctype
			if ctype == "" {
				ctype = "application/json"
			}
			r := do(t, t.Context(), http.MethodPost, s.URL()+"/workflows/run", "Bearer "+key, ctype, strings.NewReader(tt.body))
			if r.status != tt.status || tt.want != "" && string(r.body) != tt.want+"\n" {
				t.Errorf("got %d %s, want %d %s", r.status, r.body, tt.status, tt.want)
			}
		})
	}
}

func TestStreamFraming(t *testing.T) {
	s := newServer(t, difytest.Options{})
	st := openStream(t, t.Context(), s, "/workflows/run", runBody("streaming", nil))
	if st.resp.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" || !st.resp.Close {
		t.Errorf("headers %v (close %v): want text/event-stream and the connection closed at the end", st.resp.Header, st.resp.Close)
	}
	raw, err := io.ReadAll(st.br)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(raw, []byte(`data: {"event":"workflow_started","workflow_run_id":"`)) ||
		!bytes.Contains(raw, []byte("\n\nevent: ping\n\ndata: ")) || !bytes.HasSuffix(raw, []byte("}\n\n")) ||
		bytes.Contains(raw, []byte("[DONE]")) {
		t.Errorf("stream framing:\n%s", raw)
	}
	st = &sse{t: t, br: bufio.NewReader(bytes.NewReader(raw))}
	evs, err := st.all()
	if err != nil {
		t.Fatal(err)
	}
	// The answer streams in a few chunks; compare the sequence with them folded into one.
	want := []string{"workflow_started", "ping", "node_started", "node_finished", "node_started", "text_chunk",
		"node_finished", "node_started", "node_finished", "workflow_finished"}
	if got := slices.Compact(names(evs)); !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	var titles, text []string
	runID := evs[0].m["workflow_run_id"]
	for _, e := range evs {
		switch e.name() {
		case "node_started":
			titles = append(titles, e.data()["title"].(string)+"/"+e.data()["node_type"].(string))
		case "text_chunk":
			text = append(text, e.data()["text"].(string))
		}
		if !e.ping && (e.m["workflow_run_id"] != runID || e.m["task_id"] == nil) {
			t.Errorf("event without the run's ids: %s", e.raw)
		}
	}
	if !slices.Equal(titles, []string{"Start/start", "Analyse image/llm", "End/end"}) {
		t.Errorf("nodes %v", titles)
	}
	outputs := last(evs).data()["outputs"].(map[string]any)
	if strings.Join(text, "") != outputs["text"] || outputs["text"] != "No image was attached. You said: what is this?" {
		t.Errorf("chunks %q do not add up to outputs %v", text, outputs)
	}
}

func TestPingsKeepALongRunAlive(t *testing.T) {
	s := newServer(t, difytest.Options{Scenario: "slow", Latency: 40 * time.Millisecond, PingEvery: 10 * time.Millisecond})
	evs, err := openStream(t, t.Context(), s, "/workflows/run", runBody("streaming", nil)).all()
	if err != nil {
		t.Fatal(err)
	}
	pings := 0
	for _, e := range evs {
		if e.ping {
			pings++
		}
	}
	if pings < 3 || last(evs).name() != "workflow_finished" {
		t.Errorf("%d pings in %v, want several over 120ms of nodes", pings, names(evs))
	}
}

func TestRunDetailAndStop(t *testing.T) {
	s := newServer(t, difytest.Options{Latency: time.Minute})
	st := openStream(t, t.Context(), s, "/workflows/run", runBody("streaming", nil))
	started, err := st.next()
	if err != nil || started.name() != "workflow_started" {
		t.Fatalf("first event %v %v", started.raw, err)
	}
	runID, taskID := started.m["workflow_run_id"].(string), started.m["task_id"].(string)

	r := get(t, s, "/workflows/run/"+runID)
	var inputs map[string]any
	if err := json.Unmarshal([]byte(r.str("inputs")), &inputs); err != nil || inputs["query"] != "what is this?" || inputs["sys.user_id"] != "u1" {
		t.Errorf("inputs %q should be a JSON string with the inputs and sys.*: %v", r.str("inputs"), err)
	}
	if r.str("status") != "running" || r.env["finished_at"] != nil || !strings.HasPrefix(r.str("inputs"), `{"sys.files": [], "sys.user_id": "u1", `) {
		t.Errorf("detail while running: %s", r.body)
	}

	r = postJSON(t, s, "/workflows/tasks/"+taskID+"/stop", map[string]any{"user": "u1"})
	if string(r.body) != `{"result":"success"}`+"\n" {
		t.Errorf("stop: %d %s", r.status, r.body)
	}
	evs, err := st.all()
	if err != nil {
		t.Fatal(err)
	}
	end := last(evs).data()
	if last(evs).name() != "workflow_finished" || end["status"] != "stopped" || end["error"] != "Stopped by user." {
		t.Errorf("after stop: %v %s", names(evs), last(evs).raw)
	}
	if r := get(t, s, "/workflows/run/"+runID); r.str("status") != "stopped" || r.str("error") != "Stopped by user." || r.env["finished_at"] == nil {
		t.Errorf("detail after stop: %s", r.body)
	}

	// Stop is idempotent and answers success for any task; it still wants a user.
	if r := postJSON(t, s, "/workflows/tasks/"+taskID+"/stop", map[string]any{"user": "u1"}); r.status != 200 {
		t.Errorf("second stop: %d %s", r.status, r.body)
	}
	if r := postJSON(t, s, "/workflows/tasks/nope/stop", map[string]any{}); r.str("message") != "Arg user must be provided." {
		t.Errorf("stop without user: %d %s", r.status, r.body)
	}
	want := `{"code":"not_found","message":"Workflow run not found.","status":404}` + "\n"
	if r := get(t, s, "/workflows/run/"+taskID); r.status != 404 || string(r.body) != want {
		t.Errorf("unknown run: %d %s, want 404 %s", r.status, r.body, want)
	}
	if s.Calls(difytest.RouteStop) != 3 || s.Calls(difytest.RouteRunDetail) != 3 {
		t.Errorf("calls: stop %d, detail %d", s.Calls(difytest.RouteStop), s.Calls(difytest.RouteRunDetail))
	}
}

// TestClientLeavingKeepsTheRun: Dify's worker thread finishes a streaming run whose client went away, which is
// why a client polls the run after a dropped connection instead of posting again.
func TestClientLeavingKeepsTheRun(t *testing.T) {
	s := newServer(t, difytest.Options{Latency: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	st := openStream(t, ctx, s, "/workflows/run", runBody("streaming", nil))
	started, err := st.next()
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if r := waitRun(t, s, started.m["workflow_run_id"].(string)); r.str("status") != "succeeded" {
		t.Errorf("run after the client left: %s", r.body)
	}
}

func TestStreamCut(t *testing.T) {
	s := newServer(t, difytest.Options{Scenario: "stream_cut"})
	evs, err := openStream(t, t.Context(), s, "/workflows/run", runBody("streaming", nil)).all()
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("read error %v, want an unexpected EOF (the connection dropped)", err)
	}
	want := []string{"workflow_started", "ping", "node_started", "node_finished", "node_started"}
	if !slices.Equal(names(evs), want) {
		t.Fatalf("events before the cut %v, want %v", names(evs), want)
	}
	r := waitRun(t, s, evs[0].m["workflow_run_id"].(string))
	outputs, _ := r.env["outputs"].(map[string]any)
	if r.str("status") != "succeeded" || outputs["text"] == "" {
		t.Errorf("run after the cut: %s", r.body)
	}
}

func TestStreamCutLost(t *testing.T) {
	s := newServer(t, difytest.Options{Scenario: "stream_cut_lost"})
	st := openStream(t, t.Context(), s, "/workflows/run", runBody("streaming", nil))
	evs, err := st.all()
	if st.resp.StatusCode != 200 || len(evs) != 0 || err != nil {
		t.Errorf("got %d, events %v, error %v; want 200 and an empty stream", st.resp.StatusCode, names(evs), err)
	}
	if r := postJSON(t, s, "/workflows/run", runBody("blocking", nil)); r.status != 200 || len(r.body) != 0 || r.readErr != nil {
		t.Errorf("blocking: got %d %q %v; want 200 and an empty body", r.status, r.body, r.readErr)
	}
	if s.Calls(difytest.RouteRun) != 2 || get(t, s, "/info").status != 200 {
		t.Error("calls not counted, or the server did not survive")
	}
}

func TestChat(t *testing.T) {
	s := newServer(t, difytest.Options{Scenario: "chat_ok"})
	r := postJSON(t, s, "/chat-messages", chatBody("blocking", ""))
	conv := r.str("conversation_id")
	if r.status != 200 || r.str("mode") != "advanced-chat" || len(conv) != 36 || r.str("answer") != "No image was attached. You said: hi." {
		t.Fatalf("first message: %d %s", r.status, r.body)
	}
	if r := postJSON(t, s, "/chat-messages", chatBody("blocking", conv)); r.status != 200 || r.str("conversation_id") != conv {
		t.Errorf("second message: %d %s", r.status, r.body)
	}
	if r := postJSON(t, s, "/chat-messages", chatBody("blocking", "72fa9618-8f89-4a37-9b33-7e1178a24a67")); r.status != 404 || r.str("message") != "Conversation Not Exists." {
		t.Errorf("unknown conversation: %d %s", r.status, r.body)
	}
	if r := postJSON(t, s, "/chat-messages", chatBody("blocking", "nope")); r.status != 400 || r.str("code") != "invalid_param" {
		t.Errorf("bad conversation id: %d %s", r.status, r.body)
	}
	body := chatBody("blocking", "")
	delete(body, "query")
	if r := postJSON(t, s, "/chat-messages", body); r.status != 400 || r.env["params"] != "query" {
		t.Errorf("no query: %d %s", r.status, r.body)
	}

	evs, err := openStream(t, t.Context(), s, "/chat-messages", chatBody("streaming", conv)).all()
	if err != nil {
		t.Fatal(err)
	}
	var answer string
	for _, e := range evs {
		if e.name() == "message" {
			answer += e.m["answer"].(string)
		}
		if !e.ping && (e.m["conversation_id"] != conv || e.m["message_id"] == nil) {
			t.Errorf("chat event without its conversation: %s", e.raw)
		}
	}
	if evs[0].name() != "workflow_started" || last(evs).name() != "message_end" || answer != "No image was attached. You said: hi." {
		t.Errorf("chat stream %v answer %q", names(evs), answer)
	}
	if r := get(t, s, "/workflows/run/"+evs[0].m["workflow_run_id"].(string)); r.str("status") != "succeeded" {
		t.Errorf("chatflow run detail: %s", r.body)
	}
}

func TestVersion06(t *testing.T) {
	s := newServer(t, difytest.Options{Scenario: "version_0_6"})
	r := uploadFile(t, s, "photo.png", "image/png", bytes.NewReader(pngBytes(t, 8, 6)))
	if r.status != 201 || len(r.env) != 7 || !bytes.Contains(r.body, []byte(`{"id": "`)) {
		t.Errorf("0.6 upload answer %s, want 7 keys in json.dumps style", r.body)
	}
	body := runBody("streaming", nil)
	body["files"] = []any{photo(r.str("id"))}
	st := openStream(t, t.Context(), s, "/workflows/run", body)
	raw, _ := io.ReadAll(st.br)
	for _, want := range []string{`data: {"event": "workflow_started", "workflow_run_id": "`, `"sequence_number": `,
		`"text": "Received a PNG image, 8\u00d76 px, `} {
		if !bytes.Contains(raw, []byte(want)) {
			t.Errorf("0.6 stream lacks %s:\n%s", want, raw)
		}
	}
	r = postJSON(t, s, "/workflows/run", runBody("blocking", nil))
	runID := r.str("workflow_run_id")
	if r := get(t, s, "/workflows/run/"+runID); r.str("outputs") != `{"text": "No image was attached. You said: what is this?"}` {
		t.Errorf("0.6 run detail: outputs should be the raw column text: %s", r.body)
	}
	if r := do(t, t.Context(), http.MethodGet, s.URL()+"/info", "", "", nil); r.header.Get("WWW-Authenticate") != `Basic realm="flask-restful"` {
		t.Errorf("0.6 401 realm %q", r.header.Get("WWW-Authenticate"))
	}
	if r := get(t, s, "/workflows/run/72fa9618-8f89-4a37-9b33-7e1178a24a67"); r.status != 200 || r.env["id"] != nil || len(r.env) != 11 {
		t.Errorf("0.6 unknown run: %d %s, want 200 with nulls", r.status, r.body)
	}
	want := `{"code": "invalid_param", "message": "Missing required parameter in the JSON body", "params": "inputs"}` + "\n"
	if r := postJSON(t, s, "/workflows/run", map[string]any{"user": "u1"}); string(r.body) != want {
		t.Errorf("0.6 reqparse error %s, want %s", r.body, want)
	}
}

func TestControlEndpoint(t *testing.T) {
	s := newServer(t, difytest.Options{})
	base := strings.TrimSuffix(s.URL(), "/v1")
	ctl := func(method, body string) result {
		return do(t, t.Context(), method, base+"/_sim/scenario", "", "application/json", strings.NewReader(body))
	}
	if r := ctl(http.MethodGet, ""); string(r.body) != `{"scenario":"ok"}`+"\n" {
		t.Errorf("GET: %s", r.body)
	}
	if r := ctl(http.MethodPut, `{"scenario":"nope"}`); r.status != 400 || !strings.Contains(r.str("error"), `unknown scenario "nope"`) {
		t.Errorf("PUT unknown: %d %s", r.status, r.body)
	}
	if r := ctl(http.MethodPut, `{"scenario":"gateway_502"}`); r.status != 200 || s.Scenario() != "gateway_502" {
		t.Errorf("PUT gateway_502: %d %s; scenario %q", r.status, r.body, s.Scenario())
	}
	if r := get(t, s, "/info"); r.status != 502 {
		t.Errorf("info after the switch: %d", r.status)
	}
	var list []difytest.Scenario
	r := do(t, t.Context(), http.MethodGet, base+"/_sim/scenarios", "", "", nil)
	if err := json.Unmarshal(r.body, &list); err != nil || !slices.Equal(list, difytest.Scenarios()) {
		t.Errorf("GET /_sim/scenarios: %v %s", err, r.body)
	}
	if err := s.SetScenario("nope"); err == nil {
		t.Error("SetScenario(nope) = nil, want an error")
	}
}

func TestFlakyCountsPerRoute(t *testing.T) {
	s := newServer(t, difytest.Options{Scenario: "flaky"})
	for round := range 2 {
		var got []int
		for range 3 {
			got = append(got, uploadFile(t, s, "a.png", "image/png", strings.NewReader("x")).status)
			got = append(got, postJSON(t, s, "/workflows/run", runBody("blocking", nil)).status)
		}
		if want := []int{502, 502, 502, 502, 201, 200}; !slices.Equal(got, want) {
			t.Errorf("round %d: statuses %v, want %v", round, got, want)
		}
		s.SetScenario("flaky") // Setting the scenario again rearms it.
	}
	if s.Calls(difytest.RouteUpload) != 6 || s.Calls(difytest.RouteRun) != 6 {
		t.Errorf("calls: upload %d, run %d", s.Calls(difytest.RouteUpload), s.Calls(difytest.RouteRun))
	}
}

func TestRequestsNeverHoldTheKey(t *testing.T) {
	s := newServer(t, difytest.Options{})
	postJSON(t, s, "/workflows/run", runBody("blocking", nil))
	get(t, s, "/info")
	reqs := s.Requests()
	if len(reqs) != 2 || reqs[0].Route != difytest.RouteRun || reqs[1].Route != difytest.RouteInfo || reqs[0].Scenario != "ok" {
		t.Fatalf("requests %+v", reqs)
	}
	var body map[string]any
	if err := json.Unmarshal(reqs[0].Body, &body); err != nil || body["user"] != "u1" {
		t.Errorf("run body %s: %v", reqs[0].Body, err)
	}
	if b, _ := json.Marshal(reqs); bytes.Contains(b, []byte(key)) {
		t.Errorf("requests hold the API key: %s", b)
	}
}

func TestNginxPagesUseCRLF(t *testing.T) {
	s := newServer(t, difytest.Options{Scenario: "gateway_504"})
	r := get(t, s, "/info")
	want := "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n<center><h1>504 Gateway Time-out</h1></center>\r\n<hr><center>nginx/1.27.3</center>\r\n</body>\r\n</html>\r\n"
	if string(r.body) != want || r.header.Get("Server") != "nginx/1.27.3" {
		t.Errorf("nginx 504 page %q", r.body)
	}
}

func TestNewHandlerPanicsOnUnknownScenario(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("NewHandler with an unknown scenario did not panic")
		}
	}()
	difytest.NewHandler(difytest.Options{Scenario: "nope"})
}

// stream_long writes 2,000 characters, reasoning first, in many chunks that add up to the output.
func TestStreamLong(t *testing.T) {
	s := newServer(t, difytest.Options{Scenario: "stream_long", Latency: 100 * time.Millisecond})
	st := openStream(t, t.Context(), s, "/workflows/run", runBody("streaming", nil))
	evs, err := st.all()
	if err != nil {
		t.Fatal(err)
	}
	var text []string
	for _, e := range evs {
		if e.name() == "text_chunk" {
			text = append(text, e.data()["text"].(string))
		}
	}
	joined := strings.Join(text, "")
	if len(text) < 100 || len(joined) < 2000 || !strings.HasPrefix(joined, "<think>") {
		t.Errorf("%d chunks, %d characters, starting %.20q: want many, 2,000 or more, reasoning first", len(text), len(joined), joined)
	}
	if out := last(evs).data()["outputs"].(map[string]any)["text"]; out != joined {
		t.Errorf("chunks do not add up to outputs.text")
	}
}
