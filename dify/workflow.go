package dify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// ResponseMode selects Dify's blocking JSON answer or its event stream.
type ResponseMode string

// The response modes Dify accepts.
const (
	Streaming ResponseMode = "streaming"
	Blocking  ResponseMode = "blocking"
)

// FileRef points a run at a file: an upload's id or a remote URL.
type FileRef struct {
	Type           string `json:"type"` // image, document, audio, video, custom.
	TransferMethod string `json:"transfer_method"`
	UploadFileID   string `json:"upload_file_id,omitempty"`
	URL            string `json:"url,omitempty"`
}

// LocalImage refers to an image uploaded with UploadFile.
func LocalImage(uploadID string) FileRef {
	return FileRef{Type: "image", TransferMethod: "local_file", UploadFileID: uploadID}
}

// RunRequest is one workflow run.
type RunRequest struct {
	Inputs map[string]any
	User   string
	Files  []FileRef    // sys.files; most workflows take the image as an input variable instead.
	Mode   ResponseMode // Default Streaming.
	// OnEvent sees every streamed event as it arrives, on the calling goroutine. It must not block for long.
	OnEvent func(Event)
	// OnSend and OnNotStarted report each try of the request (see Tries).
	Tries
}

// Tries lets a caller keep a durable mark that is set exactly while a try of a run request may have reached
// Dify: set it in OnSend, clear it in OnNotStarted. A process killed while the client waits to send the request
// again (after a gateway's 502 page, say) then leaves the mark clear and the run may be sent after a restart;
// one killed while a try was in flight leaves it set. Both are called on the calling goroutine.
type Tries struct {
	// OnSend is called before each try sends the request. An error stops the call before anything is sent and
	// is returned as it is.
	OnSend func() error
	// OnNotStarted is called after each try that certainly started nothing (NotStarted is true of its error),
	// before the client waits to send the request again or returns.
	OnNotStarted func(err error)
}

// Run is a workflow run's outcome as Dify reports it.
type Run struct {
	ID         string         `json:"id"`
	TaskID     string         `json:"task_id,omitempty"`
	WorkflowID string         `json:"workflow_id"`
	Status     string         `json:"status"`
	Outputs    map[string]any `json:"outputs"`
	// OutputsJSON is the outputs as Dify sent them, which keeps the order of an object's keys.
	OutputsJSON json.RawMessage `json:"-"`
	Error       string          `json:"error"`
	ElapsedTime float64         `json:"elapsed_time"`
	TotalTokens int64           `json:"total_tokens"`
	TotalSteps  int64           `json:"total_steps"`
	// Recovered is true when the stream dropped and the outcome came from polling the run.
	Recovered bool `json:"recovered,omitempty"`
	// Files are the files the run produced, once each: file objects among the outputs (alone or in a list) and
	// the stream's workflow_finished.data.files.
	Files []OutputFile `json:"files,omitempty"`
	// Replaced is the text of a text_replace event (output moderation replacing the streamed text), "" when
	// none came: it replaces the text output shown.
	Replaced string `json:"replaced,omitempty"`
}

// runState is what a stream told us so far; it survives a dropped connection.
type runState struct {
	runID, taskID string
	started       bool // workflow_started arrived: the run can be read back by runID.
	// A chat app's message and conversation, once its stream named them: a plain chat app runs no workflow,
	// so its answer is read back from the conversation's messages.
	messageID, conversationID string
	failedNode                string
	failedNodeType            string
	chat                      bool   // Stop through the chat-messages endpoint.
	forms                     []Form // The Human Input forms the run waits on.
	answer                    []byte // A followed chatflow's message deltas.
	// firstAt is when the stream's first event arrived: how long Dify took to start the run is how the limiter
	// sees it queueing, whatever the workflow then does for how long.
	firstAt time.Time
}

