package jpegenc

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"testing"

	"github.com/difybot/difybot/internal/jpegscale"
	"github.com/difybot/difybot/internal/testimage"
)

// TestLikeImageJPEG encodes photos (4:2:0 as image/jpeg decodes them, and grey; odd sides, so blocks and
// MCUs are partial) at several qualities with Encode and with image/jpeg, decodes both with image/jpeg, and
// checks that Encode's is as close to the source and about as large.
func TestLikeImageJPEG(t *testing.T) {
	photo := testimage.Photo(403, 301, 14, 3)
	ycc, err := jpeg.Decode(bytes.NewReader(testimage.JPEG(photo, 100)))
	if err != nil {
		t.Fatal(err)
	}
	gray := image.NewGray(photo.Rect)
	for y := range photo.Rect.Dy() {
		for x := range photo.Rect.Dx() {
			gray.Set(x, y, color.GrayModel.Convert(photo.At(x, y)))
		}
	}
	tiny := image.NewYCbCr(image.Rect(0, 0, 1, 1), image.YCbCrSubsampleRatio420)
	tiny.Y[0], tiny.Cb[0], tiny.Cr[0] = 200, 90, 160
	for _, c := range []struct {
		name string
		m    image.Image
	}{{"ycbcr-420", ycc}, {"gray", gray}, {"1x1", tiny}} {
		for _, q := range []int{50, 85, 95} {
			var ours, theirs bytes.Buffer
			if err := Encode(&ours, c.m, q); err != nil {
				t.Fatal(err)
			}
			if err := jpeg.Encode(&theirs, c.m, &jpeg.Options{Quality: q}); err != nil {
				t.Fatal(err)
			}
			a, err := jpeg.Decode(bytes.NewReader(ours.Bytes()))
			if err != nil {
				t.Fatalf("%s q%d: image/jpeg cannot read it: %v", c.name, q, err)
			}
			b, _ := jpeg.Decode(bytes.NewReader(theirs.Bytes()))
			if a.Bounds() != c.m.Bounds() {
				t.Fatalf("%s q%d: bounds %v", c.name, q, a.Bounds())
			}
			pa, pb := testimage.PSNR(a, c.m), testimage.PSNR(b, c.m)
			ratio := float64(ours.Len()) / float64(theirs.Len())
			t.Logf("%s q%d: %.2f dB, %d B; image/jpeg %.2f dB, %d B", c.name, q, pa, ours.Len(), pb, theirs.Len())
			if pa < pb-0.3 || ratio > 1.05 {
				t.Errorf("%s q%d: %.2f dB in %d bytes, image/jpeg %.2f dB in %d", c.name, q, pa, ours.Len(), pb, theirs.Len())
			}
		}
	}
}

func TestUnsupported(t *testing.T) {
	for _, m := range []image.Image{
		image.NewRGBA(image.Rect(0, 0, 8, 8)),
		image.NewYCbCr(image.Rect(0, 0, 8, 8), image.YCbCrSubsampleRatio444),
		image.NewYCbCr(image.Rect(2, 2, 8, 8), image.YCbCrSubsampleRatio420),
	} {
		if err := Encode(new(bytes.Buffer), m, 85); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%T %v: %v, want ErrUnsupported", m, m.Bounds(), err)
		}
	}
}

// BenchmarkEncode encodes a 4032×3024 phone photo decoded at 4/8 (2016×1512, 4:2:0, about what the check
// step sends) at quality 85, beside image/jpeg.
func BenchmarkEncode(b *testing.B) {
	big, err := jpegscale.Decode(testimage.PhotoJPEG(4032, 3024, 1), 4)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("jpegenc", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := Encode(new(bytes.Buffer), big, 85); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("image-jpeg", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := jpeg.Encode(new(bytes.Buffer), big, &jpeg.Options{Quality: 85}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
