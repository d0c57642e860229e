package slack

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"

	"github.com/difybot/difybot/bot"
)

// EventsHandler serves POST /slack/events: verify, convert, Accept, then answer. It answers 200 only after
// Accept returned nil, and 500 when it failed, so that Slack delivers the event again.
func (a *Adapter) EventsHandler() http.Handler { return http.HandlerFunc(a.serveEvents) }

func (a *Adapter) serveEvents(w http.ResponseWriter, r *http.Request) {
	body, ok := a.readSigned(w, r)
	if !ok {
		return
	}
	ev, err := slackevents.ParseEvent(json.RawMessage(body), slackevents.OptionNoVerifyToken())
	if err != nil {
		if !json.Valid(body) {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		// An inner event type slack-go does not know, or one it cannot read: retrying would not change that.
		a.log.Warn().Str("event_type", ev.Type).Err(err).Msg("slack event ignored: unreadable")
		w.WriteHeader(http.StatusOK)
		return
	}
	switch ev.Type {
	case slackevents.URLVerification:
		ch, _ := ev.Data.(*slackevents.EventsAPIURLVerificationEvent)
		if ch == nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, ch.Challenge)
	case slackevents.CallbackEvent:
		outer, _ := ev.Data.(*slackevents.EventsAPICallbackEvent)
		if outer == nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		redelivery := r.Header.Get("X-Slack-Retry-Num") != ""
		if redelivery {
			a.log.Info().Str("event_id", outer.EventID).Str("retry_num", r.Header.Get("X-Slack-Retry-Num")).
				Str("retry_reason", r.Header.Get("X-Slack-Retry-Reason")).Msg("slack redelivered an event")
		}
		if err := a.handleCallback(r.Context(), outer, ev.InnerEvent.Data, redelivery); err != nil {
			http.Error(w, "try again", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	case slackevents.AppRateLimited:
		a.log.Warn().Msg("slack is rate limiting this app's events (app_rate_limited): some events were not delivered")
		w.WriteHeader(http.StatusOK)
	default:
		w.WriteHeader(http.StatusOK)
	}
}

// readSigned reads the body once, capped, and verifies Slack's v0 signature on it. When it returns false it has
// answered: 405, 413, 400 or 401. The 401 says nothing about what was wrong.
func (a *Adapter) readSigned(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			a.log.Warn().Int64("limit", tooBig.Limit).Msg("slack request refused: body over the size cap")
			http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
		} else {
			http.Error(w, "bad request", http.StatusBadRequest)
		}
		return nil, false
	}
	if !a.verify(r.Header, body) {
		a.log.Warn().Str("remote", r.RemoteAddr).Msg("slack request refused: missing, stale or wrong signature")
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return nil, false
	}
	return body, true
}

// verify checks X-Slack-Signature over the raw body and refuses timestamps more than 5 minutes away.
func (a *Adapter) verify(h http.Header, body []byte) bool {
	if a.cfg.SigningSecret == "" {
		return false // Socket Mode only: nothing may come in over HTTP.
	}
	sv, err := slack.NewSecretsVerifier(h, a.cfg.SigningSecret)
	if err != nil {
		return false
	}
	if _, err := sv.Write(body); err != nil {
		return false
	}
	return sv.Ensure() == nil
}

// handleCallback converts one event_callback and accepts it when it is for the bot. A nil error means the
// delivery may be acknowledged: accepted, a duplicate, or deliberately ignored.
func (a *Adapter) handleCallback(ctx context.Context, outer *slackevents.EventsAPICallbackEvent, inner any, redelivery bool) error {
	log := a.log.With().Str("event_id", outer.EventID).Logger()
	if a.assistantEvent(ctx, inner) {
		return nil
	}
	me, err := a.botUser(ctx)
	if err != nil {
		log.Error().Err(err).Msg("slack event not accepted: the bot's own user id is unknown")
		return err
	}
	m, why := a.toMessage(ctx, me, inner)
	if why != "" {
		log.Debug().Str("reason", why).Msg("slack event ignored")
		return nil
	}
	m.EventID, m.Redelivery, m.ReceivedAt = outer.EventID, redelivery, a.now()
	run, dup, err := a.inbox.Accept(ctx, m)
	if err != nil {
		log.Error().Err(err).Msg("slack event not accepted; Slack will deliver it again")
		return err
	}
	log.Debug().Str("run_id", run.ID).Bool("duplicate", dup).Msg("slack event accepted")
	if _, mention := inner.(*slackevents.AppMentionEvent); mention {
		a.joinThread(ctx, m.ChatID, m.ThreadID) // The bot is about to answer there; the thread's replies are for it too.
	}
	return nil
}

