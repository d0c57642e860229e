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
// The inbox reserves the message in the Lane before its run is stored, and the run is stored with its first
// attempt's feedback already claimed (Store.EnqueueLaned), so the lane sends without a write of its own first,
// and a worker of another replica sharing PostgreSQL knows not to post a second placeholder. A worker of this
// process takes the lane's entry and, once the lane has sent, what it stored in the run's state, without
// reading the store; a worker elsewhere reads it from the store (awaitFeedback).
const (
	stateFeedback = "feedback" // "sent" or "failed" once the attempt's first feedback was tried.
	// feedbackWorkers is how many first feedbacks the fast lane sends at once: each is a platform call and
	// one write, waits rather than work, and at 200 messages a second 8 of them fell behind (docs/benchmarks.md).
	feedbackWorkers = 32
	// feedbackTimeout bounds one first feedback, so a stalled platform cannot hold the lane.
	feedbackTimeout = 10 * time.Second
	// feedbackPoll is how often a worker about to reply looks for a placeholder still on its way.
	feedbackPoll = 25 * time.Millisecond
	// laneKeep is how many sent entries the lane keeps for workers that have not taken them yet; past it,
	// entries older than laneKeepFor go (their worker reads the store instead).
	laneKeep    = 4096
	laneKeepFor = time.Minute
)

// Lane is the fast lane's queue of accepted runs, shared by the inbox (InboxConfig.Lane), which fills it, and
// the bot (Config.Lane), which sends from it (Bot.Feedback). A full lane is skipped, never waited for: this
// process's worker then sends the feedback under the lane's claim.
type Lane struct {
	runs   chan laneItem
	active atomic.Bool // Bot.Feedback is sending: without it (difybot run, tests) nothing is reserved.

	mu     sync.Mutex
	owned  map[laneKey]*laneEntry // Messages whose first feedback the lane claimed, until a worker takes them.
	pruned time.Time              // The last prune: at most one a second, not one per message of a backlog.
}

type laneKey struct{ platform, eventID string }

type laneItem struct {
	run   Run
	entry *laneEntry
}

// laneEntry is one message whose first attempt's feedback the lane claimed. Its fields other than done are
// written before done is closed and read after.
type laneEntry struct {
	at   time.Time
	done chan struct{} // Closed once the lane has sent the feedback, or left it to the worker.
	// worker is set when the lane was full: this process's worker sends the feedback.
	worker bool
	// state is the run's state after sending (the placeholder's ts), for the worker to take.
	state map[string]string
}

// NewLane returns a lane holding up to size runs.
func NewLane(size int) *Lane {
	return &Lane{runs: make(chan laneItem, size), owned: map[laneKey]*laneEntry{}}
}

// Sending reports whether Bot.Feedback sends from the lane now.
func (l *Lane) Sending() bool { return l != nil && l.active.Load() }

// reserve marks m as the lane's before its run is stored; it returns nil when m cannot be the lane's.
func (l *Lane) reserve(m Message, now time.Time) *laneEntry {
	if l == nil || m.EventID == "" || !l.Sending() {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k := laneKey{m.Platform, m.EventID}
	if _, ok := l.owned[k]; ok {
		return nil // A redelivery while the first is still on its way, or not yet worked.
	}
	if len(l.owned) >= laneKeep && now.Sub(l.pruned) >= time.Second {
		l.prune(now)
	}
	e := &laneEntry{at: now, done: make(chan struct{})}
	l.owned[k] = e
	return e
}

// prune drops the entries no worker of this process took within laneKeepFor: another replica worked them.
func (l *Lane) prune(now time.Time) {
	l.pruned = now
	for k, e := range l.owned {
		select {
		case <-e.done:
			if now.Sub(e.at) > laneKeepFor {
				delete(l.owned, k)
			}
		default:
		}
	}
}

// hand gives the lane r and its entry e; when the lane is full, r's worker sends the feedback. A worker may
// have taken e already: it waits on e.done either way.
func (l *Lane) hand(r Run, e *laneEntry) {
	select {
	case l.runs <- laneItem{run: r, entry: e}:
	default:
		e.worker = true
		close(e.done)
	}
}

// release forgets e, m's reservation: its run was not stored, or was a redelivery (nothing was claimed).
func (l *Lane) release(m Message, e *laneEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := laneKey{m.Platform, m.EventID}
	if l.owned[k] == e {
		delete(l.owned, k)
	}
	close(e.done)
}

// take removes and returns m's entry, or nil when the lane did not claim m's feedback (or forgot it).
func (l *Lane) take(m Message) *laneEntry {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k := laneKey{m.Platform, m.EventID}
	e := l.owned[k]
	delete(l.owned, k)
	return e
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
				case it := <-lane.runs:
					fctx, cancel := context.WithTimeout(ctx, feedbackTimeout)
					b.laneFeedback(fctx, it)
					cancel()
				}
			}
		})
	}
	wg.Wait()
}

