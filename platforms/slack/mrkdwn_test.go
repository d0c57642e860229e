package slack_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	slackadapter "github.com/difybot/difybot/platforms/slack"
)

func TestToMrkdwn(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"bold", "a **bold** word and __this__", "a *bold* word and *this*"},
		{"italic", "an *italic* word, _also_", "an _italic_ word, _also_"},
		{"strike", "~~gone~~", "~gone~"},
		{"link", "see [the docs](https://docs.dify.ai/en?a=1&b=2)", "see <https://docs.dify.ai/en?a=1&amp;b=2|the docs>"},
		{"link to itself", "[https://x.io](https://x.io)", "<https://x.io>"},
		{"image", "![chart](https://x.io/c.png)", "<https://x.io/c.png|chart>"},
		{"relative link", "[file](/files/abc.png)", "file (/files/abc.png)"},
		{"autolink", "<https://x.io/a>", "<https://x.io/a>"},
		{"heading", "## Result **now**", "*Result now*"},
		{"bullets", "- one\n* two\n  + nested", "• one\n• two\n  • nested"},
		{"numbered list kept", "1. one\n2. two", "1. one\n2. two"},
		{"quote", "> quoted *text*", "> quoted _text_"},
		{"rule", "---", "──────────"},
		{"escapes", "a < b && c > d", "a &lt; b &amp;&amp; c &gt; d"},
		{"html is shown, not run", "<b>hi</b>", "&lt;b&gt;hi&lt;/b&gt;"},
		{"inline code", "run `a < b **x**`", "run `a &lt; b **x**`"},
		{"code block", "```python\nif a < b:\n    print(\"**x**\")\n```", "```\nif a &lt; b:\n    print(\"**x**\")\n```"},
		{"unclosed code block", "```\ncode", "```\ncode\n```"},
		{"inline triple backticks", "```x```", "`x`"},
		{"arithmetic stays", "2 * 3 * 4", "2 * 3 * 4"},
		{"snake_case stays", "call my_func_name now", "call my_func_name now"},
		{"Japanese bold", "これは**重要**です", "これは\u200b*重要*\u200bです"},
		{"Windows newlines", "a\r\n**b**", "a\n*b*"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := slackadapter.ToMrkdwn(tt.in); got != tt.want {
				t.Errorf("ToMrkdwn(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestSplitMrkdwn(t *testing.T) {
	para := func(c string, n int) string { return strings.Repeat(c, n) }
	code := "```\n" + strings.Repeat("line of code\n", 20) + "```"
	tests := []struct {
		name  string
		in    string
		limit int
		want  []string
	}{
		{"fits", "hello\n\nworld", 100, []string{"hello\n\nworld"}},
		{"between paragraphs", para("a", 60) + "\n\n" + para("b", 60), 100, []string{para("a", 60), para("b", 60)}},
		{"code block kept whole", para("a", 50) + "\n" + code, 300, []string{para("a", 50), code}},
		{"long line at the last space", "aaaa bbbb cccc", 9, []string{"aaaa bbbb", "cccc"}},
		{"never inside a link", "see the <https://x.io/a|page> now", 22, []string{"see the", "<https://x.io/a|page>", "now"}},
		{"never inside an entity", "aaaaaaa &amp; b", 9, []string{"aaaaaaa", "&amp; b"}},
		{"empty", "  \n", 100, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := slackadapter.SplitMrkdwn(tt.in, tt.limit)
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Errorf("SplitMrkdwn\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// A code block too long for one message is cut between lines, and every piece is a closed block of its own.
func TestSplitMrkdwnReopensLongCodeBlocks(t *testing.T) {
	code := "```\n" + strings.Repeat("0123456789\n", 100) + "```"
	parts := slackadapter.SplitMrkdwn(code, 200)
	if len(parts) < 6 {
		t.Fatalf("%d parts, want the block cut in pieces", len(parts))
	}
	var lines int
	for i, p := range parts {
		if utf8.RuneCountInString(p) > 200 {
			t.Errorf("part %d is %d long, over 200", i, utf8.RuneCountInString(p))
		}
		if !strings.HasPrefix(p, "```\n") || !strings.HasSuffix(p, "\n```") {
			t.Errorf("part %d is not a closed code block: %q", i, p)
		}
		lines += strings.Count(strings.TrimSuffix(strings.TrimPrefix(p, "```\n"), "\n```"), "0123456789")
	}
	if lines != 100 {
		t.Errorf("%d code lines across the parts, want 100", lines)
	}
}

func TestPlainText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"<@U06BQ4XLKD2> what is this?", "what is this?"},
		{"hey <@U06BQ4XLKD2> there", "hey there"},
		{"ask <@U02ABCDEF12|alice> and <!here>", "ask @alice and @here"},
		{"<mailto:a@b.co|a@b.co> <http://x.io|x.io>", "a@b.co x.io"},
		{"a &lt;tag&gt; &amp; more", "a <tag> & more"},
	}
	for _, tt := range tests {
		if got := slackadapter.PlainText(tt.in, "U06BQ4XLKD2"); got != tt.want {
			t.Errorf("PlainText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
