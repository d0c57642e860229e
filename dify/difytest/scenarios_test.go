package difytest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/dify/difytest"
)

// Dify's texts, spelled out again so that a typo in the fake shows.
const (
	msgNotFound    = "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again."
	msgInternal    = "The server encountered an internal error and was unable to complete your request. Either the server is overloaded or there is an error in the application."
	msgAppMode     = "Please check if your app mode matches the right API route."
	msgConcurrency = "Too many requests. Please try again later. The current maximum concurrent requests allowed for 5d5b1b3e-7a2f-4c1e-9b8d-0f6a2e4c8d11 is 2."
	msgPlugin      = `req_id: 9e1e2daabe PluginInvokeError: {"args":null,"error_type":"PluginDaemonInnerError","message":"encountered an error: invalid character '<' looking for beginning of value status: 502 Bad Gateway original response: <html>"}`
	msgProvider    = "No valid model provider credentials found. Please go to Settings -> Model Provider to complete your provider credentials."
)

// probe is one request of a scenario check.
type probe int

const (
	info probe = iota
	upload
	run        // Blocking workflows/run.
	stream     // Streaming workflows/run.
	chat       // Blocking chat-messages.
	chatStream // Streaming chat-messages.
)

func (p probe) String() string {
	return [...]string{"info", "upload", "run", "stream", "chat", "chat-stream"}[p]
}

// check is what one probe must see. Zero fields are not checked.
type check struct {
	probe   probe
	status  int
	ctype   string // Prefix of Content-Type.
	code    string // Error envelope code.
	message string // Error envelope message, exactly.
	title   string // The HTML page's <title>.
	body    string // A substring of the body.
	header  [2]string
	run     string // Run status: blocking data.status, the stream's workflow_finished, or "succeeded" for a chat answer.
	runErr  string
	event   string // The stream's last event.
	failed  string // The title of a node that finished failed.
}

func jsonErr(p probe, status int, code, msg string) check {
	return check{probe: p, status: status, ctype: "application/json", code: code, message: msg}
}

func page(p probe, status int, ctype, title string) check {
	return check{probe: p, status: status, ctype: ctype, title: title}
}

func ran(p probe, status, errMsg string) check {
	return check{probe: p, status: http.StatusOK, run: status, runErr: errMsg}
}

func streamed(status, errMsg, event, failed string) check {
	return check{probe: stream, status: http.StatusOK, ctype: "text/event-stream; charset=utf-8", run: status,
		runErr: errMsg, event: event, failed: failed}
}

var uploaded = check{probe: upload, status: http.StatusCreated, ctype: "application/json"}

