// Package jpegscale decodes a JPEG at k/8 of its size (k = 1 to 8) straight from its DCT coefficients, as
// libjpeg's scale_num/scale_denom does: each 8×8 block becomes k×k pixels through a k-point inverse DCT of its
// k×k lowest frequencies. A photo that is to be shrunk anyway is then decoded with a fraction of the work of a
// full decode, and the dropped frequencies are exactly the ones a downscale would filter out.
//
// It reads baseline and progressive Huffman-coded 8-bit JPEGs in greyscale or YCbCr with 4:4:4, 4:2:2, 4:2:0
// or 4:4:0 sampling, with restart markers. Anything else (CMYK or Adobe RGB, arithmetic coding, 12-bit,
// lossless, other samplings) is ErrUnsupported, for the caller to decode with image/jpeg.
package jpegscale

import (
	"errors"
	"fmt"
	"image"
	"image/color"
)

// ErrUnsupported is returned for a JPEG this package does not decode but image/jpeg may.
var ErrUnsupported = errors.New("jpegscale: unsupported JPEG")

// FormatError is returned for data that is not a valid JPEG.
type FormatError string

func (e FormatError) Error() string { return "jpegscale: invalid JPEG: " + string(e) }

// Markers, from ITU T.81 table B.1.
const (
	sof0 = 0xC0 // Baseline.
	sof1 = 0xC1 // Extended sequential, Huffman.
	sof2 = 0xC2 // Progressive, Huffman.
	dht  = 0xC4
	rst0 = 0xD0
	rst7 = 0xD7
	soi  = 0xD8
	eoi  = 0xD9
	sos  = 0xDA
	dqt  = 0xDB
	dri  = 0xDD
	app0 = 0xE0
	ap14 = 0xEE
)

// unzig maps the zig-zag order of the coefficients in the data to their natural (row-major) order.
var unzig = [64]int{
	0, 1, 8, 16, 9, 2, 3, 10,
	17, 24, 32, 25, 18, 11, 4, 5,
	12, 19, 26, 33, 40, 48, 41, 34,
	27, 20, 13, 6, 7, 14, 21, 28,
	35, 42, 49, 56, 57, 50, 43, 36,
	29, 22, 15, 23, 30, 37, 44, 51,
	58, 59, 52, 45, 38, 31, 39, 46,
	53, 60, 61, 54, 47, 55, 62, 63,
}

type component struct {
	id     uint8
	h, v   int // Sampling factors.
	tq     int // Quantization table.
	bw, bh int // Blocks across and down that hold picture data (a non-interleaved scan reads these).
	pw, ph int // Blocks across and down in the plane (whole MCUs).
	pix    []uint8
	stride int
	coef   []int16 // Progressive only: every block's 64 coefficients, natural order.
}

type decoder struct {
	data        []byte
	pos         int
	k           int // Output block side.
	w, h        int
	progressive bool
	comps       []component
	hmax, vmax  int
	mx, my      int          // MCUs across and down.
	quant       [4][64]int32 // Natural order.
	haveQuant   [4]bool
	huff        [2][4]huffman // DC, AC.
	ri          int           // Restart interval, in MCUs.
	adobe       bool
	adobeXform  uint8
	eobrun      int
	bits        bitReader
	seenFrame   bool
}

// DecodeConfig reads the size and colour model from the frame header, as image/jpeg would report them.
func DecodeConfig(data []byte) (image.Config, error) {
	d := &decoder{data: data, k: 8}
	if err := d.readHeaders(false); err != nil {
		return image.Config{}, err
	}
	return d.config(), nil
}

// Scale returns the smallest k (1 to 8) for which a picture whose long side is long, decoded at k/8, is still
// at least side long. It is 8 when side ≥ long or side ≤ 0.
func Scale(long, side int) int {
	if side <= 0 {
		return 8
	}
	for k := 1; k < 8; k++ {
		if (long*k+7)/8 >= side {
			return k
		}
	}
	return 8
}

// Decode decodes data at k/8 of its size: the result is ⌈w·k/8⌉×⌈h·k/8⌉, an *image.YCbCr or an *image.Gray.
// It allocates only what the frame header's size needs.
func Decode(data []byte, k int) (image.Image, error) {
	if k < 1 || k > 8 {
		return nil, fmt.Errorf("jpegscale: scale %d/8 is not 1/8 to 8/8", k)
	}
	d := &decoder{data: data, k: k}
	if err := d.readHeaders(true); err != nil {
		return nil, err
	}
	if d.comps[0].pix == nil {
		return nil, FormatError("no scan")
	}
	if d.progressive {
		d.finishProgressive()
	}
	return d.image(), nil
}

