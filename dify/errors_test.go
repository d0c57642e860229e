package dify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readFixture reads one of the simulator's real proxy pages, so the client is tested on the same bytes.
func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("difytest", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestResponseError(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		ctype, body string
		header      http.Header
		want        APIError
		outage      bool
	}{
		{name: "1.x envelope", status: 401, ctype: "application/json",
			body: `{"code":"unauthorized","message":"Access token is invalid","status":401}`,
			want: APIError{Code: "unauthorized", Message: "Access token is invalid"}},
		{name: "0.6 envelope without status", status: 500, ctype: "application/json",
			body: `{"message":"Internal Server Error","code":"unknown"}`,
			want: APIError{Code: "unknown", Message: "Internal Server Error"}, outage: true},
		{name: "reqparse dict message", status: 400, ctype: "application/json",
			body: `{"code":"invalid_param","message":{"user":"Arg user must be provided."},"params":"user"}`,
			want: APIError{Code: "invalid_param", Message: "Arg user must be provided."}},
		{name: "nginx 502", status: 502, ctype: "text/html", body: string(readFixture(t, "nginx_502.html")),
			want: APIError{Title: "502 Bad Gateway"}, outage: true},
		{name: "nginx 413", status: 413, ctype: "text/html",
			body: "<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body></body></html>",
			want: APIError{Title: "413 Request Entity Too Large"}},
		{name: "cloudflare 524", status: 524, ctype: "text/html; charset=UTF-8", body: string(readFixture(t, "cloudflare_524.html")),
			want: APIError{Title: "api.dify.ai | 524: A timeout occurred"}, outage: true},
		{name: "cloudflare 1015", status: 429, ctype: "text/plain", body: "error code: 1015",
			header: http.Header{"Retry-After": {"7"}},
			want:   APIError{Body: "error code: 1015", RetryAfter: 7 * time.Second}, outage: true},
		{name: "concurrency cap at 400", status: 400, ctype: "application/json",
			body: `{"code":"invalid_param","message":"Too many requests. Please try again later. The current maximum concurrent requests allowed for app-1 is 2.","status":400}`,
			want: APIError{Code: "invalid_param", Message: "Too many requests. Please try again later. The current maximum concurrent requests allowed for app-1 is 2."}}, // Capacity, not an outage: the Limiter backs off.
		{name: "plan quota is not an outage", status: 429, ctype: "application/json",
			body: `{"code":"rate_limit_error","message":"Workflow execution quota limit reached for tenant 8f0a3c52","status":429}`,
			want: APIError{Code: "rate_limit_error", Message: "Workflow execution quota limit reached for tenant 8f0a3c52"}},
		{name: "conversation gone is not an outage", status: 404, ctype: "application/json",
			body: `{"code":"not_found","message":"Conversation Not Exists.","status":404}`,
			want: APIError{Code: "not_found", Message: "Conversation Not Exists."}},
		{name: "empty 503 from caddy", status: 503, want: APIError{}, outage: true},
		{name: "html 404 from the web app", status: 404, ctype: "text/html",
			body: "<!DOCTYPE html><html><head><title>404: This page could not be found.</title></head></html>",
			want: APIError{Title: "404: This page could not be found."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header()[k] = v
				}
				if tt.ctype != "" {
					w.Header().Set("Content-Type", tt.ctype)
				}
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			}))
			defer srv.Close()
			c := newTestClient(t, srv.URL+"/v1")
			_, err := c.Info(context.Background())
			var got *APIError
			if !errors.As(err, &got) {
				t.Fatalf("Info error = %v, want *APIError", err)
			}
			if got.Status != tt.status || got.Code != tt.want.Code || got.Message != tt.want.Message ||
				got.Title != tt.want.Title || got.Body != tt.want.Body || got.RetryAfter != tt.want.RetryAfter {
				t.Errorf("got %+v\nwant %+v", *got, tt.want)
			}
			if got.Op != "get app info" || got.Path != "/v1/info" || got.Method != "GET" {
				t.Errorf("op/method/path = %q %q %q", got.Op, got.Method, got.Path)
			}
			if o := IsOutage(err); o != tt.outage {
				t.Errorf("IsOutage = %v, want %v", o, tt.outage)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("error string leaks the API key: %v", err)
			}
		})
	}
}

func TestNetErrorCauses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String() + "/v1"
	ln.Close()

	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	defer tlsSrv.Close()

	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hj, _ := w.(http.Hijacker)
		conn, _, _ := hj.Hijack()
		conn.Close() // The connection drops after the request was sent.
	}))
	defer hang.Close()

	tests := []struct {
		name  string
		url   string
		cause NetCause
		sent  bool
	}{
		{"refused", refused, CauseRefused, false},
		{"tls", tlsSrv.URL + "/v1", CauseTLS, false},
		{"dropped", hang.URL + "/v1", CauseReset, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, tt.url)
			_, err := c.Info(context.Background())
			var ne *NetError
			if !errors.As(err, &ne) {
				t.Fatalf("err = %v, want *NetError", err)
			}
			if ne.Cause != tt.cause || ne.Sent != tt.sent {
				t.Errorf("cause, sent = %q, %v; want %q, %v (%v)", ne.Cause, ne.Sent, tt.cause, tt.sent, err)
			}
			if !IsOutage(err) {
				t.Errorf("IsOutage(%v) = false", err)
			}
		})
	}

	dnsErr := netError(context.Background(), "op", &net.DNSError{Err: "no such host", Name: "dify.invalid", IsNotFound: true})
	var ne *NetError
	if !errors.As(dnsErr, &ne) || ne.Cause != CauseDNS || ne.Sent {
		t.Errorf("DNS error classified as %+v", dnsErr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := netError(ctx, "op", errors.New("x")); !errors.Is(err, context.Canceled) || IsOutage(err) {
		t.Errorf("canceled ctx: err = %v, outage = %v; want context.Canceled, no outage", err, IsOutage(err))
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	tests := map[string]time.Duration{
		"":                              0,
		"3":                             3 * time.Second,
		"-1":                            0,
		"soon":                          0,
		"Sun, 22 Nov 2026 00:00:10 GMT": 10 * time.Second,
		"Sat, 21 Nov 2026 00:00:10 GMT": 0,
	}
	for in, want := range tests {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func FuzzErrorBody(f *testing.F) {
	f.Add(500, []byte(`{"code":"unknown","message":"Internal Server Error"}`))
	f.Add(502, []byte("<html><head><title>502 Bad Gateway</title></head></html>"))
	f.Add(400, []byte(`{"code":"invalid_param","message":{"a":1}}`))
	f.Add(429, []byte("error code: 1015"))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		e := &APIError{Op: "fuzz", Status: status}
		fillErrorBody(e, body)
		if len(e.Body) > 210*4 {
			t.Fatalf("excerpt too long: %d bytes", len(e.Body))
		}
		_ = e.Error()
		_ = IsOutage(e)
		_ = notStarted(e)
		_ = canRepeat(e)
	})
}
