package bot

import (
	"context"
	"time"
)

// Message is what a person sent, in platform-neutral form. Adapters produce it; the pipeline consumes it.
// It is stored with the run, so it holds references to files, never their bytes.
type Message struct {
	Platform string `json:"platform"` // "slack", "line", "web", "cli".
	EventID  string `json:"event_id"` // The platform's id for this delivery: the dedup key.
	ChatID   string `json:"chat_id"`  // Slack channel, LINE user/group/room id.
	ThreadID string `json:"thread_id,omitempty"`
	UserID   string `json:"user_id"`
	Text     string `json:"text,omitempty"`
	Files    []File `json:"files,omitempty"`
	// Conversation is where the message's conversation lives when that is not its chat and thread: a Slack DM is
	// one conversation although each top-level message there starts a thread of its own.
	Conversation string `json:"conversation,omitempty"`
	// ReplyToken is LINE's one-time reply token; ReceivedAt tells whether it is still fresh.
	ReplyToken string    `json:"reply_token,omitempty"`
	ReceivedAt time.Time `json:"received_at"`
	// Redelivery is set when the platform says it is sending the event again.
	Redelivery bool `json:"redelivery,omitempty"`
	// Set is set on one photo of several the person sent at once as separate messages (a LINE image set).
	Set *PhotoSet `json:"set,omitempty"`
	// PhotosBefore and PhotosTotal are set on a message that carries the rest of several photos sent together:
	// how many went before it, and how many there were.
	PhotosBefore int `json:"photos_before,omitempty"`
	PhotosTotal  int `json:"photos_total,omitempty"`
	// App is the app the platform asks for (the CLI's -app, the web chat's pick); "" lets the routes choose.
	App string `json:"app,omitempty"`
	// Question is set on a message the bot makes for itself when a Human Input question expires: the question
	// whose Dify run its run follows to the end.
	Question string `json:"question,omitempty"`
	// Extra holds adapter-specific facts the adapter needs again when replying (never secrets).
	Extra map[string]string `json:"extra,omitempty"`
}

// ConversationKey names the conversation a message belongs to and the person in it: one per thread (or chat
// without threads) and person. Dify scopes a conversation to the end user who started it, so two people in one
// group each have their own; a request spread over several messages is kept under the same key.
func (m Message) ConversationKey() string {
	k := m.Platform + ":" + m.ChatID
	switch {
	case m.Conversation != "":
		k = m.Platform + ":" + m.Conversation
	case m.ThreadID != "":
		k += ":" + m.ThreadID
	}
	return k + "/" + m.UserID
}

// PhotoSet places a photo in a set sent at once: Index counts from 1 to Total.
type PhotoSet struct {
	ID    string `json:"id"`
	Index int    `json:"index"`
	Total int    `json:"total"`
}

// File is an attachment the adapter can open later.
type File struct {
	ID       string `json:"id"`
	Name     string `json:"name,omitempty"`
	MIMEType string `json:"mime_type,omitempty"` // As the platform claims it; the pipeline sniffs the bytes.
	Size     int64  `json:"size,omitempty"`      // 0 when the platform does not say.
	URL      string `json:"url,omitempty"`
}

// Reply is the pipeline's answer to a message: the workflow's text or a diagnosis.
type Reply struct {
	Text      string     // Ready to show, in the platform-neutral markdown Dify produced.
	Diagnosis *Diagnosis // Set when the run failed; Text is then the person's explanation.
	// Choices are short answers the person may tap instead of typing (buttons, quick replies); the tap arrives as
	// an ordinary message with that text. Text must read well on platforms that do not show them.
	Choices []string
	RunID   string // The run this answers; also the reference id shown with a diagnosis.
	Attempt int    // Counts from 1; a Retry makes a new attempt whose answer must be shown again.
	// Final is false for an interim notice ("delayed", "maintenance"); the final answer follows later.
	Final bool
	// KeepFiles is set when a later run reads the message's files again: it waits for the rest of its request, or
	// the photos after this run's share are queued. An adapter that stores uploads must not delete them yet.
	KeepFiles bool
	// State keeps the adapter's facts about this run's reply, such as Slack's placeholder ts.
	State RunState
	// Files are the files of the workflow's answer, in its order, to send with Text. Sending them is part of the
	// same idempotent Reply: a repeated call must not send a file twice.
	Files []ReplyFile
}

// RunState is per-run storage for an adapter. What it sets survives a crash, so a retried delivery edits the
// message it posted before instead of posting a second one.
type RunState interface {
	Get(key string) string
	// Set stores the value with the run before returning.
	Set(ctx context.Context, key, value string) error
}

// Progress is an interim view of a run for adapters that can show it.
type Progress struct {
	RunID   string
	Attempt int
	State   RunState
	Step    string // The pipeline step: "start" when work begins, then "run" for each workflow node.
	Node    string // The workflow node now running, when known.
	Done    int    // Workflow nodes finished so far.
}
