// Package bottest has test kits for the bot: an in-memory Store and fakes of what the pipeline talks to.
package bottest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/difybot/difybot/bot"
)

// Store is a bot.Store in memory, for pipeline tests that need no database. It keeps bot/store's contract:
// Enqueue deduplicates by platform and event id (an empty event id never does), SaveRun refuses a stale attempt
// with bot.ErrStaleAttempt, Requeue refuses an unfinished run with bot.ErrNotFinished, and unknown ids are
// bot.ErrNotFound. Like the database, it hands out copies: a caller changing a run, a message or a step's
// fields after the call changes nothing stored, and step fields come back as JSON decodes them (numbers are
// float64). It has no queue workers: Queued lists what a real store would have queued, for the test to process.
// It is safe for concurrent use.
type Store struct {
	mu        sync.Mutex
	seq       int
	runs      map[string]bot.Run
	byEvent   map[eventKey]string // Run ids by platform and event id.
	steps     map[string][]bot.Step
	nodes     map[string][]bot.NodeEvent
	convs     map[string]string
	queued    []string
	pending   map[string]bot.Pending  // By run id.
	feedback  map[string]int          // The attempt whose first feedback was claimed, by run id.
	files     map[string]*storedFile  // Output files by id.
	key       []byte                  // The signing key.
	questions map[string]bot.Question // By id.
}

type eventKey struct{ platform, eventID string }

var _ bot.Store = (*Store)(nil)

// NewStore returns an empty Store.
func NewStore() *Store {
	return &Store{runs: map[string]bot.Run{}, byEvent: map[eventKey]string{}, steps: map[string][]bot.Step{},
		nodes: map[string][]bot.NodeEvent{}, convs: map[string]string{}}
}

// Enqueue stores m as a new queued run, unless a run with the same platform and non-empty event id exists:
// then it returns that run and dup = true, and queues nothing.
func (s *Store) Enqueue(_ context.Context, m bot.Message) (bot.Run, bool, error) {
	return s.enqueue(m, 0)
}

// EnqueueLaned is Enqueue with the first attempt's feedback claimed (ClaimFeedback) for the fast lane.
func (s *Store) EnqueueLaned(_ context.Context, m bot.Message) (bot.Run, bool, error) {
	return s.enqueue(m, 1)
}