func (d *decoder) config() image.Config {
	cm := image.Config{Width: d.w, Height: d.h}
	cm.ColorModel = color.YCbCrModel
	if len(d.comps) == 1 {
		cm.ColorModel = color.GrayModel
	}
	return cm
}

// readHeaders walks the markers. With decode false it stops after the frame header; otherwise it decodes
// every scan up to EOI.
func (d *decoder) readHeaders(decode bool) error {
	if len(d.data) < 2 || d.data[0] != 0xFF || d.data[1] != soi {
		return FormatError("missing SOI marker")
	}
	d.pos = 2
	for {
		m, err := d.nextMarker()
		if err != nil {
			if d.seenFrame && decode && errors.Is(err, errEOF) {
				return nil // A missing EOI is common; what was read is kept, as image/jpeg does.
			}
			return err
		}
		if m == eoi {
			if !d.seenFrame {
				return FormatError("missing SOF marker")
			}
			return nil
		}
		if m == 0x01 || (m >= rst0 && m <= rst7) {
			continue // Markers without a length.
		}
		if d.pos+2 > len(d.data) {
			return errEOF
		}
		n := int(d.data[d.pos])<<8 | int(d.data[d.pos+1]) - 2
		d.pos += 2
		if n < 0 || d.pos+n > len(d.data) {
			return FormatError("short segment")
		}
		seg := d.data[d.pos : d.pos+n]
		d.pos += n
		switch {
		case m == sof0 || m == sof1 || m == sof2:
			if d.seenFrame {
				return FormatError("more than one SOF marker")
			}
			d.progressive = m == sof2
			if err := d.readSOF(seg); err != nil {
				return err
			}
			if !decode {
				return d.checkColor()
			}
		case m >= 0xC3 && m <= 0xCF && m != dht && m != 0xC8:
			return ErrUnsupported // Lossless, hierarchical or arithmetic coding (and its conditioning, DAC).
		case m == dht:
			if err := d.readDHT(seg); err != nil {
				return err
			}
		case m == dqt:
			if err := d.readDQT(seg); err != nil {
				return err
			}
		case m == dri:
			if len(seg) != 2 {
				return FormatError("DRI has the wrong length")
			}
			d.ri = int(seg[0])<<8 | int(seg[1])
		case m == ap14:
			if len(seg) >= 12 && string(seg[:5]) == "Adobe" {
				d.adobe, d.adobeXform = true, seg[11]
			}
		case m == sos:
			if !d.seenFrame {
				return FormatError("SOS before SOF")
			}
			if err := d.checkColor(); err != nil {
				return err
			}
			if err := d.readSOS(seg); err != nil {
				return err
			}
		}
	}
}

var errEOF = FormatError("unexpected end of data")

// nextMarker skips to the next marker and returns its code, with d.pos after it.
func (d *decoder) nextMarker() (byte, error) {
	for {
		for d.pos < len(d.data) && d.data[d.pos] != 0xFF {
			d.pos++ // Garbage between segments is skipped, as libjpeg does.
		}
		for d.pos < len(d.data) && d.data[d.pos] == 0xFF {
			d.pos++ // Fill bytes.
		}
		if d.pos >= len(d.data) {
			return 0, errEOF
		}
		m := d.data[d.pos]
		d.pos++
		if m != 0 {
			return m, nil
		}
	}
}

func (d *decoder) readSOF(seg []byte) error {
	if len(seg) < 6 {
		return FormatError("short SOF")
	}
	if seg[0] != 8 {
		return ErrUnsupported // 12-bit.
	}
	d.h = int(seg[1])<<8 | int(seg[2])
	d.w = int(seg[3])<<8 | int(seg[4])
	nc := int(seg[5])
	if d.w == 0 || d.h == 0 {
		return FormatError("zero width or height") // DNL is not supported by image/jpeg either.
	}
	if nc != 1 && nc != 3 {
		return ErrUnsupported
	}
	if len(seg) != 6+3*nc {
		return FormatError("SOF has the wrong length")
	}
	d.comps = make([]component, nc)
	for i := range d.comps {
		c := &d.comps[i]
		b := seg[6+3*i:]
		c.id, c.h, c.v, c.tq = b[0], int(b[1]>>4), int(b[1]&15), int(b[2])
		if c.h < 1 || c.h > 4 || c.v < 1 || c.v > 4 || c.tq > 3 {
			return FormatError("bad component")
		}
		for j := range i {
			if d.comps[j].id == c.id {
				return FormatError("repeated component ID")
			}
		}
	}
	if nc == 1 {
		d.comps[0].h, d.comps[0].v = 1, 1 // One component is never interleaved: its sampling does not matter.
	} else {
		// Y may be sampled 1 or 2 times Cb and Cr's, which must be 1×1.
		y, cb, cr := d.comps[0], d.comps[1], d.comps[2]
		if y.h > 2 || y.v > 2 || cb.h != 1 || cb.v != 1 || cr.h != 1 || cr.v != 1 {
			return ErrUnsupported
		}
	}
	d.hmax, d.vmax = 1, 1
	for _, c := range d.comps {
		d.hmax, d.vmax = max(d.hmax, c.h), max(d.vmax, c.v)
	}
	d.mx = (d.w + 8*d.hmax - 1) / (8 * d.hmax)
	d.my = (d.h + 8*d.vmax - 1) / (8 * d.vmax)
	d.seenFrame = true
	return nil
}

