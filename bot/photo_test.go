package bot_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	_ "image/jpeg" // Decodes what was uploaded.
	_ "image/png"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/dify"
	"github.com/difybot/difybot/internal/testimage"
)

// uploads keeps every file the bot uploads to Dify, on the way to the simulator.
type uploads struct {
	bot.Workflows
	mu    sync.Mutex
	files []upload
}

type upload struct {
	name, mime string
	data       []byte
}

func (u *uploads) UploadFile(ctx context.Context, up dify.Upload) (*dify.File, error) {
	data, err := io.ReadAll(up.Body)
	if err != nil {
		return nil, err
	}
	u.mu.Lock()
	u.files = append(u.files, upload{up.Name, up.MIMEType, data})
	u.mu.Unlock()
	up.Body = bytes.NewReader(data)
	return u.Workflows.UploadFile(ctx, up)
}

func (u *uploads) last(t *testing.T) upload {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.files) == 0 {
		t.Fatal("nothing was uploaded")
	}
	return u.files[len(u.files)-1]
}

// photoHarness is the pipeline against the simulator with every upload kept.
func photoHarness(t *testing.T, opts ...option) (*harness, *uploads) {
	up := &uploads{}
	opts = append(opts, func(c *bot.Config) { up.Workflows = c.Workflows; c.Workflows = up })
	return newHarness(t, "ok", opts...), up
}

// sendPhoto sends data as a photo and returns the run, which must have been answered.
func sendPhoto(t *testing.T, h *harness, id string, data []byte) bot.Run {
	t.Helper()
	h.plat.AddFile(id, data)
	r, err := h.send(t, bot.Message{EventID: "ev-" + id, Text: "what is this?", Files: []bot.File{{ID: id, Name: id}}})
	if err != nil {
		t.Fatalf("Process: %v", err)
	}
	if r.Status != bot.RunSucceeded {
		t.Fatalf("run %s: %s %v", r.Status, r.Reply, r.Diagnosis)
	}
	return r
}

// checkFields are the check step's record of a run.
func checkFields(t *testing.T, h *harness, runID string) map[string]any {
	t.Helper()
	steps, err := h.store.Steps(context.Background(), runID)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		if s.Name == bot.StepCheck {
			return s.Fields
		}
	}
	t.Fatal("no check step")
	return nil
}

func decodeUpload(t *testing.T, u upload) (image.Image, string) {
	t.Helper()
	m, format, err := image.Decode(bytes.NewReader(u.data))
	if err != nil {
		t.Fatalf("the upload %s (%s) does not decode: %v", u.name, u.mime, err)
	}
	return m, format
}

// near reports a colour within tol of want in every channel (JPEG moves colours a little).
func near(c color.Color, want color.RGBA, tol int) bool {
	r, g, b, _ := c.RGBA()
	d := func(a uint32, w uint8) bool { return abs(int(a>>8)-int(w)) <= tol }
	return d(r, want.R) && d(g, want.G) && d(b, want.B)
}

func abs(v int) int { return max(v, -v) }

// The fixtures are one upright 48×32 picture stored as a camera stores it for each EXIF orientation (see
// testdata/exif/gen.go). Whatever the orientation, Dify gets it upright: 48×32, red at the top left, green at
// the top right, blue at the bottom left. Orientation 1 goes as it came; the others are re-encoded without EXIF.
func TestPhotoOrientation(t *testing.T) {
	h, up := photoHarness(t)
	corners := []struct {
		x, y int
		want color.RGBA
	}{{2, 2, color.RGBA{220, 20, 20, 255}}, {45, 2, color.RGBA{20, 200, 20, 255}}, {2, 29, color.RGBA{20, 20, 220, 255}}, {45, 29, color.RGBA{230, 230, 20, 255}}}
	for o := 1; o <= 8; o++ {
		t.Run(fmt.Sprint("orientation-", o), func(t *testing.T) {
			data, err := os.ReadFile(fmt.Sprintf("testdata/exif/orientation-%d.jpg", o))
			if err != nil {
				t.Fatal(err)
			}
			r := sendPhoto(t, h, fmt.Sprint("exif", o), data)
			u := up.last(t)
			m, format := decodeUpload(t, u)
			if b := m.Bounds(); format != "jpeg" || b.Dx() != 48 || b.Dy() != 32 {
				t.Fatalf("uploaded %s %dx%d, want jpeg 48x32", format, b.Dx(), b.Dy())
			}
			for _, c := range corners {
				if got := m.At(c.x, c.y); !near(got, c.want, 40) {
					t.Errorf("pixel (%d,%d) = %v, want about %v", c.x, c.y, got, c.want)
				}
			}
			if !strings.Contains(r.Reply, "48×32 px") {
				t.Errorf("reply %q", r.Reply)
			}
			switch {
			case o == 1 && !bytes.Equal(u.data, data):
				t.Error("an upright photo was changed; it should go byte for byte")
			case o != 1 && bytes.Contains(u.data, []byte("Exif\x00\x00")):
				t.Error("the re-encoded photo still carries EXIF (and its GPS position)")
			}
		})
	}
}

