package slack

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/slack-go/slack"

	"github.com/difybot/difybot/bot"
)

// Keys in bot.RunState. The first message of a run's reply is stateTS (the placeholder, then the answer's
// first part); further parts are stateTS_2, stateTS_3, …
const stateTS = "slack_ts"

// Limits of one reply.
const (
	maxChars       = 3900 // Per message; Slack asks for at most 4,000 in text.
	maxParts       = 10   // Slack truncates a thread reply beyond 40,000 characters anyway.
	maxSectionText = 3000 // Per section block.
)

// RetryActionID is the action_id of the Retry button on a failure reply.
const RetryActionID = "difybot_retry"

// ChoiceActionID starts the action_id of a choice button; its value is the text the person sends by tapping it.
const ChoiceActionID = "difybot_choice"

// Slack's limits for a button: its label and its value.
const (
	maxButtonLabel = 75
	maxButtonValue = 2000
)

func tsKey(part int) string {
	if part == 0 {
		return stateTS
	}
	return stateTS + "_" + strconv.Itoa(part+1)
}

// Progress shows that a run is working. "start" posts the placeholder in the thread (or reuses the one a
// previous attempt posted); "run" edits it with the node now running, at most once per ProgressEvery per run.
// Edits that would come sooner are dropped, not queued. When Slack rate-limits, the edit is skipped.
func (a *Adapter) Progress(ctx context.Context, m bot.Message, p bot.Progress) error {
	var err error
	switch p.Step {
	case "start":
		err = a.placeholder(ctx, m, p)
	case bot.StepRun:
		ts := p.State.Get(stateTS)
		if ts == "" || p.Node == "" {
			return nil
		}
		text := fmt.Sprintf(a.text.running, escapeEmphasis(p.Node))
		if p.Done > 0 {
			text += fmt.Sprintf(a.text.done, p.Done)
		}
		if !a.progressDue(p.RunID, text) {
			return nil
		}
		a.assistantWorking(ctx, m, p.RunID, p.Node)
		if streaming(p.State, p.Attempt) {
			return nil // The stream's task chunks show the node.
		}
		err = a.update(ctx, m.ChatID, ts, text, nil)
	default:
		return nil
	}
	var rl *slack.RateLimitedError
	if errors.As(err, &rl) {
		a.log.Debug().Str("run_id", p.RunID).Dur("retry_after", rl.RetryAfter).Msg("slack progress skipped: rate limited")
		return nil
	}
	if err != nil {
		return fmt.Errorf("slack progress: %w", err)
	}
	return nil
}

// placeholder starts the attempt's stream, or posts "working on it" once per run, and stores its ts; a retried
// run resets the same message, or, streaming, starts a new stream in place of the old message.
func (a *Adapter) placeholder(ctx context.Context, m bot.Message, p bot.Progress) error {
	defer a.joinThread(ctx, m.ChatID, m.ThreadID) // After the post: the person waits for it, not for this write.
	a.markProgress(p.RunID, a.text.working)
	a.assistantWorking(ctx, m, p.RunID, "")
	if streaming(p.State, p.Attempt) {
		return nil // Started before a crash: the resumed attempt goes on with it.
	}
	if a.streamable() {
		old := p.State.Get(stateTS)
		started, err := a.startStream(ctx, m, p)
		if err != nil || started {
			if started && old != "" && old != p.State.Get(stateTS) {
				// A Retry: the failed attempt's message ("Retrying…") gives way to the new attempt's.
				if _, _, err := a.api.DeleteMessageContext(ctx, m.ChatID, old); err != nil && !isGone(err) {
					a.log.Warn().Str("run_id", p.RunID).Err(err).Msg("could not delete the retried attempt's message")
				}
			}
			return err
		}
	}
	if ts := p.State.Get(stateTS); ts != "" {
		err := a.update(ctx, m.ChatID, ts, a.text.working, nil)
		if !isGone(err) {
			return err
		}
	}
	ts, err := a.post(ctx, m, a.text.working, nil)
	if err != nil {
		return err
	}
	return p.State.Set(ctx, stateTS, ts)
}

// shown is the last progress edit of a run.
type shown struct {
	at   time.Time
	text string
}

// progressDue reports whether a run's message may show text now, and if so counts this edit. It refuses
// within ProgressEvery of the last edit, and refuses to repeat what the message already shows (the pipeline
// reports the same node again on Dify's keep-alive pings).
func (a *Adapter) progressDue(runID, text string) bool {
	a.progMu.Lock()
	defer a.progMu.Unlock()
	now := a.now()
	if last, ok := a.progress[runID]; ok && (now.Sub(last.at) < a.cfg.ProgressEvery || last.text == text) {
		return false
	}
	a.setProgressLocked(runID, shown{at: now, text: text})
	return true
}

func (a *Adapter) markProgress(runID, text string) {
	a.progMu.Lock()
	defer a.progMu.Unlock()
	a.setProgressLocked(runID, shown{at: a.now(), text: text})
}

// setProgressLocked records an edit. Entries older than ProgressEvery hold nothing back but a repeat, so
// they are pruned when the map grows: its size stays near the number of runs in flight.
func (a *Adapter) setProgressLocked(runID string, s shown) {
	if len(a.progress) >= 1024 {
		for id, old := range a.progress {
			if s.at.Sub(old.at) >= a.cfg.ProgressEvery {
				delete(a.progress, id)
			}
		}
	}
	a.progress[runID] = s
}

func (a *Adapter) forgetProgress(runID string) {
	a.progMu.Lock()
	defer a.progMu.Unlock()
	delete(a.progress, runID)
}

