package dify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/difybot/difybot/internal/redirect"
)

// fileIdentity marks a JSON object as one of Dify's file objects (dify-api-2026.md §1.1).
const fileIdentity = "__dify__file__"

// OutputFile is a file a run produced: a file object in the outputs, in workflow_finished.data.files or in
// message_end.files, or a chat app's message_file event. Only the fields difybot uses are kept.
type OutputFile struct {
	// Key names the file across events: Dify re-signs its URL every time it serializes it, so two events for one
	// file carry different URLs. It is related_id, else reference, else id, else the URL without its query.
	Key      string `json:"key"`
	Type     string `json:"type,omitempty"` // image, document, audio, video, custom.
	Name     string `json:"name,omitempty"`
	MIMEType string `json:"mime_type,omitempty"`
	Size     int64  `json:"size,omitempty"` // As Dify says; 0 or -1 when it does not know.
	// URL is where to fetch the bytes, as Dify wrote it: absolute, or relative to its FILES_URL (/files/…).
	URL string `json:"url"`
}

// fileJSON is a file object in either generation's keys (§1.1), and a message_file event's.
type fileJSON struct {
	Identity  string  `json:"dify_model_identity"`
	ID        *string `json:"id"`
	Type      string  `json:"type"`
	RemoteURL string  `json:"remote_url"`
	Reference string  `json:"reference"`
	RelatedID string  `json:"related_id"`
	Filename  string  `json:"filename"`
	Extension string  `json:"extension"`
	MIMEType  string  `json:"mime_type"`
	Size      flexInt `json:"size"`
	URL       string  `json:"url"`
}

func (f fileJSON) file() (OutputFile, bool) {
	u := f.URL
	if u == "" {
		u = f.RemoteURL
	}
	if u == "" {
		return OutputFile{}, false
	}
	out := OutputFile{Type: f.Type, Name: f.Filename, MIMEType: f.MIMEType, Size: int64(f.Size), URL: u}
	switch {
	case f.RelatedID != "":
		out.Key = f.RelatedID
	case f.Reference != "":
		out.Key = f.Reference
	case f.ID != nil && *f.ID != "":
		out.Key = *f.ID
	default:
		out.Key, _, _ = strings.Cut(u, "?")
	}
	if out.Name == "" {
		p, _, _ := strings.Cut(u, "?")
		if n := path.Base(p); n != "." && n != "/" {
			out.Name, _ = url.PathUnescape(n)
		}
	}
	if out.Name != "" && path.Ext(out.Name) == "" && strings.HasPrefix(f.Extension, ".") {
		out.Name += f.Extension
	}
	return out, true
}

// filesIn collects the file objects of a JSON value: the value itself, a list of them, or an object's top-level
// values that are either (Dify's own fetch_files_from_node_outputs looks no deeper).
func filesIn(raw json.RawMessage) []OutputFile {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil
	}
	if f, ok := fileObject(raw); ok {
		return []OutputFile{f}
	}
	var out []OutputFile
	switch raw[0] {
	case '[':
		var list []json.RawMessage
		if json.Unmarshal(raw, &list) == nil {
			for _, v := range list {
				if f, ok := fileObject(v); ok {
					out = append(out, f)
				}
			}
		}
	case '{':
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) == nil {
			// Map order is random; keep the order the object lists them in.
			for _, k := range objectKeys(raw) {
				v := bytes.TrimSpace(m[k])
				if f, ok := fileObject(v); ok {
					out = append(out, f)
				} else if len(v) > 0 && v[0] == '[' {
					out = append(out, filesIn(v)...)
				}
			}
		}
	}
	return out
}

// fileObject reads raw as a file object, if it is one.
func fileObject(raw json.RawMessage) (OutputFile, bool) {
	if len(raw) == 0 || raw[0] != '{' || !bytes.Contains(raw, []byte(fileIdentity)) {
		return OutputFile{}, false
	}
	var f fileJSON
	if json.Unmarshal(raw, &f) != nil || f.Identity != fileIdentity {
		return OutputFile{}, false
	}
	return f.file()
}

