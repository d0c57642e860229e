package bot_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/dify"
	"github.com/difybot/difybot/dify/difytest"
	"github.com/rs/zerolog"
)

// The codes are the product's public face (DESIGN.md, "Diagnosis codes"): spelled and ordered exactly so.
var designCodes = []string{
	"dify_auth_invalid", "dify_app_unavailable", "dify_wrong_url", "dify_wrong_app_type", "dify_not_published",
	"dify_input_invalid", "dify_file_too_large", "dify_file_type", "dify_rate_limited", "dify_plan_limit", "dify_model_provider",
	"dify_plugin_error", "dify_plugin_unavailable", "dify_workflow_failed", "dify_workflow_timeout",
	"dify_gateway_error", "dify_gateway_timeout", "dify_server_error", "dify_unreachable", "dify_bad_response",
	"dify_no_output", "dify_human_input_unavailable", "breaker_open", "breaker_maintenance", "image_too_large", "image_unsupported",
	"platform_download_failed", "platform_reply_failed", "internal",
}

func TestCodesMatchDesign(t *testing.T) {
	got := bot.Codes()
	if len(got) != len(designCodes) {
		t.Fatalf("Codes() has %d codes, DESIGN.md has %d", len(got), len(designCodes))
	}
	for i, c := range got {
		if string(c) != designCodes[i] {
			t.Errorf("Codes()[%d] = %q, want %q", i, c, designCodes[i])
		}
	}
	got[0] = "changed"
	if bot.Codes()[0] != bot.CodeDifyAuthInvalid {
		t.Error("Codes() returns the catalogue's own slice")
	}
}

var (
	keyLike = regexp.MustCompile(`app-[A-Za-z0-9]{6,}`)
	hasKana = func(s string) bool {
		return strings.ContainsFunc(s, func(r rune) bool { return unicode.In(r, unicode.Hiragana, unicode.Katakana) })
	}
	politeJA = regexp.MustCompile(`(ます|です|ください|ません|でした)。`)
)

// Every code has its texts; a code added without them fails here.
func TestCatalogueComplete(t *testing.T) {
	for _, code := range bot.Codes() {
		t.Run(string(code), func(t *testing.T) {
			d := bot.Diagnose(bot.Classified(code, "test", nil))
			if d.Code != code {
				t.Fatalf("Diagnose(Classified(%s)) = %s", code, d.Code)
			}
			en, ja := d.UserText(bot.LangEN, "R-42"), d.UserText(bot.LangJA, "R-42")
			plainEN, plainJA := d.UserText(bot.LangEN, ""), d.UserText(bot.LangJA, "")
			switch {
			case strings.TrimSpace(plainEN) == "":
				t.Error("no English user text")
			case strings.TrimSpace(plainJA) == "":
				t.Error("no Japanese user text")
			case plainEN == plainJA || !hasKana(plainJA):
				t.Errorf("Japanese text is not Japanese: %q", plainJA)
			case !politeJA.MatchString(plainJA):
				t.Errorf("Japanese text is not in です/ます form: %q", plainJA)
			}
			if !strings.HasSuffix(en, "\nReference: R-42") || !strings.HasPrefix(en, plainEN) {
				t.Errorf("English text does not end with the reference: %q", en)
			}
			if !strings.HasSuffix(ja, "\n参照番号: R-42") || !strings.HasPrefix(ja, plainJA) {
				t.Errorf("Japanese text does not end with the reference: %q", ja)
			}
			for _, lang := range []bot.Lang{"", "fr", "EN"} {
				if got := d.UserText(lang, "R-42"); got != en {
					t.Errorf("UserText(%q) = %q, want the English text", lang, got)
				}
			}
			if got := d.UserText("ja-JP", "R-42"); got != ja {
				t.Errorf("UserText(ja-JP) = %q, want the Japanese text", got)
			}
			if len(d.Causes) == 0 || slices.Contains(d.Causes, "") {
				t.Errorf("causes = %q", d.Causes)
			}
			if len(d.Checks) == 0 || slices.Contains(d.Checks, "") {
				t.Errorf("checks = %q", d.Checks)
			}
			for _, s := range slices.Concat([]string{plainEN, plainJA}, d.Causes, d.Checks) {
				if keyLike.MatchString(s) {
					t.Errorf("catalogue text holds something that looks like an API key: %q", s)
				}
				if strings.Contains(s, "Authorization") && !strings.Contains(s, "$DIFY_API_KEY") {
					t.Errorf("a check sends a key that is not the literal $DIFY_API_KEY: %q", s)
				}
			}
			// The admin's lists are copies: changing them must not change the catalogue.
			d.Causes[0] = "changed"
			if bot.Diagnose(bot.Classified(code, "test", nil)).Causes[0] == "changed" {
				t.Error("Diagnosis.Causes shares the catalogue's slice")
			}
		})
	}
	// The zero Diagnosis (Diagnose(nil)) and unknown codes read as internal rather than as nothing.
	internal := bot.Diagnose(errors.New("x")).UserText(bot.LangEN, "R")
	if got := (bot.Diagnosis{}).UserText(bot.LangEN, "R"); got != internal {
		t.Errorf("zero Diagnosis UserText = %q, want the internal text", got)
	}
}

