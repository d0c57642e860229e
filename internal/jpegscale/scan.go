package jpegscale

// scanComp is one component of a scan.
type scanComp struct {
	c      *component
	dc, ac *huffman
	pred   int32 // DC prediction.
}

// readSOS reads a scan header and decodes the scan that follows, leaving d.pos at the marker after it.
func (d *decoder) readSOS(seg []byte) error {
	if len(seg) < 1 {
		return FormatError("short SOS")
	}
	ns := int(seg[0])
	if ns < 1 || ns > len(d.comps) || len(seg) != 4+2*ns {
		return FormatError("SOS has the wrong length")
	}
	d.allocate()
	var sc [3]scanComp
	for i := range ns {
		id, tables := seg[1+2*i], seg[2+2*i]
		ci := -1
		for j := range d.comps {
			if d.comps[j].id == id {
				ci = j
			}
		}
		if ci < 0 {
			return FormatError("scan names an unknown component")
		}
		for j := range i {
			if sc[j].c == &d.comps[ci] {
				return FormatError("scan repeats a component")
			}
		}
		td, ta := tables>>4, tables&15
		if td > 3 || ta > 3 {
			return FormatError("bad Huffman table number")
		}
		sc[i] = scanComp{c: &d.comps[ci], dc: &d.huff[0][td], ac: &d.huff[1][ta]}
	}
	ss, se := int(seg[1+2*ns]), int(seg[2+2*ns])
	ah, al := int(seg[3+2*ns]>>4), uint(seg[3+2*ns]&15)
	if d.progressive {
		if ss > se || se > 63 || (ss == 0 && se != 0) || (ss > 0 && ns != 1) || al > 13 || ah > 13 {
			return FormatError("bad progressive scan")
		}
	} else if ss != 0 || se != 63 || ah != 0 || al != 0 {
		return FormatError("bad sequential scan")
	}
	for i := range ns {
		if (!d.progressive || ss == 0) && ah == 0 && !sc[i].dc.present {
			return FormatError("missing DC Huffman table")
		}
		if (!d.progressive || ss > 0) && !sc[i].ac.present {
			return FormatError("missing AC Huffman table")
		}
		if !d.progressive && !d.haveQuant[sc[i].c.tq] {
			return FormatError("missing quantization table")
		}
	}
	d.bits = bitReader{data: d.data, pos: d.pos}
	d.eobrun = 0
	err := d.scan(sc[:ns], ss, se, ah, al)
	d.pos = d.bits.pos
	if err != nil {
		return err
	}
	if d.bits.eof {
		return errEOF
	}
	return nil
}

// scan decodes the blocks of one scan: MCU by MCU when it has several components, else block by block over
// the one component's picture area.
func (d *decoder) scan(sc []scanComp, ss, se, ah int, al uint) error {
	var block [64]int32
	mx, my := d.mx, d.my
	if len(sc) == 1 {
		mx, my = sc[0].c.bw, sc[0].c.bh
	}
	todo := d.ri // MCUs to the next restart marker.
	for my0 := range my {
		for mx0 := range mx {
			if d.ri > 0 && todo == 0 {
				if err := d.bits.reset(); err != nil {
					return err
				}
				todo = d.ri
				d.eobrun = 0
				for i := range sc {
					sc[i].pred = 0
				}
			}
			todo--
			for i := range sc {
				s := &sc[i]
				c := s.c
				bh, bv := c.h, c.v
				if len(sc) == 1 {
					bh, bv = 1, 1
				}
				for v := range bv {
					for h := range bh {
						bx, by := mx0*bh+h, my0*bv+v
						if !d.progressive {
							n, err := d.baseline(s, &block)
							if err != nil {
								return err
							}
							d.idct(c, bx, by, &block, n)
							continue
						}
						coef := c.coef[(by*c.pw+bx)*64:][:64]
						var err error
						switch {
						case ss == 0 && ah == 0:
							err = d.dcFirst(s, coef, al)
						case ss == 0:
							if d.bits.bit() {
								coef[0] |= 1 << al
							}
						case ah == 0:
							err = d.acFirst(s, coef, ss, se, al)
						default:
							err = d.acRefine(s, coef, ss, se, al)
						}
						if err != nil {
							return err
						}
					}
				}
			}
			if d.bits.eof {
				return errEOF
			}
		}
	}
	return nil
}

