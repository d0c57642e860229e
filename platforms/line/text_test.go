package line

import (
	"strings"
	"testing"
)

func TestPlainText(t *testing.T) {
	tests := []struct {
		name, md, want string
	}{
		{"plain stays", "A cat on a sofa.", "A cat on a sofa."},
		{"bold and italic", "This is **very** important and *quite* _subtle_.", "This is very important and quite subtle."},
		{"underscored bold", "__Note__: done", "Note: done"},
		{"snake_case and 2*3*4 stay", "use max_image_bytes and 2*3*4", "use max_image_bytes and 2*3*4"},
		{"strikethrough", "~~old~~ new", "old new"},
		{"headings", "# Result\n## Details ##\ntext", "Result\nDetails\ntext"},
		{"link", "See [the docs](https://example.com/a_b_c) now.", "See the docs (https://example.com/a_b_c) now."},
		{"link whose text is the URL", "[example.com](https://example.com)", "https://example.com"},
		{"bold link text", "[**Dify**](https://dify.ai)", "Dify (https://dify.ai)"},
		{"image", "![a red cat](https://x.test/cat.png)", "a red cat (https://x.test/cat.png)"},
		{"autolink", "<https://example.com/x_y>", "https://example.com/x_y"},
		{"inline code keeps markers", "run `a*b*c` and `__init__`", "run a*b*c and __init__"},
		{"escapes", `2 \* 3 \_ok\_`, "2 * 3 _ok_"},
		{"bullets", "- one\n* two\n  + nested", "• one\n• two\n  • nested"},
		{"tasks", "- [ ] todo\n- [x] done", "☐ todo\n☑ done"},
		{"ordered list stays", "1. first\n2. second", "1. first\n2. second"},
		{"rule", "above\n\n---\n\nbelow", "above\n\n――――――――\n\nbelow"},
		{"code block verbatim without fences", "```go\nx := **y**\n```\nafter", "x := **y**\nafter"},
		{"table", "| a | b |\n|---|:-:|\n| **1** | 2 |", "a | b\n1 | 2"},
		{"br", "one<br>two<br/>three", "one\ntwo\nthree"},
		{"blank runs collapse", "a\n\n\n\nb\r\n", "a\n\nb"},
		{"japanese", "**結果**: 猫です。", "結果: 猫です。"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := plainText(tt.md); got != tt.want {
				t.Errorf("plainText(%q)\n got %q\nwant %q", tt.md, got, tt.want)
			}
		})
	}
}

func TestSplit(t *testing.T) {
	tests := []struct {
		name  string
		text  string
		limit int
		want  []string
	}{
		{"fits", "short", 10, []string{"short"}},
		{"at a paragraph", "aaaa bbb\n\ncccc dd", 12, []string{"aaaa bbb", "cccc dd"}},
		{"at a space", "aaaa bbbb cccc", 10, []string{"aaaa bbbb", "cccc"}},
		{"hard cut without spaces", "abcdefghij", 4, []string{"abcd", "efgh", "ij"}},
		// An emoji is two UTF-16 units and is never cut in half.
		{"surrogate pairs", "😀😀😀", 3, []string{"😀", "😀", "😀"}},
		{"japanese sentences", "猫です。犬です。鳥です。", 8, []string{"猫です。犬です。", "鳥です。"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := split(tt.text, tt.limit)
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("split(%q, %d) = %q, want %q", tt.text, tt.limit, got, tt.want)
			}
			for _, p := range got {
				if units(p) > tt.limit {
					t.Errorf("part %q is %d units, over %d", p, units(p), tt.limit)
				}
			}
		})
	}
}

func TestMessagesCapsLongAnswers(t *testing.T) {
	words := strings.Repeat("word ", 1000*maxMessages+500) // 25 messages' worth.
	got := messages(words)
	if len(got) != maxMessages {
		t.Fatalf("%d messages, want %d", len(got), maxMessages)
	}
	last := got[len(got)-1]
	if !strings.HasSuffix(last, truncationMark) || units(last) > maxTextUnits {
		t.Errorf("last message ends %q (%d units)", last[len(last)-20:], units(last))
	}
}
