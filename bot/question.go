package bot

import (
	"errors"
	"time"

	"github.com/difybot/difybot/dify"
)

// Question is a Dify Human Input form asked in the chat: the run that paused at it asks its inputs one by one,
// each answer is a message of its own, and the last (the action) submits the form. It is stored, so a restart
// asks nothing twice and submits nothing twice.
type Question struct {
	ID        string    `json:"id"`     // Dify's form id.
	RunID     string    `json:"run_id"` // Our run that paused at it.
	DifyRunID string    `json:"dify_run_id"`
	Place     string    `json:"place"`   // The conversation, without the person: where answers may come from.
	UserID    string    `json:"user_id"` // The requester.
	Message   Message   `json:"message"` // The message whose run paused, to answer in its conversation at expiry.
	Form      dify.Form `json:"form"`
	// Asked is the input being asked (an index into Form.Inputs); len(Form.Inputs) asks for the action.
	Asked     int               `json:"asked"`
	Answers   map[string]any    `json:"answers,omitempty"` // By input name: text, or dify.FileRef(s) for files.
	Action    string            `json:"action,omitempty"`
	Status    QuestionStatus    `json:"status"`
	By        []string          `json:"by,omitempty"`       // The runs whose messages answered, in order.
	Earlier   []string          `json:"earlier,omitempty"`  // Forms of the same Dify run answered before this one.
	Follower  string            `json:"follower,omitempty"` // The run that submits and follows the Dify run.
	Extra     map[string]string `json:"extra,omitempty"`
	Version   int               `json:"version"` // Counts saves; SaveQuestion refuses a stale one.
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
}

// QuestionStatus is where a Question is.
type QuestionStatus string

// The statuses of a Question.
const (
	QuestionAsking    QuestionStatus = "asking"    // Inputs or the action are being asked.
	QuestionSubmitted QuestionStatus = "submitted" // Every answer is in: its Follower submits and follows.
	QuestionExpired   QuestionStatus = "expired"   // Its time ran out: its Follower follows the run to its end.
)

// ErrQuestionMoved is returned by SaveQuestion when another message answered the question first.
var ErrQuestionMoved = errors.New("the question was answered meanwhile")

// Expired reports whether the question stopped taking answers at now.
func (q Question) Expired(now time.Time) bool {
	return !q.Form.Expires.IsZero() && !now.Before(q.Form.Expires)
}
