// Package linetest fakes LINE for tests: the Messaging API difybot calls (reply, push, the loading animation,
// bot info) and the content API, on one httptest server; the X-Line-Signature LINE puts on webhooks; and
// builders of the webhook payloads it delivers.
//
// The fake applies the rules of LINE that difybot depends on: a reply token works once (and about a minute),
// a push whose X-Line-Retry-Key was accepted before answers 409 and is not delivered again, and the message
// limits. It keeps every call, and can be told to answer the monthly quota's 429, to refuse a quote token or
// a reply token, or to hold the content API. It does not import the adapter, so the adapter's own tests can
// use it.
package linetest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/google/uuid"
)

// The channel's credentials and the bot's user id (the webhooks' destination). They are test values, never
// real ones.
const (
	ChannelSecret = "8c570fa6dd201bb328f1c1eac23a96d8"
	ChannelToken  = "test-channel-token"
	BotUserID     = "Uf2a3e6b9c0d1e2f3a4b5c6d7e8f9a0b1"
)

// The paths of the API the fake serves, as Call.Path names them. Content calls are all PathContent.
const (
	PathReply   = "/v2/bot/message/reply"
	PathPush    = "/v2/bot/message/push"
	PathLoading = "/v2/bot/chat/loading/start"
	PathContent = "/v2/bot/message/content"
	PathInfo    = "/v2/bot/info"
)

// ReplyTokenTTL is how long LINE accepts a reply token it issued.
const ReplyTokenTTL = time.Minute

// Options configures a Server. The zero value is usable.
type Options struct {
	ChannelToken string // The bearer token every call requires; default ChannelToken.
	// IssuedTokensOnly refuses reply tokens not issued with IssueToken, as LINE refuses made-up ones. Without
	// it, a token never seen is taken as fresh.
	IssuedTokensOnly bool
	// MaxCalls bounds the call log to the latest calls, for long load runs; 0 keeps every call.
	MaxCalls int
	// OnCall, when set, is called with every call once the fake has decided its answer.
	OnCall func(Call)
}

// Call is one request the fake received.
type Call struct {
	Path     string
	Status   int
	RetryKey string
	Token    string // The reply token of a reply.
	To       string // The push target, the loading animation's chat, or the chat a reply token was issued for.
	Seconds  int    // The loading animation's.
	Messages []Sent
	At       time.Time     // When it arrived.
	Took     time.Duration // How long the fake took to answer.
}

// Sent is a message of a reply or a push: a text, or an image LINE fetches from its two URLs.
type Sent struct {
	Type               string      `json:"type"`
	Text               string      `json:"text"`
	QuoteToken         string      `json:"quoteToken"`
	QuickReply         *QuickReply `json:"quickReply,omitempty"`
	OriginalContentURL string      `json:"originalContentUrl,omitempty"`
	PreviewImageURL    string      `json:"previewImageUrl,omitempty"`
}

// QuickReply is the buttons LINE shows under a message; tapping a message action sends its text as the person's
// message.
type QuickReply struct {
	Items []QuickReplyItem `json:"items"`
}

// QuickReplyItem is one quick reply button: type "action" with its action.
type QuickReplyItem struct {
	Type   string `json:"type"`
	Action struct {
		Type  string `json:"type"` // "message" for a button that sends Text.
		Label string `json:"label"`
		Text  string `json:"text"`
	} `json:"action"`
}

// Content is what the content API serves for a message id: Body, or, for content too large to hold, Size
// bytes read from Open. Type defaults to what Body sniffs as.
type Content struct {
	Type string
	Body []byte
	Size int64            // With Open: the content's length.
	Open func() io.Reader // Streams the content when Body is nil.
}

// token is a reply token LINE issued: for one chat, for about a minute.
type token struct {
	chat   string
	issued time.Time
}

// Server is the fake on its own httptest server. It is safe for concurrent use.
type Server struct {
	srv    *httptest.Server
	opts   Options
	served atomic.Int64

	mu       sync.Mutex
	calls    []Call
	order    []string // Calls and notes in the order they happened.
	tokens   map[string]token
	spent    map[string]bool // Used or refused reply tokens.
	keys     map[string]bool // Retry keys of accepted pushes.
	content  map[string]Content
	quota    bool          // Push answers the monthly limit's 429.
	badQuote string        // A quote token LINE refuses.
	gate     chan struct{} // When set, content waits for it to close.
}

