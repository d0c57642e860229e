package difytest_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/dify/difytest"
)

// formItem is one start form variable as /v1/parameters sends it, decoded loosely.
type formItem struct {
	typ      string
	Variable string   `json:"variable"`
	Required bool     `json:"required"`
	Default  any      `json:"default"`
	Max      int      `json:"max_length"`
	Options  []string `json:"options"`
	Types    []string `json:"allowed_file_types"`
}

func parameters(t *testing.T, s *difytest.Server) (form []formItem, suggested []string) {
	t.Helper()
	r := get(t, s, "/parameters")
	var p struct {
		Form      []map[string]formItem `json:"user_input_form"`
		Suggested []string              `json:"suggested_questions"`
	}
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("parameters: %v: %s", err, r.body)
	}
	for _, item := range p.Form {
		for typ, f := range item {
			f.typ = typ
			form = append(form, f)
		}
	}
	return form, p.Suggested
}

func TestShapesCatalogue(t *testing.T) {
	var names []string
	for _, sh := range difytest.Shapes() {
		names = append(names, sh.Name)
		if sh.Description == "" || !strings.HasSuffix(sh.Description, ".") {
			t.Errorf("shape %q: description %q should be a sentence", sh.Name, sh.Description)
		}
	}
	want := []string{"agent", "chatbot", "chatflow_per_user", "default", "file_list", "optional_text", "required_select",
		"required_text", "select_default", "text_default"}
	if !slices.Equal(names, want) {
		t.Errorf("Shapes() = %v, want %v", names, want)
	}
	s := newServer(t, difytest.Options{})
	if s.Shape() != difytest.DefaultShape {
		t.Errorf("default shape %q", s.Shape())
	}
	if err := s.SetShape("nope"); err == nil {
		t.Error("SetShape(nope) = nil")
	}
	base := strings.TrimSuffix(s.URL(), "/v1")
	ctl := func(method, body string) result {
		return do(t, t.Context(), method, base+"/_sim/shape", "", "application/json", strings.NewReader(body))
	}
	if r := ctl(http.MethodGet, ""); string(r.body) != `{"shape":"default"}`+"\n" {
		t.Errorf("GET /_sim/shape: %s", r.body)
	}
	if r := ctl(http.MethodPut, `{"shape":"nope"}`); r.status != 400 || !strings.Contains(r.str("error"), `unknown shape "nope"`) {
		t.Errorf("PUT unknown: %d %s", r.status, r.body)
	}
	if r := ctl(http.MethodPut, `{"shape":"agent"}`); r.status != 200 || s.Shape() != "agent" || s.Scenario() != "ok" {
		t.Errorf("PUT agent: %d %s; shape %q scenario %q", r.status, r.body, s.Shape(), s.Scenario())
	}
	if r := get(t, s, "/info"); r.str("mode") != "agent" {
		t.Errorf("info after the switch: %s", r.body)
	}
	var list []difytest.Shape
	r := do(t, t.Context(), http.MethodGet, base+"/_sim/shapes", "", "", nil)
	if err := json.Unmarshal(r.body, &list); err != nil || !slices.Equal(list, difytest.Shapes()) {
		t.Errorf("GET /_sim/shapes: %v %s", err, r.body)
	}
	defer func() {
		if recover() == nil {
			t.Error("NewHandler with an unknown shape did not panic")
		}
	}()
	difytest.NewHandler(difytest.Options{Shape: "nope"})
}

