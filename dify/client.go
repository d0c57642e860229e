// Package dify is a client for the Dify service API (/v1) with typed errors, a circuit breaker with an
// operator override, and retries that never run a workflow twice.
package dify

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/difybot/difybot/internal/netguard"
	"github.com/difybot/difybot/internal/redirect"
)

// Config configures a Client. Only BaseURL and APIKey are required.
type Config struct {
	BaseURL string // Dify's service API base, such as https://api.dify.ai/v1.
	APIKey  string // The app's API key; sent only in the Authorization header.
	// FilesURL is the base of the relative file links Dify writes when its FILES_URL is unset (DIFY_FILES_URL);
	// default the origin of BaseURL.
	FilesURL   string
	HTTPClient *http.Client
	Logger     zerolog.Logger
	Breaker    BreakerConfig
	Retry      RetryPolicy
	// PollEvery is the interval for polling a run whose stream dropped; default 2s.
	PollEvery time.Duration
	// Limit configures the adaptive cap on runs in flight (Limiter).
	Limit LimitConfig
	// ForeignHTTPClient fetches answer files on hosts other than Dify's own (a tool's remote_url): a workflow,
	// steered by a prompt, can name any URL, so the default reaches public addresses only (internal/netguard).
	ForeignHTTPClient *http.Client
	// Host, when set, is the breaker and limit this client shares with the other apps on its Dify host; Breaker
	// and Limit are then unused. Nil gives the client its own.
	Host *Host
}

// Host is what the apps on one Dify host share: one breaker and one cap on runs in flight, because an outage or
// a full queue is the host's, not one app's. Each app keeps its own client, so its key goes only to its base URL.
type Host struct {
	Name    string // HostOf the base URL, such as https://dify.example.com.
	Breaker *Breaker
	Limiter *Limiter
}

// NewHost returns the shared parts for the apps on host.
func NewHost(host string, b BreakerConfig, l LimitConfig, log zerolog.Logger) *Host {
	return &Host{Name: host, Breaker: NewBreaker(b, log), Limiter: NewLimiter(l)}
}

// HostOf names the Dify host of a base URL (its scheme and authority), the unit apps share a breaker by.
func HostOf(baseURL string) string {
	u, err := url.Parse(baseURL)
	if err != nil || u.Host == "" {
		return baseURL
	}
	return u.Scheme + "://" + u.Host
}

// Client talks to one Dify app. It is safe for concurrent use.
type Client struct {
	base      *url.URL
	files     *url.URL // The base of relative file links.
	key       string
	hc        *http.Client
	foreign   *http.Client // Files on other hosts.
	log       zerolog.Logger
	breaker   *Breaker
	retry     RetryPolicy
	pollEvery time.Duration
	// streamOnly is set once the app refused a blocking chat message: it is an agent app, so stream from the start.
	streamOnly atomic.Bool
	limiter    *Limiter
}

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("dify: base URL %q: must be an http(s) URL", cfg.BaseURL)
	}
	if cfg.APIKey == "" {
		return nil, errors.New("dify: API key is empty")
	}
	files := &url.URL{Scheme: u.Scheme, Host: u.Host}
	if cfg.FilesURL != "" {
		if files, err = url.Parse(strings.TrimRight(cfg.FilesURL, "/")); err != nil || (files.Scheme != "http" && files.Scheme != "https") || files.Host == "" {
			return nil, fmt.Errorf("dify: files URL %q: must be an http(s) URL", cfg.FilesURL)
		}
	}
	hc := cfg.HTTPClient
	if hc == nil {
		// No overall timeout: streams legitimately run for minutes. Runs are bounded by ctx.
		hc = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 0,
			MaxIdleConnsPerHost:   32,
			IdleConnTimeout:       90 * time.Second,
		}}
	}
	c := &Client{
		base:      u,
		files:     files,
		key:       cfg.APIKey,
		hc:        redirect.Guard(hc), // The key goes only to Dify's own origin, whatever a proxy redirects to.
		log:       cfg.Logger,
		retry:     cfg.Retry.withDefaults(),
		pollEvery: cfg.PollEvery,
		foreign:   cfg.ForeignHTTPClient,
	}
	if c.foreign == nil {
		c.foreign = netguard.Client(netguard.Control)
	}
	if h := cfg.Host; h != nil {
		c.breaker, c.limiter = h.Breaker, h.Limiter
	} else {
		c.breaker, c.limiter = NewBreaker(cfg.Breaker, cfg.Logger), NewLimiter(cfg.Limit)
	}
	if c.pollEvery <= 0 {
		c.pollEvery = 2 * time.Second
	}
	return c, nil
}

// Breaker returns the client's breaker, for the ops override and status.
func (c *Client) Breaker() *Breaker { return c.breaker }

// Limit returns the adaptive cap on runs in flight and how many are.
func (c *Client) Limit() LimitStatus { return c.limiter.Status() }

// Ready returns nil when the breaker lets calls through, else ErrBreakerOpen or ErrMaintenance.
func (c *Client) Ready() error { return c.breaker.Ready() }

// endpoint joins the base URL and a route such as "/workflows/run".
func (c *Client) endpoint(route string) string {
	return c.base.String() + route
}

// request is one HTTP exchange with Dify.
type request struct {
	op          string
	method      string
	route       string
	body        io.Reader // nil for GET
	contentType string
	stream      bool // Accept text/event-stream and leave the body open.
}

// send builds and performs one HTTP attempt. On success the caller owns resp.Body.
func (c *Client) send(ctx context.Context, r request) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, r.method, c.endpoint(r.route), r.body)
	if err != nil {
		return nil, fmt.Errorf("dify: %s: %w", r.op, err)
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if r.stream {
		req.Header.Set("Accept", "text/event-stream")
	}
	return c.do(ctx, r.op, req)
}