// Start starts a fake that is closed when the test ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s := NewServer(opts)
	tb.Cleanup(s.Close)
	return s
}

// NewServer starts a fake. Close it when done.
func NewServer(opts Options) *Server {
	if opts.ChannelToken == "" {
		opts.ChannelToken = ChannelToken
	}
	s := &Server{opts: opts, tokens: map[string]token{}, spent: map[string]bool{}, keys: map[string]bool{},
		content: map[string]Content{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PathReply, s.reply)
	mux.HandleFunc("POST "+PathPush, s.push)
	mux.HandleFunc("POST "+PathLoading, s.loading)
	mux.HandleFunc("GET /v2/bot/message/{id}/content", s.getContent)
	mux.HandleFunc("GET "+PathInfo, func(w http.ResponseWriter, r *http.Request) {
		s.record(Call{Path: PathInfo, Status: http.StatusOK, At: time.Now()})
		writeJSON(w, http.StatusOK, fmt.Sprintf(`{"userId":%q,"basicId":"@123abcde","displayName":"difybot","chatMode":"bot","markAsReadMode":"auto"}`, BotUserID))
	})
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+s.opts.ChannelToken {
			writeJSON(w, http.StatusUnauthorized, `{"message":"Authentication failed. Confirm that the access token in the authorization header is valid."}`)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// URL is the base of both APIs: the adapter's APIURL and DataAPIURL, LINE_API_URL and LINE_DATA_API_URL.
func (s *Server) URL() string { return s.srv.URL }

// with runs fn holding the fake's lock.
func (s *Server) with(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn()
}

// IssueToken registers a reply token LINE issued now for a message from chat.
func (s *Server) IssueToken(tok, chat string) {
	s.with(func() { s.tokens[tok] = token{chat: chat, issued: time.Now()} })
}

// SpendToken makes LINE refuse a reply token, as one used elsewhere or expired early.
func (s *Server) SpendToken(tok string) { s.with(func() { s.spent[tok] = true }) }

// AddContent makes a message's content downloadable.
func (s *Server) AddContent(messageID string, c Content) { s.with(func() { s.content[messageID] = c }) }

// HoldContent makes the content API wait until release is called.
func (s *Server) HoldContent() (release func()) {
	gate := make(chan struct{})
	s.with(func() { s.gate = gate })
	return sync.OnceFunc(func() { close(gate) })
}

// SetQuota makes pushes answer the monthly limit's 429 (true) or not.
func (s *Server) SetQuota(exceeded bool) { s.with(func() { s.quota = exceeded }) }

// RefuseQuote makes LINE refuse messages that quote this token.
func (s *Server) RefuseQuote(quoteToken string) { s.with(func() { s.badQuote = quoteToken }) }

// Note adds an event of the test to the order log.
func (s *Server) Note(event string) { s.with(func() { s.order = append(s.order, event) }) }

// Order is the log of calls ("PATH STATUS") and notes, in the order they happened.
func (s *Server) Order() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.order...)
}

// Calls returns every call to path, accepted or not.
func (s *Server) Calls(path string) []Call { return s.callsWhere(path, false) }

// Accepted returns the calls to path that LINE accepted (2xx).
func (s *Server) Accepted(path string) []Call { return s.callsWhere(path, true) }

func (s *Server) callsWhere(path string, accepted bool) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(s.calls), func(c Call) bool { return c.Path != path || accepted && c.Status/100 != 2 })
}

// ServedBytes is how many content bytes the fake has sent.
func (s *Server) ServedBytes() int64 { return s.served.Load() }

