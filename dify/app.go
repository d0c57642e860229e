package dify

import (
	"context"
	"encoding/json"
	"fmt"
)

// Info is GET /info: the app's name and, since 1.x, its mode.
type Info struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Tags        []string `json:"tags"`
	Mode        string   `json:"mode"` // workflow, advanced-chat, chat, agent-chat, completion; empty before 1.x.
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

// Parameters is GET /parameters: the start form and upload limits.
type Parameters struct {
	UserInputForm    []InputField     `json:"user_input_form"`
	SystemParameters SystemParameters `json:"system_parameters"`
}

// SystemParameters holds Dify's upload limits in MB (0 when the version does not say).
type SystemParameters struct {
	FileSizeLimit      flexInt `json:"file_size_limit"`
	ImageFileSizeLimit flexInt `json:"image_file_size_limit"`
}

// ImageLimitBytes is Dify's image upload limit in bytes, or 0 when unknown.
func (s SystemParameters) ImageLimitBytes() int64 { return int64(s.ImageFileSizeLimit) << 20 }

// InputField is one variable of the start form.
type InputField struct {
	Type             string   `json:"type"` // text-input, paragraph, select, number, file, file-list, …
	Variable         string   `json:"variable"`
	Label            string   `json:"label"`
	Required         bool     `json:"required"`
	MaxLength        int      `json:"max_length"`
	AllowedFileTypes []string `json:"allowed_file_types"`
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
		type plain InputField
		var p plain
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("dify: form item %q: %w", typ, err)
		}
		*f = InputField(p)
		f.Type = typ // The key is authoritative; the inner "type" is absent in some versions.
	}
	return nil
}

// AcceptsImages reports whether a file variable takes images.
func (f InputField) AcceptsImages() bool {
	if f.Type != "file" && f.Type != "file-list" {
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

// Parameters reads the app's start form and upload limits.
func (c *Client) Parameters(ctx context.Context) (*Parameters, error) {
	var out Parameters
	if err := c.call(ctx, c.retry, canRepeat, func() error { return c.getJSON(ctx, "get parameters", "/parameters", &out) }); err != nil {
		return nil, err
	}
	return &out, nil
}
