package bot

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Share is one person's fair share of Dify (USER_CONCURRENCY, USER_RATE): zero fields are no limit.
type Share struct {
	Runs      int // Runs one person may have in flight at once.
	PerMinute int // Messages one person may send per minute before the rest wait.
}

// Admission is the store's answer to whether a run may start now, and why not.
type Admission struct {
	OK      bool
	Reason  string    // "runs" or "rate" when not OK.
	Running int       // The person's other runs in flight.
	Recent  int       // The person's messages received within the minute before this one.
	RetryAt time.Time // When a run held for the rate may look again.
}

// Admitter is the part of the store that decides, atomically across replicas, whether a run may start.
type Admitter interface {
	// Admit saves r as SaveRun does, marked running, unless its person already has share.Runs runs running or
	// sent share.PerMinute messages within the minute before it. A run of no known person is always admitted.
	Admit(ctx context.Context, r Run, share Share, now time.Time) (Admission, error)
}

// errOverShare is why a run waits for its person's earlier ones; it is never shown as a failure.
var errOverShare = errors.New("the person's earlier messages come first")

// Waits between looks at a run held for its person's share: runs end in seconds to minutes, and a held rate
// frees up when the oldest message of the minute ages out.
const (
	shareRunsPoll = 2 * time.Second
	shareRateMin  = time.Second
)

// admit marks r running and saves it, unless the store's fair share holds it. A run Dify may already have
// (named, or posted and unconfirmed) is never held: holding it could not give Dify back its capacity, and its
// answer must not wait.
func (b *Bot) admit(ctx context.Context, r *Run, p Platform, steps *stepLog) (bool, error) {
	ad, ok := b.cfg.Store.(Admitter)
	if !ok || r.DifyRunID != "" || r.DifyMessageID != "" || r.PostedAttempt == r.Attempt {
		r.Status = RunRunning
		if err := b.cfg.Store.SaveRun(ctx, *r); err != nil {
			return false, fmt.Errorf("bot: save run %s: %w", r.ID, err)
		}
		return true, nil
	}
	a, err := ad.Admit(ctx, *r, b.cfg.Share, b.now())
	if err != nil {
		return false, fmt.Errorf("bot: admit run %s: %w", r.ID, err)
	}
	if a.OK {
		r.Status = RunRunning
		return true, nil
	}
	after := shareRunsPoll
	if a.Reason == "rate" {
		after = max(a.RetryAt.Sub(b.now()), shareRateMin)
	}
	if !r.HeldNotified {
		// Told once: a photo that queues behind the person's own earlier ones shows it was received; one over
		// the rate hears that it will be answered shortly.
		b.start(ctx, r, p)
		if a.Reason == "rate" {
			b.awaitFeedback(ctx, r, true) // The notice goes where the placeholder is.
			if err := p.Reply(ctx, r.Message, Reply{Text: BusyText(b.cfg.Language, r.ID), RunID: r.ID, Attempt: r.Attempt, State: b.state(r)}); err != nil {
				steps.log.Warn().Err(err).Msg("could not tell the person their message waits its turn")
			}
		}
		r.HeldNotified = true
		steps.record(ctx, StepRun, b.now(), 0, "queued", nil, map[string]any{"reason": a.Reason,
			"running": a.Running, "recent": a.Recent, "limit_runs": b.cfg.Share.Runs, "limit_per_minute": b.cfg.Share.PerMinute})
	}
	r.Status = RunHeld
	if err := b.cfg.Store.SaveRun(ctx, *r); err != nil {
		return false, fmt.Errorf("bot: save run %s: %w", r.ID, err)
	}
	return false, &HoldError{After: after, Reason: errOverShare}
}
