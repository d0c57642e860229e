package difytest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// run is one workflow run or chat message the fake executes.
type run struct {
	id        string // The workflow run id; "" for plain chat apps, which run no workflow.
	taskID    string
	app       string // "workflow", "advanced-chat", "chat" or "agent".
	user      string
	endUser   string
	seq       int
	inputs    string // The stored inputs column: Python json.dumps text, as GET /workflows/run/{id} returns it.
	createdAt time.Time
	msgID     string // Chat apps: the message, listed by GET /v1/messages.
	query     string
	stop      chan struct{} // Closed by the stop endpoints.
	stopOnce  sync.Once
	live      *live // Runs of a graph with Human Input nodes: what followers of their events see.

	// Guarded by Sim.mu.
	status     string
	outputs    obj // nil when the run has none.
	err        string
	steps      int
	tokens     int
	elapsed    time.Duration
	finishedAt time.Time
}

// node is a node of the simulated graph.
type node struct{ id, typ, title string }

var (
	startNode  = node{"1711528914102", "start", "Start"}
	llmNode    = node{"1711528917469", "llm", "Analyse image"}
	codeNode   = node{"1711528918233", "code", "Format reply"}
	endNode    = node{"1711528919501", "end", "End"}
	answerNode = node{"answer", "answer", "Answer"}
)

// frame is one SSE payload. cut asks the stream to be cut right after it.
type frame struct {
	data []byte
	cut  bool
}

// plan is everything the engine needs for one run; it is fixed before the run starts.
type plan struct {
	run      *run
	sim      *Sim
	sc       *scenario
	d        dialect
	nodes    []node
	answer   string
	inputs   obj           // The inputs echoed in workflow_started and the start node, sys.* included.
	conv     string        // Chat apps: the conversation id.
	msgID    string        // Chat apps: the message id.
	latency  time.Duration // Per node.
	events   chan frame    // Buffered for every event the run can emit, so the engine never waits.
	detached bool          // The run outlives its request (stream_cut).
	mu       *sync.Mutex   // Sim.mu, which guards the run's results.
	// detachedTo is set once a Human Input node paused the run: its first stream has closed, and what it sends
	// goes to the followers of its events. Guarded by mu.
	detachedTo *live
	closeOnce  sync.Once
}

// closeEvents ends the stream that started the run, once.
func (p *plan) closeEvents() { p.closeOnce.Do(func() { close(p.events) }) }

// hasWorkflow reports whether the app runs a workflow (and so sends workflow and node events).
func (rn *run) hasWorkflow() bool { return rn.app == "workflow" || rn.app == "advanced-chat" }

// runArgs are the arguments workflows/run and chat-messages share.
type runArgs struct {
	inputs    map[string]json.RawMessage
	streaming bool
	modeGiven bool // response_mode was sent; omitted means blocking, except for agent apps.
	files     []json.RawMessage
}

// fileRef is a validated file object from inputs or files.
type fileRef struct {
	typ, url string
	up       *upload // For local_file.
}

// runWorkflow answers POST /v1/workflows/run (§3).
func (s *Sim) runWorkflow(w http.ResponseWriter, r *http.Request, c *call) {
	d := c.sc.dialect
	args, user, e := userArgs(r, c)
	if e == nil && c.mode != "workflow" {
		msg := msgAppMode
		if d == v06 {
			msg = "Please check if your Workflow app mode matches the right API route."
		}
		e = &apiErr{http.StatusBadRequest, "not_workflow_app", msg, ""}
	}
	var ra runArgs
	if e == nil {
		ra, e = parseRunArgs(args)
	}
	if e != nil {
		writeErr(w, d, *e)
		return
	}
	if rp := c.sc.fault(atEndpoint, c.route, 0); rp != nil {
		rp.write(w, r, d)
		return
	}
	got, e := s.checkInputs(c.sh.formFor(c.mode, d), ra)
	if e != nil {
		writeErr(w, d, *e)
		return
	}
	if c.sc.outcome.kind == cutEarly {
		cutEarlyAnswer(w, ra.streaming)
		return
	}
	nodes := []node{startNode, llmNode, endNode}
	if c.sc.outcome.node == "code" {
		nodes = []node{startNode, llmNode, codeNode, endNode}
	}
	for i, h := range c.sc.humans {
		nodes = slices.Insert(nodes, 2+i, h.node)
	}
	if !s.admitRun() {
		writeErr(w, d, apiErr{http.StatusTooManyRequests, "too_many_requests", s.maxActiveMessage(), ""})
		return
	}
	p := s.newPlan(c.sc, "workflow", user, ra, nodes, s.answer(c.sh, got.text, got))
	s.serveRun(w, r, p, ra.streaming)
}

