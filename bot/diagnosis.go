package bot

import (
	"errors"
	"slices"
	"strings"

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
	CodeDifyPlanLimit          Code = "dify_plan_limit"
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
	CodeDifyHumanInput         Code = "dify_human_input_unavailable"
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

// BusyText tells a person who sent more than their share per minute that this message waits a little.
func BusyText(lang Lang, ref string) string {
	if isJapanese(lang) {
		return withRef(busyJA, "参照番号: ", ref)
	}
	return withRef(busyEN, "Reference: ", ref)
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
	busyEN        = "You have sent a lot of messages in a short time, so this one waits its turn. It has been kept and will be answered within a minute or so."
	busyJA        = "短い時間にたくさんのメッセージを受け取ったため、このメッセージは順番をお待ちいただいています。お預かりしており、1分ほどでお答えします。"
	maintenanceJA = "ボットは現在メンテナンス中です。リクエストはお預かりしており、メンテナンスが終わり次第お答えします。"
)

func isJapanese(l Lang) bool { return l.Japanese() }

// Japanese reports whether l is Japanese: ja, ja-JP and ja_JP are; anything else is read as English.
func (l Lang) Japanese() bool {
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

// Diagnose classifies err. A nil err gives the zero Diagnosis. A typed nil inside err is a caller bug, not an
// input, so Diagnose does not guard against it.
func Diagnose(err error) Diagnosis {
	if err == nil {
		return Diagnosis{}
	}
	code, summary := classify(err)
	d := build(code, summary, err)
	var re *dify.RunError
	if errors.As(err, &re) {
		d.Node = re.Node
	}
	d.Retryable = retryable(code, err)
	d.Outage = dify.IsOutage(err)
	return d
}

// build fills a Diagnosis from the catalogue. The lists are cloned so that a caller editing them cannot change
// the catalogue.
func build(code Code, summary string, err error) Diagnosis {
	e := entryFor(code)
	return Diagnosis{
		Code:      e.code,
		Summary:   summary,
		Detail:    err.Error(),
		Retryable: e.retryable,
		Causes:    slices.Clone(e.causes),
		Checks:    slices.Clone(e.checks),
	}
}

// retryable refines the catalogue's answer where the message tells more.
func retryable(code Code, err error) bool {
	r := entryFor(code).retryable
	var msg string
	var re *dify.RunError
	var ae *dify.APIError
	switch {
	case errors.As(err, &re):
		msg = re.Message
	case errors.As(err, &ae):
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
