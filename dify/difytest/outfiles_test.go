package difytest_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/dify/difytest"
)

// fileURLs runs a blocking workflow and returns the links of the files its outputs carry.
func fileURLs(t *testing.T, s *difytest.Server) []string {
	t.Helper()
	r := postJSON(t, s, "/workflows/run", runBody("blocking", nil))
	var out struct {
		Data struct {
			Outputs map[string]json.RawMessage `json:"outputs"`
		} `json:"data"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatal(err)
	}
	var urls []string
	for _, v := range out.Data.Outputs {
		var one struct{ URL string }
		var many []struct{ URL string }
		if json.Unmarshal(v, &one) == nil && one.URL != "" {
			urls = append(urls, one.URL)
		} else if json.Unmarshal(v, &many) == nil {
			for _, f := range many {
				urls = append(urls, f.URL)
			}
		}
	}
	return urls
}

// origin is the simulator's root: relative file links are resolved against it, not the /v1 base.
func origin(s *difytest.Server) string { return strings.TrimSuffix(s.URL(), "/v1") }

func TestFileLinks(t *testing.T) {
	s := newServer(t, difytest.Options{Scenario: "file_list_output", Latency: time.Millisecond})
	urls := fileURLs(t, s)
	if len(urls) != 2 || !strings.HasPrefix(urls[0], "/files/tools/") || !strings.Contains(urls[0], ".png?timestamp=") {
		t.Fatalf("file links %v, want two relative signed /files/tools links", urls)
	}
	// No API key: a signed link is enough.
	r := do(t, t.Context(), http.MethodGet, origin(s)+urls[0], "", "", nil)
	if r.status != 200 || r.header.Get("Content-Type") != "image/png" || !bytes.Equal(r.body, s.File("annotated.png")) {
		t.Errorf("GET image: %d %q, %d bytes", r.status, r.header.Get("Content-Type"), len(r.body))
	}
	r = do(t, t.Context(), http.MethodGet, origin(s)+urls[1], "", "", nil)
	if r.status != 200 || string(r.body) != string(s.File("labels.csv")) || !strings.HasPrefix(string(r.body), "label,confidence") {
		t.Errorf("GET csv: %d %q", r.status, r.body)
	}
	tampered := strings.Replace(urls[0], "nonce=", "nonce=0", 1)
	if r := do(t, t.Context(), http.MethodGet, origin(s)+tampered, "", "", nil); r.status != 403 || r.str("code") != "forbidden" {
		t.Errorf("tampered link: %d %s", r.status, r.body)
	}
	if n := s.Calls(difytest.RouteFile); n != 3 {
		t.Errorf("file calls %d, want 3", n)
	}

	expired := newServer(t, difytest.Options{Scenario: "file_expired", Latency: time.Millisecond})
	if r := do(t, t.Context(), http.MethodGet, origin(expired)+fileURLs(t, expired)[0], "", "", nil); r.status != 403 {
		t.Errorf("expired link: %d %s", r.status, r.body)
	}
}

// A chatflow announces its file with message_file, then lists it in message_end.files.
func TestChatflowFiles(t *testing.T) {
	s := newServer(t, difytest.Options{Scenario: "chat_files", Latency: time.Millisecond})
	st := openStream(t, t.Context(), s, "/chat-messages", chatBody("streaming", ""))
	evs, err := st.all()
	if err != nil {
		t.Fatal(err)
	}
	var fileEv, end *event
	for i := range evs {
		switch evs[i].name() {
		case "message_file":
			fileEv = &evs[i]
		case "message_end":
			end = &evs[i]
		}
	}
	if fileEv == nil || end == nil || fileEv.m["belongs_to"] != "assistant" || !strings.HasPrefix(fileEv.m["url"].(string), "/files/tools/") {
		t.Fatalf("events %v", names(evs))
	}
	files, _ := end.m["files"].([]any)
	if len(files) != 1 || files[0].(map[string]any)["related_id"] != fileEv.m["id"] {
		t.Errorf("message_end.files %v, message_file id %v", end.m["files"], fileEv.m["id"])
	}
}