func TestHeldText(t *testing.T) {
	for _, code := range []bot.Code{bot.CodeBreakerMaintenance, bot.CodeBreakerOpen} {
		en, ja := bot.HeldText(bot.LangEN, code, "R-1"), bot.HeldText(bot.LangJA, code, "R-1")
		if !strings.HasSuffix(en, "\nReference: R-1") || !strings.HasSuffix(ja, "\n参照番号: R-1") {
			t.Errorf("%s: held texts lack the reference: %q / %q", code, en, ja)
		}
		if !hasKana(ja) || !politeJA.MatchString(ja) {
			t.Errorf("%s: held Japanese text = %q", code, ja)
		}
	}
	if got := bot.HeldText(bot.LangEN, bot.CodeBreakerMaintenance, ""); !strings.Contains(got, "maintenance") {
		t.Errorf("maintenance held text = %q", got)
	}
	if got := bot.HeldText(bot.LangJA, bot.CodeBreakerMaintenance, ""); !strings.Contains(got, "メンテナンス") {
		t.Errorf("maintenance held text (ja) = %q", got)
	}
	if got := bot.HeldText(bot.LangEN, bot.CodeBreakerOpen, ""); strings.Contains(got, "maintenance") {
		t.Errorf("breaker_open held text speaks of maintenance: %q", got)
	}
}

// wrap hides e under a caller's context so that only errors.As can find it.
func wrap(e error) error { return fmt.Errorf("bot: run r-1: %w", e) }

// Dify's exact answers (reference/dify-api.md §1, §3, §6.4, §9).
const (
	msgConcurrency  = "Too many requests. Please try again later. The current maximum concurrent requests allowed for 5f1c2e4a-8b7d-4c1e-9a3f-2d6b8e0c7a11 is 2."
	msgNotFound     = "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again."
	msgInternal     = "The server encountered an internal error and was unable to complete your request. Either the server is overloaded or there is an error in the application."
	msgPlugin502    = `req_id: ec64f5b62b PluginInvokeError: {"args":null,"error_type":"PluginDaemonInnerError","message":"encountered an error: invalid character '<' looking for beginning of value status: 502 Bad Gateway original response: <html>"}`
	msgPlugin503    = `req_id: 9e1e2daabe PluginInvokeError: {"args":null,"error_type":"PluginDaemonInnerError","message":"encountered an error: invalid character '\u003c' looking for beginning of value status: 503 Service Unavailable original response: \u003chtml\u003e"}`
	msgPluginJSON   = `{"args":null,"error_type":"PluginDaemonInnerError","message":"encountered an error: invalid character '<' looking for beginning of value status: 502 Bad Gateway original response: <html>"}`
	msgPlugin429    = `[openai_api_compatible] Error: PluginInvokeError: {"args":{"description":"[models] Error: API request failed with status code 429: {...}"},"error_type":"InvokeError","message":"[models] Error: API request failed with status code 429: ..."}`
	msgPluginAuthor = "An error occurred in the plugin, please contact the author of langgenius/markdown_exporter/md_to_docx for help, error type: Exception, error details: list index out of range"
	msgNoNode       = "PluginDaemonInternalServerError: no available node, plugin not found"
	msgStreamCrash  = "Internal Server Error, please contact support."
	msgWorkflowPath = "/v1/workflows/run"
)