// RunWorkflow runs the app's published workflow. The request is sent again only when it certainly did not
// start a run. If a stream drops after workflow_started, the outcome is polled from GET /workflows/run/{id}
// instead of posting again. If ctx expires mid-run, the task is asked to stop and a *TimeoutError is returned.
// A run that ends in any status but succeeded or partial-succeeded returns the Run and a *RunError.
func (c *Client) RunWorkflow(ctx context.Context, req RunRequest) (*Run, error) {
	const op = "run workflow"
	if req.Mode == "" {
		req.Mode = Streaming
	}
	if req.Inputs == nil {
		req.Inputs = map[string]any{}
	}
	body, err := json.Marshal(struct {
		Inputs       map[string]any `json:"inputs"`
		ResponseMode ResponseMode   `json:"response_mode"`
		User         string         `json:"user"`
		Files        []FileRef      `json:"files,omitempty"`
	}{req.Inputs, req.Mode, req.User, req.Files})
	if err != nil {
		return nil, fmt.Errorf("dify: %s: %w", op, err)
	}

	var st runState
	var run *Run
	err = c.runCall(ctx, op, &st, req.User, req.Tries, func() bool { return run != nil }, func() error {
		resp, err := c.send(ctx, request{op: op, method: http.MethodPost, route: "/workflows/run",
			body: bytes.NewReader(body), contentType: "application/json", stream: req.Mode == Streaming})
		if err != nil {
			return err
		}
		if req.Mode == Blocking {
			var out struct {
				TaskID        string `json:"task_id"`
				WorkflowRunID string `json:"workflow_run_id"`
				Data          runJSON
			}
			if err := decodeJSON(op, resp, &out); err != nil {
				return err
			}
			run = out.Data.run()
			run.TaskID = out.TaskID
			if run.ID == "" {
				run.ID = out.WorkflowRunID
			}
			return nil
		}
		defer resp.Body.Close()
		run, err = c.readRunStream(ctx, op, resp, &st, req.OnEvent, nil)
		return err
	}, func(r *Run) error {
		run = r
		return nil
	})
	if err != nil {
		return run, err
	}
	return run, runOutcome(op, run, &st)
}

// runCall performs an operation that starts a run. It is sent again only while it certainly did not start,
// recovered by polling when its stream dropped after it started, stopped when ctx expires, and counted by the
// breaker once, by its final outcome: a dropped stream that was recovered is a success. Each try is reported
// to tries.
func (c *Client) runCall(ctx context.Context, op string, st *runState, user string, tries Tries, answered func() bool,
	attempt func() error, recovered func(*Run) error) error {
	try := func() error {
		// Each try holds a slot of the limiter while it may run in Dify; a refused one waits for the next.
		ticket, err := c.limiter.acquire(ctx)
		if err != nil {
			return fmt.Errorf("dify: %s: waiting for a free run slot: %w", op, err)
		}
		began := time.Now()
		defer func() {
			var took time.Duration // To the first event of this try's stream; a blocking run has none.
			if err == nil && st.firstAt.After(began) {
				took = st.firstAt.Sub(began)
			}
			c.limiter.release(ticket, ConcurrencyLimited(err), took)
		}()
		if tries.OnSend != nil {
			if err = tries.OnSend(); err != nil {
				return err
			}
		}
		err = attempt()
		if err != nil && tries.OnNotStarted != nil && !answered() && NotStarted(err) {
			tries.OnNotStarted(err)
		}
		return err
	}
	return c.breaker.do(ctx, func() error {
		err := c.retry.retry(ctx, notStarted, try)
		switch {
		case err == nil || answered():
			return err
		case ctx.Err() != nil:
			return c.timedOut(ctx, op, st, user, err)
		case st.started || st.messageID != "":
			run, err := c.recover(ctx, op, st, user, err)
			if err != nil {
				return err
			}
			return recovered(run)
		}
		return err
	})
}

// readRunStream consumes a workflow event stream until workflow_finished, workflow_paused or an error event.
// When answered is not nil (a run followed after its forms were answered), a pause that waits only on those
// forms is read past: it is the one before Dify resumed the run.
func (c *Client) readRunStream(ctx context.Context, op string, resp *http.Response, st *runState, onEvent func(Event), answered []string) (*Run, error) {
	var run *Run
	var files fileSet
	replaced := ""
	err := readEvents(resp.Body, func(data []byte) error {
		var ev Event
		if err := json.Unmarshal(data, &ev); err != nil {
			// An event we cannot read is skipped, unless it may be the end of the run.
			if bytes.Contains(data, []byte("workflow_finished")) || bytes.Contains(data, []byte(`"error"`)) {
				return &BadResponseError{Op: op, Status: resp.StatusCode, Reason: "unreadable terminal event", Body: excerpt(data)}
			}
			return nil
		}
		st.observe(ev)
		if onEvent != nil {
			onEvent(ev)
		}
		files.observe(ev)
		switch ev.Event {
		case "text_replace":
			replaced = ev.Data.Text
		case "workflow_finished":
			run = ev.Data.run(ev)
			run.Files, run.Replaced = files.files, replaced
			return errStop
		case "message", "agent_message":
			st.answer = append(st.answer, ev.Answer...)
		case "human_input_required":
			st.observePause(data)
		case "workflow_paused":
			st.observePause(data)
			if answered != nil {
				st.forms = slices.DeleteFunc(st.forms, func(f Form) bool { return slices.Contains(answered, f.ID) })
				if len(st.forms) == 0 {
					return nil
				}
			}
			run = &Run{ID: st.runID, TaskID: st.taskID, Status: "paused"}
			return errStop
		case "error":
			return streamError(op, ev)
		}
		return nil
	})
	if errors.Is(err, errStop) {
		return run, nil
	}
	return nil, streamFailure(ctx, op, resp.StatusCode, err, "workflow_finished", st.started)
}