// A 30 MB photo is over Dify's 10 MB limit: it is shrunk to IMAGE_MAX_SIDE and answered.
func TestLargePhotoShrunkAndAnswered(t *testing.T) {
	t.Parallel() // The slowest tests overlap.
	data := testimage.JPEG(testimage.Photo(4800, 3600, 120, 3), 100)
	if len(data) < 30<<20 {
		t.Fatalf("the generated photo is %d bytes, want at least 30 MB", len(data))
	}
	h, up := photoHarness(t, func(c *bot.Config) { c.MaxImageBytes = 40 << 20 })
	r := sendPhoto(t, h, "big.jpg", data)
	u := up.last(t)
	m, format := decodeUpload(t, u)
	if b := m.Bounds(); format != "jpeg" || b.Dx() != 2048 || b.Dy() != 1536 {
		t.Fatalf("uploaded %s %dx%d, want jpeg 2048x1536", format, b.Dx(), b.Dy())
	}
	if len(u.data) > 10<<20 || !strings.Contains(r.Reply, "Received a JPEG image, 2048×1536 px") {
		t.Errorf("uploaded %d bytes; reply %q", len(u.data), r.Reply)
	}
	f := checkFields(t, h, r.ID)
	if f["original"] != fmt.Sprintf("jpeg 4800x3600 %d B", len(data)) || f["sent"] != fmt.Sprintf("jpeg 2048x1536 %d B", len(u.data)) {
		t.Errorf("check step fields %v", f)
	}
	if ms, ok := f["processing_ms"].(float64); !ok || ms <= 0 {
		t.Errorf("processing_ms = %v", f["processing_ms"])
	}
}

// Over Dify's limit with IMAGE_MAX_SIDE=0 (never resize for the side), a photo is still made to fit.
func TestPhotoMadeToFitWithoutMaxSide(t *testing.T) {
	t.Parallel()
	data := testimage.JPEG(testimage.Photo(1600, 1200, 120, 4), 100)
	h, up := photoHarness(t, func(c *bot.Config) { c.ImageMaxSide = -1 })
	h.sim.Sim.SetMaxImageBytes(1 << 20)
	if len(data) <= 1<<20 {
		t.Fatalf("the photo is %d bytes, want over 1 MiB", len(data))
	}
	sendPhoto(t, h, "wide.jpg", data)
	u := up.last(t)
	m, _ := decodeUpload(t, u)
	// 4:3 kept, to the pixel the sides are rounded to.
	if w, h := m.Bounds().Dx(), m.Bounds().Dy(); len(u.data) > 1<<20 || w >= 1600 || math.Abs(float64(w)*3/4-float64(h)) > 0.5 {
		t.Errorf("uploaded %d bytes at %v", len(u.data), m.Bounds())
	}
}