// Reply shows r in m's thread. The first part replaces the placeholder, further parts follow it, and every
// part's ts is stored, so calling Reply again with the same State edits the same messages. The answer's files
// are then uploaded into the thread, each once (sendFiles). A failure gets a
// Retry button. A rate-limited call returns its *slack.RateLimitedError, for the queue to try again later.
func (a *Adapter) Reply(ctx context.Context, m bot.Message, r bot.Reply) error {
	if r.Final {
		defer a.forgetProgress(r.RunID)
		defer a.streams.forget(r.RunID, r.Attempt)
	}
	a.joinThread(ctx, m.ChatID, m.ThreadID)
	parts := splitMrkdwn(toMrkdwn(r.Text), maxChars)
	if len(parts) == 0 {
		parts = []string{"…"}
	}
	if len(parts) > maxParts {
		parts = append(parts[:maxParts-1], a.text.truncated)
	}
	streamed := false
	if streaming(r.State, r.Attempt) {
		var err error
		if streamed, err = a.stopStream(ctx, m, r, len(parts)); err != nil {
			return fmt.Errorf("slack reply: %w", err)
		}
	}
	for i, part := range parts {
		if streamed {
			break // The stream showed the answer.
		}
		var blocks []slack.Block
		switch {
		case i == 0 && r.Final && r.Diagnosis != nil:
			blocks = a.retryBlocks(part, r.RunID, r.Attempt) // On the first part: the message the requeued run will edit.
		case i == len(parts)-1 && r.Final && len(r.Choices) > 0:
			blocks = choiceBlocks(part, r.Choices)
		}
		if err := a.put(ctx, m, r.State, tsKey(i), part, blocks); err != nil {
			return fmt.Errorf("slack reply part %d of %d: %w", i+1, len(parts), err)
		}
	}
	// A previous, longer answer left parts behind: remove them, so the thread shows one answer.
	for i := len(parts); i < len(parts)+maxParts; i++ {
		ts := r.State.Get(tsKey(i))
		if ts == "" {
			break
		}
		if _, _, err := a.api.DeleteMessageContext(ctx, m.ChatID, ts); err != nil && !isGone(err) {
			a.log.Warn().Str("run_id", r.RunID).Err(err).Msg("could not delete a part of an earlier answer")
			continue
		}
		if err := r.State.Set(ctx, tsKey(i), ""); err != nil {
			return fmt.Errorf("slack reply: %w", err)
		}
	}
	if r.Final && len(r.Files) > 0 {
		return a.sendFiles(ctx, m, r) // Under the text, in the thread.
	}
	return nil
}

// put edits the message stored under key, or posts it in the thread and stores its ts.
func (a *Adapter) put(ctx context.Context, m bot.Message, st bot.RunState, key, text string, blocks []slack.Block) error {
	if ts := st.Get(key); ts != "" {
		err := a.update(ctx, m.ChatID, ts, text, blocks)
		if !isGone(err) {
			return err
		}
		// Someone deleted it: post it again.
	}
	ts, err := a.post(ctx, m, text, blocks)
	if err != nil {
		return err
	}
	return st.Set(ctx, key, ts)
}

func (a *Adapter) post(ctx context.Context, m bot.Message, text string, blocks []slack.Block) (string, error) {
	opts := []slack.MsgOption{slack.MsgOptionText(text, false), slack.MsgOptionTS(m.ThreadID)}
	if len(blocks) > 0 {
		opts = append(opts, slack.MsgOptionBlocks(blocks...))
	}
	_, ts, err := a.api.PostMessageContext(ctx, m.ChatID, opts...)
	if err != nil {
		return "", fmt.Errorf("chat.postMessage: %w", err)
	}
	return ts, nil
}

// update replaces a message's text and blocks; no blocks removes the old ones (a Retry button, say).
func (a *Adapter) update(ctx context.Context, channel, ts, text string, blocks []slack.Block) error {
	_, _, _, err := a.api.UpdateMessageContext(ctx, channel, ts, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
	if err != nil {
		return fmt.Errorf("chat.update: %w", err)
	}
	return nil
}

// slackCode is Slack's error code in err ("missing_scope"), or "" when err is not Slack's answer.
func slackCode(err error) string {
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		return se.Err
	}
	return ""
}

func isRateLimited(err error) bool {
	var rl *slack.RateLimitedError
	return errors.As(err, &rl)
}

// isGone reports Slack's answers for a message that no longer exists (or can no longer be edited by us).
func isGone(err error) bool {
	switch slackCode(err) {
	case "message_not_found", "cant_update_message", "cant_delete_message":
		return true
	}
	return false
}

// choiceBlocks shows text with a button for each choice.
func choiceBlocks(text string, choices []string) []slack.Block {
	var buttons []slack.BlockElement
	for i, c := range choices {
		label := slack.NewTextBlockObject(slack.PlainTextType, clip(c, maxButtonLabel), false, false)
		buttons = append(buttons, slack.NewButtonBlockElement(fmt.Sprintf("%s_%d", ChoiceActionID, i), clip(c, maxButtonValue), label))
	}
	return []slack.Block{
		slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, clip(text, maxSectionText), false, false), nil, nil),
		slack.NewActionBlock(ChoiceActionID, buttons...),
	}
}

// retryBlocks shows text with a Retry button whose value is the run id and the attempt that failed.
func (a *Adapter) retryBlocks(text, runID string, attempt int) []slack.Block {
	btn := slack.NewButtonBlockElement(RetryActionID, retryValue(runID, attempt), slack.NewTextBlockObject(slack.PlainTextType, a.text.retryLabel, true, false))
	return []slack.Block{
		slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, clip(text, maxSectionText), false, false), nil, nil),
		slack.NewActionBlock(RetryActionID, btn),
	}
}
