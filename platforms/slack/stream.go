package slack

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/difybot/difybot/bot"
)

// Streaming (docs/slack.md). Where Slack lets the app stream, the first feedback of an attempt is chat.startStream
// instead of the placeholder: its ts is stored under stateTS as the placeholder's is, and stateStream names the
// attempt whose stream it is, so that a run resumed after a crash stops that same stream. The answer and the
// workflow's nodes (task chunks, a timeline) are appended as the pipeline streams them; the final Reply stops the
// stream with the rest of the answer, or, when the answer shown is not the final one (a diagnosis, formatted
// outputs, a rewritten text), stops it and edits the message as Reply always did. Where Slack refuses, the
// attempt falls back to the placeholder and chat.update without losing text or posting twice.

// Values of Config.Streaming (SLACK_STREAMING).
const (
	StreamingAuto = "auto" // Stream, and stop trying for a while once Slack says the app may not.
	StreamingOn   = "on"   // Stream; try every message however Slack answered the last.
	StreamingOff  = "off"  // Placeholder and chat.update.
)

// stateStream names the attempt whose stream the message under stateTS is, until the stream is stopped.
const stateStream = "slack_stream"

// maxTaskTitle bounds a task chunk's title (a node's title in Dify is short; Slack's limit is not documented).
const maxTaskTitle = 256

// refusedFor is how long StreamingAuto leaves streaming off after Slack refused it for the whole app.
const refusedFor = 10 * time.Minute

// live is what this process appended to one attempt's stream.
type live struct {
	sent     string     // The markdown appended so far.
	diverged bool       // The text shown is no longer a beginning of the answer: the final Reply edits.
	tasks    []bot.Task // As last appended.
}

// status is the state l last showed for node id, "" when none.
func (l *live) status(id string) bot.TaskStatus {
	for _, t := range l.tasks {
		if t.ID == id {
			return t.Status
		}
	}
	return ""
}

// streams holds the live streams of this process, by run and attempt.
type streams struct {
	mu      sync.Mutex
	live    map[string]*live
	refused time.Time // When Slack last refused streaming for the app (StreamingAuto).
	logged  map[string]bool
}

func liveKey(runID string, attempt int) string { return runID + "/" + strconv.Itoa(attempt) }

func (s *streams) get(runID string, attempt int) *live {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := liveKey(runID, attempt)
	l := s.live[k]
	if l == nil {
		l = &live{}
		s.live[k] = l
	}
	return l
}

func (s *streams) forget(runID string, attempt int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.live, liveKey(runID, attempt))
}

// once reports whether reason is new to this process: each fallback is logged once at info, then at debug.
func (s *streams) once(reason string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.logged[reason] {
		return false
	}
	s.logged[reason] = true
	return true
}

// streamable reports whether a message's answer is streamed: SLACK_STREAMING allows it, and, in auto, Slack did
// not refuse the app lately.
func (a *Adapter) streamable() bool {
	switch a.cfg.Streaming {
	case StreamingOff:
		return false
	case StreamingOn:
		return true
	}
	a.streams.mu.Lock()
	defer a.streams.mu.Unlock()
	return a.streams.refused.IsZero() || a.now().Sub(a.streams.refused) >= refusedFor
}

// streaming reports whether the message under stateTS is this attempt's open stream.
func streaming(st bot.RunState, attempt int) bool {
	return st.Get(stateTS) != "" && st.Get(stateStream) == strconv.Itoa(attempt)
}

// Why Slack refuses a stream. appRefusals hold for the app as installed (no use trying the next message);
// the others for one message.
var (
	appRefusals = []string{"not_allowed_token_type", "missing_scope", "feature_not_enabled", "not_enabled",
		"unknown_method", "method_deprecated", "team_not_allowed", "access_denied"}
	// goneStream is how appendStream and stopStream answer for a stream Slack no longer holds open (it closes
	// them after about five minutes) or never had.
	goneStream = []string{"message_not_in_streaming_state", "invalid_ts", "message_not_found", "streaming_state_conflict",
		"message_not_owned_by_app", "cant_update_message"}
)

