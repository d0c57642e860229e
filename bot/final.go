package bot

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// A run the queue gives up on always ends with a reply and a true diagnosis. The queue marks its last attempt
// with FinalAttempt; on it, Process keeps back part of the job's time, and whatever stops the attempt (a store
// that keeps failing, a reply that keeps failing, the job's time running out) ends the run here instead of
// being returned to a queue that will not try again.

// finalReserve is the time the last attempt keeps back from its job's deadline to end the run and reply.
// A shorter job keeps back a quarter of its time.
const finalReserve = 30 * time.Second

type finalKey struct{}

// FinalAttempt marks ctx as the queue's last attempt at a run: Process then ends the run with a diagnosis and a
// reply to the person rather than returning an error nobody would retry. It still returns a *HoldError (holds
// spend no attempt), and an error when the run was gone or the shutdown cancelled the attempt.
func FinalAttempt(ctx context.Context) context.Context {
	return context.WithValue(ctx, finalKey{}, true)
}

func isFinal(ctx context.Context) bool { v, _ := ctx.Value(finalKey{}).(bool); return v }

// attempt is what Process knows of the attempt it runs: when it began and the step in flight.
type attempt struct {
	start time.Time
	step  string
}

// reserve returns ctx shortened by the time the final attempt keeps back, if ctx has a deadline.
func reserve(ctx context.Context, now time.Time) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	keep := min(finalReserve, deadline.Sub(now)/4)
	return context.WithDeadline(ctx, deadline.Add(-keep))
}

// giveUp ends run id after its last attempt failed with cause: the run is stored failed with the diagnosis and
// the person is told. It returns nil once the person has the answer, else an error saying why they could not
// be told (classified, so the queue's own record of the failure is true too).
func (b *Bot) giveUp(ctx context.Context, id string, att *attempt, cause error, timedOut bool) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalReserve)
	defer cancel()
	step := att.step
	if timedOut {
		cause = timeUp(step, b.now().Sub(att.start), cause)
	}
	r, err := b.cfg.Store.Run(ctx, id)
	if err != nil {
		return fmt.Errorf("bot: run %s: the last attempt failed (%w) and the run could not be loaded to end it: %w", id, cause, err)
	}
	log := b.log.With().Str("run_id", r.ID).Str("platform", r.Platform).Int("attempt", r.Attempt).Logger()
	p, ok := b.platforms[r.Platform]
	if !ok {
		return cause
	}
	steps := &stepLog{store: b.cfg.Store, metrics: b.cfg.Metrics, log: log, run: &r, names: stepsFor(len(r.Message.Files), len(r.Choices) > 0), now: b.now}
	if r.Status == RunSucceeded || r.Status == RunFailed {
		// The answer is known; delivering it failed on every attempt. One more try, then the run says so.
		err := b.reply(ctx, &r, p, steps)
		if err == nil || r.RepliedAttempt == r.Attempt {
			return err // Told (an error here is queueing the next photos, which the queue's record keeps).
		}
		cause = err
		d := Diagnose(Classified(CodePlatformReplyFailed, "reply", fmt.Errorf("no attempt is left to deliver the answer: %w", cause)))
		r.Status, r.Code, r.Diagnosis = RunFailed, d.Code, &d
		if err := b.cfg.Store.SaveRun(ctx, r); err != nil {
			log.Error().Err(err).Msg("could not store that the answer was never delivered")
		}
		log.Error().Str("code", string(d.Code)).Str("error", d.Detail).Msg("the answer could not be delivered on any attempt")
		return Classified(CodePlatformReplyFailed, "reply", cause)
	}
	err = cause
	if timedOut {
		if step != "" {
			steps.record(ctx, step, b.now(), 0, "failed", cause, nil) // Its own record may not have been stored in time.
		}
	} else {
		err = fmt.Errorf("the queue's last try failed and it will not try again: %w", cause)
	}
	log.Error().Err(err).Msg("the queue's last attempt failed; ending the run with its diagnosis")
	b.conclude(&r, "", err)
	serr := b.cfg.Store.SaveRun(ctx, r)
	switch {
	case errors.Is(serr, ErrStaleAttempt):
		return nil // A Retry replaced this attempt; the new one answers.
	case serr == nil:
		b.cfg.Metrics.ObserveRun(r)
	default:
		// The store that failed every attempt may fail this too: the person is told all the same, as nothing
		// will try again.
		log.Error().Err(serr).Msg("could not store the run's outcome; telling the person anyway")
	}
	rerr := b.reply(ctx, &r, p, steps)
	if r.RepliedAttempt == r.Attempt {
		if rerr != nil {
			log.Error().Err(rerr).Msg("the person was told, but storing it failed")
		}
		return nil
	}
	return fmt.Errorf("%w (telling the person failed too: %w)", err, errors.Join(serr, rerr))
}

// timeUp is the diagnosis of a last attempt that ran out of time, by the step it was in: what was slow decides
// the code (the platform's download, Dify, the reply), not the deadline itself.
func timeUp(step string, took time.Duration, cause error) error {
	code, what := CodeInternal, "outside any step (the store, or the platform's progress display, did not answer)"
	switch step {
	case StepFetch:
		code, what = CodePlatformDownloadFailed, "downloading the photos from the platform"
	case StepCheck, StepUpload:
		code, what = CodeDifyUnreachable, "waiting for Dify to take the photos (its file upload or app settings)"
	case StepRun:
		code, what = CodeDifyWorkflowTimeout, "waiting for Dify's run"
	case StepFormat:
		code, what = CodeInternal, "formatting the answer"
	case StepReply:
		code, what = CodePlatformReplyFailed, "posting the reply"
	}
	op := step
	if op == "" {
		op = "queue"
	}
	return Classified(code, op, fmt.Errorf("the last attempt ran out of the job's time after %s while %s: %w", took.Round(time.Second), what, cause))
}