// chat answers POST /v1/chat-messages (§4) for chat, chatflow and agent apps.
func (s *Sim) chat(w http.ResponseWriter, r *http.Request, c *call) {
	d := c.sc.dialect
	args, user, e := userArgs(r, c)
	if e == nil && c.mode != "chat" && c.mode != "advanced-chat" && c.mode != "agent" {
		msg := msgAppMode
		if d == v06 {
			msg = "Please check if your Chat app mode matches the right API route."
		}
		e = &apiErr{http.StatusBadRequest, "not_chat_app", msg, ""}
	}
	var query string
	if e == nil {
		raw, ok := args["query"]
		switch {
		case !ok || string(raw) == "null":
			e = ptr(errMissing("query"))
		case json.Unmarshal(raw, &query) != nil:
			e = &apiErr{http.StatusBadRequest, "invalid_param", "Input should be a valid string", "query"}
		}
	}
	var ra runArgs
	if e == nil {
		ra, e = parseRunArgs(args)
	}
	if e == nil && c.mode == "agent" {
		// New Agent apps stream, even when response_mode is left out (§3.2).
		if ra.modeGiven && !ra.streaming {
			e = &apiErr{http.StatusBadRequest, "bad_request", msgAgentStreamingOnly, ""}
		}
		ra.streaming = true
	}
	var conv string
	if e == nil {
		if raw, ok := args["conversation_id"]; ok && string(raw) != "null" {
			json.Unmarshal(raw, &conv)
		}
		s.mu.Lock()
		owner, known := s.convs.get(conv)
		s.mu.Unlock()
		switch {
		case conv == "":
		case !isUUID(conv):
			e = ptr(errInvalid("conversation_id must be a valid UUID"))
		case !known, c.sh.perUser && owner != user:
			// Another user's conversation is indistinguishable from an unknown one (§5.1).
			e = ptr(errNotFound("Conversation Not Exists."))
		}
	}
	if e != nil {
		writeErr(w, d, *e)
		return
	}
	if rp := c.sc.fault(atEndpoint, c.route, 0); rp != nil {
		rp.write(w, r, d)
		return
	}
	got, e := s.checkInputs(c.sh.formFor(c.mode, d), ra)
	if e != nil {
		writeErr(w, d, *e)
		return
	}
	if c.sc.outcome.kind == cutEarly {
		cutEarlyAnswer(w, ra.streaming)
		return
	}
	if !s.admitRun() {
		writeErr(w, d, apiErr{http.StatusTooManyRequests, "too_many_requests", s.maxActiveMessage(), ""})
		return
	}
	s.mu.Lock()
	if conv == "" {
		conv = newID()
		s.convs.put(conv, user)
	}
	s.mu.Unlock()
	nodes := []node{llmNode}
	if c.mode == "advanced-chat" {
		nodes = []node{startNode, llmNode, answerNode}
	}
	p := s.newPlan(c.sc, c.mode, user, ra, nodes, s.answer(c.sh, query, got))
	p.conv, p.msgID = conv, newID()
	p.run.msgID, p.run.query = p.msgID, query
	s.mu.Lock()
	list, _ := s.messages.get(conv)
	s.messages.put(conv, append(list, p.run))
	s.mu.Unlock()
	s.serveRun(w, r, p, ra.streaming)
}

func ptr[T any](v T) *T { return &v }

// userArgs decodes a run request's body and checks user, as Dify's FetchUserArg(required=True) does before
// the endpoint runs.
func userArgs(r *http.Request, c *call) (map[string]json.RawMessage, string, *apiErr) {
	args, e := decodeObject(r, c.body)
	if e != nil {
		return nil, "", e
	}
	var user string
	if raw, ok := args["user"]; ok {
		json.Unmarshal(raw, &user)
	}
	if user == "" {
		return nil, "", ptr(errInvalid(msgUserRequired))
	}
	return args, user, nil
}

// parseRunArgs checks inputs, response_mode and files the way Dify's argument parser does.
func parseRunArgs(args map[string]json.RawMessage) (runArgs, *apiErr) {
	var ra runArgs
	raw, ok := args["inputs"]
	if !ok || string(raw) == "null" {
		return ra, ptr(errMissing("inputs"))
	}
	if json.Unmarshal(raw, &ra.inputs) != nil || ra.inputs == nil {
		return ra, &apiErr{http.StatusBadRequest, "invalid_param", "Input should be a valid dictionary", "inputs"}
	}
	if raw, ok := args["response_mode"]; ok && string(raw) != "null" {
		ra.modeGiven = true
		var mode string
		json.Unmarshal(raw, &mode)
		switch mode {
		case "blocking":
		case "streaming":
			ra.streaming = true
		default:
			v := strings.Trim(string(raw), `"`)
			return ra, &apiErr{http.StatusBadRequest, "invalid_param",
				fmt.Sprintf("The value '%s' is not a valid choice for 'response_mode'.", v), "response_mode"}
		}
	}
	if raw, ok := args["files"]; ok && string(raw) != "null" {
		if json.Unmarshal(raw, &ra.files) != nil {
			return ra, &apiErr{http.StatusBadRequest, "invalid_param", "Input should be a valid list", "files"}
		}
	}
	return ra, nil
}

