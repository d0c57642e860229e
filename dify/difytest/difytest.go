// Package difytest is an in-process fake of the Dify Service API (/v1) with a catalogue of scenarios: the
// errors, proxy pages, stream cuts and version drift that difybot must recognise. Its answers follow the
// shapes recorded in the project's dify-api.md byte for byte. Tests use NewServer; cmd/difysim and the demo
// mount NewHandler on their own listener.
//
// Besides the faults, the app itself has a shape (Shapes): its mode, start form and conversation rules, chosen
// independently of the scenario, so that a required form or an agent app can also be rate-limited or down.
// The fake enforces the form as Dify does, and its answers echo what it received.
//
// Besides /v1 the handler serves the files runs produce (/files/tools/…, signed links) and a control API: GET /_sim/scenario, PUT /_sim/scenario {"scenario":"NAME"},
// GET /_sim/scenarios (the catalogue), and the same for shapes: GET|PUT /_sim/shape, GET /_sim/shapes.
package difytest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Options configures the fake. The zero value is usable.
type Options struct {
	APIKey        string        // The accepted bearer key; default "app-test".
	AnyAppKey     bool          // Accept any key of the form app-… instead of APIKey (difysim without -key).
	Scenario      string        // The starting scenario; default "ok".
	Shape         string        // The app's shape (Shapes); default DefaultShape, the app the scenarios describe.
	Latency       time.Duration // How long each workflow node takes; default 0 (the slow scenario uses 2s).
	PingEvery     time.Duration // The interval of "event: ping" in streams; default 10s, as Dify.
	MaxImageBytes int64         // Dify's UPLOAD_IMAGE_FILE_SIZE_LIMIT; default 10 MiB.
	// MaxActive is Dify's APP_MAX_ACTIVE_REQUESTS: a run request beyond that many runs in progress answers 429
	// too_many_requests, as 1.x does; 0 is no limit.
	MaxActive int
	// FilesExpireAfter is how long a file link the fake signs works (Dify's FILES_ACCESS_TIMEOUT); default 300s.
	FilesExpireAfter time.Duration
	// FormTimeout is how long a Human Input form waits for its answer; default DefaultFormTimeout.
	FormTimeout time.Duration
}

// Request is one request the fake received. It never holds the API key.
type Request struct {
	Method   string          `json:"method"`
	Path     string          `json:"path"`
	Route    string          `json:"route"` // The route key, such as "POST /v1/workflows/run"; "" when no route matched.
	Scenario string          `json:"scenario"`
	Body     json.RawMessage `json:"body,omitempty"` // The JSON body of run requests (workflows/run, chat-messages).
}

// maxRequests bounds the request log, so a long difysim session does not grow without end.
const maxRequests = 1000

// maxJSONBody bounds the JSON body of a run request, which the fake reads whole.
const maxJSONBody = 1 << 20

// Sim is the fake Dify as an http.Handler. It is safe for concurrent use.
type Sim struct {
	opts      Options
	mux       *http.ServeMux
	scenarios map[string]*scenario
	shapes    map[string]*shape
	base      context.Context // Ends at Close; runs that outlive their request hang off it.
	cancel    context.CancelFunc
	runs      sync.WaitGroup // Every run goroutine; Close waits for them.

	mu        sync.Mutex
	closed    bool
	sc        *scenario
	sh        *shape
	calls     map[string]int
	seen      map[string]int // Requests per route since the scenario was set, for faults that fire only first.
	requests  []Request
	uploads   recent[*upload]
	runByID   recent[*run]
	runByTas  recent[*run]
	convs     recent[string]      // Conversation ids and the user who started each.
	messages  recent[[]*run]      // Chat messages by conversation id, oldest first.
	users     recent[string]      // End-user row ids by user string, as Dify creates them.
	seq       int                 // Workflow run sequence numbers (0.6 sends them).
	active    int                 // Runs in progress, for MaxActive.
	peak      int                 // The most runs ever in progress at once.
	files     recent[*simFile]    // Files runs produced, by id.
	lastFile  map[string]*simFile // The latest file made under each name.
	forms     recent[*form]       // Human Input forms by token.
	submitted []Submission        // Accepted form submissions, oldest first.
}