// do authenticates and performs req, turning every failure into a typed error.
func (c *Client) do(ctx context.Context, op string, req *http.Request) (*http.Response, error) {
	req.Header.Set("Authorization", "Bearer "+c.key)
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, netError(ctx, op, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		return nil, responseError(op, req, resp)
	}
	return resp, nil
}

// netError classifies a transport failure, keeping its cause. A canceled or expired ctx is returned as is,
// because that is the caller's decision, not Dify's failure.
func netError(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("dify: %s: %w", op, ctxErr)
	}
	ne := &NetError{Op: op, Cause: CauseOther, Sent: true, Err: err}
	var dnsErr *net.DNSError
	var opErr *net.OpError
	var certErr *tls.CertificateVerificationError
	var recErr tls.RecordHeaderError
	var alertErr tls.AlertError
	switch {
	case errors.As(err, &dnsErr):
		ne.Cause, ne.Sent = CauseDNS, false
	case errors.As(err, &certErr), errors.As(err, &recErr), errors.As(err, &alertErr),
		strings.Contains(err.Error(), "tls: "):
		ne.Cause, ne.Sent = CauseTLS, false
	case errors.Is(err, syscall.ECONNREFUSED):
		ne.Cause, ne.Sent = CauseRefused, false
	case errors.As(err, &opErr) && opErr.Op == "dial":
		ne.Sent = false
		if opErr.Timeout() {
			ne.Cause = CauseTimeout
		}
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		ne.Cause = CauseReset
	}
	var te interface{ Timeout() bool }
	if ne.Cause == CauseOther && errors.As(err, &te) && te.Timeout() {
		ne.Cause = CauseTimeout
	}
	return ne
}

const maxErrorBody = 64 << 10

var (
	titleRE        = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)
	cloudflare1015 = regexp.MustCompile(`(?i)error code:?\s*(<[^>]*>\s*)*1015\b`)
)

// responseError reads a non-2xx response into an APIError.
func responseError(op string, req *http.Request, resp *http.Response) *APIError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &APIError{
		Op:          op,
		Method:      req.Method,
		Path:        req.URL.Path,
		Status:      resp.StatusCode,
		ContentType: resp.Header.Get("Content-Type"),
		RetryAfter:  parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
	}
	fillErrorBody(e, body)
	return e
}

// fillErrorBody sets Code/Message for Dify's envelope, Title for an HTML page, or Body otherwise.
func fillErrorBody(e *APIError, body []byte) {
	trimmed := bytes.TrimSpace(body)
	var env struct {
		Code    string          `json:"code"`
		Message json.RawMessage `json:"message"`
		Status  int             `json:"status"`
	}
	if len(trimmed) > 0 && trimmed[0] == '{' && json.Unmarshal(trimmed, &env) == nil && (env.Code != "" || len(env.Message) > 0) {
		e.Code = env.Code
		e.Message = envelopeMessage(env.Message)
		return
	}
	if m := titleRE.FindSubmatch(trimmed); m != nil {
		e.Title = strings.Join(strings.Fields(string(m[1])), " ")
		if e.Title != "" {
			// Cloudflare's "error code: 1015" sits in the body, not the title; keep it visible.
			if cloudflare1015.Match(trimmed) && !strings.Contains(e.Title, "1015") {
				e.Body = "error code: 1015"
			}
			return
		}
	}
	e.Body = excerpt(trimmed)
}

// envelopeMessage accepts a string message or the old reqparse form where message is an object of field errors.
func envelopeMessage(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) == nil {
		for _, v := range m {
			return fmt.Sprint(v)
		}
	}
	return string(raw)
}

func excerpt(b []byte) string {
	const n = 200
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "") + "…"
	}
	return s
}

// parseRetryAfter reads delta-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// decodeJSON reads a 2xx JSON body into v, or reports a BadResponseError.
func decodeJSON(op string, resp *http.Response, v any) error {
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return &NetError{Op: op, Cause: CauseReset, Sent: true, Err: err}
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return &BadResponseError{Op: op, Status: resp.StatusCode, Reason: "empty body where JSON was expected"}
	}
	if err := json.Unmarshal(trimmed, v); err != nil {
		reason := "body is not JSON"
		if m := titleRE.FindSubmatch(trimmed); m != nil {
			reason = fmt.Sprintf("HTML page %q where JSON was expected", strings.TrimSpace(string(m[1])))
		}
		return &BadResponseError{Op: op, Status: resp.StatusCode, Reason: reason, Body: excerpt(trimmed)}
	}
	return nil
}

// call runs one operation under the breaker, its retries inside: the breaker counts the operation's outcome
// once, so one message's retries cannot trip it on their own.
func (c *Client) call(ctx context.Context, policy RetryPolicy, retryable func(error) bool, attempt func() error) error {
	return c.breaker.do(ctx, func() error { return policy.retry(ctx, retryable, attempt) })
}

// getJSON performs one GET and decodes the answer.
func (c *Client) getJSON(ctx context.Context, op, route string, v any) error {
	resp, err := c.send(ctx, request{op: op, method: http.MethodGet, route: route})
	if err != nil {
		return err
	}
	return decodeJSON(op, resp, v)
}

// postJSON runs a JSON POST through the breaker and decodes the answer. It does not retry.
func (c *Client) postJSON(ctx context.Context, op, route string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("dify: %s: %w", op, err)
	}
	return c.call(ctx, RetryPolicy{MaxAttempts: 1}, canRepeat, func() error {
		resp, err := c.send(ctx, request{op: op, method: http.MethodPost, route: route, body: bytes.NewReader(body), contentType: "application/json"})
		if err != nil {
			return err
		}
		return decodeJSON(op, resp, out)
	})
}