func TestDiagnose(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		code      bot.Code
		retryable bool
		outage    bool
		node      string
	}{
		// dify_auth_invalid
		{name: "401 bad key", code: bot.CodeDifyAuthInvalid,
			err: &dify.APIError{Op: "run workflow", Method: "POST", Path: msgWorkflowPath, Status: 401, Code: "unauthorized", Message: "Access token is invalid"}},
		{name: "401 no bearer", code: bot.CodeDifyAuthInvalid,
			err: &dify.APIError{Op: "get app info", Method: "GET", Path: "/v1/info", Status: 401, Code: "unauthorized", Message: "Authorization header must be provided and start with 'Bearer'"}},

		// dify_app_unavailable
		{name: "1.x 403 disabled", code: bot.CodeDifyAppUnavailable,
			err: &dify.APIError{Op: "run workflow", Method: "POST", Path: msgWorkflowPath, Status: 403, Code: "forbidden", Message: "The app's API service has been disabled."}},
		{name: "0.x 404 not_found on /v1/workflows/run", code: bot.CodeDifyAppUnavailable,
			err: &dify.APIError{Op: "run workflow", Method: "POST", Path: msgWorkflowPath, Status: 404, Code: "not_found", Message: msgNotFound}},
		{name: "400 app_unavailable", code: bot.CodeDifyAppUnavailable,
			err: &dify.APIError{Op: "get parameters", Method: "GET", Path: "/v1/parameters", Status: 400, Code: "app_unavailable", Message: "App unavailable, please check your app configurations."}},

		// dify_wrong_url
		{name: "HTML 404 on /v1 route", code: bot.CodeDifyWrongURL,
			err: &dify.APIError{Op: "run workflow", Method: "POST", Path: msgWorkflowPath, Status: 404, Title: "404: This page could not be found.", ContentType: "text/html"}},
		{name: "HTML 404 without /v1", code: bot.CodeDifyWrongURL,
			err: &dify.APIError{Op: "run workflow", Method: "POST", Path: "/workflows/run", Status: 404, Title: "404: This page could not be found.", ContentType: "text/html"}},
		{name: "JSON 404 on a path without /v1", code: bot.CodeDifyWrongURL,
			err: &dify.APIError{Op: "get app info", Method: "GET", Path: "/info", Status: 404, Code: "not_found", Message: msgNotFound}},
		{name: "JSON 404 on a doubled /v1", code: bot.CodeDifyWrongURL,
			err: &dify.APIError{Op: "get app info", Method: "GET", Path: "/v1/v1/info", Status: 404, Code: "not_found", Message: msgNotFound}},
		{name: "401 from the console API", code: bot.CodeDifyWrongURL,
			err: &dify.APIError{Op: "run workflow", Method: "POST", Path: "/console/api/workflows/run", Status: 401, Code: "unauthorized", Message: "Invalid Authorization token."}},
		{name: "plain 404 from a proxy", code: bot.CodeDifyWrongURL,
			err: &dify.APIError{Op: "upload file", Method: "POST", Path: "/v1/files/upload", Status: 404, Body: "404 page not found", ContentType: "text/plain"}},

		// dify_wrong_app_type
		{name: "not_workflow_app", code: bot.CodeDifyWrongAppType,
			err: &dify.APIError{Op: "run workflow", Method: "POST", Path: msgWorkflowPath, Status: 400, Code: "not_workflow_app", Message: "Please check if your app mode matches the right API route."}},
		{name: "not_chat_app", code: bot.CodeDifyWrongAppType,
			err: &dify.APIError{Op: "send chat message", Method: "POST", Path: "/v1/chat-messages", Status: 400, Code: "not_chat_app", Message: "Please check if your app mode matches the right API route."}},

		// dify_not_published
		{name: "not published", code: bot.CodeDifyNotPublished,
			err: &dify.APIError{Op: "run workflow", Method: "POST", Path: msgWorkflowPath, Status: 400, Code: "invalid_param", Message: "Workflow not published"}},

		// dify_input_invalid
		{name: "bad file id", code: bot.CodeDifyInputInvalid,
			err: &dify.APIError{Op: "run workflow", Method: "POST", Path: msgWorkflowPath, Status: 400, Code: "invalid_param", Message: "Invalid upload file"}},
		{name: "required input", code: bot.CodeDifyInputInvalid,
			err: &dify.APIError{Op: "run workflow", Method: "POST", Path: msgWorkflowPath, Status: 400, Code: "invalid_param", Message: "photo is required in input form"}},
		{name: "file validation", code: bot.CodeDifyInputInvalid,
			err: &dify.APIError{Op: "run workflow", Method: "POST", Path: msgWorkflowPath, Status: 400, Code: "invalid_param", Message: "File validation failed for file: photo.png"}},
		{name: "text variable got a file", code: bot.CodeDifyInputInvalid,
			err: &dify.APIError{Op: "run workflow", Method: "POST", Path: msgWorkflowPath, Status: 400, Code: "invalid_param", Message: "(type 'text-input') query in input form must be a string"}},

		// dify_file_too_large
		{name: "413 JSON", code: bot.CodeDifyFileTooLarge,
			err: &dify.APIError{Op: "upload file", Method: "POST", Path: "/v1/files/upload", Status: 413, Code: "file_too_large", Message: "File size exceeded. {message}"}},
		{name: "413 nginx HTML", code: bot.CodeDifyFileTooLarge,
			err: &dify.APIError{Op: "upload file", Method: "POST", Path: "/v1/files/upload", Status: 413, Title: "413 Request Entity Too Large", ContentType: "text/html"}},

		// dify_file_type
		{name: "415", code: bot.CodeDifyFileType,
			err: &dify.APIError{Op: "upload file", Method: "POST", Path: "/v1/files/upload", Status: 415, Code: "unsupported_file_type", Message: "File type not allowed."}},

		// dify_rate_limited
		{name: "429 too_many_requests", code: bot.CodeDifyRateLimited, retryable: true, outage: false,
			err: &dify.APIError{Op: "run workflow", Method: "POST", Path: msgWorkflowPath, Status: 429, Code: "too_many_requests", Message: msgConcurrency}},
		{name: "concurrency cap at 400", code: bot.CodeDifyRateLimited, retryable: true, outage: false,
			err: &dify.APIError{Op: "run workflow", Method: "POST", Path: msgWorkflowPath, Status: 400, Code: "invalid_param", Message: msgConcurrency}},
		{name: "concurrency cap at 500", code: bot.CodeDifyRateLimited, retryable: true, outage: false,
			err: &dify.APIError{Op: "run workflow", Method: "POST", Path: msgWorkflowPath, Status: 500, Code: "internal_server_error", Message: msgConcurrency}},
		{name: "concurrency cap under rate_limit_error", code: bot.CodeDifyRateLimited, retryable: true, outage: false,
			err: &dify.APIError{Op: "run workflow", Method: "POST", Path: msgWorkflowPath, Status: 429, Code: "rate_limit_error", Message: msgConcurrency}},
		{name: "Cloudflare 1015 plain", code: bot.CodeDifyRateLimited, retryable: true, outage: true,
			err: &dify.APIError{Op: "run workflow", Method: "POST", Path: msgWorkflowPath, Status: 429, Body: "error code: 1015", ContentType: "text/plain", RetryAfter: 7 * time.Second}},
		{name: "Cloudflare 1015 HTML", code: bot.CodeDifyRateLimited, retryable: true, outage: true,
			err: &dify.APIError{Op: "run workflow", Method: "POST", Path: msgWorkflowPath, Status: 429, Title: "api.dify.ai | 1015: You are being rate limited", ContentType: "text/html"}},

		// dify_plan_limit: Dify Cloud's plan quota lasts until it resets, and Dify itself is well.
		{name: "cloud workflow execution quota", code: bot.CodeDifyPlanLimit,
			err: &dify.APIError{Op: "run workflow", Method: "POST", Path: msgWorkflowPath, Status: 429, Code: "rate_limit_error", Message: "Workflow execution quota limit reached for tenant 8f0a3c52-6d41-4e0b-a7c9-2b5e1d3f4a60"}},
		{name: "cloud sandbox requests per day", code: bot.CodeDifyPlanLimit,
			err: &dify.APIError{Op: "send chat message", Method: "POST", Path: "/v1/chat-messages", Status: 429, Code: "rate_limit_error", Message: "Rate limit exceeded, please upgrade your plan or your RPD was 5000 requests/day"}},
		{name: "rate_limit_error with the default text", code: bot.CodeDifyPlanLimit,
			err: &dify.APIError{Op: "run workflow", Method: "POST", Path: msgWorkflowPath, Status: 429, Code: "rate_limit_error", Message: "Rate Limit Error"}},
		{name: "rate_limit_error at 400", code: bot.CodeDifyPlanLimit,
			err: &dify.APIError{Op: "run workflow", Method: "POST", Path: msgWorkflowPath, Status: 400, Code: "rate_limit_error", Message: "Rate Limit Error"}},

		// dify_model_provider
		{name: "no provider credentials", code: bot.CodeDifyModelProvider,
			err: &dify.APIError{Op: "send chat message", Method: "POST", Path: "/v1/chat-messages", Status: 400, Code: "provider_not_initialize", Message: "No valid model provider credentials found. Please go to Settings -> Model Provider to complete your provider credentials."}},
		{name: "quota in a stream error event", code: bot.CodeDifyModelProvider,
			err: &dify.APIError{Op: "run workflow", Status: 400, Code: "provider_quota_exceeded", InStream: true, Message: "Your quota for Dify Hosted Model Provider has been exhausted. Please go to Settings -> Model Provider to complete your own provider credentials."}},
		{name: "ollama read timeout is passing", code: bot.CodeDifyModelProvider, retryable: true,
			err: &dify.APIError{Op: "send chat message", Method: "POST", Path: "/v1/chat-messages", Status: 400, Code: "completion_request_error", Message: "[ollama] Connection Error, HTTPConnectionPool(host='ollama', port=11434): Read timed out. (read timeout=60)"}},
		{name: "run: provider credentials", code: bot.CodeDifyModelProvider, node: "LLM",
			err: &dify.RunError{Op: "run workflow", RunID: "R", Status: "failed", Node: "LLM", NodeType: "llm", Message: "No valid model provider credentials found. Please go to Settings -> Model Provider to complete your provider credentials."}},

		// dify_plugin_error
		{name: "run: plugin HTML 502 (§9)", code: bot.CodeDifyPluginError, retryable: true, node: "Vision",
			err: &dify.RunError{Op: "run workflow", RunID: "R", Status: "failed", Node: "Vision", NodeType: "llm", Message: msgPlugin502}},
		{name: "run: plugin HTML 503 escaped", code: bot.CodeDifyPluginError, retryable: true,
			err: &dify.RunError{Op: "run workflow", RunID: "R", Status: "failed", Message: msgPlugin503}},
		{name: "run: provider 429 through a plugin", code: bot.CodeDifyPluginError, retryable: true,
			err: &dify.RunError{Op: "run workflow", RunID: "R", Status: "failed", Message: msgPlugin429}},
		{name: "run: plugin author error", code: bot.CodeDifyPluginError, retryable: true,
			err: &dify.RunError{Op: "run workflow", RunID: "R", Status: "failed", Message: msgPluginAuthor}},
		{name: "PluginInvokeError inside 400 invalid_param", code: bot.CodeDifyPluginError, retryable: true,
			err: &dify.APIError{Op: "send chat message", Method: "POST", Path: "/v1/chat-messages", Status: 400, Code: "invalid_param", Message: "PluginInvokeError: " + msgPluginJSON}},
		{name: "bare plugin JSON in a stream error event", code: bot.CodeDifyPluginError, retryable: true,
			err: &dify.APIError{Op: "send chat message", Status: 400, Code: "invalid_param", InStream: true, Message: msgPluginJSON}},

		// dify_plugin_unavailable
		{name: "run: no available node", code: bot.CodeDifyPluginUnavailable, retryable: true,
			err: &dify.RunError{Op: "run workflow", RunID: "R", Status: "failed", Node: "Tool", Message: msgNoNode}, node: "Tool"},
		{name: "run: killed by timeout", code: bot.CodeDifyPluginUnavailable, retryable: true,
			err: &dify.RunError{Op: "run workflow", RunID: "R", Status: "failed", Message: "req_id: 1a2b3c4d5e PluginDaemonInternalServerError: killed by timeout"}},
		{name: "daemon unreachable wrapped in PluginInvokeError", code: bot.CodeDifyPluginUnavailable, retryable: true,
			err: &dify.RunError{Op: "run workflow", RunID: "R", Status: "failed", Message: `PluginInvokeError: {"args":null,"error_type":"PluginDaemonInnerError","message":"Request to Plugin Daemon Service failed"}`}},
		{name: "500 with daemon text", code: bot.CodeDifyPluginUnavailable, retryable: true, outage: true,
			err: &dify.APIError{Op: "run workflow", Method: "POST", Path: msgWorkflowPath, Status: 500, Code: "internal_server_error", Message: msgNoNode}},

		// dify_workflow_failed
		{name: "run: node failed", code: bot.CodeDifyWorkflowFailed, node: "Fetch price",
			err: &dify.RunError{Op: "run workflow", RunID: "R", Status: "failed", Node: "Fetch price", NodeType: "http-request", Message: "Reached maximum retries (3) for URL https://prices.example.com/api"}},
		{name: "run: Unknown error.", code: bot.CodeDifyWorkflowFailed,
			err: &dify.RunError{Op: "run workflow", RunID: "R", Status: "failed", Message: "Unknown error."}},
		{name: "chatflow Run failed as 400", code: bot.CodeDifyWorkflowFailed,
			err: &dify.APIError{Op: "send chat message", Method: "POST", Path: "/v1/chat-messages", Status: 400, Code: "invalid_param", Message: "Run failed: Node Code failed: name 'x' is not defined"}},
		{name: "chatflow Run failed as RunError", code: bot.CodeDifyWorkflowFailed,
			err: &dify.RunError{Op: "send chat message", Status: "failed", Message: "Node Code failed: name 'x' is not defined"}},
		{name: "Run failed with a plugin inside", code: bot.CodeDifyPluginError, retryable: true,
			err: &dify.APIError{Op: "send chat message", Status: 400, Code: "invalid_param", InStream: true, Message: "Run failed: " + msgPlugin502}},
		{name: "partial-succeeded without output", code: bot.CodeDifyWorkflowFailed,
			err: &dify.RunError{Op: "run workflow", RunID: "R", Status: "partial-succeeded"}},

		// dify_workflow_timeout
		{name: "run: max execution time", code: bot.CodeDifyWorkflowTimeout, retryable: true,
			err: &dify.RunError{Op: "run workflow", RunID: "R", Status: "failed", Message: "Max execution time 1200s reached."}},
		{name: "run: max steps is not retryable", code: bot.CodeDifyWorkflowTimeout,
			err: &dify.RunError{Op: "run workflow", RunID: "R", Status: "failed", Message: "Max steps 500 reached."}},
		{name: "run: stopped", code: bot.CodeDifyWorkflowTimeout, retryable: true,
			err: &dify.RunError{Op: "run workflow", RunID: "R", Status: "stopped", Message: "Stopped by user."}},
		{name: "our DIFY_TIMEOUT", code: bot.CodeDifyWorkflowTimeout, retryable: true,
			err: &dify.TimeoutError{Op: "run workflow", RunID: "R", TaskID: "T", Err: context.DeadlineExceeded}},
		{name: "bare deadline", code: bot.CodeDifyWorkflowTimeout, retryable: true, err: context.DeadlineExceeded},

		// dify_gateway_error
		{name: "nginx 502", code: bot.CodeDifyGatewayError, retryable: true, outage: true,
			err: &dify.APIError{Op: "run workflow", Method: "POST", Path: msgWorkflowPath, Status: 502, Title: "502 Bad Gateway", ContentType: "text/html"}},
		{name: "empty 503 from Caddy", code: bot.CodeDifyGatewayError, retryable: true, outage: true,
			err: &dify.APIError{Op: "upload file", Method: "POST", Path: "/v1/files/upload", Status: 503}},
		{name: "Cloudflare 403 page", code: bot.CodeDifyGatewayError, retryable: true, outage: true,
			err: &dify.APIError{Op: "run workflow", Method: "POST", Path: msgWorkflowPath, Status: 403, Title: "Attention Required! | Cloudflare", ContentType: "text/html"}},
		{name: "524 whose Ray ID holds 1015", code: bot.CodeDifyGatewayTimeout, retryable: true, outage: true,
			err: &dify.APIError{Op: "run workflow", Method: "POST", Path: msgWorkflowPath, Status: 524, Title: "api.dify.ai | 524: A timeout occurred", Body: "error code: 1015", ContentType: "text/html"}},
		{name: "Cloudflare 521", code: bot.CodeDifyGatewayError, retryable: true, outage: true,
			err: &dify.APIError{Op: "run workflow", Method: "POST", Path: msgWorkflowPath, Status: 521, Title: "dify.example.com | 521: Web server is down", ContentType: "text/html"}},

		// dify_gateway_timeout
		{name: "nginx 504", code: bot.CodeDifyGatewayTimeout, retryable: true, outage: true,
			err: &dify.APIError{Op: "run workflow", Method: "POST", Path: msgWorkflowPath, Status: 504, Title: "504 Gateway Time-out", ContentType: "text/html"}},
		{name: "Cloudflare 524", code: bot.CodeDifyGatewayTimeout, retryable: true, outage: true,
			err: &dify.APIError{Op: "run workflow", Method: "POST", Path: msgWorkflowPath, Status: 524, Title: "api.dify.ai | 524: A timeout occurred", ContentType: "text/html; charset=UTF-8"}},

		// dify_server_error
		{name: "500 internal_server_error", code: bot.CodeDifyServerError, retryable: true, outage: true,
			err: &dify.APIError{Op: "run workflow", Method: "POST", Path: msgWorkflowPath, Status: 500, Code: "internal_server_error", Message: msgInternal}},
		{name: "0.6 500 unknown", code: bot.CodeDifyServerError, retryable: true, outage: true,
			err: &dify.APIError{Op: "run workflow", Method: "POST", Path: msgWorkflowPath, Status: 500, Code: "unknown", Message: "Internal Server Error"}},
		{name: "stream error event 500", code: bot.CodeDifyServerError, retryable: true, outage: true,
			err: &dify.APIError{Op: "run workflow", Status: 500, Code: "internal_server_error", Message: msgStreamCrash, InStream: true}},
		{name: "queue stopped", code: bot.CodeDifyServerError, retryable: true, outage: true,
			err: &dify.APIError{Op: "run workflow", Method: "POST", Path: msgWorkflowPath, Status: 500, Code: "internal_server_error", Message: "Queue listening stopped unexpectedly."}},

		// dify_unreachable
		{name: "connection refused", code: bot.CodeDifyUnreachable, retryable: true, outage: true,
			err: &dify.NetError{Op: "run workflow", Cause: dify.CauseRefused, Err: syscall.ECONNREFUSED}},
		{name: "reset after sending", code: bot.CodeDifyUnreachable, retryable: true, outage: true,
			err: &dify.NetError{Op: "run workflow", Cause: dify.CauseReset, Sent: true, Err: io.ErrUnexpectedEOF}},

		// dify_bad_response
		{name: "login page with 200", code: bot.CodeDifyBadResponse, retryable: true, outage: true,
			err: &dify.BadResponseError{Op: "get app info", Status: 200, Reason: `HTML page "Sign in" where JSON was expected`, Body: "<html>…"}},
		{name: "run not found after a dropped stream", code: bot.CodeDifyBadResponse, retryable: true,
			err: &dify.APIError{Op: "get workflow run", Method: "GET", Path: "/v1/workflows/run/b1ad3277", Status: 404, Code: "not_found", Message: "Workflow run not found."}},

		// breaker
		{name: "maintenance", code: bot.CodeBreakerMaintenance, retryable: true, err: dify.ErrMaintenance},
		{name: "breaker open", code: bot.CodeBreakerOpen, retryable: true, err: dify.ErrBreakerOpen},

		// bot-side
		{name: "no output", code: bot.CodeDifyNoOutput, err: bot.Classified(bot.CodeDifyNoOutput, "format", errors.New("outputs: image"))},
		{name: "human input without a token", code: bot.CodeDifyHumanInput,
			err: &dify.PausedError{Op: "run workflow", RunID: "r1", Forms: []dify.Form{{ID: "f1", NodeTitle: "Approve"}}}},
		{name: "image too large", code: bot.CodeImageTooLarge, err: bot.Classified(bot.CodeImageTooLarge, "check", errors.New("photo.png is 12 MB"))},
		{name: "image unsupported", code: bot.CodeImageUnsupported, err: bot.Classified(bot.CodeImageUnsupported, "check", nil)},
		{name: "download failed", code: bot.CodePlatformDownloadFailed, err: bot.Classified(bot.CodePlatformDownloadFailed, "fetch", errors.New("slack: 403"))},
		{name: "reply failed", code: bot.CodePlatformReplyFailed, retryable: true, err: bot.Classified(bot.CodePlatformReplyFailed, "reply", errors.New("not_in_channel"))},
		{name: "bot error code wins over the dify error inside", code: bot.CodePlatformReplyFailed, retryable: true, outage: true,
			err: bot.Classified(bot.CodePlatformReplyFailed, "reply", &dify.NetError{Op: "x", Cause: dify.CauseDNS})},
		{name: "bot error without a code defers to the dify error", code: bot.CodeDifyAuthInvalid,
			err: bot.Classified("", "upload", &dify.APIError{Op: "upload file", Method: "POST", Path: "/v1/files/upload", Status: 401, Code: "unauthorized", Message: "Access token is invalid"})},
		{name: "bot error with an unknown code", code: bot.CodeInternal, err: bot.Classified("no_such_code", "x", nil)},
		{name: "coded bot error under an uncoded one", code: bot.CodeImageTooLarge,
			err: bot.Classified("", "prepare", bot.Classified(bot.CodeImageTooLarge, "check", nil))},
		{name: "coded bot error in a join", code: bot.CodePlatformDownloadFailed,
			err: errors.Join(errors.New("first"), bot.Classified(bot.CodePlatformDownloadFailed, "fetch", nil))},

		// internal
		{name: "plain error", code: bot.CodeInternal, err: errors.New("index out of range")},
		{name: "missing user is our bug", code: bot.CodeInternal,
			err: &dify.APIError{Op: "run workflow", Method: "POST", Path: msgWorkflowPath, Status: 400, Code: "invalid_param", Message: "Arg user must be provided."}},
		{name: "bad JSON is our bug", code: bot.CodeInternal,
			err: &dify.APIError{Op: "run workflow", Method: "POST", Path: msgWorkflowPath, Status: 400, Code: "bad_request", Message: "Invalid JSON payload received or JSON payload is empty."}},
		{name: "conversation gone", code: bot.CodeInternal,
			err: &dify.APIError{Op: "send chat message", Method: "POST", Path: "/v1/chat-messages", Status: 404, Code: "not_found", Message: "Conversation Not Exists."}},
		{name: "conversation completed", code: bot.CodeInternal,
			err: &dify.APIError{Op: "send chat message", Method: "POST", Path: "/v1/chat-messages", Status: 400, Code: "conversation_completed", Message: "The conversation has ended. Please start a new conversation."}},
		{name: "cancelled", code: bot.CodeInternal, err: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := wrap(tt.err)
			d := bot.Diagnose(err)
			if d.Code != tt.code || d.Retryable != tt.retryable || d.Outage != tt.outage {
				t.Errorf("Diagnose(%v)\n got code=%s retryable=%v outage=%v\nwant code=%s retryable=%v outage=%v\nsummary: %s",
					err, d.Code, d.Retryable, d.Outage, tt.code, tt.retryable, tt.outage, d.Summary)
			}
			if d.Node != tt.node {
				t.Errorf("Node = %q, want %q", d.Node, tt.node)
			}
			if d.Summary == "" || strings.ContainsAny(d.Summary, "\n\r") {
				t.Errorf("Summary is not one line: %q", d.Summary)
			}
			if d.Detail == "" {
				t.Error("Detail is empty")
			}
			if d.Outage != dify.IsOutage(err) {
				t.Errorf("Outage = %v, dify.IsOutage = %v", d.Outage, dify.IsOutage(err))
			}
		})
	}
}

