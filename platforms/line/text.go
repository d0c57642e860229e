package line

import (
	"regexp"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// LINE's limits for text messages.
const (
	maxTextUnits   = 5000 // Characters per text message, counted in UTF-16 code units as LINE counts them.
	maxPerCall     = 5    // Messages per reply or push call.
	maxMessages    = 20   // Messages per answer; beyond this the answer is cut, to spare the push quota.
	truncationMark = "\n…"
)

// Patterns of the markdown Dify's models write. Code spans, links and escapes are set aside first, so that
// emphasis markers inside them (a URL's underscores, `a*b`) are left alone.
var (
	fenceRE     = regexp.MustCompile("^\\s*(```+|~~~+)")
	headingRE   = regexp.MustCompile(`^\s{0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$`)
	ruleRE      = regexp.MustCompile(`^\s{0,3}(?:(?:\*\s*){3,}|(?:-\s*){3,}|(?:_\s*){3,})$`)
	taskRE      = regexp.MustCompile(`^(\s*)[-*+]\s+\[([ xX])\]\s+`)
	bulletRE    = regexp.MustCompile(`^(\s*)[-*+]\s+`)
	tableSepRE  = regexp.MustCompile(`^\s*\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)*\|?\s*$`)
	tableRowRE  = regexp.MustCompile(`^\s*\|.*\|\s*$`)
	codeSpanRE  = regexp.MustCompile("(`+)(.+?)(`+)")
	imageRE     = regexp.MustCompile(`!\[([^\]]*)\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	linkRE      = regexp.MustCompile(`\[([^\]]+)\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	autoLinkRE  = regexp.MustCompile(`<((?:https?|mailto):[^>\s]+)>`)
	escapeRE    = regexp.MustCompile("\\\\([\\\\`*_{}\\[\\]()#+\\-.!~|>])")
	brRE        = regexp.MustCompile(`(?i)<br\s*/?>`)
	boldStarRE  = regexp.MustCompile(`\*\*(\S(?:.*?\S)?)\*\*`)
	boldUnderRE = regexp.MustCompile(`(^|\W)__(\S(?:.*?\S)?)__(\W|$)`)
	strikeRE    = regexp.MustCompile(`~~(\S(?:.*?\S)?)~~`)
	italStarRE  = regexp.MustCompile(`(^|[^\w*])\*(\S(?:[^*]*?\S)?)\*([^\w*]|$)`)
	italUnderRE = regexp.MustCompile(`(^|\W)_(\S(?:[^_]*?\S)?)_(\W|$)`)
	blankRunRE  = regexp.MustCompile(`\n{3,}`)
)

// plainText converts the markdown Dify produces into text LINE shows well: LINE renders no markup, so
// emphasis markers go, headings become plain lines, bullets become "•", and links keep their URL as
// "text (url)". Code blocks are kept verbatim without their fences.
func plainText(md string) string {
	md = strings.ReplaceAll(md, "\r\n", "\n")
	lines := strings.Split(md, "\n")
	out := make([]string, 0, len(lines))
	inCode := false
	fence := ""
	for _, line := range lines {
		if f := fenceRE.FindStringSubmatch(line); f != nil {
			switch {
			case !inCode:
				inCode, fence = true, f[1][:1]
				continue
			case strings.Trim(strings.TrimSpace(line), fence) == "":
				inCode = false
				continue
			}
		}
		if inCode {
			out = append(out, line)
			continue
		}
		switch {
		case ruleRE.MatchString(line):
			out = append(out, "――――――――")
			continue
		case tableSepRE.MatchString(line) && strings.Contains(line, "|"):
			continue
		case headingRE.MatchString(line):
			line = headingRE.ReplaceAllString(line, "$1")
		case tableRowRE.MatchString(line):
			cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
			for i := range cells {
				cells[i] = strings.TrimSpace(cells[i])
			}
			line = strings.Join(cells, " | ")
		}
		if m := taskRE.FindStringSubmatch(line); m != nil {
			box := "☐ "
			if m[2] != " " {
				box = "☑ "
			}
			line = m[1] + box + line[len(m[0]):]
		} else if m := bulletRE.FindStringSubmatch(line); m != nil && !ruleRE.MatchString(line) {
			line = m[1] + "• " + line[len(m[0]):]
		}
		out = append(out, inline(line))
	}
	text := strings.Join(out, "\n")
	text = blankRunRE.ReplaceAllString(text, "\n\n")
	return strings.TrimSpace(text)
}

// inline strips emphasis and rewrites links in one line of text outside code blocks.
func inline(s string) string {
	var kept []string
	hold := func(v string) string {
		kept = append(kept, v)
		return "\x00" + strconv.Itoa(len(kept)-1) + "\x00"
	}
	s = escapeRE.ReplaceAllStringFunc(s, func(m string) string { return hold(m[1:]) })
	s = codeSpanRE.ReplaceAllStringFunc(s, func(m string) string {
		sm := codeSpanRE.FindStringSubmatch(m)
		if sm[1] != sm[3] {
			return m
		}
		return hold(strings.TrimSpace(sm[2]))
	})
	s = imageRE.ReplaceAllStringFunc(s, func(m string) string {
		sm := imageRE.FindStringSubmatch(m)
		return hold(labelled(emphasis(sm[1]), sm[2]))
	})
	s = linkRE.ReplaceAllStringFunc(s, func(m string) string {
		sm := linkRE.FindStringSubmatch(m)
		return hold(labelled(emphasis(sm[1]), sm[2]))
	})
	s = autoLinkRE.ReplaceAllStringFunc(s, func(m string) string { return hold(m[1 : len(m)-1]) })
	s = brRE.ReplaceAllString(s, "\n")
	s = emphasis(s)
	for i := len(kept) - 1; i >= 0; i-- {
		s = strings.ReplaceAll(s, "\x00"+strconv.Itoa(i)+"\x00", kept[i])
	}
	return s
}

// emphasis removes bold, italic and strikethrough markers, keeping the words.
func emphasis(s string) string {
	s = boldStarRE.ReplaceAllString(s, "$1")
	s = boldUnderRE.ReplaceAllString(s, "$1$2$3")
	s = strikeRE.ReplaceAllString(s, "$1")
	// Each pass takes every other match where neighbours share a boundary character; two passes cover those.
	for range 2 {
		s = italStarRE.ReplaceAllString(s, "$1$2$3")
		s = italUnderRE.ReplaceAllString(s, "$1$2$3")
	}
	return s
}

// labelled renders a link as "text (url)", or just the URL when the text says nothing more.
func labelled(text, url string) string {
	text = strings.TrimSpace(text)
	if text == "" || text == url || strings.TrimPrefix(strings.TrimPrefix(url, "https://"), "http://") == text {
		return url
	}
	return text + " (" + url + ")"
}

// units is the length of s as LINE counts it: UTF-16 code units.
func units(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

// split cuts text into messages of at most limit UTF-16 units, preferring a paragraph break, then a line
// break, then a space in the second half of the window, so that sentences stay whole where they can.
func split(text string, limit int) []string {
	var parts []string
	for units(text) > limit {
		cut, n := 0, 0
		for i, r := range text {
			if n+utf16.RuneLen(r) > limit {
				break
			}
			n += utf16.RuneLen(r)
			cut = i + utf8.RuneLen(r)
		}
		window := text[:cut]
		at := cut
		for _, sep := range []string{"\n\n", "\n", "。", ". ", " ", "　"} {
			if i := strings.LastIndex(window, sep); i > 0 && units(window[:i]) >= limit/2 {
				at = i + len(sep)
				break
			}
		}
		if p := strings.TrimRight(text[:at], " \n"); p != "" {
			parts = append(parts, p)
		}
		text = strings.TrimLeft(text[at:], "\n")
	}
	if strings.TrimSpace(text) != "" {
		parts = append(parts, text)
	}
	return parts
}

// messages splits an answer into LINE text messages, at most maxMessages of them.
func messages(text string) []string {
	parts := split(text, maxTextUnits)
	if len(parts) <= maxMessages {
		return parts
	}
	parts = parts[:maxMessages]
	last := parts[maxMessages-1]
	for units(last)+units(truncationMark) > maxTextUnits {
		_, size := utf8.DecodeLastRuneInString(last)
		last = last[:len(last)-size]
	}
	parts[maxMessages-1] = last + truncationMark
	return parts
}
