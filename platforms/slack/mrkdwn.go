package slack

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// escapeText escapes Slack's three control characters. Slack decodes them everywhere, code included.
var escapeText = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace

// escapeEmphasis escapes text shown inside *…*, such as a node title: an asterisk in it would end the bold.
func escapeEmphasis(s string) string {
	return strings.ReplaceAll(escapeText(s), "*", "∗")
}

var (
	fenceLine   = regexp.MustCompile("^\\s*(```+|~~~+)")
	headingLine = regexp.MustCompile(`^\s{0,3}#{1,6}\s+(.*?)(\s+#+)?\s*$`)
	ruleLine    = regexp.MustCompile(`^\s{0,3}([-*_])(\s*([-*_])){2,}\s*$`)
	bulletLine  = regexp.MustCompile(`^(\s*)[-*+]\s+(.*)$`)
	quoteLine   = regexp.MustCompile(`^\s{0,3}>\s?(.*)$`)
)

// toMrkdwn converts the markdown Dify produces to Slack's mrkdwn: **bold** and __bold__ become *bold*, *italic*
// becomes _italic_, ~~strike~~ ~strike~, [text](url) <url|text>, headings bold lines, bullets •, and code
// blocks stay code blocks (without their language tag, which Slack would show). &, < and > are escaped.
func toMrkdwn(md string) string {
	md = strings.ReplaceAll(md, "\r\n", "\n")
	lines := strings.Split(md, "\n")
	out := make([]string, 0, len(lines))
	fence := ""
	for _, line := range lines {
		if fence != "" {
			if t := strings.TrimSpace(line); strings.HasPrefix(t, fence) && strings.Trim(t, fence[:1]) == "" {
				fence = ""
				out = append(out, "```")
				continue
			}
			out = append(out, escapeText(line))
			continue
		}
		if m := fenceLine.FindStringSubmatch(line); m != nil && !(m[1][0] == '`' && strings.Contains(line[len(m[0]):], "`")) {
			fence = m[1]
			out = append(out, "```")
			continue
		}
		out = append(out, convertLine(line))
	}
	if fence != "" {
		out = append(out, "```") // An unclosed block would turn the rest of the thread's message into code.
	}
	return strings.TrimRight(strings.Join(out, "\n"), "\n")
}

func convertLine(line string) string {
	if m := headingLine.FindStringSubmatch(line); m != nil {
		t := strings.NewReplacer("**", "", "__", "").Replace(m[1])
		if strings.TrimSpace(t) == "" {
			return ""
		}
		return "*" + inline(t) + "*"
	}
	if ruleLine.MatchString(line) {
		return "──────────"
	}
	if m := bulletLine.FindStringSubmatch(line); m != nil {
		return m[1] + "• " + inline(m[2])
	}
	if m := quoteLine.FindStringSubmatch(line); m != nil {
		return ">" + " " + inline(m[1]) // A literal '>' at the start of a line is how mrkdwn quotes.
	}
	return inline(line)
}

// inline converts one line's spans.
func inline(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '`':
			n := runLen(s[i:], '`')
			if j := strings.Index(s[i+n:], s[i:i+n]); j >= 0 {
				b.WriteString("`" + escapeText(s[i+n:i+n+j]) + "`")
				i += n + j + n
				continue
			}
			b.WriteString(s[i : i+n])
			i += n
			continue
		case c == '!' && strings.HasPrefix(s[i:], "!["):
			if text, url, n, ok := parseLink(s[i+1:]); ok {
				b.WriteString(slackLink(url, text))
				i += 1 + n
				continue
			}
		case c == '[':
			if text, url, n, ok := parseLink(s[i:]); ok {
				b.WriteString(slackLink(url, text))
				i += n
				continue
			}
		case c == '<':
			if j := strings.IndexByte(s[i:], '>'); j > 0 && isURL(s[i+1:i+j]) {
				b.WriteString(slackLink(s[i+1:i+j], ""))
				i += j + 1
				continue
			}
		case (c == '*' || c == '_' || c == '~') && strings.HasPrefix(s[i+1:], string(c)):
			if inner, ok := delimited(s[i+2:], s[i:i+2], c == '_'); ok {
				mark := "*"
				if c == '~' {
					mark = "~"
				}
				end := i + 2 + len(inner) + 2
				writeEmphasis(&b, mark, inline(inner), s[end:])
				i = end
				continue
			}
		case c == '*':
			if inner, ok := delimited(s[i+1:], "*", false); ok && !strings.HasPrefix(inner, "*") {
				end := i + 1 + len(inner) + 1
				writeEmphasis(&b, "_", inline(inner), s[end:])
				i = end
				continue
			}
		}
		switch c {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		default:
			b.WriteByte(c)
		}
		i++
	}
	return b.String()
}