// maxKept bounds each store of the fake (uploads, runs, conversations, end users).
const maxKept = 10000

// recent is a map that forgets its oldest entries beyond maxKept, so a long difysim session stays small.
type recent[V any] struct {
	m     map[string]V
	order []string
}

func (r *recent[V]) put(k string, v V) {
	if r.m == nil {
		r.m = map[string]V{}
	}
	if _, ok := r.m[k]; !ok {
		if len(r.order) == maxKept {
			delete(r.m, r.order[0])
			r.order = append(r.order[:0], r.order[1:]...)
		}
		r.order = append(r.order, k)
	}
	r.m[k] = v
}

func (r *recent[V]) get(k string) (V, bool) {
	v, ok := r.m[k]
	return v, ok
}

// NewHandler returns the fake as a handler. It panics if opts.Scenario or opts.Shape is not in its catalogue,
// like regexp.MustCompile, because that is a typo in the caller.
func NewHandler(opts Options) *Sim {
	if opts.APIKey == "" {
		opts.APIKey = "app-test"
	}
	if opts.Scenario == "" {
		opts.Scenario = "ok"
	}
	if opts.Shape == "" {
		opts.Shape = DefaultShape
	}
	if opts.PingEvery <= 0 {
		opts.PingEvery = 10 * time.Second
	}
	if opts.MaxImageBytes <= 0 {
		opts.MaxImageBytes = 10 << 20
	}
	if opts.FilesExpireAfter <= 0 {
		opts.FilesExpireAfter = 300 * time.Second
	}
	s := &Sim{
		opts:      opts,
		mux:       http.NewServeMux(),
		scenarios: catalogue(),
		shapes:    shapeCatalogue(),
		calls:     map[string]int{},
		seen:      map[string]int{},
		lastFile:  map[string]*simFile{},
	}
	s.base, s.cancel = context.WithCancel(context.Background())
	if err := s.SetScenario(opts.Scenario); err != nil {
		panic("difytest: " + err.Error())
	}
	if err := s.SetShape(opts.Shape); err != nil {
		panic("difytest: " + err.Error())
	}
	s.mux.Handle(RouteInfo, s.endpoint(s.info))
	s.mux.Handle(RouteParameters, s.endpoint(s.parameters))
	s.mux.Handle(RouteUpload, s.endpoint(s.upload))
	s.mux.Handle(RouteRun, s.endpoint(s.runWorkflow))
	s.mux.Handle(RouteRunDetail, s.endpoint(s.runDetail))
	s.mux.Handle(RouteStop, s.endpoint(s.stop))
	s.mux.Handle(RouteChat, s.endpoint(s.chat))
	s.mux.Handle(RouteChatStop, s.endpoint(s.stop))
	s.mux.Handle(RouteMessages, s.endpoint(s.listMessages))
	s.mux.HandleFunc(RouteFile, s.serveFile)
	s.mux.Handle(RouteForm, s.endpoint(s.getForm))
	s.mux.Handle(RouteFormSubmit, s.endpoint(s.submitForm))
	s.mux.Handle(RouteEvents, s.endpoint(s.events))
	s.mux.Handle("/", s.endpoint(nil))
	s.mux.HandleFunc("GET /_sim/scenario", s.getScenario)
	s.mux.HandleFunc("PUT /_sim/scenario", s.putScenario)
	s.mux.HandleFunc("GET /_sim/scenarios", s.listScenarios)
	s.mux.HandleFunc("GET /_sim/shape", s.getShape)
	s.mux.HandleFunc("PUT /_sim/shape", s.putShape)
	s.mux.HandleFunc("GET /_sim/shapes", s.listShapes)
	return s
}

// ServeHTTP serves the Service API under /v1 and the control endpoints under /_sim.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close stops the runs in flight and waits for them. The handler keeps answering, but new runs end stopped.
func (s *Sim) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.runs.Wait()
}

