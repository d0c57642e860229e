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

// Code is a stable diagnosis identifier. The codes are part of difybot's public face (DESIGN.md, "Diagnosis codes"):
// they appear in replies, logs, the admin API and `difybot run -json`, so they never change.
type Code string

// The diagnosis codes, in DESIGN.md's order.
const (
	CodeDifyAuthInvalid        Code = "dify_auth_invalid"
	CodeDifyAppUnavailable     Code = "dify_app_unavailable"
	CodeDifyWrongURL           Code = "dify_wrong_url"
	CodeDifyWrongAppType       Code = "dify_wrong_app_type"
	CodeDifyNotPublished       Code = "dify_not_published"
	CodeDifyInputInvalid       Code = "dify_input_invalid"
	CodeDifyFileTooLarge       Code = "dify_file_too_large"
	CodeDifyFileType           Code = "dify_file_type"
	CodeDifyRateLimited        Code = "dify_rate_limited"
	CodeDifyModelProvider      Code = "dify_model_provider"
	CodeDifyPluginError        Code = "dify_plugin_error"
	CodeDifyPluginUnavailable  Code = "dify_plugin_unavailable"
	CodeDifyWorkflowFailed     Code = "dify_workflow_failed"
	CodeDifyWorkflowTimeout    Code = "dify_workflow_timeout"
	CodeDifyGatewayError       Code = "dify_gateway_error"
	CodeDifyGatewayTimeout     Code = "dify_gateway_timeout"
	CodeDifyServerError        Code = "dify_server_error"
	CodeDifyUnreachable        Code = "dify_unreachable"
	CodeDifyBadResponse        Code = "dify_bad_response"
	CodeDifyNoOutput           Code = "dify_no_output"
	CodeBreakerOpen            Code = "breaker_open"
	CodeBreakerMaintenance     Code = "breaker_maintenance"
	CodeImageTooLarge          Code = "image_too_large"
	CodeImageUnsupported       Code = "image_unsupported"
	CodePlatformDownloadFailed Code = "platform_download_failed"
	CodePlatformReplyFailed    Code = "platform_reply_failed"
	CodeInternal               Code = "internal"
)

// Codes returns every diagnosis code in DESIGN.md's order.
func Codes() []Code {
	codes := make([]Code, len(catalogue))
	for i, e := range catalogue {
		codes[i] = e.code
	}
	return codes
}

// Lang selects the language of the text shown to the person.
type Lang string

// The languages of the user texts. Anything else reads as English.
const (
	LangEN Lang = "en"
	LangJA Lang = "ja"
)

// Diagnosis explains one failure: a code, what the person is told, and what the admin should look at.
type Diagnosis struct {
	Code      Code     `json:"code"`
	Summary   string   `json:"summary"`        // One admin-facing line: what was recognised, e.g. `Dify answered 401 unauthorized "Access token is invalid"`.
	Detail    string   `json:"detail"`         // err.Error(): the raw error, for admins only; never shown to the person.
	Node      string   `json:"node,omitempty"` // The failing workflow node's title, when known.
	Retryable bool     `json:"retryable"`      // Whether retrying later can help.
	Outage    bool     `json:"outage"`         // Whether the failure counts against the breaker (dify.IsOutage).
	Causes    []string `json:"causes"`         // The admin's likely causes.
	Checks    []string `json:"checks"`         // The checks to run: concrete commands and settings.
}

// UserText is the short message for the person who sent the request: what happened, what to do, and the
// reference id that lets an admin find the run. It never contains error details. An unknown lang reads as English.
func (d Diagnosis) UserText(lang Lang, ref string) string {
	e := entryFor(d.Code)
	if isJapanese(lang) {
		return withRef(e.ja, "参照番号: ", ref)
	}
	return withRef(e.en, "Reference: ", ref)
}

// HeldText is the one message a person gets while their request is held because the breaker is open: the answer
// is delayed, not lost. code is the hold's diagnosis; breaker_maintenance says maintenance, anything else says
// the AI service is having trouble.
func HeldText(lang Lang, code Code, ref string) string {
	maint := code == CodeBreakerMaintenance
	switch {
	case isJapanese(lang) && maint:
		return withRef(maintenanceJA, "参照番号: ", ref)
	case isJapanese(lang):
		return withRef(heldJA, "参照番号: ", ref)
	case maint:
		return withRef(maintenanceEN, "Reference: ", ref)
	}
	return withRef(heldEN, "Reference: ", ref)
}

func withRef(text, label, ref string) string {
	if ref == "" {
		return text
	}
	return text + "\n" + label + ref
}

const (
	heldEN        = "The AI workflow service is having trouble right now, so your answer will be delayed. Your request has been kept and will be answered as soon as the service recovers."
	heldJA        = "AIワークフローサービスで問題が発生しているため、回答が遅れています。リクエストはお預かりしており、サービスが復旧し次第お答えします。"
	maintenanceEN = "The bot is under maintenance right now. Your request has been kept and will be answered when the maintenance ends."
	maintenanceJA = "ボットは現在メンテナンス中です。リクエストはお預かりしており、メンテナンスが終わり次第お答えします。"
)

func isJapanese(l Lang) bool {
	s := strings.ToLower(string(l))
	return s == "ja" || strings.HasPrefix(s, "ja-") || strings.HasPrefix(s, "ja_")
}

// Error is a failure the bot classified where it happened (an image check, a platform download or reply, a run
// with no usable output). Diagnose reports its Code; an empty Code leaves the classification to the wrapped error.
type Error struct {
	Code Code
	Op   string // What failed, such as "fetch image" or "post reply".
	Err  error
}

