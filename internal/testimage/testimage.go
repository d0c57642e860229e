// Package testimage makes pictures for tests and benchmarks, so that no large file is committed: a phone-like
// photo (smooth colour fields with sensor noise, which JPEG compresses the way it does a camera's pictures),
// and a screenshot-like picture (flat areas and sharp edges).
package testimage

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/jpeg"
	"image/png"
	"math"
)

// Photo is a w×h picture that compresses like a photo: with noise 14 and JPEG quality 92, a 4032×3024 one
// (a 12 MP phone camera) is about 4 MB.
func Photo(w, h int, noise int, seed uint64) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	// Each channel is a sum of two slanted waves, sin(ax+by+c) = sin(ax)cos(by+c) + cos(ax)sin(by+c), so the
	// sines are computed per row and per column, not per pixel.
	type wave struct{ fx, fy, phase, amp float64 }
	waves := [3][2]wave{
		{{7, 3, 0, 60}, {23, -17, 1, 25}},
		{{-2, 11, 1, 55}, {31, 13, 2, 20}},
		{{9, 9, 2, 50}, {-19, 29, 0.5, 25}},
	}
	var sx, cx [3][2][]float64
	for c := range 3 {
		for k, wv := range waves[c] {
			sx[c][k], cx[c][k] = make([]float64, w), make([]float64, w)
			for x := range w {
				a := wv.fx * float64(x) / float64(w)
				sx[c][k][x], cx[c][k][x] = math.Sin(a), math.Cos(a)
			}
		}
	}
	state := seed*0x9e3779b97f4a7c15 | 1
	span := uint64(2*noise + 1)
	for y := range h {
		var sy, cy [3][2]float64
		for c := range 3 {
			for k, wv := range waves[c] {
				b := wv.fy*float64(y)/float64(h) + wv.phase
				sy[c][k], cy[c][k] = math.Sin(b)*wv.amp, math.Cos(b)*wv.amp
			}
		}
		row := m.Pix[y*m.Stride:][:4*w]
		for x := range w {
			for c := range 3 {
				v := 128.0
				for k := range 2 {
					v += sx[c][k][x]*cy[c][k] + cx[c][k][x]*sy[c][k]
				}
				state ^= state << 13
				state ^= state >> 7
				state ^= state << 17
				v += float64(int(state%span) - noise)
				row[4*x+c] = uint8(max(0, min(255, v)))
			}
			row[4*x+3] = 255
		}
	}
	return m
}

// PhotoJPEG is Photo encoded as a camera would: a 4032×3024 one is about 4 MB.
func PhotoJPEG(w, h int, seed uint64) []byte {
	return JPEG(Photo(w, h, 14, seed), 92)
}

// JPEG encodes m at quality q.
func JPEG(m image.Image, q int) []byte {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, m, &jpeg.Options{Quality: q}); err != nil {
		panic(err) // Encoding into memory does not fail.
	}
	return buf.Bytes()
}

// Screenshot is a w×h PNG like a phone's screenshot: bars, cards and text-like strokes on flat colours.
func Screenshot(w, h int) []byte {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			i := m.PixOffset(x, y)
			r, g, b := uint8(246), uint8(246), uint8(248)
			switch {
			case y < h/12:
				r, g, b = 30, 90, 200 // A title bar.
			case (x/8+y/16)%7 == 0 && y%16 < 10 && x%w > w/10 && x < w*9/10:
				r, g, b = 40, 40, 40 // Strokes like lines of text.
			case (y/(h/6))%2 == 1 && x > w/20 && x < w*19/20:
				r, g, b = 255, 255, 255 // Cards.
			}
			m.Pix[i], m.Pix[i+1], m.Pix[i+2], m.Pix[i+3] = r, g, b, 255
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, m); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// WithOrientation returns a JPEG with an EXIF segment (APP1) right after its start that gives orientation o,
// in big-endian ("MM") or little-endian ("II") order, and a GPS position, as a phone writes them.
func WithOrientation(j []byte, o int, littleEndian bool) []byte {
	var order binary.AppendByteOrder = binary.BigEndian
	tiff := []byte("MM\x00\x2a")
	if littleEndian {
		order, tiff = binary.LittleEndian, []byte("II\x2a\x00")
	}
	u16 := func(v uint16) { tiff = order.AppendUint16(tiff, v) }
	u32 := func(v uint32) { tiff = order.AppendUint32(tiff, v) }
	u32(8) // IFD0 follows the header.
	// IFD0: Orientation, and the GPS IFD's offset (8 + 2 + 2*12 + 4 = 38).
	u16(2)
	u16(0x0112)
	u16(3)
	u32(1)
	u16(uint16(o))
	u16(0)
	u16(0x8825)
	u16(4)
	u32(1)
	u32(38)
	u32(0) // No IFD1.
	// GPS IFD: GPSLatitudeRef "N".
	u16(1)
	u16(0x0001)
	u16(2)
	u32(2)
	tiff = append(tiff, 'N', 0, 0, 0)
	u32(0)
	seg := append([]byte("Exif\x00\x00"), tiff...)
	out := append([]byte{0xff, 0xd8, 0xff, 0xe1}, byte((len(seg)+2)>>8), byte(len(seg)+2))
	out = append(out, seg...)
	return append(out, j[2:]...)
}

// BombPNG is a PNG of about 100 bytes whose header claims w×h pixels: decoding it would allocate w×h×3 bytes
// (30 GB for 100,000×100,000) before finding that the data is missing.
func BombPNG(w, h int) []byte {
	var buf bytes.Buffer
	buf.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		buf.Write(binary.BigEndian.AppendUint32(nil, uint32(len(data))))
		crc := crc32.NewIEEE()
		crc.Write([]byte(typ))
		crc.Write(data)
		buf.WriteString(typ)
		buf.Write(data)
		buf.Write(binary.BigEndian.AppendUint32(nil, crc.Sum32()))
	}
	ihdr := binary.BigEndian.AppendUint32(nil, uint32(w))
	ihdr = binary.BigEndian.AppendUint32(ihdr, uint32(h))
	chunk("IHDR", append(ihdr, 8, 2, 0, 0, 0)) // 8-bit RGB.
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(make([]byte, 1024)) // The first rows' worth of zeros; a real bomb streams far more.
	zw.Close()
	chunk("IDAT", z.Bytes())
	chunk("IEND", nil)
	return buf.Bytes()
}

// PSNR compares two pictures of one size, in dB over R, G and B (+Inf when they are the same).
func PSNR(a, b image.Image) float64 {
	var sum float64
	r := a.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			ar, ag, ab, _ := a.At(x, y).RGBA()
			br, bg, bb, _ := b.At(x, y).RGBA()
			for _, d := range []float64{float64(ar>>8) - float64(br>>8), float64(ag>>8) - float64(bg>>8), float64(ab>>8) - float64(bb>>8)} {
				sum += d * d
			}
		}
	}
	mse := sum / float64(3*r.Dx()*r.Dy())
	if mse == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(255*255/mse)
}
