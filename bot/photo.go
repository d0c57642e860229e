package bot

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	stddraw "image/draw"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"math"
	"os"
	"time"

	"github.com/difybot/difybot/internal/jpegenc"
	"github.com/difybot/difybot/internal/jpegscale"
	"github.com/gen2brain/heic"
	"golang.org/x/image/webp"
)

// What the check step makes of a photo before it is uploaded (step 4): upright, no larger than the model will
// look at, and within Dify's limit. Vision models scale what they get to about 1.5 MP, so pixels past
// IMAGE_MAX_SIDE cost upload and model time for nothing.
const (
	// DefaultImageMaxSide is IMAGE_MAX_SIDE's default: the long side photos are scaled down to.
	DefaultImageMaxSide = 2048
	// DefaultMaxImagePixels is MAX_IMAGE_PIXELS's default: larger images are refused without being decoded.
	DefaultMaxImagePixels = 40_000_000
	// DefaultMaxImageBytes is MAX_IMAGE_BYTES's default: the largest download. What is uploaded is shrunk to
	// fit Dify's own limit.
	DefaultMaxImageBytes = 25 << 20
	// difyImageLimit is Dify's UPLOAD_IMAGE_FILE_SIZE_LIMIT default, for a Dify whose /v1/parameters does not say.
	difyImageLimit = 10 << 20
	// jpegQuality keeps a photo looking as it did while taking about a tenth of a phone camera's bytes.
	jpegQuality = 85
	// decodeSlots is how many photos are decoded at once per process: a phone photo takes about 17 MB while it is
	// shrunk (the file, the 5/8 decode, the result), so this bounds memory whatever arrives together, and two
	// keep both cores of a small machine busy.
	decodeSlots = 2
	// fitTries is how many smaller sizes are tried for a photo still over Dify's limit at IMAGE_MAX_SIDE.
	fitTries = 4
)

// photoLimits are what an image must fit before upload.
type photoLimits struct {
	maxSide   int   // The long side; 0 never resizes.
	maxPixels int64 // Larger images are not decoded.
	bytes     int64 // Dify's limit for the upload.
}

// photoLimits are the limits for the app a: Dify's image limit (its default when it does not say) and the bot's.
func (b *Bot) photoLimits(a *App) photoLimits {
	lim := photoLimits{maxSide: max(b.cfg.ImageMaxSide, 0), maxPixels: b.cfg.MaxImagePixels, bytes: a.ImageLimit}
	if lim.bytes <= 0 {
		lim.bytes = difyImageLimit
	}
	return lim
}

// form is one state of an image: its format, size in pixels and bytes.
type form struct {
	format string
	w, h   int
	bytes  int64
}

func (f form) String() string {
	if f.w == 0 {
		return fmt.Sprintf("%s %d B", f.format, f.bytes)
	}
	return fmt.Sprintf("%s %dx%d %d B", f.format, f.w, f.h, f.bytes)
}

// shaped is what the check step records of one image: what came, what is sent, and how long that took.
type shaped struct {
	from, to form
	took     time.Duration
}

// formats names the sniffed types the way the step record and the texts do.
var formats = map[string]string{
	"image/jpeg": "jpeg", "image/png": "png", "image/gif": "gif", "image/webp": "webp", "image/svg+xml": "svg", "image/heic": "heic",
}

// shape makes im fit lim: it reads the image's size before anything else (a picture over lim.maxPixels is
// refused undecoded), and decodes only what must change — a JPEG whose EXIF turns it, a side over lim.maxSide,
// bytes over Dify's limit, or HEIC, which Dify does not take. Everything else goes as it came, byte for byte.
func (b *Bot) shape(ctx context.Context, im *attachment, lim photoLimits) (shaped, error) {
	start := time.Now()
	s := shaped{from: form{format: formats[im.mimeType], bytes: im.size}}
	done := func() (shaped, error) {
		s.to = form{format: formats[im.mimeType], w: s.from.w, h: s.from.h, bytes: im.size}
		s.took = time.Since(start)
		return s, nil
	}
	if im.mimeType == "image/svg+xml" {
		if im.size > lim.bytes {
			return s, Classified(CodeImageTooLarge, "check", fmt.Errorf("%s is an SVG of %d bytes, over Dify's image limit of %d bytes; a drawing is not shrunk", im.name, im.size, lim.bytes))
		}
		return done()
	}
	cfg, err := decodeConfig(im)
	if err != nil {
		return s, Classified(CodeImageUnsupported, "check", fmt.Errorf("%s could not be read as %s: %w", im.name, s.from.format, err))
	}
	s.from.w, s.from.h = cfg.Width, cfg.Height
	if px := int64(cfg.Width) * int64(cfg.Height); px > lim.maxPixels {
		return s, Classified(CodeImageTooLarge, "check", fmt.Errorf("%s is %d×%d pixels (%.1f MP), over the %.1f MP limit (MAX_IMAGE_PIXELS); it was not decoded",
			im.name, cfg.Width, cfg.Height, float64(px)/1e6, float64(lim.maxPixels)/1e6))
	}
	if im.mimeType == "image/gif" || (im.mimeType == "image/webp" && animatedWebP(im)) {
		// Shrinking would keep one frame of an animation: it goes as it is, or not at all.
		if im.size > lim.bytes {
			return s, Classified(CodeImageTooLarge, "check", fmt.Errorf("%s is a GIF or animated WebP of %d bytes, over Dify's image limit of %d bytes; animations are not shrunk", im.name, im.size, lim.bytes))
		}
		return done()
	}
	o := 1
	if im.mimeType == "image/jpeg" {
		o = jpegOrientation(io.NewSectionReader(im.file, 0, im.size))
	}
	long := max(cfg.Width, cfg.Height)
	tooLong := lim.maxSide > 0 && long > lim.maxSide
	if o == 1 && !tooLong && im.size <= lim.bytes && im.mimeType != "image/heic" {
		return done()
	}
	if err := b.reshape(ctx, im, &s, o, lim); err != nil {
		return s, err
	}
	s.took = time.Since(start)
	return s, nil
}