// Dify Cloud's plan quota, as the simulator answers it: one POST, never retried, not an outage.
func TestPlanLimitDiagnosis(t *testing.T) {
	sim := difytest.NewServer(difytest.Options{Scenario: "plan_limit"})
	defer sim.Close()
	c, err := dify.New(dify.Config{BaseURL: sim.URL(), APIKey: "app-test", Logger: zerolog.Nop(),
		Retry:   dify.RetryPolicy{Base: time.Millisecond, Max: time.Millisecond},
		Breaker: dify.BreakerConfig{MinRequests: 1, FailureRatio: 0.01}})
	if err != nil {
		t.Fatal(err)
	}
	for i, mode := range []dify.ResponseMode{dify.Streaming, dify.Blocking} {
		_, err = c.RunWorkflow(context.Background(), dify.RunRequest{User: "u", Mode: mode, Inputs: map[string]any{"query": "hi"}})
		d := bot.Diagnose(wrap(err))
		if d.Code != bot.CodeDifyPlanLimit || d.Retryable || d.Outage || !strings.Contains(d.Summary, "plan quota") {
			t.Errorf("%s: diagnosis %s retryable %v outage %v: %s", mode, d.Code, d.Retryable, d.Outage, d.Summary)
		}
		if n := sim.Calls(difytest.RouteRun); n != i+1 {
			t.Errorf("%s: workflows/run called %d times in all after run %d, want exactly one POST per run", mode, n, i+1)
		}
	}
	if s := c.Breaker().Status(); s.State != "closed" || s.Failures != 0 {
		t.Errorf("breaker %+v, want closed without failures", s)
	}
}

