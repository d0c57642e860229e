// Package web is a chat page for trying difybot locally and for admins to test a workflow: the same pipeline as
// Slack and LINE, with the workflow's progress shown live.
package web

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/rs/zerolog"
)

// platformName is the chat's name in bot.Message.Platform.
const platformName = "web"

//go:embed chat.html
var page []byte

// pageCSP allows exactly the page's own inline script and style, by their hashes, and nothing from elsewhere:
// whatever an answer smuggles into the page can neither run nor load anything.
var pageCSP = policy(page)

var (
	scriptBlock = regexp.MustCompile(`(?s)<script>(.*?)</script>`)
	styleBlock  = regexp.MustCompile(`(?s)<style>(.*?)</style>`)
)

// policy is the Content-Security-Policy for a page whose scripts and styles are inline <script> and <style>
// blocks without attributes.
func policy(page []byte) string {
	hashes := func(re *regexp.Regexp) string {
		var out []string
		for _, m := range re.FindAllSubmatch(page, -1) {
			sum := sha256.Sum256(m[1])
			out = append(out, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
		}
		if len(out) == 0 {
			return "'none'"
		}
		return strings.Join(out, " ")
	}
	return "default-src 'none'; script-src " + hashes(scriptBlock) + "; style-src " + hashes(styleBlock) +
		"; connect-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

// Config configures the chat.
type Config struct {
	Inbox         bot.Inbox // Where accepted messages go; required.
	Logger        zerolog.Logger
	UploadDir     string // Where images wait for the pipeline; it must survive a restart. Default: a temp dir.
	MaxImageBytes int64  // Uploads over this are refused at once; default 25 MiB (MAX_IMAGE_BYTES).
	// UploadTimeout is how long a message with its image may take to arrive; default 60 s, or MaxImageBytes at
	// 256 KiB/s when that is longer (a phone on a slow link).
	UploadTimeout time.Duration
	Token         string   // When set, the API needs "Authorization: Bearer <Token>" (serve mode).
	KeepRuns      int      // Runs whose events are kept for late listeners; default 1000.
	Language      bot.Lang // The language of what the chat itself says (a refused upload); default en.
	// Apps are the bot's Dify apps, which the page offers to pick from when there are several.
	Apps []string
	// ThumbTTL is how long the page's thumbnail of a photo is kept after the photo is removed, for the admin
	// page's run view; default 7 days.
	ThumbTTL time.Duration
}

// Chat is the web platform: an HTTP handler for the page and its API, and a bot.Platform.
type Chat struct {
	cfg   Config
	inbox bot.Inbox
	page  []byte // chat.html with <html lang> set to the chat's language, which picks the page's own words.

	mu    sync.Mutex
	swept time.Time // When old thumbnails were last removed.
	feeds map[string]*feed
	order []string // Run ids, oldest first, to bound feeds.
}

var (
	_ bot.Platform         = (*Chat)(nil)
	_ bot.ProgressReporter = (*Chat)(nil)
	_ bot.Streamer         = (*Chat)(nil)
)

// New returns a chat that hands messages to cfg.Inbox.
func New(cfg Config) (*Chat, error) {
	if cfg.Inbox == nil {
		return nil, errors.New("web: an Inbox is required")
	}
	if cfg.UploadDir == "" {
		cfg.UploadDir = filepath.Join(os.TempDir(), "difybot-web")
	}
	if err := os.MkdirAll(cfg.UploadDir, 0o700); err != nil {
		return nil, fmt.Errorf("web: upload dir: %w", err)
	}
	if cfg.MaxImageBytes <= 0 {
		cfg.MaxImageBytes = 25 << 20
	}
	if cfg.KeepRuns <= 0 {
		cfg.KeepRuns = 1000
	}
	if cfg.ThumbTTL <= 0 {
		cfg.ThumbTTL = 7 * 24 * time.Hour
	}
	if cfg.UploadTimeout <= 0 {
		cfg.UploadTimeout = max(60*time.Second, time.Duration(cfg.MaxImageBytes/(256<<10))*time.Second)
	}
	lang := "en"
	if cfg.Language.Japanese() {
		lang = "ja"
	}
	// Only the attribute changes: the script and style, and so the policy's hashes, stay the same.
	pg := bytes.Replace(page, []byte(`<html lang="en">`), []byte(`<html lang="`+lang+`">`), 1)
	return &Chat{cfg: cfg, inbox: cfg.Inbox, page: pg, feeds: map[string]*feed{}}, nil
}

// Name is the platform name stored with runs.
func (*Chat) Name() string { return platformName }

// Direct reports that every web chat is one-to-one with the bot: its person may choose the app (bot.DirectChats).
func (*Chat) Direct(bot.Message) bool { return true }

// Event is what the page receives about a run.
type Event struct {
	Type  string `json:"type"` // "progress", "stream" (the answer so far, in Text) or "reply".
	Step  string `json:"step,omitempty"`
	Node  string `json:"node,omitempty"`
	Done  int    `json:"done,omitempty"`
	Text  string `json:"text,omitempty"`
	Final bool   `json:"final,omitempty"`
	Code  string `json:"code,omitempty"` // The diagnosis code of a failed run.
	// Choices are answers the person can tap; the page sends a tapped one as the next message.
	Choices []string `json:"choices,omitempty"`
	// Files are the answer's files: images the page shows, other files it offers for download.
	Files []EventFile `json:"files,omitempty"`
}

// EventFile is a file of an answer, at the bot's signed link.
type EventFile struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Size  int64  `json:"size"`
	URL   string `json:"url"` // "/files/{id}?…" on this bot: the page's own origin.
	Image bool   `json:"image,omitempty"`
}

// feed keeps a run's events for listeners that come late and wakes the ones waiting.
type feed struct {
	events []Event
	wake   chan struct{} // Closed and replaced on every event.
}

// Routes serve the page at / and its API under /api/. Uploads get UploadTimeout to arrive.
func (c *Chat) Routes() []bot.Route {
	return []bot.Route{{Pattern: "/", Handler: c.handler(), BodyTimeout: c.cfg.UploadTimeout}}
}

// Secrets is the token that guards the chat's API, when set.
func (c *Chat) Secrets() []string { return []string{c.cfg.Token} }

// Checks has nothing to test: the chat talks to no outside service.
func (c *Chat) Checks(context.Context) []bot.Check { return nil }

func (c *Chat) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", pageCSP)
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Write(c.page)
	})
	mux.Handle("POST /api/messages", c.auth(http.HandlerFunc(c.postMessage)))
	mux.Handle("GET /api/runs/{id}/events", c.auth(http.HandlerFunc(c.events)))
	mux.Handle("GET /api/apps", c.auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string][]string{"apps": append([]string{}, c.cfg.Apps...)})
	})))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff") // No answer of ours is ever read as a script or a page.
		mux.ServeHTTP(w, r)
	})
}

