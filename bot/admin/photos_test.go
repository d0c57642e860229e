package admin

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"io"
	"net/http"
	"testing"

	"github.com/difybot/difybot/bot"
)

func TestAdminFiles(t *testing.T) {
	var photo bytes.Buffer
	png.Encode(&photo, image.NewGray(image.Rect(0, 0, 4, 3)))
	var serve []byte
	var fail error
	open := func(_ context.Context, r bot.Run, f bot.File) (io.ReadCloser, error) {
		if f.ID != "F1" || r.Platform != "line" {
			t.Errorf("OpenFile(%s, %s)", r.Platform, f.ID)
		}
		return io.NopCloser(bytes.NewReader(serve)), fail
	}
	e := newAdminEnv(t, nil, func(c *Config) { c.OpenFile = open })
	run := e.seed(t, []seedRun{{"line", bot.RunSucceeded, ""}})[0]

	for _, tt := range []struct {
		name   string
		path   string
		body   []byte
		err    error
		status int
		ct     string
	}{
		{"a photo", "/files/0", photo.Bytes(), nil, 200, "image/png"},
		{"gone", "/files/0", nil, errors.New("404 from LINE"), 404, "application/json; charset=utf-8"},
		{"not a photo", "/files/0", []byte("<svg onload=alert(1)>"), nil, 415, "application/json; charset=utf-8"},
		{"no such file", "/files/1", nil, nil, 404, "application/json; charset=utf-8"},
	} {
		serve, fail = tt.body, tt.err
		rec := e.do(t, "GET", "/admin/runs/"+run.ID+tt.path, "Bearer "+adminTestToken, "")
		if rec.Code != tt.status || rec.Header().Get("Content-Type") != tt.ct {
			t.Errorf("%s: %d %s %q", tt.name, rec.Code, rec.Header().Get("Content-Type"), rec.Body.String()[:min(rec.Body.Len(), 80)])
		}
		if tt.status == 200 && !bytes.Equal(rec.Body.Bytes(), photo.Bytes()) {
			t.Errorf("%s: the photo changed on the way", tt.name)
		}
	}
	if rec := e.do(t, "GET", "/admin/runs/"+run.ID+"/files/0", "", ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("without the token: %d", rec.Code)
	}
}