// toMessage applies the trigger rules. It returns the message (without EventID, Redelivery and ReceivedAt), or
// why the event is not for the bot.
func (a *Adapter) toMessage(ctx context.Context, me string, inner any) (bot.Message, string) {
	switch ev := inner.(type) {
	case *slackevents.AppMentionEvent:
		switch {
		case ev.BotID != "":
			return bot.Message{}, "a bot mentioned the bot"
		case ev.User == "" || ev.User == me:
			return bot.Message{}, "the bot's own message"
		case ev.Edited != nil:
			return bot.Message{}, "an edit"
		case strings.HasPrefix(ev.Channel, "D"):
			return bot.Message{}, "a mention in a DM (the message event runs it)"
		}
		return a.message(me, ev.Channel, ev.User, ev.TimeStamp, ev.ThreadTimeStamp, ev.Text, ev.Files), ""
	case *slackevents.MessageEvent:
		msg := ev.Message
		if msg == nil {
			msg = &slack.Msg{}
		}
		switch {
		case ev.SubType != "" && ev.SubType != slack.MsgSubTypeFileShare && ev.SubType != "thread_broadcast":
			return bot.Message{}, "subtype " + ev.SubType
		case ev.BotID != "" || msg.BotID != "":
			return bot.Message{}, "a bot's message"
		case ev.User == "" || ev.User == me:
			return bot.Message{}, "the bot's own message"
		}
		if !ev.IsIM() {
			// In channels a mention arrives twice, as message and app_mention: only app_mention runs.
			if mentions(ev.Text, me) {
				return bot.Message{}, "a mention (the app_mention event runs it)"
			}
			inThread := ev.ThreadTimeStamp != "" && ev.ThreadTimeStamp != ev.TimeStamp
			if !inThread {
				return bot.Message{}, "a channel message without a mention"
			}
			if msg.ParentUserId != me && !a.inThread(ctx, ev.Channel, ev.ThreadTimeStamp) {
				return bot.Message{}, "a reply in a thread the bot is not in"
			}
		}
		m := a.message(me, ev.Channel, ev.User, ev.TimeStamp, ev.ThreadTimeStamp, ev.Text, msg.Files)
		a.markAssistant(ctx, &m)
		return m, ""
	}
	return bot.Message{}, "not a message"
}

// message builds the bot.Message; replies always go to the thread of the message, starting one if needed.
func (a *Adapter) message(me, channel, user, ts, threadTS, text string, files []slack.File) bot.Message {
	thread := threadTS
	if thread == "" {
		thread = ts
	}
	m := bot.Message{
		Platform: platformName,
		ChatID:   channel,
		ThreadID: thread,
		UserID:   user,
		Text:     plainText(text, me),
		Extra:    map[string]string{"ts": ts},
	}
	if isDM(channel) {
		m.Conversation = channel // A photo and then its question are two top-level messages, two threads.
	}
	for _, f := range files {
		if f.Mode == "tombstone" {
			continue // Deleted before we saw it.
		}
		bf := bot.File{ID: f.ID, Name: f.Name, MIMEType: f.Mimetype, Size: int64(f.Size), URL: f.URLPrivateDownload}
		if f.FileAccess == "check_file_info" {
			bf.URL = "" // A partial object: OpenFile asks files.info.
		}
		m.Files = append(m.Files, bf)
	}
	return m
}

func mentions(text, me string) bool {
	return me != "" && (strings.Contains(text, "<@"+me+">") || strings.Contains(text, "<@"+me+"|"))
}

// slackToken matches Slack's markup in message text: <@U…>, <#C…|name>, <!here>, <https://…|label>.
var slackToken = regexp.MustCompile(`<([^<>]*)>`)

// plainText turns a Slack message text into what the person typed: the bot's mention removed, links and
// mentions readable, and &amp; &lt; &gt; decoded.
func plainText(text, me string) string {
	out := slackToken.ReplaceAllStringFunc(text, func(tok string) string {
		body := tok[1 : len(tok)-1]
		target, label, _ := strings.Cut(body, "|")
		switch {
		case target == "@"+me:
			return "\x00" // Removed below with the space around it.
		case strings.HasPrefix(target, "@"):
			if label != "" {
				return "@" + label
			}
			return target
		case strings.HasPrefix(target, "#"):
			if label != "" {
				return "#" + label
			}
			return target
		case strings.HasPrefix(target, "!"):
			if label != "" {
				return label
			}
			name, _, _ := strings.Cut(target[1:], "^")
			return "@" + name
		case label == "" || label == target:
			return target
		case strings.HasPrefix(target, "mailto:") || strings.HasSuffix(target, "://"+label) || strings.HasSuffix(target, "://"+label+"/"):
			return label
		}
		return label + " (" + target + ")"
	})
	out = strings.NewReplacer(" \x00 ", " ", " \x00", "", "\x00 ", "", "\x00", "").Replace(out)
	out = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(out)
	return strings.TrimSpace(out)
}
