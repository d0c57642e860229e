package bot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/difybot/difybot/internal/jpegscale"
	"github.com/difybot/difybot/internal/testimage"
	"golang.org/x/image/draw"
)

func TestJPEGOrientation(t *testing.T) {
	plain := testimage.JPEG(image.NewGray(image.Rect(0, 0, 8, 8)), 90)
	tests := []struct {
		name string
		data []byte
		want int
	}{
		{"no EXIF", plain, 1},
		{"not a JPEG", []byte("GIF89a"), 1},
		{"empty", nil, 1},
		{"truncated segment", testimage.WithOrientation(plain, 6, false)[:20], 1},
		{"out of range", testimage.WithOrientation(plain, 9, true), 1},
		{"zero", testimage.WithOrientation(plain, 0, false), 1},
	}
	for o := 1; o <= 8; o++ {
		data, err := os.ReadFile(fmt.Sprintf("testdata/exif/orientation-%d.jpg", o))
		if err != nil {
			t.Fatal(err)
		}
		tests = append(tests, struct {
			name string
			data []byte
			want int
		}{fmt.Sprint("fixture ", o), data, o})
	}
	// An APP0 segment and fill bytes before the EXIF segment.
	app0 := append([]byte{0xff, 0xd8, 0xff, 0xe0, 0, 4, 'J', 'F', 0xff, 0xff}, testimage.WithOrientation(plain, 8, true)[2:]...)
	tests = append(tests, struct {
		name string
		data []byte
		want int
	}{"after APP0 and fill", app0, 8})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := jpegOrientation(bytes.NewReader(tt.data)); got != tt.want {
				t.Errorf("orientation = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestTIFFOrientationMalformed(t *testing.T) {
	for _, tiff := range []string{
		"", "MM", "XX\x00\x2a\x00\x00\x00\x08", "MM\x00\x2b\x00\x00\x00\x08",
		"MM\x00\x2a\xff\xff\xff\xff",         // IFD past the end.
		"MM\x00\x2a\x00\x00\x00\x08\x00\x05", // Five entries, none there.
		"MM\x00\x2a\x00\x00\x00\x08\x00\x01\x01\x12\x00\x04\x00\x00\x00\x01\x00\x06\x00\x00", // LONG, not SHORT.
	} {
		if got := tiffOrientation([]byte(tiff)); got != 1 {
			t.Errorf("tiffOrientation(%q) = %d, want 1", tiff, got)
		}
	}
}

// The downscaler gives what golang.org/x/image/draw's Catmull-Rom gives (it is the same filter, in fixed
// point), for every layout it handles; a flat picture stays flat.
func TestScaleMatchesCatmullRom(t *testing.T) {
	photo := testimage.Photo(403, 302, 14, 7)
	ycc, err := jpeg.Decode(bytes.NewReader(testimage.JPEG(photo, 95)))
	if err != nil {
		t.Fatal(err)
	}
	gray := image.NewGray(photo.Rect)
	draw.Draw(gray, gray.Rect, photo, image.Point{}, draw.Src)
	nrgba := image.NewNRGBA(photo.Rect)
	draw.Draw(nrgba, nrgba.Rect, photo, image.Point{}, draw.Src)
	pal := image.NewPaletted(photo.Rect, color.Palette{color.Black, color.White, color.RGBA{200, 30, 30, 255}})
	draw.Draw(pal, pal.Rect, photo, image.Point{}, draw.Src)
	for _, tc := range []struct {
		name string
		src  image.Image
		w, h int
	}{
		{"ycbcr down", ycc, 200, 150}, {"ycbcr up", ycc, 500, 375}, {"rgba down", photo, 127, 95},
		{"gray down", gray, 100, 75}, {"nrgba down", nrgba, 300, 225}, {"paletted down", pal, 201, 151},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := scaleImage(tc.src, tc.w, tc.h)
			if b := got.Bounds(); b.Dx() != tc.w || b.Dy() != tc.h {
				t.Fatalf("size %v", b)
			}
			want := image.NewRGBA(image.Rect(0, 0, tc.w, tc.h))
			draw.CatmullRom.Scale(want, want.Rect, tc.src, tc.src.Bounds(), draw.Src, nil)
			// YCbCr is scaled in its own planes and x/image/draw in RGB, which differ by rounding only.
			if p := testimage.PSNR(got, want); p < 38 {
				t.Errorf("PSNR against x/image/draw's Catmull-Rom = %.1f dB, want at least 38", p)
			}
		})
	}
	flat := image.NewRGBA(image.Rect(0, 0, 97, 61))
	draw.Draw(flat, flat.Rect, image.NewUniform(color.RGBA{90, 140, 200, 255}), image.Point{}, draw.Src)
	out := scaleImage(flat, 33, 20).(*image.RGBA)
	for i := 0; i < len(out.Pix); i += 4 {
		if c := out.Pix[i : i+4]; c[0] != 90 || c[1] != 140 || c[2] != 200 || c[3] != 255 {
			t.Fatalf("a flat picture came out with %v", c)
		}
	}
}