// delimited finds the span up to the closing marker, as markdown's emphasis does: the span neither starts nor
// ends with a space. With intraword false a closing marker may touch a letter (これは**重要**です is bold);
// underscores may not (snake_case_names stay as they are).
func delimited(s, marker string, intraword bool) (string, bool) {
	if s == "" || s[0] == ' ' {
		return "", false
	}
	for j := 0; j < len(s); {
		k := strings.Index(s[j:], marker)
		if k < 0 {
			return "", false
		}
		end := j + k
		if end > 0 && s[end-1] != ' ' && (!intraword || !wordRune(firstRune(s[end+len(marker):]))) {
			return s[:end], true
		}
		j = end + len(marker)
	}
	return "", false
}

// writeEmphasis writes mark+inner+mark. Slack formats a span only at a word boundary, so a zero-width space
// separates it from a letter or digit on either side (Japanese text has no spaces between words).
func writeEmphasis(b *strings.Builder, mark, inner, rest string) {
	before, _ := utf8.DecodeLastRuneInString(b.String())
	if b.Len() > 0 && wordRune(before) {
		b.WriteString(zwsp)
	}
	b.WriteString(mark + inner + mark)
	if wordRune(firstRune(rest)) {
		b.WriteString(zwsp)
	}
}

const zwsp = "\u200b"

func firstRune(s string) rune {
	r, _ := utf8.DecodeRuneInString(s)
	return r
}

func wordRune(r rune) bool {
	return r != utf8.RuneError && (unicode.IsLetter(r) || unicode.IsDigit(r))
}

func runLen(s string, c byte) int {
	n := 0
	for n < len(s) && s[n] == c {
		n++
	}
	return n
}

// parseLink reads [text](url "title") at the start of s and returns the bytes it used.
func parseLink(s string) (text, url string, n int, ok bool) {
	depth, end := 0, -1
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[':
			depth++
		case ']':
			depth--
			if depth == 0 {
				end = i
			}
		}
		if end >= 0 {
			break
		}
	}
	if end < 0 || end+1 >= len(s) || s[end+1] != '(' {
		return "", "", 0, false
	}
	depth = 0
	for i := end + 1; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				target := strings.TrimSpace(s[end+2 : i])
				if f := strings.Fields(target); len(f) > 0 {
					target = strings.Trim(f[0], "<>")
				}
				if target == "" {
					return "", "", 0, false
				}
				return s[1:end], target, i + 1, true
			}
		}
	}
	return "", "", 0, false
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "mailto:")
}

// slackLink writes <url|text>. A link Slack cannot open (a relative /files/… path, say) is shown as text.
func slackLink(url, text string) string {
	text = strings.NewReplacer("**", "", "__", "", "`", "").Replace(text)
	if !isURL(url) {
		if text == "" {
			return escapeText(url)
		}
		return escapeText(text) + " (" + escapeText(url) + ")"
	}
	u := escapeText(strings.ReplaceAll(url, "|", "%7C"))
	if text == "" || text == url {
		return "<" + u + ">"
	}
	return "<" + u + "|" + escapeText(text) + ">"
}

