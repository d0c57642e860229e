package dify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Sentinel errors for conditions that carry no data of their own.
var (
	// ErrBreakerOpen means the breaker tripped on recent failures and the call was not made.
	ErrBreakerOpen = errors.New("dify: circuit breaker open")
	// ErrMaintenance means an operator forced the breaker open and the call was not made.
	ErrMaintenance = errors.New("dify: circuit breaker forced open (maintenance)")

	// ErrConversationGone matches, with errors.Is, an *APIError saying the chat's conversation_id cannot be used
	// any more: 404 not_found "Conversation Not Exists." (deleted, another user's, another app's, or never known)
	// or 400 conversation_completed. Dify checks it before anything runs, so the message certainly did not start:
	// send it again once without the conversation id. The client never resends it by itself.
	ErrConversationGone = errors.New("dify: the conversation no longer exists")

	// ErrPlanLimit matches, with errors.Is, an *APIError for Dify Cloud's plan quota: rate_limit_error, such as
	// "Workflow execution quota limit reached for tenant …" or the sandbox's requests per day. Unlike the app's
	// concurrency limit (too_many_requests) it lasts until the quota resets, so the client never retries it and the
	// breaker does not count it as an outage. Nothing was started.
	ErrPlanLimit = errors.New("dify: plan quota reached")
)

// APIError is a non-2xx answer from Dify or from whatever sits in front of it.
// Exactly one of Code (Dify's JSON envelope), Title (an HTML page) or Body (anything else) is usually set.
type APIError struct {
	Op          string // The operation, such as "upload file" or "run workflow".
	Method      string
	Path        string // The request path, such as /v1/workflows/run; never carries secrets.
	Status      int    // The HTTP status, or the status field of a stream error event.
	Code        string // Dify's error code, such as "invalid_param".
	Message     string // Dify's error message.
	Title       string // The <title> of an HTML error page (nginx, Caddy, Cloudflare).
	Body        string // A short excerpt of a body that was neither JSON nor HTML.
	ContentType string
	RetryAfter  time.Duration // From the Retry-After header; zero when absent.
	InStream    bool          // The error arrived as an SSE "error" event after a 200.
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dify: %s: ", e.Op)
	if e.InStream {
		b.WriteString("stream error event")
	} else {
		fmt.Fprintf(&b, "%s %s: HTTP %d", e.Method, e.Path, e.Status)
	}
	switch {
	case e.Code != "" || e.Message != "":
		fmt.Fprintf(&b, ": %s: %s", e.Code, e.Message)
		if e.InStream && e.Status != 0 {
			fmt.Fprintf(&b, " (status %d)", e.Status)
		}
	case e.Title != "":
		fmt.Fprintf(&b, ": HTML page %q", e.Title)
	case e.Body != "":
		fmt.Fprintf(&b, ": %q", e.Body)
	default:
		b.WriteString(": empty body")
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// IsDify reports whether the error came in Dify's own JSON envelope rather than from a proxy.
func (e *APIError) IsDify() bool { return e.Code != "" }

// Is lets errors.Is match ErrConversationGone, ErrPlanLimit and ErrFormExpired on an *APIError.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrConversationGone:
		return e.Code == "conversation_completed" ||
			e.Code == "not_found" && strings.HasPrefix(strings.TrimSpace(e.Message), "Conversation Not Exists")
	case ErrPlanLimit:
		return isPlanLimit(e)
	case ErrFormExpired:
		return e.Status == http.StatusPreconditionFailed && e.Code == "human_input_form_expired"
	}
	return false
}

// IsHTML reports whether the body was an HTML page, which means a proxy or the web frontend answered.
func (e *APIError) IsHTML() bool {
	return e.Title != "" || strings.Contains(e.ContentType, "html")
}

// RunError is a workflow run that Dify executed but that did not succeed:
// status failed, stopped, partial-succeeded without output, or anything unknown.
type RunError struct {
	Op       string
	RunID    string
	TaskID   string
	Status   string // Dify's run status.
	Message  string // Dify's data.error, such as "Max steps 500 reached.".
	Node     string // The title of the failing node, when the stream named it.
	NodeType string
}

