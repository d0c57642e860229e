package line

import (
	"strings"

	"github.com/difybot/difybot/bot"
)

// LINE's limits for an image message: JPEG or PNG, the original at most 10 MB and its preview at most 1 MB,
// both at public https URLs of at most 2,000 characters, which LINE fetches itself.
const (
	maxImageBytes   = 10 << 20
	maxPreviewBytes = 1 << 20
	maxImageURL     = 2000
)

// part is one message of an answer: a text, or an image of the workflow's.
type part struct {
	text  string
	image *bot.ReplyFile
}

// parts lays out an answer: its text messages, then one image message per picture LINE can show, then a text
// listing the other files as links. Without PUBLIC_URL LINE cannot fetch anything from the bot: the text then
// says which files the answer had.
func (a *Adapter) parts(text string, files []bot.ReplyFile) []part {
	var out []part
	for _, t := range messages(text) {
		out = append(out, part{text: t})
	}
	var links, unshown []string
	for i := range files {
		f := &files[i]
		switch {
		case f.URL == "":
			unshown = append(unshown, f.Name)
		case showable(f) && len(out) < maxMessages:
			out = append(out, part{image: f})
		default:
			links = append(links, "📎 "+f.Name+"\n"+f.URL)
		}
	}
	if len(unshown) > 0 {
		links = append(links, a.text.noPublicURL(unshown))
	}
	if len(links) > 0 {
		for _, t := range split(strings.Join(links, "\n\n"), maxTextUnits) {
			out = append(out, part{text: t})
		}
	}
	return out
}

// showable reports a file LINE can show as an image message.
func showable(f *bot.ReplyFile) bool {
	if f.MIMEType != "image/jpeg" && f.MIMEType != "image/png" {
		return false
	}
	preview := f.Size
	if f.PreviewSize > 0 {
		preview = f.PreviewSize
	}
	return f.Size <= maxImageBytes && preview <= maxPreviewBytes && strings.HasPrefix(f.URL, "https://") &&
		len(f.URL) <= maxImageURL && len(f.PreviewURL) <= maxImageURL
}

// texts are the adapter's own words; answers and diagnoses come from the pipeline in its language.
type texts struct {
	// noPublicURL says the answer had files LINE cannot be given (the bot has no PUBLIC_URL).
	noPublicURL func(names []string) string
}

var (
	textsEN = texts{noPublicURL: func(names []string) string {
		return "📎 The answer includes " + strings.Join(names, ", ") + ", which cannot be shown in LINE yet (an administrator needs to set the bot's PUBLIC_URL)."
	}}
	textsJA = texts{noPublicURL: func(names []string) string {
		return "📎 回答にはファイル（" + strings.Join(names, "、") + "）がありますが、LINE ではまだ表示できません（管理者がボットの PUBLIC_URL を設定する必要があります）。"
	}}
)

// textsFor gives the adapter's texts in l.
func textsFor(l bot.Lang) texts {
	if l.Japanese() {
		return textsJA
	}
	return textsEN
}