func TestDiagnoseSummary(t *testing.T) {
	tests := []struct {
		err  error
		want []string
	}{
		{&dify.APIError{Op: "get app info", Method: "GET", Path: "/v1/info", Status: 401, Code: "unauthorized", Message: "Access token is invalid"},
			[]string{`Dify answered 401 unauthorized "Access token is invalid"`, "GET /v1/info"}},
		{&dify.RunError{Op: "run workflow", RunID: "R1", Status: "failed", Node: "Vision", NodeType: "llm", Message: "boom"},
			[]string{"R1", `"failed"`, `node "Vision"`, "boom"}},
		{&dify.NetError{Op: "run workflow", Cause: dify.CauseDNS, Err: errors.New("no such host")}, []string{"DNS lookup failed", "not sent"}},
		{&dify.APIError{Op: "get app info", Method: "GET", Path: "/info", Status: 404, Title: "404: This page could not be found."}, []string{"/v1", "DIFY_BASE_URL"}},
		{&dify.APIError{Op: "run workflow", Method: "POST", Path: msgWorkflowPath, Status: 400, Code: "bad_request", Message: "x"}, []string{`"bad_request"`}},
		{errors.New("boom"), []string{"bug", "issue"}},
		{bot.Classified(bot.CodeImageTooLarge, "check", nil), []string{"check", "too large"}},
	}
	for _, tt := range tests {
		s := bot.Diagnose(tt.err).Summary
		for _, w := range tt.want {
			if !strings.Contains(s, w) {
				t.Errorf("Summary for %v = %q, want it to mention %q", tt.err, s, w)
			}
		}
	}
	long := strings.Repeat("x", 5000)
	if s := bot.Diagnose(&dify.RunError{Status: "failed", Message: long}).Summary; len(s) > 400 {
		t.Errorf("Summary is %d bytes long; want it clipped", len(s))
	}
	if d := bot.Diagnose(nil); d.Code != "" || d.Summary != "" || d.Causes != nil {
		t.Errorf("Diagnose(nil) = %+v, want the zero Diagnosis", d)
	}
}

