//go:build ignore

// gen writes orientation-1.jpg … orientation-8.jpg: the same upright 48×32 picture (red top left, green top
// right, blue bottom left, yellow bottom right) stored the way a camera stores it for each EXIF orientation,
// with that orientation (and a GPS position) in its EXIF. Run it here with: go run gen.go
package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"os"

	"github.com/difybot/difybot/internal/testimage"
)

const W, H = 48, 32

// upright is the picture as it should be seen.
func upright(x, y int) color.RGBA {
	switch {
	case x < W/2 && y < H/2:
		return color.RGBA{220, 20, 20, 255}
	case y < H/2:
		return color.RGBA{20, 200, 20, 255}
	case x < W/2:
		return color.RGBA{20, 20, 220, 255}
	}
	return color.RGBA{230, 230, 20, 255}
}

// shown is where a viewer shows the stored pixel (x, y) of a sw×sh picture with orientation o, as the EXIF
// specification describes each value (written from the viewer's side, not as the bot turns pictures).
func shown(o, x, y, sw, sh int) (int, int) {
	switch o {
	case 2: // Mirrored left to right.
		return sw - 1 - x, y
	case 3: // Upside down.
		return sw - 1 - x, sh - 1 - y
	case 4: // Mirrored top to bottom.
		return x, sh - 1 - y
	case 5: // Mirrored along the top-left diagonal.
		return y, x
	case 6: // Shown turned 90° clockwise.
		return sh - 1 - y, x
	case 7: // Mirrored along the top-right diagonal.
		return sh - 1 - y, sw - 1 - x
	case 8: // Shown turned 90° anticlockwise.
		return y, sw - 1 - x
	}
	return x, y
}

func main() {
	for o := 1; o <= 8; o++ {
		sw, sh := W, H
		if o >= 5 {
			sw, sh = H, W
		}
		m := image.NewRGBA(image.Rect(0, 0, sw, sh))
		for y := range sh {
			for x := range sw {
				m.SetRGBA(x, y, upright(shown(o, x, y, sw, sh)))
			}
		}
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, m, &jpeg.Options{Quality: 95}); err != nil {
			panic(err)
		}
		out := testimage.WithOrientation(buf.Bytes(), o, o%2 == 1)
		if err := os.WriteFile(fmt.Sprintf("orientation-%d.jpg", o), out, 0o644); err != nil {
			panic(err)
		}
	}
}