func (c *Chat) auth(next http.Handler) http.Handler {
	if c.cfg.Token == "" {
		return next
	}
	want := sha256.Sum256([]byte(c.cfg.Token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", "Bearer")
			writeError(w, http.StatusUnauthorized, "a valid admin token is required")
			return
		}
		next.ServeHTTP(w, r)
	})
}

var idRE = regexp.MustCompile(`^[A-Za-z0-9_-]{8,64}$`)

// postMessage accepts text and an optional image. The page sends an id per message, so a double submit or a
// retried request is answered once.
func (c *Chat) postMessage(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, c.cfg.MaxImageBytes+1<<20)
	mr, err := r.MultipartReader()
	if err != nil {
		writeError(w, http.StatusBadRequest, "send multipart/form-data with the fields id, session, text and image")
		return
	}
	m := bot.Message{Platform: c.Name(), ReceivedAt: time.Now()}
	var upload string
	defer func() {
		if upload != "" && m.EventID == "" { // Not accepted: nothing will read it.
			os.Remove(upload)
			os.Remove(upload + thumbSuffix)
		}
	}()
	c.sweepThumbs(time.Now())
	var id, session string
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			c.refuse(w, err, id)
			return
		}
		switch p.FormName() {
		case "id", "session", "text", "app":
			b, err := io.ReadAll(io.LimitReader(p, 16<<10))
			if err != nil {
				writeError(w, http.StatusBadRequest, textsFor(c.cfg.Language).unreadable)
				return
			}
			switch p.FormName() {
			case "id":
				id = string(b)
			case "session":
				session = string(b)
			case "app": // The app picked on the page, when the bot has several.
				m.App = strings.TrimSpace(string(b))
			default:
				m.Text = strings.TrimSpace(string(b))
			}
		case "image":
			if p.FileName() == "" {
				continue
			}
			f, err := os.CreateTemp(c.cfg.UploadDir, "img-*")
			if err != nil {
				writeError(w, http.StatusInternalServerError, textsFor(c.cfg.Language).notStored)
				return
			}
			upload = f.Name()
			n, err := io.Copy(f, io.LimitReader(p, c.cfg.MaxImageBytes+1))
			f.Close()
			switch {
			case err != nil:
				c.refuse(w, err, id)
				return
			case n > c.cfg.MaxImageBytes:
				c.refuse(w, errTooLarge, id)
				return
			case n == 0:
				continue
			}
			m.Files = []bot.File{{ID: filepath.Base(upload), Name: filepath.Base(p.FileName()), MIMEType: p.Header.Get("Content-Type"), Size: n}}
		case "thumb": // The page's small copy of the photo, kept for the admin page once the photo is removed.
			if upload == "" || len(m.Files) == 0 {
				continue
			}
			if err := saveThumb(upload+thumbSuffix, p); err != nil {
				c.cfg.Logger.Info().Err(err).Msg("web: the photo's thumbnail was not kept")
			}
		}
	}
	if !idRE.MatchString(id) || !idRE.MatchString(session) {
		writeError(w, http.StatusBadRequest, "id and session must be 8 to 64 letters, digits, - or _")
		return
	}
	if m.Text == "" && len(m.Files) == 0 {
		writeError(w, http.StatusBadRequest, textsFor(c.cfg.Language).empty)
		return
	}
	m.EventID, m.ChatID, m.UserID = id, session, session
	run, dup, err := c.inbox.Accept(r.Context(), m)
	if err != nil {
		m.EventID = ""
		c.cfg.Logger.Error().Err(err).Msg("web: could not accept a message")
		writeError(w, http.StatusServiceUnavailable, textsFor(c.cfg.Language).notQueued)
		return
	}
	if dup {
		m.EventID = "" // The first delivery's image is the one the run reads.
	}
	c.feedFor(run.ID)
	writeJSON(w, http.StatusAccepted, map[string]any{"run_id": run.ID, "duplicate": dup})
}

