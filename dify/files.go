package dify

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"path"
	"strings"
	"sync"
)

// Upload is a file to send to Dify.
type Upload struct {
	User     string // Dify's end-user id; keep it equal to the run's user.
	Name     string // File name; its extension decides Dify's size class, so it must match the content.
	MIMEType string // Content type of the part; Dify refuses an empty one.
	// Body is streamed, never held in memory. If it is an io.Seeker the upload can be retried
	// and is sent with a Content-Length; otherwise it is sent once, chunked.
	Body io.Reader
}

// File is an uploaded file.
type File struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Size      int64  `json:"size"`
	Extension string `json:"extension"`
	MIMEType  string `json:"mime_type"`
}

// UploadFile sends u to POST /files/upload. Network errors, 5xx and 429 are retried with backoff when the body
// can be rewound.
//
// The multipart body is the file's bytes between a small prefix and suffix built up front, read through an
// io.MultiReader: it streams like an io.Pipe would, but needs no goroutine and knows its length, which lets
// proxies reject an oversize upload before it is sent.
func (c *Client) UploadFile(ctx context.Context, u Upload) (*File, error) {
	const op = "upload file"
	if u.Body == nil {
		return nil, fmt.Errorf("dify: %s: no body", op)
	}
	prefix, suffix, ctype, err := multipartFrame(u)
	if err != nil {
		return nil, fmt.Errorf("dify: %s: %w", op, err)
	}
	seeker, _ := u.Body.(io.Seeker)
	var start, size int64 = 0, -1
	if seeker != nil {
		if start, err = seeker.Seek(0, io.SeekCurrent); err == nil {
			var end int64
			if end, err = seeker.Seek(0, io.SeekEnd); err == nil {
				size = end - start
				_, err = seeker.Seek(start, io.SeekStart)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("dify: %s: %w", op, err)
		}
	}
	policy := c.retry
	if seeker == nil {
		policy.MaxAttempts = 1
	}
	var f File
	var prev *uploadBody
	err = c.call(ctx, policy, canRepeat, func() error {
		if prev != nil {
			// The transport may still be reading the last attempt's body after answering; wait for it to let go.
			select {
			case <-prev.closed:
			case <-ctx.Done():
				return ctx.Err()
			}
			if _, err := seeker.Seek(start, io.SeekStart); err != nil {
				return fmt.Errorf("dify: %s: rewind: %w", op, err)
			}
		}
		src := &uploadBody{r: io.MultiReader(bytes.NewReader(prefix), u.Body, bytes.NewReader(suffix)), closed: make(chan struct{})}
		prev = src
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint("/files/upload"), src)
		if err != nil {
			return fmt.Errorf("dify: %s: %w", op, err)
		}
		if size >= 0 {
			req.ContentLength = int64(len(prefix)) + size + int64(len(suffix))
		}
		req.Header.Set("Content-Type", ctype)
		resp, err := c.do(ctx, op, req)
		if err := src.readErr(); err != nil {
			// Our side failed to read the file: not Dify's failure, and not worth a retry.
			return fmt.Errorf("dify: %s: read file: %w", op, err)
		}
		if err != nil {
			return err
		}
		return decodeJSON(op, resp, &f)
	})
	if err != nil {
		return nil, err
	}
	if f.ID == "" {
		return nil, &BadResponseError{Op: op, Status: http.StatusCreated, Reason: "upload answer has no file id"}
	}
	return &f, nil
}

// multipartFrame builds everything of the multipart body except the file's bytes.
func multipartFrame(u Upload) (prefix, suffix []byte, contentType string, err error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if u.User != "" {
		if err := mw.WriteField("user", u.User); err != nil {
			return nil, nil, "", err
		}
	}
	mimeType := u.MIMEType
	if mimeType == "" {
		mimeType = "application/octet-stream"
	}
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, safeName(u.Name)))
	h.Set("Content-Type", mimeType)
	if _, err := mw.CreatePart(h); err != nil {
		return nil, nil, "", err
	}
	n := buf.Len()
	if err := mw.Close(); err != nil {
		return nil, nil, "", err
	}
	all := buf.Bytes()
	return all[:n:n], all[n:], mw.FormDataContentType(), nil
}

// safeName keeps a file name Dify accepts: no path separators, no quotes, never empty.
func safeName(name string) string {
	name = path.Base(strings.ReplaceAll(name, `\`, "/"))
	name = strings.Map(func(r rune) rune {
		if r == '"' || r < 0x20 {
			return '_'
		}
		return r
	}, name)
	if name == "" || name == "." || name == "/" {
		name = "file"
	}
	return name
}

// uploadBody is one attempt's request body. It remembers a read error of the file, so that is not mistaken for a
// network error, and reports when the transport has closed it, so a retry never shares the file with a write
// still in flight.
type uploadBody struct {
	mu     sync.Mutex
	r      io.Reader
	err    error
	done   bool
	closed chan struct{}
}

func (b *uploadBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return 0, io.ErrClosedPipe
	}
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

func (b *uploadBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.done {
		b.done = true
		close(b.closed)
	}
	return nil
}

func (b *uploadBody) readErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}
