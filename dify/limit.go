package dify

import (
	"context"
	"errors"
	"sync"
)

// Limiter caps the runs a Client has in flight against its Dify, and finds the cap by itself (AIMD), because
// Dify's own (APP_MAX_ACTIVE_REQUESTS, or a plan's) is not published and a fixed number is wrong both ways:
// too low wastes Dify, too high turns runs into 429 too_many_requests. The limit starts at Start and doubles
// every round of runs until Dify first says it is full; from then on it grows by one per round of runs that
// reached it, and shrinks by a tenth at a 429 — once per round: only a try let in after the last cut can cut
// again (the cut was not enough), not the others of the burst it answered. It stays within [1, Max].
type Limiter struct {
	max int

	mu       sync.Mutex
	limit    float64
	inFlight int
	probing  bool          // Slow start: no 429 seen yet.
	issued   uint64        // Tickets handed out, one per try let in.
	cutAt    uint64        // The last ticket issued when the limit was last cut.
	changed  chan struct{} // Closed and replaced when a slot may have come free.
}

// LimitConfig configures a Limiter; zero values take the defaults.
type LimitConfig struct {
	Start int // The first limit; default 8 (or Max, when lower).
	Max   int // The ceiling: WORKERS; default 64.
}

// limitCut is the share of the limit kept when Dify says it is full.
const limitCut = 0.9

// NewLimiter returns a Limiter for cfg.
func NewLimiter(cfg LimitConfig) *Limiter {
	if cfg.Max <= 0 {
		cfg.Max = 64
	}
	if cfg.Start <= 0 {
		cfg.Start = 8
	}
	return &Limiter{max: cfg.Max, limit: float64(min(cfg.Start, cfg.Max)), probing: true, changed: make(chan struct{})}
}

// LimitStatus is the limiter's state, for metrics and the admin page.
type LimitStatus struct {
	Limit    int `json:"limit"`
	InFlight int `json:"in_flight"`
	Max      int `json:"max"`
}

// Status returns the current limit and runs in flight.
func (l *Limiter) Status() LimitStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	return LimitStatus{Limit: int(l.limit), InFlight: l.inFlight, Max: l.max}
}

// acquire waits for a slot until ctx ends, and returns the try's ticket for release.
func (l *Limiter) acquire(ctx context.Context) (uint64, error) {
	for {
		l.mu.Lock()
		if l.inFlight < int(l.limit) {
			l.inFlight++
			l.issued++
			t := l.issued
			l.mu.Unlock()
			return t, nil
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-ch:
		}
	}
}

// release frees the slot of ticket t and learns from how the try ended: full is Dify's concurrency cap
// refusing it.
func (l *Limiter) release(t uint64, full bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	atLimit := l.inFlight >= int(l.limit)
	l.inFlight--
	switch {
	case full && t > l.cutAt:
		// What Dify took is at most what was in flight; aim a little below it.
		l.limit = max(1, min(l.limit, float64(l.inFlight+1))*limitCut)
		l.probing, l.cutAt = false, l.issued
	case full:
	case atLimit && l.probing:
		l.limit = min(float64(l.max), l.limit+1) // One more per finished run: doubles each round.
	case atLimit:
		l.limit = min(float64(l.max), l.limit+1/l.limit) // One more per round.
	}
	close(l.changed)
	l.changed = make(chan struct{})
}

// ConcurrencyLimited reports whether err is Dify saying it runs as many requests as it allows (too_many_requests,
// or its text): the run did not start, and the same run later will. The plan quota is not. Callers keep such a
// run queued rather than failing it.
func ConcurrencyLimited(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && isRateLimit(ae)
}