// SetScenario switches the scenario. It also rearms faults that fire only on the first requests.
func (s *Sim) SetScenario(name string) error {
	sc, ok := s.scenarios[name]
	if !ok {
		return fmt.Errorf("unknown scenario %q (GET /_sim/scenarios lists them)", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sc = sc
	clear(s.seen)
	return nil
}

// Scenario returns the name of the current scenario.
func (s *Sim) Scenario() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sc.Name
}

// Calls returns how many requests hit a route key, such as "POST /v1/workflows/run".
func (s *Sim) Calls(route string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[route]
}

// Started is how many workflow runs and chat messages the fake began executing: requests that a fault turned
// away before the engine (a gateway page, a 429) do not count. Tests use it to prove nothing ran twice.
func (s *Sim) Started() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq
}

// Requests returns the recorded requests, oldest first (at most the last 1000).
func (s *Sim) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// WorkflowRuns returns the bodies of the recorded POST /v1/workflows/run requests, oldest first: what each run
// was asked to do.
func (s *Sim) WorkflowRuns() []string {
	var out []string
	for _, r := range s.Requests() {
		if r.Route == "POST /v1/workflows/run" {
			out = append(out, string(r.Body))
		}
	}
	return out
}

// ChatRequest is what a recorded /v1/chat-messages request asked for.
type ChatRequest struct {
	Query          string `json:"query"`
	User           string `json:"user"`
	ConversationID string `json:"conversation_id"`
}

// ChatRequests returns the chat messages received, oldest first, for tests of conversations.
func (s *Sim) ChatRequests() ([]ChatRequest, error) {
	var out []ChatRequest
	for _, r := range s.Requests() {
		if r.Route != RouteChat {
			continue
		}
		var c ChatRequest
		if err := json.Unmarshal(r.Body, &c); err != nil {
			return nil, fmt.Errorf("difytest: chat request: %w", err)
		}
		out = append(out, c)
	}
	return out, nil
}

// call is what an endpoint knows about the request it serves.
type call struct {
	sc    *scenario
	sh    *shape
	mode  string // The app's mode: the shape's, else the scenario's.
	route string
	body  []byte // The JSON body of run requests, read once on arrival.
}

// endpoint wraps an API handler with what happens before it in Dify and in front of it: recording, proxy
// faults, routing (a nil h is an unknown route), the key check and the app check.
func (s *Sim) endpoint(h func(http.ResponseWriter, *http.Request, *call)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &call{route: r.Pattern}
		if h == nil {
			c.route = ""
		}
		if c.route == RouteRun || c.route == RouteChat {
			c.body, _ = io.ReadAll(io.LimitReader(r.Body, maxJSONBody))
		}
		sc, seen := s.record(r, c)
		c.sc = sc
		c.mode = sc.mode
		if c.sh.mode != "" {
			c.mode = c.sh.mode
		}
		if rp := sc.fault(atProxy, c.route, seen); rp != nil {
			rp.write(w, r, sc.dialect)
			return
		}
		if h == nil {
			drain(r)
			writeErr(w, sc.dialect, errNotFound(msgNotFound))
			return
		}
		if e := s.authorize(r, sc); e != nil {
			drain(r)
			writeErr(w, sc.dialect, *e)
			return
		}
		if rp := sc.fault(atApp, c.route, seen); rp != nil {
			rp.write(w, r, sc.dialect)
			return
		}
		h(w, r, c)
	})
}

