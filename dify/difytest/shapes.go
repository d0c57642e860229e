package difytest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Shape is one entry of the app shape catalogue: what the app is like when it works (its mode, start form and
// conversation rules), chosen independently of the fault scenario. The shape's mode, when it has one, wins over
// the scenario's; its form applies to every mode (a chatflow has a start form too).
type Shape struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// DefaultShape is today's app: an optional paragraph query and an optional image file photo.
const DefaultShape = "default"

// Shapes returns the shape catalogue, sorted by name.
func Shapes() []Shape {
	var out []Shape
	for _, s := range shapeCatalogue() {
		out = append(out, s.Shape)
	}
	slices.SortFunc(out, func(a, b Shape) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// shape is a catalogue entry with the behaviour behind it.
type shape struct {
	Shape
	mode      string   // The app mode it forces, or "" for the scenario's.
	form      []field  // nil for the default form, which depends on the mode.
	opening   string   // opening_statement.
	suggested []string // suggested_questions.
	perUser   bool     // A conversation belongs to the user who started it, as in Dify (§5.1).
}

// field is a start form variable.
type field struct {
	typ, variable, label string
	required             bool
	def                  any // The default; nil sends none.
	maxLength            int // Characters for text, files for file-list.
	options              []string
	imageOnly            bool // allowed_file_types ["image"] rather than ["image", "document"].
}

func (f field) isFile() bool { return f.typ == "file" || f.typ == "file-list" }

var (
	question = field{typ: "paragraph", variable: "question", label: "Question", required: true, maxLength: 1000}
	photo    = field{typ: "file", variable: "photo", label: "Photo", required: true, maxLength: 48, imageOnly: true}
	language = field{typ: "select", variable: "language", label: "Reply language", required: true, maxLength: 48,
		options: []string{"English", "Japanese", "German"}}
	optional = func(f field) field { f.required = false; return f }
)

// The suggested questions of the shapes that ask for text, so that a bot can offer them as choices.
var suggestedQuestions = []string{"What is in this photo?", "Is anything damaged?", "Read the text in the photo."}

func shapeCatalogue() map[string]*shape {
	textDefault := question
	textDefault.def = "Describe this photo."
	selectDefault := language
	selectDefault.def = "English"
	list := []*shape{
		{Shape: Shape{DefaultShape, "Today's app: an optional paragraph query and an optional image file photo (chat apps: photo only)."}},
		{Shape: Shape{"required_text", "A required paragraph question and a required image file photo, with suggested questions."},
			form: []field{question, photo}, suggested: suggestedQuestions},
		{Shape: Shape{"optional_text", "An optional paragraph question and a required image file photo."},
			form: []field{optional(question), photo}},
		{Shape: Shape{"text_default", "A required paragraph question whose default is \"Describe this photo.\", and a required image file photo."},
			form: []field{textDefault, photo}},
		{Shape: Shape{"file_list", "A required file-list photos of at most 3 images, and an optional paragraph question."},
			form: []field{{typ: "file-list", variable: "photos", label: "Photos", required: true, maxLength: 3, imageOnly: true},
				optional(question)}},
		{Shape: Shape{"select_default", "A required select language (English, Japanese, German; default English), a required photo and an optional question."},
			form: []field{selectDefault, photo, optional(question)}},
		{Shape: Shape{"required_select", "A required select language (English, Japanese, German) without a default, a required photo and an optional question."},
			form: []field{language, photo, optional(question)}},
		{Shape: Shape{"chatflow_per_user", "A chatflow (advanced-chat) whose conversations belong to the user who started them: another user's conversation_id answers 404 \"Conversation Not Exists.\"."},
			mode: "advanced-chat", perUser: true, opening: "Send me a photo and ask about it.", suggested: suggestedQuestions},
		{Shape: Shape{"chatbot", "A Chatbot app (mode chat): runs no workflow, streams message deltas then message_end; conversations belong to their user."},
			mode: "chat", perUser: true, opening: "Send me a photo and ask about it."},
		{Shape: Shape{"agent", "A New Agent app (mode agent): blocking answers 400 \"Agent App only supports streaming response mode.\"; streams agent_message deltas, a closing message with the whole answer, then message_end."},
			mode: "agent", perUser: true, opening: "Ask me about your photo."},
	}
	m := make(map[string]*shape, len(list))
	for _, s := range list {
		m[s.Name] = s
	}
	return m
}

// formFor is the start form the app has in this mode and dialect. 0.6 had no file variables.
func (sh *shape) formFor(mode string, d dialect) []field {
	form := sh.form
	if form == nil {
		if mode == "workflow" {
			form = append(form, field{typ: "paragraph", variable: "query", label: "Query", def: "", maxLength: 4000})
		}
		form = append(form, field{typ: "file", variable: "photo", label: "Photo", def: "", imageOnly: true})
	}
	if d == v06 {
		form = slices.DeleteFunc(slices.Clone(form), field.isFile)
	}
	return form
}

// render writes a form item the way /v1/parameters does: {"<type>": {...}}. The default shape keeps the fake's
// original compact items; the other shapes send what 1.x keeps of the Start node's variable.
func (sh *shape) render(f field) obj {
	fileKeys := func() []kv {
		types := []string{"image"}
		if !f.imageOnly {
			types = append(types, "document")
		}
		return []kv{{"allowed_file_types", types}, {"allowed_file_extensions", []string{}},
			{"allowed_file_upload_methods", []string{"local_file", "remote_url"}}}
	}
	if sh.form == nil {
		o := obj{{"label", f.label}, {"variable", f.variable}, {"required", f.required}, {"default", f.def}}
		if f.isFile() {
			o = append(o, fileKeys()...)
		} else {
			o = append(o, kv{"max_length", f.maxLength})
		}
		return obj{{f.typ, o}}
	}
	o := obj{{"variable", f.variable}, {"label", f.label}, {"type", f.typ}, {"max_length", f.maxLength},
		{"required", f.required}, {"options", append([]string{}, f.options...)}}
	if f.def != nil {
		o = append(o, kv{"default", f.def})
	}
	if f.isFile() {
		o = append(o, fileKeys()...)
	}
	return obj{{f.typ, o}}
}

// received is what a run got through its start form, for the answer to echo.
type received struct {
	text  string     // The first text variable's value.
	files []*fileRef // Every file, from the variables and then from files (sys.files).
	echo  []string   // One "name=value" per variable given, in form order, then "files=N files" for sys.files.
}

// checkInputs validates a run's inputs against the start form as Dify's app generator does (§3.1): every
// variable's value first (required, type, select options, text length), in form order, then the files.
// Unknown inputs are ignored. Like Dify's service API (as far as the source shows), the fake does not fill in a
// variable's default: a caller that wants it must send it.
func (s *Sim) checkInputs(form []field, ra runArgs) (*received, *apiErr) {
	got := &received{}
	present := func(f field) (json.RawMessage, bool) {
		raw, ok := ra.inputs[f.variable]
		return raw, ok && string(raw) != "null"
	}
	for _, f := range form {
		raw, ok := present(f)
		var v any
		if ok {
			json.Unmarshal(raw, &v)
		}
		if f.required && (!ok || v == "" || isEmptyList(v)) {
			return nil, ptr(errInvalid(f.variable + " is required in input form"))
		}
		if !ok {
			continue
		}
		switch f.typ {
		case "text-input", "paragraph", "select":
			str, isStr := v.(string)
			switch {
			case !isStr:
				return nil, ptr(errInvalid(fmt.Sprintf("(type '%s') %s in input form must be a string", f.typ, f.variable)))
			case f.typ == "select" && str != "" && !slices.Contains(f.options, str):
				return nil, ptr(errInvalid(fmt.Sprintf("%s in input form must be one of the following: %s", f.variable, pyList(f.options))))
			case f.typ != "select" && f.maxLength > 0 && utf8.RuneCountInString(str) > f.maxLength:
				return nil, ptr(errInvalid(fmt.Sprintf("%s in input form must be less than %d characters", f.variable, f.maxLength)))
			}
			if f.typ != "select" && got.text == "" {
				got.text = str
			}
		case "number":
			if _, isNum := v.(float64); !isNum {
				str, _ := v.(string)
				if _, err := strconv.ParseFloat(strings.TrimSpace(str), 64); err != nil {
					return nil, ptr(errInvalid(f.variable + " in input form must be a valid number"))
				}
			}
		case "checkbox":
			if _, isBool := v.(bool); !isBool {
				return nil, ptr(errInvalid(f.variable + " in input form must be a boolean"))
			}
		case "file":
			if _, isObj := v.(map[string]any); !isObj {
				return nil, ptr(errInvalid(f.variable + " in input form must be a file"))
			}
		case "file-list":
			if l, isList := v.([]any); !isList || !allObjects(l) {
				return nil, ptr(errInvalid(f.variable + " in input form must be a list of files"))
			}
		}
	}
	for _, f := range form {
		raw, ok := present(f)
		if !ok {
			continue
		}
		switch f.typ {
		case "file":
			ref, e := s.fileRef(raw, f.variable, f.imageOnly)
			if e != nil {
				return nil, e
			}
			got.files = append(got.files, ref)
			got.echo = append(got.echo, f.variable+"="+nFiles(1))
		case "file-list":
			var items []json.RawMessage
			json.Unmarshal(raw, &items)
			if f.maxLength > 0 && len(items) > f.maxLength {
				return nil, ptr(errInvalid(fmt.Sprintf("Number of files exceeds the maximum limit %d", f.maxLength)))
			}
			for _, item := range items {
				ref, e := s.fileRef(item, f.variable, f.imageOnly)
				if e != nil {
					return nil, e
				}
				got.files = append(got.files, ref)
			}
			got.echo = append(got.echo, f.variable+"="+nFiles(len(items)))
		default:
			got.echo = append(got.echo, f.variable+"="+string(compactJSON(raw)))
		}
	}
	for _, raw := range ra.files {
		ref, e := s.fileRef(raw, "", false)
		if e != nil {
			return nil, e
		}
		got.files = append(got.files, ref)
	}
	if len(ra.files) > 0 {
		got.echo = append(got.echo, "files="+nFiles(len(ra.files)))
	}
	return got, nil
}

func nFiles(n int) string {
	if n == 1 {
		return "1 file"
	}
	return fmt.Sprintf("%d files", n)
}

func isEmptyList(v any) bool {
	l, ok := v.([]any)
	return ok && len(l) == 0
}

func allObjects(l []any) bool {
	for _, v := range l {
		if _, ok := v.(map[string]any); !ok {
			return false
		}
	}
	return true
}

// pyList writes a list of strings as Python's str() of a list does: ['a', 'b'].
func pyList(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = "'" + strings.ReplaceAll(v, "'", `\'`) + "'"
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func compactJSON(raw json.RawMessage) []byte {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return raw
	}
	return v1.encode(v)
}

// SetShape switches the app shape. Conversations and uploads are kept.
func (s *Sim) SetShape(name string) error {
	sh, ok := s.shapes[name]
	if !ok {
		return fmt.Errorf("unknown shape %q (GET /_sim/shapes lists them)", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sh = sh
	return nil
}

// Shape returns the name of the current app shape.
func (s *Sim) Shape() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sh.Name
}

// ForgetConversations deletes every conversation, as deleting them in Dify (or a database reset) does: later
// messages with their ids answer 404 "Conversation Not Exists.".
func (s *Sim) ForgetConversations() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.convs = recent[string]{}
}

// getShape answers GET /_sim/shape.
func (s *Sim) getShape(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, v1, http.StatusOK, obj{{"shape", s.Shape()}})
}

// putShape answers PUT /_sim/shape {"shape":"NAME"}.
func (s *Sim) putShape(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Shape string `json:"shape"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&in); err != nil {
		writeJSON(w, v1, http.StatusBadRequest, obj{{"error", `body must be {"shape":"NAME"}: ` + err.Error()}})
		return
	}
	if err := s.SetShape(in.Shape); err != nil {
		writeJSON(w, v1, http.StatusBadRequest, obj{{"error", err.Error()}})
		return
	}
	writeJSON(w, v1, http.StatusOK, obj{{"shape", in.Shape}})
}

// listShapes answers GET /_sim/shapes with the shape catalogue.
func (s *Sim) listShapes(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, v1, http.StatusOK, Shapes())
}