// codecs read the formats the check step looks into, by sniffed type. GIF is only measured, never decoded.
var codecs = map[string]struct {
	config func(io.Reader) (image.Config, error)
	decode func(io.Reader) (image.Image, error)
}{
	"image/jpeg": {jpeg.DecodeConfig, jpeg.Decode},
	"image/png":  {png.DecodeConfig, png.Decode},
	"image/gif":  {gif.DecodeConfig, nil},
	"image/webp": {webp.DecodeConfig, webp.Decode},
	"image/heic": {heic.DecodeConfig, heic.Decode},
}

// decodeConfig reads an image's size from its header.
func decodeConfig(im *attachment) (image.Config, error) {
	return codecs[im.mimeType].config(bufio.NewReader(io.NewSectionReader(im.file, 0, im.size)))
}

// decode reads im. A JPEG whose long side is to become side is decoded at the smallest scale k/8 still at
// least side long (internal/jpegscale), which skips most of a full decode's work; what jpegscale does not
// read (CMYK, arithmetic coding, 12-bit) or finds broken goes to image/jpeg.
func decode(im *attachment, long, side int) (image.Image, error) {
	if im.mimeType == "image/jpeg" {
		if m, err := decodeScaled(im, jpegscale.Scale(long, side)); err == nil {
			return m, nil
		}
	}
	return codecs[im.mimeType].decode(bufio.NewReaderSize(io.NewSectionReader(im.file, 0, im.size), 64<<10))
}

func decodeScaled(im *attachment, k int) (image.Image, error) {
	data := make([]byte, im.size)
	if _, err := im.file.ReadAt(data, 0); err != nil {
		return nil, err
	}
	return jpegscale.Decode(data, k)
}

// animatedWebP reports an extended WebP whose header sets the animation flag.
func animatedWebP(im *attachment) bool {
	var h [21]byte
	if _, err := im.file.ReadAt(h[:], 0); err != nil {
		return false
	}
	return string(h[12:16]) == "VP8X" && h[20]&0x02 != 0
}

// reshape decodes im (one of decodeSlots at a time), turns it upright, scales it to lim.maxSide, and encodes
// it again (see encode). A result over Dify's limit is made smaller until it fits.
func (b *Bot) reshape(ctx context.Context, im *attachment, s *shaped, o int, lim photoLimits) error {
	// A HEIC photo is decoded by libheif compiled to WebAssembly, whose memory grows to some 300 MB for 12 MP:
	// it takes every slot, so it never runs beside another decode.
	weight := int64(1)
	if im.mimeType == "image/heic" {
		weight = decodeSlots
	}
	if err := b.decodes.Acquire(ctx, weight); err != nil {
		return fmt.Errorf("check: wait to decode %s: %w", im.name, err)
	}
	defer b.decodes.Release(weight)
	m, err := decode(im, max(s.from.w, s.from.h), lim.maxSide)
	if err != nil {
		return Classified(CodeImageUnsupported, "check", fmt.Errorf("%s could not be decoded as %s: %w", im.name, s.from.format, err))
	}
	if im.mimeType == "image/heic" {
		s.from.w, s.from.h = m.Bounds().Dx(), m.Bounds().Dy() // HEIC's header may not count its own turn.
	}
	w, h := s.from.w, s.from.h // A JPEG may be decoded smaller than this already.
	side := max(w, h)
	if lim.maxSide > 0 {
		side = min(side, lim.maxSide)
	}
	for try := 1; ; try++ {
		sw, sh := fitSide(w, h, side)
		out := m
		if sw != m.Bounds().Dx() || sh != m.Bounds().Dy() {
			out = scaleImage(m, sw, sh)
		}
		out = orient(out, o)
		f, to, err := b.encode(out, im, lim.bytes)
		if err != nil {
			return err
		}
		if to.bytes <= lim.bytes {
			im.replace(f, to)
			s.to = to
			return nil
		}
		f.Close()
		os.Remove(f.Name())
		if try == fitTries {
			return Classified(CodeImageTooLarge, "check", fmt.Errorf("%s is still %d bytes at %d×%d pixels, over Dify's image limit of %d bytes", im.name, to.bytes, to.w, to.h, lim.bytes))
		}
		// Bytes go roughly with the area; aim a little under.
		side = int(float64(side) * math.Sqrt(float64(lim.bytes)/float64(to.bytes)) * 0.9)
		if side < 1 {
			side = 1
		}
	}
}

