package line

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/bottest"
)

// TestContentTokenStaysOnItsOrigin: the content API redirects a download to another port of its host, or from
// https to http. Go's own policy keeps Authorization for the same host name; the adapter's client sends the
// channel token to no other origin, and refuses the downgrade.
func TestContentTokenStaysOnItsOrigin(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\n fake image bytes")
	for _, tls := range []bool{false, true} {
		name := "another port"
		if tls {
			name = "https to http"
		}
		t.Run(name, func(t *testing.T) {
			var mu sync.Mutex
			var got []string
			other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				got = append(got, r.Header.Get("Authorization"))
				mu.Unlock()
				w.Header().Set("Content-Type", "image/png")
				w.Write(png)
			}))
			defer other.Close()
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, other.URL+r.URL.Path, http.StatusFound)
			})
			origin := httptest.NewServer(h)
			if tls {
				origin.Close()
				origin = httptest.NewTLSServer(h)
			}
			defer origin.Close()
			a, err := New(Config{Inbox: &bottest.Inbox{}, ChannelSecret: testSecret, ChannelToken: testToken,
				APIURL: origin.URL, DataAPIURL: origin.URL, HTTPClient: origin.Client(), Logger: zerolog.Nop()})
			if err != nil {
				t.Fatal(err)
			}
			rc, err := a.OpenFile(t.Context(), chat(sourceUser, 0), bot.File{ID: "354718705033693859"})
			if rc != nil {
				defer rc.Close()
			}
			mu.Lock()
			defer mu.Unlock()
			if tls {
				if err == nil || !strings.Contains(err.Error(), "from https to http") || len(got) != 0 {
					t.Fatalf("err %v, requests to the http server %q; want the redirect refused", err, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("OpenFile: %v", err)
			}
			if string(readAll(t, rc)) != string(png) || len(got) != 1 || got[0] != "" {
				t.Fatalf("the other port got Authorization %q, want none", got)
			}
		})
	}
}
