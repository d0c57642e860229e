package bot

import (
	"image"
	stddraw "image/draw"
	"math"
)

// The downscaler works on 8-bit planes: a JPEG's Y, Cb and Cr (never converted to RGB), a grey image, or the
// interleaved channels of an RGBA picture. It filters with a Catmull-Rom kernel stretched to the scale, the
// vertical pass first and one row at a time, so it needs a row of scratch where golang.org/x/image/draw's
// kernel scaler holds four float64 per pixel of the half-scaled image (about 200 MB for a phone photo); see
// docs/benchmarks.md for the measurements that chose it.

// weightBits is the fixed-point precision of the filter weights.
const weightBits = 14

// taps are the filter weights of every output coordinate along one axis: output i reads count[i] inputs from
// start[i], weighted by w[off[i]:].
type taps struct {
	start, count, off []int
	w                 []int32
}

// catmullRom is the Catmull-Rom cubic (B=0, C=0.5), sharp without visible ringing; its support is 2.
func catmullRom(x float64) float64 {
	x = math.Abs(x)
	switch {
	case x < 1:
		return (1.5*x-2.5)*x*x + 1
	case x < 2:
		return ((-0.5*x+2.5)*x-4)*x + 2
	}
	return 0
}

// makeTaps computes the weights that take n inputs to m outputs. Inputs past either edge repeat the edge.
func makeTaps(n, m int) taps {
	scale := float64(n) / float64(m)
	support := 2.0
	if scale > 1 {
		support *= scale
	}
	t := taps{start: make([]int, m), count: make([]int, m), off: make([]int, m)}
	buf := make([]float64, 0, int(2*support)+3)
	for i := range m {
		center := (float64(i)+0.5)*scale - 0.5
		lo := int(math.Floor(center - support + 1))
		hi := int(math.Ceil(center + support - 1))
		first, last := max(lo, 0), min(hi, n-1)
		buf = buf[:last-first+1]
		clear(buf)
		var sum float64
		for j := lo; j <= hi; j++ {
			x := float64(j) - center
			if scale > 1 {
				x /= scale
			}
			v := catmullRom(x)
			buf[min(max(j, first), last)-first] += v
			sum += v
		}
		t.start[i], t.count[i], t.off[i] = first, len(buf), len(t.w)
		var total, peak int32
		peakAt := 0
		for k, v := range buf {
			q := int32(math.Round(v / sum * (1 << weightBits)))
			t.w = append(t.w, q)
			total += q
			if q > peak {
				peak, peakAt = q, k
			}
		}
		t.w[t.off[i]+peakAt] += 1<<weightBits - total // Rounding must not brighten or darken.
	}
	return t
}

// packed lays the weights out 8 to an output, zero past each one's count, and returns the largest count: an
// inner loop of fixed length without bounds checks. Wider filters (scales over 4) are not packed.
func (t taps) packed() ([]int32, int) {
	n := 0
	for _, c := range t.count {
		n = max(n, c)
	}
	if n > 8 {
		return nil, n
	}
	w := make([]int32, 8*len(t.count))
	for i, c := range t.count {
		copy(w[8*i:], t.w[t.off[i]:][:c])
	}
	return w, n
}

// plane is an 8-bit image: ch interleaved channels per pixel, rows stride bytes apart.
type plane struct {
	pix        []uint8
	w, h       int
	stride, ch int
}

