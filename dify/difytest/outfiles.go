package difytest

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Files a simulated workflow produces, served the way Dify serves tool files (dify-api-2026.md §1.3, §1.4):
// GET /files/tools/{id}{ext}?timestamp=…&nonce=…&sign=…, no API key, the signature an HMAC of
// "file-preview|{id}|{timestamp}|{nonce}" valid for FilesExpireAfter (Dify's FILES_ACCESS_TIMEOUT, 300 s). The
// links are relative, as Dify writes them when its FILES_URL is unset: the client prefixes Dify's origin.

// RouteFile is the route key of file downloads, as Calls counts them.
const RouteFile = "GET /files/tools/{file}"

// outputKind is what a succeeding scenario's workflow answers besides, or instead of, its text.
type outputKind int

const (
	outText      outputKind = iota // {"text": answer}.
	outImage                       // The text and an annotated image (a PNG tool file).
	outCSV                         // The text and a CSV.
	outFileList                    // The text and a list of files: the image and the CSV.
	outThink                       // The text, with the model's <think> reasoning in front.
	outObject                      // An object, no text: {"result": {label, confidence, tags, box, description}}.
	outExpired                     // The text and an image whose link has already expired.
	outChatFiles                   // A chatflow's answer with message_file events and message_end.files.
	outLong                        // The text, reasoning first, then longAnswer: about 2,000 characters in many chunks.
)

// simFile is a file the fake made and serves.
type simFile struct {
	id, name, ext, mime, typ string
	data                     []byte
}

// secret signs the fake's file links; it differs per process, as Dify's SECRET_KEY would.
var secret = func() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}()

func fileSign(id, ts, nonce string) string {
	h := hmac.New(sha256.New, secret)
	fmt.Fprintf(h, "file-preview|%s|%s|%s", id, ts, nonce)
	return base64.URLEncoding.EncodeToString(h.Sum(nil))
}

// link is a signed relative link to f, signed at "at".
func (f *simFile) link(at time.Time) string {
	ts := strconv.FormatInt(at.Unix(), 10)
	var n [16]byte
	rand.Read(n[:])
	nonce := hex.EncodeToString(n[:])
	// The tool-file route builds its query with an f-string: the sign's '=' padding goes out raw.
	return fmt.Sprintf("/files/tools/%s%s?timestamp=%s&nonce=%s&sign=%s", f.id, f.ext, ts, nonce, fileSign(f.id, ts, nonce))
}

// object is f as a file object in Dify 1.x's keys and order (§1.1).
func (f *simFile) object(at time.Time) obj {
	return obj{{"dify_model_identity", "__dify__file__"}, {"id", nil}, {"type", f.typ}, {"transfer_method", "tool_file"},
		{"remote_url", nil}, {"reference", f.id}, {"filename", f.name}, {"extension", f.ext}, {"mime_type", f.mime},
		{"size", len(f.data)}, {"related_id", f.id}, {"url", f.link(at)}}
}

// newFile makes a file and keeps it for serving.
func (s *Sim) newFile(name, typ, mime string, data []byte) *simFile {
	ext := name[strings.LastIndex(name, "."):]
	f := &simFile{id: newID(), name: name, ext: ext, mime: mime, typ: typ, data: data}
	s.mu.Lock()
	s.files.put(f.id, f)
	s.lastFile[name] = f
	s.mu.Unlock()
	return f
}

// File returns the bytes of the latest file the fake made under name ("annotated.png", "labels.csv"), for tests
// that compare what a person received with what Dify served; nil when there is none.
func (s *Sim) File(name string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.lastFile[name]; f != nil {
		return bytes.Clone(f.data)
	}
	return nil
}

