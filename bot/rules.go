package bot

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/difybot/difybot/dify"
)

// classify picks the code and the admin summary. The first rule that matches wins, so the order is the
// precedence: a code the bot set where it understood the failure beats anything read from the error itself.
func classify(err error) (Code, string) {
	if be := codedError(err); be != nil {
		if _, ok := byCode[be.Code]; !ok {
			return CodeInternal, fmt.Sprintf("%s: unknown diagnosis code %q (a bug in difybot)", opOr(be.Op), be.Code)
		}
		return be.Code, fmt.Sprintf("%s: %s", opOr(be.Op), entryFor(be.Code).title)
	}
	if errors.Is(err, dify.ErrMaintenance) {
		return CodeBreakerMaintenance, "the breaker is forced open by an operator (maintenance); the call to Dify was not made"
	}
	if errors.Is(err, dify.ErrBreakerOpen) {
		return CodeBreakerOpen, "the breaker is open after recent Dify failures; the call to Dify was not made"
	}
	var te *dify.TimeoutError
	if errors.As(err, &te) {
		return CodeDifyWorkflowTimeout, fmt.Sprintf("our time limit (DIFY_TIMEOUT) ran out during %q for run %s; the task was asked to stop",
			te.Op, orUnknown(te.RunID))
	}
	var re *dify.RunError
	if errors.As(err, &re) {
		return classifyRun(re)
	}
	var pe *dify.PausedError
	if errors.As(err, &pe) {
		// A pause the bot could ask reaches no diagnosis; one that does has a form the API cannot answer.
		var nodes []string
		for _, f := range pe.Forms {
			nodes = append(nodes, fmt.Sprintf("%q", f.NodeTitle))
		}
		return CodeDifyHumanInput, fmt.Sprintf("run %s waits at the Human Input node %s, whose form has no form_token: the node has no WebApp delivery, so the API cannot show or answer it",
			orUnknown(pe.RunID), strings.Join(nodes, ", "))
	}
	var ae *dify.APIError
	if errors.As(err, &ae) {
		return classifyAPI(ae)
	}
	var ne *dify.NetError
	if errors.As(err, &ne) {
		sent := "the request was not sent"
		if ne.Sent {
			sent = "the request may have reached Dify"
		}
		return CodeDifyUnreachable, fmt.Sprintf("could not reach Dify during %q: %s; %s", ne.Op, ne.Cause, sent)
	}
	var bre *dify.BadResponseError
	if errors.As(err, &bre) {
		return CodeDifyBadResponse, fmt.Sprintf("Dify's answer to %q was unusable (HTTP %d): %s", bre.Op, bre.Status, clip(bre.Reason))
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return CodeDifyWorkflowTimeout, "a deadline ran out before Dify answered (context deadline exceeded)"
	}
	if errors.Is(err, context.Canceled) {
		return CodeInternal, "the request was cancelled before it finished (difybot shutting down, or the job was cancelled)"
	}
	var inner *Error
	if errors.As(err, &inner) {
		return CodeInternal, fmt.Sprintf("%s: unrecognised error (%T) — a bug in difybot; please file an issue with the reference id", opOr(inner.Op), errors.Unwrap(inner))
	}
	return CodeInternal, fmt.Sprintf("unrecognised error (%T) — a bug in difybot; please file an issue with the reference id", err)
}

// codedError finds the outermost *Error in err's tree that carries a Code.
func codedError(err error) *Error {
	switch e := err.(type) {
	case nil:
		return nil
	case *Error:
		if e.Code != "" {
			return e
		}
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return codedError(u.Unwrap())
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if be := codedError(e); be != nil {
				return be
			}
		}
	}
	return nil
}

