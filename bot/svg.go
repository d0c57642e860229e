package bot

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// An SVG is a document, not only a picture: it can carry scripts, event handlers and embedded HTML, which run
// wherever Dify (or whoever views Dify's files) renders it. The check step reads the whole (size-capped) file
// as XML and refuses an SVG with active content rather than stripping it: a cleaned copy would still be a file
// the person did not send.

// svgMaxDepth bounds element nesting; real drawings nest a few dozen levels.
const svgMaxDepth = 512

// svgActive are elements that run code or embed another document, by lower-case local name: a prefix
// (<svg:script>, <x:script>) does not hide them.
var svgActive = map[string]string{
	"script":        "a script (<script>)",
	"handler":       "a script (<handler>)",
	"listener":      "an event listener (<listener>)",
	"foreignobject": "embedded HTML (<foreignObject>)",
	"iframe":        "an embedded page (<iframe>)",
	"frame":         "an embedded page (<frame>)",
	"embed":         "an embedded object (<embed>)",
	"object":        "an embedded object (<object>)",
	"applet":        "an embedded object (<applet>)",
}

// svgRisk reads an SVG and says what active content it has: reason is "" for a clean drawing. svg is false when
// the file is not an SVG document at all (its root element is not <svg>), in which case reason is "".
func svgRisk(r io.Reader) (reason string, svg bool, err error) {
	br := bufio.NewReader(r)
	if bom, _ := br.Peek(3); bytes.Equal(bom, []byte("\xef\xbb\xbf")) {
		_, _ = br.Discard(3)
	}
	d := xml.NewDecoder(br)
	d.Strict = true
	d.Entity = xml.HTMLEntity // &nbsp; and friends decode (browsers know them); declared entities are refused below.
	var charsetErr error
	d.CharsetReader = func(label string, in io.Reader) (io.Reader, error) {
		switch strings.ToLower(label) {
		case "iso-8859-1", "latin1", "latin-1", "windows-1252", "us-ascii", "ascii":
			return &latin1Reader{r: bufio.NewReader(in)}, nil
		}
		charsetErr = fmt.Errorf("the SVG is in the %q encoding, which the bot does not read", label)
		return nil, charsetErr
	}
	depth, style, rooted := 0, 0, false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return "", rooted, nil
		}
		if err != nil {
			var se *xml.SyntaxError
			switch {
			case charsetErr != nil:
				return charsetErr.Error(), true, nil
			case !rooted && errors.As(err, &se):
				return "", false, nil // Not XML before any element: not an SVG.
			case errors.As(err, &se):
				return fmt.Sprintf("the SVG is not well-formed XML (line %d: %s)", se.Line, se.Msg), true, nil
			}
			return "", false, err // The file could not be read.
		}
		switch t := tok.(type) {
		case xml.StartElement:
			name := strings.ToLower(t.Name.Local)
			if !rooted {
				rooted = true
				if name != "svg" {
					return "", false, nil
				}
			}
			if depth++; depth > svgMaxDepth {
				return fmt.Sprintf("the SVG nests elements more than %d deep", svgMaxDepth), true, nil
			}
			if what, ok := svgActive[name]; ok {
				return "the SVG contains " + what, true, nil
			}
			if why := svgAttrRisk(t.Attr); why != "" {
				return why, true, nil
			}
			if name == "style" {
				style++
			}
		case xml.EndElement:
			depth--
			if strings.EqualFold(t.Name.Local, "style") && style > 0 {
				style--
			}
		case xml.CharData:
			if style > 0 && scriptURL(string(t)) != "" {
				return "the SVG's style sheet has a " + scriptURL(string(t)) + " link", true, nil
			}
		case xml.ProcInst:
			if strings.EqualFold(t.Target, "xml-stylesheet") {
				return "the SVG loads a style sheet (<?xml-stylesheet?>), which can carry a script", true, nil
			}
		case xml.Directive:
			if bytes.Contains(bytes.ToUpper(t), []byte("ENTITY")) {
				return "the SVG declares XML entities (<!ENTITY>), which can hide content", true, nil
			}
		}
	}
}

// svgAttrRisk says what is wrong with an element's attributes: an event handler (onload=…), an animation that
// sets one, or a link that runs script or embeds another document.
func svgAttrRisk(attrs []xml.Attr) string {
	for _, a := range attrs {
		name := strings.ToLower(a.Name.Local)
		switch {
		case strings.HasPrefix(name, "on"):
			return fmt.Sprintf("the SVG has an event attribute (%s=)", a.Name.Local)
		case name == "attributename" && strings.HasPrefix(strings.ToLower(strings.TrimSpace(a.Value)), "on"):
			return fmt.Sprintf("the SVG animates an event attribute (attributeName=%q)", a.Value)
		}
		if u := scriptURL(a.Value); u != "" {
			return fmt.Sprintf("the SVG contains a %s link (%s=)", u, a.Name.Local)
		}
		if embeddedDocument(a.Value) {
			return fmt.Sprintf("the SVG embeds another document in a data: URL (%s=)", a.Name.Local)
		}
	}
	return ""
}

// squeeze is s lower-cased without the whitespace and control characters that browsers skip inside a URL's
// scheme ("java\tscript:"). Character references are already decoded by the XML reader.
func squeeze(s string) string {
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r == 0x7f {
			return -1
		}
		return r
	}, strings.ToLower(s))
}

// scriptURL returns the scheme of a script URL in s ("javascript:"), or "".
func scriptURL(s string) string {
	v := squeeze(s)
	for _, scheme := range []string{"javascript:", "vbscript:", "livescript:"} {
		if strings.Contains(v, scheme) {
			return scheme
		}
	}
	return ""
}

// embeddedDocument reports a data: URL of a document type (HTML, SVG, XML), which can carry its own scripts.
// Raster images in data: URLs are fine.
func embeddedDocument(s string) bool {
	v := squeeze(s)
	for _, t := range []string{"data:text/", "data:image/svg", "data:application/"} {
		if strings.Contains(v, t) {
			return true
		}
	}
	return false
}

// latin1Reader decodes ISO-8859-1 (and reads windows-1252 and ASCII as it) into UTF-8 for the XML reader.
type latin1Reader struct {
	r   *bufio.Reader
	buf []byte
}

func (l *latin1Reader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(l.buf) == 0 {
			if n > 0 && l.r.Buffered() == 0 {
				break // Do not wait for more input with something to return.
			}
			b, err := l.r.ReadByte()
			if err != nil {
				if n > 0 {
					break
				}
				return 0, err
			}
			l.buf = utf8.AppendRune(l.buf[:0], rune(b))
		}
		c := copy(p[n:], l.buf)
		l.buf, n = l.buf[c:], n+c
	}
	return n, nil
}
