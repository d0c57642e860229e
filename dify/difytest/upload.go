package difytest

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // Registered for image.DecodeConfig, to report the dimensions of uploads.
	_ "image/jpeg"
	_ "image/png"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"
)

// upload is what the fake keeps of an uploaded file: enough to validate and describe it, never its bytes.
type upload struct {
	id, name, ext, mime string
	size                int64
	format              string // Sniffed from the bytes: png, jpeg, gif, webp, bmp, svg, or "" if not an image.
	width, height       int
}

// headBytes is how much of the file the fake keeps, for sniffing and image headers.
const headBytes = 64 << 10

// maxParts is werkzeug's default max_form_parts.
const maxParts = 1000

// Dify's extension classes (api/constants) and their default limits (§2.3).
var (
	imageExts = []string{"jpg", "jpeg", "png", "webp", "gif", "svg"}
	videoExts = []string{"mp4", "mov", "mpeg", "webm"}
	audioExts = []string{"mp3", "m4a", "wav", "amr", "mpga"}
	// docExts06 are the document types 0.6 accepted; it answered 415 for anything else that is not an image.
	docExts06 = []string{"txt", "markdown", "md", "pdf", "html", "htm", "xlsx", "xls", "docx", "csv"}
)

// part is one multipart part, read and counted but not kept.
type part struct {
	field    string
	isFile   bool // werkzeug files every part whose Content-Disposition has a filename, even an empty one.
	filename string
	mime     string
	size     int64
	head     []byte
}