func (e *RunError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dify: %s: run %s ended %q", e.Op, e.RunID, e.Status)
	if e.Node != "" {
		fmt.Fprintf(&b, " at node %q (%s)", e.Node, e.NodeType)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	return b.String()
}

// NetCause names why a request never got an HTTP answer.
type NetCause string

// The network causes a person can act on.
const (
	CauseRefused NetCause = "connection refused"
	CauseDNS     NetCause = "DNS lookup failed"
	CauseTLS     NetCause = "TLS failure"
	CauseTimeout NetCause = "timeout"
	CauseReset   NetCause = "connection reset"
	CauseOther   NetCause = "network error"
)

// NetError is a request that got no HTTP answer, or lost it halfway.
type NetError struct {
	Op    string
	Cause NetCause
	// Sent is false when the request certainly never reached the server (dial, DNS, TLS), which makes a retry safe.
	Sent bool
	Err  error
}

func (e *NetError) Error() string {
	return fmt.Sprintf("dify: %s: %s: %v", e.Op, e.Cause, e.Err)
}

func (e *NetError) Unwrap() error { return e.Err }

// BadResponseError is an answer that is not what Dify sends: non-JSON where JSON was due,
// an empty body, or a stream that stopped with no terminal event and no run to recover.
type BadResponseError struct {
	Op     string
	Status int
	Reason string
	Body   string // A short excerpt, for the admin.
}

func (e *BadResponseError) Error() string {
	s := fmt.Sprintf("dify: %s: bad response (HTTP %d): %s", e.Op, e.Status, e.Reason)
	if e.Body != "" {
		s += fmt.Sprintf(": %q", e.Body)
	}
	return s
}

// TimeoutError is our own limit for a run (DIFY_TIMEOUT) running out. The task was asked to stop.
type TimeoutError struct {
	Op     string
	RunID  string
	TaskID string
	Err    error // context.DeadlineExceeded, possibly joined with the stop call's error.
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("dify: %s: run %s exceeded our time limit: %v", e.Op, e.RunID, e.Err)
}

func (e *TimeoutError) Unwrap() error { return e.Err }

// IsOutage reports whether err says Dify (or the way to it) is unwell, as opposed to Dify answering that the
// request or configuration is wrong. The breaker counts only outages; diagnosis reports the same answer.
func IsOutage(err error) bool {
	var ne *NetError
	if errors.As(err, &ne) {
		return true
	}
	if err == nil || callerGaveUp(err) {
		return false
	}
	var ae *APIError
	if errors.As(err, &ae) && ae != nil {
		switch {
		case isPlanLimit(ae):
			return false // Dify is well; the workspace's quota is used up.
		case isRateLimit(ae):
			// Dify is well and runs as many as it allows: the Limiter backs off, and tripping the breaker would
			// hold every run for what is a matter of capacity.
			return false
		case ae.Status >= 500 || ae.Status == http.StatusTooManyRequests:
			return true
		case ae.IsHTML() && !ae.InStream && ae.Status != http.StatusRequestEntityTooLarge && ae.Status != http.StatusNotFound:
			return true // A proxy page where Dify should have answered.
		}
		return false
	}
	var be *BadResponseError
	return errors.As(err, &be)
}

// callerGaveUp reports whether err is the caller's own cancellation or deadline, which says nothing about
// Dify's health. A dial timeout also matches context.DeadlineExceeded, so NetErrors are not the caller's.
func callerGaveUp(err error) bool {
	var ne *NetError
	if errors.As(err, &ne) {
		return false
	}
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// concurrencyMessage starts the text of Dify's per-app concurrency cap, whatever code and status carry it.
const concurrencyMessage = "Too many requests. Please try again later."

// isRateLimit recognises Dify's concurrency cap, whose status varies by version (400, 429 or 500). It passes
// once a request finishes, so it is worth retrying; the plan quota (isPlanLimit) is not.
func isRateLimit(e *APIError) bool {
	return e.Code == "too_many_requests" || strings.HasPrefix(e.Message, concurrencyMessage)
}

// isPlanLimit recognises Dify Cloud's plan quota, rate_limit_error, unless its text is the concurrency cap's.
func isPlanLimit(e *APIError) bool {
	return e.Code == "rate_limit_error" && !strings.HasPrefix(e.Message, concurrencyMessage)
}
