package loadtest

import (
	"html"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/platforms/line/linetest"
	"github.com/difybot/difybot/platforms/slack/slacktest"
)

// Kind is what a message the bot sent is, read from its text.
type Kind int

// The kinds of message the bot sends.
const (
	KindWorking   Kind = iota // The Slack placeholder or a progress edit.
	KindHeld                  // "Your answer will be delayed" or "under maintenance": not final.
	KindAnswer                // The workflow's answer: final.
	KindDiagnosis             // An explanation of a failure, with a reference id: final.
)

// Final reports whether a message of this kind ends the conversation.
func (k Kind) Final() bool { return k == KindAnswer || k == KindDiagnosis }

func (k Kind) String() string {
	return [...]string{"working", "held", "answer", "diagnosis"}[k]
}

var (
	// The held notices in full: the final breaker_open text starts with the same words.
	heldTexts = []string{
		bot.HeldText(bot.LangEN, bot.CodeBreakerOpen, ""),
		bot.HeldText(bot.LangEN, bot.CodeBreakerMaintenance, ""),
	}
	diagnosisTexts = func() map[string]bot.Code {
		m := map[string]bot.Code{}
		for _, c := range bot.Codes() {
			if t := (bot.Diagnosis{Code: c}).UserText(bot.LangEN, ""); m[t] == "" {
				m[t] = c
			}
		}
		return m
	}()
)

// Classify says what a message of the bot is, and for a diagnosis which code its text belongs to ("" if the
// text matches none, which would be a new text).
func Classify(text string) (Kind, bot.Code) {
	t := strings.TrimSpace(html.UnescapeString(text))
	switch {
	case strings.HasPrefix(t, "⏳"):
		return KindWorking, ""
	}
	for _, h := range heldTexts {
		if strings.HasPrefix(t, h) {
			return KindHeld, ""
		}
	}
	if text, _, ok := strings.Cut(t, "\nReference: "); ok || strings.Contains(t, "Reference: ") {
		return KindDiagnosis, diagnosisTexts[strings.TrimSpace(text)]
	}
	return KindAnswer, ""
}

// Conv is what one conversation (one test message) received, as a fake platform counted it.
type Conv struct {
	Key string
	// Finals is how many final messages the person can see: LINE messages delivered, or Slack messages whose
	// text is final. Exactly one is right.
	Finals int
	// FinalWrites is how many API calls carried final text (Slack edits of one message count here, not above).
	FinalWrites int
	Held        int // Held notices delivered.
	Working     int // Slack messages still showing a placeholder at the end: left behind by a crash.
	Outcome     string
	FirstFinal  time.Time
	FirstHeld   time.Time
	FirstWrite  time.Time // The first message of any kind.
	// FirstFeedback is when the person first saw that the bot had the message: Slack's placeholder (or any first
	// message), LINE's loading animation or first message.
	FirstFeedback time.Time
	Busy          time.Duration // Time the fake spent answering calls for this conversation.
	Calls         int
}

// convs is the conversations of a fake, keyed by Slack channel or LINE chat, counted from its calls.
type convs struct {
	mu sync.Mutex
	m  map[string]*Conv
}

func (c *convs) get(key string) *Conv {
	if c.m == nil {
		c.m = map[string]*Conv{}
	}
	v := c.m[key]
	if v == nil {
		v = &Conv{Key: key}
		c.m[key] = v
	}
	return v
}

func (c *convs) busy(key string, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.get(key)
	v.Busy += d
	v.Calls++
}

// delivered records a message the person now sees (visible) or a call that only edited one.
func (c *convs) delivered(key, text string, at time.Time, visible bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.get(key)
	k, code := Classify(text)
	if v.FirstWrite.IsZero() {
		v.FirstWrite = at
	}
	if v.FirstFeedback.IsZero() {
		v.FirstFeedback = at
	}
	switch {
	case k.Final():
		v.FinalWrites++
		if v.FirstFinal.IsZero() {
			v.FirstFinal = at
			v.Outcome = "answer"
			if k == KindDiagnosis {
				v.Outcome = string(code)
				if code == "" {
					v.Outcome = "diagnosis (unknown text)"
				}
			}
		}
		if visible {
			v.Finals++
		}
	case k == KindHeld:
		if visible {
			v.Held++
		}
		if v.FirstHeld.IsZero() {
			v.FirstHeld = at
		}
	}
}

func (c *convs) snapshot() map[string]Conv {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]Conv, len(c.m))
	for k, v := range c.m {
		out[k] = *v
	}
	return out
}

// slackCall counts a call the fake Slack answered: a message posted or edited is delivered, but not visible
// (Conversations counts what the channel shows), and every write is time spent for its channel.
func (c *convs) slackCall(call slacktest.Call) {
	switch call.Method {
	case "chat.postMessage", "chat.update", "chat.delete":
	default:
		return
	}
	if call.Error == "invalid_auth" {
		return
	}
	ch := call.Form.Get("channel")
	if call.OK && call.Method != "chat.delete" {
		c.delivered(ch, call.Form.Get("text"), call.At, false)
	}
	c.busy(ch, call.Took)
}

// lineCall counts a call the fake LINE answered: every message of an accepted reply or push is delivered and
// visible; a push refused for its retry key (409) delivered nothing but took time.
func (c *convs) lineCall(call linetest.Call) {
	switch {
	case call.Path == linetest.PathLoading:
		c.mu.Lock()
		if v := c.get(call.To); v.FirstFeedback.IsZero() {
			v.FirstFeedback = call.At
		}
		c.mu.Unlock()
	case (call.Path == linetest.PathReply || call.Path == linetest.PathPush) && call.Status == http.StatusOK:
		for _, m := range call.Messages {
			c.delivered(call.To, m.Text, call.At, true)
		}
	case call.Path == linetest.PathPush && call.Status == http.StatusConflict:
	default:
		return
	}
	c.busy(call.To, call.Took)
}