// streamFailure classifies how a stream ended without its terminal event: a typed error from the handler
// passes through, a clean EOF or a cut before the run started is a bad response (there is no run to recover),
// and a cut after it started is a network error, which the caller recovers by polling.
func streamFailure(ctx context.Context, op string, status int, err error, terminal string, started bool) error {
	var ae *APIError
	var be *BadResponseError
	var re *RunError
	var pe *PausedError
	switch {
	case err == nil:
		return &BadResponseError{Op: op, Status: status, Reason: "stream ended without " + terminal}
	case errors.As(err, &ae) || errors.As(err, &be) || errors.As(err, &re) || errors.As(err, &pe):
		return err
	case errors.Is(err, errEventTooLarge):
		return &BadResponseError{Op: op, Status: status, Reason: err.Error()}
	case !started && ctx.Err() == nil:
		return &BadResponseError{Op: op, Status: status, Reason: fmt.Sprintf("stream cut before the run started: %v", err)}
	}
	return netError(ctx, op, err)
}

// errStop ends a stream read early without an error.
var errStop = errors.New("stop")

func (st *runState) observe(ev Event) {
	if st.firstAt.IsZero() {
		st.firstAt = time.Now()
	}
	if ev.WorkflowRunID != "" {
		st.runID = ev.WorkflowRunID
	}
	if ev.TaskID != "" {
		st.taskID = ev.TaskID
	}
	if st.chat && ev.MessageID != "" && ev.ConversationID != "" {
		st.messageID, st.conversationID = ev.MessageID, ev.ConversationID
	}
	switch ev.Event {
	case "workflow_started":
		st.started = true
		if st.runID == "" {
			st.runID = ev.Data.ID
		}
	case "node_finished":
		if ev.Data.Status == "failed" || ev.Data.Status == "exception" {
			st.failedNode, st.failedNodeType = ev.Data.Title, ev.Data.NodeType
		}
	}
}

// streamError turns an error event into an error. Chatflows report a failed run as invalid_param "Run failed: …";
// that is the workflow failing, not our input being wrong.
func streamError(op string, ev Event) error {
	ae := &APIError{Op: op, Status: int(ev.Status), Code: ev.Code, Message: ev.Message, InStream: true}
	return runFailedError(op, ae, ev.WorkflowRunID, ev.TaskID)
}

// runFailedError converts Dify's "Run failed: …" invalid_param into a RunError; other errors pass through.
func runFailedError(op string, ae *APIError, runID, taskID string) error {
	if ae.Code == "invalid_param" && strings.HasPrefix(ae.Message, "Run failed: ") {
		return &RunError{Op: op, RunID: runID, TaskID: taskID, Status: "failed", Message: strings.TrimPrefix(ae.Message, "Run failed: ")}
	}
	return ae
}

// recover polls a run (or a chat app's message) whose stream dropped after it started, so it is never posted twice.
func (c *Client) recover(ctx context.Context, op string, st *runState, user string, cause error) (*Run, error) {
	var ae *APIError
	if errors.As(cause, &ae) && ae.InStream {
		return nil, cause // Dify ended the run with an error event; nothing to recover.
	}
	var re *RunError
	if errors.As(cause, &re) || isPause(cause) {
		return nil, cause
	}
	var run *Run
	var err error
	if st.started {
		c.log.Warn().Str("run_id", st.runID).Err(cause).Msg("dify stream dropped after the run started; polling the run")
		run, err = c.poll(ctx, op, st.runID)
	} else {
		c.log.Warn().Str("message_id", st.messageID).Err(cause).Msg("dify stream dropped after the message started; reading the conversation's messages")
		run, err = c.pollMessage(ctx, op, st.conversationID, st.messageID, user)
	}
	if err != nil && ctx.Err() != nil {
		return nil, c.timedOut(ctx, op, st, user, ctx.Err())
	}
	if err != nil {
		return nil, &BadResponseError{Op: op, Reason: fmt.Sprintf("stream dropped (%v) and the run could not be recovered: %v", cause, err)}
	}
	run.TaskID = st.taskID
	return run, nil
}

// WaitRun waits for a run that started earlier, such as one whose worker crashed, by polling its detail.
// Like RunWorkflow it returns a *RunError when the run did not succeed.
func (c *Client) WaitRun(ctx context.Context, runID string) (*Run, error) {
	const op = "wait for run"
	run, err := c.poll(ctx, op, runID)
	if err != nil {
		return nil, err
	}
	return run, runOutcome(op, run, &runState{})
}

