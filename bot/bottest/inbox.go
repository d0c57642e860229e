// Package bottest has test kits for the bot: an in-memory Store and fakes of what the pipeline talks to.
package bottest

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/difybot/difybot/bot"
)

// ErrUnavailable is the failure the fakes make when told to fail without a given error: a store that cannot
// be written now.
var ErrUnavailable = errors.New("bottest: store unavailable (database is locked)")

// Inbox is a bot.Inbox that records what an adapter hands it. Alone it accepts every message as run
// "run-"+EventID, a duplicate when the event id was accepted before; with Next it passes what it records to a
// real inbox. Set the fields before the inbox is used; it is safe for concurrent use after that.
type Inbox struct {
	// Next, when set, is the inbox Accept and Retry pass to, such as bot.NewInbox's, to test through the queue.
	Next bot.Inbox
	// Err, when set, is what Accept returns; SetErr changes it while the inbox is in use.
	Err error
	// FailAt makes the nth call of Accept (counting from 1) fail with ErrUnavailable; 0 never.
	FailAt int
	// RetryErr, when set, is what Retry returns.
	RetryErr error
	// OnAccept, when set, is called with every message Accept is given, before it answers.
	OnAccept func(bot.Message)

	mu       sync.Mutex
	given    []bot.Message
	accepted []bot.Message
	runs     []string
	dups     []bool
	retries  []string
}

// Accept records m and accepts it, or fails as Err and FailAt say.
func (in *Inbox) Accept(ctx context.Context, m bot.Message) (bot.Run, bool, error) {
	in.mu.Lock()
	in.given = append(in.given, m)
	err, hook := in.Err, in.OnAccept
	if err == nil && in.FailAt == len(in.given) {
		err = ErrUnavailable
	}
	dup := slices.ContainsFunc(in.accepted, func(old bot.Message) bool { return old.EventID == m.EventID })
	in.mu.Unlock()
	if hook != nil {
		hook(m)
	}
	if err != nil {
		return bot.Run{}, false, err
	}
	r := bot.Run{ID: "run-" + m.EventID, Message: m}
	if in.Next != nil {
		if r, dup, err = in.Next.Accept(ctx, m); err != nil {
			return r, dup, err
		}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.accepted, in.runs, in.dups = append(in.accepted, m), append(in.runs, r.ID), append(in.dups, dup)
	return r, dup, nil
}

// Retry records the run id, and returns RetryErr or what Next answers. A RetryErr wrapping bot.ErrNotFound,
// bot.ErrNotFinished or bot.ErrStaleAttempt refuses the press before req.Before is called, as the real inbox
// does; any other fails after it (the queue could not be written).
func (in *Inbox) Retry(ctx context.Context, req bot.RetryRequest) error {
	in.mu.Lock()
	in.retries = append(in.retries, req.RunID)
	err := in.RetryErr
	in.mu.Unlock()
	if err == nil && in.Next != nil {
		return in.Next.Retry(ctx, req)
	}
	refused := errors.Is(err, bot.ErrNotFound) || errors.Is(err, bot.ErrNotFinished) || errors.Is(err, bot.ErrStaleAttempt)
	if !refused && req.Before != nil {
		req.Before(ctx)
	}
	return err
}

// SetErr changes what Accept returns from now on; nil accepts again.
func (in *Inbox) SetErr(err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.Err = err
}

// Given returns every message Accept was called with, accepted or not.
func (in *Inbox) Given() []bot.Message {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.given)
}

// Accepted returns the messages Accept accepted, in order.
func (in *Inbox) Accepted() []bot.Message {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.accepted)
}

// Runs returns the run id of every accepted message and whether it was a duplicate.
func (in *Inbox) Runs() (ids []string, dups []bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.runs), slices.Clone(in.dups)
}

// Retried returns the run ids Retry was called with.
func (in *Inbox) Retried() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.retries)
}

// Reached is how many calls of Accept and Retry there were.
func (in *Inbox) Reached() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.given) + len(in.retries)
}

// Reset forgets what was recorded, as between fuzz inputs.
func (in *Inbox) Reset() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.given, in.accepted, in.runs, in.dups, in.retries = nil, nil, nil, nil, nil
}