// fileRef checks one file object (§3.1). A named variable must hold one object; imageOnly is the variable's
// allowed_file_types ["image"].
func (s *Sim) fileRef(raw json.RawMessage, variable string, imageOnly bool) (*fileRef, *apiErr) {
	var m struct {
		Type           string `json:"type"`
		TransferMethod string `json:"transfer_method"`
		UploadFileID   string `json:"upload_file_id"`
		URL            string `json:"url"`
	}
	if err := json.Unmarshal(raw, &m); err != nil || !strings.HasPrefix(strings.TrimSpace(string(raw)), "{") {
		if variable != "" {
			return nil, ptr(errInvalid(variable + " in input form must be a file"))
		}
		return nil, ptr(errInvalid("Invalid input type"))
	}
	if !slices.Contains([]string{"image", "document", "audio", "video", "custom"}, m.Type) {
		return nil, ptr(errInvalid(fmt.Sprintf("'%s' is not a valid FileType", m.Type)))
	}
	f := &fileRef{typ: m.Type}
	name := ""
	switch m.TransferMethod {
	case "local_file":
		switch {
		case m.UploadFileID == "":
			return nil, ptr(errInvalid("Invalid upload file id"))
		case !isUUID(m.UploadFileID):
			return nil, ptr(errInvalid("Invalid upload file id format"))
		}
		s.mu.Lock()
		f.up, _ = s.uploads.get(m.UploadFileID)
		s.mu.Unlock()
		if f.up == nil {
			return nil, ptr(errInvalid("Invalid upload file"))
		}
		name = f.up.name
	case "remote_url":
		if !strings.HasPrefix(m.URL, "http://") && !strings.HasPrefix(m.URL, "https://") {
			return nil, ptr(errInvalid("Invalid file url"))
		}
		f.url = m.URL
		name = m.URL[strings.LastIndex(m.URL, "/")+1:]
	default:
		return nil, ptr(errInvalid("Invalid file transfer method: " + m.TransferMethod))
	}
	if imageOnly && (m.Type != "image" || f.up != nil && !slices.Contains(imageExts, f.up.ext)) {
		return nil, ptr(errInvalid("File validation failed for file: " + name))
	}
	return f, nil
}

// answer is the simulated model's reply: what it received, and the question echoed, so a demo reply means
// something. Shapes other than the default also list the inputs they got, so that tests can assert them.
func (s *Sim) answer(sh *shape, query string, got *received) string {
	var out []string
	for _, f := range got.files {
		switch {
		case f.up != nil:
			out = append(out, f.up.describe())
		case f.typ == "image":
			out = append(out, "Received an image link: "+f.url+".")
		default:
			out = append(out, "Received a file link: "+f.url+".")
		}
	}
	if len(out) == 0 {
		out = append(out, "No image was attached.")
	}
	if q := strings.TrimSpace(query); q != "" {
		if last, _ := utf8.DecodeLastRuneInString(q); !strings.ContainsRune(".!?。！？", last) {
			q += "."
		}
		out = append(out, "You said: "+q)
	}
	if sh.Name != DefaultShape {
		echo := "none"
		if len(got.echo) > 0 {
			echo = strings.Join(got.echo, ", ")
		}
		out = append(out, "Inputs: "+echo+".")
	}
	return strings.Join(out, " ")
}

// cutEarlyAnswer sends the 200 headers and closes without a byte of body, as when the worker dies before
// the first event. The end is clean, so a client sees an empty body rather than a network error.
func cutEarlyAnswer(w http.ResponseWriter, streaming bool) {
	ctype := "application/json"
	if streaming {
		ctype = "text/event-stream; charset=utf-8"
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusOK)
	http.NewResponseController(w).Flush()
}

