package line

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/line/line-bot-sdk-go/v8/linebot/webhook"

	"github.com/difybot/difybot/bot"
)

// Keys of bot.Message.Extra. They hold what Reply and Progress need again; none is a secret.
const (
	extraSource        = "source"      // "user", "group" or "room".
	extraQuoteToken    = "quote_token" // Lets the answer quote the message it answers.
	extraMessageID     = "message_id"
	extraImageSetID    = "image_set_id"
	extraImageSetIndex = "image_set_index"
	extraImageSetTotal = "image_set_total"
)

// Source kinds, as LINE names them.
const (
	sourceUser  = "user"
	sourceGroup = "group"
	sourceRoom  = "room"
)

// serveWebhook is POST /line/webhook. It reads the body once under the cap, verifies x-line-signature before
// parsing anything, and answers 200 only after every supported event was accepted durably:
//
//	405 not POST; 413 body over MaxBodyBytes; 401 signature missing or wrong (LINE_CHANNEL_SECRET);
//	400 signed but not JSON; 500 an Accept failed (LINE redelivers, when redelivery is on); 200 otherwise.
func (a *Adapter) serveWebhook(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			a.log.Warn().Int64("limit", a.cfg.MaxBodyBytes).Msg("webhook body over the limit; rejected")
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "could not read the body", http.StatusBadRequest)
		return
	}
	// ValidateSignature compares with hmac.Equal, in constant time.
	if sig := r.Header.Get("X-Line-Signature"); sig == "" || !webhook.ValidateSignature(a.cfg.ChannelSecret, sig, body) {
		a.log.Warn().Bool("signature_present", sig != "").
			Msg("webhook signature did not verify; rejected (if this is LINE, check LINE_CHANNEL_SECRET)")
		http.Error(w, "invalid signature", http.StatusUnauthorized)
		return
	}
	// Events are decoded one by one so that one event the SDK cannot read does not lose the others.
	var cb struct {
		Events []json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(body, &cb); err != nil {
		a.log.Warn().Err(err).Msg("signed webhook body is not JSON; rejected")
		http.Error(w, "invalid JSON", http.StatusBadRequest)
		return
	}
	if len(cb.Events) == 0 {
		a.log.Info().Msg("webhook verification request (no events)")
		w.WriteHeader(http.StatusOK)
		return
	}
	for i, raw := range cb.Events {
		ev, err := webhook.UnmarshalEvent(raw)
		if err != nil {
			a.log.Warn().Err(err).Int("event", i).Msg("could not read a webhook event; skipped")
			continue
		}
		m, why := a.message(ev)
		if why != "" {
			a.log.Debug().Str("event_type", ev.GetType()).Str("why", why).Msg("webhook event ignored")
			continue
		}
		run, dup, err := a.inbox.Accept(r.Context(), m)
		if err != nil {
			// Nothing after this event is accepted; LINE sends the whole request again and dedup skips the rest.
			a.log.Error().Err(err).Str("event_id", m.EventID).Msg("could not accept a LINE event; answering 500 so LINE redelivers")
			http.Error(w, "could not accept the event", http.StatusInternalServerError)
			return
		}
		a.log.Debug().Str("event_id", m.EventID).Str("run_id", run.ID).Bool("duplicate", dup).
			Bool("redelivery", m.Redelivery).Str("source", m.Extra[extraSource]).Int("files", len(m.Files)).Msg("LINE event accepted")
	}
	w.WriteHeader(http.StatusOK)
}

