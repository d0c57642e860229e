//go:build ignore

// gen writes photo.ppm, a 403×301 photo-like picture from internal/testimage (odd sides, so blocks and MCUs
// are partial at the edges), for cjpeg and jpegtran to encode the fixtures README.md lists. Run it here with:
// go run gen.go
package main

import (
	"bufio"
	"fmt"
	"log"
	"os"

	"github.com/difybot/difybot/internal/testimage"
)

func main() {
	const w, h = 403, 301
	m := testimage.Photo(w, h, 14, 7)
	f, err := os.Create("photo.ppm")
	if err != nil {
		log.Fatal(err)
	}
	b := bufio.NewWriter(f)
	fmt.Fprintf(b, "P6\n%d %d\n255\n", w, h)
	for y := range h {
		for x := range w {
			i := m.PixOffset(x, y)
			b.Write(m.Pix[i : i+3])
		}
	}
	if err := b.Flush(); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
}