// fitSide is w×h scaled so that its long side is at most side, keeping the aspect.
func fitSide(w, h, side int) (int, int) {
	long := max(w, h)
	if long <= side {
		return w, h
	}
	sw := max(1, int(math.Round(float64(w)*float64(side)/float64(long))))
	sh := max(1, int(math.Round(float64(h)*float64(side)/float64(long))))
	return sw, sh
}

// encode writes m to a new temporary file as JPEG, or, when the original was a PNG, as PNG if that is no larger
// than the JPEG would be (a screenshot's text stays sharp at no cost in bytes). Nothing of the original's
// metadata (EXIF, GPS) is carried over.
func (b *Bot) encode(m image.Image, im *attachment, limit int64) (*os.File, form, error) {
	to := form{format: "jpeg", w: m.Bounds().Dx(), h: m.Bounds().Dy()}
	var j bytes.Buffer
	if err := encodeJPEG(&j, opaque(m)); err != nil {
		return nil, form{}, fmt.Errorf("check: encode %s: %w", im.name, err)
	}
	out := j.Bytes()
	if im.mimeType == "image/png" {
		var p bytes.Buffer
		if err := png.Encode(&p, m); err != nil {
			return nil, form{}, fmt.Errorf("check: encode %s: %w", im.name, err)
		}
		if int64(p.Len()) <= limit && p.Len() <= j.Len() {
			out, to.format = p.Bytes(), "png"
		}
	}
	to.bytes = int64(len(out))
	f, err := os.CreateTemp(b.cfg.TempDir, "difybot-image-*")
	if err != nil {
		return nil, form{}, fmt.Errorf("check: %w", err)
	}
	if _, err := f.Write(out); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, form{}, fmt.Errorf("check: %w", err)
	}
	return f, to, nil
}

// encodeJPEG writes m at jpegQuality: a photo's 4:2:0 planes (or grey) by internal/jpegenc, which is faster,
// anything else by image/jpeg.
func encodeJPEG(w io.Writer, m image.Image) error {
	if err := jpegenc.Encode(w, m, jpegQuality); !errors.Is(err, jpegenc.ErrUnsupported) {
		return err
	}
	return jpeg.Encode(w, m, &jpeg.Options{Quality: jpegQuality})
}

// opaque puts a picture with transparency on white, which is how it looked in the chat; JPEG has no alpha.
func opaque(m image.Image) image.Image {
	if o, ok := m.(interface{ Opaque() bool }); !ok || o.Opaque() {
		return m
	}
	out := image.NewRGBA(image.Rect(0, 0, m.Bounds().Dx(), m.Bounds().Dy()))
	stddraw.Draw(out, out.Rect, image.NewUniform(color.White), image.Point{}, stddraw.Src)
	stddraw.Draw(out, out.Rect, m, m.Bounds().Min, stddraw.Over)
	return out
}

// replace makes f, encoded as to, the file that is uploaded.
func (im *attachment) replace(f *os.File, to form) {
	im.close()
	im.file, im.size = f, to.bytes
	im.mimeType = "image/" + to.format
}

// isHEIC reports an ISO base media file whose brand is HEIF's with HEVC pictures (an iPhone photo).
func isHEIC(head []byte) bool {
	if len(head) < 16 || string(head[4:8]) != "ftyp" {
		return false
	}
	size := int(uint32(head[0])<<24 | uint32(head[1])<<16 | uint32(head[2])<<8 | uint32(head[3]))
	box := head[8:min(len(head), max(size, 16))]
	heif := []string{"heic", "heix", "hevc", "hevx", "heim", "heis"}
	for i := 0; i+4 <= len(box); i += 4 {
		if i == 4 {
			continue // The minor version.
		}
		for _, brand := range heif {
			if string(box[i:i+4]) == brand {
				return true
			}
		}
	}
	return false
}