// message turns a webhook event into a bot.Message, or says why the event is ignored.
func (a *Adapter) message(ev webhook.EventInterface) (bot.Message, string) {
	me, ok := ev.(webhook.MessageEvent)
	if !ok {
		return bot.Message{}, "not a message event"
	}
	// In standby mode another channel module is answering this chat; LINE sends no reply token then.
	if me.Mode == webhook.EventMode_STANDBY {
		return bot.Message{}, "standby mode"
	}
	m := bot.Message{Platform: platformName, EventID: me.WebhookEventId, ReplyToken: me.ReplyToken,
		Redelivery: me.DeliveryContext != nil && me.DeliveryContext.IsRedelivery, Extra: map[string]string{}}
	switch s := me.Source.(type) {
	case webhook.UserSource:
		m.ChatID, m.UserID, m.Extra[extraSource] = s.UserId, s.UserId, sourceUser
	case webhook.GroupSource:
		m.ChatID, m.UserID, m.Extra[extraSource] = s.GroupId, s.UserId, sourceGroup
	case webhook.RoomSource:
		m.ChatID, m.UserID, m.Extra[extraSource] = s.RoomId, s.UserId, sourceRoom
	default:
		return bot.Message{}, "unknown source"
	}
	if m.ChatID == "" {
		return bot.Message{}, "no chat id"
	}
	m.ReceivedAt = a.now().UTC()
	if me.Timestamp > 0 {
		m.ReceivedAt = time.UnixMilli(me.Timestamp).UTC()
	}
	switch c := me.Message.(type) {
	case webhook.TextMessageContent:
		m.Text = strings.TrimSpace(withoutSelfMentions(c.Text, c.Mention))
		if m.Text == "" {
			return bot.Message{}, "text is only a mention of the bot"
		}
		m.Extra[extraMessageID], m.Extra[extraQuoteToken] = c.Id, c.QuoteToken
	case webhook.ImageMessageContent:
		f, why := imageFile(c)
		if why != "" {
			return bot.Message{}, why
		}
		m.Files = []bot.File{f}
		m.Extra[extraMessageID], m.Extra[extraQuoteToken] = c.Id, c.QuoteToken
		if c.ImageSet != nil && c.ImageSet.Id != "" {
			m.Extra[extraImageSetID] = c.ImageSet.Id
			m.Extra[extraImageSetIndex] = strconv.Itoa(int(c.ImageSet.Index))
			m.Extra[extraImageSetTotal] = strconv.Itoa(int(c.ImageSet.Total))
			m.Set = &bot.PhotoSet{ID: c.ImageSet.Id, Index: int(c.ImageSet.Index), Total: int(c.ImageSet.Total)}
		}
	default:
		// Stickers, video, audio, files and locations get no answer: the workflow takes text and images.
		return bot.Message{}, "unsupported message type"
	}
	if m.EventID == "" {
		// LINE always sends webhookEventId; the message id is as unique if it ever does not.
		m.EventID = "message-" + m.Extra[extraMessageID]
	}
	for k, v := range m.Extra {
		if v == "" {
			delete(m.Extra, k)
		}
	}
	return m, ""
}

// imageFile describes where an image's bytes are: LINE's content API, or the sender's external URL.
func imageFile(c webhook.ImageMessageContent) (bot.File, string) {
	if c.ContentProvider != nil && c.ContentProvider.Type == webhook.ContentProviderTYPE_EXTERNAL {
		u := c.ContentProvider.OriginalContentUrl
		if u == "" {
			return bot.File{}, "external image without a URL"
		}
		name := path.Base(strings.SplitN(u, "?", 2)[0])
		if name == "." || name == "/" {
			name = ""
		}
		return bot.File{URL: u, Name: name}, ""
	}
	if c.Id == "" {
		return bot.File{}, "image without a message id"
	}
	return bot.File{ID: c.Id, Name: "line-" + c.Id}, ""
}

// withoutSelfMentions removes the mentions of this bot ("@Bot ") from a group message, so the workflow sees
// only the question. LINE gives mention positions in UTF-16 code units.
func withoutSelfMentions(text string, mention *webhook.Mention) string {
	if mention == nil {
		return text
	}
	u := utf16.Encode([]rune(text))
	keep := make([]bool, len(u))
	for i := range keep {
		keep[i] = true
	}
	removed := false
	for _, mt := range mention.Mentionees {
		um, ok := mt.(webhook.UserMentionee)
		if !ok || !um.IsSelf {
			continue
		}
		start, end := int(um.Index), int(um.Index)+int(um.Length)
		if start < 0 || end > len(u) || start >= end {
			return text // Positions that do not fit the text: leave it as sent.
		}
		for i := start; i < end; i++ {
			keep[i] = false
		}
		removed = true
	}
	if !removed {
		return text
	}
	out := make([]uint16, 0, len(u))
	for i, c := range u {
		if keep[i] {
			out = append(out, c)
		}
	}
	return string(utf16.Decode(out))
}