// poll reads a run's detail until it is no longer running. It never posts anything.
func (c *Client) poll(ctx context.Context, op, runID string) (*Run, error) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("dify: %s: %w", op, ctx.Err())
		case <-t.C:
		}
		run, err := c.readRun(ctx, runID)
		switch {
		case err == nil && run.Status == "":
			// 0.x answers an unknown id with 200 and nulls.
			return nil, &BadResponseError{Op: op, Status: http.StatusOK, Reason: fmt.Sprintf("run %s is unknown", runID)}
		case err == nil && run.Status != "running":
			run.Recovered = true
			if run.ID == "" {
				run.ID = runID
			}
			return run, nil
		case err != nil && (ctx.Err() != nil || !canRepeat(err)):
			return nil, err
		}
		t.Reset(c.pollEvery)
	}
}

// timedOut stops the task on our own deadline, on a context that outlives the expired one.
func (c *Client) timedOut(ctx context.Context, op string, st *runState, user string, cause error) error {
	if errors.Is(cause, context.Canceled) || !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return cause
	}
	err := context.DeadlineExceeded
	if st.taskID != "" {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		stop := c.StopTask
		if st.chat {
			stop = c.StopChatMessage
		}
		if serr := stop(sctx, st.taskID, user); serr != nil {
			err = errors.Join(err, serr)
		}
	}
	return &TimeoutError{Op: op, RunID: st.runID, TaskID: st.taskID, Err: err}
}

// runOutcome turns a finished run's status into an error unless it succeeded; a paused run is a *PausedError.
func runOutcome(op string, run *Run, st *runState) error {
	switch run.Status {
	case "succeeded", "partial-succeeded":
		return nil
	case "paused":
		if st.runID == "" {
			st.runID = run.ID
		}
		if st.taskID == "" {
			st.taskID = run.TaskID
		}
		return st.pausedError(op)
	}
	return &RunError{Op: op, RunID: run.ID, TaskID: run.TaskID, Status: run.Status, Message: run.Error,
		Node: st.failedNode, NodeType: st.failedNodeType}
}

// runJSON is a run as the blocking answer, workflow_finished and run detail carry it; outputs may be an object,
// a JSON string (0.x run detail) or null.
type runJSON struct {
	ID          string          `json:"id"`
	WorkflowID  string          `json:"workflow_id"`
	Status      string          `json:"status"`
	Outputs     json.RawMessage `json:"outputs"`
	Error       string          `json:"error"`
	ElapsedTime float64         `json:"elapsed_time"`
	TotalTokens flexInt         `json:"total_tokens"`
	TotalSteps  flexInt         `json:"total_steps"`
}

func (r runJSON) run() *Run {
	return &Run{ID: r.ID, WorkflowID: r.WorkflowID, Status: r.Status, Outputs: decodeOutputs(r.Outputs),
		Error: r.Error, ElapsedTime: r.ElapsedTime, TotalTokens: int64(r.TotalTokens), TotalSteps: int64(r.TotalSteps),
		Files: filesIn(r.Outputs), OutputsJSON: r.Outputs}
}

func (d EventData) run(ev Event) *Run {
	r := runJSON{ID: d.ID, WorkflowID: d.WorkflowID, Status: d.Status, Outputs: d.Outputs, Error: d.Error,
		ElapsedTime: d.ElapsedTime, TotalTokens: d.TotalTokens, TotalSteps: d.TotalSteps}.run()
	if r.ID == "" {
		r.ID = ev.WorkflowRunID
	}
	r.TaskID = ev.TaskID
	return r
}

func decodeOutputs(raw json.RawMessage) map[string]any {
	var m map[string]any
	if json.Unmarshal(raw, &m) == nil {
		return m
	}
	var s string
	if json.Unmarshal(raw, &s) == nil && json.Unmarshal([]byte(s), &m) == nil {
		return m
	}
	return nil
}

// GetWorkflowRun reads a run's detail. Transient failures are retried.
func (c *Client) GetWorkflowRun(ctx context.Context, runID string) (*Run, error) {
	var run *Run
	err := c.breaker.do(ctx, func() error {
		var err error
		run, err = c.readRun(ctx, runID)
		return err
	})
	return run, err
}

// readRun reads a run's detail with retries but without asking the breaker: finding out how a run we already
// started ended is the one call worth making while the breaker is open, because the alternative is losing it.
func (c *Client) readRun(ctx context.Context, runID string) (*Run, error) {
	const op = "get workflow run"
	var out runJSON
	err := c.retry.retry(ctx, canRepeat, func() error {
		return c.getJSON(ctx, op, "/workflows/run/"+url.PathEscape(runID), &out)
	})
	if err != nil {
		return nil, err
	}
	return out.run(), nil
}

// StopTask asks Dify to stop a streaming task. Dify answers success even for unknown or finished tasks.
func (c *Client) StopTask(ctx context.Context, taskID, user string) error {
	var out struct {
		Result string `json:"result"`
	}
	return c.postJSON(ctx, "stop task", "/workflows/tasks/"+url.PathEscape(taskID)+"/stop", map[string]string{"user": user}, &out)
}
