package bot

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// The first feedback of an attempt (Slack's placeholder, LINE's loading animation, the web chat's "working")
// is sent once: by the fast lane right after the ack commits, so the person sees it at once however long the
// queue is, or by the worker when the lane did not (a Retry, a full lane, a replica that died after the ack).
// In one process they agree in memory: the inbox reserves the message in the Lane before its run commits, so
// a worker that picks the run up at once already sees that the lane sends it, and nothing stands between the
// ack and the feedback. Replicas sharing PostgreSQL may work each other's runs, so there the lane first claims
// the feedback in the store (runs.feedback_attempt) as a worker does. The sender records the outcome in the
// run's state, and a worker that did not send takes the placeholder from there instead of posting another.
const (
	stateFeedback = "feedback" // "sent" or "failed" once the attempt's first feedback was tried.
	// feedbackWorkers is how many first feedbacks the fast lane sends at once.
	feedbackWorkers = 8
	// feedbackTimeout bounds one first feedback, so a stalled platform cannot hold the lane.
	feedbackTimeout = 10 * time.Second
	// feedbackPoll is how often a worker about to reply looks for a placeholder still on its way.
	feedbackPoll = 25 * time.Millisecond
)

// Lane is the fast lane's queue of accepted runs, shared by the inbox (InboxConfig.Lane), which fills it, and
// the bot (Config.Lane), which sends from it (Bot.Feedback). A full lane is skipped, never waited for.
type Lane struct {
	runs   chan Run
	active atomic.Bool // Bot.Feedback is sending: without it (difybot run, tests) nothing is reserved.

	mu    sync.Mutex
	owned map[laneKey]chan struct{} // Messages the lane sends the first feedback of; closed once it did.
}

type laneKey struct{ platform, eventID string }

// NewLane returns a lane holding up to size runs.
func NewLane(size int) *Lane {
	return &Lane{runs: make(chan Run, size), owned: map[laneKey]chan struct{}{}}
}

// Sending reports whether Bot.Feedback sends from the lane now.
func (l *Lane) Sending() bool { return l != nil && l.active.Load() }

// reserve marks m as the lane's before its run is stored; it returns false when m cannot be the lane's.
func (l *Lane) reserve(m Message) bool {
	if l == nil || m.EventID == "" || !l.Sending() {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k := laneKey{m.Platform, m.EventID}
	if _, ok := l.owned[k]; ok {
		return false // A redelivery while the first is still on its way.
	}
	l.owned[k] = make(chan struct{})
	return true
}

// hand gives the lane r, whose message it reserved; when it is full the reservation is released, and the
// worker sends the feedback.
func (l *Lane) hand(r Run) {
	select {
	case l.runs <- r:
	default:
		l.done(r.Message)
	}
}

// done releases m's reservation: its feedback was sent (or never will be by the lane).
func (l *Lane) done(m Message) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := laneKey{m.Platform, m.EventID}
	if ch, ok := l.owned[k]; ok {
		close(ch)
		delete(l.owned, k)
	}
}

// owner returns the channel closed when the lane has sent m's first feedback, or nil when the lane does not
// send it.
func (l *Lane) owner(m Message) <-chan struct{} {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.owned[laneKey{m.Platform, m.EventID}]
}

// Feedback sends the first feedback of the runs in the lane (Config.Lane), until ctx ends.
func (b *Bot) Feedback(ctx context.Context) {
	lane := b.cfg.Lane
	if lane == nil {
		return
	}
	lane.active.Store(true)
	defer lane.active.Store(false)
	var wg sync.WaitGroup
	for range feedbackWorkers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case r := <-lane.runs:
					if p, ok := b.platforms[r.Platform]; ok {
						fctx, cancel := context.WithTimeout(ctx, feedbackTimeout)
						b.laneFeedback(fctx, &r, p)
						cancel()
					}
					lane.done(r.Message)
				}
			}
		})
	}
	wg.Wait()
}

// sharedStore is a store several replicas work (PostgreSQL): their workers do not see this process's lane.
type sharedStore interface{ Shared() bool }

// laneFeedback sends r's first feedback from the lane: at once in one process, after claiming it in the store
// when replicas share the queue. It is claimed afterwards too, so a restarted worker knows it was sent.
func (b *Bot) laneFeedback(ctx context.Context, r *Run, p Platform) {
	if s, ok := b.cfg.Store.(sharedStore); ok && s.Shared() {
		b.start(ctx, r, p)
		return
	}
	pr, ok := p.(ProgressReporter)
	if !ok {
		return
	}
	b.send(ctx, r, pr)
	if _, err := b.cfg.Store.ClaimFeedback(context.WithoutCancel(ctx), r.ID, r.Attempt); err != nil {
		b.log.Warn().Err(err).Str("run_id", r.ID).Msg("could not record the first feedback's claim")
	}
}

// start sends the attempt's first feedback, unless the lane or another party has it; then r remembers to take
// the placeholder from the store (awaitFeedback).
func (b *Bot) start(ctx context.Context, r *Run, p Platform) {
	pr, ok := p.(ProgressReporter)
	if !ok {
		return
	}
	if ch := b.cfg.Lane.owner(r.Message); ch != nil && r.Attempt == 1 {
		r.feedbackElsewhere, r.laneDone = true, ch
		return
	}
	won, err := b.cfg.Store.ClaimFeedback(ctx, r.ID, r.Attempt)
	if err != nil {
		b.log.Warn().Err(err).Str("run_id", r.ID).Msg("could not claim the first feedback; not sending it")
		return
	}
	if !won {
		r.feedbackElsewhere = true
		return
	}
	b.send(ctx, r, pr)
}

// send shows that the message was received, and records that it did.
func (b *Bot) send(ctx context.Context, r *Run, pr ProgressReporter) {
	mark := "sent"
	if err := pr.Progress(ctx, r.Message, Progress{RunID: r.ID, Attempt: r.Attempt, State: b.state(r), Step: "start"}); err != nil {
		b.log.Warn().Err(err).Str("run_id", r.ID).Msg("could not show that the message was received")
		mark = "failed"
	}
	if err := b.state(r).Set(context.WithoutCancel(ctx), stateFeedback, mark); err != nil {
		b.log.Warn().Err(err).Str("run_id", r.ID).Msg("could not record the first feedback")
	}
}

// awaitFeedback takes into r what the party that sent the first feedback stored (the placeholder's ts). With
// wait, it gives feedback still on its way until feedbackTimeout after the message arrived: the reply must edit
// that placeholder, not post beside it.
func (b *Bot) awaitFeedback(ctx context.Context, r *Run, wait bool) {
	if !r.feedbackElsewhere || r.State[stateFeedback] != "" {
		return
	}
	deadline := r.CreatedAt.Add(feedbackTimeout)
	if r.laneDone != nil {
		// The lane of this process sends it, within moments: wait for it (progress too, or the placeholder it
		// would edit is not known yet) rather than polling the store.
		t := time.NewTimer(max(time.Until(deadline), 0))
		select {
		case <-r.laneDone:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	for {
		fresh, err := b.cfg.Store.Run(ctx, r.ID)
		if err == nil {
			for k, v := range fresh.State {
				if _, ok := r.State[k]; !ok {
					setState(r, k, v)
				}
			}
		}
		if r.State[stateFeedback] != "" || !wait || !b.now().Before(deadline) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(feedbackPoll):
		}
	}
}
