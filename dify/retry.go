package dify

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"time"
)

// RetryPolicy bounds retries of calls that are safe to repeat. Zero values take the defaults.
type RetryPolicy struct {
	MaxAttempts int           // Attempts in all, including the first; default 4.
	Base        time.Duration // First backoff ceiling; default 500ms, doubled per attempt.
	Max         time.Duration // Longest single wait, also the cap on Retry-After; default 30s.
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 4
	}
	if p.Base <= 0 {
		p.Base = 500 * time.Millisecond
	}
	if p.Max <= 0 {
		p.Max = 30 * time.Second
	}
	return p
}

// wait is how long to wait before attempt n+1 (n counts from 1): full jitter over an exponential ceiling,
// but never less than the server's Retry-After.
func (p RetryPolicy) wait(n int, err error) time.Duration {
	ceil := p.Base << (n - 1)
	if ceil > p.Max || ceil <= 0 {
		ceil = p.Max
	}
	d := rand.N(ceil + 1)
	var ae *APIError
	if errors.As(err, &ae) && ae.RetryAfter > d {
		d = min(ae.RetryAfter, p.Max)
	}
	return d
}

// retry calls fn until it succeeds, fails in a way retryable does not accept, or attempts run out.
func (p RetryPolicy) retry(ctx context.Context, retryable func(error) bool, fn func() error) error {
	for n := 1; ; n++ {
		err := fn()
		if err == nil || n >= p.MaxAttempts || !retryable(err) {
			return err
		}
		t := time.NewTimer(p.wait(n, err))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// canRepeat reports whether an upload or read is worth repeating: network errors, 5xx and rate limits.
// Breaker refusals are final: the breaker already decided.
func canRepeat(err error) bool {
	var ne *NetError
	if errors.As(err, &ne) {
		return true
	}
	if errors.Is(err, ErrBreakerOpen) || errors.Is(err, ErrMaintenance) || callerGaveUp(err) {
		return false
	}
	var ae *APIError
	if errors.As(err, &ae) {
		if isPlanLimit(ae) {
			return false
		}
		return ae.Status >= 500 || ae.Status == http.StatusTooManyRequests || isRateLimit(ae)
	}
	return false
}

// NotStarted reports whether a failed RunWorkflow or SendChatMessage certainly started nothing in Dify, so that
// the caller may send it again, changed or not: the breaker refused it, the connection never carried it, a
// gateway answered with its own 502/503 page, or Dify refused it before running anything (rate or plan limits,
// a conversation that is gone, an agent app refusing blocking mode). False means it may have started: a 504 may
// hide a running workflow, and most of Dify's 400s come from a run that started and failed.
func NotStarted(err error) bool {
	if notStarted(err) || errors.Is(err, ErrBreakerOpen) || errors.Is(err, ErrMaintenance) {
		return true
	}
	var ae *APIError
	return errors.As(err, &ae) && !ae.InStream &&
		(errors.Is(ae, ErrConversationGone) || errors.Is(ae, ErrPlanLimit) || refusesBlocking(ae))
}

// notStarted reports whether a failed run request certainly did not start a workflow and is worth sending again
// unchanged, the only case in which the client resends it: the connection never carried the request, Dify
// refused it for rate, or a gateway answered with its own 502/503 page (Dify's JSON would mean Dify saw it).
// A 504 may hide a running workflow. The plan quota and a gone conversation did not start either, but the same
// request would meet the same answer.
func notStarted(err error) bool {
	if errors.Is(err, ErrBreakerOpen) || errors.Is(err, ErrMaintenance) {
		return false
	}
	var ne *NetError
	if errors.As(err, &ne) {
		return !ne.Sent
	}
	var ae *APIError
	if !errors.As(err, &ae) || ae.InStream {
		return false
	}
	if isPlanLimit(ae) {
		return false
	}
	if ae.Status == http.StatusTooManyRequests || isRateLimit(ae) {
		return true
	}
	return (ae.Status == http.StatusBadGateway || ae.Status == http.StatusServiceUnavailable) && !ae.IsDify()
}