// clip cuts s to at most n runes, marking the cut.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// splitMrkdwn splits text into messages of at most limit runes: between paragraphs if it can, else between
// lines, else between words. A code block is kept whole when it fits in a message; when it does not, each
// piece is closed and reopened, so every message renders on its own.
func splitMrkdwn(text string, limit int) []string {
	text = strings.TrimSpace(text)
	if text == "" {
		return nil
	}
	var parts []string
	var cur strings.Builder
	curLen := 0
	flush := func() {
		if curLen > 0 {
			parts = append(parts, cur.String())
			cur.Reset()
			curLen = 0
		}
	}
	for _, blk := range splitBlocks(text) {
		n := utf8.RuneCountInString(blk.text)
		sepLen := utf8.RuneCountInString(blk.sep)
		if n <= limit {
			if curLen > 0 && curLen+sepLen+n <= limit {
				cur.WriteString(blk.sep)
				curLen += sepLen
			} else {
				flush()
			}
			cur.WriteString(blk.text)
			curLen += n
			continue
		}
		flush()
		pieces := fitBlock(blk.text, limit)
		parts = append(parts, pieces[:len(pieces)-1]...)
		last := pieces[len(pieces)-1]
		cur.WriteString(last)
		curLen = utf8.RuneCountInString(last)
	}
	flush()
	return parts
}

// block is a paragraph or a whole code block, with the separator that preceded it.
type block struct{ sep, text string }

func splitBlocks(text string) []block {
	var blocks []block
	var cur []string
	sep, pending := "", "" // pending is what separates the next block from the last one.
	inCode := false
	emit := func() {
		if len(cur) > 0 {
			blocks = append(blocks, block{sep: sep, text: strings.Join(cur, "\n")})
			cur, pending = nil, "\n"
		}
	}
	for _, line := range strings.Split(text, "\n") {
		fence := strings.HasPrefix(strings.TrimSpace(line), "```")
		switch {
		case inCode:
			cur = append(cur, line)
			if fence {
				inCode = false
				emit()
			}
		case fence:
			emit()
			sep, cur, inCode = pending, []string{line}, true
		case strings.TrimSpace(line) == "":
			emit()
			if pending != "" {
				pending = "\n\n"
			}
		default:
			if len(cur) == 0 {
				sep = pending
			}
			cur = append(cur, line)
		}
	}
	emit()
	return blocks
}

// fitBlock splits a block longer than limit by lines (and long lines by words or, failing that, by runes).
func fitBlock(text string, limit int) []string {
	lines := strings.Split(text, "\n")
	code := len(lines) >= 2 && strings.HasPrefix(lines[0], "```") && strings.HasPrefix(strings.TrimSpace(lines[len(lines)-1]), "```")
	budget := limit
	if code {
		lines = lines[1 : len(lines)-1]
		budget = limit - len("```\n\n```")
	}
	var pieces []string
	var cur []string
	curLen := 0
	flush := func() {
		if len(cur) == 0 {
			return
		}
		p := strings.Join(cur, "\n")
		if code {
			p = "```\n" + p + "\n```"
		}
		pieces = append(pieces, p)
		cur, curLen = nil, 0
	}
	for _, line := range lines {
		for _, seg := range cutLine(line, budget) {
			n := utf8.RuneCountInString(seg)
			if len(cur) > 0 && curLen+1+n > budget {
				flush()
			}
			if len(cur) > 0 {
				curLen++
			}
			cur = append(cur, seg)
			curLen += n
		}
	}
	flush()
	return pieces
}

// cutLine splits a line longer than limit runes, at the last space before the limit when there is one, and
// never inside a <link> or an &entity;.
func cutLine(line string, limit int) []string {
	var out []string
	r := []rune(line)
	for len(r) > limit {
		cut := limit
		for i := limit; i > limit/2; i-- {
			if r[i] == ' ' {
				cut = i
				break
			}
		}
		cut = safeCut(r, cut)
		out = append(out, strings.TrimRight(string(r[:cut]), " "))
		r = r[cut:]
		if len(r) > 0 && r[0] == ' ' {
			r = r[1:]
		}
	}
	return append(out, string(r))
}

// safeCut moves a cut back to before the '<' of a link or the '&' of an entity that it would split.
func safeCut(r []rune, cut int) int {
	for i := cut - 1; i > 0 && i >= cut-len("&amp;"); i-- {
		if r[i] == ';' {
			break
		}
		if r[i] == '&' {
			cut = i
			break
		}
	}
	for i := cut - 1; i > 0; i-- {
		if r[i] == '>' {
			break
		}
		if r[i] == '<' {
			return i // Text's own '<' is escaped, so this opens one of our links.
		}
	}
	return cut
}
