package loadtest

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
)

// Blob is file content of any size made on the fly: a real header followed by zero bytes, so a 50 MB
// "image" costs no memory to serve. Kind "png" starts with a PNG signature and IHDR (so sniffing and
// image.DecodeConfig see a PNG of Width×Height), "pdf" with "%PDF-1.7", "" with nothing. Kind "jpeg" is a real
// picture: Data, shared by every blob made from it (Size must be len(Data)).
type Blob struct {
	Kind          string
	Size          int64
	Width, Height int
	Data          []byte
}

// Open returns the content as a stream.
func (b Blob) Open() io.Reader {
	if b.Data != nil {
		return bytes.NewReader(b.Data)
	}
	head := b.header()
	if int64(len(head)) > b.Size {
		head = head[:b.Size]
	}
	return io.MultiReader(bytes.NewReader(head), io.LimitReader(zeros{}, b.Size-int64(len(head))))
}

// Mimetype is what a platform would claim for the blob.
func (b Blob) Mimetype() string {
	switch b.Kind {
	case "png":
		return "image/png"
	case "jpeg":
		return "image/jpeg"
	case "pdf":
		return "application/pdf"
	}
	return "application/octet-stream"
}

func (b Blob) header() []byte {
	switch b.Kind {
	case "png":
		w, h := b.Width, b.Height
		if w <= 0 || h <= 0 {
			w, h = 640, 480
		}
		var buf bytes.Buffer
		buf.WriteString("\x89PNG\r\n\x1a\n")
		ihdr := make([]byte, 13)
		binary.BigEndian.PutUint32(ihdr[0:], uint32(w))
		binary.BigEndian.PutUint32(ihdr[4:], uint32(h))
		ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB.
		chunk(&buf, "IHDR", ihdr)
		return buf.Bytes()
	case "pdf":
		return []byte("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n")
	}
	return nil
}

func chunk(buf *bytes.Buffer, typ string, data []byte) {
	binary.Write(buf, binary.BigEndian, uint32(len(data)))
	crc := crc32.NewIEEE()
	buf.WriteString(typ)
	crc.Write([]byte(typ))
	buf.Write(data)
	crc.Write(data)
	binary.Write(buf, binary.BigEndian, crc.Sum32())
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