// Markers in Dify's messages. Dify's own texts are matched as they are written; unicode escapes of < and >
// are undone first because the plugin daemon's JSON sometimes arrives re-encoded (\u003c).
var (
	// The plugin daemon or a plugin's runtime is not there: these win over the wrapping PluginInvokeError.
	pluginUnavailableMarkers = []string{
		"PluginDaemonInternalServerError",
		"no available node",
		"killed by timeout",
		"Request to Plugin Daemon Service failed",
	}
	pluginErrorMarkers = []string{
		"PluginInvokeError",
		"PluginDaemonInnerError",
		"invalid character '<' looking for beginning of value",
		"original response: <html>",
		"An error occurred in the plugin",
		"got unknown error from plugin daemon",
		"PluginDaemonBadRequestError", "PluginDaemonNotFoundError", "PluginDaemonUnauthorizedError",
		"PluginNotFoundError", "PluginPermissionDeniedError", "PluginUniqueIdentifierError",
		`"error_type"`, // A plugin error's JSON description without its class name (Easy-UI apps, §6.5).
	}
	timeoutMarkers = []string{"Max execution time", "Max steps"}
	// Lower-case markers of a model provider refusing or failing a call.
	providerMarkers = []string{
		"model provider", "provider credentials", "quota", "rate limit", "incorrect api key", "invalid api key",
		"invalid_api_key", "insufficient_quota", "invokeauthorizationerror", "invokeratelimiterror",
		"invokeserverunavailableerror", "invokeconnectionerror", "invokebadrequesterror",
		"currently not support", "model not exist", "model_not_found",
	}
	// Lower-case markers that a provider failure is passing (its server or the network), not a key or quota.
	transientProviderMarkers = []string{
		"rate limit", "timed out", "timeout", "connection error", "status code 429", "status code 500",
		"status code 502", "status code 503", "status code 504", "overloaded", "unavailable",
		"invokeconnectionerror", "invokeratelimiterror", "invokeserverunavailableerror",
	}
	// "[ollama] Connection Error, …", "[openai] Error: …": Dify's wrap of a model invocation error.
	providerPrefix = regexp.MustCompile(`^\[[A-Za-z0-9_.\-/]+\] [A-Za-z ]*Error`)
	// invalid_param messages about the run's inputs and files (factories/file_factory.py, base_app_generator.py).
	inputMarkers = []string{
		"is required in input form", "in input form must be", "File validation failed", "Invalid upload file",
		"Invalid file url", "Invalid file transfer method", "must be a file", "must be a list of files",
		"must be a string", "Number of files exceeds", "Invalid input type", "is not a valid FileType",
		"is not a valid FileTransferMethod",
	}
	unescape = strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u003C`, "<", `\u003E`, ">", `\u0026`, "&")
)

const concurrencyMessage = "Too many requests. Please try again later."

func containsAny(s string, markers []string) bool {
	for _, m := range markers {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}

// classifyMessage recognises the failures that Dify reports as text, the same in a run's error and in an API
// error's message. It reports false when the message says nothing it knows.
func classifyMessage(msg string) (Code, bool) {
	msg = unescape.Replace(msg)
	lower := strings.ToLower(msg)
	switch {
	case containsAny(msg, pluginUnavailableMarkers):
		return CodeDifyPluginUnavailable, true
	case containsAny(msg, pluginErrorMarkers):
		return CodeDifyPluginError, true
	case strings.Contains(msg, concurrencyMessage):
		return CodeDifyRateLimited, true
	case containsAny(msg, timeoutMarkers):
		return CodeDifyWorkflowTimeout, true
	case containsAny(lower, providerMarkers), providerPrefix.MatchString(msg):
		return CodeDifyModelProvider, true
	}
	return "", false
}

func classifyRun(e *dify.RunError) (Code, string) {
	var b strings.Builder
	b.WriteString("workflow run ")
	if e.RunID != "" {
		b.WriteString(e.RunID + " ")
	}
	fmt.Fprintf(&b, "ended %q", e.Status)
	if e.Node != "" {
		fmt.Fprintf(&b, " at node %q", e.Node)
		if e.NodeType != "" {
			fmt.Fprintf(&b, " (%s)", e.NodeType)
		}
	}
	if e.Message != "" {
		b.WriteString(": " + clip(e.Message))
	}
	summary := b.String()
	msg := strings.TrimPrefix(e.Message, "Run failed: ")
	if code, ok := classifyMessage(msg); ok {
		return code, summary
	}
	if e.Status == "stopped" {
		return CodeDifyWorkflowTimeout, summary
	}
	return CodeDifyWorkflowFailed, summary
}

// Cloudflare's 5xx pages: 520–523, 525, 526 and 530 mean it could not get a usable answer from the origin.
var cloudflareOriginErrors = []int{520, 521, 522, 523, 525, 526, 530}

func classifyAPI(e *dify.APIError) (Code, string) {
	desc := describeAPI(e)
	msg := unescape.Replace(e.Message)
	html := e.IsHTML()
	note := func(code Code, s string) (Code, string) { return code, s + ": " + desc }

	switch {
	case !e.IsDify() && (strings.Contains(e.Title, "1015") || e.Status < 500 && strings.Contains(e.Body, "1015")):
		// Cloudflare serves 1015 with 429. A 5xx page whose body merely holds "1015" (a Ray ID) is not it.
		return note(CodeDifyRateLimited, "Cloudflare rate limit (error 1015)")
	case strings.Contains(msg, concurrencyMessage):
		return note(CodeDifyRateLimited, "Dify's app concurrency limit")
	case errors.Is(e, dify.ErrPlanLimit):
		// rate_limit_error: the workspace's Dify Cloud plan quota, not Dify being busy. It lasts until it resets.
		return note(CodeDifyPlanLimit, "Dify Cloud plan quota (rate_limit_error)")
	case e.Status == http.StatusTooManyRequests || e.Code == "too_many_requests":
		return CodeDifyRateLimited, desc
	}
	if strings.HasPrefix(msg, "Run failed: ") {
		// A chatflow's failed run, reported as invalid_param: classify the run's own error.
		if code, ok := classifyMessage(strings.TrimPrefix(msg, "Run failed: ")); ok {
			return code, desc
		}
		return CodeDifyWorkflowFailed, desc
	}
	if code, ok := classifyMessage(msg); ok && (code == CodeDifyPluginError || code == CodeDifyPluginUnavailable) {
		return code, desc
	}
	if e.Code == "conversation_completed" {
		return conversationGone(desc)
	}
	if !e.InStream && e.Path != "" && !hasV1(e.Path) {
		switch e.Status {
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusMethodNotAllowed:
			return note(CodeDifyWrongURL, fmt.Sprintf("the path %s has no /v1/ segment (DIFY_BASE_URL should end in /v1)", e.Path))
		}
	}

	switch e.Code {
	case "unauthorized":
		return CodeDifyAuthInvalid, desc
	case "not_workflow_app", "not_chat_app", "not_completion_app":
		return CodeDifyWrongAppType, desc
	case "provider_not_initialize", "provider_quota_exceeded", "model_currently_not_support", "completion_request_error":
		return CodeDifyModelProvider, desc
	case "file_too_large":
		return CodeDifyFileTooLarge, desc
	case "unsupported_file_type", "file_extension_blocked":
		return CodeDifyFileType, desc
	case "app_unavailable", "forbidden":
		return CodeDifyAppUnavailable, desc
	case "invalid_param":
		switch {
		case strings.Contains(msg, "Workflow not published"):
			return CodeDifyNotPublished, desc
		case containsAny(msg, inputMarkers):
			return CodeDifyInputInvalid, desc
		}
		if code, ok := classifyMessage(msg); ok {
			return code, desc
		}
		return note(CodeInternal, `unrecognised Dify error "invalid_param" (difybot sent something Dify refused; a bug in difybot)`)
	}

	switch s := e.Status; {
	case s == http.StatusUnauthorized && !html:
		return CodeDifyAuthInvalid, desc
	case s == http.StatusRequestEntityTooLarge:
		return CodeDifyFileTooLarge, desc
	case s == http.StatusUnsupportedMediaType && e.Code != "unsupported_media_type":
		return CodeDifyFileType, desc
	case s == http.StatusForbidden && !html:
		return CodeDifyAppUnavailable, desc
	case s == http.StatusNotFound || s == http.StatusMethodNotAllowed:
		return classifyNotFound(e, desc)
	case s == http.StatusBadGateway || s == http.StatusServiceUnavailable || slices.Contains(cloudflareOriginErrors, s):
		return CodeDifyGatewayError, desc
	case s == http.StatusGatewayTimeout || s == 524:
		return CodeDifyGatewayTimeout, desc
	case s >= 500 && (e.IsDify() || e.InStream):
		return CodeDifyServerError, desc
	case e.Code == "internal_server_error" || e.Code == "unknown":
		return CodeDifyServerError, desc
	case html:
		return note(CodeDifyGatewayError, "a proxy's page where Dify's JSON was due")
	case s >= 500:
		return CodeDifyServerError, desc
	}
	if e.Code != "" {
		return note(CodeInternal, fmt.Sprintf("unrecognised Dify error %q", e.Code))
	}
	return note(CodeInternal, "unrecognised answer")
}

// classifyNotFound reads a 404 (or 405): Dify's JSON on a real route means the app is off (0.x answers a disabled
// app with not_found); anything else means the URL does not lead to Dify's service API.
func classifyNotFound(e *dify.APIError, desc string) (Code, string) {
	switch {
	case !e.IsDify() || e.Status == http.StatusMethodNotAllowed:
		return CodeDifyWrongURL, desc
	case strings.Contains(e.Message, "Workflow run not found"):
		// Polling a run after its stream dropped, and Dify has no such run: nothing to recover.
		return CodeDifyBadResponse, "the run could not be recovered after its stream dropped: " + desc
	case errors.Is(e, dify.ErrConversationGone):
		// The pipeline starts a new conversation on this; reaching a diagnosis means it did not.
		return conversationGone(desc)
	case e.Path == "" || knownRoute(e.Path):
		return CodeDifyAppUnavailable, desc
	}
	return CodeDifyWrongURL, fmt.Sprintf("%s is not a Dify service API route: %s", e.Path, desc)
}

func conversationGone(desc string) (Code, string) {
	return CodeInternal, "a stored conversation no longer exists in Dify and difybot did not start a new one (a bug in difybot): " + desc
}

func hasV1(path string) bool {
	_, ok := v1Route(path)
	return ok
}

// v1Route returns what follows the first /v1 segment of path. A prefix before it (a proxy's sub-path) is allowed.
func v1Route(path string) (string, bool) {
	if i := strings.Index(path, "/v1/"); i >= 0 {
		return path[i+len("/v1/"):], true
	}
	if strings.HasSuffix(path, "/v1") {
		return "", true
	}
	return "", false
}

// serviceRoutes are Dify's service API routes under /v1; "*" is one path segment (an id).
var serviceRoutes = [][]string{
	{"info"}, {"parameters"}, {"meta"}, {"site"}, {"files", "upload"},
	{"workflows", "run"}, {"workflows", "run", "*"}, {"workflows", "tasks", "*", "stop"}, {"workflows", "*", "run"},
	{"workflows", "logs"}, {"chat-messages"}, {"chat-messages", "*", "stop"}, {"completion-messages"},
	{"completion-messages", "*", "stop"}, {"messages"}, {"conversations"},
}

func knownRoute(path string) bool {
	rest, ok := v1Route(path)
	if !ok {
		return false
	}
	segs := strings.Split(strings.Trim(rest, "/"), "/")
	return slices.ContainsFunc(serviceRoutes, func(route []string) bool {
		if len(route) != len(segs) {
			return false
		}
		for i, r := range route {
			if (r != "*" && r != segs[i]) || segs[i] == "" {
				return false
			}
		}
		return true
	})
}

// describeAPI says in one line who answered what.
func describeAPI(e *dify.APIError) string {
	var b strings.Builder
	switch {
	case e.InStream:
		b.WriteString("Dify's stream ended with an error event")
		if e.Code != "" {
			b.WriteString(" " + e.Code)
		}
		if e.Status != 0 {
			fmt.Fprintf(&b, " (status %d)", e.Status)
		}
		if e.Message != "" {
			b.WriteString(" " + clip(e.Message))
		}
		return b.String()
	case e.Code != "" || e.Message != "":
		fmt.Fprintf(&b, "Dify answered %d", e.Status)
		if e.Code != "" {
			b.WriteString(" " + e.Code)
		}
		if e.Message != "" {
			b.WriteString(" " + clip(e.Message))
		}
	case e.Title != "":
		fmt.Fprintf(&b, "an HTML page %s answered %d", clip(e.Title), e.Status)
		if e.Body != "" {
			b.WriteString(" with " + clip(e.Body))
		}
	case e.Body != "":
		fmt.Fprintf(&b, "%d with a non-JSON body %s", e.Status, clip(e.Body))
	default:
		fmt.Fprintf(&b, "%d with an empty body", e.Status)
	}
	if e.Path != "" {
		fmt.Fprintf(&b, " (%s)", strings.TrimSpace(e.Method+" "+e.Path))
	}
	return b.String()
}

// clip quotes s on one line, cut to a length an admin page can show.
func clip(s string) string {
	const max = 200
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > max {
		r := []rune(s)
		s = string(r[:max]) + "…"
	}
	return fmt.Sprintf("%q", s)
}

func opOr(op string) string {
	if op == "" {
		return "bot"
	}
	return op
}

func orUnknown(s string) string {
	if s == "" {
		return "(id unknown)"
	}
	return s
}