func (e *Error) Error() string {
	switch {
	case e.Err == nil && e.Op == "":
		return string(e.Code)
	case e.Err == nil:
		return e.Op + ": " + string(e.Code)
	case e.Op == "":
		return e.Err.Error()
	}
	return e.Op + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Classified returns an *Error that classifies err as code, for the place where a failure is first understood. err may be nil.
func Classified(code Code, op string, err error) error {
	return &Error{Code: code, Op: op, Err: err}
}

// Diagnose classifies err. A nil err gives the zero Diagnosis. It never panics: an error it cannot read is internal.
func Diagnose(err error) (d Diagnosis) {
	if err == nil {
		return Diagnosis{}
	}
	defer func() {
		if r := recover(); r != nil {
			d = build(CodeInternal, fmt.Sprintf("diagnosing %T panicked: %v (a bug in difybot)", err, r), err)
		}
	}()
	code, summary := classify(err)
	d = build(code, summary, err)
	var re *dify.RunError
	if errors.As(err, &re) && re != nil {
		d.Node = re.Node
	}
	d.Retryable = retryable(code, err)
	d.Outage = isOutage(err)
	return d
}

// isOutage is dify.IsOutage, which dereferences what errors.As finds: a typed nil *dify.APIError panics there.
func isOutage(err error) (outage bool) {
	defer func() {
		if recover() != nil {
			outage = false
		}
	}()
	return dify.IsOutage(err)
}

// build fills a Diagnosis from the catalogue.
func build(code Code, summary string, err error) Diagnosis {
	e := entryFor(code)
	return Diagnosis{
		Code:      e.code,
		Summary:   summary,
		Detail:    errorText(err),
		Retryable: e.retryable,
		Causes:    slices.Clone(e.causes),
		Checks:    slices.Clone(e.checks),
	}
}

// errorText is err.Error(), surviving errors whose Error method panics (a typed nil pointer, say).
func errorText(err error) (s string) {
	defer func() {
		if r := recover(); r != nil {
			s = fmt.Sprintf("%T (Error() panicked: %v)", err, r)
		}
	}()
	return err.Error()
}

// classify picks the code and the admin summary, in the order the brief for this file sets out.
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
	if errors.As(err, &te) && te != nil {
		return CodeDifyWorkflowTimeout, fmt.Sprintf("our time limit (DIFY_TIMEOUT) ran out during %q for run %s; the task was asked to stop",
			te.Op, orUnknown(te.RunID))
	}
	var re *dify.RunError
	if errors.As(err, &re) && re != nil {
		return classifyRun(re)
	}
	var ae *dify.APIError
	if errors.As(err, &ae) && ae != nil {
		return classifyAPI(ae)
	}
	var ne *dify.NetError
	if errors.As(err, &ne) && ne != nil {
		sent := "the request was not sent"
		if ne.Sent {
			sent = "the request may have reached Dify"
		}
		return CodeDifyUnreachable, fmt.Sprintf("could not reach Dify during %q: %s; %s", ne.Op, ne.Cause, sent)
	}
	var bre *dify.BadResponseError
	if errors.As(err, &bre) && bre != nil {
		return CodeDifyBadResponse, fmt.Sprintf("Dify's answer to %q was unusable (HTTP %d): %s", bre.Op, bre.Status, clip(bre.Reason))
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return CodeDifyWorkflowTimeout, "a deadline ran out before Dify answered (context deadline exceeded)"
	}
	if errors.Is(err, context.Canceled) {
		return CodeInternal, "the request was cancelled before it finished (difybot shutting down, or the job was cancelled)"
	}
	var inner *Error
	if errors.As(err, &inner) && inner != nil {
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
		if e == nil {
			return nil
		}
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
	case e.Status == http.StatusTooManyRequests || e.Code == "too_many_requests" || e.Code == "rate_limit_error":
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
	case strings.Contains(e.Message, "Conversation Not Exists"):
		// The pipeline starts a new conversation on this; reaching a diagnosis means it did not.
		return CodeInternal, "a stored conversation no longer exists in Dify and difybot did not start a new one (a bug in difybot): " + desc
	case e.Path == "" || knownRoute(e.Path):
		return CodeDifyAppUnavailable, desc
	}
	return CodeDifyWrongURL, fmt.Sprintf("%s is not a Dify service API route: %s", e.Path, desc)
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

// retryable refines the catalogue's answer where the message tells more.
func retryable(code Code, err error) bool {
	r := entryFor(code).retryable
	var msg string
	var re *dify.RunError
	var ae *dify.APIError
	switch {
	case errors.As(err, &re) && re != nil:
		msg = re.Message
	case errors.As(err, &ae) && ae != nil:
		msg = ae.Message
	}
	switch code {
	case CodeDifyModelProvider:
		if containsAny(strings.ToLower(msg), transientProviderMarkers) {
			r = true // A provider's rate limit or outage passes; a key or quota problem does not.
		}
	case CodeDifyWorkflowTimeout:
		if strings.Contains(msg, "Max steps") {
			r = false // A run that loops past the step limit will do it again.
		}
	}
	return r
}

// entry is one code's catalogue row.
type entry struct {
	code      Code
	title     string // Short admin name for summaries.
	en, ja    string // What the person is told: what happened, what to do.
	retryable bool
	causes    []string
	checks    []string
}

func entryFor(c Code) *entry {
	if e, ok := byCode[c]; ok {
		return e
	}
	return byCode[CodeInternal]
}

var byCode = func() map[Code]*entry {
	m := make(map[Code]*entry, len(catalogue))
	for i := range catalogue {
		m[catalogue[i].code] = &catalogue[i]
	}
	return m
}()

// curlInfo is the check that proves key, URL and app in one request. $DIFY_API_KEY stays a shell variable.
const curlInfo = `curl -sS -H "Authorization: Bearer $DIFY_API_KEY" "$DIFY_BASE_URL/info"`

// catalogue holds every code's texts, in DESIGN.md's order. The texts are the product: the person is a colleague,
// never the admin, so the user texts say what happened and whether to try again or to tell an administrator.
var catalogue = []entry{
	{
		code:  CodeDifyAuthInvalid,
		title: "Dify rejected the API key",
		en:    "The bot could not sign in to the AI workflow service, so your request was not run. An administrator needs to update the Dify API key. Please let them know.",
		ja:    "ボットがAIワークフローサービスにログインできなかったため、リクエストは実行されませんでした。管理者がDifyのAPIキーを更新する必要があります。管理者にお知らせください。",
		causes: []string{
			`DIFY_API_KEY is wrong, was deleted or regenerated on the app's "API Access" page, or belongs to another Dify instance or app.`,
			`The key is a knowledge base (dataset) key rather than the app's key; app keys start with "app-".`,
			"The key picked up stray quotes or whitespace from the .env file or the secret store.",
			`The workspace owner's account is disabled (Dify answers "Tenant owner account not found or tenant is not active.").`,
		},
		checks: []string{
			`In Dify, open the app → "API Access" → "API Key", create a key, set it as DIFY_API_KEY and restart difybot.`,
			curlInfo + " must answer 200 with the app's name as JSON.",
			"difybot doctor",
		},
	},
	{
		code:  CodeDifyAppUnavailable,
		title: "the Dify app is disabled or gone",
		en:    "The AI workflow this bot uses is switched off or no longer available, so your request was not run. Please let an administrator know.",
		ja:    "このボットが使うAIワークフローが停止しているか、利用できなくなっているため、リクエストは実行されませんでした。管理者にお知らせください。",
		causes: []string{
			`The app's service API is turned off: the "Backend Service API" card on the app's overview page is not "In Service".`,
			`The app was deleted or is in an abnormal state, or the workspace is archived (Dify 1.x answers 403 "The app no longer exists.", "The app's API service has been disabled.").`,
			"Dify 0.x answers the same conditions with 404 not_found on a valid /v1 route.",
			`The app's configuration is broken, e.g. a workflow app without a workflow (400 app_unavailable "App unavailable, please check your app configurations.").`,
		},
		checks: []string{
			`In Dify, open the app's overview page and switch "Backend Service API" to "In Service".`,
			curlInfo + " must answer 200 with the name of the app you expect.",
			"Open the app in the studio and check it still has a workflow and runs.",
			"difybot doctor",
		},
	},
	{
		code:  CodeDifyWrongURL,
		title: "DIFY_BASE_URL does not lead to Dify's service API",
		en:    "The bot's connection to the AI workflow service is set up incorrectly, so your request was not run. An administrator needs to fix the bot's settings. Please let them know.",
		ja:    "ボットからAIワークフローサービスへの接続設定に誤りがあるため、リクエストは実行されませんでした。管理者がボットの設定を修正する必要があります。管理者にお知らせください。",
		causes: []string{
			"DIFY_BASE_URL does not end in /v1 (https://dify.example.com instead of https://dify.example.com/v1), so requests reach Dify's web frontend, which answers an HTML 404.",
			"DIFY_BASE_URL points at the console API (/console/api) or the web app API (/api) instead of the service API (/v1).",
			"A reverse proxy (Caddy, nginx, an ingress) does not route /v1 to Dify, or strips or rewrites the prefix.",
			"A doubled prefix (…/v1/v1) or a typo in the host or path.",
		},
		checks: []string{
			"Set DIFY_BASE_URL to the base URL shown on the app's \"API Access\" page, ending in /v1 (Dify Cloud: https://api.dify.ai/v1).",
			curlInfo + " must answer JSON; an HTML page means the URL leads somewhere else.",
			"Own proxy: forward /v1/* unchanged to Dify's nginx (port 80) or straight to the api container (api:5001).",
			"difybot doctor",
		},
	},
	{
		code:  CodeDifyWrongAppType,
		title: "the API key belongs to another kind of Dify app",
		en:    "The bot is connected to a different kind of AI app than it expects, so your request was not run. An administrator needs to fix the bot's settings. Please let them know.",
		ja:    "ボットが想定とは異なる種類のAIアプリに接続されているため、リクエストは実行されませんでした。管理者がボットの設定を修正する必要があります。管理者にお知らせください。",
		causes: []string{
			"DIFY_APP_MODE=workflow with the key of a Chatflow, Chatbot or Agent app (not_workflow_app), or DIFY_APP_MODE=chat with a Workflow app's key (not_chat_app).",
			"DIFY_API_KEY was replaced with the key of another app.",
			"The app is a Completion (text generator) app, which difybot does not drive.",
		},
		checks: []string{
			"Set DIFY_APP_MODE=auto so difybot reads the mode from GET /v1/info (Dify 1.x), or set it to match the app: workflow for Workflow apps, chat for Chatflow, Chatbot and Agent apps.",
			curlInfo + " — its \"mode\" field names the app type.",
			"difybot doctor",
		},
	},
	{
		code:  CodeDifyNotPublished,
		title: "the workflow is not published",
		en:    "The AI workflow has not been published yet, so it cannot be run. An administrator needs to publish it in Dify. Please let them know.",
		ja:    "AIワークフローがまだ公開されていないため、実行できませんでした。管理者がDifyで公開する必要があります。管理者にお知らせください。",
		causes: []string{
			"The workflow was built or edited in Dify's studio but never published; the service API runs only the published version.",
			"The app was imported from a DSL file or duplicated and not published afterwards.",
		},
		checks: []string{
			`Open the app in Dify's studio and click "Publish" → "Publish Update".`,
			"difybot run -image test.png -text hello",
		},
	},
	{
		code:  CodeDifyInputInvalid,
		title: "Dify rejected the workflow inputs",
		en:    "The AI workflow did not accept the request as it was sent (for example, a required photo or text was missing), so it was not run. Please check your message, add a photo if one is needed, and try again. If it keeps failing, let an administrator know.",
		ja:    "AIワークフローが送信内容を受け付けなかったため（必要な写真や文章がない、など）、リクエストは実行されませんでした。メッセージの内容を確認し、必要であれば写真を添えて、もう一度お試しください。それでも失敗する場合は管理者にお知らせください。",
		causes: []string{
			`A required Start node variable was not sent ("<var> is required in input form"): the person sent no image or no text, or DIFY_TEXT_INPUT / DIFY_IMAGE_INPUT name a variable the workflow does not have.`,
			`The image went to a variable that does not take it: the file variable does not allow images or the "Local upload" method ("File validation failed for file: …"), or it is a text variable ("must be a string", "must be a file").`,
			`Dify does not know the uploaded file ("Invalid upload file"): the upload and the run went to different Dify instances or workspaces.`,
			`More files than the variable allows ("Number of files exceeds the maximum limit"), or text longer than the variable's max length.`,
		},
		checks: []string{
			`curl -sS -H "Authorization: Bearer $DIFY_API_KEY" "$DIFY_BASE_URL/parameters" and compare user_input_form with DIFY_TEXT_INPUT and DIFY_IMAGE_INPUT, or set both to auto.`,
			`In the workflow's Start node, make the image variable a File (or File list) that allows Images and "Local upload"; raise text variables' max length.`,
			"difybot doctor (checks the inputs)",
			"The run's raw error holds Dify's exact message.",
		},
	},
	{
		code:  CodeDifyFileTooLarge,
		title: "Dify or its proxy refused the file size",
		en:    "Your file is too large for the AI workflow service. Please send a smaller image, such as a screenshot or a photo at a lower resolution.",
		ja:    "ファイルが大きすぎるため、AIワークフローサービスが受け付けませんでした。スクリーンショットや解像度を下げた写真など、より小さい画像を送ってください。",
		causes: []string{
			"The image is over Dify's UPLOAD_IMAGE_FILE_SIZE_LIMIT (default 10 MB; UPLOAD_FILE_SIZE_LIMIT, default 15 MB, for other files).",
			"nginx in front of Dify refused the body: client_max_body_size, set by NGINX_CLIENT_MAX_BODY_SIZE (15M in Dify's docker setup); that 413 is an HTML page.",
			"Another proxy in front is stricter (Caddy request_body max_size, an ingress proxy-body-size, Cloudflare's upload limit).",
			"MAX_IMAGE_BYTES in difybot is higher than what Dify accepts, so oversize images are not shrunk first.",
		},
		checks: []string{
			`Compare MAX_IMAGE_BYTES with image_file_size_limit (MB) in curl -sS -H "Authorization: Bearer $DIFY_API_KEY" "$DIFY_BASE_URL/parameters" (system_parameters).`,
			"Self-hosted: raise UPLOAD_IMAGE_FILE_SIZE_LIMIT and NGINX_CLIENT_MAX_BODY_SIZE in Dify's docker/.env, then docker compose up -d.",
			"If the 413 was an HTML page from another proxy, raise that proxy's body size limit.",
		},
	},
	{
		code:  CodeDifyFileType,
		title: "Dify refused the file type",
		en:    "The AI workflow service does not accept this kind of file. Please send your photo as a JPEG, PNG, WebP or GIF image.",
		ja:    "AIワークフローサービスはこの種類のファイルを受け付けていません。写真はJPEG、PNG、WebP、GIFのいずれかの形式で送ってください。",
		causes: []string{
			"Dify refused the upload's type (415 unsupported_file_type): the file part had no Content-Type, or Dify 0.x does not accept the extension.",
			"The extension is listed in UPLOAD_FILE_EXTENSION_BLACKLIST (file_extension_blocked).",
			"The file is not one of Dify's image types (jpg, jpeg, png, webp, gif, svg), e.g. HEIC from an iPhone.",
		},
		checks: []string{
			"The upload step of the run shows the file name and MIME type difybot sent.",
			"Self-hosted: check UPLOAD_FILE_EXTENSION_BLACKLIST in Dify's docker/.env.",
			`Ask people to send JPEG instead of HEIC (iPhone: Settings → Camera → Formats → "Most Compatible").`,
		},
	},
	{
		code:      CodeDifyRateLimited,
		title:     "rate limited by Dify or a proxy in front of it",
		en:        "The AI workflow service is busy right now and could not take your request. Please try again in a few minutes.",
		ja:        "AIワークフローサービスが混み合っているため、リクエストを受け付けられませんでした。数分後にもう一度お試しください。",
		retryable: true,
		causes: []string{
			`The app's concurrency limit was reached ("Too many requests. Please try again later. The current maximum concurrent requests allowed…"): APP_MAX_ACTIVE_REQUESTS or the app's own limit. Dify reports it as 400, 429 or 500 depending on the version.`,
			`A Dify Cloud plan limit (429 rate_limit_error "Rate limit exceeded, please upgrade your plan or your RPD was 5000 requests/day").`,
			`Cloudflare or another proxy in front of Dify rate-limits the bot (429 "error code: 1015").`,
			"difybot runs more requests at once (WORKERS × replicas) than the app allows.",
		},
		checks: []string{
			"Self-hosted: raise APP_MAX_ACTIVE_REQUESTS in Dify's docker/.env (0 = unlimited), then docker compose up -d api worker.",
			"Lower WORKERS so that WORKERS × replicas stays under the app's limit.",
			"Dify Cloud: check the plan's request quota in Settings → Billing.",
			"The raw error shows Retry-After when Dify or the proxy sent one.",
		},
	},
	{
		code:  CodeDifyModelProvider,
		title: "the model provider refused or failed the call",
		en:    "The AI model behind the workflow could not be used, so there is no answer. This usually needs an administrator to check the model's account, key or usage limit. Please let them know.",
		ja:    "ワークフローが使うAIモデルを利用できなかったため、回答を作成できませんでした。多くの場合、管理者がモデルのアカウント、APIキー、利用上限を確認する必要があります。管理者にお知らせください。",
		causes: []string{
			`The workspace has no valid credentials for the model's provider (provider_not_initialize: "No valid model provider credentials found").`,
			"The provider key is invalid, expired or out of credit, or Dify's hosted trial quota is used up (provider_quota_exceeded).",
			"The model is not available for this key or plan, or the provider removed or renamed it (model_currently_not_support).",
			`The provider rate-limited or failed the call (completion_request_error, e.g. "[ollama] Connection Error … Read timed out").`,
			"A local model server (Ollama, vLLM, Xinference) is down or unreachable from the api and plugin_daemon containers.",
		},
		checks: []string{
			"In Dify: Settings → Model Provider — the provider used by the workflow's LLM nodes has a valid key and is enabled.",
			"Check the provider's own console for quota, billing and rate limits.",
			"Run the LLM node from Dify's studio to see the provider's own error.",
			"Local models: from the api container, curl the model server's URL (use host.docker.internal or the host's address, not localhost).",
		},
	},
	{
		code:      CodeDifyPluginError,
		title:     "a Dify plugin failed",
		en:        "A plugin used by the AI workflow failed, so there is no answer. Please try again in a few minutes. If it keeps happening, let an administrator know.",
		ja:        "AIワークフローが使うプラグインでエラーが発生したため、回答を作成できませんでした。数分後にもう一度お試しください。繰り返し発生する場合は管理者にお知らせください。",
		retryable: true,
		causes: []string{
			`The plugin's upstream (a model API, a tool's service, or Dify Cloud's plugin runtime) answered an HTML error page instead of JSON: "invalid character '<' looking for beginning of value … status: 502 Bad Gateway original response: <html>".`,
			"The model provider behind the plugin refused the call; the inner message shows it (status code 429: rate limit, 401: key).",
			`A bug or unhandled exception in the plugin ("An error occurred in the plugin, please contact the author …").`,
			"The plugin is out of date for this Dify version, or its credentials are wrong.",
		},
		checks: []string{
			"docker compose logs --since 30m plugin_daemon api | grep -iE 'error|PluginInvokeError'",
			"In Dify: Plugins — update the plugin the failing node uses, and re-enter its credentials (Settings → Model Provider for model plugins).",
			"Read the inner message in the raw error: status 429 = provider rate limit, 401 = provider key, 502/503 = provider or plugin runtime outage.",
			"Dify Cloud: check https://status.dify.ai and the model provider's status page.",
		},
	},
	{
		code:      CodeDifyPluginUnavailable,
		title:     "the Dify plugin daemon is unavailable",
		en:        "A service the AI workflow needs is not responding right now, so there is no answer. Please try again in a few minutes. If it keeps happening, let an administrator know.",
		ja:        "AIワークフローが必要とするサービスが現在応答していないため、回答を作成できませんでした。数分後にもう一度お試しください。繰り返し発生する場合は管理者にお知らせください。",
		retryable: true,
		causes: []string{
			`The plugin_daemon container is down, restarting or out of memory ("Request to Plugin Daemon Service failed").`,
			`The plugin's runtime is not installed or not started ("no available node, plugin not found"), e.g. right after an upgrade or while plugins are still installing.`,
			`A plugin call ran longer than allowed ("killed by timeout"): PLUGIN_MAX_EXECUTION_TIMEOUT (plugin daemon) or PLUGIN_DAEMON_TIMEOUT (api → daemon).`,
			"The api container cannot reach the daemon: PLUGIN_DAEMON_URL, or PLUGIN_DAEMON_KEY / PLUGIN_DIFY_INNER_API_KEY differ between api and plugin_daemon.",
		},
		checks: []string{
			"docker compose ps — plugin_daemon must be Up.",
			"docker compose logs --since 30m plugin_daemon api",
			"For slow tools or models, raise PLUGIN_MAX_EXECUTION_TIMEOUT and PLUGIN_DAEMON_TIMEOUT in Dify's docker/.env, then docker compose up -d.",
			"In Dify: Plugins — reinstall or update the plugin the failing node uses.",
		},
	},
	{
		code:  CodeDifyWorkflowFailed,
		title: "the workflow run failed",
		en:    "The AI workflow ran but stopped with an error, so there is no answer. Please let an administrator know and include the reference number.",
		ja:    "AIワークフローは実行されましたが、途中でエラーが発生したため回答を作成できませんでした。参照番号を添えて管理者にお知らせください。",
		causes: []string{
			"A node in the workflow failed (the diagnosis names it): an HTTP Request or Code node error, a tool error, a missing variable, or model output the next node could not parse.",
			`"Unknown error." usually hides a plugin daemon failure whose text was lost (PluginDaemonInnerError has an empty message): check the plugin_daemon logs.`,
			"The run paused for human input, or ended partial-succeeded without the output difybot needs.",
		},
		checks: []string{
			"In Dify: the app → Logs, open the run (workflow_run_id in the step log) and read the failing node's input and error.",
			"Run the workflow from Dify's studio with the same inputs.",
			"docker compose logs --since 30m api worker plugin_daemon",
		},
	},
	{
		code:      CodeDifyWorkflowTimeout,
		title:     "the workflow run took too long",
		en:        "The AI workflow took too long and was stopped before it finished. Please try again later, perhaps with a smaller image or a shorter request. If it keeps happening, let an administrator know.",
		ja:        "AIワークフローの処理に時間がかかりすぎたため、完了前に停止されました。しばらくしてから、小さめの画像や短い依頼内容でもう一度お試しください。繰り返し発生する場合は管理者にお知らせください。",
		retryable: true,
		causes: []string{
			"The run reached difybot's own limit, DIFY_TIMEOUT (default 10m); difybot asked Dify to stop the task.",
			`Dify's limits: WORKFLOW_MAX_EXECUTION_TIME ("Max execution time 1200s reached."), APP_MAX_EXECUTION_TIME (the run ends "stopped"), WORKFLOW_MAX_EXECUTION_STEPS ("Max steps 500 reached.", often a loop or iteration without an exit).`,
			"A slow model or tool, or Dify's workers are busy and the run queued.",
			`Someone stopped the run in Dify ("Stopped by user.").`,
		},
		checks: []string{
			"Open the run in Dify's Logs and see which node took the time.",
			"Self-hosted: raise WORKFLOW_MAX_EXECUTION_TIME, APP_MAX_EXECUTION_TIME or WORKFLOW_MAX_EXECUTION_STEPS in Dify's docker/.env; raise DIFY_TIMEOUT if the workflow really needs longer.",
			"For \"Max steps\": give every Loop and Iteration node an exit condition.",
		},
	},
	{
		code:      CodeDifyGatewayError,
		title:     "a proxy in front of Dify answered with an error page",
		en:        "The AI workflow service is temporarily unavailable (it may be restarting or overloaded). Please try again in a few minutes.",
		ja:        "AIワークフローサービスが一時的に利用できません（再起動中または高負荷の可能性があります）。数分後にもう一度お試しください。",
		retryable: true,
		causes: []string{
			"The Dify api container is down, restarting (an upgrade, a migration) or crashed (out of memory), so nginx answers 502 Bad Gateway.",
			"Caddy or nginx in front cannot reach Dify: not on the same Docker network, a wrong upstream name or port (nginx:80, api:5001), or a stale container IP after a restart.",
			"Cloudflare cannot reach the origin (520–523, 525, 526), or Dify Cloud has an incident.",
			"An access gateway or WAF in front of Dify (Cloudflare Access, basic auth) answered with its own page.",
		},
		checks: []string{
			"docker compose ps — api, worker, nginx, plugin_daemon, db and redis must be Up.",
			"docker compose logs --since 30m api nginx",
			"A proxy in another compose project: docker network inspect <network> must list both the proxy and Dify's nginx (or api); point reverse_proxy at the service name and port on that network.",
			"From the host difybot runs on: " + curlInfo,
			"Dify Cloud: check https://status.dify.ai",
		},
	},
	{
		code:      CodeDifyGatewayTimeout,
		title:     "a proxy in front of Dify timed out",
		en:        "The AI workflow service did not answer in time. Please try again in a few minutes. If it keeps happening, let an administrator know.",
		ja:        "AIワークフローサービスが時間内に応答しませんでした。数分後にもう一度お試しください。繰り返し発生する場合は管理者にお知らせください。",
		retryable: true,
		causes: []string{
			"A proxy closed the connection while the workflow was still running: Cloudflare 524 after about 100 s (Dify Cloud), 504 after about 60 s from a load balancer or ingress, or nginx's proxy_read_timeout.",
			"DIFY_RESPONSE_MODE=blocking keeps the connection silent until the run ends; streaming sends a ping every 10 s, which keeps proxies from timing out.",
			"Dify's api is overloaded and did not answer at all.",
		},
		checks: []string{
			"Use DIFY_RESPONSE_MODE=streaming (the default) for workflows that can run longer than about 60 s.",
			"Self-hosted: raise NGINX_PROXY_READ_TIMEOUT and the idle timeout of every proxy in front (Caddy, ingress proxy-read-timeout, the cloud load balancer).",
			"Check Dify's Logs: the run may have finished anyway, since it keeps running server-side.",
		},
	},
	{
		code:      CodeDifyServerError,
		title:     "Dify had an internal error",
		en:        "The AI workflow service ran into an internal error. Please try again in a few minutes. If it keeps happening, let an administrator know.",
		ja:        "AIワークフローサービスで内部エラーが発生しました。数分後にもう一度お試しください。繰り返し発生する場合は管理者にお知らせください。",
		retryable: true,
		causes: []string{
			"An exception in Dify's api or worker (500 internal_server_error or unknown, or a stream error event with status 500); the traceback is in the api log.",
			"Dify under load, its database or Redis unavailable, or a failed migration after an upgrade.",
			`A plugin daemon failure that Dify reports only as "Internal Server Error, please contact support."`,
			`"Queue listening stopped unexpectedly.": the worker or Redis lost the run.`,
		},
		checks: []string{
			"docker compose logs --since 30m api worker | grep -A 20 Traceback",
			"docker compose ps — db, redis, worker and plugin_daemon must be Up; check disk space and memory (df -h, docker stats).",
			"After an upgrade, look for migration errors at the start of the api log.",
			"Dify Cloud: check https://status.dify.ai",
		},
	},
	{
		code:      CodeDifyUnreachable,
		title:     "Dify is unreachable",
		en:        "The bot could not connect to the AI workflow service. Please try again in a few minutes. If it keeps happening, let an administrator know.",
		ja:        "ボットがAIワークフローサービスに接続できませんでした。数分後にもう一度お試しください。繰り返し発生する場合は管理者にお知らせください。",
		retryable: true,
		causes: []string{
			"connection refused: Dify (or its nginx) is not running or listens elsewhere, or DIFY_BASE_URL says localhost inside a container, where localhost is difybot itself.",
			"DNS lookup failed: a typo in the host, or a Docker service name used from outside that Docker network.",
			"TLS failure: a self-signed or expired certificate, https to a plain-http port, or an intercepting proxy.",
			"timeout or connection reset: a firewall or security group drops the traffic, or the host is overloaded.",
			"difybot and Dify's nginx (or Caddy) are on different Docker networks.",
		},
		checks: []string{
			"difybot doctor — it makes the same request from where the bot runs.",
			"docker compose ps in Dify's directory: nginx and api must be Up.",
			"Same host: docker network connect <dify network> <difybot container>, then DIFY_BASE_URL=http://nginx/v1 (or http://api:5001/v1).",
			"TLS: openssl s_client -connect <host>:443 -servername <host> shows the certificate chain and its dates.",
			"From the host difybot runs on: " + curlInfo,
		},
	},
	{
		code:      CodeDifyBadResponse,
		title:     "Dify's answer was unusable",
		en:        "The AI workflow service sent an answer the bot could not read. Please try again in a few minutes. If it keeps happening, let an administrator know.",
		ja:        "AIワークフローサービスから、ボットが読み取れない応答が返ってきました。数分後にもう一度お試しください。繰り返し発生する場合は管理者にお知らせください。",
		retryable: true,
		causes: []string{
			"Something other than Dify's API answered 200: a login page (Cloudflare Access, an SSO proxy), Dify's web frontend (DIFY_BASE_URL without /v1), a captive portal.",
			`The stream was cut (proxy idle timeout, api restart) before the run finished, and the run could not be found afterwards ("Workflow run not found.").`,
			"A proxy buffers or rewrites text/event-stream, so events arrive late, merged or not at all.",
			"The URL leads to a service that is not Dify, or to a Dify version difybot does not understand.",
		},
		checks: []string{
			"Read the body excerpt in the raw error: HTML means a proxy or the frontend answered.",
			curlInfo + " must answer JSON.",
			"Proxies must pass streams through unbuffered: nginx proxy_buffering off; Caddy reverse_proxy … { flush_interval -1 }.",
			"difybot doctor",
		},
	},
	{
		code:  CodeDifyNoOutput,
		title: "the run succeeded without a usable output",
		en:    "The AI workflow finished but did not produce an answer the bot could send. Please let an administrator know.",
		ja:    "AIワークフローは完了しましたが、送信できる回答が作成されませんでした。管理者にお知らせください。",
		causes: []string{
			"The End node has no output variable, or DIFY_OUTPUT_KEY names a variable the End node does not set.",
			"The output is empty, or it is a file or an object and there is no text output to reply with.",
			"Chatflow: the branch the run took has no Answer node, or the Answer is empty.",
			"A failed node's error strategy let the run succeed with empty outputs.",
		},
		checks: []string{
			"Open the run in Dify's Logs and look at the End node's outputs.",
			"Set DIFY_OUTPUT_KEY to the End node's output name, or to auto (text, answer, result, output, else the only string output).",
			"difybot run -image test.png -text hello -json",
		},
	},
	{
		code:      CodeBreakerOpen,
		title:     "the circuit breaker is open",
		en:        "The AI workflow service is having trouble right now, so the bot could not get an answer for you. Please try again later.",
		ja:        "AIワークフローサービスで問題が発生しているため、回答を取得できませんでした。しばらくしてからもう一度お試しください。",
		retryable: true,
		causes: []string{
			"Recent calls to Dify failed often enough (BREAKER_FAILURE_RATIO of at least BREAKER_MIN_REQUESTS) to trip the breaker, and it did not close again within BREAKER_HOLD_MAX.",
			"The failures that tripped it are the real cause: see the diagnoses of the runs that failed just before (gateway, unreachable, server errors, rate limits).",
		},
		checks: []string{
			"GET /admin/breaker shows the state and mode; GET /admin/runs?status=failed lists the failures that tripped it.",
			"difybot doctor",
			`Once Dify is healthy the breaker closes by itself (a trial call after BREAKER_OPEN_FOR). If the mode was forced, PUT /admin/breaker {"mode":"auto"}.`,
		},
	},
	{
		code:  CodeBreakerMaintenance,
		title: "maintenance: the breaker is forced open",
		// The final reply after BREAKER_HOLD_MAX: the held notice (HeldText) promised an answer when maintenance ends.
		en:        "The bot has been under maintenance for longer than expected, so your request could not be answered. Please send it again after the maintenance is over.",
		ja:        "ボットのメンテナンスが長引いているため、リクエストにお答えできませんでした。メンテナンス終了後に、もう一度送ってください。",
		retryable: true,
		causes: []string{
			`An operator forced the breaker open (PUT /admin/breaker {"mode":"open"}), usually for Dify maintenance or an upgrade; the reason is stored with the mode.`,
			"Held requests run once the mode is back to auto or closed; a request held longer than BREAKER_HOLD_MAX ends with this diagnosis.",
		},
		checks: []string{
			"GET /admin/breaker shows the mode, the reason and since when.",
			`End the maintenance: PUT /admin/breaker {"mode":"auto","reason":"maintenance done"}; every replica applies it within 5 s.`,
		},
	},
	{
		code:  CodeImageTooLarge,
		title: "the image is too large",
		en:    "Your image is too large for the bot, even after shrinking it. Please send a smaller image, such as a screenshot or a photo at a lower resolution.",
		ja:    "画像が大きすぎるため、縮小しても処理できませんでした。スクリーンショットや解像度を下げた写真など、より小さい画像を送ってください。",
		causes: []string{
			"The image is over MAX_IMAGE_BYTES (default 10485760, 10 MiB) and could not be shrunk below it: a format difybot cannot re-encode, or still too large after shrinking.",
			"MAX_IMAGE_BYTES is lower than what people usually send.",
		},
		checks: []string{
			`Compare MAX_IMAGE_BYTES with Dify's image_file_size_limit (curl -sS -H "Authorization: Bearer $DIFY_API_KEY" "$DIFY_BASE_URL/parameters"); keep it at or below Dify's limit.`,
			"The fetch and check steps of the run show the image's size and type.",
		},
	},
	{
		code:  CodeImageUnsupported,
		title: "the image type is not supported",
		en:    "The bot can only handle JPEG, PNG, WebP, GIF or SVG images, and this file is none of them. Please send the picture in one of those formats.",
		ja:    "ボットが扱える画像はJPEG、PNG、WebP、GIF、SVG形式のみで、このファイルはいずれにも当てはまりませんでした。これらの形式で画像を送ってください。",
		causes: []string{
			"The file is not an image Dify accepts (jpg, jpeg, png, webp, gif, svg): HEIC/HEIF from an iPhone, TIFF, BMP, PDF.",
			"The platform sent an HTML page instead of the file, so the sniffed type was text/html: Slack does this when the bot token lacks files:read.",
		},
		checks: []string{
			"The check step of the run shows the sniffed type (http.DetectContentType).",
			"If it is text/html for a Slack file: add the files:read scope under OAuth & Permissions and reinstall the Slack app.",
		},
	},
	{
		code:  CodePlatformDownloadFailed,
		title: "the file could not be downloaded from the chat platform",
		en:    "The bot could not download your file from the chat service. Please send it again. If it still fails, let an administrator know.",
		ja:    "チャットサービスからファイルをダウンロードできませんでした。もう一度送ってください。それでも失敗する場合は管理者にお知らせください。",
		causes: []string{
			"Slack: the bot token lacks the files:read scope (Slack then answers with an HTML sign-in page), or the app was not reinstalled after the scope was added.",
			"Slack: the file was deleted, or it is in a channel or Slack Connect workspace the bot cannot see.",
			"LINE: message content is kept only for a limited time; a job that waited (breaker hold, backlog) can find it gone (404).",
			"LINE: LINE_CHANNEL_TOKEN is wrong or was reissued (401).",
			"Network errors between difybot and files.slack.com or api-data.line.me.",
		},
		checks: []string{
			"Slack: api.slack.com/apps → the app → OAuth & Permissions: files:read under Bot Token Scopes; reinstall to the workspace and update SLACK_BOT_TOKEN if it changed.",
			"LINE: difybot doctor checks the channel token; the run's steps show how long the job waited before the fetch.",
			"Check outbound HTTPS from difybot to files.slack.com and api-data.line.me.",
		},
	},
	{
		code:      CodePlatformReplyFailed,
		title:     "the reply could not be posted",
		en:        "The bot finished your request but could not post the answer here. Please try again later. If it keeps happening, let an administrator know.",
		ja:        "リクエストの処理は完了しましたが、回答をここに投稿できませんでした。しばらくしてからもう一度お試しください。繰り返し発生する場合は管理者にお知らせください。",
		retryable: true,
		causes: []string{
			"Slack: chat.postMessage or chat.update failed: no chat:write scope, the bot is not in the channel (not_in_channel), the channel is archived, or Slack rate-limited the bot (429).",
			"LINE: the reply token expired and the push failed: the monthly message limit is used up (429), LINE_CHANNEL_TOKEN is invalid (401), or the person blocked the bot.",
			"Network errors between difybot and slack.com or api.line.me.",
		},
		checks: []string{
			"The reply step of the run holds the platform's error.",
			"Slack: OAuth & Permissions lists chat:write; invite the bot to the channel (/invite @your-bot).",
			"LINE: LINE Official Account Manager → check the monthly message limit; difybot doctor checks the channel token.",
		},
	},
	{
		code:  CodeInternal,
		title: "unrecognised error (a bug in difybot)",
		en:    "Something went wrong inside the bot, so your request could not be completed. Please let an administrator know and include the reference number.",
		ja:    "ボットの内部で問題が発生したため、リクエストを完了できませんでした。参照番号を添えて管理者にお知らせください。",
		causes: []string{
			"This is a bug in difybot: it met an error it does not recognise or should have handled. The raw error is in the detail.",
			"Or Dify answered with an error difybot does not know yet; the summary names Dify's error code.",
		},
		checks: []string{
			"Please file an issue in difybot's repository with the reference id, the summary and the raw error (remove anything private first).",
			"GET /admin/runs/{id} shows the run's step log.",
			"difybot doctor rules out configuration problems.",
		},
	},
}
