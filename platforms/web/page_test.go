package web_test

import (
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestPagePolicy: the page's CSP allows no inline code but its own script and style (by hash), nothing from
// elsewhere, no plugins, no <base>, no framing; every script and style the page has is allowed by it; and the
// page neither writes HTML from data nor relies on what the policy blocks (inline handlers, style attributes).
func TestPagePolicy(t *testing.T) {
	srv, _ := newChat(t, "")
	res, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	page := string(b)
	csp := res.Header.Get("Content-Security-Policy")
	if res.StatusCode != 200 || csp == "" {
		t.Fatalf("GET / = %d, CSP %q", res.StatusCode, csp)
	}
	if res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("X-Content-Type-Options = %q", res.Header.Get("X-Content-Type-Options"))
	}
	directives := map[string][]string{}
	for _, d := range strings.Split(csp, ";") {
		f := strings.Fields(d)
		if len(f) > 0 {
			directives[f[0]] = f[1:]
		}
	}
	for _, bad := range []string{"'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "*", "data:", "http:", "https:"} {
		for _, d := range []string{"script-src", "style-src", "default-src"} {
			for _, v := range directives[d] {
				if v == bad {
					t.Errorf("CSP %s allows %s: %q", d, bad, csp)
				}
			}
		}
	}
	for d, want := range map[string]string{"default-src": "'none'", "object-src": "'none'", "base-uri": "'none'",
		"frame-ancestors": "'none'", "connect-src": "'self'"} {
		if got := strings.Join(directives[d], " "); got != want {
			t.Errorf("CSP %s = %q, want %q (%q)", d, got, want, csp)
		}
	}
	if len(directives["script-src"]) == 0 || len(directives["style-src"]) == 0 {
		t.Fatalf("CSP %q has no script-src or style-src", csp)
	}

	allowed := func(directive, body string) bool {
		sum := sha256.Sum256([]byte(body))
		h := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
		for _, v := range directives[directive] {
			if v == h {
				return true
			}
		}
		return false
	}
	served := func(path, ctype string) bool {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200 && strings.Contains(res.Header.Get("Content-Type"), ctype)
	}
	srcAttr := regexp.MustCompile(`(?i)\ssrc="([^"]*)"`)
	hrefAttr := regexp.MustCompile(`(?i)\shref="([^"]*)"`)
	scripts := regexp.MustCompile(`(?is)<script([^>]*)>(.*?)</script>`).FindAllStringSubmatch(page, -1)
	if len(scripts) == 0 {
		t.Fatal("the page has no script")
	}
	for _, m := range scripts {
		if src := srcAttr.FindStringSubmatch(m[1]); src != nil {
			if !strings.HasPrefix(src[1], "/") || strings.HasPrefix(src[1], "//") || !served(src[1], "javascript") ||
				!slices.Contains(directives["script-src"], "'self'") {
				t.Errorf("script %s is not served here or not allowed by %q", src[1], csp)
			}
		} else if !allowed("script-src", m[2]) {
			t.Errorf("CSP %q does not allow the inline script starting %.60q", csp, m[2])
		}
	}
	for _, m := range regexp.MustCompile(`(?is)<style([^>]*)>(.*?)</style>`).FindAllStringSubmatch(page, -1) {
		if !allowed("style-src", m[2]) {
			t.Errorf("CSP %q does not allow the inline style starting %.60q", csp, m[2])
		}
	}
	for _, m := range regexp.MustCompile(`(?i)<link[^>]*>`).FindAllString(page, -1) {
		if href := hrefAttr.FindStringSubmatch(m); href != nil && strings.Contains(strings.ToLower(m), "stylesheet") &&
			(!served(href[1], "text/css") || !slices.Contains(directives["style-src"], "'self'")) {
			t.Errorf("stylesheet %s is not served here or not allowed by %q", href[1], csp)
		}
	}
	// What the policy would block, so the page must not need it.
	for name, re := range map[string]string{
		"an inline event handler":  `(?i)<[^>]+\son[a-z]+\s*=`,
		"a style attribute":        `(?i)<[^>]+\sstyle\s*=`,
		"a javascript: URL":        `(?i)javascript:`,
		"something from elsewhere": `(?i)(src|href)\s*=\s*"(https?:)?//`,
	} {
		if m := regexp.MustCompile(re).FindString(page); m != "" {
			t.Errorf("the page has %s: %s", name, m)
		}
	}
	// Data enters the page as text only: no HTML sinks at all, so none can be fed an answer.
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setAttribute(\"on", "srcdoc"} {
		if strings.Contains(page, sink) {
			t.Errorf("the page uses %s", sink)
		}
	}
}