// upload answers POST /v1/files/upload with the checks of §2.2, in Dify's order. It streams the body and
// keeps only the first bytes of the file.
func (s *Sim) upload(w http.ResponseWriter, r *http.Request, c *call) {
	d := c.sc.dialect
	if rp := c.sc.fault(atEndpoint, c.route, 0); rp != nil {
		rp.write(w, r, d)
		return
	}
	parts, user, e := readParts(r)
	if e != nil {
		drain(r)
		writeErr(w, d, *e)
		return
	}
	var file *part
	fields := map[string]bool{}
	for i, p := range parts {
		if !p.isFile {
			continue
		}
		// request.files is a MultiDict: its length counts field names, and files["file"] is the first one.
		fields[p.field] = true
		if p.field == "file" && file == nil {
			file = &parts[i]
		}
	}
	bad := func(status int, code, msg string) { writeErr(w, d, apiErr{status, code, msg, ""}) }
	switch {
	case file == nil:
		bad(http.StatusBadRequest, "no_file_uploaded", "Please upload your file.")
		return
	case len(fields) > 1:
		bad(http.StatusBadRequest, "too_many_files", "Only one file is allowed.")
		return
	case file.mime == "":
		bad(http.StatusUnsupportedMediaType, "unsupported_file_type", "File type not allowed.")
		return
	case file.filename == "":
		bad(http.StatusBadRequest, "filename_not_exists_error", "The specified filename does not exist.")
		return
	case strings.ContainsAny(file.filename, `/\`):
		writeErr(w, d, errInvalid("Filename contains invalid characters"))
		return
	}
	// Dify takes the text after the last dot, so a name without one is its own extension.
	ext := strings.ToLower(file.filename[strings.LastIndex(file.filename, ".")+1:])
	if d == v06 && !slices.Contains(imageExts, ext) && !slices.Contains(docExts06, ext) {
		bad(http.StatusUnsupportedMediaType, "unsupported_file_type", "File type not allowed.")
		return
	}
	if limit := s.sizeLimit(ext); file.size > limit {
		msg := "File size exceeded. {message}" // 1.x raises it without a description, so the template stays.
		if d == v06 {
			msg = fmt.Sprintf("File size exceeded. %d > %d", file.size, limit)
		}
		bad(http.StatusRequestEntityTooLarge, "file_too_large", msg)
		return
	}
	u := &upload{id: newID(), name: file.filename, ext: ext, mime: file.mime, size: file.size}
	u.format, u.width, u.height = sniff(file.head)
	s.mu.Lock()
	s.uploads.put(u.id, u)
	createdBy := s.endUser(user)
	s.mu.Unlock()

	now := time.Now().Unix()
	out := obj{{"id", u.id}, {"name", u.name}, {"size", u.size}, {"extension", u.ext}, {"mime_type", u.mime},
		{"created_by", createdBy}, {"created_at", now}}
	if d == v1 {
		source := fmt.Sprintf("http://%s/files/%s/file-preview?timestamp=%d&nonce=%s&sign=%s", r.Host, u.id, now,
			randHex(32), randHex(43))
		out = append(out, kv{"preview_url", nil}, kv{"source_url", source}, kv{"original_url", nil},
			kv{"user_id", nil}, kv{"tenant_id", tenantID}, kv{"conversation_id", nil}, kv{"file_key", nil})
	}
	writeJSON(w, d, http.StatusCreated, out)
}

// SetMaxImageBytes changes Dify's image limit (Options.MaxImageBytes) from the next request on.
func (s *Sim) SetMaxImageBytes(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.MaxImageBytes = n
}

func (s *Sim) imageLimit() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts.MaxImageBytes
}

// sizeLimit is the limit for a file of this extension: Options.MaxImageBytes for images, Dify's defaults for
// the rest. Dify allows a file of exactly the limit.
func (s *Sim) sizeLimit(ext string) int64 {
	switch {
	case slices.Contains(imageExts, ext):
		return s.imageLimit()
	case slices.Contains(videoExts, ext):
		return 100 << 20
	case slices.Contains(audioExts, ext):
		return 50 << 20
	}
	return 15 << 20
}

// endUser returns the id of the end-user row for a user string, creating it. Dify names the anonymous one
// DEFAULT-USER. s.mu must be held.
func (s *Sim) endUser(user string) string {
	if user == "" {
		user = "DEFAULT-USER"
	}
	id, ok := s.users.get(user)
	if !ok {
		id = newID()
		s.users.put(user, id)
	}
	return id
}

// readParts streams the multipart body. A body that is not multipart has no files, as in werkzeug.
func readParts(r *http.Request) ([]part, string, *apiErr) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, "", nil
	}
	var parts []part
	var user string
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return parts, user, nil
		}
		if err != nil {
			return nil, "", &apiErr{http.StatusBadRequest, "bad_request", msgBadRequest, ""}
		}
		if len(parts) == maxParts {
			return nil, "", &apiErr{http.StatusRequestEntityTooLarge, "request_entity_too_large",
				"The data value transmitted exceeds the capacity limit.", ""}
		}
		pt := part{}
		if _, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition")); err == nil {
			pt.field = params["name"]
			// The raw filename: multipart.Part.FileName would strip the directories Dify refuses.
			pt.filename, pt.isFile = params["filename"]
		}
		if mt, _, err := mime.ParseMediaType(p.Header.Get("Content-Type")); err == nil {
			pt.mime = mt
		}
		keep := 0
		switch {
		case pt.isFile && pt.field == "file":
			keep = headBytes
		case !pt.isFile && pt.field == "user":
			keep = 4096
		}
		buf := make([]byte, keep)
		n, err := io.ReadFull(p, buf)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, "", &apiErr{http.StatusBadRequest, "bad_request", msgBadRequest, ""}
		}
		rest, err := io.Copy(io.Discard, p)
		if err != nil {
			return nil, "", &apiErr{http.StatusBadRequest, "bad_request", msgBadRequest, ""}
		}
		pt.head, pt.size = buf[:n], int64(n)+rest
		if !pt.isFile && pt.field == "user" && user == "" {
			user = string(pt.head)
		}
		if !pt.isFile {
			pt.head = nil
		}
		parts = append(parts, pt)
	}
}

// sniff names the image format from the first bytes, with dimensions where the standard library decodes
// the header (PNG, JPEG, GIF).
func sniff(head []byte) (format string, width, height int) {
	if cfg, f, err := image.DecodeConfig(bytes.NewReader(head)); err == nil {
		return f, cfg.Width, cfg.Height
	}
	ct := http.DetectContentType(head)
	switch {
	case strings.HasPrefix(ct, "image/"):
		return strings.TrimPrefix(strings.TrimPrefix(ct, "image/"), "x-"), 0, 0
	case bytes.Contains(head[:min(len(head), 1024)], []byte("<svg")):
		return "svg", 0, 0
	}
	return "", 0, 0
}

// describe says what the file is, for the simulated model's answer.
func (u *upload) describe() string {
	if u.format == "" {
		return fmt.Sprintf("Received a file %q (%s, %s).", u.name, u.mime, humanSize(u.size))
	}
	article := "a"
	if u.format == "svg" {
		article = "an"
	}
	dims := ""
	if u.width > 0 {
		dims = fmt.Sprintf(", %d×%d px", u.width, u.height)
	}
	return fmt.Sprintf("Received %s %s image%s, %s.", article, strings.ToUpper(u.format), dims, humanSize(u.size))
}

func humanSize(n int64) string {
	switch {
	case n < 1024:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KB", float64(n)/1024)
	}
	return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
}
