package bot

import (
	"context"
	"regexp"
	"strings"
	"time"

	"github.com/difybot/difybot/dify"
)

// Streamer is implemented by platforms that show the answer as Dify writes it (Slack's chat.appendStream, the web
// chat's events). While a run works the pipeline calls Stream with everything there is to show so far, at most
// every streamEvery unless streamChars more characters came; the final Reply follows as it does without
// streaming and ends the stream. Errors are logged and otherwise ignored: the final Reply shows the whole answer.
type Streamer interface {
	Stream(ctx context.Context, m Message, s Stream) error
}

// Stream is what a run shows while it works.
type Stream struct {
	RunID   string
	Attempt int
	State   RunState
	// Text is the answer so far, in the platform-neutral markdown Dify writes, with reasoning (<think> blocks, an
	// unclosed one too) held back. It usually grows by appending; a text_replace or message_replace rewrites it.
	Text  string
	Tasks []Task // The workflow's nodes, in the order they started.
}

// Task is one workflow node as a stream shows it.
type Task struct {
	ID     string // Dify's node id.
	Title  string
	Status TaskStatus
}

// TaskStatus is a node's state: running, then done or failed.
type TaskStatus string

const (
	TaskRunning TaskStatus = "in_progress"
	TaskDone    TaskStatus = "complete"
	TaskFailed  TaskStatus = "error"
)

// thinkAnyOpen finds an opening <think> tag, closed later or not.
var thinkAnyOpen = regexp.MustCompile(`(?i)<think(?:[\s>]|$)`)

// How often a stream is shown: at most two Slack calls a second per answer, and a message that grows every half
// second reads as writing.
const (
	streamEvery = 500 * time.Millisecond
	streamChars = 256
)

// streamFeed gathers a run's text and nodes from Dify's events, which come one at a time from the stream's reader,
// and shows them through send, batched: the first text at once, later changes once streamEvery passed or
// streamChars more characters came. What is still held when the run ends is in its final Reply.
type streamFeed struct {
	send func(Stream)
	now  func() time.Time

	raw   string // The text as Dify wrote it, reasoning included.
	agent bool   // An agent_message arrived: a later message event carries the whole answer.
	tasks []Task
	shown string // The text last sent.
	last  time.Time
}

// observe takes one Dify event.
func (f *streamFeed) observe(ev dify.Event) {
	switch ev.Event {
	case "text_chunk":
		f.raw += ev.Data.Text
	case "text_replace":
		f.raw = ev.Data.Text
	case "agent_message":
		f.agent = true
		f.raw += ev.Answer
	case "message":
		if f.agent {
			f.raw = ev.Answer
		} else {
			f.raw += ev.Answer
		}
	case "message_replace":
		f.raw = ev.Answer
	case "node_started":
		f.tasks = append(f.tasks, Task{ID: ev.Data.NodeID, Title: ev.Data.Title, Status: TaskRunning})
	case "node_finished":
		status := TaskDone
		if ev.Data.Status != "succeeded" && ev.Data.Status != "" {
			status = TaskFailed
		}
		for i := len(f.tasks) - 1; i >= 0; i-- {
			if f.tasks[i].ID == ev.Data.NodeID {
				f.tasks[i].Status = status
				break
			}
		}
	default:
		return
	}
	text := visibleText(f.raw)
	now := f.now()
	if f.shown == "" && text != "" || len(text)-len(f.shown) >= streamChars || now.Sub(f.last) >= streamEvery {
		f.shown, f.last = text, now
		f.send(Stream{Text: text, Tasks: append([]Task(nil), f.tasks...)})
	}
}

// visibleText is what may be shown of text still being written: reasoning blocks removed, and an unclosed
// <think> (or what may be the start of one) held back with all that follows it.
func visibleText(s string) string {
	if strings.Contains(strings.ToLower(s), "<think") || strings.Contains(s, "</think") {
		s = thinkBlock.ReplaceAllString(s, "")
		if loc := thinkAnyOpen.FindStringIndex(s); loc != nil {
			s = s[:loc[0]]
		}
		if loc := thinkClose.FindStringIndex(s); loc != nil {
			s = s[loc[1]:] // A template that opens the block itself: what precedes the closing tag is reasoning.
		}
	}
	if i := strings.LastIndexByte(s, '<'); i >= 0 && i >= len(s)-len("<think") && strings.HasPrefix("<think", strings.ToLower(s[i:])) {
		s = s[:i] // Perhaps a tag on its way.
	}
	return strings.TrimLeft(s, " \t\r\n")
}
