package bot

import (
	"bytes"
	"errors"
	"fmt"
	goimage "image"
	"image/color"
	"image/jpeg"
	_ "image/png" // Registers PNG for image.Decode.

	"golang.org/x/image/draw"
)

// previewMaxPixels bounds the images a preview is made of, checked before decoding: a small file can claim a
// huge canvas.
const previewMaxPixels = 40_000_000

// makePreview returns a JPEG of the JPEG or PNG data at most max bytes: LINE shows an image message by its
// preview, which must be at most 1 MB. It scales the image down (1024 px on the longer side, then smaller)
// until the JPEG fits.
func makePreview(data []byte, max int) ([]byte, error) {
	cfg, _, err := goimage.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("preview: %w", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width*cfg.Height > previewMaxPixels {
		return nil, fmt.Errorf("preview: %d×%d px is too large to decode", cfg.Width, cfg.Height)
	}
	src, _, err := goimage.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("preview: %w", err)
	}
	for side := 1024; side >= 64; side /= 2 {
		w, h := fit(cfg.Width, cfg.Height, side)
		dst := goimage.NewRGBA(goimage.Rect(0, 0, w, h))
		// JPEG has no transparency: a transparent PNG shows on white, as LINE's chat does.
		draw.Draw(dst, dst.Bounds(), goimage.NewUniform(color.White), goimage.Point{}, draw.Src)
		draw.ApproxBiLinear.Scale(dst, dst.Bounds(), src, src.Bounds(), draw.Over, nil)
		var out bytes.Buffer
		if err := jpeg.Encode(&out, dst, &jpeg.Options{Quality: 80}); err != nil {
			return nil, fmt.Errorf("preview: %w", err)
		}
		if out.Len() <= max {
			return out.Bytes(), nil
		}
	}
	return nil, errors.New("preview: no size fits")
}

// fit scales w×h so that its longer side is at most side, keeping the aspect ratio.
func fit(w, h, side int) (int, int) {
	if w <= side && h <= side {
		return w, h
	}
	if w >= h {
		return side, max(1, h*side/w)
	}
	return max(1, w*side/h), side
}