// The person never sees error details: feed a secret through every field an error has.
func TestUserTextHidesErrorDetails(t *testing.T) {
	const secret = "app-SECRET123"
	errs := []error{
		&dify.APIError{Op: secret, Method: "POST", Path: "/v1/" + secret, Status: 401, Code: "unauthorized", Message: "Access token " + secret + " is invalid"},
		&dify.APIError{Op: "run", Status: 400, Code: "invalid_param", Message: "PluginInvokeError: " + secret},
		&dify.APIError{Op: "run", Status: 502, Title: secret, Body: secret},
		&dify.APIError{Op: "run", Status: 429, Body: "error code: 1015 " + secret},
		&dify.RunError{Op: "run", RunID: secret, Status: "failed", Node: secret, NodeType: secret, Message: secret},
		&dify.NetError{Op: "run", Cause: dify.CauseTLS, Err: errors.New(secret)},
		&dify.BadResponseError{Op: "run", Status: 200, Reason: secret, Body: secret},
		&dify.TimeoutError{Op: "run", RunID: secret, Err: context.DeadlineExceeded},
		bot.Classified(bot.CodePlatformDownloadFailed, secret, errors.New(secret)),
		errors.New(secret),
	}
	for _, err := range errs {
		d := bot.Diagnose(fmt.Errorf("%s: %w", secret, err))
		if !strings.Contains(d.Detail, secret) {
			t.Errorf("Detail should keep the raw error for admins: %q", d.Detail)
		}
		for _, lang := range []bot.Lang{bot.LangEN, bot.LangJA, "de"} {
			if txt := d.UserText(lang, "R-1"); strings.Contains(txt, secret) || strings.Contains(txt, "SECRET") {
				t.Errorf("UserText(%s) for %s leaks the error: %q", lang, d.Code, txt)
			}
		}
		if txt := bot.HeldText(bot.LangEN, d.Code, "R-1"); strings.Contains(txt, "SECRET") {
			t.Errorf("HeldText leaks the error: %q", txt)
		}
	}
}

