package line

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/line/line-bot-sdk-go/v8/linebot/messaging_api"

	"github.com/difybot/difybot/bot"
)

// Keys of the run's bot.RunState. What they hold survives a crash, so a retried Reply neither sends again
// what was delivered nor spends the reply token twice.
const (
	// stateTokenUsed is set before the reply token is spent: it is single-use.
	stateTokenUsed = "line_reply_token_used"
	// stateSentPrefix + delivery id holds how many calls of that answer LINE has accepted.
	stateSentPrefix = "line_sent:"
	// stateLoadingUntil is when the loading animation shown last runs out.
	stateLoadingUntil = "line_loading_until"
)

// retryNamespace is the UUIDv5 namespace of X-Line-Retry-Key values. It never changes: a key derived before
// an upgrade must match the same key derived after it.
var retryNamespace = uuid.MustParse("6f0f6c2e-3c55-4b8e-9f1e-7d3b1a2c9e41")

// Reply posts r in m's chat: the first call by reply token when it is fresh, unused and not a redelivery,
// everything else by push with a retry key derived from the run, so calling Reply again after a crash
// delivers only what LINE has not accepted yet. Long answers are split to LINE's 5,000 characters per
// message and 5 messages per call.
func (a *Adapter) Reply(ctx context.Context, m bot.Message, r bot.Reply) error {
	st := r.State
	if st == nil {
		st = &memState{} // Only outside the pipeline (a one-off call): nothing to survive.
	}
	text := plainText(r.Text)
	if text == "" {
		text = strings.TrimSpace(r.Text)
	}
	if text == "" {
		return bot.Classified(bot.CodePlatformReplyFailed, "line reply", errors.New("the answer is empty"))
	}
	if m.ChatID == "" {
		return bot.Classified(bot.CodePlatformReplyFailed, "line reply", errors.New("the message has no chat id"))
	}
	calls := chunk(a.parts(text, r.Files), maxPerCall)
	id := deliveryID(r, text)
	sentKey := stateSentPrefix + id
	done, _ := strconv.Atoi(st.Get(sentKey))
	log := a.log.With().Str("run_id", r.RunID).Bool("final", r.Final).Logger()
	for i := done; i < len(calls); i++ {
		d := delivery{m: m, st: st, id: id, call: i, parts: calls[i]}
		if i == len(calls)-1 && r.Final {
			d.choices = r.Choices // Quick replies go on the last message: LINE shows them under it.
		}
		if i == 0 {
			d.quote = m.Extra[extraQuoteToken]
		}
		via, err := a.deliver(ctx, d)
		if err != nil {
			log.Warn().Err(err).Int("call", i+1).Int("calls", len(calls)).Msg("LINE answer not delivered")
			return err
		}
		if err := st.Set(ctx, sentKey, strconv.Itoa(i+1)); err != nil {
			return fmt.Errorf("line: record delivered call %d of run %s: %w", i+1, r.RunID, err)
		}
		log.Info().Str("via", via).Int("call", i+1).Int("calls", len(calls)).Int("messages", len(calls[i])).Msg("LINE answer delivered")
	}
	return nil
}

// delivery is one reply or push call of an answer.
type delivery struct {
	m     bot.Message
	st    bot.RunState
	id    string // The answer's delivery id (deliveryID).
	call  int    // Which call of the answer, from 0.
	parts []part
	// choices become quick replies on the call's last message; a tap sends the choice as the person's message.
	choices []string
	quote   string // The quote token of the person's message, for the first call.
}

// deliver sends one call's messages and says how: "reply" or "push".
func (a *Adapter) deliver(ctx context.Context, d delivery) (string, error) {
	refused := false // LINE refused the reply token: the admin should know why the answer needed a push.
	if d.call == 0 {
		if why := a.replyTokenUnusable(d.m, d.st); why == "" {
			// Marked before the call: if we crash after LINE took it, the retry must push, not reuse it.
			if err := d.st.Set(ctx, stateTokenUsed, a.now().UTC().Format(time.RFC3339)); err != nil {
				return "", fmt.Errorf("line: record reply token use: %w", err)
			}
			err := a.reply(ctx, d.m.ReplyToken, d.parts, d.choices, a.quoteFor(d, false))
			e, isAPI := errors.AsType[*apiError](err)
			switch {
			case err == nil:
				return "reply", nil
			case isAPI && e.invalidReplyToken():
				refused = true
				a.log.Info().Str("event_id", d.m.EventID).Msg("LINE rejected the reply token (expired or used); pushing instead")
			default:
				return "", bot.Classified(bot.CodePlatformReplyFailed, "line reply", err)
			}
		} else {
			a.log.Debug().Str("event_id", d.m.EventID).Str("why", why).Msg("not using the reply token")
		}
	}
	key := retryKey(d.id, d.call, "")
	err := a.push(ctx, d.m.ChatID, d.parts, d.choices, a.quoteFor(d, true), key)
	if e, ok := errors.AsType[*apiError](err); ok && e.quoteRejected() {
		// A new key: LINE refused the quoted request, and the unquoted one is a different message.
		err = a.push(ctx, d.m.ChatID, d.parts, d.choices, "", retryKey(d.id, d.call, "unquoted"))
	}
	if err != nil {
		if refused {
			err = fmt.Errorf("LINE refused the reply token (expired or already used) and the push instead failed: %w", err)
		}
		return "", pushError(err)
	}
	return "push", nil
}

// replyTokenUnusable says why the reply token may not be used, or "" when it may.
func (a *Adapter) replyTokenUnusable(m bot.Message, st bot.RunState) string {
	switch {
	case m.ReplyToken == "":
		return "no reply token"
	case m.Redelivery:
		return "redelivered event"
	case st.Get(stateTokenUsed) != "":
		return "already used"
	case m.ReceivedAt.IsZero() || a.now().Sub(m.ReceivedAt) >= a.cfg.ReplyTokenTTL:
		return "too old"
	}
	return ""
}