// baseline decodes one block of a sequential scan into block (dequantized, natural order, zero elsewhere) and
// returns 1 + the zig-zag index of its last coefficient, so that a block of DC alone is cheap to transform.
func (d *decoder) baseline(s *scanComp, block *[64]int32) (int, error) {
	*block = [64]int32{}
	q := &d.quant[s.c.tq]
	b := &d.bits
	t, err := b.decode(s.dc)
	if err != nil {
		return 0, err
	}
	if t > 11 {
		return 0, FormatError("bad DC difference")
	}
	s.pred += b.receive(int(t))
	block[0] = s.pred * q[0]
	last := 0
	ac := s.ac
	for k := 1; k < 64; {
		if b.n < 16 {
			b.fill()
		}
		if e := ac.fastAC[b.acc>>(64-lutBits)]; e != 0 {
			l := uint(e & 0xFF)
			b.acc <<= l
			b.n -= l
			k += int(e>>8) & 0xFF
			if k > 63 {
				break
			}
			z := unzig[k]
			block[z] = (e >> 16) * q[z]
			last = k
			k++
			continue
		}
		rs, err := b.decode(ac)
		if err != nil {
			return 0, err
		}
		r, size := int(rs>>4), int(rs&15)
		if size == 0 {
			if r != 15 {
				break
			}
			k += 16
			continue
		}
		k += r
		if k > 63 {
			break
		}
		z := unzig[k]
		block[z] = b.receive(size) * q[z]
		last = k
		k++
	}
	return last + 1, nil
}

func (d *decoder) dcFirst(s *scanComp, coef []int16, al uint) error {
	t, err := d.bits.decode(s.dc)
	if err != nil {
		return err
	}
	if t > 11 {
		return FormatError("bad DC difference")
	}
	s.pred += d.bits.receive(int(t))
	coef[0] = int16(s.pred << al)
	return nil
}

func (d *decoder) acFirst(s *scanComp, coef []int16, ss, se int, al uint) error {
	if d.eobrun > 0 {
		d.eobrun--
		return nil
	}
	b := &d.bits
	for k := ss; k <= se; {
		rs, err := b.decode(s.ac)
		if err != nil {
			return err
		}
		r, size := int(rs>>4), int(rs&15)
		if size == 0 {
			if r < 15 {
				d.eobrun = 1<<r - 1
				if r > 0 {
					d.eobrun += int(b.bits(r))
				}
				return nil
			}
			k += 16
			continue
		}
		k += r
		if k > se {
			return FormatError("AC coefficient past the band")
		}
		coef[unzig[k]] = int16(b.receive(size) << al)
		k++
	}
	return nil
}

// acRefine adds one bit to the band's coefficients (T.81 G.1.2.3): a bit for each that is already nonzero,
// and new coefficients of ±1<<al in between.
func (d *decoder) acRefine(s *scanComp, coef []int16, ss, se int, al uint) error {
	p1, m1 := int16(1)<<al, int16(-1)<<al
	b := &d.bits
	refine := func(z int) {
		if b.bit() && coef[z]&p1 == 0 {
			if coef[z] >= 0 {
				coef[z] += p1
			} else {
				coef[z] += m1
			}
		}
	}
	k := ss
	if d.eobrun == 0 {
		for ; k <= se; k++ {
			rs, err := b.decode(s.ac)
			if err != nil {
				return err
			}
			r, size := int(rs>>4), int(rs&15)
			var z int16
			if size != 0 {
				if size != 1 {
					return FormatError("bad refinement")
				}
				if b.bit() {
					z = p1
				} else {
					z = m1
				}
			} else if r != 15 {
				d.eobrun = 1 << r
				if r > 0 {
					d.eobrun += int(b.bits(r))
				}
				break
			}
			for ; k <= se; k++ {
				u := unzig[k]
				if coef[u] != 0 {
					refine(u)
					continue
				}
				if r == 0 {
					break
				}
				r--
			}
			if z != 0 && k <= se {
				coef[unzig[k]] = z
			}
		}
	}
	if d.eobrun > 0 {
		for ; k <= se; k++ {
			if u := unzig[k]; coef[u] != 0 {
				refine(u)
			}
		}
		d.eobrun--
	}
	return nil
}

// finishProgressive dequantizes and transforms every block once all scans are read.
func (d *decoder) finishProgressive() {
	var block [64]int32
	for i := range d.comps {
		c := &d.comps[i]
		q := &d.quant[c.tq]
		for by := range c.ph {
			for bx := range c.pw {
				coef := c.coef[(by*c.pw+bx)*64:][:64]
				n := 1
				for z, v := range coef {
					block[z] = int32(v) * q[z]
					if v != 0 && z != 0 {
						n = 64 // Not only DC.
					}
				}
				d.idct(c, bx, by, &block, n)
			}
		}
	}
}
