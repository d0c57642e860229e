package jpegscale

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/difybot/difybot/internal/testimage"
)

// fixtures are the JPEGs the tests decode: made here with image/jpeg (baseline; 4:2:0 and greyscale) and, in
// testdata, with libjpeg-turbo's cjpeg and jpegtran (progressive, 4:4:4, 4:2:2, restart markers; see
// testdata/README.md), and the repository's EXIF photos.
func fixtures(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{
		"photo-420-q92": testimage.PhotoJPEG(1000, 750, 3),
		"photo-odd":     encode(t, testimage.Photo(333, 227, 14, 4), 80),
		"gray":          encode(t, gray(testimage.Photo(301, 199, 14, 5)), 90),
	}
	for _, glob := range []string{"testdata/*.jpg", "../../bot/testdata/exif/*.jpg"} {
		files, _ := filepath.Glob(glob)
		for _, f := range files {
			if filepath.Base(f) == "progressive-420-restart.jpg" {
				continue // image/jpeg cannot read it; TestRestartsChangeNothing decodes it.
			}
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out[filepath.Base(f)] = data
		}
	}
	return out
}

func encode(t *testing.T, m image.Image, q int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, m, &jpeg.Options{Quality: q}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func gray(m image.Image) *image.Gray {
	g := image.NewGray(m.Bounds())
	for y := range m.Bounds().Dy() {
		for x := range m.Bounds().Dx() {
			g.Set(x, y, color.GrayModel.Convert(m.At(x, y)))
		}
	}
	return g
}

// boxDown is m averaged down by 8/k over each output pixel's footprint: what a scaled decode should look like.
func boxDown(m image.Image, w, h int) *image.RGBA {
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	sw, sh := m.Bounds().Dx(), m.Bounds().Dy()
	for y := range h {
		y0, y1 := y*sh/h, max((y+1)*sh/h, y*sh/h+1)
		for x := range w {
			x0, x1 := x*sw/w, max((x+1)*sw/w, x*sw/w+1)
			var s [3]uint32
			for yy := y0; yy < y1; yy++ {
				for xx := x0; xx < x1; xx++ {
					r, g, b, _ := m.At(xx, yy).RGBA()
					s[0], s[1], s[2] = s[0]+r>>8, s[1]+g>>8, s[2]+b>>8
				}
			}
			n := uint32((y1 - y0) * (x1 - x0))
			out.Set(x, y, color.RGBA{uint8((s[0] + n/2) / n), uint8((s[1] + n/2) / n), uint8((s[2] + n/2) / n), 255})
		}
	}
	return out
}

// TestFullSizeMatchesImageJPEG decodes every fixture at 8/8 and compares it with image/jpeg's decode: the
// two IDCTs differ only in rounding.
func TestFullSizeMatchesImageJPEG(t *testing.T) {
	for name, data := range fixtures(t) {
		t.Run(name, func(t *testing.T) {
			want, err := jpeg.Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(data, 8)
			if err != nil {
				t.Fatal(err)
			}
			if got.Bounds() != want.Bounds() {
				t.Fatalf("bounds %v, image/jpeg %v", got.Bounds(), want.Bounds())
			}
			if gy, ok := got.(*image.YCbCr); ok {
				wy, ok := want.(*image.YCbCr)
				if !ok || wy.SubsampleRatio != gy.SubsampleRatio {
					t.Fatalf("got %T %v, image/jpeg %T", got, gy.SubsampleRatio, want)
				}
			} else if _, ok := want.(*image.Gray); !ok {
				t.Fatalf("got %T, image/jpeg %T", got, want)
			}
			if p := testimage.PSNR(got, want); p < 45 {
				t.Errorf("PSNR %.1f dB against image/jpeg, want ≥ 45", p)
			}
		})
	}
}

// TestScaledMatchesDownscaled decodes every fixture at 1/8 to 7/8 and compares it with image/jpeg's full
// decode averaged down to the same size.
func TestScaledMatchesDownscaled(t *testing.T) {
	for name, data := range fixtures(t) {
		full, err := jpeg.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		for k := 1; k < 8; k++ {
			got, err := Decode(data, k)
			if err != nil {
				t.Fatalf("%s at %d/8: %v", name, k, err)
			}
			b := full.Bounds()
			w, h := (b.Dx()*k+7)/8, (b.Dy()*k+7)/8
			if got.Bounds() != image.Rect(0, 0, w, h) {
				t.Fatalf("%s at %d/8: bounds %v, want %dx%d", name, k, got.Bounds(), w, h)
			}
			// Luma everywhere; colour only on photos: on the EXIF fixtures' saturated quadrants a 4:2:0 chroma
			// sample at an odd k straddles the colour edge, which a full decode's 2-pixel chroma does not.
			if p := testimage.PSNR(lumaOf(got), boxDown(lumaOf(full), w, h)); p < 30 {
				t.Errorf("%s at %d/8: luma PSNR %.1f dB against image/jpeg box-filtered, want ≥ 30", name, k, p)
			}
			if strings.HasPrefix(name, "orientation-") {
				continue
			}
			// Footprints of a size that is not a multiple of 8/k are uneven, and JPEG's edge padding enters the
			// partial blocks, so the bound is a little lower than for luma.
			if p := testimage.PSNR(got, boxDown(full, w, h)); p < 27 {
				t.Errorf("%s at %d/8: PSNR %.1f dB against image/jpeg box-filtered, want ≥ 27", name, k, p)
			}
		}
	}
}

// TestRestartsChangeNothing decodes a progressive JPEG with restart markers, which image/jpeg refuses
// ("missing 0xff00 sequence"), and checks it against the same picture encoded without them: cjpeg writes the
// same coefficients either way, so every pixel must match.
func TestRestartsChangeNothing(t *testing.T) {
	with, err := os.ReadFile("testdata/progressive-420-restart.jpg")
	if err != nil {
		t.Fatal(err)
	}
	without, err := os.ReadFile("testdata/progressive-420.jpg")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(with, []byte{0xFF, 0xD0}) {
		t.Fatal("the fixture has no restart marker")
	}
	for _, k := range []int{3, 5, 8} {
		a, err := Decode(with, k)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Decode(without, k)
		if err != nil {
			t.Fatal(err)
		}
		if p := testimage.PSNR(a, b); !math.IsInf(p, 1) {
			t.Errorf("at %d/8 the pictures differ: PSNR %.1f dB", k, p)
		}
	}
}

func TestScale(t *testing.T) {
	for _, c := range []struct{ long, side, k int }{
		{4032, 2048, 5}, {4032, 2016, 4}, {4032, 4032, 8}, {4032, 5000, 8}, {4032, 0, 8}, {4032, 504, 1}, {3000, 2048, 6}, {100, 14, 2},
	} {
		if k := Scale(c.long, c.side); k != c.k {
			t.Errorf("Scale(%d, %d) = %d, want %d", c.long, c.side, k, c.k)
		}
	}
}

// TestUnsupported checks that what this package does not decode is ErrUnsupported (for image/jpeg to try),
// and that broken data is an error, not a panic.
func TestUnsupported(t *testing.T) {
	rgbaJPEG := encode(t, testimage.Photo(64, 48, 14, 1), 90)
	cases := map[string]struct {
		data []byte
		want error
	}{
		"rgb":       {patchSOF(t, rgbaJPEG, func(s []byte) { s[6], s[9], s[12] = 'R', 'G', 'B' }), ErrUnsupported},
		"12-bit":    {patchSOF(t, rgbaJPEG, func(s []byte) { s[0] = 12 }), ErrUnsupported},
		"arith":     {patchMarker(t, rgbaJPEG, 0xC0, 0xC9), ErrUnsupported},
		"lossless":  {patchMarker(t, rgbaJPEG, 0xC0, 0xC3), ErrUnsupported},
		"not jpeg":  {[]byte("GIF89a"), nil},
		"truncated": {rgbaJPEG[:len(rgbaJPEG)/2], nil},
		"no scan":   {append(bytes.Clone(rgbaJPEG[:bytes.Index(rgbaJPEG, []byte{0xFF, 0xDA})]), 0xFF, 0xD9), nil},
	}
	for name, c := range cases {
		_, err := Decode(c.data, 4)
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
		if c.want == nil && errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: %v, want a format error", name, err)
		}
	}
}