func (s *Server) record(c Call) {
	c.Took = time.Since(c.At)
	s.mu.Lock()
	s.calls = append(s.calls, c)
	if n := s.opts.MaxCalls; n > 0 && len(s.calls) > n {
		s.calls = append(s.calls[:0], s.calls[len(s.calls)-n:]...)
	}
	s.order = append(s.order, fmt.Sprintf("%s %d", c.Path, c.Status))
	if n := s.opts.MaxCalls; n > 0 && len(s.order) > n {
		s.order = append(s.order[:0], s.order[len(s.order)-n:]...)
	}
	s.mu.Unlock()
	if s.opts.OnCall != nil {
		s.opts.OnCall(c)
	}
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// checkMessages applies LINE's limits: 1 to 5 messages, non-empty text of at most 5,000 UTF-16 units, and a
// quote token LINE accepts. It returns LINE's 400 body, or "".
func (s *Server) checkMessages(ms []Sent) string {
	if len(ms) == 0 || len(ms) > 5 {
		return `{"message":"The request body has 1 error(s)","details":[{"message":"Size must be between 1 and 5","property":"messages"}]}`
	}
	for i, m := range ms {
		if m.Type == "image" {
			for prop, u := range map[string]string{"originalContentUrl": m.OriginalContentURL, "previewImageUrl": m.PreviewImageURL} {
				if !imageURL(u) {
					return fmt.Sprintf(`{"message":"The request body has 1 error(s)","details":[{"message":"must be a valid HTTPS URL","property":"messages[%d].%s"}]}`, i, prop)
				}
			}
		} else if m.Type != "text" || m.Text == "" || len(utf16.Encode([]rune(m.Text))) > 5000 {
			return fmt.Sprintf(`{"message":"The request body has 1 error(s)","details":[{"message":"Length must be between 1 and 5000","property":"messages[%d].text"}]}`, i)
		}
		if bad := checkQuickReply(m.QuickReply, i); bad != "" {
			return bad
		}
		if s.badQuote != "" && m.QuoteToken == s.badQuote {
			return fmt.Sprintf(`{"message":"The request body has 1 error(s)","details":[{"message":"The quote token is invalid","property":"messages[%d].quoteToken"}]}`, i)
		}
	}
	return ""
}

// imageURL applies LINE's rule for an image message's URLs: https, at most 2,000 characters. The fake also
// takes http on 127.0.0.1, where tests serve the bot without a certificate.
func imageURL(u string) bool {
	return len(u) <= 2000 && (strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://127.0.0.1:"))
}

// checkQuickReply applies LINE's limits to message i's quick reply: 1 to 13 items of type "action"; a message
// action with a label of 1 to 20 characters and a text of 1 to 300.
func checkQuickReply(q *QuickReply, i int) string {
	if q == nil {
		return ""
	}
	bad := func(msg, prop string) string {
		return fmt.Sprintf(`{"message":"The request body has 1 error(s)","details":[{"message":%q,"property":"messages[%d].quickReply%s"}]}`, msg, i, prop)
	}
	if len(q.Items) == 0 || len(q.Items) > 13 {
		return bad("Size must be between 1 and 13", ".items")
	}
	for j, it := range q.Items {
		prop := fmt.Sprintf(".items[%d]", j)
		label, text := utf8.RuneCountInString(it.Action.Label), utf8.RuneCountInString(it.Action.Text)
		switch {
		case it.Type != "action":
			return bad("must be action", prop+".type")
		case it.Action.Type != "message":
			return bad("must be message", prop+".action.type")
		case label == 0 || label > 20:
			return bad("Length must be between 1 and 20", prop+".action.label")
		case text == 0 || text > 300:
			return bad("Length must be between 1 and 300", prop+".action.text")
		}
	}
	return ""
}

func (s *Server) reply(w http.ResponseWriter, r *http.Request) {
	c := Call{Path: PathReply, At: time.Now()}
	var req struct {
		ReplyToken string `json:"replyToken"`
		Messages   []Sent `json:"messages"`
	}
	err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req)
	c.Token, c.Messages = req.ReplyToken, req.Messages
	s.mu.Lock()
	tok, issued := s.tokens[req.ReplyToken]
	c.To = tok.chat
	status, body := http.StatusOK, `{"sentMessages":[{"id":"461230966842064897","quoteToken":"IStG5h1Tz7b"}]}`
	if bad := s.checkMessages(req.Messages); err != nil || bad != "" {
		status, body = http.StatusBadRequest, bad
	} else if req.ReplyToken == "" || s.spent[req.ReplyToken] || (s.opts.IssuedTokensOnly && !issued) ||
		(issued && time.Since(tok.issued) > ReplyTokenTTL) {
		status, body = http.StatusBadRequest, `{"message":"Invalid reply token"}`
	} else {
		s.spent[req.ReplyToken] = true
		delete(s.tokens, req.ReplyToken)
	}
	s.mu.Unlock()
	if body == "" {
		body = `{"message":"The request body has 1 error(s)"}`
	}
	c.Status = status
	s.record(c) // Before the answer, so a caller that has it finds the call.
	writeJSON(w, status, body)
}

func (s *Server) push(w http.ResponseWriter, r *http.Request) {
	c := Call{Path: PathPush, At: time.Now(), RetryKey: r.Header.Get("X-Line-Retry-Key")}
	var req struct {
		To       string `json:"to"`
		Messages []Sent `json:"messages"`
	}
	err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req)
	c.To, c.Messages = req.To, req.Messages
	key := c.RetryKey
	s.mu.Lock()
	status, body := http.StatusOK, `{"sentMessages":[{"id":"461230966842064898","quoteToken":"IStG5h1Tz7c"}]}`
	if _, kerr := uuid.Parse(key); err != nil || req.To == "" {
		status, body = http.StatusBadRequest, `{"message":"The request body has 1 error(s)","details":[{"message":"must be specified","property":"to"}]}`
	} else if key != "" && kerr != nil {
		status, body = http.StatusBadRequest, `{"message":"The value for the 'X-Line-Retry-Key' header is invalid"}`
	} else if s.quota {
		status, body = http.StatusTooManyRequests, `{"message":"You have reached your monthly limit."}`
	} else if key != "" && s.keys[key] {
		status, body = http.StatusConflict, `{"message":"The retry key is already accepted","sentMessages":[{"id":"461230966842064898","quoteToken":"IStG5h1Tz7c"}]}`
		w.Header().Set("X-Line-Accepted-Request-Id", "accepted-before")
	} else if bad := s.checkMessages(req.Messages); bad != "" {
		status, body = http.StatusBadRequest, bad
	} else if key != "" {
		s.keys[key] = true
	}
	s.mu.Unlock()
	c.Status = status
	s.record(c)
	writeJSON(w, status, body)
}

