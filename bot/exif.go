package bot

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
)

// jpegOrientation reads the EXIF orientation (1 to 8) of a JPEG: the Orientation tag (0x0112) of IFD0 in the
// first APP1 "Exif" segment. It stops at the start of the image data, and a JPEG without the tag, or with a
// value out of range, reads as 1 (upright). Only the orientation is read; the rest of EXIF, GPS included, is
// dropped with the file whenever the bot re-encodes it.
func jpegOrientation(r io.Reader) int {
	br := bufio.NewReaderSize(r, 4096)
	var soi [2]byte
	if _, err := io.ReadFull(br, soi[:]); err != nil || soi != [2]byte{0xff, 0xd8} {
		return 1
	}
	for {
		b, err := br.ReadByte()
		if err != nil || b != 0xff {
			return 1
		}
		marker, err := br.ReadByte()
		for err == nil && marker == 0xff { // Fill bytes.
			marker, err = br.ReadByte()
		}
		switch {
		case err != nil, marker == 0xda, marker == 0xd9: // Start of scan, end of image.
			return 1
		case marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7): // No length.
			continue
		}
		var lb [2]byte
		if _, err := io.ReadFull(br, lb[:]); err != nil {
			return 1
		}
		n := int(binary.BigEndian.Uint16(lb[:])) - 2
		if n < 0 {
			return 1
		}
		if marker != 0xe1 {
			if _, err := br.Discard(n); err != nil {
				return 1
			}
			continue
		}
		seg := make([]byte, n)
		if _, err := io.ReadFull(br, seg); err != nil {
			return 1
		}
		if rest, ok := bytes.CutPrefix(seg, []byte("Exif\x00\x00")); ok {
			return tiffOrientation(rest)
		}
	}
}

// tiffOrientation reads the Orientation tag of IFD0 from a TIFF header and what follows it.
func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 1
	}
	var order binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		order = binary.LittleEndian
	case "MM":
		order = binary.BigEndian
	default:
		return 1
	}
	if order.Uint16(t[2:]) != 42 {
		return 1
	}
	ifd := int64(order.Uint32(t[4:]))
	if ifd < 8 || ifd+2 > int64(len(t)) {
		return 1
	}
	n := int64(order.Uint16(t[ifd:]))
	for i := range n {
		e := ifd + 2 + 12*i
		if e+12 > int64(len(t)) {
			return 1
		}
		tag, typ, count := order.Uint16(t[e:]), order.Uint16(t[e+2:]), order.Uint32(t[e+4:])
		if tag != 0x0112 {
			continue
		}
		if typ != 3 || count != 1 { // One SHORT, stored in the entry itself.
			return 1
		}
		if v := int(order.Uint16(t[e+8:])); v >= 1 && v <= 8 {
			return v
		}
		return 1
	}
	return 1
}