// resample scales src into dst (whose w, h and ch are set), vertically into one row of scratch, then that row
// horizontally into dst.
func resample(dst, src plane) {
	vt, ht := makeTaps(src.h, dst.h), makeTaps(src.w, dst.w)
	rowLen := src.w * src.ch
	acc := make([]int32, rowLen)
	rowBuf := make([]uint8, rowLen+8) // The padding lets a one-plane row be read 8 bytes at a time.
	narrow, n := ht.packed()
	const half = 1 << (weightBits - 1)
	for y := range dst.h {
		ws := vt.w[vt.off[y]:][:vt.count[y]]
		first := vt.start[y]
		in := func(j int) []uint8 { return src.pix[(first+j)*src.stride:][:rowLen] }
		clear(acc)
		k := 0
		for ; len(ws)-k > 4; k += 4 { // Four rows a pass, the last one to four rounded into row: few trips through acc.
			w0, w1, w2, w3 := ws[k], ws[k+1], ws[k+2], ws[k+3]
			in0, in1, in2, in3 := in(k), in(k+1), in(k+2), in(k+3)
			for x := range acc {
				acc[x] += w0*int32(in0[x]) + w1*int32(in1[x]) + w2*int32(in2[x]) + w3*int32(in3[x])
			}
		}
		row := rowBuf[:rowLen]
		switch len(ws) - k {
		case 4:
			w0, w1, w2, w3 := ws[k], ws[k+1], ws[k+2], ws[k+3]
			in0, in1, in2, in3 := in(k), in(k+1), in(k+2), in(k+3)
			for x := range row {
				row[x] = clamp8((acc[x] + w0*int32(in0[x]) + w1*int32(in1[x]) + w2*int32(in2[x]) + w3*int32(in3[x]) + half) >> weightBits)
			}
		case 3:
			w0, w1, w2 := ws[k], ws[k+1], ws[k+2]
			in0, in1, in2 := in(k), in(k+1), in(k+2)
			for x := range row {
				row[x] = clamp8((acc[x] + w0*int32(in0[x]) + w1*int32(in1[x]) + w2*int32(in2[x]) + half) >> weightBits)
			}
		case 2:
			w0, w1 := ws[k], ws[k+1]
			in0, in1 := in(k), in(k+1)
			for x := range row {
				row[x] = clamp8((acc[x] + w0*int32(in0[x]) + w1*int32(in1[x]) + half) >> weightBits)
			}
		default:
			w0, in0 := ws[k], in(k)
			for x := range row {
				row[x] = clamp8((acc[x] + w0*int32(in0[x]) + half) >> weightBits)
			}
		}
		out := dst.pix[y*dst.stride:][:dst.w*dst.ch]
		if src.ch == 1 && n <= 8 {
			for x := range out {
				w := (*[8]int32)(narrow[x*8:])
				in := (*[8]uint8)(rowBuf[ht.start[x]:])
				var sum int32
				switch n { // The taps past count[x] weigh 0.
				case 8:
					sum += w[7] * int32(in[7])
					fallthrough
				case 7:
					sum += w[6] * int32(in[6])
					fallthrough
				case 6:
					sum += w[5] * int32(in[5])
					fallthrough
				case 5:
					sum += w[4] * int32(in[4])
					fallthrough
				case 4:
					sum += w[3] * int32(in[3])
					fallthrough
				case 3:
					sum += w[2] * int32(in[2])
					fallthrough
				case 2:
					sum += w[1] * int32(in[1])
					fallthrough
				default:
					sum += w[0] * int32(in[0])
				}
				out[x] = clamp8((sum + half) >> weightBits)
			}
			continue
		}
		if src.ch == 1 {
			for x := range out {
				ws := ht.w[ht.off[x]:][:ht.count[x]]
				in := rowBuf[ht.start[x]:][:len(ws)]
				var sum int32
				for k, wk := range ws {
					sum += wk * int32(in[k])
				}
				out[x] = clamp8((sum + half) >> weightBits)
			}
			continue
		}
		for x := range dst.w {
			ws := ht.w[ht.off[x]:][:ht.count[x]]
			base := ht.start[x] * src.ch
			for c := range src.ch {
				var sum int32
				in := rowBuf[base+c:]
				for k, wk := range ws {
					sum += wk * int32(in[k*src.ch])
				}
				out[x*dst.ch+c] = clamp8((sum + half) >> weightBits)
			}
		}
	}
}

func clamp8(v int32) uint8 {
	if uint32(v) <= 255 {
		return uint8(v)
	}
	if v < 0 {
		return 0
	}
	return 255
}

// scaleImage returns m scaled to w×h. A JPEG's YCbCr stays YCbCr (4:2:0 out, whatever came in), grey stays
// grey, RGBA and NRGBA stay what they are; anything else (palettes, CMYK, 16-bit) is converted to RGBA first.
func scaleImage(m image.Image, w, h int) image.Image {
	if y, ok := m.(*image.YCbCr); ok && y.Rect.Min == (image.Point{}) {
		out := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
		cw, ch := chromaSize(y)
		ow, oh := (w+1)/2, (h+1)/2
		resample(plane{out.Y, w, h, out.YStride, 1}, plane{y.Y, y.Rect.Dx(), y.Rect.Dy(), y.YStride, 1})
		resample(plane{out.Cb, ow, oh, out.CStride, 1}, plane{y.Cb, cw, ch, y.CStride, 1})
		resample(plane{out.Cr, ow, oh, out.CStride, 1}, plane{y.Cr, cw, ch, y.CStride, 1})
		return out
	}
	if src, like, ok := onePlane(m); ok {
		out, dst := like(w, h)
		resample(dst, src)
		return out
	}
	return scaleImage(toRGBA(m), w, h)
}

