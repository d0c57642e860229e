package bot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"strings"
)

// imageTypes are the image formats Dify accepts, by sniffed content type, with the extension Dify
// uses to pick its size class.
var imageTypes = map[string]string{
	"image/jpeg":    ".jpg",
	"image/png":     ".png",
	"image/gif":     ".gif",
	"image/webp":    ".webp",
	"image/svg+xml": ".svg",
}

// attachment is an image spooled to a temporary file, so memory stays flat whatever its size.
type attachment struct {
	file     *os.File
	size     int64
	mimeType string
	name     string
}

func (im *attachment) close() {
	if im.file != nil {
		im.file.Close()
		os.Remove(im.file.Name())
	}
}

// fetch streams f from the platform into a temporary file, refusing more than max bytes. The download has its
// own limits (FetchTimeout overall, FetchIdle without a byte), so a platform that stalls gets the person an
// answer instead of holding the run until the job's timeout.
func (b *Bot) fetch(ctx context.Context, p Platform, m Message, f File, max int64) (*attachment, error) {
	if f.Size > max {
		return nil, Classified(CodeImageTooLarge, "fetch", fmt.Errorf("%s is %d bytes, over the %d byte limit", f.Name, f.Size, max))
	}
	w := watchFetch(ctx, b.cfg.FetchTimeout, b.cfg.FetchIdle, platformTitle(p.Name()))
	defer w.stop()
	rc, err := p.OpenFile(w.ctx, m, f)
	if err != nil {
		if lerr := w.limit(); lerr != nil {
			// The platform's own error only says the context ended.
			return nil, Classified(CodePlatformDownloadFailed, "fetch", fmt.Errorf("%s: %w", f.Name, lerr))
		}
		var be *Error
		if errors.As(err, &be) {
			return nil, err
		}
		return nil, Classified(CodePlatformDownloadFailed, "fetch", err)
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(b.cfg.TempDir, "difybot-image-*")
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	im := &attachment{file: tmp, name: f.Name}
	n, err := io.Copy(tmp, io.LimitReader(w.body(rc), max+1))
	im.size = n
	switch {
	case err != nil:
		im.close()
		if lerr := w.limit(); lerr != nil {
			return nil, Classified(CodePlatformDownloadFailed, "fetch", fmt.Errorf("%s: %w (after %d bytes)", f.Name, lerr, n))
		}
		return nil, Classified(CodePlatformDownloadFailed, "fetch", err)
	case n > max:
		im.close()
		return nil, Classified(CodeImageTooLarge, "fetch", fmt.Errorf("%s is over the %d byte limit", f.Name, max))
	case n == 0:
		im.close()
		return nil, Classified(CodePlatformDownloadFailed, "fetch", fmt.Errorf("%s is empty", f.Name))
	}
	return im, nil
}

// sniff reads the type from the bytes (never trusting the platform's claim), refusing what Dify cannot take
// and the bot cannot convert, and checks an SVG for active content.
func (im *attachment) sniff() error {
	head := make([]byte, 512)
	n, err := im.file.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return fmt.Errorf("check: %w", err)
	}
	head = head[:n]
	im.mimeType = http.DetectContentType(head)
	switch {
	case isHEIC(head):
		im.mimeType = "image/heic" // Converted to JPEG by shape.
	case maybeSVG(head):
		reason, svg, err := svgRisk(io.NewSectionReader(im.file, 0, im.size))
		switch {
		case err != nil:
			return fmt.Errorf("check: %w", err)
		case svg && reason != "":
			return Classified(CodeImageUnsupported, "check", fmt.Errorf("%s: %s, so it is not sent to Dify", im.name, reason))
		case svg:
			im.mimeType = "image/svg+xml"
		}
	}
	if _, ok := formats[im.mimeType]; !ok {
		return Classified(CodeImageUnsupported, "check", fmt.Errorf("%s is %s, not an image Dify accepts (jpg, png, gif, webp, svg) or the bot converts (heic)", im.name, im.mimeType))
	}
	return nil
}

// rename gives the file the extension of what is sent, which Dify needs to classify it, and rewinds it.
func (im *attachment) rename() error {
	base := strings.TrimSuffix(path.Base(im.name), path.Ext(im.name))
	if base == "" || base == "." || base == "/" {
		base = "image"
	}
	im.name = base + imageTypes[im.mimeType]
	_, err := im.file.Seek(0, io.SeekStart)
	return err
}

// maybeSVG reports a file that may be an SVG document: markup that mentions <svg early. svgRisk decides, by
// its root element, and checks it.
func maybeSVG(head []byte) bool {
	h := bytes.ToLower(bytes.TrimLeft(bytes.TrimPrefix(head, []byte("\xef\xbb\xbf")), " \t\r\n"))
	return bytes.HasPrefix(h, []byte("<")) && bytes.Contains(h, []byte("<svg"))
}
