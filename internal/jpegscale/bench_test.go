package jpegscale

import (
	"bytes"
	"fmt"
	"image/jpeg"
	"testing"

	"github.com/difybot/difybot/internal/testimage"
)

// BenchmarkDecode decodes a 4032×3024 phone photo of about 4 MB at 5/8 (2520×1890, the smallest scale still
// at least 2048 long) and at 8/8, beside image/jpeg's full decode.
func BenchmarkDecode(b *testing.B) {
	data := testimage.PhotoJPEG(4032, 3024, 1)
	b.Run("image-jpeg-8/8", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := jpeg.Decode(bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, k := range []int{5, 8} {
		b.Run(fmt.Sprintf("jpegscale-%d/8", k), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(data, k); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