func (s *Store) enqueue(m bot.Message, feedbackAttempt int) (bot.Run, bool, error) {
	if m.Platform == "" {
		return bot.Run{}, false, errors.New("bottest: enqueue: message has no platform")
	}
	m, err := roundTrip(m) // The store keeps the message as JSON.
	if err != nil {
		return bot.Run{}, false, fmt.Errorf("bottest: enqueue: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := eventKey{m.Platform, m.EventID}
	if id, ok := s.byEvent[key]; ok && m.EventID != "" {
		r, err := roundTrip(s.runs[id])
		return r, true, err
	}
	s.seq++
	now := stamp(time.Now())
	r := bot.Run{ID: fmt.Sprintf("r_%026d", s.seq), Platform: m.Platform, EventID: m.EventID, Status: bot.RunQueued,
		Message: m, CreatedAt: now, UpdatedAt: now, Attempt: 1}
	s.runs[r.ID] = r
	if m.EventID != "" {
		s.byEvent[key] = r.ID
	}
	if feedbackAttempt > 0 {
		if s.feedback == nil {
			s.feedback = map[string]int{}
		}
		s.feedback[r.ID] = feedbackAttempt
	}
	s.queued = append(s.queued, r.ID)
	out, err := roundTrip(r)
	return out, false, err
}

// Run returns a run by id, or an error wrapping bot.ErrNotFound.
func (s *Store) Run(_ context.Context, id string) (bot.Run, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.runs[id]
	if !ok {
		return bot.Run{}, fmt.Errorf("bottest: run %s: %w", id, bot.ErrNotFound)
	}
	return roundTrip(r)
}

// SaveRun writes the run's mutable fields and stamps UpdatedAt, if r.Attempt is still the run's attempt. The
// message, creation time and attempt are not changed: they belong to Enqueue and Requeue.
func (s *Store) SaveRun(_ context.Context, r bot.Run) error {
	r, err := roundTrip(r)
	if err != nil {
		return fmt.Errorf("bottest: save run %s: %w", r.ID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.runs[r.ID]
	if !ok {
		return fmt.Errorf("bottest: save run %s: %w", r.ID, bot.ErrNotFound)
	}
	if cur.Attempt != r.Attempt {
		return fmt.Errorf("bottest: save run %s attempt %d: %w", r.ID, r.Attempt, bot.ErrStaleAttempt)
	}
	cur.Status, cur.UpdatedAt, cur.FinishedAt = r.Status, stamp(time.Now()), stamp(r.FinishedAt)
	cur.DifyRunID, cur.DifyTaskID, cur.ConversationID, cur.Reply = r.DifyRunID, r.DifyTaskID, r.ConversationID, r.Reply
	cur.Code, cur.Diagnosis, cur.HeldNotified = r.Code, r.Diagnosis, r.HeldNotified
	cur.DifyMessageID, cur.App = r.DifyMessageID, r.App
	cur.PostedAttempt, cur.RepliedAttempt = r.PostedAttempt, r.RepliedAttempt
	if len(r.State) > 0 { // Merged, as the real store does: a key another party set stays.
		state := maps.Clone(cur.State)
		if state == nil {
			state = map[string]string{}
		}
		maps.Copy(state, r.State)
		cur.State = state
	}
	s.runs[r.ID] = cur
	return nil
}

// SetState sets keys of a run's adapter state.
func (s *Store) SetState(_ context.Context, runID string, attempt int, kv map[string]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.runs[runID]
	switch {
	case !ok:
		return fmt.Errorf("bottest: set state of run %s: %w", runID, bot.ErrNotFound)
	case cur.Attempt != attempt:
		return fmt.Errorf("bottest: set state of run %s attempt %d: %w", runID, attempt, bot.ErrStaleAttempt)
	}
	state := maps.Clone(cur.State)
	if state == nil {
		state = map[string]string{}
	}
	maps.Copy(state, kv)
	cur.State = state
	s.runs[runID] = cur
	return nil
}

// ClaimFeedback reports whether the caller is the first to take on the attempt's first feedback.
func (s *Store) ClaimFeedback(_ context.Context, runID string, attempt int) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.feedback == nil {
		s.feedback = map[string]int{}
	}
	if _, ok := s.runs[runID]; !ok || s.feedback[runID] >= attempt {
		return false, nil
	}
	s.feedback[runID] = attempt
	return true, nil
}

// Requeue queues a finished run again as a fresh attempt. The message, the conversation, the adapter state
// and the posted and replied attempts stay; the outcome is cleared. A run no longer at attempt (unless it is 0)
// returns an error wrapping bot.ErrStaleAttempt, one that is not finished bot.ErrNotFinished.
func (s *Store) Requeue(_ context.Context, id string, attempt int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.runs[id]
	if !ok {
		return fmt.Errorf("bottest: requeue %s: %w", id, bot.ErrNotFound)
	}
	if attempt != 0 && r.Attempt != attempt {
		return fmt.Errorf("bottest: requeue %s: %w: attempt %d was retried, the run is at attempt %d", id, bot.ErrStaleAttempt, attempt, r.Attempt)
	}
	if r.Status != bot.RunSucceeded && r.Status != bot.RunFailed {
		return fmt.Errorf("bottest: requeue %s: %w: it is %s", id, bot.ErrNotFinished, r.Status)
	}
	r.Attempt++
	r.Status, r.UpdatedAt, r.FinishedAt = bot.RunQueued, stamp(time.Now()), time.Time{}
	r.DifyRunID, r.DifyTaskID, r.DifyMessageID, r.Reply, r.Code, r.Diagnosis, r.HeldNotified = "", "", "", "", "", nil, false
	s.runs[id] = r
	s.queued = append(s.queued, id)
	return nil
}

// AddStep stores one step record of a stored run.
func (s *Store) AddStep(_ context.Context, st bot.Step) error {
	fields, err := roundTrip(st.Fields) // The store keeps fields as JSON.
	if err != nil {
		return fmt.Errorf("bottest: add step: %w", err)
	}
	if len(fields) == 0 {
		fields = nil
	}
	st.Fields, st.Start = fields, stamp(st.Start)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.runs[st.RunID]; !ok {
		return fmt.Errorf("bottest: add step for run %s: %w", st.RunID, bot.ErrNotFound)
	}
	s.steps[st.RunID] = append(s.steps[st.RunID], st)
	return nil
}

// AddNodeEvents stores workflow node events of stored runs.
func (s *Store) AddNodeEvents(_ context.Context, events ...bot.NodeEvent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range events {
		if _, ok := s.runs[e.RunID]; !ok {
			return fmt.Errorf("bottest: add node event for run %s: %w", e.RunID, bot.ErrNotFound)
		}
	}
	for _, e := range events {
		e.At = stamp(e.At)
		s.nodes[e.RunID] = append(s.nodes[e.RunID], e)
	}
	return nil
}

// Conversation returns the Dify conversation id for key, or "" when there is none yet.
func (s *Store) Conversation(_ context.Context, key string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.convs[key], nil
}

// SetConversation stores the Dify conversation id for key.
func (s *Store) SetConversation(_ context.Context, key, conversationID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.convs[key] = conversationID
	return nil
}

// Steps returns a run's steps of every attempt in the order they were stored.
func (s *Store) Steps(runID string) []bot.Step {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]bot.Step, 0, len(s.steps[runID]))
	for _, st := range s.steps[runID] {
		st.Fields, _ = roundTrip(st.Fields) // Stored fields encoded once already.
		out = append(out, st)
	}
	return out
}

// NodeEvents returns a run's node events in the order they were stored.
func (s *Store) NodeEvents(runID string) []bot.NodeEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]bot.NodeEvent{}, s.nodes[runID]...)
}

// Queued returns the ids of the runs Enqueue and Requeue queued, in order; a requeued run appears once per
// attempt.
func (s *Store) Queued() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string{}, s.queued...)
}

// roundTrip copies v through JSON, as the database stores it: nothing of the caller's is shared afterwards.
func roundTrip[T any](v T) (T, error) {
	var out T
	b, err := json.Marshal(v)
	if err != nil {
		return out, err
	}
	err = json.Unmarshal(b, &out)
	return out, err
}

// stamp is a time as the store gives it back: in UTC, without a monotonic reading, the zero time kept zero.
func stamp(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.Unix(0, t.UnixNano()).UTC()
}
