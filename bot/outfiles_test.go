package bot_test

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/dify/difytest"
)

// clock is an injected time that tests move.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// readAll reads a reply file's bytes from the store.
func readAll(t *testing.T, f bot.ReplyFile) []byte {
	t.Helper()
	rc, err := f.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOutputFilesReachThePlatform(t *testing.T) {
	tests := []struct {
		scenario string
		want     []string // name=type of each file, in order.
		served   []string // Sim file names whose bytes they must be.
		text     string   // In the reply.
	}{
		{"image_output", []string{"annotated.png=image/png"}, []string{"annotated.png"}, "You said: what is this?"},
		{"csv_output", []string{"labels.csv=text/csv"}, []string{"labels.csv"}, "You said: what is this?"},
		{"file_list_output", []string{"annotated.png=image/png", "labels.csv=text/csv"}, []string{"annotated.png", "labels.csv"}, "You said"},
		{"chat_files", []string{"annotated.png=image/png"}, []string{"annotated.png"}, "You said: what is this?"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			h := newHarness(t, tt.scenario, func(c *bot.Config) { c.PublicURL = "https://bot.example.com/" })
			r, err := h.send(t, bot.Message{EventID: "ev1", Text: "what is this?"})
			if err != nil || r.Status != bot.RunSucceeded {
				t.Fatalf("run %s %v: %s", r.Status, err, r.Reply)
			}
			finals := h.plat.Finals()
			if len(finals) != 1 || !strings.Contains(finals[0].Text, tt.text) {
				t.Fatalf("finals %+v", finals)
			}
			var got []string
			for i, f := range finals[0].Files {
				got = append(got, f.Name+"="+f.MIMEType)
				if !bytes.Equal(readAll(t, f), h.sim.File(tt.served[i])) {
					t.Errorf("%s: the bytes sent differ from the bytes Dify served", f.Name)
				}
				if !strings.HasPrefix(f.Path, "/files/"+f.ID+"?") || f.URL != "https://bot.example.com"+f.Path {
					t.Errorf("%s: path %q url %q", f.Name, f.Path, f.URL)
				}
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("files %v, want %v", got, tt.want)
			}
		})
	}
}

