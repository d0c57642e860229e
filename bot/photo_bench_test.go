package bot

import (
	"bytes"
	"context"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"testing"

	"github.com/difybot/difybot/internal/jpegenc"
	"github.com/difybot/difybot/internal/jpegscale"
	"github.com/difybot/difybot/internal/testimage"
	"golang.org/x/image/draw"
	"golang.org/x/sync/semaphore"
)

// shaper is a Bot with only what shape needs.
func shaper(tb testing.TB) *Bot {
	return &Bot{cfg: Config{TempDir: tb.TempDir()}, decodes: semaphore.NewWeighted(decodeSlots)}
}

// spool writes data to a temporary file as fetch would.
func spool(tb testing.TB, data []byte, name string) *attachment {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		tb.Fatal(err)
	}
	im := &attachment{file: f, size: int64(len(data)), name: name}
	if err := im.sniff(); err != nil {
		tb.Fatal(err)
	}
	return im
}

var benchLimits = photoLimits{maxSide: DefaultImageMaxSide, maxPixels: DefaultMaxImagePixels, bytes: difyImageLimit}

// BenchmarkShape measures the check step's work on one image, on one core: a 12 MP phone photo of about 4 MB
// (as it comes, and turned by EXIF as portrait photos are), a screenshot, and a small photo that goes as it is.
// It reports the share of the original's bytes that is uploaded.
func BenchmarkShape(b *testing.B) {
	phone := testimage.PhotoJPEG(4032, 3024, 1)
	cases := []struct {
		name string
		data []byte
		file string
	}{
		{"phone-4032x3024-jpeg", phone, "phone.jpg"},
		{"phone-portrait-exif6", testimage.WithOrientation(phone, 6, false), "portrait.jpg"},
		{"screenshot-2880x1800-png", testimage.Screenshot(2880, 1800), "screen.png"},
		{"small-1280x960-as-is", testimage.PhotoJPEG(1280, 960, 2), "small.jpg"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			bt := shaper(b)
			b.SetBytes(int64(len(c.data)))
			var sent, side float64
			for b.Loop() {
				b.StopTimer()
				im := spool(b, c.data, c.file)
				b.StartTimer()
				s, err := bt.shape(context.Background(), im, benchLimits)
				if err != nil {
					b.Fatal(err)
				}
				sent, side = float64(s.to.bytes)/float64(len(c.data))*100, float64(max(s.to.w, s.to.h))
				b.StopTimer()
				im.close()
				b.StartTimer()
			}
			b.ReportMetric(sent, "%sent")
			b.ReportMetric(side, "long-side")
		})
	}
}

// BenchmarkScale compares the downscaler with golang.org/x/image/draw's on a decoded phone photo
// (4032×3024 to 2048×1536). ReportAllocs shows the memory each needs.
func BenchmarkScale(b *testing.B) {
	src, err := jpeg.Decode(bytes.NewReader(testimage.PhotoJPEG(4032, 3024, 1)))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("planes-catmullrom", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			scaleImage(src, 2048, 1536)
		}
	})
	// What the check step does: the rest of the way from the 5/8 decode (2520×1890).
	part, err := jpegscale.Decode(testimage.PhotoJPEG(4032, 3024, 1), 5)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("planes-catmullrom-from-5/8", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			scaleImage(part, 2048, 1536)
		}
	})
	for _, k := range []struct {
		name string
		s    draw.Scaler
	}{{"xdraw-approxbilinear", draw.ApproxBiLinear}, {"xdraw-catmullrom", draw.CatmullRom}} {
		b.Run(k.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				dst := image.NewRGBA(image.Rect(0, 0, 2048, 1536))
				k.s.Scale(dst, dst.Bounds(), src, src.Bounds(), draw.Src, nil)
			}
		})
	}
}

// BenchmarkPhotoStages splits the phone photo's time into its stages: decoding the 4 MB JPEG (whole with
// image/jpeg, or at 5/8 as the check step does), and encoding the 2048×1536 result (by internal/jpegenc as the
// check step does, or image/jpeg).
func BenchmarkPhotoStages(b *testing.B) {
	data := testimage.PhotoJPEG(4032, 3024, 1)
	b.Run("decode-4032x3024", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := jpeg.Decode(bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode-5/8-jpegscale", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := jpegscale.Decode(data, 5); err != nil {
				b.Fatal(err)
			}
		}
	})
	src, _ := jpeg.Decode(bytes.NewReader(data))
	small := scaleImage(src, 2048, 1536)
	b.Run("encode-2048x1536-q85-jpegenc", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var buf bytes.Buffer
			if err := jpegenc.Encode(&buf, small, jpegQuality); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode-2048x1536-q85-image-jpeg", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var buf bytes.Buffer
			if err := jpeg.Encode(&buf, small, &jpeg.Options{Quality: jpegQuality}); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The path before internal/jpegscale and internal/jpegenc, whole, for the same run's comparison.
	b.Run("all-image-jpeg-decode-scale-encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m, err := jpeg.Decode(bytes.NewReader(data))
			if err != nil {
				b.Fatal(err)
			}
			var buf bytes.Buffer
			if err := jpeg.Encode(&buf, scaleImage(m, 2048, 1536), &jpeg.Options{Quality: jpegQuality}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("turn-exif6-2048x1536", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			orient(small, 6)
		}
	})
}