// fallback logs, once per reason, that a message's answer is not streamed.
func (a *Adapter) fallback(runID, code, what string) {
	ev := a.log.Debug()
	if a.streams.once(code) {
		ev = a.log.Info()
	}
	ev.Str("run_id", runID).Str("slack_error", code).Msg("slack streaming " + what + "; this answer uses the placeholder and chat.update")
}

// startStream begins an attempt's message as a stream. It returns false when Slack refused (the caller posts
// the placeholder instead) and an error when the call itself failed.
func (a *Adapter) startStream(ctx context.Context, m bot.Message, p bot.Progress) (bool, error) {
	opts := []slack.MsgOption{slack.MsgOptionTS(m.ThreadID), slack.MsgOptionTaskDisplayMode(slack.TaskDisplayModeTimeline)}
	if !isDM(m.ChatID) {
		// Outside DMs Slack wants to know whom the stream is for.
		if team := a.team(ctx); team != "" {
			opts = append(opts, slack.MsgOptionRecipientTeamID(team))
		}
		opts = append(opts, slack.MsgOptionRecipientUserID(m.UserID))
	}
	_, ts, err := a.api.StartStreamContext(ctx, m.ChatID, opts...)
	if code := slackCode(err); code != "" && code != "ratelimited" {
		if a.cfg.Streaming == StreamingAuto && slices.Contains(appRefusals, code) {
			a.streams.mu.Lock()
			a.streams.refused = a.now()
			a.streams.mu.Unlock()
		}
		a.fallback(p.RunID, code, "refused")
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("chat.startStream: %w", err)
	}
	// The attempt first, then the ts: a crash between the two leaves a stream nobody stops, never an edit of one.
	if err := p.State.Set(ctx, stateStream, strconv.Itoa(p.Attempt)); err != nil {
		return true, err
	}
	return true, p.State.Set(ctx, stateTS, ts)
}

// Stream appends what the run wrote since the last call to its stream: the new text as a markdown chunk, and
// each node whose state changed as a task chunk. Without an open stream (Slack refused it, or it expired) it does
// nothing: the final Reply edits the message. A rate-limited append is skipped; the next one carries its text.
func (a *Adapter) Stream(ctx context.Context, m bot.Message, s bot.Stream) error {
	if !streaming(s.State, s.Attempt) {
		return nil
	}
	l := a.streams.get(s.RunID, s.Attempt)
	chunks, sent := a.chunks(l, s)
	if len(chunks) == 0 {
		return nil
	}
	_, _, err := a.api.AppendStreamContext(ctx, m.ChatID, s.State.Get(stateTS), slack.MsgOptionChunks(chunks...))
	code := slackCode(err)
	switch {
	case code == "ratelimited" || isRateLimited(err):
		return nil
	case slices.Contains(goneStream, code):
		a.fallback(s.RunID, code, "stopped mid-answer")
		return s.State.Set(ctx, stateStream, "") // The message stays; the final Reply edits it.
	case err != nil:
		return fmt.Errorf("chat.appendStream: %w", err)
	}
	a.streams.mu.Lock()
	l.sent, l.tasks = sent, s.Tasks
	a.streams.mu.Unlock()
	return nil
}

// chunks are what s adds to what l shows, and the text shown once they are appended.
func (a *Adapter) chunks(l *live, s bot.Stream) ([]slack.StreamChunk, string) {
	a.streams.mu.Lock()
	defer a.streams.mu.Unlock()
	var out []slack.StreamChunk
	for _, t := range s.Tasks {
		if l.status(t.ID) != t.Status {
			c := slack.NewTaskUpdateChunk(t.ID, clip(t.Title, maxTaskTitle))
			c.Status = slack.TaskCardStatus(t.Status)
			out = append(out, c)
		}
	}
	sent := l.sent
	switch {
	case l.diverged:
	case strings.HasPrefix(s.Text, l.sent):
		if delta := s.Text[len(l.sent):]; delta != "" {
			out = append(out, slack.NewMarkdownTextChunk(delta))
			sent = s.Text
		}
	default:
		l.diverged = true // Rewritten (text_replace): shown whole when the stream stops.
	}
	return out, sent
}