// serveFile answers GET /files/tools/{id}{ext}: 403 for a bad or expired signature, 404 for an unknown file.
func (s *Sim) serveFile(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.calls[RouteFile]++
	s.mu.Unlock()
	name := r.PathValue("file")
	id := name
	if i := strings.LastIndex(name, "."); i > 0 {
		id = name[:i]
	}
	q := r.URL.Query()
	ts, nonce, sign := q.Get("timestamp"), q.Get("nonce"), q.Get("sign")
	at, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || nonce == "" || !hmac.Equal([]byte(sign), []byte(fileSign(id, ts, nonce))) ||
		time.Since(time.Unix(at, 0)) > s.opts.FilesExpireAfter {
		writeErr(w, v1, apiErr{http.StatusForbidden, "forbidden", "Invalid request.", ""})
		return
	}
	s.mu.Lock()
	f, ok := s.files.get(id)
	s.mu.Unlock()
	if !ok || f.ext != name[len(id):] {
		writeErr(w, v1, errNotFound("file is not found"))
		return
	}
	w.Header().Set("Content-Type", f.mime)
	w.Header().Set("Content-Length", strconv.Itoa(len(f.data)))
	w.Write(f.data)
}

// outputs builds a succeeded run's outputs for the scenario, and the files among them (for
// workflow_finished.data.files and message_end.files).
func (p *plan) outputs(s *Sim, textKey string) (obj, []obj) {
	now := time.Now()
	text := obj{{textKey, p.answer}}
	switch p.sc.output {
	case outImage:
		f := s.newFile("annotated.png", "image", "image/png", annotatedPNG())
		fo := f.object(now)
		return append(text, kv{"image", fo}), []obj{fo}
	case outExpired:
		f := s.newFile("annotated.png", "image", "image/png", annotatedPNG())
		fo := f.object(now.Add(-2 * s.opts.FilesExpireAfter))
		return append(text, kv{"image", fo}), []obj{fo}
	case outCSV:
		fo := s.newFile("labels.csv", "document", "text/csv", []byte(labelsCSV)).object(now)
		return append(text, kv{"table", fo}), []obj{fo}
	case outFileList:
		img := s.newFile("annotated.png", "image", "image/png", annotatedPNG()).object(now)
		csv := s.newFile("labels.csv", "document", "text/csv", []byte(labelsCSV)).object(now)
		return append(text, kv{"files", []obj{img, csv}}), []obj{img, csv}
	case outChatFiles:
		fo := s.newFile("annotated.png", "image", "image/png", annotatedPNG()).object(now)
		return text, []obj{fo}
	case outObject:
		return obj{{"result", obj{{"label", "cat"}, {"confidence", 0.93}, {"tags", []string{"animal", "indoor"}},
			{"box", obj{{"x", 12}, {"y", 8}, {"w", 40}, {"h", 30}}}, {"description", p.answer}}}}, nil
	}
	return text, nil
}

// longAnswer is what stream_long's LLM writes after its usual answer: six paragraphs, 2,000 characters in all
// with the usual answer, streamed a few words at a time.
var longAnswer = func() string {
	para := "The photo was looked at part by part. Its colours, its shapes and the writing in it were read, and each " +
		"was compared with what a photo of its kind usually shows. Nothing in it needs to be checked by hand; the " +
		"details follow, from the most to the least certain, with what each means for the question you asked.\n\n"
	return strings.Repeat(para, 6)
}()

// thinking is the reasoning an LLM node in Dify's default "tagged" mode leaves in its text (§2.6).
const thinking = "<think>\nThe person sent a photo. I should describe it briefly and answer the question.\n</think>\n\n"

const labelsCSV = "label,confidence\ncat,0.93\nsofa,0.71\n"

// annotatedPNG is the fake's "annotated photo": a gradient with a red box drawn on it, the same bytes every time.
func annotatedPNG() []byte {
	const w, h = 160, 120
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.RGBA{uint8(80 + x/2), uint8(120 + y/2), 200, 255}
			if (x == 40 || x == 120) && y >= 30 && y <= 90 || (y == 30 || y == 90) && x >= 40 && x <= 120 {
				c = color.RGBA{230, 20, 20, 255}
			}
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	png.Encode(&b, img)
	return b.Bytes()
}