// checkColor refuses what would not be YCbCr or grey: Adobe's RGB, and components named R, G, B.
func (d *decoder) checkColor() error {
	if len(d.comps) == 3 {
		if d.adobe && d.adobeXform == 0 {
			return ErrUnsupported
		}
		if d.comps[0].id == 'R' && d.comps[1].id == 'G' && d.comps[2].id == 'B' {
			return ErrUnsupported
		}
	}
	return nil
}

// allocate makes the planes (and, for a progressive JPEG, the coefficients) once the first scan starts.
func (d *decoder) allocate() {
	if d.comps[0].pix != nil {
		return
	}
	for i := range d.comps {
		c := &d.comps[i]
		c.bw = ((d.w*c.h+d.hmax-1)/d.hmax + 7) / 8
		c.bh = ((d.h*c.v+d.vmax-1)/d.vmax + 7) / 8
		c.pw, c.ph = d.mx*c.h, d.my*c.v
		if len(d.comps) == 1 {
			c.pw, c.ph = c.bw, c.bh
		}
		c.stride = c.pw * d.k
		c.pix = make([]uint8, c.stride*c.ph*d.k)
		if d.progressive {
			c.coef = make([]int16, c.pw*c.ph*64)
		}
	}
}

func (d *decoder) readDQT(seg []byte) error {
	for len(seg) > 0 {
		pq, tq := seg[0]>>4, int(seg[0]&15)
		if tq > 3 || pq > 1 {
			return FormatError("bad DQT")
		}
		n := 64 * (1 + int(pq))
		if len(seg) < 1+n {
			return FormatError("short DQT")
		}
		for i := range 64 {
			v := int32(seg[1+i])
			if pq == 1 {
				v = int32(seg[1+2*i])<<8 | int32(seg[2+2*i])
			}
			d.quant[tq][unzig[i]] = v
		}
		d.haveQuant[tq] = true
		seg = seg[1+n:]
	}
	return nil
}

func (d *decoder) readDHT(seg []byte) error {
	for len(seg) > 0 {
		if len(seg) < 17 {
			return FormatError("short DHT")
		}
		tc, th := seg[0]>>4, int(seg[0]&15)
		if tc > 1 || th > 3 {
			return FormatError("bad DHT")
		}
		var counts [16]int
		total := 0
		for i := range 16 {
			counts[i] = int(seg[1+i])
			total += counts[i]
		}
		if total == 0 || total > 256 || len(seg) < 17+total {
			return FormatError("bad DHT")
		}
		if err := d.huff[tc][th].build(counts, seg[17:17+total], tc == 1); err != nil {
			return err
		}
		seg = seg[17+total:]
	}
	return nil
}

// image wraps the planes, cropped to the scaled size.
func (d *decoder) image() image.Image {
	w, h := (d.w*d.k+7)/8, (d.h*d.k+7)/8
	r := image.Rect(0, 0, w, h)
	if len(d.comps) == 1 {
		c := d.comps[0]
		return &image.Gray{Pix: c.pix, Stride: c.stride, Rect: r}
	}
	ratio := image.YCbCrSubsampleRatio444
	switch y := d.comps[0]; {
	case y.h == 2 && y.v == 2:
		ratio = image.YCbCrSubsampleRatio420
	case y.h == 2:
		ratio = image.YCbCrSubsampleRatio422
	case y.v == 2:
		ratio = image.YCbCrSubsampleRatio440
	}
	return &image.YCbCr{
		Y: d.comps[0].pix, Cb: d.comps[1].pix, Cr: d.comps[2].pix,
		YStride: d.comps[0].stride, CStride: d.comps[1].stride,
		SubsampleRatio: ratio, Rect: r,
	}
}
