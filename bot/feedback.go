package bot

import (
	"context"
	"sync"
	"time"
)

// The first feedback of an attempt (Slack's placeholder, LINE's loading animation, the web chat's "working")
// is sent once, by whoever claims it in the store first: the fast lane right after the ack commits, so the
// person sees it at once however long the queue is, or the worker when the fast lane did not (a Retry, a
// full lane, a replica that died after the ack). The sender records the outcome in the run's state, and a
// worker that lost the claim takes the placeholder from there instead of posting a second one.
const (
	stateFeedback = "feedback" // "sent" or "failed" once the attempt's first feedback was tried.
	// feedbackWorkers is how many first feedbacks are sent at once by the fast lane.
	feedbackWorkers = 8
	// feedbackTimeout bounds one first feedback, so a stalled platform cannot hold the lane.
	feedbackTimeout = 10 * time.Second
	// feedbackPoll is how often a worker about to reply looks for a placeholder still on its way.
	feedbackPoll = 25 * time.Millisecond
)

// Feedback sends the first feedback of the runs the inbox accepted (InboxConfig.Accepted), until ctx ends.
func (b *Bot) Feedback(ctx context.Context, accepted <-chan Run) {
	var wg sync.WaitGroup
	for range feedbackWorkers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case r := <-accepted:
					if p, ok := b.platforms[r.Platform]; ok {
						fctx, cancel := context.WithTimeout(ctx, feedbackTimeout)
						b.start(fctx, &r, p)
						cancel()
					}
				}
			}
		})
	}
	wg.Wait()
}

// start sends the attempt's first feedback, unless another party claimed it; then r remembers to take the
// placeholder from the store (awaitFeedback).
func (b *Bot) start(ctx context.Context, r *Run, p Platform) {
	pr, ok := p.(ProgressReporter)
	if !ok {
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