// stopStream ends an attempt's stream before its final state is shown. When the final text only adds to what
// was streamed (and fits one message with no buttons), the rest goes with the stop and done is true; otherwise
// the caller edits the message with the final text as Reply does without streaming.
func (a *Adapter) stopStream(ctx context.Context, m bot.Message, r bot.Reply, parts int) (done bool, err error) {
	l := a.streams.get(r.RunID, r.Attempt)
	defer a.streams.forget(r.RunID, r.Attempt)
	a.streams.mu.Lock()
	var chunks []slack.StreamChunk
	ended := slack.TaskCardStatusComplete // The run ended: a node still shown running did too, or failed with it.
	if r.Diagnosis != nil {
		ended = slack.TaskCardStatusError
	}
	for _, t := range l.tasks {
		if t.Status == bot.TaskRunning {
			c := slack.NewTaskUpdateChunk(t.ID, clip(t.Title, maxTaskTitle))
			c.Status = ended
			chunks = append(chunks, c)
		}
	}
	// The final text is trimmed; the stream may end in the blank line before a paragraph that never came.
	goesOn := strings.HasPrefix(r.Text, l.sent) || r.Text == strings.TrimRight(l.sent, " \t\r\n")
	whole := r.Final && r.Diagnosis == nil && len(r.Choices) == 0 && parts == 1 && !l.diverged &&
		(l.sent != "" || len(l.tasks) > 0) && goesOn
	if whole && len(r.Text) > len(l.sent) {
		chunks = append(chunks, slack.NewMarkdownTextChunk(r.Text[len(l.sent):]))
	}
	a.streams.mu.Unlock()
	var opts []slack.MsgOption
	if len(chunks) > 0 {
		opts = append(opts, slack.MsgOptionChunks(chunks...))
	}
	_, _, err = a.api.StopStreamContext(ctx, m.ChatID, r.State.Get(stateTS), opts...)
	code := slackCode(err)
	switch {
	case slices.Contains(goneStream, code):
		a.fallback(r.RunID, code, "ended before the answer")
		whole = false // What it shows is not known: edit it.
	case err != nil:
		return false, fmt.Errorf("chat.stopStream: %w", err)
	}
	if err := r.State.Set(ctx, stateStream, ""); err != nil {
		return false, fmt.Errorf("slack reply: %w", err)
	}
	return whole, nil
}

// streamingCheck is doctor's line about SLACK_STREAMING: which mode answers use, as far as the token's scopes
// tell (whether the workspace lets the app stream shows only when it tries: a refusal is logged once).
func (a *Adapter) streamingCheck(have []string) bot.Check {
	c := bot.Check{Name: "Slack streaming", OK: true}
	switch {
	case a.cfg.Streaming == StreamingOff:
		c.Warn, c.Detail = true, "off (SLACK_STREAMING=off): answers use the placeholder and chat.update"
		c.Fixes = []string{"set SLACK_STREAMING=auto to stream answers as Dify writes them"}
		return c
	case have != nil && !slices.Contains(have, "chat:write"):
		c.OK, c.Detail = a.cfg.Streaming != StreamingOn, "the token lacks chat:write: answers can neither stream nor be posted"
		c.Fixes = []string{"add chat:write under OAuth & Permissions → Bot Token Scopes, then reinstall the app"}
		return c
	}
	c.Detail = a.cfg.Streaming + ": answers stream with chat.startStream, and fall back to the placeholder and chat.update where Slack refuses"
	if have != nil && !slices.Contains(have, "assistant:write") {
		c.Warn = true
		c.Detail += "; assistant threads are off (no assistant:write)"
		c.Fixes = []string{"turn on Agents & AI Apps in the app's settings and add assistant:write (the README's manifest has both), then reinstall the app"}
	}
	return c
}