// newPlan registers a run and fixes how it will go.
func (s *Sim) newPlan(sc *scenario, app, user string, ra runArgs, nodes []node, answer string) *plan {
	latency := s.opts.Latency
	if latency == 0 {
		latency = sc.latency
	}
	rn := &run{taskID: newID(), app: app, user: user, createdAt: time.Now(), status: "running",
		stop: make(chan struct{})}
	if rn.hasWorkflow() {
		rn.id = newID()
	}
	userInputs := obj{}
	for _, k := range slices.Sorted(maps.Keys(ra.inputs)) {
		userInputs = append(userInputs, kv{k, ra.inputs[k]})
	}
	sysFiles := any([]json.RawMessage{})
	if len(ra.files) > 0 {
		sysFiles = ra.files
	}
	// Dify stores the inputs with json.dumps, sys.* first; workflow_started echoes them with sys.* last.
	rn.inputs = string(v06.encode(append(obj{{"sys.files", sysFiles}, {"sys.user_id", user}}, userInputs...)))
	switch sc.output {
	case outThink:
		answer = thinking + answer
	case outLong:
		answer = thinking + answer + "\n\n" + longAnswer
	}
	p := &plan{run: rn, sim: s, sc: sc, d: sc.dialect, nodes: nodes, answer: answer, latency: latency, mu: &s.mu,
		inputs: append(userInputs, kv{"sys.user_id", user}, kv{"sys.files", sysFiles})}
	// Two events per node, the chunks, and at most three closing events (finished, error, message_end); an
	// agent adds its thought and the closing message.
	p.events = make(chan frame, 2+2*len(nodes)+len(chunks(answer))+3+2+2+2*len(sc.humans))
	p.detached = sc.outcome.kind == cutStream
	if len(sc.humans) > 0 {
		rn.live = newLive()
	}
	s.mu.Lock()
	s.seq++
	rn.seq = s.seq
	rn.endUser = s.endUser(user)
	if rn.id != "" {
		s.runByID.put(rn.id, rn)
	}
	s.runByTas.put(rn.taskID, rn)
	s.mu.Unlock()
	return p
}

// serveRun starts the engine and answers in the requested mode.
func (s *Sim) serveRun(w http.ResponseWriter, r *http.Request, p *plan, streaming bool) {
	// A streaming run outlives its request, as Dify's worker thread does when the client goes away (dify-api.md
	// §7.2: poll the run after a dropped connection); a blocking run ends with its request. Close ends them all.
	parent := r.Context()
	if streaming {
		parent = s.base
	}
	ctx, cancel := context.WithCancel(parent)
	s.mu.Lock()
	closed := s.closed
	if !closed {
		s.runs.Add(1)
	}
	s.mu.Unlock()
	if closed {
		cancel()
		s.execute(ctx, p) // It ends at once, stopped; the channel holds all it sends.
		s.runEnded()
	} else {
		go func() {
			defer s.runs.Done()
			defer s.runEnded()
			defer cancel()
			defer context.AfterFunc(s.base, cancel)()
			s.execute(ctx, p)
		}()
	}
	if streaming {
		s.stream(w, r, p)
		return
	}
	for range p.events {
		// A blocking call sees only the end; if the client leaves, ctx ends the run promptly.
	}
	o := p.sc.outcome
	if o.kind == errorEvent {
		writeErr(w, p.d, o.http)
		return
	}
	rn := p.run
	s.mu.Lock()
	status, errMsg, elapsed := rn.status, rn.err, rn.elapsed
	data := obj{{"id", rn.id}, {"workflow_id", workflowID}, {"status", rn.status}, {"outputs", nilIfEmpty(rn.outputs)},
		{"error", nullable(rn.err)}, {"elapsed_time", secs(rn.elapsed.Seconds())}, {"total_tokens", rn.tokens},
		{"total_steps", rn.steps}, {"created_at", rn.createdAt.Unix()}, {"finished_at", rn.finishedAt.Unix()}}
	s.mu.Unlock()
	var body obj
	switch {
	case rn.app == "workflow":
		body = obj{{"task_id", rn.taskID}, {"workflow_run_id", rn.id}, {"data", data}}
	case status != "succeeded":
		// A chat app raises a run that did not succeed in blocking mode (§4).
		writeErr(w, p.d, errInvalid("Run failed: "+errMsg))
		return
	default:
		body = obj{{"event", "message"}, {"task_id", rn.taskID}, {"id", p.msgID}, {"message_id", p.msgID},
			{"conversation_id", p.conv}, {"mode", rn.app}, {"answer", p.answer},
			{"metadata", obj{{"usage", usage(elapsed)}, {"retriever_resources", []any{}}}},
			{"created_at", rn.createdAt.Unix()}}
	}
	// Generated answers go out as a plain Response(json.dumps(...)): no trailing newline.
	b := p.d.encode(body)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// stream writes the run's events as Dify does (§3.3): "data: {json}\n\n" per event, "event: ping\n\n" as
// keep-alive, then it closes. One ping follows the first event, so even short runs show one.
func (s *Sim) stream(w http.ResponseWriter, r *http.Request, p *plan) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "close")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.Flush()
	ping := time.NewTicker(s.opts.PingEvery)
	defer ping.Stop()
	pinged := false
	for {
		select {
		case f, ok := <-p.events:
			if !ok {
				return
			}
			if _, err := fmt.Fprintf(w, "data: %s\n\n", f.data); err != nil {
				return
			}
			if !pinged {
				io.WriteString(w, "event: ping\n\n")
				pinged = true
			}
			if rc.Flush() != nil {
				return
			}
			if f.cut {
				// Drop the connection without the final chunk, as a proxy timeout or a restart does.
				panic(http.ErrAbortHandler)
			}
		case <-ping.C:
			io.WriteString(w, "event: ping\n\n")
			if rc.Flush() != nil {
				return
			}
		case <-r.Context().Done():
			return
		}
	}
}