// A screenshot over IMAGE_MAX_SIDE is shrunk and stays a PNG: its text stays sharp, and it is no larger.
func TestScreenshotStaysPNG(t *testing.T) {
	t.Parallel()
	h, up := photoHarness(t, func(c *bot.Config) { c.ImageMaxSide = 800 })
	r := sendPhoto(t, h, "screen.png", testimage.Screenshot(1200, 750))
	u := up.last(t)
	m, format := decodeUpload(t, u)
	if b := m.Bounds(); format != "png" || u.mime != "image/png" || !strings.HasSuffix(u.name, ".png") || b.Dx() != 800 || b.Dy() != 500 {
		t.Fatalf("uploaded %s %s %s %v, want an 800x500 PNG", u.name, u.mime, format, b)
	}
	if f := checkFields(t, h, r.ID); !strings.HasPrefix(fmt.Sprint(f["sent"]), "png 800x500 ") {
		t.Errorf("check step fields %v", f)
	}
}

// A GIF goes as it came, even over IMAGE_MAX_SIDE: shrinking would keep one frame of an animation.
func TestGIFPassesThrough(t *testing.T) {
	h, up := photoHarness(t)
	pal := color.Palette{color.Black, color.White}
	a := &gif.GIF{}
	for i := range 2 {
		f := image.NewPaletted(image.Rect(0, 0, 3000, 200), pal)
		f.SetColorIndex(i, 0, 1)
		a.Image, a.Delay = append(a.Image, f), append(a.Delay, 10)
	}
	var buf bytes.Buffer
	if err := gif.EncodeAll(&buf, a); err != nil {
		t.Fatal(err)
	}
	sendPhoto(t, h, "anim.gif", buf.Bytes())
	if u := up.last(t); !bytes.Equal(u.data, buf.Bytes()) || u.mime != "image/gif" {
		t.Errorf("the GIF was changed: %d bytes as %s, sent %d", len(u.data), u.mime, buf.Len())
	}
}

// HEIC (an iPhone photo sent as a file) is converted to JPEG; WebP goes as it is unless it must shrink.
func TestHEICAndWebP(t *testing.T) {
	t.Parallel()
	heic, err := os.ReadFile("testdata/photos/quadrants.heic")
	if err != nil {
		t.Fatal(err)
	}
	webp, err := os.ReadFile("testdata/photos/quadrants.webp")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		data    []byte
		maxSide int
		format  string
		w, h    int
	}{
		{"IMG_0001.HEIC", heic, 0, "jpeg", 640, 480},
		{"small.webp", webp, 0, "webp", 640, 480},
		{"shrunk.webp", webp, 320, "jpeg", 320, 240},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, up := photoHarness(t, func(c *bot.Config) { c.ImageMaxSide = tc.maxSide })
			sendPhoto(t, h, tc.name, tc.data)
			u := up.last(t)
			if tc.format == "webp" {
				if !bytes.Equal(u.data, tc.data) || u.mime != "image/webp" {
					t.Errorf("the WebP was changed: %s %d bytes", u.mime, len(u.data))
				}
				return
			}
			m, format := decodeUpload(t, u)
			if b := m.Bounds(); format != tc.format || b.Dx() != tc.w || b.Dy() != tc.h || !strings.HasSuffix(u.name, ".jpg") {
				t.Fatalf("uploaded %s as %s %v", u.name, format, b)
			}
			if got := m.At(tc.w/10, tc.h/10); !near(got, color.RGBA{220, 20, 20, 255}, 40) {
				t.Errorf("top left is %v, want red", got)
			}
		})
	}
}

// A decompression bomb — a 1 KB PNG that claims 100,000×100,000 pixels — is refused before it is decoded,
// with its dimensions in the diagnosis.
func TestDecompressionBombRefused(t *testing.T) {
	h, up := photoHarness(t)
	h.plat.AddFile("bomb", testimage.BombPNG(100_000, 100_000))
	r, err := h.send(t, bot.Message{EventID: "ev-bomb", Files: []bot.File{{ID: "bomb", Name: "bomb.png"}}, Text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != bot.RunFailed || r.Diagnosis == nil || r.Diagnosis.Code != bot.CodeImageTooLarge ||
		!strings.Contains(r.Diagnosis.Detail, "100000×100000 pixels") || !strings.Contains(r.Diagnosis.Detail, "MAX_IMAGE_PIXELS") {
		t.Fatalf("run %s %+v", r.Status, r.Diagnosis)
	}
	if len(up.files) != 0 {
		t.Error("the bomb was uploaded")
	}
}
