// Package jpegenc writes baseline JPEGs straight from the planes of a 4:2:0 *image.YCbCr or an *image.Gray,
// the two kinds the check step's downscaler produces for photos, with the same tables and quality scale as
// image/jpeg (the examples of ITU T.81 Annex K) and so about the same bytes. It is faster than image/jpeg's
// encoder because it reads the chroma planes as they are (image/jpeg samples Cb and Cr per luma pixel and
// averages them back) and quantizes by multiplying with reciprocals instead of dividing.
package jpegenc

import (
	"errors"
	"image"
	"io"
	"math/bits"
)

// ErrUnsupported is returned for any other image; image/jpeg encodes those.
var ErrUnsupported = errors.New("jpegenc: only 4:2:0 YCbCr and grey images at the origin")

// unzig maps the zig-zag order of the coefficients to their natural (row-major) order.
var unzig = [64]uint8{
	0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
	12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
	35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
	58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
}

// codes are one Huffman table's code and length for each symbol.
type codes struct {
	code [256]uint32
	size [256]uint8
}

type encoder struct {
	out   []byte
	acc   uint64 // Bits not yet written, left-aligned.
	n     uint
	quant [2][64]uint8 // Zig-zag order, as written.
	recip [2][64]int   // Natural order: 2^24 / (8·quant).
	huff  [4]codes     // DC luma, AC luma, DC chroma, AC chroma.
}

// Encode writes m as a baseline JPEG of the given quality (1 to 100, as image/jpeg's Options.Quality).
func Encode(w io.Writer, m image.Image, quality int) error {
	var e encoder
	e.tables(quality)
	switch m := m.(type) {
	case *image.YCbCr:
		if m.SubsampleRatio != image.YCbCrSubsampleRatio420 || m.Rect.Min != (image.Point{}) || m.Rect.Empty() {
			return ErrUnsupported
		}
		e.out = make([]byte, 0, m.Rect.Dx()*m.Rect.Dy()/8+1024)
		e.headers(m.Rect.Dx(), m.Rect.Dy(), 3)
		e.ycbcr(m)
	case *image.Gray:
		if m.Rect.Min != (image.Point{}) || m.Rect.Empty() {
			return ErrUnsupported
		}
		e.out = make([]byte, 0, m.Rect.Dx()*m.Rect.Dy()/8+1024)
		e.headers(m.Rect.Dx(), m.Rect.Dy(), 1)
		e.gray(m)
	default:
		return ErrUnsupported
	}
	if e.n > 0 {
		e.emit(1<<(8-e.n)-1, 8-e.n) // Fill the last byte with ones.
	}
	e.out = append(e.out, 0xFF, 0xD9)
	_, err := w.Write(e.out)
	return err
}

// tables scales the quantization tables by quality as libjpeg and image/jpeg do, and builds the codes.
func (e *encoder) tables(quality int) {
	quality = min(max(quality, 1), 100)
	scale := 200 - 2*quality
	if quality < 50 {
		scale = 5000 / quality
	}
	for t := range 2 {
		for k, b := range quantBase[t] {
			q := min(max((int(b)*scale+50)/100, 1), 255)
			e.quant[t][k] = uint8(q)
			e.recip[t][unzig[k]] = (1<<24 + 4*q) / (8 * q)
		}
	}
	for i, s := range huffSpecs {
		code, k := uint32(0), 0
		for l, n := range s.counts {
			for range n {
				e.huff[i].code[s.vals[k]] = code
				e.huff[i].size[s.vals[k]] = uint8(l + 1)
				code++
				k++
			}
			code <<= 1
		}
	}
}

// headers writes SOI, DQT, SOF0, DHT and SOS for nc components (1 grey, 3 YCbCr 4:2:0).
func (e *encoder) headers(w, h, nc int) {
	e.out = append(e.out, 0xFF, 0xD8)
	e.out = append(e.out, 0xFF, 0xDB, 0, 2+2*65)
	for t := range 2 {
		e.out = append(e.out, byte(t))
		e.out = append(e.out, e.quant[t][:]...)
	}
	e.out = append(e.out, 0xFF, 0xC0, 0, byte(8+3*nc), 8, byte(h>>8), byte(h), byte(w>>8), byte(w), byte(nc))
	if nc == 1 {
		e.out = append(e.out, 1, 0x11, 0)
	} else {
		e.out = append(e.out, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1)
	}
	n := 2
	for _, s := range huffSpecs {
		n += 17 + len(s.vals)
	}
	e.out = append(e.out, 0xFF, 0xC4, byte(n>>8), byte(n))
	for i, s := range huffSpecs {
		e.out = append(e.out, byte(i&1)<<4|byte(i>>1)) // Class (DC 0, AC 1) and table number.
		e.out = append(e.out, s.counts[:]...)
		e.out = append(e.out, s.vals...)
	}
	e.out = append(e.out, 0xFF, 0xDA, 0, byte(6+2*nc), byte(nc))
	if nc == 1 {
		e.out = append(e.out, 1, 0x00)
	} else {
		e.out = append(e.out, 1, 0x00, 2, 0x11, 3, 0x11)
	}
	e.out = append(e.out, 0, 63, 0)
}