// execute runs the graph: node by node, each taking the latency, until the scenario's outcome or the end.
// It ends stopped when ctx ends (the client left, or Close) or the stop endpoint is called.
func (s *Sim) execute(ctx context.Context, p *plan) {
	defer p.closeEvents()
	o := p.sc.outcome
	if p.run.hasWorkflow() {
		p.workflowEvent("workflow_started", p.startedData(), false)
	}
	if o.kind == errorEvent && o.node == "" {
		p.errorEvent(o.event)
		return
	}
	prev := ""
	for i, n := range p.nodes {
		execID, nodeStart := newID(), time.Now()
		p.setSteps(i + 1)
		at := n.typ == o.node
		if p.run.hasWorkflow() {
			p.workflowEvent("node_started", p.nodeStarted(n, execID, i+1, prev, nodeStart), at && o.kind == cutStream)
		}
		if n.typ == "human-input" {
			i := slices.IndexFunc(p.sc.humans, func(h humanNode) bool { return h.id == n.id })
			more, ok := s.pause(ctx, p, p.sc.humans[i], execID, i+1, prev, nodeStart)
			if !ok {
				p.finish("stopped", msgStopped)
				return
			}
			p.answer += " " + more
			prev = n.id
			continue
		}
		if at {
			switch o.kind {
			case runFails:
				p.finish("failed", o.message)
				return
			case runStops:
				p.finish("stopped", o.message)
				return
			case errorEvent:
				p.errorEvent(o.event)
				return
			}
		}
		if !p.work(ctx, n) {
			p.finish("stopped", msgStopped)
			return
		}
		if !p.run.hasWorkflow() {
			continue
		}
		if at && o.kind == nodeFails {
			p.workflowEvent("node_finished", p.nodeFinished(n, execID, i+1, prev, nodeStart, "failed", o.message), false)
			p.finish("failed", o.message)
			return
		}
		p.workflowEvent("node_finished", p.nodeFinished(n, execID, i+1, prev, nodeStart, "succeeded", ""), false)
		prev = n.id
	}
	p.finish("succeeded", "")
}

// work spends the node's latency. The LLM node streams the answer in chunks spread over it.
func (p *plan) work(ctx context.Context, n node) bool {
	if n.typ != "llm" || p.sc.outcome.kind == noOutput || p.sc.outcome.kind == nodeFails && p.sc.outcome.node == "llm" {
		return p.wait(ctx, p.latency)
	}
	parts := chunks(p.answer)
	if p.run.app == "agent" {
		// The agent decides to answer without a tool: one thought, then the answer (§3.3).
		p.send(p.frame("agent_thought", kv{"task_id", p.run.taskID}, kv{"id", newID()}, kv{"position", 1},
			kv{"thought", ""}, kv{"observation", ""}, kv{"tool", ""}, kv{"tool_labels", obj{}}, kv{"tool_input", ""},
			kv{"message_files", []string{}}), false)
	}
	// A plain chat app sends no node events, so stream_cut cuts it after the answer's first chunk.
	cut := !p.run.hasWorkflow() && p.sc.outcome.kind == cutStream
	for i, c := range parts {
		if !p.wait(ctx, p.latency/time.Duration(len(parts))) {
			return false
		}
		if p.run.app == "workflow" {
			data := obj{{"text", c}}
			if p.d == v1 {
				data = append(data, kv{"from_variable_selector", []string{llmNode.id, "text"}})
			}
			p.send(p.frame("text_chunk", kv{"task_id", p.run.taskID}, kv{"data", data}), false)
			continue
		}
		if p.run.app == "agent" {
			p.send(p.frame("agent_message", kv{"task_id", p.run.taskID}, kv{"id", p.msgID}, kv{"answer", c}), cut && i == 0)
			continue
		}
		var selector any
		if p.run.app == "advanced-chat" {
			selector = []string{llmNode.id, "text"}
		}
		p.send(p.frame("message", kv{"task_id", p.run.taskID}, kv{"id", p.msgID}, kv{"answer", c},
			kv{"from_variable_selector", selector}), cut && i == 0)
	}
	return true
}