// laneFeedback sends the first feedback the lane claimed when the run was stored, and leaves what it stored
// in the entry for the worker.
func (b *Bot) laneFeedback(ctx context.Context, it laneItem) {
	defer close(it.entry.done)
	r := it.run
	pr, ok := b.platforms[r.Platform].(ProgressReporter)
	if !ok {
		return
	}
	b.send(ctx, &r, pr)
	it.entry.state = r.State
}

// start sends the attempt's first feedback, unless the lane or another party has it; then r remembers to take
// the placeholder from the lane or the store (awaitFeedback).
func (b *Bot) start(ctx context.Context, r *Run, p Platform) {
	pr, ok := p.(ProgressReporter)
	if !ok {
		return
	}
	if r.Attempt == 1 && r.lane == nil {
		r.lane = b.cfg.Lane.take(r.Message)
	}
	if e := r.lane; e != nil {
		select {
		case <-e.done:
			if e.worker {
				r.lane = nil
				b.send(ctx, r, pr) // The lane was full; its claim is this worker's.
				return
			}
		default:
		}
		r.feedbackElsewhere = true
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

// send shows that the message was received, and records that it did, with what the platform keeps (the
// placeholder's ts), in one write.
func (b *Bot) send(ctx context.Context, r *Run, pr ProgressReporter) {
	held := heldState{r: r, kv: map[string]string{}}
	mark := "sent"
	if err := pr.Progress(ctx, r.Message, Progress{RunID: r.ID, Attempt: r.Attempt, State: held, Step: "start"}); err != nil {
		b.log.Warn().Err(err).Str("run_id", r.ID).Msg("could not show that the message was received")
		mark = "failed"
	}
	_ = held.Set(ctx, stateFeedback, mark) // Held in memory: it cannot fail.
	if err := b.cfg.Store.SetState(context.WithoutCancel(ctx), r.ID, r.Attempt, held.kv); err != nil {
		b.log.Warn().Err(err).Str("run_id", r.ID).Msg("could not record the first feedback")
	}
}

// heldState is a run's state whose Set waits for the caller to store what was set, together.
type heldState struct {
	r  *Run
	kv map[string]string
}

func (s heldState) Get(k string) string { return s.r.State[k] }

func (s heldState) Set(_ context.Context, k, v string) error {
	setState(s.r, k, v)
	s.kv[k] = v
	return nil
}

// awaitFeedback takes into r what the party that sent the first feedback stored (the placeholder's ts). With
// wait, it gives feedback still on its way until feedbackTimeout after the message arrived: the reply must edit
// that placeholder, not post beside it.
func (b *Bot) awaitFeedback(ctx context.Context, r *Run, wait bool) {
	if !r.feedbackElsewhere || r.State[stateFeedback] != "" {
		return
	}
	deadline := r.CreatedAt.Add(feedbackTimeout)
	if e := r.lane; e != nil {
		// This process's lane sends it, within moments: wait for it (progress too, or the placeholder it
		// would edit is not known yet) rather than polling the store.
		t := time.NewTimer(max(time.Until(deadline), 0))
		defer t.Stop()
		select {
		case <-e.done:
			if e.worker {
				r.feedbackElsewhere = false // The lane was full: what this worker posts next is the first.
				return
			}
			keepState(r, e.state)
			if r.State[stateFeedback] != "" {
				return
			}
		case <-t.C:
		case <-ctx.Done():
		}
	}
	for {
		fresh, err := b.cfg.Store.Run(ctx, r.ID)
		if err == nil {
			keepState(r, fresh.State)
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

// keepState adds to r's state the keys of kv it does not have.
func keepState(r *Run, kv map[string]string) {
	for k, v := range kv {
		if _, ok := r.State[k]; !ok {
			setState(r, k, v)
		}
	}
}
