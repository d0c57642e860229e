package admin

import (
	"encoding/json"
	"net/http"
	"strings"
)

// newRedactor replaces each secret, raw and as JSON escapes it, with [redacted]. It returns nil when there is
// nothing to redact.
func newRedactor(secrets []string) *strings.Replacer {
	var pairs []string
	seen := map[string]bool{}
	for _, s := range secrets {
		if len(s) < minRedact {
			continue
		}
		forms := []string{s}
		if b, err := json.Marshal(s); err == nil {
			forms = append(forms, string(b[1:len(b)-1]))
		}
		for _, f := range forms {
			if !seen[f] {
				seen[f] = true
				pairs = append(pairs, f, "[redacted]")
			}
		}
	}
	if len(pairs) == 0 {
		return nil
	}
	return strings.NewReplacer(pairs...)
}

// redactingWriter redacts what admin handlers write, Extra routes included. Bodies are small JSON documents
// written in one Write; a secret split across two writes would escape, which is why the handlers here write once.
type redactingWriter struct {
	http.ResponseWriter
	redact      *strings.Replacer
	wroteHeader bool
}

// WriteHeader drops a Content-Length the handler set: redaction can change the length.
func (w *redactingWriter) WriteHeader(status int) {
	if !w.wroteHeader && w.redact != nil {
		w.Header().Del("Content-Length")
	}
	w.wroteHeader = true
	w.ResponseWriter.WriteHeader(status)
}

func (w *redactingWriter) Write(p []byte) (int, error) {
	if w.redact == nil {
		return w.ResponseWriter.Write(p)
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if _, err := w.ResponseWriter.Write([]byte(w.redact.Replace(string(p)))); err != nil {
		return 0, err
	}
	return len(p), nil // The caller wrote p; its length changed only here.
}

func (w *redactingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