// wait sleeps d unless the run is stopped first; it reports whether the run may go on.
func (p *plan) wait(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-p.run.stop:
		return false
	default:
	}
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-p.run.stop:
		return false
	}
}

// chunks splits the answer into a few pieces at word boundaries, as a model streams it.
func chunks(answer string) []string {
	words := strings.SplitAfter(answer, " ")
	per := max(1, (len(words)+3)/4)
	if len(answer) > 1000 {
		per = 3 // A long answer streams as an LLM writes it: a few words at a time.
	}
	var out []string
	for i := 0; i < len(words); i += per {
		out = append(out, strings.Join(words[i:min(i+per, len(words))], ""))
	}
	return out
}

func (p *plan) send(data []byte, cut bool) {
	if p.run.live != nil {
		var ev struct{ Event string }
		json.Unmarshal(data, &ev)
		p.mu.Lock()
		detached := p.detachedTo != nil
		p.run.live.keep(ev.Event, data, detached)
		p.mu.Unlock()
		if detached {
			return
		}
	}
	p.events <- frame{data, cut}
}

// frame builds an event in the app's chunk layout: the converter's base fields, then the event's own.
func (p *plan) frame(event string, fields ...kv) []byte {
	o := obj{{"event", event}}
	if p.run.app == "workflow" {
		o = append(o, kv{"workflow_run_id", p.run.id})
	} else {
		o = append(o, kv{"conversation_id", p.conv}, kv{"message_id", p.msgID}, kv{"created_at", p.run.createdAt.Unix()})
	}
	return p.d.encode(append(o, fields...))
}

func (p *plan) workflowEvent(event string, data obj, cut bool) {
	if p.run.app == "workflow" {
		p.send(p.frame(event, kv{"task_id", p.run.taskID}, kv{"data", data}), cut)
		return
	}
	p.send(p.frame(event, kv{"task_id", p.run.taskID}, kv{"workflow_run_id", p.run.id}, kv{"data", data}), cut)
}

func (p *plan) startedData() obj {
	if p.d == v06 {
		return obj{{"id", p.run.id}, {"workflow_id", workflowID}, {"sequence_number", p.run.seq},
			{"created_at", p.run.createdAt.Unix()}}
	}
	return obj{{"id", p.run.id}, {"workflow_id", workflowID}, {"inputs", p.inputs}, {"created_at", p.run.createdAt.Unix()}}
}

func (p *plan) nodeStarted(n node, execID string, index int, prev string, at time.Time) obj {
	o := obj{{"id", execID}, {"node_id", n.id}, {"node_type", n.typ}, {"title", n.title}, {"index", index},
		{"predecessor_node_id", nullable(prev)}, {"inputs", nil}, {"created_at", at.Unix()}, {"extras", obj{}}}
	if p.d == v1 {
		o = append(o, kv{"iteration_id", nil}, kv{"loop_id", nil})
	}
	return o
}

func (p *plan) nodeFinished(n node, execID string, index int, prev string, at time.Time, status, errMsg string) obj {
	var inputs, outputs, meta any
	text := obj{{"text", p.answer}}
	switch n.typ {
	case "start":
		inputs, outputs = p.inputs, p.inputs
	case "llm":
		outputs = text
	case "code":
		inputs, outputs = text, obj{{"result", p.answer}}
	case "end":
		inputs, outputs = text, text
		if p.sc.outcome.kind == noOutput {
			outputs = obj{}
		}
	case "answer":
		inputs, outputs = text, obj{{"answer", p.answer}}
	}
	if n.typ == "llm" && status == "succeeded" {
		meta = obj{{"total_tokens", 1161}, {"total_price", "0.0012890"}, {"currency", "USD"}}
	}
	if status != "succeeded" {
		outputs = nil
	}
	o := obj{{"id", execID}, {"node_id", n.id}, {"node_type", n.typ}, {"title", n.title}, {"index", index},
		{"predecessor_node_id", nullable(prev)}, {"inputs", inputs}, {"process_data", nil}, {"outputs", outputs},
		{"status", status}, {"error", nullable(errMsg)}, {"elapsed_time", secs(time.Since(at).Seconds())},
		{"execution_metadata", meta}, {"created_at", at.Unix()}, {"finished_at", time.Now().Unix()}}
	if p.d == v1 {
		o = append(o, kv{"files", []any{}}, kv{"iteration_id", nil}, kv{"loop_id", nil})
	}
	return o
}

func (p *plan) setSteps(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.run.steps = n
}