var scenarioChecks = map[string][]check{
	"ok": {{probe: info, status: 200, ctype: "application/json", body: `"mode":"workflow"`}, uploaded,
		ran(run, "succeeded", ""), streamed("succeeded", "", "workflow_finished", ""),
		jsonErr(chat, 400, "not_chat_app", msgAppMode)},
	"slow":    {ran(run, "succeeded", ""), streamed("succeeded", "", "workflow_finished", "")},
	"chat_ok": {{probe: info, status: 200, body: `"mode":"advanced-chat"`}, jsonErr(run, 400, "not_workflow_app", msgAppMode), ran(chat, "succeeded", ""), {probe: chatStream, status: 200, event: "message_end", run: "succeeded"}},
	"version_0_6": {{probe: info, status: 200, body: `{"name": "Photo Describer", "description": `}, uploaded,
		ran(run, "succeeded", ""), streamed("succeeded", "", "workflow_finished", "")},

	"auth_invalid":    {jsonErr(info, 401, "unauthorized", "Access token is invalid"), jsonErr(run, 401, "unauthorized", "Access token is invalid")},
	"app_disabled":    {jsonErr(info, 403, "forbidden", "The app's API service has been disabled."), jsonErr(upload, 403, "forbidden", "The app's API service has been disabled."), jsonErr(run, 403, "forbidden", "The app's API service has been disabled.")},
	"app_disabled_0x": {jsonErr(info, 404, "not_found", msgNotFound), jsonErr(run, 404, "not_found", msgNotFound)},
	"app_unavailable": {{probe: info, status: 200}, jsonErr(run, 400, "app_unavailable", "App unavailable, please check your app configurations.")},
	"wrong_url": {page(info, 404, "text/html", "404: This page could not be found."), page(upload, 404, "text/html", "404: This page could not be found."),
		page(run, 404, "text/html", "404: This page could not be found.")},
	"not_workflow_app": {{probe: info, status: 200, body: `"mode":"chat"`}, jsonErr(run, 400, "not_workflow_app", msgAppMode), jsonErr(stream, 400, "not_workflow_app", msgAppMode), ran(chat, "succeeded", ""), {probe: chatStream, status: 200, event: "message_end", run: "succeeded"}},
	"not_chat_app":     {jsonErr(chat, 400, "not_chat_app", msgAppMode), ran(run, "succeeded", "")},
	"not_published":    {jsonErr(run, 400, "invalid_param", "Workflow not published"), jsonErr(stream, 400, "invalid_param", "Workflow not published"), uploaded},
	"input_required":   {jsonErr(run, 400, "invalid_param", "photo is required in input form")},
	"file_invalid":     {jsonErr(run, 400, "invalid_param", "File validation failed for file: photo.png")},

	"upload_too_large":   {jsonErr(upload, 413, "file_too_large", "File size exceeded. {message}"), ran(run, "succeeded", "")},
	"nginx_413":          {page(upload, 413, "text/html", "413 Request Entity Too Large"), ran(run, "succeeded", "")},
	"upload_unsupported": {jsonErr(upload, 415, "unsupported_file_type", "File type not allowed.")},

	"rate_limited":      {{probe: run, status: 429, ctype: "application/json", code: "too_many_requests", message: msgConcurrency, header: [2]string{"Retry-After", "2"}}, uploaded},
	"concurrency_limit": {jsonErr(run, 400, "invalid_param", msgConcurrency)},
	"daily_limit":       {jsonErr(run, 429, "rate_limit_error", "Rate limit exceeded, please upgrade your plan or your RPD was 5000 requests/day")},
	"plan_limit": {jsonErr(run, 429, "rate_limit_error", "Workflow execution quota limit reached for tenant 8f0a3c52-6d41-4e0b-a7c9-2b5e1d3f4a60"),
		jsonErr(stream, 429, "rate_limit_error", "Workflow execution quota limit reached for tenant 8f0a3c52-6d41-4e0b-a7c9-2b5e1d3f4a60"), uploaded, {probe: info, status: 200}},
	"cloudflare_1015": {{probe: info, status: 429, ctype: "text/html; charset=UTF-8", title: "Access denied | api.dify.ai used Cloudflare to restrict access", body: "Error code 1015"},
		page(run, 429, "text/html", "Access denied | api.dify.ai used Cloudflare to restrict access")},
	"cloudflare_1015_plain": {{probe: run, status: 429, ctype: "text/plain", body: "error code: 1015"}},

	"provider_not_initialize": {jsonErr(run, 400, "provider_not_initialize", msgProvider), {probe: stream, status: 200, event: "error", code: "provider_not_initialize", message: msgProvider}},
	"provider_quota": {jsonErr(run, 400, "provider_quota_exceeded", "Your quota for Dify Hosted OpenAI has been exhausted. Please go to Settings -> Model Provider to complete your own provider credentials."),
		{probe: stream, status: 200, event: "error", code: "provider_quota_exceeded", message: "Your quota for Dify Hosted Model Provider has been exhausted. Please go to Settings -> Model Provider to complete your own provider credentials."}},
	"model_not_supported": {jsonErr(run, 400, "model_currently_not_support", "Dify Hosted OpenAI trial currently not support the GPT-4 model."), {probe: stream, status: 200, event: "error", code: "model_currently_not_support"}},
	"completion_error":    {{probe: run, status: 400, code: "completion_request_error"}, {probe: stream, status: 200, event: "error", code: "completion_request_error"}},
	"plugin_error":        {ran(run, "failed", msgPlugin), streamed("failed", msgPlugin, "workflow_finished", "Analyse image")},
	"plugin_unavailable": {ran(run, "failed", "PluginDaemonInternalServerError: no available node, plugin not found"),
		streamed("failed", "PluginDaemonInternalServerError: no available node, plugin not found", "workflow_finished", "Analyse image")},
	"plugin_timeout":  {ran(run, "failed", "PluginDaemonInternalServerError: killed by timeout")},
	"workflow_failed": {ran(run, "failed", "NameError: name 'x' is not defined"), streamed("failed", "NameError: name 'x' is not defined", "workflow_finished", "Format reply")},
	"max_time":        {ran(run, "failed", "Max execution time 1200s reached."), streamed("failed", "Max execution time 1200s reached.", "workflow_finished", "")},
	"max_steps":       {ran(run, "failed", "Max steps 500 reached.")},
	"stopped":         {ran(run, "stopped", "Stopped by user."), streamed("stopped", "Stopped by user.", "workflow_finished", "")},

	"gateway_502":    {page(info, 502, "text/html", "502 Bad Gateway"), page(upload, 502, "text/html", "502 Bad Gateway"), page(stream, 502, "text/html", "502 Bad Gateway")},
	"gateway_503":    {page(run, 503, "text/html", "503 Service Temporarily Unavailable")},
	"cloudflare_502": {page(run, 502, "text/html; charset=UTF-8", "api.dify.ai | 502: Bad gateway")},
	"gateway_504":    {page(run, 504, "text/html", "504 Gateway Time-out")},
	"cloudflare_524": {page(run, 524, "text/html; charset=UTF-8", "api.dify.ai | 524: A timeout occurred")},

	"server_error":   {jsonErr(run, 500, "internal_server_error", msgInternal)},
	"server_unknown": {{probe: run, status: 500, body: `{"message":"Internal Server Error","code":"unknown","status":500}`}},
	"stream_error": {jsonErr(run, 500, "internal_server_error", msgInternal),
		{probe: stream, status: 200, event: "error", code: "internal_server_error", message: "Internal Server Error, please contact support."}},
	"stream_cut":      {ran(run, "succeeded", "")}, // The cut itself: TestStreamCut.
	"stream_cut_lost": {{probe: run, status: 200, ctype: "application/json"}},
	"bad_response":    {{probe: run, status: 200, ctype: "text/plain", body: "OK"}, {probe: stream, status: 200, ctype: "text/plain", body: "OK"}, uploaded},
	"no_output":       {{probe: run, status: 200, run: "succeeded", body: `"outputs":{}`}},
	"image_output": {{probe: run, status: 200, run: "succeeded", body: `"filename":"annotated.png"`},
		{probe: stream, status: 200, event: "workflow_finished", run: "succeeded", body: ""}},
	"csv_output":       {{probe: run, status: 200, run: "succeeded", body: `"filename":"labels.csv"`}},
	"file_list_output": {{probe: run, status: 200, run: "succeeded", body: `"files":[{"dify_model_identity":"__dify__file__"`}},
	"file_expired":     {{probe: run, status: 200, run: "succeeded", body: `"url":"/files/tools/`}},
	"think_output":     {{probe: run, status: 200, run: "succeeded", body: `"text":"<think>`}},
	"stream_long":      {{probe: run, status: 200, run: "succeeded", body: `"text":"<think>`}}, // And TestStreamLong.
	"object_output":    {{probe: run, status: 200, run: "succeeded", body: `"outputs":{"result":{"label":"cat","confidence":0.93,`}},
	"chat_files": {{probe: info, status: 200, body: `"mode":"advanced-chat"`},
		{probe: chatStream, status: 200, event: "message_end", run: "succeeded"}},
	// The form, the submit and the resumed events: dify's TestHumanInput*.
	"human_input":          {{probe: stream, status: 200, event: "workflow_paused"}},
	"human_input_twice":    {{probe: stream, status: 200, event: "workflow_paused"}},
	"human_input_no_token": {{probe: stream, status: 200, event: "workflow_paused"}},
	"flaky": {page(upload, 502, "text/html", "502 Bad Gateway"), page(upload, 502, "text/html", "502 Bad Gateway"), uploaded,
		page(run, 502, "text/html", "502 Bad Gateway"), page(run, 502, "text/html", "502 Bad Gateway"), ran(run, "succeeded", ""), {probe: info, status: 200}},
}