// onePlane returns the pixels of a grey, RGBA or NRGBA image at the origin as one plane, with a function that
// makes an image of the same kind at another size.
func onePlane(m image.Image) (plane, func(w, h int) (image.Image, plane), bool) {
	if m.Bounds().Min != (image.Point{}) {
		return plane{}, nil, false
	}
	w, h := m.Bounds().Dx(), m.Bounds().Dy()
	switch m := m.(type) {
	case *image.Gray:
		return plane{m.Pix, w, h, m.Stride, 1}, func(w, h int) (image.Image, plane) {
			o := image.NewGray(image.Rect(0, 0, w, h))
			return o, plane{o.Pix, w, h, o.Stride, 1}
		}, true
	case *image.RGBA:
		return plane{m.Pix, w, h, m.Stride, 4}, func(w, h int) (image.Image, plane) {
			o := image.NewRGBA(image.Rect(0, 0, w, h))
			return o, plane{o.Pix, w, h, o.Stride, 4}
		}, true
	case *image.NRGBA:
		return plane{m.Pix, w, h, m.Stride, 4}, func(w, h int) (image.Image, plane) {
			o := image.NewNRGBA(image.Rect(0, 0, w, h))
			return o, plane{o.Pix, w, h, o.Stride, 4}
		}, true
	}
	return plane{}, nil, false
}

// toRGBA copies m into an RGBA image at the origin.
func toRGBA(m image.Image) *image.RGBA {
	b := m.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	stddraw.Draw(out, out.Rect, m, b.Min, stddraw.Src)
	return out
}

// chromaSize is the size of m's Cb and Cr planes.
func chromaSize(m *image.YCbCr) (int, int) {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio422:
		return (w + 1) / 2, h
	case image.YCbCrSubsampleRatio420:
		return (w + 1) / 2, (h + 1) / 2
	case image.YCbCrSubsampleRatio440:
		return w, (h + 1) / 2
	case image.YCbCrSubsampleRatio411:
		return (w + 3) / 4, h
	case image.YCbCrSubsampleRatio410:
		return (w + 3) / 4, (h + 1) / 2
	}
	return w, h
}

// orient turns m upright by its EXIF orientation (2 to 8; anything else returns m). Every plane is moved the
// same way, so a 4:2:0 JPEG stays 4:2:0 when its sides swap.
func orient(m image.Image, o int) image.Image {
	if o < 2 || o > 8 {
		return m
	}
	w, h := m.Bounds().Dx(), m.Bounds().Dy()
	ow, oh := w, h
	if o >= 5 {
		ow, oh = h, w
	}
	if y, ok := m.(*image.YCbCr); ok && y.SubsampleRatio == image.YCbCrSubsampleRatio420 && y.Rect.Min == (image.Point{}) {
		out := image.NewYCbCr(image.Rect(0, 0, ow, oh), image.YCbCrSubsampleRatio420)
		turn(plane{out.Y, ow, oh, out.YStride, 1}, plane{y.Y, w, h, y.YStride, 1}, o)
		cw, ch, ocw, och := (w+1)/2, (h+1)/2, (ow+1)/2, (oh+1)/2
		turn(plane{out.Cb, ocw, och, out.CStride, 1}, plane{y.Cb, cw, ch, y.CStride, 1}, o)
		turn(plane{out.Cr, ocw, och, out.CStride, 1}, plane{y.Cr, cw, ch, y.CStride, 1}, o)
		return out
	}
	if src, like, ok := onePlane(m); ok {
		out, dst := like(ow, oh)
		turn(dst, src, o)
		return out
	}
	return orient(toRGBA(m), o)
}

// turn writes src into dst as EXIF orientation o says the picture is to be shown. The source pixel of
// dst(x, y) is (ax+bx·x+cx·y, ay+by·x+cy·y), so along a row its offset moves by a fixed step.
func turn(dst, src plane, o int) {
	w, h := src.w-1, src.h-1
	c := [9][6]int{
		1: {0, 1, 0, 0, 0, 1}, 2: {w, -1, 0, 0, 0, 1}, 3: {w, -1, 0, h, 0, -1}, 4: {0, 1, 0, h, 0, -1},
		5: {0, 0, 1, 0, 1, 0}, 6: {0, 0, 1, h, -1, 0}, 7: {w, 0, -1, h, -1, 0}, 8: {w, 0, -1, 0, 1, 0},
	}[o]
	ax, bx, cx, ay, by, cy := c[0], c[1], c[2], c[3], c[4], c[5]
	origin := ay*src.stride + ax*src.ch
	stepX := by*src.stride + bx*src.ch
	stepY := cy*src.stride + cx*src.ch
	for y := range dst.h {
		off := origin + y*stepY
		out := dst.pix[y*dst.stride:][:dst.w*dst.ch]
		if dst.ch == 1 {
			for x := range out {
				out[x] = src.pix[off]
				off += stepX
			}
			continue
		}
		for x := 0; x < len(out); x += dst.ch {
			copy(out[x:x+dst.ch], src.pix[off:off+dst.ch])
			off += stepX
		}
	}
}