// finish records how the run ended and sends the closing events.
func (p *plan) finish(status, errMsg string) {
	rn := p.run
	var outputs obj
	var files []obj
	if status == "succeeded" {
		key := "text"
		if rn.app != "workflow" {
			key = "answer"
		}
		outputs, files = p.outputs(p.sim, key)
		if p.sc.outcome.kind == noOutput {
			outputs, files = obj{}, nil
		}
	}
	filesJSON := any([]any{})
	if len(files) > 0 {
		filesJSON = files
	}
	tokens := 0
	if status == "succeeded" {
		tokens = 1161
	}
	now := time.Now()
	p.mu.Lock()
	rn.status, rn.outputs, rn.err, rn.tokens = status, outputs, errMsg, tokens
	rn.elapsed, rn.finishedAt = now.Sub(rn.createdAt), now
	steps := rn.steps
	p.mu.Unlock()

	if rn.hasWorkflow() {
		data := obj{{"id", rn.id}, {"workflow_id", workflowID}}
		if p.d == v06 {
			data = append(data, kv{"sequence_number", rn.seq})
		}
		data = append(data, kv{"status", status}, kv{"outputs", nilIfEmpty(outputs)}, kv{"error", nullable(errMsg)},
			kv{"elapsed_time", secs(rn.elapsed.Seconds())}, kv{"total_tokens", tokens}, kv{"total_steps", steps})
		if p.d == v1 {
			data = append(data, kv{"created_by", obj{{"id", rn.endUser}, {"user", rn.user}}})
		}
		data = append(data, kv{"created_at", rn.createdAt.Unix()}, kv{"finished_at", now.Unix()})
		if p.d == v1 {
			data = append(data, kv{"exceptions_count", 0}, kv{"files", filesJSON})
		}
		p.workflowEvent("workflow_finished", data, false)
	}
	switch {
	case rn.app == "workflow":
	case status == "succeeded":
		if rn.app == "agent" {
			// New Agent closes with the whole answer in one message event, not a delta to append (§3.3).
			p.send(p.frame("message", kv{"task_id", rn.taskID}, kv{"id", p.msgID}, kv{"answer", p.answer}), false)
		}
		for _, f := range files {
			// The assistant's file, as message_file announces it: its id, type and a signed link (§2.2).
			p.send(p.frame("message_file", kv{"task_id", rn.taskID}, kv{"id", f.get("related_id")}, kv{"type", f.get("type")},
				kv{"belongs_to", "assistant"}, kv{"url", f.get("url")}), false)
		}
		p.send(p.frame("message_end", kv{"task_id", rn.taskID}, kv{"id", p.msgID},
			kv{"metadata", obj{{"usage", usage(rn.elapsed)}, {"retriever_resources", []any{}}}}, kv{"files", filesJSON}), false)
	case rn.app == "advanced-chat" && status == "failed":
		// A chatflow follows a failed workflow_finished with an error event (§4).
		p.errorEvent(errInvalid("Run failed: " + errMsg))
	}
}

// errorEvent ends the run with a §3.4 error event. It carries no task_id.
func (p *plan) errorEvent(e apiErr) {
	now := time.Now()
	p.mu.Lock()
	if p.run.status == "running" {
		p.run.status, p.run.err = "failed", e.message
		p.run.elapsed, p.run.finishedAt = now.Sub(p.run.createdAt), now
	}
	p.mu.Unlock()
	p.send(p.frame("error", kv{"code", e.code}, kv{"message", e.message}, kv{"status", e.status}), false)
}

func usage(elapsed time.Duration) obj {
	return obj{{"prompt_tokens", 1033}, {"completion_tokens", 128}, {"total_tokens", 1161},
		{"total_price", "0.0012890"}, {"currency", "USD"}, {"latency", secs(elapsed.Seconds())}}
}

// nullable maps "" to JSON null, as Dify's optional strings are.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// nilIfEmpty keeps {} for a succeeded run without outputs but gives null for a run that has none at all.
func nilIfEmpty(o obj) any {
	if o == nil {
		return nil
	}
	return o
}

// runDetail answers GET /v1/workflows/run/{id} (§5.1).
func (s *Sim) runDetail(w http.ResponseWriter, r *http.Request, c *call) {
	d := c.sc.dialect
	if c.mode == "chat" || c.mode == "agent" {
		writeErr(w, d, apiErr{http.StatusBadRequest, "not_workflow_app", msgAppMode, ""})
		return
	}
	keys := []string{"id", "workflow_id", "status", "inputs", "outputs", "error", "total_steps", "total_tokens",
		"created_at", "finished_at", "elapsed_time"}
	s.mu.Lock()
	rn, _ := s.runByID.get(r.PathValue("id"))
	var out obj
	if rn != nil {
		out = runDetailBody(rn, d)
	}
	s.mu.Unlock()
	if rn == nil {
		if d == v06 {
			// 0.x marshalled None: every field null, status 200.
			out := obj{}
			for _, k := range keys {
				out = append(out, kv{k, nil})
			}
			writeJSON(w, d, http.StatusOK, out)
			return
		}
		writeErr(w, d, errNotFound("Workflow run not found."))
		return
	}
	writeJSON(w, d, http.StatusOK, out)
}

