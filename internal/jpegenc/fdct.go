package jpegenc

// The forward DCT in fixed point: F(u) = ½·C(u)·Σ f(x)·cos((2x+1)uπ/16) along rows, then along columns.
// Samples x and 7−x weigh the same for even u and opposite for odd u, so the even outputs need the sums
// s = f(x)+f(7−x) and the odd ones the differences d; the c constants are ½·cos(nπ/16)·2^13.
const (
	fdctBits = 13
	rowBits  = 2 // The fraction the row pass keeps; the result has 3 (a coefficient times 8).

	c1 = 4017
	c2 = 3784
	c3 = 3406
	c4 = 2896 // Also ½·C(0) = ½/√2.
	c5 = 2276
	c6 = 1567
	c7 = 799
)

// fdct1 is one 8-point transform of in, rounded and shifted right by shift.
func fdct1(in *[8]int, shift uint) [8]int {
	s0, s1, s2, s3 := in[0]+in[7], in[1]+in[6], in[2]+in[5], in[3]+in[4]
	d0, d1, d2, d3 := in[0]-in[7], in[1]-in[6], in[2]-in[5], in[3]-in[4]
	r := 1 << (shift - 1)
	e0, e1 := s0+s3, s1+s2
	o0, o1 := s0-s3, s1-s2
	return [8]int{
		(c4*(e0+e1) + r) >> shift,
		(c1*d0 + c3*d1 + c5*d2 + c7*d3 + r) >> shift,
		(c2*o0 + c6*o1 + r) >> shift,
		(c3*d0 - c7*d1 - c1*d2 - c5*d3 + r) >> shift,
		(c4*(e0-e1) + r) >> shift,
		(c5*d0 - c1*d1 + c7*d2 + c3*d3 + r) >> shift,
		(c6*o0 - c2*o1 + r) >> shift,
		(c7*d0 - c5*d1 + c3*d2 - c1*d3 + r) >> shift,
	}
}

// fdct replaces the samples b (natural order, level-shifted) with their DCT coefficients times 8.
func fdct(b *[64]int32) {
	var t [8][8]int // t[u][y]: the rows' outputs, transposed for the column pass.
	for y := range 8 {
		var in [8]int
		for x := range 8 {
			in[x] = int(b[8*y+x])
		}
		out := fdct1(&in, fdctBits-rowBits)
		for u := range 8 {
			t[u][y] = out[u]
		}
	}
	for u := range 8 {
		out := fdct1(&t[u], fdctBits+rowBits-3)
		for v := range 8 {
			b[8*v+u] = int32(out[v])
		}
	}
}
