package jpegscale

// lutBits is how many bits the lookup tables take at once; longer codes go the slow way.
const lutBits = 9

// huffman is one table. lut holds, for the next lutBits bits, the code length (high byte) and the symbol
// (low byte) of a code that fits, 0 otherwise. fastAC (AC tables) goes one step further for the commonest
// case: a code and its magnitude bits that together fit decode at once to run, total length and value.
type huffman struct {
	present bool
	lut     [1 << lutBits]uint16
	fastAC  [1 << lutBits]int32 // value<<16 | run<<8 | total length; 0 when not fast.
	maxCode [17]int32           // Largest code of each length, -1 when none.
	valPtr  [17]int32           // Index in vals of the first code of each length, minus that code.
	vals    [256]uint8
}

func (t *huffman) build(counts [16]int, vals []byte, ac bool) error {
	*t = huffman{present: true}
	copy(t.vals[:], vals)
	code, k := int32(0), 0
	for l := 1; l <= 16; l++ {
		n := counts[l-1]
		t.valPtr[l] = int32(k) - code
		if n == 0 {
			t.maxCode[l] = -1
		} else {
			t.maxCode[l] = code + int32(n) - 1
		}
		for range n {
			if code >= 1<<l {
				return FormatError("bad Huffman table")
			}
			if l <= lutBits {
				shift := lutBits - l
				for i := code << shift; i < (code+1)<<shift; i++ {
					t.lut[i] = uint16(l)<<8 | uint16(vals[k])
				}
			}
			code++
			k++
		}
		code <<= 1
	}
	if !ac {
		return nil
	}
	for i, e := range t.lut {
		if e == 0 {
			continue
		}
		l, rs := int(e>>8), int(e&0xFF)
		run, size := rs>>4, rs&15
		if size == 0 || l+size > lutBits {
			continue
		}
		// The size bits after the code, extended to a signed value.
		bits := (i << l) & (1<<lutBits - 1) >> (lutBits - size)
		v := extend(int32(bits), size)
		t.fastAC[i] = v<<16 | int32(run)<<8 | int32(l+size)
	}
	return nil
}

// extend turns the size-bit magnitude v into the signed value it codes (T.81 F.2.2.1).
func extend(v int32, size int) int32 {
	if v < 1<<(size-1) {
		return v - (1 << size) + 1
	}
	return v
}

// bitReader reads the entropy-coded data of a scan, most significant bit first, with 0xFF00 unstuffed. At a
// marker it feeds zeros and stops, leaving pos on the marker; past the end of the data it sets eof.
type bitReader struct {
	data   []byte
	pos    int
	acc    uint64 // Bits, left-aligned.
	n      uint   // How many of acc's bits are data.
	marker bool
	eof    bool
}

func (b *bitReader) fill() {
	for b.n <= 56 {
		var c byte
		switch {
		case b.marker:
		case b.pos >= len(b.data):
			b.marker, b.eof = true, true
		case b.data[b.pos] != 0xFF:
			c = b.data[b.pos]
			b.pos++
		case b.pos+1 < len(b.data) && b.data[b.pos+1] == 0:
			c = 0xFF
			b.pos += 2
		default:
			b.marker = true
		}
		b.acc |= uint64(c) << (56 - b.n)
		b.n += 8
	}
}

func (b *bitReader) bits(n int) int32 {
	if n == 0 {
		return 0
	}
	if b.n < uint(n) {
		b.fill()
	}
	v := int32(b.acc >> (64 - uint(n)))
	b.acc <<= uint(n)
	b.n -= uint(n)
	return v
}

func (b *bitReader) bit() bool {
	if b.n == 0 {
		b.fill()
	}
	v := b.acc>>63 != 0
	b.acc <<= 1
	b.n--
	return v
}

// receive reads size magnitude bits and extends them.
func (b *bitReader) receive(size int) int32 {
	if size == 0 {
		return 0
	}
	return extend(b.bits(size), size)
}

// decode reads one symbol of t.
func (b *bitReader) decode(t *huffman) (uint8, error) {
	if b.n < 16 {
		b.fill()
	}
	if e := t.lut[b.acc>>(64-lutBits)]; e != 0 {
		l := uint(e >> 8)
		b.acc <<= l
		b.n -= l
		return uint8(e), nil
	}
	for l := lutBits + 1; l <= 16; l++ {
		code := int32(b.acc >> (64 - uint(l)))
		if code <= t.maxCode[l] {
			b.acc <<= uint(l)
			b.n -= uint(l)
			return t.vals[(code+t.valPtr[l])&0xFF], nil
		}
	}
	return 0, FormatError("bad Huffman code")
}

// reset drops the bits left before a restart marker and steps over the marker.
func (b *bitReader) reset() error {
	b.acc, b.n, b.marker = 0, 0, false
	for b.pos < len(b.data) && b.data[b.pos] != 0xFF {
		b.pos++ // Bytes before the marker (a corrupt stream) are skipped, as libjpeg does.
	}
	for b.pos+1 < len(b.data) && b.data[b.pos] == 0xFF && b.data[b.pos+1] == 0xFF {
		b.pos++
	}
	if b.pos+1 >= len(b.data) {
		b.eof = true
		return errEOF
	}
	if m := b.data[b.pos+1]; m < rst0 || m > rst7 {
		return FormatError("missing restart marker")
	}
	b.pos += 2
	return nil
}
