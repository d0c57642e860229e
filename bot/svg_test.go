package bot_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/dify/difytest"
)

// TestSVGWithActiveContentIsRefused sends each SVG of testdata/svg through the pipeline: a drawing passes to
// Dify as image/svg+xml; one with a script, an event attribute, embedded HTML, a script link, or the tricks
// that hide them (case, namespace prefixes, character references, entities) is refused at the check step
// with image_unsupported, the reason in the diagnosis, and nothing uploaded.
func TestSVGWithActiveContentIsRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file   string
		reason string // "" passes.
	}{
		{"clean.svg", ""},
		{"clean_inkscape.svg", ""}, // XML declaration, comment, DOCTYPE, &nbsp;, style, https link, data:image/png.
		{"clean_latin1.svg", ""},
		{"script.svg", "the SVG contains a script (<script>)"},
		{"script_latin1.svg", "the SVG contains a script (<script>)"},
		{"script_upper.svg", "the SVG contains a script (<script>)"},
		{"script_prefixed.svg", "the SVG contains a script (<script>)"},
		{"script_xhtml.svg", "the SVG contains a script (<script>)"},
		{"onload.svg", "the SVG has an event attribute (onload=)"},
		{"onclick_upper.svg", "the SVG has an event attribute (ONCLICK=)"},
		{"foreignobject.svg", "the SVG contains embedded HTML (<foreignObject>)"},
		{"foreignobject_case.svg", "the SVG contains embedded HTML (<foreignObject>)"},
		{"iframe.svg", "the SVG contains an embedded page (<iframe>)"},
		{"javascript_href.svg", "the SVG contains a javascript: link (href=)"},
		{"javascript_entities.svg", "the SVG contains a javascript: link (href=)"},
		{"javascript_animate.svg", "the SVG contains a javascript: link (to=)"},
		{"animate_event.svg", `the SVG animates an event attribute (attributeName="onmouseover")`},
		{"data_svg.svg", "the SVG embeds another document in a data: URL (href=)"},
		{"entity.svg", "the SVG declares XML entities"},
		{"stylesheet.svg", "the SVG loads a style sheet"},
		{"style_javascript.svg", "the SVG's style sheet has a javascript: link"},
		{"malformed.svg", "the SVG is not well-formed XML"},
		{"nested", "the SVG nests elements more than 512 deep"}, // Made below: a drawing that would fill memory.
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			b, err := os.ReadFile(filepath.Join("testdata", "svg", tt.file))
			if tt.file == "nested" {
				b, err = []byte(`<svg xmlns="http://www.w3.org/2000/svg">`+strings.Repeat("<g>", 1000)+strings.Repeat("</g>", 1000)+"</svg>"), nil
			}
			if err != nil {
				t.Fatal(err)
			}
			h := newHarness(t, "ok")
			r, err := h.send(t, h.withImage("SVG", b))
			if err != nil {
				t.Fatalf("Process: %v", err)
			}
			if tt.reason == "" {
				if r.Status != bot.RunSucceeded || !strings.Contains(r.Reply, "SVG") {
					t.Fatalf("clean SVG: status %s code %s reply %q diagnosis %+v", r.Status, r.Code, r.Reply, r.Diagnosis)
				}
				return
			}
			if r.Status != bot.RunFailed || r.Code != bot.CodeImageUnsupported || r.Diagnosis == nil {
				t.Fatalf("status %s code %s, want failed image_unsupported", r.Status, r.Code)
			}
			if !strings.Contains(r.Diagnosis.Detail, tt.reason) {
				t.Errorf("detail %q does not say %q", r.Diagnosis.Detail, tt.reason)
			}
			if n := h.sim.Calls(difytest.RouteUpload); n != 0 {
				t.Errorf("%d uploads to Dify of a refused SVG", n)
			}
			finals := h.plat.Finals()
			if len(finals) != 1 || !strings.Contains(finals[0].Text, "SVG drawings without scripts") {
				t.Errorf("the person got %+v", finals)
			}
		})
	}
}
