package dify

import (
	"context"
	"errors"
	"testing"

	"github.com/rs/zerolog"
)

// Apps on one Dify host share its breaker: an outage there holds all of them and none on another host.
func TestHostSharesBreakerAndLimit(t *testing.T) {
	hostA := NewHost("https://a.example", BreakerConfig{MinRequests: 2, FailureRatio: 0.5}, LimitConfig{Max: 4}, zerolog.Nop())
	hostB := NewHost("https://b.example", BreakerConfig{MinRequests: 2, FailureRatio: 0.5}, LimitConfig{Max: 4}, zerolog.Nop())
	client := func(base string, h *Host) *Client {
		c, err := New(Config{BaseURL: base, APIKey: "app-x", Host: h})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	receipts, damage := client("https://a.example/v1", hostA), client("https://a.example/v1", hostA)
	photos := client("https://b.example/v1", hostB)
	if receipts.Breaker() != damage.Breaker() || receipts.limiter != damage.limiter {
		t.Fatal("two apps on one host do not share the breaker and the limit")
	}
	for range 2 {
		receipts.breaker.do(context.Background(), func() error { return &NetError{Op: "x", Cause: CauseRefused} })
	}
	if err := damage.Ready(); !errors.Is(err, ErrBreakerOpen) {
		t.Errorf("other app on the tripped host: Ready() = %v, want ErrBreakerOpen", err)
	}
	if err := photos.Ready(); err != nil {
		t.Errorf("app on another host: Ready() = %v, want nil", err)
	}
}

func TestHostOf(t *testing.T) {
	for in, want := range map[string]string{
		"https://dify.example.com/v1":       "https://dify.example.com",
		"http://127.0.0.1:5001/v1":          "http://127.0.0.1:5001",
		"https://dify.example.com:8443/v1/": "https://dify.example.com:8443",
	} {
		if got := HostOf(in); got != want {
			t.Errorf("HostOf(%q) = %q, want %q", in, got, want)
		}
	}
}