// emit writes the low n bits of v, stuffing a zero after each 0xFF byte.
func (e *encoder) emit(v uint32, n uint) {
	e.acc |= uint64(v) << (64 - e.n - n)
	e.n += n
	for e.n >= 8 {
		b := byte(e.acc >> 56)
		e.out = append(e.out, b)
		if b == 0xFF {
			e.out = append(e.out, 0)
		}
		e.acc <<= 8
		e.n -= 8
	}
}

// value writes symbol sym|size(v) of table t followed by v's size bits (T.81 F.1.2).
func (e *encoder) value(t *codes, sym int, v int32) {
	a := v
	if v < 0 {
		a = -v
		v--
	}
	size := uint(bits.Len32(uint32(a)))
	sym |= int(size)
	e.emit(t.code[sym]<<size|uint32(v)&(1<<size-1), uint(t.size[sym])+size)
}

// block transforms, quantizes and writes one 8×8 block of samples minus 128 with table t (0 luma, 1
// chroma), and returns its DC for the next block's prediction.
func (e *encoder) block(b *[64]int32, t int, prev int32) int32 {
	fdct(b)
	r := &e.recip[t]
	var zz [64]int32
	var nz uint64 // Bit k is set when zz[k] is not 0.
	for k, z := range unzig {
		v := int(b[z])
		sign := v >> 63 // Without a branch: the signs are as good as random.
		q := ((((v^sign)-sign)*r[z]+1<<23)>>24 ^ sign) - sign
		zz[k] = int32(q)
		nz |= uint64(uint(q|-q)>>63) << k
	}
	dc, ac := &e.huff[2*t], &e.huff[2*t+1]
	e.value(dc, 0, zz[0]-prev)
	last := 0
	for nz &^= 1; nz != 0; nz &= nz - 1 {
		k := bits.TrailingZeros64(nz)
		run := k - last - 1
		for ; run >= 16; run -= 16 {
			e.emit(ac.code[0xF0], uint(ac.size[0xF0]))
		}
		e.value(ac, run<<4, zz[k])
		last = k
	}
	if last < 63 {
		e.emit(ac.code[0], uint(ac.size[0]))
	}
	return zz[0]
}

// load copies the 8×8 block at (x, y) of a w×h plane into b, minus 128, repeating the last column and row
// past the plane's edge.
func load(b *[64]int32, pix []uint8, stride, w, h, x, y int) {
	for j := range 8 {
		row := pix[min(y+j, h-1)*stride:]
		if x+8 <= w {
			r := (*[8]uint8)(row[x:])
			for i := range 8 {
				b[8*j+i] = int32(r[i]) - 128
			}
			continue
		}
		for i := range 8 {
			b[8*j+i] = int32(row[min(x+i, w-1)]) - 128
		}
	}
}

func (e *encoder) ycbcr(m *image.YCbCr) {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	cw, ch := (w+1)/2, (h+1)/2
	var b [64]int32
	var py, pb, pr int32
	for y := 0; y < h; y += 16 {
		for x := 0; x < w; x += 16 {
			for i := range 4 {
				load(&b, m.Y, m.YStride, w, h, x+8*(i&1), y+8*(i>>1))
				py = e.block(&b, 0, py)
			}
			load(&b, m.Cb, m.CStride, cw, ch, x/2, y/2)
			pb = e.block(&b, 1, pb)
			load(&b, m.Cr, m.CStride, cw, ch, x/2, y/2)
			pr = e.block(&b, 1, pr)
		}
	}
}

func (e *encoder) gray(m *image.Gray) {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	var b [64]int32
	var p int32
	for y := 0; y < h; y += 8 {
		for x := 0; x < w; x += 8 {
			load(&b, m.Pix, m.Stride, w, h, x, y)
			p = e.block(&b, 0, p)
		}
	}
}
