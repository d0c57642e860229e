package bot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/rs/zerolog"
)

// A chat platform meets the bot at two points. Inbound, its adapter hands what people send to an Inbox, which
// stores it durably before the adapter acknowledges the delivery. Outbound, the pipeline calls the Platform
// methods below, and the optional interfaces (ProgressReporter, …) an adapter also implements.
// docs/platforms.md tells how to add a platform.

// Platform is what the pipeline needs from a chat platform. *slack.Adapter, *line.Adapter and *web.Chat implement it.
type Platform interface {
	// Name is the platform's name as it appears in Message.Platform.
	Name() string
	// OpenFile streams an attachment of m. The caller closes it. A file that cannot be read returns an error
	// classified with Classified(CodePlatformDownloadFailed, …). Opening and reading must end when ctx ends (an
	// HTTP request made with ctx does): the pipeline's download limits (FetchTimeout, FetchIdle) work through it.
	OpenFile(ctx context.Context, m Message, f File) (io.ReadCloser, error)
	// Reply posts r in m's conversation. It must be idempotent per r.RunID, r.Attempt and r.Final: the pipeline
	// may call it again after a crash, and the person must still see one answer per attempt.
	Reply(ctx context.Context, m Message, r Reply) error
}

// DirectChats is implemented by platforms that have one-to-one chats with the bot (a Slack DM, a LINE one-on-one
// chat, the web chat). There a person may choose which of several apps their messages go to; in a group the
// chat's route decides.
type DirectChats interface {
	Direct(m Message) bool
}

// ProgressReporter is implemented by platforms that can show a run's progress while it works.
// Errors are logged and otherwise ignored: progress is a courtesy.
type ProgressReporter interface {
	Progress(ctx context.Context, m Message, p Progress) error
}

// Inbox is what adapters hand people's messages to. NewInbox returns the one the bot's queue works.
type Inbox interface {
	// Accept stores and queues m durably, deduplicating by m.Platform and m.EventID; only after it returns nil may
	// the adapter acknowledge the delivery. A redelivered event returns the existing run with dup = true.
	Accept(ctx context.Context, m Message) (r Run, dup bool, err error)
	// Retry queues a finished run again with the same message: the person's Retry button. A Retry of an attempt
	// that was retried already (the button pressed twice, or its request replayed) changes nothing and returns an
	// error wrapping ErrStaleAttempt; a run that is not finished returns one wrapping ErrNotFinished, an unknown
	// run ErrNotFound.
	Retry(ctx context.Context, req RetryRequest) error
}

// RetryRequest is one press of a Retry button.
type RetryRequest struct {
	RunID string
	// Attempt is the attempt whose failure showed the button. The run is requeued only while it is still at that
	// attempt, in the store, so a replayed press is a no-op on every replica. 0 requeues any finished attempt
	// (buttons shown before they carried their attempt).
	Attempt int
	// Before, when set, is called once the run is found finished at Attempt, just before it is queued: there the
	// adapter shows that the run is retrying, so that its edit cannot land after the new attempt's answer and a
	// refused press shows nothing. Two presses arriving at the same moment may both call it; one is queued.
	Before func(ctx context.Context)
}

// Route is one HTTP endpoint a platform serves, such as "POST /slack/events".
type Route struct {
	Pattern string // An http.ServeMux pattern.
	Handler http.Handler
	// BodyTimeout is how long a request body may take to arrive after its headers; 0 is the server's default
	// (10 s: webhooks are a few kilobytes). A route taking uploads sizes it for its largest on a slow link. The
	// server enforces it, and caps the bodies read at once, before the handler reads a byte.
	BodyTimeout time.Duration
}

// Check is one line of `difybot doctor`: what was checked and what was found, and on failure what to do.
type Check struct {
	Name   string
	OK     bool
	Detail string
	Fixes  []string
	// Warn marks a check that passed with something the operator should know (a feature that is off): doctor
	// shows it, with its fixes, but does not count it as a problem.
	Warn bool
}

// InboxConfig configures NewInbox. Store is required.
type InboxConfig struct {
	Store  Store
	Logger zerolog.Logger
	Now    func() time.Time
	// Lane, when set, is the fast lane the inbox hands each new run to, for Bot.Feedback (the same Lane as the
	// bot's Config.Lane).
	Lane *Lane
}

type inbox struct {
	store Store
	log   zerolog.Logger
	now   func() time.Time
	lane  *Lane
}

// NewInbox returns the Inbox that stores messages in cfg.Store, whose queue the Bot works.
func NewInbox(cfg InboxConfig) (Inbox, error) {
	if cfg.Store == nil {
		return nil, errors.New("bot: inbox: Store is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &inbox{store: cfg.Store, log: cfg.Logger, now: cfg.Now, lane: cfg.Lane}, nil
}

func (in *inbox) Accept(ctx context.Context, m Message) (Run, bool, error) {
	if m.ReceivedAt.IsZero() {
		m.ReceivedAt = in.now()
	}
	// Reserved before the run is stored, so that a worker picking it up at once sees that the lane sends it.
	laned := in.lane.reserve(m, in.now())
	enqueue := in.store.Enqueue
	if laned != nil {
		enqueue = in.store.EnqueueLaned
	}
	r, dup, err := enqueue(ctx, m)
	if err != nil {
		if laned != nil {
			in.lane.release(m, laned)
		}
		return r, false, fmt.Errorf("bot: accept %s event %s: %w", m.Platform, m.EventID, err)
	}
	in.log.Info().Str("run_id", r.ID).Str("platform", m.Platform).Str("event_id", m.EventID).Bool("duplicate", dup).Msg("message accepted")
	switch {
	case laned != nil && dup:
		in.lane.release(m, laned)
	case laned != nil:
		in.lane.hand(r, laned)
	}
	return r, dup, nil
}

func (in *inbox) Retry(ctx context.Context, req RetryRequest) error {
	r, err := in.store.Run(ctx, req.RunID)
	switch {
	case err != nil:
		return fmt.Errorf("bot: retry run %s: %w", req.RunID, err)
	case req.Attempt != 0 && r.Attempt != req.Attempt:
		return fmt.Errorf("bot: retry run %s: %w: attempt %d was retried, the run is at attempt %d", req.RunID, ErrStaleAttempt, req.Attempt, r.Attempt)
	case r.Status != RunSucceeded && r.Status != RunFailed:
		return fmt.Errorf("bot: retry run %s: %w: it is %s", req.RunID, ErrNotFinished, r.Status)
	}
	if req.Before != nil {
		req.Before(ctx)
	}
	if err := in.store.Requeue(ctx, req.RunID, r.Attempt); err != nil {
		return fmt.Errorf("bot: retry run %s: %w", req.RunID, err)
	}
	in.log.Info().Str("run_id", req.RunID).Int("attempt", r.Attempt+1).Msg("run retried")
	return nil
}
