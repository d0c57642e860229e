package dify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Info is GET /info: the app's name and, since 1.x, its mode.
type Info struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Tags        []string `json:"tags"`
	Mode        string   `json:"mode"` // workflow, advanced-chat, chat, agent-chat, agent, completion; empty before 1.x.
	AuthorName  string   `json:"author_name"`
}

// Info reads the app's name and mode. It is the cheapest call that proves the URL, the key and the app.
func (c *Client) Info(ctx context.Context) (*Info, error) {
	var out Info
	if err := c.call(ctx, c.retry, canRepeat, func() error { return c.getJSON(ctx, "get app info", "/info", &out) }); err != nil {
		return nil, err
	}
	return &out, nil
}

// Parameters is GET /parameters: the start form, what a chat app suggests, and the upload limits.
type Parameters struct {
	OpeningStatement string `json:"opening_statement"`
	// SuggestedQuestions are the app's suggested first messages, in the app's order; empty when it has none.
	SuggestedQuestions []string         `json:"suggested_questions"`
	UserInputForm      []InputField     `json:"user_input_form"`
	SystemParameters   SystemParameters `json:"system_parameters"`
}

// UnmarshalJSON tolerates null and non-string entries in suggested_questions, which the app's editor stores as typed.
func (p *Parameters) UnmarshalJSON(b []byte) error {
	type plain Parameters
	var aux struct {
		plain
		OpeningStatement   json.RawMessage `json:"opening_statement"`
		SuggestedQuestions json.RawMessage `json:"suggested_questions"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*p = Parameters(aux.plain)
	p.OpeningStatement, _ = scalarText(aux.OpeningStatement)
	p.SuggestedQuestions = textList(aux.SuggestedQuestions)
	return nil
}

// SystemParameters holds Dify's upload limits (0 when the version does not say). The sizes are in MB.
type SystemParameters struct {
	FileSizeLimit      flexInt `json:"file_size_limit"`
	ImageFileSizeLimit flexInt `json:"image_file_size_limit"`
	AudioFileSizeLimit flexInt `json:"audio_file_size_limit"`
	VideoFileSizeLimit flexInt `json:"video_file_size_limit"`
	// WorkflowFileUploadLimit is the most files one workflow run takes (1.x; 10 by default).
	WorkflowFileUploadLimit flexInt `json:"workflow_file_upload_limit"`
}

// ImageLimitBytes is Dify's image upload limit in bytes, or 0 when unknown.
func (s SystemParameters) ImageLimitBytes() int64 { return int64(s.ImageFileSizeLimit) << 20 }

// The start form's variable types, as the keys of user_input_form name them.
const (
	FieldTextInput = "text-input"
	FieldParagraph = "paragraph"
	FieldSelect    = "select"
	FieldNumber    = "number"
	FieldCheckbox  = "checkbox"
	FieldFile      = "file"
	FieldFileList  = "file-list"
)

// InputField is one variable of the start form.
//
// Dify's versions disagree on the details: fields go missing or are null, max_length and numbers arrive as
// strings, options may be null. Decoding tolerates all of them; a missing value reads as its zero value.
type InputField struct {
	Type     string `json:"type"` // text-input, paragraph, select, number, checkbox, file, file-list, …
	Variable string `json:"variable"`
	Label    string `json:"label"`
	Required bool   `json:"required"`
	// MaxLength is the most characters for text-input and paragraph, and the most files for file-list
	// (Dify stores both in max_length); 0 means no limit. Other types may carry a leftover value: ignore it.
	MaxLength int `json:"max_length"`
	// Default is the start form's default as JSON decoded it: a string, float64 or bool; nil when there is none.
	// DefaultText gives its string form.
	Default any `json:"default"`
	// Options are a select's choices, in order.
	Options                  []string `json:"options"`
	AllowedFileTypes         []string `json:"allowed_file_types"`          // image, document, audio, video, custom.
	AllowedFileExtensions    []string `json:"allowed_file_extensions"`     // With the dot, such as ".png", for type custom.
	AllowedFileUploadMethods []string `json:"allowed_file_upload_methods"` // local_file, remote_url.
}

// UnmarshalJSON reads Dify's form item, an object with one key naming the type: {"paragraph": {...}}.
func (f *InputField) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	if len(m) != 1 {
		return fmt.Errorf("dify: form item has %d keys, want 1", len(m))
	}
	for typ, raw := range m {
		var p struct {
			Variable                 json.RawMessage `json:"variable"`
			Label                    json.RawMessage `json:"label"`
			Required                 json.RawMessage `json:"required"`
			MaxLength                json.RawMessage `json:"max_length"`
			Default                  json.RawMessage `json:"default"`
			Options                  json.RawMessage `json:"options"`
			AllowedFileTypes         json.RawMessage `json:"allowed_file_types"`
			AllowedFileExtensions    json.RawMessage `json:"allowed_file_extensions"`
			AllowedFileUploadMethods json.RawMessage `json:"allowed_file_upload_methods"`
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("dify: form item %q: %w", typ, err)
		}
		// The key is authoritative; the inner "type" is absent in some versions.
		*f = InputField{Type: typ, Required: truthy(p.Required), MaxLength: count(p.MaxLength),
			Default: defaultValue(p.Default), Options: textList(p.Options), AllowedFileTypes: textList(p.AllowedFileTypes),
			AllowedFileExtensions: textList(p.AllowedFileExtensions), AllowedFileUploadMethods: textList(p.AllowedFileUploadMethods)}
		f.Variable, _ = scalarText(p.Variable)
		f.Label, _ = scalarText(p.Label)
	}
	return nil
}

// scalarText is the string form of a JSON string, number or bool; false for null, absent, objects and arrays.
func scalarText(raw json.RawMessage) (string, bool) {
	var v any
	if len(raw) == 0 || json.Unmarshal(raw, &v) != nil {
		return "", false
	}
	return textOf(v)
}

func textOf(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case json.Number:
		return v.String(), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}

// textList reads a list of scalars as strings, skipping nulls; anything but a list gives nil.
func textList(raw json.RawMessage) []string {
	var vs []any
	if len(raw) == 0 || json.Unmarshal(raw, &vs) != nil {
		return nil
	}
	var out []string
	for _, v := range vs {
		if s, ok := textOf(v); ok {
			out = append(out, s)
		}
	}
	return out
}

// truthy reads true, "true" or 1 as true, because some versions store flags as strings.
func truthy(raw json.RawMessage) bool {
	s, _ := scalarText(raw)
	return s == "true" || s == "1"
}

// count reads a non-negative whole number given as a number or a numeric string; anything else is 0.
func count(raw json.RawMessage) int {
	s, _ := scalarText(raw)
	n, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || n < 0 || n > math.MaxInt32 {
		return 0
	}
	return int(n)
}

// defaultValue keeps a scalar default; objects and arrays (Dify's newer variable defaults) have no simple form.
func defaultValue(raw json.RawMessage) any {
	var v any
	if len(raw) == 0 || json.Unmarshal(raw, &v) != nil {
		return nil
	}
	switch v.(type) {
	case string, float64, bool:
		return v
	}
	return nil
}

// DefaultText returns the default's string form, and whether the field has a default: an empty string, which is
// what Dify stores when nobody set one, counts as none. A number reads as Go formats it (3, 0.5), a bool as true
// or false.
func (f InputField) DefaultText() (string, bool) {
	s, ok := textOf(f.Default)
	if !ok || s == "" {
		return "", false
	}
	return s, true
}

// IsText reports whether the field takes free text (text-input or paragraph).
func (f InputField) IsText() bool { return f.Type == FieldTextInput || f.Type == FieldParagraph }

// IsFile reports whether the field takes files (file or file-list).
func (f InputField) IsFile() bool { return f.Type == FieldFile || f.Type == FieldFileList }

// MaxFiles is how many files the field takes: 1 for file, max_length for file-list (0: Dify sets no limit of
// its own; SystemParameters.WorkflowFileUploadLimit still applies), and 0 for fields that take no files.
func (f InputField) MaxFiles() int {
	switch f.Type {
	case FieldFile:
		return 1
	case FieldFileList:
		return f.MaxLength
	}
	return 0
}

// AcceptsImages reports whether a file variable takes images.
func (f InputField) AcceptsImages() bool {
	if !f.IsFile() {
		return false
	}
	if len(f.AllowedFileTypes) == 0 {
		return true
	}
	for _, t := range f.AllowedFileTypes {
		if t == "image" || t == "custom" {
			return true
		}
	}
	return false
}

// InputError is a value that does not fit a start form field; Validate returns it.
type InputError struct {
	Variable string // The field's variable name.
	Type     string // The field's type.
	Reason   string // What is wrong, such as `"fr" is not one of the options "English", "Japanese"`.
}

func (e *InputError) Error() string {
	return fmt.Sprintf("start variable %q (%s): %s", e.Variable, e.Type, e.Reason)
}

// Validate checks a fixed value for the field, such as one from DIFY_INPUTS decoded by encoding/json, the way
// Dify checks inputs: a required field must have a value; text-input, paragraph and select take a string (a
// select one of its options, text at most MaxLength characters); number takes a number or a numeric string;
// checkbox takes a bool; file takes one file object, file-list a list of at most MaxFiles. Types it does not know
// take anything. The error is an *InputError naming the field.
func (f InputField) Validate(v any) error {
	bad := func(format string, args ...any) error {
		return &InputError{Variable: f.Variable, Type: f.Type, Reason: fmt.Sprintf(format, args...)}
	}
	if isEmpty(v) {
		if f.Required {
			return bad("is required")
		}
		return nil
	}
	switch f.Type {
	case FieldTextInput, FieldParagraph, FieldSelect:
		s, ok := v.(string)
		switch {
		case !ok:
			return bad("must be a string, not %s", jsonKind(v))
		case f.Type == FieldSelect && len(f.Options) > 0 && !slices.Contains(f.Options, s):
			return bad("%q is not one of the options %s", s, quoteList(f.Options))
		case f.Type != FieldSelect && f.MaxLength > 0 && utf8.RuneCountInString(s) > f.MaxLength:
			return bad("is %d characters long, more than its max length %d", utf8.RuneCountInString(s), f.MaxLength)
		}
	case FieldNumber:
		switch n := v.(type) {
		case float64, float32, int, int64, int32, uint, uint64, uint32:
		case json.Number:
			if _, err := n.Float64(); err != nil {
				return bad("%q is not a number", n.String())
			}
		case string:
			if _, err := strconv.ParseFloat(strings.TrimSpace(n), 64); err != nil {
				return bad("%q is not a number", n)
			}
		default:
			return bad("must be a number, not %s", jsonKind(v))
		}
	case FieldCheckbox:
		if _, ok := v.(bool); !ok {
			return bad("must be true or false, not %s", jsonKind(v))
		}
	case FieldFile:
		if !isFileObject(v) {
			return bad("must be a file object, not %s", jsonKind(v))
		}
	case FieldFileList:
		list, ok := v.([]any)
		if !ok || !all(list, isFileObject) {
			return bad("must be a list of file objects")
		}
		if f.MaxLength > 0 && len(list) > f.MaxLength {
			return bad("has %d files, more than its limit %d", len(list), f.MaxLength)
		}
	}
	return nil
}

// isEmpty is what Dify reads as "not given": absent, null, an empty string or an empty list.
func isEmpty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case []any:
		return len(v) == 0
	}
	return false
}

// isFileObject accepts a file reference as a run's inputs carry it: an object with a transfer_method, or a FileRef.
func isFileObject(v any) bool {
	switch v := v.(type) {
	case map[string]any:
		_, ok := v["transfer_method"]
		return ok
	case FileRef, *FileRef:
		return true
	}
	return false
}

func all[T any](s []T, f func(T) bool) bool {
	for _, v := range s {
		if !f(v) {
			return false
		}
	}
	return true
}

func jsonKind(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a bool"
	case float64, float32, int, int64, int32, uint, uint64, uint32, json.Number:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func quoteList(s []string) string {
	var b bytes.Buffer
	for i, o := range s {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(o))
	}
	return b.String()
}

// Parameters reads the app's start form and upload limits.
func (c *Client) Parameters(ctx context.Context) (*Parameters, error) {
	var out Parameters
	if err := c.call(ctx, c.retry, canRepeat, func() error { return c.getJSON(ctx, "get parameters", "/parameters", &out) }); err != nil {
		return nil, err
	}
	return &out, nil
}