func TestShapeForms(t *testing.T) {
	tests := []struct {
		shape, mode string
		form        []string // type:variable, "!" for required, "=default".
		suggested   bool
	}{
		{difytest.DefaultShape, "workflow", []string{"paragraph:query", "file:photo"}, false},
		{"required_text", "workflow", []string{"paragraph:question!", "file:photo!"}, true},
		{"optional_text", "workflow", []string{"paragraph:question", "file:photo!"}, false},
		{"text_default", "workflow", []string{"paragraph:question!=Describe this photo.", "file:photo!"}, false},
		{"file_list", "workflow", []string{"file-list:photos!", "paragraph:question"}, false},
		{"select_default", "workflow", []string{"select:language!=English", "file:photo!", "paragraph:question"}, false},
		{"required_select", "workflow", []string{"select:language!", "file:photo!", "paragraph:question"}, false},
		{"chatflow_per_user", "advanced-chat", []string{"file:photo"}, true},
		{"agent", "agent", []string{"file:photo"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.shape, func(t *testing.T) {
			s := newServer(t, difytest.Options{Shape: tt.shape})
			if r := get(t, s, "/info"); r.str("mode") != tt.mode {
				t.Errorf("mode %q, want %q", r.str("mode"), tt.mode)
			}
			form, suggested := parameters(t, s)
			var got []string
			for _, f := range form {
				d := f.typ + ":" + f.Variable
				if f.Required {
					d += "!"
				}
				if def, _ := f.Default.(string); def != "" {
					d += "=" + def
				}
				got = append(got, d)
				if (f.typ == "file" || f.typ == "file-list") && !slices.Equal(f.Types, []string{"image"}) {
					t.Errorf("%s allows %v, want images", f.Variable, f.Types)
				}
				if f.typ == "select" && !slices.Equal(f.Options, []string{"English", "Japanese", "German"}) {
					t.Errorf("%s options %v", f.Variable, f.Options)
				}
				if f.typ == "file-list" && f.Max != 3 {
					t.Errorf("%s max_length %d, want 3", f.Variable, f.Max)
				}
			}
			if !slices.Equal(got, tt.form) {
				t.Errorf("form %v, want %v", got, tt.form)
			}
			if (len(suggested) > 0) != tt.suggested {
				t.Errorf("suggested_questions %q", suggested)
			}
		})
	}
}

// TestShapesEnforceTheForm sends each shape what a person might, and checks Dify's answer or the echo.
func TestShapesEnforceTheForm(t *testing.T) {
	type input = map[string]any
	tests := []struct {
		shape  string
		inputs func(photo map[string]any) input
		status int
		want   string // The error message, or a part of the answer.
	}{
		{"required_text", func(p input) input { return input{"photo": p} }, 400, "question is required in input form"},
		{"required_text", func(p input) input { return input{"question": "", "photo": p} }, 400, "question is required in input form"},
		{"required_text", func(p input) input { return input{"question": "what is this?"} }, 400, "photo is required in input form"},
		{"required_text", func(p input) input { return input{"question": 42, "photo": p} }, 400, "(type 'paragraph') question in input form must be a string"},
		{"required_text", func(p input) input { return input{"question": strings.Repeat("x", 1001), "photo": p} }, 400, "question in input form must be less than 1000 characters"},
		{"required_text", func(p input) input { return input{"question": "what is this?", "photo": p} }, 200,
			`You said: what is this? Inputs: question="what is this?", photo=1 file.`},
		{"optional_text", func(p input) input { return input{"photo": p} }, 200, "Received a PNG image, 4×3 px, "},
		{"optional_text", func(p input) input { return input{"photo": p} }, 200, "Inputs: photo=1 file."},
		{"optional_text", func(p input) input { return input{"question": "hi"} }, 400, "photo is required in input form"},
		{"text_default", func(p input) input { return input{"photo": p} }, 400, "question is required in input form"},
		{"text_default", func(p input) input { return input{"question": "Describe this photo.", "photo": p} }, 200,
			`Inputs: question="Describe this photo.", photo=1 file.`},
		{"file_list", func(p input) input { return input{"photos": []any{p, p, p}} }, 200, "Inputs: photos=3 files."},
		{"file_list", func(p input) input { return input{"photos": []any{p, p, p, p}} }, 400, "Number of files exceeds the maximum limit 3"},
		{"file_list", func(p input) input { return input{"photos": []any{}} }, 400, "photos is required in input form"},
		{"file_list", func(p input) input { return input{"photos": p} }, 400, "photos in input form must be a list of files"},
		{"file_list", func(p input) input { return input{"photos": []any{p}, "question": "which is best?"} }, 200,
			`Inputs: photos=1 file, question="which is best?".`},
		{"select_default", func(p input) input { return input{"photo": p} }, 400, "language is required in input form"},
		{"select_default", func(p input) input { return input{"language": "French", "photo": p} }, 400,
			"language in input form must be one of the following: ['English', 'Japanese', 'German']"},
		{"select_default", func(p input) input { return input{"language": "Japanese", "photo": p, "question": "what?"} }, 200,
			`Inputs: language="Japanese", photo=1 file, question="what?".`},
		{"required_select", func(p input) input { return input{"photo": p, "question": "what?"} }, 400, "language is required in input form"},
		{difytest.DefaultShape, func(p input) input { return input{} }, 200, "No image was attached."},
	}
	servers := map[string]*difytest.Server{}
	for _, tt := range tests {
		s := servers[tt.shape]
		if s == nil {
			s = newServer(t, difytest.Options{Shape: tt.shape})
			servers[tt.shape] = s
		}
		inputs := tt.inputs(photo(uploadPNG(t, s, 4, 3)))
		r := postJSON(t, s, "/workflows/run", runBody("blocking", inputs))
		var got string
		if r.status == 200 {
			got, _ = r.env["data"].(map[string]any)["outputs"].(map[string]any)["text"].(string)
		} else {
			got = r.str("message")
			if r.str("code") != "invalid_param" {
				t.Errorf("%s %v: code %q, want invalid_param", tt.shape, inputs, r.str("code"))
			}
		}
		if r.status != tt.status || !strings.Contains(got, tt.want) {
			t.Errorf("%s %v:\n got %d %q\nwant %d %q", tt.shape, inputs, r.status, got, tt.status, tt.want)
		}
	}
	for name, s := range servers {
		if n, ok := map[string]int{"required_text": 1, "optional_text": 2, "text_default": 1, "file_list": 2,
			"select_default": 1, "required_select": 0, difytest.DefaultShape: 1}[name]; ok && s.Started() != n {
			t.Errorf("%s: %d runs started, want %d (refused ones start nothing)", name, s.Started(), n)
		}
	}
}

// A shape is independent of the scenario: the faults still apply, and the form applies to chatflows too.
func TestShapeWithScenario(t *testing.T) {
	s := newServer(t, difytest.Options{Shape: "agent", Scenario: "rate_limited"})
	if r := postJSON(t, s, "/chat-messages", chatBody("streaming", "")); r.status != 429 || r.str("code") != "too_many_requests" {
		t.Errorf("agent, rate_limited: %d %s", r.status, r.body)
	}
	s = newServer(t, difytest.Options{Shape: "required_text", Scenario: "chat_ok"})
	if r := postJSON(t, s, "/chat-messages", chatBody("blocking", "")); r.status != 400 || r.str("message") != "question is required in input form" {
		t.Errorf("chatflow with a required form, no inputs: %d %s", r.status, r.body)
	}
	body := chatBody("blocking", "")
	body["inputs"] = map[string]any{"question": "q", "photo": photo(uploadPNG(t, s, 2, 2))}
	if r := postJSON(t, s, "/chat-messages", body); r.status != 200 || !strings.HasSuffix(r.str("answer"), `You said: hi. Inputs: question="q", photo=1 file.`) {
		t.Errorf("chatflow with a required form: %d %s", r.status, r.body)
	}
}

func TestConversationsPerUser(t *testing.T) {
	s := newServer(t, difytest.Options{Shape: "chatflow_per_user"})
	send := func(user, conv string) result {
		body := chatBody("blocking", conv)
		body["user"] = user
		return postJSON(t, s, "/chat-messages", body)
	}
	r := send("alice", "")
	conv := r.str("conversation_id")
	if r.status != 200 || len(conv) != 36 {
		t.Fatalf("first message: %d %s", r.status, r.body)
	}
	if r := send("alice", conv); r.status != 200 || r.str("conversation_id") != conv {
		t.Errorf("alice again: %d %s", r.status, r.body)
	}
	want := `{"code":"not_found","message":"Conversation Not Exists.","status":404}` + "\n"
	if r := send("bob", conv); r.status != 404 || string(r.body) != want {
		t.Errorf("bob in alice's conversation: %d %s", r.status, r.body)
	}
	started := s.Started()
	s.ForgetConversations()
	if r := send("alice", conv); r.status != 404 || string(r.body) != want {
		t.Errorf("alice after ForgetConversations: %d %s", r.status, r.body)
	}
	if s.Started() != started {
		t.Errorf("a refused message started a run")
	}
	if r := send("alice", ""); r.status != 200 || r.str("conversation_id") == conv {
		t.Errorf("a new conversation: %d %s", r.status, r.body)
	}

	// The default shape keeps the old leniency: any user may continue a conversation; forgetting still works.
	s = newServer(t, difytest.Options{Scenario: "chat_ok"})
	r = send("alice", "")
	if r := send("bob", r.str("conversation_id")); r.status != 200 {
		t.Errorf("default shape, bob: %d %s", r.status, r.body)
	}
}

func TestAgentShape(t *testing.T) {
	s := newServer(t, difytest.Options{Shape: "agent", Latency: time.Millisecond, PingEvery: time.Hour})
	want := `{"code":"bad_request","message":"Agent App only supports streaming response mode.","status":400}` + "\n"
	if r := postJSON(t, s, "/chat-messages", chatBody("blocking", "")); r.status != 400 || string(r.body) != want {
		t.Errorf("blocking: %d %s", r.status, r.body)
	}
	if s.Started() != 0 {
		t.Errorf("the refused blocking request started %d runs", s.Started())
	}
	if r := postJSON(t, s, "/workflows/run", runBody("blocking", nil)); r.status != 400 || r.str("code") != "not_workflow_app" {
		t.Errorf("workflows/run: %d %s", r.status, r.body)
	}
	body := chatBody("", "")
	delete(body, "response_mode") // Omitted: an agent streams.
	body["files"] = []any{photo(uploadPNG(t, s, 8, 6))}
	evs, err := openStream(t, t.Context(), s, "/chat-messages", body).all()
	if err != nil {
		t.Fatal(err)
	}
	var deltas, final string
	var order []string
	for _, e := range evs {
		switch e.name() {
		case "agent_message":
			deltas += e.m["answer"].(string)
		case "message":
			final = e.m["answer"].(string)
		case "workflow_started", "node_started", "text_chunk":
			t.Errorf("an agent app sent %s", e.raw)
		}
		if n := e.name(); n != "ping" && (len(order) == 0 || order[len(order)-1] != n) {
			order = append(order, n)
		}
	}
	if !slices.Equal(order, []string{"agent_thought", "agent_message", "message", "message_end"}) {
		t.Errorf("event order %v", order)
	}
	if final == "" || deltas != final || !strings.HasPrefix(final, "Received a PNG image, 8×6 px, ") || !strings.HasSuffix(final, "You said: hi. Inputs: files=1 file.") {
		t.Errorf("deltas %q, closing message %q", deltas, final)
	}
	if s.Started() != 1 {
		t.Errorf("%d runs started, want 1", s.Started())
	}
}