func TestError(t *testing.T) {
	inner := errors.New("not_in_channel")
	err := bot.Classified(bot.CodePlatformReplyFailed, "reply", inner)
	if got := err.Error(); got != "reply: not_in_channel" {
		t.Errorf("Error() = %q", got)
	}
	if !errors.Is(err, inner) {
		t.Error("errors.Is does not reach the wrapped error")
	}
	var be *bot.Error
	if !errors.As(fmt.Errorf("x: %w", err), &be) || be.Code != bot.CodePlatformReplyFailed || be.Op != "reply" {
		t.Errorf("errors.As = %+v", be)
	}
	for _, tt := range []struct {
		err  *bot.Error
		want string
	}{
		{&bot.Error{Code: bot.CodeDifyNoOutput, Op: "format"}, "format: dify_no_output"},
		{&bot.Error{Code: bot.CodeDifyNoOutput}, "dify_no_output"},
		{&bot.Error{Err: inner}, "not_in_channel"},
	} {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("%+v.Error() = %q, want %q", *tt.err, got, tt.want)
		}
	}
}

func FuzzDiagnose(f *testing.F) {
	f.Add(401, "unauthorized", "Access token is invalid", "", "", "/v1/info", false, "failed", "")
	f.Add(400, "invalid_param", msgConcurrency, "", "", msgWorkflowPath, false, "failed", "LLM")
	f.Add(400, "invalid_param", "Run failed: "+msgPlugin502, "", "", "", true, "stopped", "")
	f.Add(404, "not_found", msgNotFound, "", "", "/v1/v1/workflows/run/", false, "", "")
	f.Add(429, "", "", "", "error code: 1015", msgWorkflowPath, false, "partial-succeeded", "")
	f.Add(524, "", "", "api.dify.ai | 524: A timeout occurred", "", msgWorkflowPath, false, "failed", "")
	f.Add(500, "internal_server_error", msgStreamCrash, "", "", "", true, "failed", "")
	f.Add(0, "", msgPlugin503, "", "", "", false, "", "")
	f.Add(-1, "\x00", "\xff\xfe", "<title>", "\u003c", "/v1", true, "\xff", "\xff")
	codes := bot.Codes()
	f.Fuzz(func(t *testing.T, status int, code, message, title, body, path string, inStream bool, runStatus, node string) {
		errs := []error{
			&dify.APIError{Op: "run workflow", Method: "POST", Path: path, Status: status, Code: code, Message: message,
				Title: title, Body: body, ContentType: title, InStream: inStream},
			&dify.RunError{Op: "run workflow", RunID: code, Status: runStatus, Message: message, Node: node, NodeType: title},
			bot.Classified(bot.Code(code), path, &dify.RunError{Status: runStatus, Message: message}),
		}
		for _, err := range errs {
			d := bot.Diagnose(wrap(err))
			if !slices.Contains(codes, d.Code) {
				t.Fatalf("Diagnose(%v) = %q, not a code from Codes()", err, d.Code)
			}
			if len(d.Causes) == 0 || len(d.Checks) == 0 || d.Summary == "" {
				t.Fatalf("Diagnose(%v) is incomplete: %+v", err, d)
			}
			for _, lang := range []bot.Lang{bot.LangEN, bot.LangJA} {
				// The person's text depends on the code alone, never on what the error said.
				if got, want := d.UserText(lang, "R"), (bot.Diagnosis{Code: d.Code}).UserText(lang, "R"); got != want {
					t.Fatalf("UserText depends on the error's details: %q", got)
				}
			}
			if d.Outage != dify.IsOutage(wrap(err)) {
				t.Fatalf("Outage disagrees with dify.IsOutage for %v", err)
			}
		}
	})
}