// lumaOf is m's Y plane (or m itself when grey) as a grey image.
func lumaOf(m image.Image) *image.Gray {
	switch m := m.(type) {
	case *image.YCbCr:
		return &image.Gray{Pix: m.Y, Stride: m.YStride, Rect: m.Rect}
	case *image.Gray:
		return m
	}
	panic("not YCbCr or grey")
}

// patchMarker changes the first marker from into to.
func patchMarker(t *testing.T, data []byte, from, to byte) []byte {
	t.Helper()
	out := bytes.Clone(data)
	i := bytes.Index(out, []byte{0xFF, from})
	if i < 0 {
		t.Fatalf("no marker %x", from)
	}
	out[i+1] = to
	return out
}

// patchSOF edits the SOF0 segment's body.
func patchSOF(t *testing.T, data []byte, edit func([]byte)) []byte {
	t.Helper()
	out := bytes.Clone(data)
	i := bytes.Index(out, []byte{0xFF, 0xC0})
	if i < 0 {
		t.Fatal("no SOF0")
	}
	edit(out[i+4:])
	return out
}

func TestDecodeConfig(t *testing.T) {
	for name, data := range fixtures(t) {
		want, err := jpeg.DecodeConfig(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeConfig(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.Width != want.Width || got.Height != want.Height || got.ColorModel != want.ColorModel {
			t.Errorf("%s: %dx%d %v, image/jpeg %dx%d %v", name, got.Width, got.Height, got.ColorModel, want.Width, want.Height, want.ColorModel)
		}
	}
}

// FuzzDecode checks that no input panics, and that a decode allocates no more than its header's size calls
// for (the planes at 8/8 and a progressive JPEG's coefficients, 2 bytes per sample, whole MCUs).
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.jpg")
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil && len(data) < 8<<10 {
			f.Add(data, 5)
		}
	}
	var b bytes.Buffer
	jpeg.Encode(&b, testimage.Photo(40, 30, 14, 1), &jpeg.Options{Quality: 75})
	f.Add(b.Bytes(), 3)
	f.Fuzz(func(t *testing.T, data []byte, k int) {
		k = 1 + (k%8+8)%8
		cfg, err := DecodeConfig(data)
		if err != nil {
			return
		}
		if cfg.Width*cfg.Height > 1<<20 {
			return // Large headers are allowed; they only make the fuzzer slow.
		}
		mcuW, mcuH := (cfg.Width+31)/32*32, (cfg.Height+31)/32*32
		budget := uint64(mcuW*mcuH*3*3) + 64<<10
		var before, after runtimeStats
		before.read()
		m, err := Decode(data, k)
		after.read()
		if n := after.bytes - before.bytes; n > budget {
			t.Errorf("decoding a %dx%d header allocated %d bytes, over %d", cfg.Width, cfg.Height, n, budget)
		}
		if err != nil {
			return
		}
		// Every pixel of what is returned is there: the far corner can be read.
		if want := image.Rect(0, 0, (cfg.Width*k+7)/8, (cfg.Height*k+7)/8); m.Bounds() != want {
			t.Fatalf("bounds %v, want %v", m.Bounds(), want)
		}
		m.At(m.Bounds().Max.X-1, m.Bounds().Max.Y-1)
	})
}

type runtimeStats struct{ bytes uint64 }

func (s *runtimeStats) read() {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	s.bytes = m.TotalAlloc
}
