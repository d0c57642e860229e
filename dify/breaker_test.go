package dify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"
)

func TestBreakerTripsOnOutagesOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		b := NewBreaker(BreakerConfig{MinRequests: 4, FailureRatio: 0.5, OpenFor: 30 * time.Second}, zerolog.New(&logs))
		ctx := context.Background()
		call := func(err error) error { return b.do(ctx, func() error { return err }) }

		// Dify answering that the request is wrong proves Dify is up: never trips.
		for range 20 {
			call(&APIError{Status: 401, Code: "unauthorized"})
			call(&APIError{Status: 400, Code: "invalid_param", Message: "Workflow not published"})
			call(&RunError{Status: "failed", Message: "PluginDaemonInnerError"})
		}
		// The caller giving up is excluded.
		for range 20 {
			call(fmt.Errorf("dify: op: %w", context.Canceled))
			call(fmt.Errorf("dify: op: %w", context.DeadlineExceeded))
		}
		if s := b.Status(); s.State != "closed" {
			t.Fatalf("after config errors and cancellations: state %q, want closed", s.State)
		}

		b = NewBreaker(BreakerConfig{MinRequests: 4, FailureRatio: 0.5, OpenFor: 30 * time.Second}, zerolog.New(&logs))
		outages := []error{
			&NetError{Op: "x", Cause: CauseRefused},
			&APIError{Status: 502, Title: "502 Bad Gateway"},
			&APIError{Status: 429, Code: "too_many_requests"},
			&BadResponseError{Op: "x", Reason: "empty"},
		}
		for _, e := range outages {
			if err := call(e); !errors.Is(err, e) {
				t.Fatalf("closed breaker changed the error: %v", err)
			}
		}
		called := false
		err := b.do(ctx, func() error { called = true; return nil })
		if !errors.Is(err, ErrBreakerOpen) || called {
			t.Fatalf("tripped breaker: err = %v, called = %v; want ErrBreakerOpen without a call", err, called)
		}
		if err := b.Ready(); !errors.Is(err, ErrBreakerOpen) {
			t.Errorf("Ready() = %v, want ErrBreakerOpen", err)
		}

		time.Sleep(29 * time.Second)
		if s := b.Status(); s.State != "open" {
			t.Errorf("29s later: state %q, want open", s.State)
		}
		time.Sleep(2 * time.Second)
		if s := b.Status(); s.State != "half-open" {
			t.Errorf("31s later: state %q, want half-open", s.State)
		}
		if err := call(nil); err != nil {
			t.Fatalf("trial request: %v", err)
		}
		if s := b.Status(); s.State != "closed" {
			t.Errorf("after a good trial: state %q, want closed", s.State)
		}
		for _, want := range []string{`"from":"closed","to":"open"`, `"from":"open","to":"half-open"`, `"from":"half-open","to":"closed"`} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("state change %s not logged; logs:\n%s", want, logs.String())
			}
		}
	})
}

func TestBreakerOverride(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		b := NewBreaker(BreakerConfig{MinRequests: 1, OpenFor: time.Minute}, zerolog.New(&logs))
		ctx := context.Background()
		calls := 0
		ok := func() error { calls++; return nil }

		b.SetMode(ModeOpen, "upgrading Dify")
		if err := b.do(ctx, ok); !errors.Is(err, ErrMaintenance) || calls != 0 {
			t.Fatalf("forced open: err = %v, calls = %d; want ErrMaintenance and no call", err, calls)
		}
		if err := b.Ready(); !errors.Is(err, ErrMaintenance) {
			t.Errorf("Ready() = %v, want ErrMaintenance", err)
		}
		if s := b.Status(); s.State != "forced-open" || s.Mode != ModeOpen {
			t.Errorf("status = %+v", s)
		}
		if !strings.Contains(logs.String(), `"reason":"upgrading Dify"`) {
			t.Errorf("mode change not logged with its reason: %s", logs.String())
		}

		// Trip the automatic breaker, then force it closed: calls go through and are not counted.
		b.SetMode(ModeAuto, "done")
		b.do(ctx, func() error { return &APIError{Status: 503} })
		if err := b.do(ctx, ok); !errors.Is(err, ErrBreakerOpen) {
			t.Fatalf("auto after an outage: %v, want ErrBreakerOpen", err)
		}
		b.SetMode(ModeClosed, "Dify is fine, the breaker is wrong")
		for range 5 {
			if err := b.do(ctx, func() error { return &APIError{Status: 503} }); errors.Is(err, ErrBreakerOpen) {
				t.Fatal("forced closed still refused the call")
			}
		}
		if err := b.do(ctx, ok); err != nil || calls != 1 {
			t.Fatalf("forced closed: err = %v, calls = %d", err, calls)
		}
		if s := b.Status(); s.State != "forced-closed" || s.Auto != "open" {
			t.Errorf("status = %+v, want forced-closed over an open automatic breaker", s)
		}
	})
}

func TestParseMode(t *testing.T) {
	for _, s := range []string{"auto", "open", "closed"} {
		if m, err := ParseMode(s); err != nil || string(m) != s {
			t.Errorf("ParseMode(%q) = %q, %v", s, m, err)
		}
	}
	if _, err := ParseMode("off"); err == nil {
		t.Error("ParseMode(off) succeeded")
	}
}