// objectKeys returns a JSON object's keys in the order they appear.
func objectKeys(raw json.RawMessage) []string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	var keys []string
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return keys
		}
		k, _ := t.(string)
		keys = append(keys, k)
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return keys
		}
	}
	return keys
}

// fileSet gathers a run's files from every event that names them, once each, in the order first seen.
type fileSet struct {
	files []OutputFile
	seen  map[string]bool
}

func (s *fileSet) add(fs ...OutputFile) {
	for _, f := range fs {
		if s.seen == nil {
			s.seen = map[string]bool{}
		}
		if f.Key == "" || s.seen[f.Key] {
			continue
		}
		s.seen[f.Key] = true
		s.files = append(s.files, f)
	}
}

// observe takes the files an event carries: workflow_finished.data.files, message_end.files, and a chat app's
// message_file (the assistant's only: the person's own uploads come back as belongs_to user).
func (s *fileSet) observe(ev Event) {
	switch ev.Event {
	case "workflow_finished":
		s.add(filesIn(ev.Data.Outputs)...)
		s.add(filesIn(ev.Data.Files)...)
	case "message_end":
		s.add(filesIn(ev.Files)...)
	case "message_file":
		if ev.BelongsTo == "user" || ev.URL == "" {
			return
		}
		id := ev.ID
		f := fileJSON{ID: &id, Type: ev.Type, URL: ev.URL}
		if out, ok := f.file(); ok {
			s.add(out)
		}
	}
}

// FileURL is where f's bytes are: its URL, or, when Dify wrote it relative (Dify's FILES_URL unset), the files
// base (Config.FilesURL, else the origin of BaseURL) joined with it. It refuses anything but http and https.
func (c *Client) FileURL(f OutputFile) (string, error) {
	ref, err := url.Parse(f.URL)
	if err != nil {
		return "", fmt.Errorf("dify: file %s: bad URL: %w", f.Name, err)
	}
	u := ref
	if !ref.IsAbs() {
		// Dify writes "/files/…" from its own root; a files base with a path (Dify behind a prefix) keeps it.
		u = c.files.JoinPath(ref.Path)
		u.RawQuery = ref.RawQuery
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("dify: file %s: URL scheme %q is not http(s)", f.Name, u.Scheme)
	}
	return u.String(), nil
}

// FileError is a file download Dify (or the file's host) answered with an error status.
type FileError struct {
	Name   string
	Status int
}

func (e *FileError) Error() string {
	switch e.Status {
	case http.StatusForbidden, http.StatusNotFound:
		return fmt.Sprintf("the link to %s answered %d: it expired or is not valid", e.Name, e.Status)
	}
	return fmt.Sprintf("the link to %s answered %d", e.Name, e.Status)
}

// OpenFile starts downloading f and returns its body and the Content-Type its server claims; the caller closes
// the body, and bounds time and size (ctx, its own limits). No credential is ever sent: Dify signs its file
// links (and a remote_url file is someone else's), so the API key stays on the API's own requests. A file on
// another host is fetched from the public internet only (ForeignHTTPClient).
func (c *Client) OpenFile(ctx context.Context, f OutputFile) (io.ReadCloser, string, error) {
	u, err := c.FileURL(f)
	if err != nil {
		return nil, "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, "", fmt.Errorf("dify: download %s: %w", f.Name, err)
	}
	hc := c.foreign
	if own := req.URL; redirect.SameOrigin(own.Scheme, own.Host, c.files.Scheme, c.files.Host) ||
		redirect.SameOrigin(own.Scheme, own.Host, c.base.Scheme, c.base.Host) {
		hc = c.hc // Dify's own files: wherever Dify runs, internal hosts included.
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("dify: download %s: %w", f.Name, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, "", fmt.Errorf("dify: download: %w", &FileError{Name: f.Name, Status: resp.StatusCode})
	}
	return resp.Body, resp.Header.Get("Content-Type"), nil
}