func (s *Server) loading(w http.ResponseWriter, r *http.Request) {
	c := Call{Path: PathLoading, At: time.Now()}
	var req struct {
		ChatID  string `json:"chatId"`
		Seconds int    `json:"loadingSeconds"`
	}
	_ = json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req)
	c.To, c.Seconds = req.ChatID, req.Seconds
	status, body := http.StatusAccepted, `{}`
	if !strings.HasPrefix(req.ChatID, "U") || req.Seconds < 5 || req.Seconds > 60 || req.Seconds%5 != 0 {
		status, body = http.StatusBadRequest, `{"message":"The request body has 1 error(s)"}`
	}
	c.Status = status
	s.record(c)
	writeJSON(w, status, body)
}

func (s *Server) getContent(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		<-gate
	}
	c := Call{Path: PathContent, At: time.Now()}
	s.mu.Lock()
	ct, ok := s.content[r.PathValue("id")]
	s.mu.Unlock()
	if !ok {
		c.Status = http.StatusNotFound
		s.record(c)
		writeJSON(w, http.StatusNotFound, `{"message":"Not found"}`)
		return
	}
	c.Status = http.StatusOK
	s.record(c)
	body, size := io.Reader(strings.NewReader(string(ct.Body))), int64(len(ct.Body))
	if ct.Body == nil && ct.Open != nil {
		body, size = ct.Open(), ct.Size
	}
	typ := ct.Type
	if typ == "" {
		typ = http.DetectContentType(ct.Body)
	}
	w.Header().Set("Content-Type", typ)
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	n, _ := io.Copy(w, body)
	s.served.Add(n)
}