// A JPEG decoded at k/8 and then scaled the rest of the way looks as one decoded whole and scaled: the
// frequencies the scaled decode drops are above what the downscale keeps. The phone photo and one made with
// cjpeg (4:4:4 progressive) are shrunk as the check step does, and compared with image/jpeg's full decode
// scaled by the same Catmull-Rom (46 to 47 dB for the phone photo, 41 dB for the small noisy one).
func TestScaledDecodeKeepsQuality(t *testing.T) {
	prog, err := os.ReadFile("../internal/jpegscale/testdata/progressive-444.jpg")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		data    []byte
		side, k int
		w, h    int
	}{
		{"phone 4032x3024 to 2048", testimage.PhotoJPEG(4032, 3024, 1), 2048, 5, 2048, 1536},
		{"phone 4032x3024 to 1000", testimage.PhotoJPEG(4032, 3024, 1), 1000, 2, 1000, 750},
		{"progressive 4:4:4 403x301 to 200", prog, 200, 4, 200, 149},
	} {
		t.Run(c.name, func(t *testing.T) {
			im := spool(t, c.data, "photo.jpg")
			defer im.close()
			cfg, err := decodeConfig(im)
			if err != nil {
				t.Fatal(err)
			}
			long := max(cfg.Width, cfg.Height)
			if k := jpegscale.Scale(long, c.side); k != c.k {
				t.Fatalf("scale %d/8, want %d/8", k, c.k)
			}
			part, err := decode(im, long, c.side)
			if err != nil {
				t.Fatal(err)
			}
			if got := max(part.Bounds().Dx(), part.Bounds().Dy()); got != (long*c.k+7)/8 {
				t.Fatalf("decoded long side %d, want %d (the scaled decode did not run)", got, (long*c.k+7)/8)
			}
			full, err := jpeg.Decode(bytes.NewReader(c.data))
			if err != nil {
				t.Fatal(err)
			}
			got, want := scaleImage(part, c.w, c.h), scaleImage(full, c.w, c.h)
			p := testimage.PSNR(got, want)
			t.Logf("PSNR against the full decode scaled: %.1f dB", p)
			if p < 38 {
				t.Errorf("PSNR against the full decode scaled = %.1f dB, want at least 38", p)
			}
		})
	}
}

// Turning by each orientation moves every plane the same way, and 4:2:0 stays 4:2:0 when the sides swap.
func TestOrientLayouts(t *testing.T) {
	src := testimage.Photo(37, 21, 0, 1) // Odd sides, so the chroma planes' rounding shows.
	ycc, err := jpeg.Decode(bytes.NewReader(testimage.JPEG(src, 100)))
	if err != nil {
		t.Fatal(err)
	}
	for o := 1; o <= 8; o++ {
		for _, m := range []image.Image{src, ycc} {
			got := orient(m, o)
			w, h := 37, 21
			if o >= 5 {
				w, h = 21, 37
			}
			if b := got.Bounds(); b.Dx() != w || b.Dy() != h {
				t.Errorf("orientation %d of %T: %v", o, m, b)
			}
			// Turning back by the inverse gives the original.
			back := map[int]int{6: 8, 8: 6}[o]
			if back == 0 {
				back = o
			}
			if p := testimage.PSNR(orient(got, back), m); p < 60 && o != 1 {
				t.Errorf("orientation %d of %T turned back: PSNR %.1f dB", o, m, p)
			}
		}
	}
}

// A PNG that claims 100,000×100,000 pixels is refused from its header: the check allocates next to nothing.
func TestBombCostsNothing(t *testing.T) {
	bt := shaper(t)
	im := spool(t, testimage.BombPNG(100_000, 100_000), "bomb.png")
	defer im.close()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := bt.shape(context.Background(), im, benchLimits)
	runtime.ReadMemStats(&after)
	var be *Error
	if !errors.As(err, &be) || be.Code != CodeImageTooLarge || !strings.Contains(err.Error(), "100000×100000 pixels (10000.0 MP)") {
		t.Fatalf("err = %v", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 256<<10 {
		t.Errorf("refusing the bomb allocated %d bytes", alloc)
	} else {
		t.Logf("refusing the bomb allocated %d bytes", alloc)
	}
}
