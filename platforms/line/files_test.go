package line

import (
	"strings"
	"testing"

	"github.com/difybot/difybot/bot"
)

func TestPartsOfAnAnswerWithFiles(t *testing.T) {
	file := func(name, mime string, size, preview int64, url string) bot.ReplyFile {
		f := bot.ReplyFile{OutputFile: bot.OutputFile{Name: name, MIMEType: mime, Size: size, PreviewSize: preview}, URL: url, PreviewURL: url}
		if preview > 0 {
			f.PreviewURL = url + "&v=preview"
		}
		return f
	}
	const u = "https://bot.example.com/files/f_1?exp=1&sig=x"
	tests := []struct {
		name string
		file bot.ReplyFile
		want string // "image" or the link text's start.
	}{
		{"a small PNG", file("a.png", "image/png", 500<<10, 0, u), "image"},
		{"a large JPEG with its preview", file("a.jpg", "image/jpeg", 3<<20, 200<<10, u), "image"},
		{"over 10 MB", file("big.jpg", "image/jpeg", 12<<20, 300<<10, u), "📎 big.jpg\n" + u},
		{"no preview could be made", file("b.png", "image/png", 3<<20, 0, u), "📎 b.png\n" + u},
		{"a GIF", file("c.gif", "image/gif", 1000, 0, u), "📎 c.gif\n" + u},
		{"a CSV", file("d.csv", "text/csv", 100, 0, u), "📎 d.csv\n" + u},
		{"plain http", file("e.png", "image/png", 100, 0, "http://bot.example.com/files/f"), "📎 e.png\nhttp://bot.example.com/files/f"},
		{"no PUBLIC_URL", file("f.png", "image/png", 100, 0, ""), "📎 The answer includes f.png, which cannot be shown in LINE yet"},
	}
	a := &Adapter{text: textsFor("en")}
	for _, tt := range tests {
		ps := a.parts("Here.", []bot.ReplyFile{tt.file})
		if len(ps) != 2 || ps[0].text != "Here." {
			t.Fatalf("%s: parts %+v", tt.name, ps)
		}
		got := ps[1].text
		if ps[1].image != nil {
			got = "image"
			if ps[1].image.PreviewURL != tt.file.PreviewURL {
				t.Errorf("%s: preview %q", tt.name, ps[1].image.PreviewURL)
			}
		}
		if !strings.HasPrefix(got, tt.want) {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
