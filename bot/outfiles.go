package bot

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/difybot/difybot/dify"
)

// Files a workflow produces (an annotated photo, a chart, a CSV) are fetched from Dify at once, because Dify's
// links expire in five minutes, and kept in the store for OutputFileTTL, so that every replica can serve them at
// GET /files/{id} with a signed, expiring link (LINE fetches images from there) and a crashed attempt finds
// them again instead of fetching expired links. The reply step sends them on with the text.

// Defaults of the output-file settings.
const (
	DefaultMaxOutputFileBytes = 20 << 20 // MAX_OUTPUT_FILE_BYTES.
	DefaultOutputFileTTL      = 7 * 24 * time.Hour
	// PreviewMaxBytes is the largest preview LINE takes for an image message; larger images get a smaller one.
	PreviewMaxBytes = 1 << 20
)

// OutputFile is one file of a run's answer, as stored (without its bytes).
type OutputFile struct {
	ID      string `json:"id"`
	RunID   string `json:"run_id"`
	Attempt int    `json:"attempt"`
	Seq     int    `json:"seq"` // Its place in the answer, from 0.
	// Key is Dify's identity of the file within the run, so an attempt that resumes does not fetch it again.
	Key      string `json:"key"`
	Name     string `json:"name"`
	MIMEType string `json:"mime_type"` // Sniffed from the bytes, never Dify's claim alone.
	Size     int64  `json:"size"`
	// PreviewSize is the size of the smaller copy made for LINE's image preview, 0 when the file is its own.
	PreviewSize int64     `json:"preview_size,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// Image reports a file the platforms show as a picture: JPEG, PNG, GIF or WebP (never SVG, which can carry
// script).
func (f OutputFile) Image() bool {
	switch f.MIMEType {
	case "image/jpeg", "image/png", "image/gif", "image/webp":
		return true
	}
	return false
}

// ReplyFile is a file sent with a reply.
type ReplyFile struct {
	OutputFile
	// Path is the file's signed link on this bot, "/files/{id}?…": it works on every replica until ExpiresAt.
	Path string
	// URL is Path under PUBLIC_URL, and PreviewURL its preview's (the file itself when it is small enough);
	// both are "" when PUBLIC_URL is not set.
	URL, PreviewURL string
	// Open streams the file's bytes (from the store). The caller closes it.
	Open func(ctx context.Context) (io.ReadCloser, error)
}

// OutputFileStore keeps the files of runs' answers and the key that signs their links. It is part of Store.
type OutputFileStore interface {
	// AddOutputFile keeps f with its bytes, and the preview's (nil when the file is its own), until f.ExpiresAt.
	// A file of the same run, attempt and Key is kept once: adding it again changes nothing.
	AddOutputFile(ctx context.Context, f OutputFile, data, preview []byte) error
	// OutputFiles lists run id's files of every attempt, by attempt and Seq, without their bytes.
	OutputFiles(ctx context.Context, runID string) ([]OutputFile, error)
	// OutputFileData returns file id and its bytes, or its preview's; ErrNotFound when there is no such file
	// (or it has been deleted).
	OutputFileData(ctx context.Context, id string, preview bool) (OutputFile, []byte, error)
	// DeleteOutputFiles deletes the files whose ExpiresAt is at or before now, and returns how many.
	DeleteOutputFiles(ctx context.Context, now time.Time) (int, error)
	// SigningKey returns the key that signs file links: made at the first start and the same for every
	// replica of the store.
	SigningKey(ctx context.Context) ([]byte, error)
}

// fileSigner signs and checks /files links with the store's key, read once.
type fileSigner struct {
	store interface {
		SigningKey(ctx context.Context) ([]byte, error)
	}
	mu  sync.Mutex
	key []byte
}

func (s *fileSigner) keyOf(ctx context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.key == nil {
		k, err := s.store.SigningKey(ctx)
		if err != nil {
			return nil, fmt.Errorf("signing key: %w", err)
		}
		if len(k) < 16 {
			return nil, errors.New("signing key: the store's key is too short")
		}
		s.key = k
	}
	return s.key, nil
}

func mac(key []byte, id string, exp int64, preview bool) string {
	h := hmac.New(sha256.New, key)
	fmt.Fprintf(h, "difybot-file\x00%s\x00%d\x00%t", id, exp, preview)
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// path is f's signed link, expiring with the file.
func (s *fileSigner) path(ctx context.Context, f OutputFile, preview bool) (string, error) {
	key, err := s.keyOf(ctx)
	if err != nil {
		return "", err
	}
	exp := f.ExpiresAt.Unix()
	q := url.Values{"exp": {strconv.FormatInt(exp, 10)}, "sig": {mac(key, f.ID, exp, preview)}}
	if preview {
		q.Set("v", "preview")
	}
	return "/files/" + url.PathEscape(f.ID) + "?" + q.Encode(), nil
}

// FilePath returns f's signed link on this bot, "/files/{id}?…", valid until f expires. keys is where the
// signing key lives (the store).
func FilePath(ctx context.Context, keys interface {
	SigningKey(ctx context.Context) ([]byte, error)
}, f OutputFile) (string, error) {
	return (&fileSigner{store: keys}).path(ctx, f, false)
}

// FilesConfig configures FilesHandler. Store is required.
type FilesConfig struct {
	Store OutputFileStore
	Now   func() time.Time
}

// FilesHandler serves GET /files/{id}: a file of an answer, to whoever has its signed link, until the link
// expires. A link that is missing its signature, altered, expired, or names a file that is gone answers 403
// with nothing more: the answer never tells a guessed id from a real one.
func FilesHandler(cfg FilesConfig) http.Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &fileSigner{store: cfg.Store}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
		h.Set("Referrer-Policy", "no-referrer")
		deny := func() { http.Error(w, "forbidden", http.StatusForbidden) }
		id, q := r.PathValue("id"), r.URL.Query()
		exp, err := strconv.ParseInt(q.Get("exp"), 10, 64)
		preview := q.Get("v") == "preview"
		if err != nil || id == "" || cfg.Now().Unix() > exp {
			deny()
			return
		}
		key, err := s.keyOf(r.Context())
		if err != nil {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		if !hmac.Equal([]byte(q.Get("sig")), []byte(mac(key, id, exp, preview))) {
			deny()
			return
		}
		f, data, err := cfg.Store.OutputFileData(r.Context(), id, preview)
		switch {
		case errors.Is(err, ErrNotFound):
			deny()
			return
		case err != nil:
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		case !cfg.Now().Before(f.ExpiresAt):
			deny()
			return
		}
		ctype := f.MIMEType
		if preview {
			ctype = "image/jpeg"
		}
		disp := "attachment"
		if f.Image() {
			disp = "inline" // Only the four image types; anything else (HTML, SVG) downloads, never renders.
		} else if !strings.HasPrefix(ctype, "text/") || strings.HasPrefix(ctype, "text/html") {
			ctype = "application/octet-stream"
		}
		h.Set("Content-Type", ctype)
		h.Set("Content-Disposition", mime.FormatMediaType(disp, map[string]string{"filename": f.Name}))
		h.Set("Cache-Control", "private, max-age=3600")
		// The server's write timeout suits webhooks' small answers; a file may take longer on a slow phone link
		// (at least 128 KiB/s).
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(30*time.Second + time.Duration(len(data)/(128<<10))*time.Second))
		http.ServeContent(w, r, "", f.CreatedAt, bytes.NewReader(data))
	})
}

// outputFiles returns the files an attempt's answer sends, with their links, in the answer's order.
func (b *Bot) outputFiles(ctx context.Context, r *Run) ([]ReplyFile, error) {
	all, err := b.cfg.Store.OutputFiles(ctx, r.ID)
	if err != nil {
		return nil, fmt.Errorf("load output files: %w", err)
	}
	var out []ReplyFile
	for _, f := range all {
		if f.Attempt != r.Attempt {
			continue
		}
		rf := ReplyFile{OutputFile: f, Open: func(ctx context.Context) (io.ReadCloser, error) {
			_, data, err := b.cfg.Store.OutputFileData(ctx, f.ID, false)
			if err != nil {
				return nil, fmt.Errorf("open output file %s: %w", f.ID, err)
			}
			return io.NopCloser(bytes.NewReader(data)), nil
		}}
		if rf.Path, err = b.signer.path(ctx, f, false); err != nil {
			return nil, err
		}
		if b.cfg.PublicURL != "" {
			rf.URL, rf.PreviewURL = b.cfg.PublicURL+rf.Path, b.cfg.PublicURL+rf.Path
			if f.PreviewSize > 0 {
				p, err := b.signer.path(ctx, f, true)
				if err != nil {
					return nil, err
				}
				rf.PreviewURL = b.cfg.PublicURL + p
			}
		}
		out = append(out, rf)
	}
	return out, nil
}

// fetchOutputs fetches the files of Dify's answer into the store, once per attempt (a resumed attempt keeps
// the ones it has), and returns the names of the files kept and a note for the person about each it could not
// fetch. A file that cannot be fetched never fails the run: the text still arrives, and fields record why.
func (b *Bot) fetchOutputs(ctx context.Context, r *Run, files []dify.OutputFile, fields map[string]any) (kept, notes []string) {
	if len(files) == 0 {
		r.noOutputs = true
		return nil, nil
	}
	have := map[string]bool{}
	stored, err := b.cfg.Store.OutputFiles(ctx, r.ID)
	if err != nil {
		b.log.Warn().Err(err).Str("run_id", r.ID).Msg("could not list the files already fetched; fetching them again")
	}
	for _, f := range stored {
		if f.Attempt == r.Attempt {
			have[f.Key] = true
		}
	}
	var failed []string
	var total int64
	for i, df := range files {
		name := displayName(df)
		if have[df.Key] {
			kept = append(kept, name)
			continue
		}
		n, err := b.fetchOutput(ctx, r, i, df)
		if err != nil {
			failed = append(failed, name+": "+err.Error())
			notes = append(notes, fileNote(b.cfg.Language, name, err))
			continue
		}
		kept = append(kept, name)
		total += n
	}
	fields["files"], fields["file_bytes"] = len(kept), total
	if len(failed) > 0 {
		fields["files_failed"] = strings.Join(failed, "; ")
	}
	return kept, notes
}

// outputTooLarge is a file over MaxOutputFileBytes.
type outputTooLarge struct{ max int64 }

func (e *outputTooLarge) Error() string { return fmt.Sprintf("it is larger than %d bytes", e.max) }

// fetchOutput downloads one file, within the download limits photos have, into a temporary file, sniffs it,
// and stores it. It returns the bytes kept.
func (b *Bot) fetchOutput(ctx context.Context, r *Run, seq int, df dify.OutputFile) (int64, error) {
	max := b.cfg.MaxOutputFileBytes
	if df.Size > max {
		return 0, &outputTooLarge{max}
	}
	w := watchFetch(ctx, b.cfg.FetchTimeout, b.cfg.FetchIdle, "Dify")
	defer w.stop()
	body, claimed, err := b.cfg.Workflows.OpenFile(w.ctx, df)
	if err != nil {
		if lerr := w.limit(); lerr != nil {
			return 0, lerr
		}
		return 0, err
	}
	defer body.Close()
	tmp, err := os.CreateTemp(b.cfg.TempDir, "difybot-output-*")
	if err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	defer func() { tmp.Close(); os.Remove(tmp.Name()) }()
	n, err := io.Copy(tmp, io.LimitReader(w.body(body), max+1))
	switch {
	case err != nil:
		if lerr := w.limit(); lerr != nil {
			return 0, fmt.Errorf("%w (after %d bytes)", lerr, n)
		}
		return 0, fmt.Errorf("download: %w", err)
	case n > max:
		return 0, &outputTooLarge{max}
	case n == 0:
		return 0, errors.New("it is empty")
	}
	data, err := os.ReadFile(tmp.Name())
	if err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	now := b.now()
	f := OutputFile{ID: newFileID(), RunID: r.ID, Attempt: r.Attempt, Seq: seq, Key: df.Key, Name: displayName(df),
		MIMEType: sniffOutput(data, df, claimed), Size: n, CreatedAt: now, ExpiresAt: now.Add(b.cfg.OutputFileTTL)}
	var preview []byte
	if (f.MIMEType == "image/jpeg" || f.MIMEType == "image/png") && n > PreviewMaxBytes {
		if preview, err = makePreview(data, PreviewMaxBytes); err != nil {
			b.log.Warn().Err(err).Str("run_id", r.ID).Str("file", f.Name).Msg("could not make a preview of an image; it goes as a link")
			preview = nil
		}
		f.PreviewSize = int64(len(preview))
	}
	if err := b.cfg.Store.AddOutputFile(ctx, f, data, preview); err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	return n, nil
}

// sniffOutput decides a file's type from its bytes; Dify's claim (or the server's) is taken only where the
// bytes cannot tell (text formats such as CSV, which sniff as plain text), and never for an image or HTML.
func sniffOutput(data []byte, df dify.OutputFile, claimed string) string {
	sniffed, _, _ := strings.Cut(http.DetectContentType(data), ";")
	if sniffed == "text/plain" && maybeSVG(data[:min(len(data), 512)]) {
		return "image/svg+xml"
	}
	if sniffed != "text/plain" && sniffed != "application/octet-stream" {
		return sniffed
	}
	for _, c := range []string{df.MIMEType, claimed} {
		c, _, _ = strings.Cut(c, ";")
		c = strings.ToLower(strings.TrimSpace(c))
		if c == "" || strings.HasPrefix(c, "image/") || strings.Contains(c, "html") || strings.Contains(c, "svg") {
			continue
		}
		if sniffed == "text/plain" && !strings.HasPrefix(c, "text/") && c != "application/json" {
			continue
		}
		return c
	}
	if ct := mime.TypeByExtension(path.Ext(df.Name)); ct != "" && sniffed == "text/plain" && strings.HasPrefix(ct, "text/") && !strings.Contains(ct, "html") {
		ct, _, _ = strings.Cut(ct, ";")
		return ct
	}
	return sniffed
}

// displayName is the name a file is shown and saved under.
func displayName(df dify.OutputFile) string {
	n := strings.TrimSpace(path.Base(strings.ReplaceAll(df.Name, `\`, "/")))
	if n == "" || n == "." || n == "/" {
		n = "file"
		if df.Type != "" {
			n = df.Type
		}
	}
	return n
}

// newFileID names a stored file: random, so a link cannot be guessed even before its signature is checked.
func newFileID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails.
	return "f_" + base64.RawURLEncoding.EncodeToString(b)
}

// fileNote tells the person about a file of the answer that could not be sent.
func fileNote(lang Lang, name string, err error) string {
	var big *outputTooLarge
	if errors.As(err, &big) {
		if isJapanese(lang) {
			return fmt.Sprintf("（ファイル「%s」は %s を超えるため送れませんでした。）", name, sizeText(big.max))
		}
		return fmt.Sprintf("(The file %s was not sent: it is larger than %s.)", name, sizeText(big.max))
	}
	if isJapanese(lang) {
		return fmt.Sprintf("（ファイル「%s」を Dify から受け取れなかったため、送れませんでした。）", name)
	}
	return fmt.Sprintf("(The file %s could not be fetched from Dify, so it is not attached.)", name)
}

// sizeText writes a size limit the way people read it: 20 MB, 500 KB, 100 bytes.
func sizeText(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%d MB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%d KB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// withNotes adds the notes about files that could not be sent under the text.
func withNotes(text string, notes []string) string {
	if len(notes) == 0 {
		return text
	}
	return strings.TrimSpace(text + "\n\n" + strings.Join(notes, "\n"))
}

// ExpireOutputFiles deletes the files whose time (OutputFileTTL) is up; serve calls it now and then.
func (b *Bot) ExpireOutputFiles(ctx context.Context) error {
	n, err := b.cfg.Store.DeleteOutputFiles(ctx, b.now())
	if err != nil {
		return fmt.Errorf("bot: expire output files: %w", err)
	}
	if n > 0 {
		b.log.Info().Int("files", n).Msg("deleted files past OUTPUT_FILE_TTL")
	}
	return nil
}
