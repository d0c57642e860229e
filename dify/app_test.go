package dify

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// parametersFrom serves a /v1/parameters fixture from testdata and reads it through the client.
func parametersFrom(t *testing.T, fixture string) *Parameters {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("testdata", fixture))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	p, err := newTestClient(t, srv.URL+"/v1").Parameters(context.Background())
	if err != nil {
		t.Fatalf("Parameters(%s): %v", fixture, err)
	}
	return p
}

func TestParametersFixtures(t *testing.T) {
	tests := []struct {
		fixture     string
		opening     string
		suggested   []string
		form        []InputField
		fileLimit   int64
		imageLimit  int64
		uploadLimit int64
	}{
		{fixture: "parameters_required.json", opening: "Send a photo of the device and ask your question about it.",
			suggested: []string{"What is in this photo?", "Is anything damaged?", "How do I fix this?"},
			form: []InputField{
				{Type: "paragraph", Variable: "question", Label: "Question", Required: true, MaxLength: 1000, Default: ""},
				{Type: "file", Variable: "photo", Label: "Photo", Required: true, MaxLength: 48,
					AllowedFileTypes: []string{"image"}, AllowedFileUploadMethods: []string{"local_file", "remote_url"}},
			}, fileLimit: 15, imageLimit: 10, uploadLimit: 10},
		{fixture: "parameters_file_list.json",
			form: []InputField{
				{Type: "file-list", Variable: "photos", Label: "Photos", Required: true, MaxLength: 3,
					AllowedFileTypes: []string{"image", "custom"}, AllowedFileExtensions: []string{".heic", ".tiff"},
					AllowedFileUploadMethods: []string{"local_file"}},
				{Type: "text-input", Variable: "note", Label: "Note", MaxLength: 48},
			}, fileLimit: 15, imageLimit: 10, uploadLimit: 10},
		{fixture: "parameters_select.json",
			form: []InputField{
				{Type: "select", Variable: "language", Label: "Reply language", Required: true, MaxLength: 48,
					Default: "日本語", Options: []string{"English", "日本語", "Deutsch"}},
				{Type: "paragraph", Variable: "question", Label: "Question", MaxLength: 500},
			}, fileLimit: 15, imageLimit: 10, uploadLimit: 10},
		{fixture: "parameters_number.json",
			form: []InputField{
				{Type: "number", Variable: "max_items", Label: "Max items", Required: true, MaxLength: 48, Default: 5.0},
				{Type: "number", Variable: "threshold", Label: "Threshold", Default: "0.75"},
			}, fileLimit: 15, imageLimit: 10, uploadLimit: 10},
		{fixture: "parameters_checkbox.json",
			form: []InputField{
				{Type: "checkbox", Variable: "detailed", Label: "Detailed answer", Default: true},
				{Type: "checkbox", Variable: "agree", Label: "I agree", Required: true},
			}, fileLimit: 15, imageLimit: 10, uploadLimit: 10},
		// 0.6: json.dumps spacing, nulls, max_length as a string, a limit as a string, fields left out.
		{fixture: "parameters_0_6.json",
			form: []InputField{
				{Type: "text-input", Variable: "name", Label: "Name", Required: true, MaxLength: 32},
				{Type: "select", Variable: "tone", Label: "Tone", Default: ""},
				{Type: "paragraph", Variable: "query", Label: "Query"},
			}, imageLimit: 10},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			p := parametersFrom(t, tt.fixture)
			if p.OpeningStatement != tt.opening || !reflect.DeepEqual(p.SuggestedQuestions, tt.suggested) {
				t.Errorf("opening %q suggested %q, want %q %q", p.OpeningStatement, p.SuggestedQuestions, tt.opening, tt.suggested)
			}
			if len(p.UserInputForm) != len(tt.form) {
				t.Fatalf("form %+v, want %+v", p.UserInputForm, tt.form)
			}
			for i, f := range p.UserInputForm {
				if !reflect.DeepEqual(f, tt.form[i]) {
					t.Errorf("field %d:\n got %#v\nwant %#v", i, f, tt.form[i])
				}
			}
			s := p.SystemParameters
			if int64(s.FileSizeLimit) != tt.fileLimit || int64(s.ImageFileSizeLimit) != tt.imageLimit ||
				int64(s.WorkflowFileUploadLimit) != tt.uploadLimit || s.ImageLimitBytes() != tt.imageLimit<<20 {
				t.Errorf("system parameters %+v", s)
			}
		})
	}
}

