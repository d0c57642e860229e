package dify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// patternFile is a seekable file of n bytes that costs no memory, so benchmarks see only the client's allocations.
type patternFile struct {
	n, off int64
}

func (p *patternFile) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	if rem := p.n - p.off; int64(len(b)) > rem {
		b = b[:rem]
	}
	for i := range b {
		b[i] = byte(p.off + int64(i))
	}
	p.off += int64(len(b))
	return len(b), nil
}

func (p *patternFile) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
		p.off = off
	case io.SeekCurrent:
		p.off += off
	case io.SeekEnd:
		p.off = p.n + off
	}
	return p.off, nil
}

const uploadOK = `{"id":"72fa9618-8f89-4a37-9b33-7e1178a24a67","name":"photo.png","size":1024,"extension":"png","mime_type":"image/png","created_by":"6ad1ab0a","created_at":1705407629}`

func TestUploadFile(t *testing.T) {
	var attempts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/files/upload" || r.Header.Get("Authorization") != "Bearer "+testKey {
			t.Errorf("request %s %s auth %q", r.Method, r.URL.Path, r.Header.Get("Authorization"))
		}
		if attempts.Add(1) == 1 {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, "<html><head><title>502 Bad Gateway</title></head></html>")
			return
		}
		mr, err := r.MultipartReader()
		if err != nil {
			t.Fatal(err)
		}
		var user, name, ctype string
		var size int64
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			switch p.FormName() {
			case "user":
				b, _ := io.ReadAll(p)
				user = string(b)
			case "file":
				name, ctype = p.FileName(), p.Header.Get("Content-Type")
				size, _ = io.Copy(io.Discard, p)
			}
		}
		if r.ContentLength <= 0 {
			t.Errorf("seekable upload sent without Content-Length")
		}
		if user != "slack-U1" || name != "a_b.png" || ctype != "image/png" || size != 3<<20 {
			t.Errorf("got user %q name %q type %q size %d", user, name, ctype, size)
		}
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, uploadOK)
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL+"/v1")
	f, err := c.UploadFile(context.Background(), Upload{User: "slack-U1", Name: `dir\a"b.png`, MIMEType: "image/png", Body: &patternFile{n: 3 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	if f.ID != "72fa9618-8f89-4a37-9b33-7e1178a24a67" || attempts.Load() != 2 {
		t.Errorf("file %+v after %d attempts; want the id after 2", f, attempts.Load())
	}
}

func TestUploadFileNotSeekableIsSentOnce(t *testing.T) {
	var attempts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attempts.Add(1)
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL+"/v1")
	_, err := c.UploadFile(context.Background(), Upload{Name: "a.png", Body: io.LimitReader(strings.NewReader(strings.Repeat("x", 100)), 100)})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 503 || attempts.Load() != 1 {
		t.Errorf("err = %v after %d attempts; want HTTP 503 after 1", err, attempts.Load())
	}
}

func TestUploadFileSourceFailureIsNotDifys(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, uploadOK)
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL+"/v1")
	boom := errors.New("slack download broke")
	_, err := c.UploadFile(context.Background(), Upload{Name: "a.png", Body: io.MultiReader(strings.NewReader("abc"), errReader{boom})})
	if !errors.Is(err, boom) || IsOutage(err) {
		t.Errorf("err = %v (outage %v); want the source's error, not an outage", err, IsOutage(err))
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestMultipartFrameParses(t *testing.T) {
	prefix, suffix, ctype, err := multipartFrame(Upload{User: "u", Name: "x.jpg", MIMEType: "image/jpeg"})
	if err != nil {
		t.Fatal(err)
	}
	body := string(prefix) + "JPEGDATA" + string(suffix)
	_, params, _ := strings.Cut(ctype, "boundary=")
	mr := multipart.NewReader(strings.NewReader(body), params)
	var parts []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		parts = append(parts, fmt.Sprintf("%s=%s", p.FormName(), b))
	}
	if strings.Join(parts, ",") != "user=u,file=JPEGDATA" {
		t.Errorf("parts = %v", parts)
	}
}

// BenchmarkUpload shows that the client's memory per upload does not grow with the image.
func BenchmarkUpload(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, uploadOK)
	}))
	defer srv.Close()
	c := newTestClient(b, srv.URL+"/v1")
	for _, mb := range []int64{1, 10, 50} {
		b.Run(fmt.Sprintf("%dMB", mb), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(mb << 20)
			for b.Loop() {
				if _, err := c.UploadFile(context.Background(), Upload{User: "u", Name: "a.png", MIMEType: "image/png", Body: &patternFile{n: mb << 20}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
