package dify

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/sony/gobreaker/v2"
)

// Mode is the operator's override of the breaker.
type Mode string

// The modes an operator can set.
const (
	ModeAuto   Mode = "auto"   // The breaker follows its own observations.
	ModeOpen   Mode = "open"   // Forced open: maintenance; no call reaches Dify.
	ModeClosed Mode = "closed" // Forced closed: every call goes through and nothing is counted.
)

// ParseMode accepts "auto", "open" or "closed".
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeAuto, ModeOpen, ModeClosed:
		return m, nil
	}
	return "", fmt.Errorf("dify: unknown breaker mode %q (want auto, open or closed)", s)
}

// BreakerConfig tunes when the breaker trips. Zero values take the defaults of DESIGN.md.
type BreakerConfig struct {
	FailureRatio float64       // Trip when failures/requests reaches this; default 0.5.
	MinRequests  uint32        // ... over at least this many requests; default 5.
	OpenFor      time.Duration // Stay open this long before a trial request; default 30s.
	Window       time.Duration // Rolling window for the counts while closed; default 60s.
}

func (c BreakerConfig) withDefaults() BreakerConfig {
	if c.FailureRatio <= 0 || c.FailureRatio > 1 {
		c.FailureRatio = 0.5
	}
	if c.MinRequests == 0 {
		c.MinRequests = 5
	}
	if c.OpenFor <= 0 {
		c.OpenFor = 30 * time.Second
	}
	if c.Window <= 0 {
		c.Window = 60 * time.Second
	}
	return c
}

// Breaker is a per-replica gobreaker with an operator override on top, because gobreaker cannot be forced.
type Breaker struct {
	cb    *gobreaker.CircuitBreaker[struct{}]
	mode  atomic.Value // Mode
	since atomic.Int64 // Unix nanoseconds of the last automatic state change.
	log   zerolog.Logger
}

// NewBreaker returns a breaker in ModeAuto.
func NewBreaker(cfg BreakerConfig, log zerolog.Logger) *Breaker {
	cfg = cfg.withDefaults()
	b := &Breaker{log: log}
	b.mode.Store(ModeAuto)
	b.since.Store(time.Now().UnixNano())
	bucket := cfg.Window / 6
	b.cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:         "dify",
		MaxRequests:  1,
		Interval:     cfg.Window,
		BucketPeriod: bucket,
		Timeout:      cfg.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.Requests >= cfg.MinRequests && float64(c.TotalFailures) >= cfg.FailureRatio*float64(c.Requests)
		},
		IsSuccessful: func(err error) bool { return !IsOutage(err) },
		IsExcluded:   callerGaveUp,
		// Runs with gobreaker's mutex held: log and store only, never call back into cb.
		OnStateChange: func(_ string, from, to gobreaker.State) {
			b.since.Store(time.Now().UnixNano())
			ev := b.log.Warn()
			if to == gobreaker.StateClosed {
				ev = b.log.Info()
			}
			ev.Str("breaker", "dify").Str("from", from.String()).Str("to", to.String()).Msg("breaker state changed")
		},
	})
	return b
}

// SetMode applies an operator override. Setting the mode it already has is a no-op.
func (b *Breaker) SetMode(m Mode, reason string) {
	if old := b.mode.Swap(m); old != m {
		b.log.Warn().Str("breaker", "dify").Str("from_mode", string(old.(Mode))).Str("to_mode", string(m)).
			Str("reason", reason).Msg("breaker mode changed")
	}
}

// Mode returns the operator override in force.
func (b *Breaker) Mode() Mode { return b.mode.Load().(Mode) }

// BreakerStatus is what the admin page and /readyz show.
type BreakerStatus struct {
	Mode     Mode      `json:"mode"`
	State    string    `json:"state"`     // The effective state: closed, open, half-open, forced-open, forced-closed.
	Auto     string    `json:"auto"`      // gobreaker's own state, which keeps running under an override.
	Since    time.Time `json:"since"`     // When gobreaker's state last changed.
	Requests uint32    `json:"requests"`  // Counts in the current window.
	Failures uint32    `json:"failures"`  // ...
	Success  uint32    `json:"successes"` // ...
}

// Status reports the effective state and counts.
func (b *Breaker) Status() BreakerStatus {
	auto := b.cb.State().String()
	c := b.cb.Counts()
	s := BreakerStatus{Mode: b.Mode(), State: auto, Auto: auto, Since: time.Unix(0, b.since.Load()),
		Requests: c.Requests, Failures: c.TotalFailures, Success: c.TotalSuccesses}
	switch s.Mode {
	case ModeOpen:
		s.State = "forced-open"
	case ModeClosed:
		s.State = "forced-closed"
	}
	return s
}

// Ready returns ErrMaintenance or ErrBreakerOpen when a call would be refused now, so a caller can hold work
// without spending a request.
func (b *Breaker) Ready() error {
	switch b.Mode() {
	case ModeOpen:
		return ErrMaintenance
	case ModeClosed:
		return nil
	}
	if b.cb.State() == gobreaker.StateOpen {
		return ErrBreakerOpen
	}
	return nil
}

// do runs one Dify exchange under the breaker and the override.
func (b *Breaker) do(ctx context.Context, fn func() error) error {
	switch b.Mode() {
	case ModeOpen:
		return ErrMaintenance
	case ModeClosed:
		return fn()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := b.cb.Execute(func() (struct{}, error) { return struct{}{}, fn() })
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return ErrBreakerOpen
	}
	return err
}
