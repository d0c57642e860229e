package bot

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// RunStatus is where a run is in its life.
type RunStatus string

// The statuses a run passes through.
const (
	RunQueued  RunStatus = "queued"
	RunRunning RunStatus = "running"
	RunHeld    RunStatus = "held" // Waiting for the breaker to close.
	// RunWaiting is a run whose Dify run waits at a Human Input node: it asked its Question, and the answers
	// (or the question's expiry) go on from there.
	RunWaiting   RunStatus = "waiting"
	RunSucceeded RunStatus = "succeeded"
	RunFailed    RunStatus = "failed"
)

// Run is one message's journey through the pipeline, as stored.
type Run struct {
	ID       string `json:"id"`
	Platform string `json:"platform"`
	EventID  string `json:"event_id"`
	// App is the Dify app the run uses, chosen when it is first processed and kept for every retry and resume;
	// "" for the one app of a bot without several.
	App        string    `json:"app,omitempty"`
	Status     RunStatus `json:"status"`
	Message    Message   `json:"message"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	Attempt    int       `json:"attempt"`
	DifyRunID  string    `json:"dify_run_id,omitempty"`
	DifyTaskID string    `json:"dify_task_id,omitempty"`
	// DifyMessageID is a chat app's message, as its stream announced it: a dropped stream or a crash reads the
	// answer back by it (a chatflow's run is read back by DifyRunID instead).
	DifyMessageID  string     `json:"dify_message_id,omitempty"`
	ConversationID string     `json:"conversation_id,omitempty"`
	Reply          string     `json:"reply,omitempty"`
	Code           Code       `json:"code,omitempty"`
	Diagnosis      *Diagnosis `json:"diagnosis,omitempty"`
	HeldNotified   bool       `json:"held_notified,omitempty"`
	// Choices are offered with the reply (Dify's suggested questions when a photo waits for its question).
	Choices []string `json:"choices,omitempty"`
	// Batch is the run's share of several photos sent together, when one run could not take them all.
	Batch *Batch `json:"batch,omitempty"`
	// feedbackElsewhere is set (never stored) when another party sends this attempt's first feedback, and
	// lane when that is this process's lane.
	feedbackElsewhere bool
	lane              *laneEntry
	// noOutputs is set (never stored) when this attempt's answer named no files: its reply looks for none.
	noOutputs bool
	// PostedAttempt is the last attempt that sent the run to Dify: that attempt must never send it again.
	PostedAttempt int `json:"posted_attempt,omitempty"`
	// RepliedAttempt is the last attempt whose final answer was delivered.
	RepliedAttempt int               `json:"replied_attempt,omitempty"`
	State          map[string]string `json:"state,omitempty"` // Adapters' facts, such as Slack's placeholder ts.
}

// Step is one numbered pipeline step of a run, as logged and stored.
type Step struct {
	RunID    string         `json:"run_id"`
	Attempt  int            `json:"attempt"`
	N        int            `json:"n"`
	Of       int            `json:"of"`
	Name     string         `json:"step"`
	Status   string         `json:"status"` // "done", "failed", "skipped", "held".
	Start    time.Time      `json:"start"`
	Duration time.Duration  `json:"duration_ns"`
	Code     Code           `json:"code,omitempty"`
	Error    string         `json:"error,omitempty"`
	Fields   map[string]any `json:"fields,omitempty"` // Non-secret facts such as file_id or bytes.
}

// NodeEvent is one workflow node event from Dify's stream, stored under step 6.
type NodeEvent struct {
	RunID    string    `json:"run_id"`
	Seq      int       `json:"seq"`
	Event    string    `json:"event"` // node_started, node_finished.
	NodeID   string    `json:"node_id"`
	NodeType string    `json:"node_type"`
	Title    string    `json:"title"`
	Index    int       `json:"index"`
	Status   string    `json:"status,omitempty"`
	Elapsed  float64   `json:"elapsed_s,omitempty"`
	Error    string    `json:"error,omitempty"`
	At       time.Time `json:"at"`
}

// BreakerSetting is an operator's breaker override, the source of truth for every replica.
type BreakerSetting struct {
	Mode   string    `json:"mode"`           // auto, open, closed.
	Host   string    `json:"host,omitempty"` // The Dify host it is for; "" for all.
	Reason string    `json:"reason"`
	Actor  string    `json:"actor"`
	At     time.Time `json:"at"`
}

// RunFilter selects runs for the admin list. Zero fields do not filter.
type RunFilter struct {
	Status   RunStatus
	Platform string
	App      string
	Code     Code
	Before   time.Time // Cursor: only runs created strictly before this.
	Limit    int       // Default 50, at most 500.
}

// Errors a Store returns.
var (
	// ErrNotFound is returned for an unknown id.
	ErrNotFound = errors.New("not found")
	// ErrNotFinished is returned by Requeue for a run still queued, running or held: a second job would run it
	// twice at once.
	ErrNotFinished = errors.New("run is not finished")
	// ErrStaleAttempt is returned by SaveRun for an attempt that a Retry has replaced, so the old attempt cannot
	// overwrite the new one's status, and by Requeue for a Retry of an attempt that was retried already (a second
	// press of the same button, or a replayed one), so it cannot run the workflow again.
	ErrStaleAttempt = errors.New("run was retried; this attempt is stale")
)

// Store is what the pipeline and the Inbox keep: runs, their steps and node events, and chat conversations.
// bot/store implements it on SQLite and PostgreSQL, bot/bottest in memory for tests. The admin API's reads and
// the breaker override are bot/admin's Store.
type Store interface {
	// Enqueue stores m as a new run and queues it, in one transaction, unless a run with the same platform and
	// event id exists: then it returns that run and dup = true. After it returns nil, the message is safe to ack.
	Enqueue(ctx context.Context, m Message) (r Run, dup bool, err error)
	// EnqueueLaned is Enqueue for a message whose first feedback the fast lane sends: the new run's first
	// attempt's feedback is claimed (ClaimFeedback) in the same write.
	EnqueueLaned(ctx context.Context, m Message) (r Run, dup bool, err error)
	// Run returns a run by id, or ErrNotFound.
	Run(ctx context.Context, id string) (Run, error)
	// SaveRun writes the run's mutable fields, if r.Attempt is still the run's attempt (else ErrStaleAttempt).
	SaveRun(ctx context.Context, r Run) error
	// Requeue queues a finished run again (the Retry button): same message, fresh attempt. It does so only while
	// the run is still at attempt (else ErrStaleAttempt, changing nothing); attempt 0 requeues whatever attempt
	// the run is at.
	Requeue(ctx context.Context, id string, attempt int) error
	AddStep(ctx context.Context, s Step) error
	// AddNodeEvents stores workflow node events (a run's recent ones together, in one write).
	AddNodeEvents(ctx context.Context, events ...NodeEvent) error
	// Conversation returns the Dify conversation id for key, or "" when there is none yet.
	Conversation(ctx context.Context, key string) (string, error)
	SetConversation(ctx context.Context, key, conversationID string) error
	// AddPending keeps p waiting for the rest of its request; adding the same run again changes nothing.
	AddPending(ctx context.Context, p Pending) error
	// Waiting returns key's pending messages still waiting at now, oldest first.
	Waiting(ctx context.Context, key string, now time.Time) ([]Pending, error)
	// TakePending gives the waiting messages of runIDs to the run taker and returns every message taker holds,
	// oldest first; one taken by another run first is left out.
	TakePending(ctx context.Context, taker string, runIDs []string) ([]Pending, error)
	// PendingOf returns in one read what TakePending with no ids, Pending and Waiting would (ViewPending).
	PendingOf(ctx context.Context, runID, key string, now time.Time) (PendingView, error)
	// Pending returns the pending record of run id, or ErrNotFound when it never waited.
	Pending(ctx context.Context, runID string) (Pending, error)
	// ExpirePending marks the messages whose wait ran out by now as expired and returns them.
	ExpirePending(ctx context.Context, now time.Time) ([]Pending, error)
	// SetState sets the keys of kv in the run's adapter state and nothing else, while the run is at attempt
	// (else ErrStaleAttempt). SaveRun merges the state's keys in; neither ever drops a key.
	SetState(ctx context.Context, runID string, attempt int, kv map[string]string) error
	// ClaimFeedback reports whether the caller is the first to take on the attempt's first feedback.
	ClaimFeedback(ctx context.Context, runID string, attempt int) (bool, error)
	OutputFileStore
	// AddQuestion stores a new question; adding the same id again changes nothing.
	AddQuestion(ctx context.Context, q Question) error
	// Question returns a question by its id, or ErrNotFound.
	Question(ctx context.Context, id string) (Question, error)
	// Asking returns the questions of place still asking, and those that stopped asking at or after since,
	// newest first: a second tap on a button that closed a question is recognised as one.
	Asking(ctx context.Context, place string, since time.Time) ([]Question, error)
	// SaveQuestion writes q as version q.Version+1 if the stored one is still q.Version (else ErrQuestionMoved),
	// so that of two answers to the same question one wins.
	SaveQuestion(ctx context.Context, q Question) error
	// DueQuestions returns the questions still asking whose form expired by now.
	DueQuestions(ctx context.Context, now time.Time) ([]Question, error)
}

// HoldError asks the queue to try the run again after a while instead of failing it (the breaker is open).
type HoldError struct {
	After  time.Duration
	Reason error
}

func (e *HoldError) Error() string { return fmt.Sprintf("held for %s: %v", e.After, e.Reason) }

func (e *HoldError) Unwrap() error { return e.Reason }