var errTooLarge = errors.New("the image is over MaxImageBytes")

// refuse answers an upload that could not be taken. One over MaxImageBytes gets image_too_large's text in the
// chat's language with the limit and a reference (the message's id, which the log line carries), since no run
// exists to refer to; anything else is the form being cut off or malformed.
func (c *Chat) refuse(w http.ResponseWriter, err error, id string) {
	var mbe *http.MaxBytesError
	if !errors.Is(err, errTooLarge) && !errors.As(err, &mbe) {
		writeError(w, http.StatusBadRequest, "the form could not be read: "+err.Error())
		return
	}
	if !idRE.MatchString(id) {
		id = NewID()
	}
	c.cfg.Logger.Info().Str("ref", id).Int64("max_image_bytes", c.cfg.MaxImageBytes).Str("code", string(bot.CodeImageTooLarge)).
		Msg("web: an image over MAX_IMAGE_BYTES was refused")
	writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{
		"error": bot.UploadTooLargeText(c.cfg.Language, c.cfg.MaxImageBytes, id), "code": string(bot.CodeImageTooLarge)})
}

// streamWriteTimeout is how long one write of the event stream may take. The stream itself lasts as long as
// the run; a reader that stops reading is cut off.
const streamWriteTimeout = 30 * time.Second

// events streams a run's events as server-sent events, from the first, until the final reply.
func (c *Chat) events(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	rc := http.NewResponseController(w)
	sent := 0
	for {
		// The server's WriteTimeout counts from the request; each write of the stream gets its own.
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		evs, wake := c.snapshot(id, sent)
		for _, ev := range evs {
			b, _ := json.Marshal(ev)
			fmt.Fprintf(w, "data: %s\n\n", b)
			sent++
			if ev.Type == "reply" && ev.Final {
				fl.Flush()
				return
			}
		}
		fl.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-wake:
		case <-time.After(15 * time.Second):
			io.WriteString(w, ": ping\n\n") // Keeps proxies from closing an idle stream.
		}
	}
}

// snapshot returns the events after the first n and a channel closed at the next one.
func (c *Chat) snapshot(id string, n int) ([]Event, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.feedLocked(id)
	return append([]Event(nil), f.events[min(n, len(f.events)):]...), f.wake
}

func (c *Chat) feedFor(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.feedLocked(id)
}

func (c *Chat) feedLocked(id string) *feed {
	f, ok := c.feeds[id]
	if !ok {
		f = &feed{wake: make(chan struct{})}
		c.feeds[id] = f
		c.order = append(c.order, id)
		if len(c.order) > c.cfg.KeepRuns {
			delete(c.feeds, c.order[0])
			c.order = c.order[1:]
		}
	}
	return f
}