// runDetailBody renders a run the way GET /workflows/run/{id} does. Sim.mu must be held.
func runDetailBody(rn *run, d dialect) obj {
	var outputs any = obj{}
	if rn.outputs != nil {
		outputs = rn.outputs
	}
	if d == v06 {
		// 0.x returned the raw column: JSON text, or null.
		outputs = nil
		if rn.outputs != nil {
			outputs = string(v06.encode(rn.outputs))
		}
	}
	var finished any
	elapsed := time.Since(rn.createdAt)
	if rn.status != "running" && rn.status != "paused" {
		finished, elapsed = rn.finishedAt.Unix(), rn.elapsed
	}
	return obj{{"id", rn.id}, {"workflow_id", workflowID}, {"status", rn.status},
		{"inputs", rn.inputs}, {"outputs", outputs}, {"error", nullable(rn.err)}, {"total_steps", rn.steps},
		{"total_tokens", rn.tokens}, {"created_at", rn.createdAt.Unix()}, {"finished_at", finished},
		{"elapsed_time", secs(elapsed.Seconds())}}
}

// stop answers the stop endpoints (§5.2, §4): always success; a task still running ends stopped.
func (s *Sim) stop(w http.ResponseWriter, r *http.Request, c *call) {
	d := c.sc.dialect
	var in struct {
		User string `json:"user"`
	}
	json.NewDecoder(io.LimitReader(r.Body, maxJSONBody)).Decode(&in)
	if in.User == "" {
		writeErr(w, d, errInvalid(msgUserRequired))
		return
	}
	workflowRoute := c.route == RouteStop
	switch {
	case workflowRoute && c.mode != "workflow":
		writeErr(w, d, apiErr{http.StatusBadRequest, "not_workflow_app", msgAppMode, ""})
		return
	case !workflowRoute && c.mode == "workflow":
		writeErr(w, d, apiErr{http.StatusBadRequest, "not_chat_app", msgAppMode, ""})
		return
	}
	s.mu.Lock()
	rn, _ := s.runByTas.get(r.PathValue("id"))
	s.mu.Unlock()
	if rn != nil {
		rn.stopOnce.Do(func() { close(rn.stop) })
	}
	writeJSON(w, d, http.StatusOK, obj{{"result", "success"}})
}

// listMessages answers GET /v1/messages (§5): the newest page of a conversation's messages, oldest first. A
// message's answer stays empty until it is generated, as Dify stores the row before it streams.
func (s *Sim) listMessages(w http.ResponseWriter, r *http.Request, c *call) {
	d := c.sc.dialect
	q := r.URL.Query()
	user, conv := q.Get("user"), q.Get("conversation_id")
	if user == "" {
		writeErr(w, d, errInvalid(msgUserRequired))
		return
	}
	limit := 20
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			writeErr(w, d, apiErr{http.StatusBadRequest, "invalid_param", "limit must be between 1 and 100", "limit"})
			return
		}
		limit = n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	owner, known := s.convs.get(conv)
	if !known || c.sh.perUser && owner != user {
		writeErr(w, d, errNotFound("Conversation Not Exists."))
		return
	}
	list, _ := s.messages.get(conv)
	from := max(0, len(list)-limit)
	data := []any{}
	for _, rn := range list[from:] {
		answer, status := "", "normal"
		switch {
		case rn.status == "succeeded":
			for _, f := range rn.outputs {
				if f.k == "answer" {
					answer, _ = f.v.(string)
				}
			}
		case rn.status != "running":
			status = "error"
		}
		data = append(data, obj{{"id", rn.msgID}, {"conversation_id", conv}, {"parent_message_id", nil},
			{"inputs", obj{}}, {"query", rn.query}, {"answer", answer}, {"message_files", []any{}},
			{"feedback", nil}, {"retriever_resources", []any{}}, {"agent_thoughts", []any{}},
			{"created_at", rn.createdAt.Unix()}, {"status", status}, {"error", nullable(rn.err)}})
	}
	writeJSON(w, d, http.StatusOK, obj{{"limit", limit}, {"has_more", from > 0}, {"data", data}})
}

// maxActiveMessage is Dify's text for APP_MAX_ACTIVE_REQUESTS (dify-api.md §1.3).
func (s *Sim) maxActiveMessage() string {
	return fmt.Sprintf("Too many requests. Please try again later. The current maximum concurrent requests allowed for %s is %d.", appID, s.opts.MaxActive)
}
