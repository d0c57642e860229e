package slack

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/slack-go/slack"

	"github.com/difybot/difybot/bot"
)

// InteractionsHandler serves POST /slack/interactions. The Retry button queues its run again; every other
// interaction is acknowledged and ignored.
func (a *Adapter) InteractionsHandler() http.Handler { return http.HandlerFunc(a.serveInteractions) }

func (a *Adapter) serveInteractions(w http.ResponseWriter, r *http.Request) {
	body, ok := a.readSigned(w, r)
	if !ok {
		return
	}
	// The form is read from the verified bytes; r.Body is spent.
	form, err := url.ParseQuery(string(body))
	payload := form.Get("payload")
	if err != nil || payload == "" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	var ic slack.InteractionCallback
	if err := json.Unmarshal([]byte(payload), &ic); err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	a.interact(r.Context(), ic)
	w.WriteHeader(http.StatusOK)
}

// interact handles one interaction from either transport.
func (a *Adapter) interact(ctx context.Context, ic slack.InteractionCallback) {
	if ic.Type != slack.InteractionTypeBlockActions {
		return
	}
	for _, act := range ic.ActionCallback.BlockActions {
		switch {
		case act == nil || act.Value == "":
		case act.ActionID == RetryActionID:
			a.retry(ctx, ic, act.Value)
			return
		case strings.HasPrefix(act.ActionID, ChoiceActionID):
			a.choose(ctx, ic, act)
			return
		}
	}
}

// choose sends the tapped choice as the person's message, and shows it in place of the buttons so it is
// tapped once. A second tap of the same button (same action_ts) is the same event and is answered once.
func (a *Adapter) choose(ctx context.Context, ic slack.InteractionCallback, act *slack.BlockAction) {
	channel, ts, thread := clicked(ic)
	if thread == "" {
		thread = ts
	}
	m := bot.Message{Platform: platformName, EventID: "choice-" + channel + "-" + act.ActionTs, ChatID: channel,
		ThreadID: thread, UserID: ic.User.ID, Text: act.Value, ReceivedAt: a.now().UTC(), Extra: map[string]string{"ts": ts}}
	if isDM(channel) {
		m.Conversation = channel
	}
	log := a.log.With().Str("user_id", ic.User.ID).Logger()
	if _, _, err := a.inbox.Accept(ctx, m); err != nil {
		log.Warn().Err(err).Msg("choice from slack not accepted")
		return
	}
	if ts != "" {
		shown := ic.Message.Text + "\n> " + act.Value
		if err := a.update(ctx, channel, ts, shown, nil); err != nil {
			log.Warn().Err(err).Msg("could not show the choice")
		}
	}
}

// clicked says where the clicked message is: its channel, its ts, and the thread it is in ("" at top level).
func clicked(ic slack.InteractionCallback) (channel, ts, thread string) {
	channel, ts, thread = ic.Container.ChannelID, ic.Container.MessageTs, ic.Container.ThreadTs
	if channel == "" {
		channel = ic.Channel.ID
	}
	if ts == "" {
		ts = ic.Message.Timestamp
	}
	if thread == "" {
		thread = ic.Message.ThreadTimestamp
	}
	return channel, ts, thread
}

// isDM reports a direct-message channel id.
func isDM(channel string) bool { return strings.HasPrefix(channel, "D") }

// Direct reports a message in a DM with the bot, where the person may choose the app (bot.DirectChats).
func (a *Adapter) Direct(m bot.Message) bool { return isDM(m.ChatID) }

// retry queues the run again and shows it on the message that carried the button. The button names the attempt
// whose failure it shows, and the store requeues only that attempt: a second press, or the same request sent
// again (Slack retrying, or a replay within the signature's 5 minutes), changes nothing, not even the message.
// The message is edited once the run is known to be retryable and before it is queued: the run edits the same
// message, and an edit of ours landing after its answer would hide the answer. When the run cannot be queued,
// the button comes back and the person is told.
func (a *Adapter) retry(ctx context.Context, ic slack.InteractionCallback, value string) {
	runID, attempt := parseRetryValue(value)
	log := a.log.With().Str("run_id", runID).Int("attempt", attempt).Str("user_id", ic.User.ID).
		Str("action_ts", ic.ActionTs).Logger()
	channel, ts, thread := clicked(ic)
	canEdit := channel != "" && ts != ""
	edited := false
	err := a.inbox.Retry(ctx, bot.RetryRequest{RunID: runID, Attempt: attempt, Before: func(ctx context.Context) {
		if !canEdit {
			return
		}
		edited = true
		if err := a.update(ctx, channel, ts, a.text.retrying, nil); err != nil {
			log.Warn().Err(err).Msg("could not show that the run is retrying")
		}
	}})
	switch {
	case err == nil:
		log.Info().Msg("retry queued from slack")
		return
	case errors.Is(err, bot.ErrStaleAttempt):
		// Pressed before, or the same press delivered again: that attempt was retried once, and that is all.
		log.Info().Msg("retry from slack ignored: this attempt was retried already")
		return
	case errors.Is(err, bot.ErrNotFinished):
		// The run is still working on this attempt; its answer will replace the button.
		log.Info().Msg("retry from slack ignored: the run is in flight")
		return
	}
	log.Warn().Err(err).Msg("retry from slack not queued")
	if !canEdit {
		return
	}
	if errors.Is(err, bot.ErrNotFound) {
		if err := a.update(ctx, channel, ts, a.text.retryGone, nil); err != nil {
			log.Warn().Err(err).Msg("could not say the run is gone")
		}
		return
	}
	if edited {
		if err := a.update(ctx, channel, ts, ic.Message.Text, a.retryBlocks(ic.Message.Text, runID, attempt)); err != nil {
			log.Warn().Err(err).Msg("could not restore the Retry button")
		}
	}
	opts := []slack.MsgOption{slack.MsgOptionText(a.text.retryFailed, false)}
	if thread != "" {
		opts = append(opts, slack.MsgOptionTS(thread))
	}
	if _, err := a.api.PostEphemeralContext(ctx, channel, ic.User.ID, opts...); err != nil {
		log.Warn().Err(err).Msg("could not tell the person the retry failed")
	}
}

// retryValue is a Retry button's value: the run id and the attempt whose failure the button shows.
func retryValue(runID string, attempt int) string {
	if attempt <= 0 {
		return runID
	}
	return runID + ":" + strconv.Itoa(attempt)
}

// parseRetryValue reads a Retry button's value. A value without an attempt (a button shown before buttons
// carried one) has attempt 0, which retries whatever attempt the run is at.
func parseRetryValue(v string) (runID string, attempt int) {
	if i := strings.LastIndexByte(v, ':'); i > 0 {
		if n, err := strconv.Atoi(v[i+1:]); err == nil && n > 0 {
			return v[:i], n
		}
	}
	return v, 0
}
