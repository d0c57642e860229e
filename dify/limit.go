package dify

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Limiter caps the runs a Client has in flight against its Dify, and finds the cap by itself (AIMD), because
// Dify's own (APP_MAX_ACTIVE_REQUESTS, or a plan's) is not published and a fixed number is wrong both ways:
// too low wastes Dify, too high turns runs into 429 too_many_requests. The limit starts at Start and doubles
// every round of runs until Dify first says it is full; from then on it grows by one per round of runs that
// reached it, and shrinks by a tenth at a 429 — once per round: only a try let in after the last cut can cut
// again (the cut was not enough), not the others of the burst it answered. It stays within [1, Max].
//
// Latency is the second signal: a Dify that queues runs starts them later before it refuses. When the recent
// streamed runs took twice as long to start (their first event), and a second more, than the fastest seen,
// a round at the limit cuts it by a tenth too, but never below Start. The time to start, not the run's length,
// because workflows vary in length with their input.
type Limiter struct {
	max, floor int

	mu       sync.Mutex
	limit    float64
	inFlight int
	probing  bool          // Slow start: no 429 seen yet.
	issued   uint64        // Tickets handed out, one per try let in.
	cutAt    uint64        // The last ticket issued when the limit was last cut.
	changed  chan struct{} // Closed and replaced when a slot may have come free.
	base     float64       // Seconds a run takes to start when Dify is not queueing: the fastest seen.
	recent   float64       // Seconds the last runs took to start, smoothed.
}

// LimitConfig configures a Limiter; zero values take the defaults.
type LimitConfig struct {
	Start int // The first limit; default 8 (or Max, when lower).
	Max   int // The ceiling: WORKERS; default 64.
}

const (
	// limitCut is the share of the limit kept when Dify says it is full, or slows down.
	limitCut = 0.9
	// slowdown is how much longer than base the recent runs take to start, and slowBy by how many seconds at
	// least, before the limiter reads it as Dify queueing: jitter of a few milliseconds is not.
	slowdown = 2
	slowBy   = 1.0
)

// NewLimiter returns a Limiter for cfg.
func NewLimiter(cfg LimitConfig) *Limiter {
	if cfg.Max <= 0 {
		cfg.Max = 64
	}
	if cfg.Start <= 0 {
		cfg.Start = 8
	}
	start := min(cfg.Start, cfg.Max)
	return &Limiter{max: cfg.Max, floor: start, limit: float64(start), probing: true, changed: make(chan struct{})}
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
// refusing it; took is how long a run that Dify answered took to start (0 when unknown).
func (l *Limiter) release(t uint64, full bool, took time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	atLimit := l.inFlight >= int(l.limit)
	l.inFlight--
	slow := !full && took > 0 && l.observe(took.Seconds())
	switch {
	case full && t > l.cutAt:
		// What Dify took is at most what was in flight; aim a little below it.
		l.limit = max(1, min(l.limit, float64(l.inFlight+1))*limitCut)
		l.probing, l.cutAt = false, l.issued
	case slow && atLimit && t > l.cutAt && l.limit > float64(l.floor):
		l.limit = max(float64(l.floor), l.limit*limitCut)
		l.probing, l.cutAt = false, l.issued
	case full, slow:
	case atLimit && l.probing:
		l.limit = min(float64(l.max), l.limit+1) // One more per finished run: doubles each round.
	case atLimit:
		l.limit = min(float64(l.max), l.limit+1/l.limit) // One more per round.
	}
	close(l.changed)
	l.changed = make(chan struct{})
}

// observe adds a run's duration and reports whether the recent runs are slow against the base. The base
// follows a faster run at once and slower ones only very slowly, so Dify's queueing cannot raise it.
func (l *Limiter) observe(secs float64) bool {
	if l.base == 0 {
		l.base, l.recent = secs, secs
		return false
	}
	if secs < l.base {
		l.base = secs
	} else {
		l.base += (secs - l.base) / 16384 // A workflow made slower for good is learnt over some 10,000 runs.
	}
	l.recent += (secs - l.recent) / 8
	return l.recent > slowdown*l.base && l.recent-l.base > slowBy
}

// ConcurrencyLimited reports whether err is Dify saying it runs as many requests as it allows (too_many_requests,
// or its text): the run did not start, and the same run later will. The plan quota is not. Callers keep such a
// run queued rather than failing it.
func ConcurrencyLimited(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && isRateLimit(ae)
}
