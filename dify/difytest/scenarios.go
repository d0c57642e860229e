package difytest

import (
	"net/http"
	"slices"
	"strings"
	"time"
)

// Scenario is one entry of the catalogue: a way Dify, or what sits in front of it, behaves.
type Scenario struct {
	Name        string `json:"name"`
	Code        string `json:"code"` // The difybot diagnosis code the scenario should provoke; "" when the run succeeds.
	Description string `json:"description"`
}

// Scenarios returns the catalogue, sorted by name.
func Scenarios() []Scenario {
	var out []Scenario
	for _, s := range catalogue() {
		out = append(out, s.Scenario)
	}
	slices.SortFunc(out, func(a, b Scenario) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Route keys, as Calls and Request.Route name them.
const (
	RouteInfo       = "GET /v1/info"
	RouteParameters = "GET /v1/parameters"
	RouteUpload     = "POST /v1/files/upload"
	RouteRun        = "POST /v1/workflows/run"
	RouteRunDetail  = "GET /v1/workflows/run/{id}"
	RouteStop       = "POST /v1/workflows/tasks/{id}/stop"
	RouteChat       = "POST /v1/chat-messages"
	RouteChatStop   = "POST /v1/chat-messages/{id}/stop"
	RouteMessages   = "GET /v1/messages"
)

// Fixed ids of the simulated app, so that messages that name them are stable.
const (
	appID      = "5d5b1b3e-7a2f-4c1e-9b8d-0f6a2e4c8d11"
	workflowID = "19eff89f-ec03-4f75-b0fc-897e7effea02"
	tenantID   = "8f0a3c52-6d41-4e0b-a7c9-2b5e1d3f4a60"
)

// scenario is a catalogue entry with the behaviour behind it.
type scenario struct {
	Scenario
	mode    string        // The app mode GET /v1/info reports; it decides which run route works.
	dialect dialect       // The Dify generation whose shapes the fake sends.
	badKey  bool          // Every API key is unknown.
	latency time.Duration // The node latency when Options.Latency is zero.
	faults  []fault
	outcome outcome
	output  outputKind  // What a succeeding run answers.
	humans  []humanNode // Human Input nodes after the LLM node, in order.
}

// stage says where in the request path a fault answers, which decides what it shadows.
type stage int

const (
	atProxy    stage = iota // In front of Dify: before routing and auth, on any path.
	atApp                   // Dify's app check, after the key: on every valid route.
	atEndpoint              // Inside the endpoint, after the app-mode check and argument parsing.
)

type fault struct {
	stage  stage
	routes []string // The route keys it applies to; none means all.
	first  int      // When positive, only the first requests per route since the scenario was set.
	reply  reply
}

func (f fault) applies(route string, seen int) bool {
	if len(f.routes) > 0 && !slices.Contains(f.routes, route) {
		return false
	}
	return f.first == 0 || seen <= f.first
}

// fault returns the reply of the first fault for this stage and route, or nil.
func (s *scenario) fault(st stage, route string, seen int) *reply {
	for _, f := range s.faults {
		if f.stage == st && f.applies(route, seen) {
			return &f.reply
		}
	}
	return nil
}

// outcomeKind is how a run that got past every check ends.
type outcomeKind int

const (
	succeed    outcomeKind = iota
	noOutput               // It succeeds with outputs {}.
	nodeFails              // The node fails: node_finished failed, then workflow_finished failed.
	runFails               // The graph fails while the node runs (max time, max steps).
	runStops               // The run ends stopped while the node runs.
	errorEvent             // A §3.4 error event while the node runs; a blocking call gets an HTTP error.
	cutStream              // A streamed answer is cut after the node starts; the run goes on and succeeds.
	cutEarly               // The answer ends right after the 200 headers, with no body; no run exists.
)

type outcome struct {
	kind    outcomeKind
	node    string // The node type where it happens: "llm", "code", or "" for right after workflow_started.
	message string // The run's error.
	event   apiErr // The stream error event, for errorEvent.
	http    apiErr // What a blocking call gets, for errorEvent.
}

// Error texts from dify-api.md §1.3, §3 and §6.
const (
	msgConcurrency = "Too many requests. Please try again later. The current maximum concurrent requests allowed for " + appID + " is 2."
	msgPlanQuota   = "Workflow execution quota limit reached for tenant " + tenantID
	msgProvider    = "No valid model provider credentials found. Please go to Settings -> Model Provider to complete your provider credentials."
	msgPluginError = `req_id: 9e1e2daabe PluginInvokeError: {"args":null,"error_type":"PluginDaemonInnerError","message":"encountered an error: invalid character '<' looking for beginning of value status: 502 Bad Gateway original response: <html>"}`
)

// runRoutes are the routes that start a run.
var runRoutes = []string{RouteRun, RouteChat}

func catalogue() map[string]*scenario {
	nginx502 := nginxPage(http.StatusBadGateway, "nginx_502.html")
	list := []*scenario{
		{Scenario: Scenario{"ok", "", "A published workflow app: every route works and runs succeed."}},
		{Scenario: Scenario{"slow", "", "Like ok, but each node takes the latency (2s unless -latency is set); pings keep the stream alive."},
			latency: 2 * time.Second},
		{Scenario: Scenario{"chat_ok", "", "A chatflow (advanced-chat) app: chat-messages works, workflows/run answers not_workflow_app."},
			mode: "advanced-chat"},
		{Scenario: Scenario{"version_0_6", "", "Like ok, in Dify 0.6 shapes: json.dumps spacing, 7-key upload, info without mode, images only through files."},
			dialect: v06},

		{Scenario: Scenario{"auth_invalid", "dify_auth_invalid", "Every API key is unknown: 401 unauthorized \"Access token is invalid\"."},
			badKey: true},
		{Scenario: Scenario{"app_disabled", "dify_app_unavailable", "The app's API access is off: 403 forbidden on every route (1.x)."},
			faults: []fault{{stage: atApp, reply: jsonReply(apiErr{http.StatusForbidden, "forbidden", "The app's API service has been disabled.", ""})}}},
		{Scenario: Scenario{"app_disabled_0x", "dify_app_unavailable", "The app is disabled on Dify 0.x: 404 not_found JSON on every valid route."},
			faults: []fault{{stage: atApp, reply: jsonReply(errNotFound(msgNotFound))}}},
		{Scenario: Scenario{"app_unavailable", "dify_app_unavailable", "The app's configuration is broken: 400 app_unavailable on parameters and runs."},
			faults: []fault{{stage: atEndpoint, routes: []string{RouteParameters, RouteRun, RouteChat},
				reply: jsonReply(apiErr{http.StatusBadRequest, "app_unavailable", "App unavailable, please check your app configurations.", ""})}}},
		{Scenario: Scenario{"wrong_url", "dify_wrong_url", "The base URL points at the web frontend: every route answers a 404 HTML page."},
			faults: []fault{{stage: atProxy, reply: reply{status: http.StatusNotFound, ctype: "text/html; charset=utf-8",
				body: pageText("next_404.html"), header: map[string]string{"X-Powered-By": "Next.js"}}}}},
		{Scenario: Scenario{"not_workflow_app", "dify_wrong_app_type", "The key belongs to a chat app: workflows/run answers 400 not_workflow_app, chat-messages works."},
			mode: "chat"},
		{Scenario: Scenario{"not_chat_app", "dify_wrong_app_type", "The key belongs to a workflow app: chat-messages answers 400 not_chat_app."}},
		{Scenario: Scenario{"not_published", "dify_not_published", "The workflow was never published: parameters answer 400 app_unavailable (no published workflow), runs 400 invalid_param \"Workflow not published\"."},
			faults: []fault{
				{stage: atEndpoint, routes: []string{RouteParameters},
					reply: jsonReply(apiErr{http.StatusBadRequest, "app_unavailable", "App unavailable, please check your app configurations.", ""})},
				{stage: atEndpoint, routes: runRoutes, reply: jsonReply(errInvalid("Workflow not published"))}}},
		{Scenario: Scenario{"input_required", "dify_input_invalid", "The start node requires photo: runs answer 400 \"photo is required in input form\"."},
			faults: []fault{{stage: atEndpoint, routes: runRoutes, reply: jsonReply(errInvalid("photo is required in input form"))}}},
		{Scenario: Scenario{"file_invalid", "dify_input_invalid", "The photo variable rejects the file: runs answer 400 \"File validation failed for file: photo.png\"."},
			faults: []fault{{stage: atEndpoint, routes: runRoutes, reply: jsonReply(errInvalid("File validation failed for file: photo.png"))}}},

		{Scenario: Scenario{"upload_too_large", "dify_file_too_large", "Uploads answer 413 file_too_large JSON (Dify's own size limit)."},
			faults: []fault{{stage: atEndpoint, routes: []string{RouteUpload},
				reply: jsonReply(apiErr{http.StatusRequestEntityTooLarge, "file_too_large", "File size exceeded. {message}", ""})}}},
		{Scenario: Scenario{"nginx_413", "dify_file_too_large", "Uploads hit nginx's client_max_body_size: 413 HTML page."},
			faults: []fault{{stage: atProxy, routes: []string{RouteUpload},
				reply: nginxPage(http.StatusRequestEntityTooLarge, "nginx_413.html")}}},
		{Scenario: Scenario{"upload_unsupported", "dify_file_type", "Uploads answer 415 unsupported_file_type."},
			faults: []fault{{stage: atEndpoint, routes: []string{RouteUpload},
				reply: jsonReply(apiErr{http.StatusUnsupportedMediaType, "unsupported_file_type", "File type not allowed.", ""})}}},

		{Scenario: Scenario{"rate_limited", "dify_rate_limited", "Runs answer 429 too_many_requests with Retry-After: 2."},
			faults: []fault{{stage: atEndpoint, routes: runRoutes,
				reply: jsonReply(apiErr{http.StatusTooManyRequests, "too_many_requests", msgConcurrency, ""}, "Retry-After", "2")}}},
		{Scenario: Scenario{"concurrency_limit", "dify_rate_limited", "The app's concurrency cap as 1.x sends it: 400 invalid_param \"Too many requests. Please try again later. ...\"."},
			faults: []fault{{stage: atEndpoint, routes: runRoutes, reply: jsonReply(errInvalid(msgConcurrency))}}},
		{Scenario: Scenario{"daily_limit", "dify_plan_limit", "Dify Cloud's sandbox requests-per-day cap: runs answer 429 rate_limit_error \"Rate limit exceeded, please upgrade your plan or your RPD was 5000 requests/day\"."},
			faults: []fault{{stage: atEndpoint, routes: runRoutes, reply: jsonReply(apiErr{http.StatusTooManyRequests, "rate_limit_error",
				"Rate limit exceeded, please upgrade your plan or your RPD was 5000 requests/day", ""})}}},
		{Scenario: Scenario{"plan_limit", "dify_plan_limit", "Dify Cloud's workflow execution quota is used up: runs answer 429 rate_limit_error \"Workflow execution quota limit reached for tenant …\" until it resets."},
			faults: []fault{{stage: atEndpoint, routes: runRoutes, reply: jsonReply(apiErr{http.StatusTooManyRequests, "rate_limit_error",
				msgPlanQuota, ""})}}},
		{Scenario: Scenario{"cloudflare_1015", "dify_rate_limited", "Cloudflare rate limiting: every route answers its 429 HTML page, \"Error code 1015\"."},
			faults: []fault{{stage: atProxy, reply: cloudflarePage(http.StatusTooManyRequests, "cloudflare_1015.html")}}},
		{Scenario: Scenario{"cloudflare_1015_plain", "dify_rate_limited", "Cloudflare rate limiting as API clients see it: 429 text/plain \"error code: 1015\"."},
			faults: []fault{{stage: atProxy, reply: reply{status: http.StatusTooManyRequests, ctype: "text/plain; charset=UTF-8",
				body: "error code: 1015", header: map[string]string{"Server": "cloudflare", "CF-RAY": "9223d1c4f0a87b29-NRT"}}}}},

		{Scenario: Scenario{"provider_not_initialize", "dify_model_provider", "No model credentials: blocking answers 400 provider_not_initialize, streaming an error event."},
			outcome: outcome{kind: errorEvent, node: "llm",
				event: apiErr{http.StatusBadRequest, "provider_not_initialize", msgProvider, ""},
				http:  apiErr{http.StatusBadRequest, "provider_not_initialize", msgProvider, ""}}},
		{Scenario: Scenario{"provider_quota", "dify_model_provider", "Hosted model quota used up: 400 provider_quota_exceeded, or the stream error event."},
			outcome: outcome{kind: errorEvent, node: "llm",
				event: apiErr{http.StatusBadRequest, "provider_quota_exceeded", "Your quota for Dify Hosted Model Provider has been exhausted. Please go to Settings -> Model Provider to complete your own provider credentials.", ""},
				http:  apiErr{http.StatusBadRequest, "provider_quota_exceeded", "Your quota for Dify Hosted OpenAI has been exhausted. Please go to Settings -> Model Provider to complete your own provider credentials.", ""}}},
		{Scenario: Scenario{"model_not_supported", "dify_model_provider", "The hosted trial does not offer the model: 400 model_currently_not_support, or the stream error event."},
			outcome: outcome{kind: errorEvent, node: "llm",
				event: apiErr{http.StatusBadRequest, "model_currently_not_support", "Dify Hosted OpenAI trial currently not support the GPT-4 model.", ""},
				http:  apiErr{http.StatusBadRequest, "model_currently_not_support", "Dify Hosted OpenAI trial currently not support the GPT-4 model.", ""}}},
		{Scenario: Scenario{"completion_error", "dify_model_provider", "The model endpoint times out: 400 completion_request_error, or the stream error event."},
			outcome: outcome{kind: errorEvent, node: "llm",
				event: apiErr{http.StatusBadRequest, "completion_request_error", "[ollama] Connection Error, HTTPConnectionPool(host='ollama', port=11434): Read timed out. (read timeout=60)", ""},
				http:  apiErr{http.StatusBadRequest, "completion_request_error", "[ollama] Connection Error, HTTPConnectionPool(host='ollama', port=11434): Read timed out. (read timeout=60)", ""}}},
		{Scenario: Scenario{"plugin_error", "dify_plugin_error", "The LLM node fails with PluginInvokeError/PluginDaemonInnerError (an upstream HTML page): run failed."},
			outcome: outcome{kind: nodeFails, node: "llm", message: msgPluginError}},
		{Scenario: Scenario{"plugin_unavailable", "dify_plugin_unavailable", "The plugin daemon has no node for the plugin: run failed."},
			outcome: outcome{kind: nodeFails, node: "llm", message: "PluginDaemonInternalServerError: no available node, plugin not found"}},
		{Scenario: Scenario{"plugin_timeout", "dify_plugin_unavailable", "The plugin daemon killed the plugin: run failed \"killed by timeout\"."},
			outcome: outcome{kind: nodeFails, node: "llm", message: "PluginDaemonInternalServerError: killed by timeout"}},
		{Scenario: Scenario{"workflow_failed", "dify_workflow_failed", "A Code node (\"Format reply\") raises NameError: run failed."},
			outcome: outcome{kind: nodeFails, node: "code", message: "NameError: name 'x' is not defined"}},
		{Scenario: Scenario{"max_time", "dify_workflow_timeout", "The run hits WORKFLOW_MAX_EXECUTION_TIME: failed \"Max execution time 1200s reached.\"."},
			outcome: outcome{kind: runFails, node: "llm", message: "Max execution time 1200s reached."}},
		{Scenario: Scenario{"max_steps", "dify_workflow_timeout", "The run hits WORKFLOW_MAX_EXECUTION_STEPS: failed \"Max steps 500 reached.\"."},
			outcome: outcome{kind: runFails, node: "llm", message: "Max steps 500 reached."}},
		{Scenario: Scenario{"stopped", "dify_workflow_timeout", "The run ends stopped \"Stopped by user.\" (stop API or APP_MAX_EXECUTION_TIME)."},
			outcome: outcome{kind: runStops, node: "llm", message: msgStopped}},

		{Scenario: Scenario{"gateway_502", "dify_gateway_error", "nginx cannot reach the api container: every route answers its 502 HTML page."},
			faults: []fault{{stage: atProxy, reply: nginx502}}},
		{Scenario: Scenario{"gateway_503", "dify_gateway_error", "The proxy has no healthy upstream: every route answers nginx's 503 HTML page."},
			faults: []fault{{stage: atProxy, reply: nginxPage(http.StatusServiceUnavailable, "nginx_503.html")}}},
		{Scenario: Scenario{"cloudflare_502", "dify_gateway_error", "Dify Cloud's origin is down: every route answers Cloudflare's 502 HTML page."},
			faults: []fault{{stage: atProxy, reply: cloudflarePage(http.StatusBadGateway, "cloudflare_502.html")}}},
		{Scenario: Scenario{"gateway_504", "dify_gateway_timeout", "A proxy's read timeout: every route answers nginx's 504 HTML page."},
			faults: []fault{{stage: atProxy, reply: nginxPage(http.StatusGatewayTimeout, "nginx_504.html")}}},
		{Scenario: Scenario{"cloudflare_524", "dify_gateway_timeout", "Cloudflare's 100 s limit: every route answers its 524 HTML page (at once, not after 100 s)."},
			faults: []fault{{stage: atProxy, reply: cloudflarePage(524, "cloudflare_524.html")}}},

		{Scenario: Scenario{"server_error", "dify_server_error", "Runs answer 500 internal_server_error (werkzeug's text)."},
			faults: []fault{{stage: atEndpoint, routes: runRoutes, reply: jsonReply(apiErr{http.StatusInternalServerError, "internal_server_error", msgInternal, ""})}}},
		{Scenario: Scenario{"server_unknown", "dify_server_error", "Runs answer an uncaught exception: 500 {\"message\":\"Internal Server Error\",\"code\":\"unknown\"}."},
			faults: []fault{{stage: atEndpoint, routes: runRoutes, reply: jsonReply(apiErr{http.StatusInternalServerError, "unknown", "Internal Server Error", ""})}}},
		{Scenario: Scenario{"stream_error", "dify_server_error", "The worker crashes: streaming sends workflow_started then an error event (500); blocking answers 500."},
			outcome: outcome{kind: errorEvent,
				event: apiErr{http.StatusInternalServerError, "internal_server_error", msgStreamInternal, ""},
				http:  apiErr{http.StatusInternalServerError, "internal_server_error", msgInternal, ""}}},
		{Scenario: Scenario{"stream_cut", "", "The stream is cut after the LLM node starts (a plain chat app's: after the answer's first chunk); the run goes on and succeeds (GET the run, or the conversation's messages, to recover). Blocking is unaffected."},
			outcome: outcome{kind: cutStream, node: "llm"}},
		{Scenario: Scenario{"stream_cut_lost", "dify_bad_response", "Runs end right after the 200 headers, before workflow_started: an empty body, nothing to recover."},
			outcome: outcome{kind: cutEarly}},
		{Scenario: Scenario{"bad_response", "dify_bad_response", "Something answers workflows/run with 200 text/plain \"OK\" instead of Dify's JSON."},
			faults: []fault{{stage: atProxy, routes: []string{RouteRun}, reply: reply{status: http.StatusOK, ctype: "text/plain; charset=utf-8", body: "OK"}}}},
		{Scenario: Scenario{"no_output", "dify_no_output", "Runs succeed with outputs {}."},
			outcome: outcome{kind: noOutput}},
		{Scenario: Scenario{"image_output", "", "The workflow answers its text and an annotated image: a PNG tool file at a relative, signed link that expires after 300 s."},
			output: outImage},
		{Scenario: Scenario{"csv_output", "", "The workflow answers its text and a CSV (labels.csv) at a signed link."},
			output: outCSV},
		{Scenario: Scenario{"file_list_output", "", "The workflow answers its text and a list of files: the annotated PNG and the CSV."},
			output: outFileList},
		{Scenario: Scenario{"file_expired", "", "The workflow answers its text and an image whose signed link has already expired: downloading it answers 403."},
			output: outExpired},
		{Scenario: Scenario{"think_output", "", "The LLM node's text starts with its <think>…</think> reasoning, as Dify's default tagged mode leaves it."},
			output: outThink},
		{Scenario: Scenario{"stream_long", "", "The LLM node writes about 2,000 characters, its <think> reasoning first, in many text_chunk events over 1.5 s (or -latency)."},
			output: outLong, latency: 1500 * time.Millisecond},
		{Scenario: Scenario{"object_output", "", "The workflow answers an object, no text: {\"result\": {label, confidence, tags, box, description}}."},
			output: outObject},
		{Scenario: Scenario{"chat_files", "", "A chatflow whose answer carries an image: message_file before message_end, and the file in message_end.files."},
			mode: "advanced-chat", output: outChatFiles},
		{Scenario: Scenario{"human_input", "", "The workflow asks back: a Human Input node (a select, a paragraph with a default, a photo, two actions, a 1 h expiry) pauses the run until its form is submitted or expires; the events route follows it."},
			humans: []humanNode{checkNode}},
		{Scenario: Scenario{"human_input_twice", "", "Two Human Input nodes in a row (a select, then a paragraph), each with its own form and pause."},
			humans: []humanNode{sizeNode, confirmNode}},
		{Scenario: Scenario{"human_input_no_token", "dify_human_input_unavailable", "A Human Input node without WebApp delivery: form_token is null, the form routes answer 404, the run waits until the form expires."},
			humans: []humanNode{func() humanNode { n := checkNode; n.noToken = true; return n }()}},
		{Scenario: Scenario{"flaky", "", "The first 2 requests to upload and to workflows/run (since the scenario was set) get nginx's 502 page, then all is well."},
			faults: []fault{{stage: atProxy, routes: []string{RouteUpload, RouteRun}, first: 2, reply: nginx502}}},
	}
	m := make(map[string]*scenario, len(list))
	for _, s := range list {
		if s.mode == "" {
			s.mode = "workflow"
		}
		m[s.Name] = s
	}
	return m
}