// diagnosisCodes are the codes of DESIGN.md that a Dify answer can provoke.
var diagnosisCodes = []string{"dify_auth_invalid", "dify_app_unavailable", "dify_wrong_url", "dify_wrong_app_type",
	"dify_not_published", "dify_input_invalid", "dify_file_too_large", "dify_file_type", "dify_rate_limited",
	"dify_plan_limit", "dify_model_provider", "dify_plugin_error", "dify_plugin_unavailable", "dify_workflow_failed",
	"dify_workflow_timeout", "dify_gateway_error", "dify_gateway_timeout", "dify_server_error", "dify_unreachable",
	"dify_bad_response", "dify_no_output", "dify_human_input_unavailable"}

func TestCatalogueIsCovered(t *testing.T) {
	var got []string
	for _, sc := range difytest.Scenarios() {
		got = append(got, sc.Name)
		if _, ok := scenarioChecks[sc.Name]; !ok {
			t.Errorf("scenario %q has no checks", sc.Name)
		}
		if sc.Description == "" || !strings.HasSuffix(sc.Description, ".") {
			t.Errorf("scenario %q: description %q should be a sentence", sc.Name, sc.Description)
		}
		if sc.Code != "" && !slices.Contains(diagnosisCodes, sc.Code) {
			t.Errorf("scenario %q: code %q is not a Dify diagnosis code of DESIGN.md", sc.Name, sc.Code)
		}
	}
	if !slices.IsSorted(got) {
		t.Errorf("Scenarios() not sorted by name: %v", got)
	}
	for name := range scenarioChecks {
		if !slices.Contains(got, name) {
			t.Errorf("checks for %q, which is not in the catalogue", name)
		}
	}
}