// /files/{id} serves the file to its signed link only: wrong, altered or expired signatures and unknown ids
// all get the same bare 403, and the file is deleted once OUTPUT_FILE_TTL has passed.
func TestFilesLinkAndTTL(t *testing.T) {
	clk := &clock{now: time.Now()}
	h := newHarness(t, "image_output", func(c *bot.Config) { c.Now, c.OutputFileTTL = clk.Now, 24*time.Hour })
	if _, err := h.send(t, bot.Message{EventID: "ev1", Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	f := h.plat.Finals()[0].Files[0]
	if f.URL != "" {
		t.Errorf("without PUBLIC_URL the file has a public URL %q", f.URL)
	}
	srv := httptest.NewServer(routeFiles(bot.FilesHandler(bot.FilesConfig{Store: h.store, Now: clk.Now})))
	defer srv.Close()
	get := func(path string) (int, []byte, http.Header) {
		t.Helper()
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b, res.Header
	}
	status, body, hdr := get(f.Path)
	if status != 200 || !bytes.Equal(body, h.sim.File("annotated.png")) || hdr.Get("Content-Type") != "image/png" || hdr.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("GET signed link: %d, %d bytes, %v", status, len(body), hdr)
	}
	u, _ := url.Parse(f.Path)
	q := u.Query()
	altered := func(k, v string) string {
		q2 := url.Values{}
		for kk, vv := range q {
			q2[kk] = vv
		}
		q2.Set(k, v)
		if v == "" {
			q2.Del(k)
		}
		return u.Path + "?" + q2.Encode()
	}
	sig := q.Get("sig")
	flipped := string(rune(sig[0]^1)) + sig[1:]
	exp := q.Get("exp")
	for name, path := range map[string]string{
		"no signature":    altered("sig", ""),
		"wrong signature": altered("sig", flipped),
		"later expiry":    altered("exp", exp+"0"),
		"other file":      strings.Replace(f.Path, f.ID, f.ID+"x", 1),
		"as a preview":    altered("v", "preview"),
	} {
		status, body, _ := get(path)
		if status != 403 || strings.TrimSpace(string(body)) != "forbidden" {
			t.Errorf("%s: %d %q, want a bare 403", name, status, body)
		}
	}
	// A day later the link has expired (403), and the file is deleted from the store.
	clk.Add(24*time.Hour + time.Second)
	if status, _, _ := get(f.Path); status != 403 {
		t.Errorf("expired link: %d", status)
	}
	if err := h.bot.ExpireOutputFiles(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.store.OutputFileData(context.Background(), f.ID, false); !errors.Is(err, bot.ErrNotFound) {
		t.Errorf("file still stored after its TTL: %v", err)
	}
}

// routeFiles mounts the handler the way serve does.
func routeFiles(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /files/{id}", h)
	return mux
}

// A file that cannot be fetched (its link expired, or it is too large) becomes a note: the text still arrives
// and the run succeeds; the format step records why.
func TestUnfetchableFileIsANote(t *testing.T) {
	tests := []struct {
		scenario string
		opts     option
		note     string
	}{
		{"file_expired", nil, "(The file annotated.png could not be fetched from Dify, so it is not attached.)"},
		{"image_output", func(c *bot.Config) { c.MaxOutputFileBytes = 100 }, "(The file annotated.png was not sent: it is larger than 100 bytes.)"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			var opts []option
			if tt.opts != nil {
				opts = append(opts, tt.opts)
			}
			h := newHarness(t, tt.scenario, opts...)
			r, err := h.send(t, bot.Message{EventID: "ev1", Text: "what is this?"})
			if err != nil || r.Status != bot.RunSucceeded {
				t.Fatalf("run %s %v", r.Status, err)
			}
			if !strings.Contains(r.Reply, "You said: what is this?") || !strings.HasSuffix(r.Reply, tt.note) {
				t.Errorf("reply %q, want the text and the note %q", r.Reply, tt.note)
			}
			if fs := h.plat.Finals()[0].Files; len(fs) != 0 {
				t.Errorf("files sent: %+v", fs)
			}
			steps, _ := h.store.Steps(context.Background(), r.ID)
			var why string
			for _, s := range steps {
				if s.Name == bot.StepFormat {
					why, _ = s.Fields["files_failed"].(string)
				}
			}
			if !strings.HasPrefix(why, "annotated.png: ") {
				t.Errorf("format step files_failed = %q", why)
			}
		})
	}
}

// An attempt that resumes after a crash (its reply failed here) sends the files it fetched, without fetching
// them again: Dify's links may have expired by then.
func TestResumedAttemptKeepsItsFiles(t *testing.T) {
	h := newHarness(t, "image_output")
	h.plat.FailReplies(errors.New("slack is down"))
	r, err := h.send(t, bot.Message{EventID: "ev1", Text: "hi"})
	if err == nil {
		t.Fatalf("first attempt: %v", r.Status)
	}
	fetched := h.sim.Calls(difytest.RouteFile)
	h.plat.FailReplies(nil)
	if err := h.bot.Process(context.Background(), r.ID); err != nil {
		t.Fatal(err)
	}
	finals := h.plat.Finals()
	if n := h.sim.Calls(difytest.RouteFile); n != fetched || fetched != 1 {
		t.Errorf("file fetched %d then %d times, want once", fetched, n)
	}
	if len(finals) == 0 || len(finals[len(finals)-1].Files) != 1 {
		t.Fatalf("finals %+v", finals)
	}
}

func TestAnswersReadWell(t *testing.T) {
	tests := []struct {
		scenario, key string
		want, not     []string
	}{
		{"think_output", "", []string{"You said: hi."}, []string{"<think>", "</think>", "I should describe"}},
		{"object_output", "", []string{"**label**: cat\n**confidence**: 0.93\n**tags**:\n  - animal\n  - indoor\n**box**:\n  **x**: 12"}, []string{"map[", "{"}},
		{"image_output", "image,text", []string{"You said: hi."}, []string{"map[", "__dify__file__"}},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			h := newHarness(t, tt.scenario, func(c *bot.Config) { c.OutputKey = tt.key })
			r, err := h.send(t, bot.Message{EventID: "ev1", Text: "hi"})
			if err != nil || r.Status != bot.RunSucceeded {
				t.Fatalf("run %s %v: %q", r.Status, err, r.Reply)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.Reply, w) {
					t.Errorf("reply %q lacks %q", r.Reply, w)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(r.Reply, n) {
					t.Errorf("reply %q has %q", r.Reply, n)
				}
			}
		})
	}
}

// A large photo gets a JPEG preview within LINE's 1 MB, made by the bot.
func TestLargeImageGetsAPreview(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 1400, 1000))
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range img.Pix {
		img.Pix[i] = uint8(rng.Uint32())
	}
	var big bytes.Buffer
	png.Encode(&big, img)
	if big.Len() <= bot.PreviewMaxBytes {
		t.Fatalf("test image is only %d bytes", big.Len())
	}
	preview, err := bot.MakePreview(big.Bytes(), bot.PreviewMaxBytes)
	if err != nil {
		t.Fatal(err)
	}
	if len(preview) > bot.PreviewMaxBytes {
		t.Errorf("preview is %d bytes", len(preview))
	}
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(preview))
	if err != nil || cfg.Width > 1024 || cfg.Height > 1024 || cfg.ColorModel != color.YCbCrModel {
		t.Errorf("preview %+v, %v", cfg, err)
	}
}

// BenchmarkPreview measures making LINE's preview of a 12-megapixel photo (a 4000×3000 JPEG of noise, the
// worst case for its size).
func BenchmarkPreview(b *testing.B) {
	img := image.NewRGBA(image.Rect(0, 0, 4000, 3000))
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range img.Pix {
		img.Pix[i] = uint8(rng.Uint32())
	}
	var src bytes.Buffer
	jpeg.Encode(&src, img, &jpeg.Options{Quality: 90})
	b.SetBytes(int64(src.Len()))
	for b.Loop() {
		if _, err := bot.MakePreview(src.Bytes(), bot.PreviewMaxBytes); err != nil {
			b.Fatal(err)
		}
	}
}