// record logs the request and returns the scenario to serve it with, and how many requests its route has
// seen since the scenario was set.
func (s *Sim) record(r *http.Request, c *call) (*scenario, int) {
	req := Request{Method: r.Method, Path: r.URL.Path, Route: c.route}
	if len(c.body) > 0 && json.Valid(c.body) {
		req.Body = append(json.RawMessage(nil), c.body...)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	req.Scenario = s.sc.Name
	c.sh = s.sh
	s.calls[c.route]++
	s.seen[c.route]++
	if len(s.requests) == maxRequests {
		s.requests = append(s.requests[:0], s.requests[1:]...)
	}
	s.requests = append(s.requests, req)
	return s.sc, s.seen[c.route]
}

// authorize checks the Authorization header the way Dify's validate_and_get_api_token does (§1.1).
func (s *Sim) authorize(r *http.Request, sc *scenario) *apiErr {
	unauthorized := func(msg string) *apiErr { return &apiErr{http.StatusUnauthorized, "unauthorized", msg, ""} }
	h, ok := r.Header["Authorization"]
	if !ok || !strings.Contains(h[0], " ") {
		return unauthorized("Authorization header must be provided and start with 'Bearer'")
	}
	// Python's split(None, 1): the scheme, then the rest after any run of blanks. The header value arrives
	// trimmed, so a space inside it means both parts are there.
	scheme, token, _ := strings.Cut(h[0], " ")
	token = strings.TrimLeft(token, " \t")
	if !strings.EqualFold(scheme, "bearer") {
		return unauthorized("Authorization scheme must be 'Bearer'")
	}
	if sc.badKey || !s.keyOK(token) {
		return unauthorized("Access token is invalid")
	}
	return nil
}

func (s *Sim) keyOK(token string) bool {
	if s.opts.AnyAppKey {
		return len(token) > len("app-") && strings.HasPrefix(token, "app-")
	}
	return token == s.opts.APIKey
}

// getScenario answers GET /_sim/scenario.
func (s *Sim) getScenario(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, v1, http.StatusOK, obj{{"scenario", s.Scenario()}})
}

// putScenario answers PUT /_sim/scenario {"scenario":"NAME"}.
func (s *Sim) putScenario(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Scenario string `json:"scenario"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&in); err != nil {
		writeJSON(w, v1, http.StatusBadRequest, obj{{"error", `body must be {"scenario":"NAME"}: ` + err.Error()}})
		return
	}
	if err := s.SetScenario(in.Scenario); err != nil {
		writeJSON(w, v1, http.StatusBadRequest, obj{{"error", err.Error()}})
		return
	}
	writeJSON(w, v1, http.StatusOK, obj{{"scenario", in.Scenario}})
}

// listScenarios answers GET /_sim/scenarios with the catalogue.
func (s *Sim) listScenarios(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, v1, http.StatusOK, Scenarios())
}

// Server is the fake on a started httptest server.
type Server struct {
	*Sim
	ts *httptest.Server
}

// NewServer starts the fake on a local port. It panics on an unknown opts.Scenario, like NewHandler.
func NewServer(opts Options) *Server {
	sim := NewHandler(opts)
	return &Server{Sim: sim, ts: httptest.NewServer(sim)}
}

// URL returns the Service API base URL, such as http://127.0.0.1:PORT/v1.
func (s *Server) URL() string { return s.ts.URL + "/v1" }

// Handler returns the fake's handler, to mount it elsewhere.
func (s *Server) Handler() http.Handler { return s.Sim }

// Close stops the runs in flight, then the server.
func (s *Server) Close() {
	s.Sim.Close()
	s.ts.Close()
}

// decodeObject parses a run request's JSON body into its top-level fields, the way Flask's get_json does.
func decodeObject(r *http.Request, body []byte) (map[string]json.RawMessage, *apiErr) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return nil, &apiErr{http.StatusUnsupportedMediaType, "unsupported_media_type",
			"Did not attempt to load JSON data because the request Content-Type was not 'application/json'.", ""}
	}
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, &apiErr{http.StatusBadRequest, "bad_request", "Invalid JSON payload received or JSON payload is empty.", ""}
	}
	return m, nil
}

// PeakActive is the most runs the fake had in progress at once.
func (s *Sim) PeakActive() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// admitRun takes a place among the runs in progress, or reports that MaxActive are running.
func (s *Sim) admitRun() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opts.MaxActive > 0 && s.active >= s.opts.MaxActive {
		return false
	}
	s.active++
	s.peak = max(s.peak, s.active)
	return true
}

func (s *Sim) runEnded() {
	s.mu.Lock()
	s.active--
	s.mu.Unlock()
}