func TestScenarios(t *testing.T) {
	for name, checks := range scenarioChecks {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, difytest.Options{Scenario: name, Latency: time.Millisecond})
			for i, c := range checks {
				c.verify(t, s, i)
			}
		})
	}
}

func (c check) verify(t testing.TB, s *difytest.Server, i int) {
	t.Helper()
	var r result
	var evs []event
	switch c.probe {
	case info:
		r = get(t, s, "/info")
	case upload:
		r = uploadFile(t, s, "photo.png", "image/png", bytes.NewReader(pngBytes(t, 4, 3)))
	case run:
		r = postJSON(t, s, "/workflows/run", runBody("blocking", nil))
	case chat:
		r = postJSON(t, s, "/chat-messages", chatBody("blocking", ""))
	case stream, chatStream:
		path, body := "/workflows/run", runBody("streaming", nil)
		if c.probe == chatStream {
			path, body = "/chat-messages", chatBody("streaming", "")
		}
		st := openStream(t, t.Context(), s, path, body)
		r = result{status: st.resp.StatusCode, header: st.resp.Header}
		if strings.HasPrefix(r.header.Get("Content-Type"), "text/event-stream") {
			var err error
			if evs, err = st.all(); err != nil {
				t.Errorf("probe %d (%v): stream read: %v", i, c.probe, err)
			}
		} else {
			r.body, _ = io.ReadAll(st.br)
			json.Unmarshal(r.body, &r.env)
		}
	}
	where := func() string { return fmt.Sprintf("%v (check %d)", c.probe, i) }
	if r.status != c.status {
		t.Fatalf("%s: status %d, want %d; body %.300s", where(), r.status, c.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); c.ctype != "" && !strings.HasPrefix(ct, c.ctype) {
		t.Errorf("%s: Content-Type %q, want prefix %q", where(), ct, c.ctype)
	}
	if c.header[0] != "" && r.header.Get(c.header[0]) != c.header[1] {
		t.Errorf("%s: header %s = %q, want %q", where(), c.header[0], r.header.Get(c.header[0]), c.header[1])
	}
	if c.title != "" && title(r.body) != c.title {
		t.Errorf("%s: page title %q, want %q", where(), title(r.body), c.title)
	}
	if c.body != "" && !bytes.Contains(r.body, []byte(c.body)) {
		t.Errorf("%s: body %.300s does not contain %q", where(), r.body, c.body)
	}
	if evs != nil {
		c.verifyStream(t, where(), evs)
		return
	}
	if c.code != "" && (r.str("code") != c.code || c.message != "" && r.str("message") != c.message) {
		t.Errorf("%s: envelope %s, want code %q message %q", where(), r.body, c.code, c.message)
	}
	if c.code != "" && r.env["status"] != float64(r.status) {
		t.Errorf("%s: envelope status %v, want %d", where(), r.env["status"], r.status)
	}
	if c.run != "" {
		status, errMsg := "", ""
		if d, ok := r.env["data"].(map[string]any); ok {
			status, _ = d["status"].(string)
			errMsg, _ = d["error"].(string)
			if d["id"] != r.env["workflow_run_id"] || r.str("task_id") == "" {
				t.Errorf("%s: blocking answer ids: %s", where(), r.body)
			}
		} else if r.str("event") == "message" && r.str("answer") != "" {
			status = "succeeded"
		}
		if status != c.run || errMsg != c.runErr {
			t.Errorf("%s: run ended %q %q, want %q %q", where(), status, errMsg, c.run, c.runErr)
		}
	}
}

func (c check) verifyStream(t testing.TB, where string, evs []event) {
	t.Helper()
	end := last(evs)
	if c.event != "" && end.name() != c.event {
		t.Errorf("%s: last event %q, want %q (events %v)", where, end.name(), c.event, names(evs))
	}
	if c.code != "" {
		if end.m["code"] != c.code || c.message != "" && end.m["message"] != c.message {
			t.Errorf("%s: error event %s, want code %q message %q", where, end.raw, c.code, c.message)
		}
		if _, ok := end.m["task_id"]; ok {
			t.Errorf("%s: error event has a task_id: %s", where, end.raw)
		}
		if c.probe == stream && (names(evs)[0] != "workflow_started" || end.m["workflow_run_id"] != evs[0].m["workflow_run_id"]) {
			t.Errorf("%s: error event should follow workflow_started of the same run: %v", where, names(evs))
		}
	}
	if c.run != "" && c.probe == stream {
		d := end.data()
		if d["status"] != c.run || c.runErr != "" && d["error"] != c.runErr || c.runErr == "" && d["error"] != nil {
			t.Errorf("%s: workflow_finished %s, want status %q error %q", where, end.raw, c.run, c.runErr)
		}
	}
	if c.failed != "" {
		found := false
		for _, e := range evs {
			if e.name() == "node_finished" && e.data()["status"] == "failed" {
				found = e.data()["title"] == c.failed && e.data()["error"] == c.runErr
			}
		}
		if !found {
			t.Errorf("%s: no node_finished failed for %q with the run's error", where, c.failed)
		}
	}
	if !slices.Contains(names(evs), "ping") {
		t.Errorf("%s: no ping in %v", where, names(evs))
	}
}