func (c *Chat) publish(id string, ev Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.feedLocked(id)
	f.events = append(f.events, ev)
	close(f.wake)
	f.wake = make(chan struct{})
}

// OpenFile opens an image the page uploaded.
func (c *Chat) OpenFile(_ context.Context, _ bot.Message, f bot.File) (io.ReadCloser, error) {
	if !strings.HasPrefix(f.ID, "img-") || strings.ContainsAny(f.ID, `/\`) {
		return nil, bot.Classified(bot.CodePlatformDownloadFailed, "web open image", fmt.Errorf("bad file id %q", f.ID))
	}
	file, err := os.Open(filepath.Join(c.cfg.UploadDir, f.ID))
	if errors.Is(err, fs.ErrNotExist) { // The run has answered: only the page's thumbnail is left.
		file, err = os.Open(filepath.Join(c.cfg.UploadDir, f.ID+thumbSuffix))
	}
	if err != nil {
		return nil, bot.Classified(bot.CodePlatformDownloadFailed, "web open image", err)
	}
	return file, nil
}

// Reply shows the answer. Publishing the same final reply twice (a retry after a crash) is harmless: the page
// stops listening at the first. The final reply removes the message's image, unless a later run reads it (a photo
// waiting for its question: that one is left in UploadDir when the run that completes it answers); its thumbnail
// stays for ThumbTTL.
func (c *Chat) Reply(_ context.Context, m bot.Message, r bot.Reply) error {
	ev := Event{Type: "reply", Text: r.Text, Final: r.Final, Choices: r.Choices}
	for _, f := range r.Files {
		ev.Files = append(ev.Files, EventFile{Name: f.Name, Type: f.MIMEType, Size: f.Size, URL: f.Path, Image: f.Image()})
	}
	if r.Diagnosis != nil {
		ev.Code = string(r.Diagnosis.Code)
	}
	c.publish(r.RunID, ev)
	if r.Final && !r.KeepFiles {
		for _, f := range m.Files {
			if strings.HasPrefix(f.ID, "img-") && !strings.ContainsAny(f.ID, `/\`) {
				os.Remove(filepath.Join(c.cfg.UploadDir, f.ID))
			}
		}
	}
	return nil
}

// Progress shows which workflow node is running.
func (c *Chat) Progress(_ context.Context, _ bot.Message, p bot.Progress) error {
	c.publish(p.RunID, Event{Type: "progress", Step: p.Step, Node: p.Node, Done: p.Done})
	return nil
}

// Stream shows the answer as Dify writes it, with the node running, if any.
func (c *Chat) Stream(_ context.Context, _ bot.Message, s bot.Stream) error {
	ev := Event{Type: "stream", Text: s.Text}
	for _, t := range s.Tasks {
		if t.Status == bot.TaskRunning {
			ev.Node = t.Title
		}
	}
	c.publish(s.RunID, ev)
	return nil
}

// NewID returns a random id of the form the API accepts, for tests and tools.
func NewID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// thumbSuffix names the page's thumbnail beside its upload; maxThumb bounds it (the page makes about 20 KB).
const (
	thumbSuffix = ".thumb"
	maxThumb    = 256 << 10
)

// saveThumb keeps the page's thumbnail when it is a small JPEG or PNG; anything else is dropped.
func saveThumb(path string, r io.Reader) error {
	b, err := io.ReadAll(io.LimitReader(r, maxThumb+1))
	if err != nil {
		return fmt.Errorf("read thumbnail: %w", err)
	}
	if ct := http.DetectContentType(b); len(b) > maxThumb || ct != "image/jpeg" && ct != "image/png" {
		return fmt.Errorf("thumbnail of %d bytes, %s: not kept", len(b), ct)
	}
	return os.WriteFile(path, b, 0o600)
}

// sweepThumbs removes thumbnails older than ThumbTTL, at most once an hour; the uploads beside them belong to
// runs and are left alone.
func (c *Chat) sweepThumbs(now time.Time) {
	c.mu.Lock()
	due := now.Sub(c.swept) >= time.Hour
	if due {
		c.swept = now
	}
	c.mu.Unlock()
	if !due {
		return
	}
	names, _ := filepath.Glob(filepath.Join(c.cfg.UploadDir, "img-*"+thumbSuffix))
	for _, n := range names {
		if fi, err := os.Stat(n); err == nil && now.Sub(fi.ModTime()) > c.cfg.ThumbTTL {
			os.Remove(n)
		}
	}
}