func TestInputFieldHelpers(t *testing.T) {
	p := parametersFrom(t, "parameters_required.json")
	question, photo := p.UserInputForm[0], p.UserInputForm[1]
	if !question.IsText() || question.IsFile() || question.AcceptsImages() || question.MaxFiles() != 0 {
		t.Errorf("question helpers: %+v", question)
	}
	if photo.IsText() || !photo.IsFile() || !photo.AcceptsImages() || photo.MaxFiles() != 1 {
		t.Errorf("photo helpers (max_length 48 is a leftover, not a file count): %+v", photo)
	}
	if photos := parametersFrom(t, "parameters_file_list.json").UserInputForm[0]; photos.MaxFiles() != 3 || !photos.AcceptsImages() {
		t.Errorf("photos: MaxFiles %d", photos.MaxFiles())
	}

	defaults := []struct {
		f    InputField
		text string
		ok   bool
	}{
		{InputField{Default: "日本語"}, "日本語", true},
		{InputField{Default: ""}, "", false}, // What Dify stores when nobody set a default.
		{InputField{}, "", false},
		{InputField{Default: 5.0}, "5", true},
		{InputField{Default: 0.75}, "0.75", true},
		{InputField{Default: true}, "true", true},
		{InputField{Default: false}, "false", true},
	}
	for _, d := range defaults {
		if text, ok := d.f.DefaultText(); text != d.text || ok != d.ok {
			t.Errorf("DefaultText(%#v) = %q, %v; want %q, %v", d.f.Default, text, ok, d.text, d.ok)
		}
	}
	// Object defaults (newer variable references) have no simple form and read as none.
	var f InputField
	if err := json.Unmarshal([]byte(`{"paragraph":{"variable":"q","default":{"type":"variable","selector":["a"]}}}`), &f); err != nil || f.Default != nil {
		t.Errorf("object default: %v %#v", err, f.Default)
	}
	if err := json.Unmarshal([]byte(`{"paragraph":{},"select":{}}`), &f); err == nil {
		t.Error("a form item with two keys decoded")
	}
}

func TestInputFieldValidate(t *testing.T) {
	form := func(fixture string) map[string]InputField {
		m := map[string]InputField{}
		for _, f := range parametersFrom(t, fixture).UserInputForm {
			m[f.Variable] = f
		}
		return m
	}
	req, list, sel, num, box := form("parameters_required.json"), form("parameters_file_list.json"),
		form("parameters_select.json"), form("parameters_number.json"), form("parameters_checkbox.json")
	file := map[string]any{"type": "image", "transfer_method": "remote_url", "url": "https://example.com/a.png"}
	tests := []struct {
		field InputField
		value any
		want  string // A part of the error; "" for none.
	}{
		{req["question"], "What is this?", ""},
		{req["question"], nil, `start variable "question" (paragraph): is required`},
		{req["question"], "", "is required"},
		{req["question"], 42.0, "must be a string, not a number"},
		{req["question"], strings.Repeat("あ", 1000), ""},
		{req["question"], strings.Repeat("あ", 1001), "1001 characters long, more than its max length 1000"},
		{req["photo"], file, ""},
		{req["photo"], LocalImage("72fa9618-8f89-4a37-9b33-7e1178a24a67"), ""},
		{req["photo"], "a.png", `start variable "photo" (file): must be a file object, not a string`},
		{req["photo"], nil, "is required"},
		{list["photos"], []any{file, file, file}, ""},
		{list["photos"], []any{file, file, file, file}, "has 4 files, more than its limit 3"},
		{list["photos"], []any{}, "is required"},
		{list["photos"], []any{"a.png"}, "must be a list of file objects"},
		{list["note"], nil, ""},
		{list["note"], strings.Repeat("x", 49), "more than its max length 48"},
		{sel["language"], "Deutsch", ""},
		{sel["language"], "français", `start variable "language" (select): "français" is not one of the options "English", "日本語", "Deutsch"`},
		{sel["language"], strings.Repeat("x", 60), "is not one of the options"}, // A select's max_length is a leftover.
		{sel["language"], true, "must be a string, not a bool"},
		{num["max_items"], 3.0, ""},
		{num["max_items"], "3", ""},
		{num["max_items"], " 2.5 ", ""},
		{num["max_items"], json.Number("7"), ""},
		{num["max_items"], "three", `start variable "max_items" (number): "three" is not a number`},
		{num["max_items"], true, "must be a number, not a bool"},
		{num["max_items"], nil, "is required"},
		{num["threshold"], nil, ""},
		{box["detailed"], false, ""},
		{box["agree"], true, ""},
		{box["agree"], false, ""}, // A value, unlike a missing one.
		{box["agree"], nil, `start variable "agree" (checkbox): is required`},
		{box["agree"], "yes", "must be true or false, not a string"},
		{InputField{Type: "json_object", Variable: "cfg"}, map[string]any{"a": 1.0}, ""},
	}
	for _, tt := range tests {
		err := tt.field.Validate(tt.value)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s.Validate(%#v) = %v, want nil", tt.field.Variable, tt.value, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s.Validate(%#v) = %v, want an error with %q", tt.field.Variable, tt.value, err, tt.want)
		}
		var ie *InputError
		if err != nil && (!errors.As(err, &ie) || ie.Variable != tt.field.Variable || ie.Type != tt.field.Type) {
			t.Errorf("%s.Validate(%#v): %#v is not an *InputError naming the field", tt.field.Variable, tt.value, err)
		}
	}
	// DIFY_INPUTS as the bot reads it: one JSON object, checked field by field.
	var fixed map[string]any
	json.Unmarshal([]byte(`{"language":"English","max_items":"4","agree":true}`), &fixed)
	for k, v := range fixed {
		f := sel[k]
		if f.Variable == "" {
			f = num[k]
		}
		if f.Variable == "" {
			f = box[k]
		}
		if err := f.Validate(v); err != nil {
			t.Errorf("DIFY_INPUTS %s: %v", k, err)
		}
	}
}