// quoteFor returns the quote token when quoting helps the person see which message is answered: one of
// several images sent together, a group or room, or an answer pushed after other messages may have come.
func (a *Adapter) quoteFor(d delivery, push bool) string {
	if d.quote == "" {
		return ""
	}
	if push || d.m.Extra[extraImageSetID] != "" || d.m.Extra[extraSource] != sourceUser {
		return d.quote
	}
	return ""
}

// pushError classifies a failed push for the admin: the monthly quota needs a plan change, not a retry.
func pushError(err error) error {
	if e, ok := errors.AsType[*apiError](err); ok && e.monthlyLimit() {
		return bot.Classified(bot.CodePlatformReplyFailed, "line push", fmt.Errorf(
			"the channel's monthly message quota is used up (%w); pushes fail until it resets or the plan is raised, answers by reply token are free", err))

	}
	return bot.Classified(bot.CodePlatformReplyFailed, "line push", err)
}

// reply calls POST /v2/bot/message/reply. If LINE refuses the quote token, it sends the messages unquoted.
func (a *Adapter) reply(ctx context.Context, token string, parts []part, choices []string, quote string) error {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	c, err := a.api(ctx)
	if err != nil {
		return err
	}
	res, _, err := c.ReplyMessageWithHttpInfo(&messaging_api.ReplyMessageRequest{ReplyToken: token, Messages: lineMessages(parts, choices, quote)})
	err = callError("reply", res, err)
	if e, ok := errors.AsType[*apiError](err); ok && quote != "" && e.quoteRejected() {
		// A refused request does not spend the token; if it did, LINE says so and the caller pushes.
		res, _, err = c.ReplyMessageWithHttpInfo(&messaging_api.ReplyMessageRequest{ReplyToken: token, Messages: lineMessages(parts, choices, "")})
		err = callError("reply", res, err)
	}
	return err
}

// push calls POST /v2/bot/message/push with X-Line-Retry-Key. A 409 means LINE accepted a request with this
// key before (our earlier attempt got through): the messages were delivered.
func (a *Adapter) push(ctx context.Context, to string, parts []part, choices []string, quote, key string) error {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	c, err := a.api(ctx)
	if err != nil {
		return err
	}
	res, _, err := c.PushMessageWithHttpInfo(&messaging_api.PushMessageRequest{To: to, Messages: lineMessages(parts, choices, quote)}, key)
	if res != nil && res.StatusCode == http.StatusConflict {
		res.Body.Close()
		return nil
	}
	return callError("push", res, err)
}

// LINE's limits for a quick reply: 13 buttons, a label of 20 characters, a text of 300.
const (
	maxQuickReplies   = 13
	maxQuickLabel     = 20
	maxQuickReplyText = 300
)

// lineMessages builds one call's messages: text messages, and image messages for the answer's pictures. The
// first text quotes the person's message; the last message carries the quick replies.
func lineMessages(parts []part, choices []string, quote string) []messaging_api.MessageInterface {
	out := make([]messaging_api.MessageInterface, len(parts))
	var qr *messaging_api.QuickReply
	if len(choices) > 0 {
		qr = &messaging_api.QuickReply{}
		for _, c := range choices[:min(len(choices), maxQuickReplies)] {
			qr.Items = append(qr.Items, messaging_api.QuickReplyItem{Type: "action",
				Action: &messaging_api.MessageAction{Label: clipRunes(c, maxQuickLabel), Text: clipRunes(c, maxQuickReplyText)}})
		}
	}
	last := len(parts) - 1
	for i, p := range parts {
		if p.image != nil {
			im := &messaging_api.ImageMessage{OriginalContentUrl: p.image.URL, PreviewImageUrl: p.image.PreviewURL}
			if i == last {
				im.QuickReply = qr
			}
			out[i] = im
			continue
		}
		tm := &messaging_api.TextMessage{Text: p.text}
		if i == 0 {
			tm.QuoteToken = quote
		}
		if i == last {
			tm.QuickReply = qr
		}
		out[i] = tm
	}
	return out
}

// clipRunes shortens s to n characters, marking the cut with an ellipsis.
func clipRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// deliveryID names one answer of one run: the run, its attempt, whether it is final, and the text. A repeated
// call of the same answer (after a crash) gets the same id, so the same retry keys; a Retry of the run is a new
// attempt, whose answer gets fresh keys instead of LINE's 409 for the earlier one.
func deliveryID(r bot.Reply, text string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%t\x00", r.RunID, r.Attempt, r.Final)
	h.Write([]byte(text))
	for _, f := range r.Files {
		fmt.Fprintf(h, "\x00%s", f.ID)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// retryKey is the X-Line-Retry-Key of one push call: a UUIDv5, the form LINE asks for.
func retryKey(deliveryID string, call int, variant string) string {
	return uuid.NewSHA1(retryNamespace, []byte(deliveryID+"/"+strconv.Itoa(call)+"/"+variant)).String()
}

func chunk(parts []part, n int) [][]part {
	var out [][]part
	for len(parts) > n {
		out = append(out, parts[:n])
		parts = parts[n:]
	}
	if len(parts) > 0 {
		out = append(out, parts)
	}
	return out
}

// memState is a RunState that lives only as long as one call.
type memState struct {
	mu sync.Mutex
	m  map[string]string
}

func (s *memState) Get(k string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[k]
}

func (s *memState) Set(_ context.Context, k, v string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]string{}
	}
	s.m[k] = v
	return nil
}
