package bot_test

import (
	"encoding/json"
	"testing"

	"github.com/difybot/difybot/bot"
)

func TestStripThink(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Hello", "Hello"},
		{"<think>\nweighing it\n</think>\n\nA cat.", "A cat."},
		{"<THINK a=1>x</think>A <think>y</think>cat.", "A cat."},
		{"<think>still thinking, the run stopped", ""},
		{"  <think>\npartial", ""},
		{"reasoning the template opened\n</think>\nA cat.", "A cat."},
		{"Cats think a lot.", "Cats think a lot."},
		{"A\n\n<think>x</think>\n\n\n\nB", "A\n\nB"},
	}
	for _, tt := range tests {
		if got := bot.StripThink(tt.in); got != tt.want {
			t.Errorf("StripThink(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestOutputTexts(t *testing.T) {
	file := `{"dify_model_identity":"__dify__file__","type":"image","url":"/files/x.png"}`
	tests := []struct {
		name, outputs, keys, want, key string
	}{
		{"auto takes text", `{"count":3,"text":"Hi"}`, "auto", "Hi", "text"},
		{"auto strips reasoning", `{"answer":"<think>x</think>Hi"}`, "", "Hi", "answer"},
		{"auto: the only string", `{"count":3,"summary":"Hi"}`, "auto", "Hi", "summary"},
		{"auto: an object under result", `{"result":{"label":"cat","n":2}}`, "auto", "**label**: cat\n**n**: 2", "result"},
		{"auto: the only non-file output", `{"image":` + file + `,"data":{"a":[1,2]}}`, "auto", "**a**:\n  - 1\n  - 2", "data"},
		{"auto skips a file under text", `{"text":` + file + `,"note":"Done"}`, "auto", "Done", "note"},
		{"keys in order", `{"a":"first","b":"second","c":"third"}`, "c,a", "third\n\nfirst", "c,a"},
		{"a named file gives no text", `{"image":` + file + `,"text":"Hi"}`, "image", "", "image"},
		{"a missing key is skipped", `{"a":"A"}`, "zz,a", "A", "a"},
		{"list of objects", `{"items":[{"name":"cat","p":0.9},{"name":"dog","p":0.1}]}`, "items", "- name: cat, p: 0.9\n- name: dog, p: 0.1", "items"},
		{"nested", `{"r":{"box":{"x":1},"tags":["a"],"note":"two\nlines"}}`, "r", "**box**:\n  **x**: 1\n**tags**:\n  - a\n**note**:\n  two\n  lines", "r"},
		{"nothing usable", `{"a":1,"b":2}`, "auto", "", ""},
	}
	for _, tt := range tests {
		var m map[string]any
		if err := json.Unmarshal([]byte(tt.outputs), &m); err != nil {
			t.Fatal(err)
		}
		text, key := bot.OutputTexts(m, json.RawMessage(tt.outputs), tt.keys)
		if text != tt.want || key != tt.key {
			t.Errorf("%s: OutputTexts = %q (%s), want %q (%s)", tt.name, text, key, tt.want, tt.key)
		}
		// Without the raw JSON (0.x run detail), keys come sorted but the texts are the same for one key.
		if text2, _ := bot.OutputTexts(m, nil, tt.keys); len(m) == 1 && text2 != tt.want && tt.name != "nested" {
			t.Errorf("%s: from the map alone %q", tt.name, text2)
		}
	}
}
