package dify

import (
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
