package redirect_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/difybot/difybot/internal/redirect"
)

// recorder is a server that notes the credentials each request brought.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	auth []string
}

func record(t *testing.T, tls bool, h http.HandlerFunc) *recorder {
	t.Helper()
	r := &recorder{}
	handler := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.auth = append(r.auth, req.Header.Get("Authorization")+"|"+req.Header.Get("Cookie"))
		r.mu.Unlock()
		if h != nil {
			h(w, req)
		}
	})
	if tls {
		r.Server = httptest.NewTLSServer(handler)
	} else {
		r.Server = httptest.NewServer(handler)
	}
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.auth...)
}

func to(url string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/start" {
			http.Redirect(w, r, url, http.StatusFound)
		}
	}
}

func get(t *testing.T, c *http.Client, url string) error {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer secret-token")
	req.Header.Set("Cookie", "session=secret")
	res, err := c.Do(req)
	if err == nil {
		res.Body.Close()
	}
	return err
}

const withToken = "Bearer secret-token|session=secret"

// TestCredentialsStayOnTheirOrigin is issue 13's defect 4: Go keeps Authorization on a redirect to another port
// of the same host; a guarded client keeps it only on the first request's scheme, host and port.
func TestCredentialsStayOnTheirOrigin(t *testing.T) {
	t.Parallel()
	t.Run("another port", func(t *testing.T) {
		other := record(t, false, nil)
		origin := record(t, false, to(other.URL+"/file"))
		if err := get(t, redirect.Guard(nil), origin.URL+"/start"); err != nil {
			t.Fatal(err)
		}
		if got := other.seen(); len(got) != 1 || got[0] != "|" {
			t.Fatalf("the other port got %q, want no credentials", got)
		}
		// Go's own policy, for the record: this is what the guard is for.
		if err := get(t, &http.Client{}, origin.URL+"/start"); err != nil {
			t.Fatal(err)
		}
		if got := other.seen(); got[1] != withToken {
			t.Logf("Go's default policy no longer keeps credentials across ports (got %q)", got[1])
		}
	})
	t.Run("same origin", func(t *testing.T) {
		var origin *recorder
		origin = record(t, false, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/start" {
				http.Redirect(w, r, "/file", http.StatusFound)
			}
		})
		if err := get(t, redirect.Guard(nil), origin.URL+"/start"); err != nil {
			t.Fatal(err)
		}
		if got := origin.seen(); len(got) != 2 || got[1] != withToken {
			t.Fatalf("the origin got %q, want the credentials on both requests", got)
		}
	})
	t.Run("away and back", func(t *testing.T) {
		var origin *recorder
		away := record(t, false, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, origin.URL+"/file", http.StatusFound)
		})
		origin = record(t, false, to(away.URL+"/bounce"))
		if err := get(t, redirect.Guard(nil), origin.URL+"/start"); err != nil {
			t.Fatal(err)
		}
		if got := origin.seen(); len(got) != 2 || got[1] != "|" {
			t.Fatalf("the origin got %q back from another server, want no credentials after the chain left it", got)
		}
	})
	t.Run("https to http", func(t *testing.T) {
		plain := record(t, false, nil)
		origin := record(t, true, to(plain.URL+"/file"))
		err := get(t, redirect.Guard(origin.Client()), origin.URL+"/start")
		if !errors.Is(err, redirect.ErrDowngrade) {
			t.Fatalf("err = %v, want the downgrade refused", err)
		}
		if got := plain.seen(); len(got) != 0 {
			t.Fatalf("the http server got %q, want no request at all", got)
		}
	})
	t.Run("the client's own policy still runs", func(t *testing.T) {
		other := record(t, false, nil)
		origin := record(t, false, to(other.URL+"/file"))
		refuse := errors.New("no redirects")
		c := redirect.Guard(&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return refuse }})
		if err := get(t, c, origin.URL+"/start"); !errors.Is(err, refuse) {
			t.Fatalf("err = %v, want the client's own refusal", err)
		}
	})
}

func TestSameOrigin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s1, h1, s2, h2 string
		want           bool
	}{
		{"https", "files.slack.com", "https", "files.slack.com:443", true},
		{"https", "Files.Slack.com", "HTTPS", "files.slack.com", true},
		{"http", "127.0.0.1:80", "http", "127.0.0.1", true},
		{"https", "files.slack.com", "http", "files.slack.com:8080", false},
		{"https", "files.slack.com", "https", "files.slack.com:8443", false},
		{"https", "files.slack.com", "http", "files.slack.com", false},
		{"https", "files.slack.com", "https", "slack.com", false},
		{"http", "[::1]:8080", "http", "[::1]:8081", false},
		{"http", "[::1]", "http", "[::1]:80", true},
	}
	for _, tt := range tests {
		if got := redirect.SameOrigin(tt.s1, tt.h1, tt.s2, tt.h2); got != tt.want {
			t.Errorf("SameOrigin(%s://%s, %s://%s) = %v, want %v", tt.s1, tt.h1, tt.s2, tt.h2, got, tt.want)
		}
	}
}
