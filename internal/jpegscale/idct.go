package jpegscale

//go:generate go run gen_idct.go

// A k-point inverse DCT puts sample x of k where position (x+½)·8/k − ½ of the 8 would be, so the 8-point
// transform's cos((2t+1)uπ/16) becomes cos((2x+1)uπ/2k) for the k lowest frequencies u, with the 8-point
// normalisation (a flat block keeps its level at any k). gen_idct.go writes each k's transform as
// straight-line code (idct_k.go) with these fixed-point weights.
const (
	idctBits  = 13 // The weights' fraction.
	passBits  = 5  // The fraction kept between the column and the row pass.
	idctShift = idctBits + passBits
	idctBias  = 128<<idctShift + 1<<(idctShift-1) // Level shift and rounding.
)

// idct writes the k×k pixels of the dequantized block b (natural order) at block (bx, by) of c's plane. n is
// 1 + the zig-zag index of the block's last nonzero coefficient: a block of DC alone is flat.
func (d *decoder) idct(c *component, bx, by int, b *[64]int32, n int) {
	k := d.k
	dst := c.pix[(by*c.stride+bx)*k:]
	if n == 1 {
		v := clamp((int(b[0])+4)>>3 + 128)
		for y := range k {
			row := dst[y*c.stride:][:k]
			for x := range row {
				row[x] = v
			}
		}
		return
	}
	idctK[k](b, dst, c.stride)
}

func clamp(v int) uint8 {
	if uint(v) > 255 {
		if v < 0 {
			return 0
		}
		return 255
	}
	return uint8(v)
}
