package dify

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

const testKey = "app-test"

// newTestClient returns a client with fast retries and polling, logging to the test.
func newTestClient(t testing.TB, base string) *Client {
	t.Helper()
	c, err := New(Config{
		BaseURL:   base,
		APIKey:    testKey,
		Logger:    zerolog.New(zerolog.NewTestWriter(t)),
		Retry:     RetryPolicy{MaxAttempts: 3, Base: time.Millisecond, Max: 5 * time.Millisecond},
		PollEvery: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestKeyStaysOnDifysOrigin: a redirect to another port (or scheme) of the same host must not carry the key,
// as Go's default policy would (it compares host names only).
func TestKeyStaysOnDifysOrigin(t *testing.T) {
	var leaked atomic.Value
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.Store(r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"name":"x","description":"","tags":[],"mode":"workflow"}`))
	}))
	defer other.Close()
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+testKey {
			t.Errorf("the first hop did not get the key")
		}
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusFound)
	}))
	defer front.Close()
	c := newTestClient(t, front.URL+"/v1")
	if _, err := c.Info(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, _ := leaked.Load().(string); got != "" {
		t.Errorf("the other port got Authorization %q", got)
	}
}
