package dify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ChatRequest is one message to a chat, agent or chatflow app.
type ChatRequest struct {
	Query          string
	Inputs         map[string]any
	User           string
	ConversationID string // Empty starts a new conversation.
	Files          []FileRef
	// Mode is the response mode asked for; default Streaming. Agent apps answer only by stream (mode agent
	// refuses blocking with 400 "Agent App only supports streaming response mode.", agent-chat with "Agent Chat
	// App does not support blocking mode"), and an app's mode cannot always be told from /v1/info. So when Dify
	// refuses Blocking for that reason, the client sends the message again streaming, within the same call, and
	// the Client streams its later chat messages from the start. Nothing ran on the refused request. The reply is
	// the same either way; OnEvent then sees the stream's events.
	Mode    ResponseMode
	OnEvent func(Event)
	// OnSend and OnNotStarted report each try of the request, as RunRequest's do.
	Tries
}

// ChatReply is a chat app's answer.
type ChatReply struct {
	ConversationID string `json:"conversation_id"`
	MessageID      string `json:"message_id"`
	TaskID         string `json:"task_id"`
	WorkflowRunID  string `json:"workflow_run_id,omitempty"` // Chatflows only.
	Answer         string `json:"answer"`
	Recovered      bool   `json:"recovered,omitempty"`
	// Files are the files the answer carries, once each: message_file events (the assistant's), message_end.files
	// and a chatflow's workflow_finished files.
	Files []OutputFile `json:"files,omitempty"`
}

// SendChatMessage sends a message to a chat app, with the same retry and recovery rules as RunWorkflow.
// A chatflow's failed run comes back as a *RunError naming the failing node. A conversation Dify no longer has
// comes back as an *APIError matching ErrConversationGone; the client never resends it, because only the caller
// can decide to start a new conversation.
func (c *Client) SendChatMessage(ctx context.Context, req ChatRequest) (*ChatReply, error) {
	const op = "send chat message"
	if req.Mode == "" {
		req.Mode = Streaming
	}
	if req.Inputs == nil {
		req.Inputs = map[string]any{}
	}
	body := func(mode ResponseMode) ([]byte, error) {
		return json.Marshal(struct {
			Query          string         `json:"query"`
			Inputs         map[string]any `json:"inputs"`
			ResponseMode   ResponseMode   `json:"response_mode"`
			User           string         `json:"user"`
			ConversationID string         `json:"conversation_id"`
			Files          []FileRef      `json:"files,omitempty"`
		}{req.Query, req.Inputs, mode, req.User, req.ConversationID, req.Files})
	}
	mode := req.Mode
	if mode == Blocking && c.streamOnly.Load() {
		mode = Streaming
	}
	b, err := body(mode)
	if err != nil {
		return nil, fmt.Errorf("dify: %s: %w", op, err)
	}
	st := runState{chat: true}
	var reply *ChatReply
	err = c.runCall(ctx, op, &st, req.User, req.Tries, func() bool { return reply != nil }, func() error {
		resp, err := c.send(ctx, request{op: op, method: http.MethodPost, route: "/chat-messages",
			body: bytes.NewReader(b), contentType: "application/json", stream: mode == Streaming})
		var ae *APIError
		if mode == Blocking && errors.As(err, &ae) && refusesBlocking(ae) {
			// An agent app: nothing ran. Stream this message, and every later one from the start.
			c.streamOnly.Store(true)
			c.log.Info().Str("op", op).Msg("the Dify app answers only by stream (an agent app); streaming chat messages from now on")
			mode = Streaming
			if b, err = body(mode); err != nil {
				return fmt.Errorf("dify: %s: %w", op, err)
			}
			resp, err = c.send(ctx, request{op: op, method: http.MethodPost, route: "/chat-messages",
				body: bytes.NewReader(b), contentType: "application/json", stream: true})
		}
		if errors.As(err, &ae) {
			return runFailedError(op, ae, "", "")
		}
		if err != nil {
			return err
		}
		if mode == Blocking {
			var out struct {
				ChatReply
				ID       string          `json:"id"`
				RawFiles json.RawMessage `json:"files"`
			}
			if err := decodeJSON(op, resp, &out); err != nil {
				return err
			}
			reply = &out.ChatReply
			if reply.MessageID == "" {
				reply.MessageID = out.ID
			}
			var fs fileSet
			fs.add(filesIn(out.RawFiles)...)
			reply.Files = fs.files
			return nil
		}
		defer resp.Body.Close()
		reply, err = c.readChatStream(ctx, op, resp, &st, req.OnEvent)
		return err
	}, func(run *Run) error {
		// A chatflow keeps running server-side; its run detail carries the answer.
		if err := runOutcome(op, run, &st); err != nil {
			return err
		}
		answer, _ := run.Outputs["answer"].(string)
		reply = &ChatReply{ConversationID: st.conversationID, MessageID: st.messageID, TaskID: st.taskID,
			WorkflowRunID: run.ID, Answer: answer, Recovered: true, Files: run.Files}
		return nil
	})
	return reply, err
}

// refusesBlocking recognises an agent app refusing a blocking request before it runs anything: mode agent
// answers 400 bad_request, agent-chat (and a chat app with an agent configuration) 400 invalid_param.
func refusesBlocking(e *APIError) bool {
	return !e.InStream && e.Status == http.StatusBadRequest &&
		(strings.Contains(e.Message, "only supports streaming response mode") || strings.Contains(e.Message, "does not support blocking mode"))
}

// readChatStream consumes a chat event stream until message_end or an error event. The answer is the message
// (or agent_message) deltas appended, except that message_replace replaces it, and so does a message event after
// agent_message deltas: a New Agent app (mode agent) closes with one message carrying the complete answer.
func (c *Client) readChatStream(ctx context.Context, op string, resp *http.Response, st *runState, onEvent func(Event)) (*ChatReply, error) {
	var reply ChatReply
	var answer []byte
	var files fileSet
	agent := false // An agent_message arrived: a later message event (mode agent's closing one) is the whole answer.
	done := false
	err := readEvents(resp.Body, func(data []byte) error {
		var ev Event
		if err := json.Unmarshal(data, &ev); err != nil {
			if bytes.Contains(data, []byte("message_end")) || bytes.Contains(data, []byte(`"error"`)) {
				return &BadResponseError{Op: op, Status: resp.StatusCode, Reason: "unreadable terminal event", Body: excerpt(data)}
			}
			return nil
		}
		st.observe(ev)
		if onEvent != nil {
			onEvent(ev)
		}
		files.observe(ev)
		if ev.ConversationID != "" {
			reply.ConversationID = ev.ConversationID
		}
		if ev.MessageID != "" {
			reply.MessageID = ev.MessageID
		}
		switch ev.Event {
		case "agent_message":
			agent = true
			answer = append(answer, ev.Answer...)
		case "message":
			if agent {
				answer = append(answer[:0], ev.Answer...)
			} else {
				answer = append(answer, ev.Answer...)
			}
		case "message_replace":
			answer = append(answer[:0], ev.Answer...)
		case "workflow_finished":
			if ev.Data.Status != "succeeded" && ev.Data.Status != "partial-succeeded" {
				return runOutcome(op, ev.Data.run(ev), st)
			}
		case "message_end":
			done = true
			return errStop
		case "human_input_required":
			st.observePause(data)
		case "workflow_paused":
			// A chatflow waits at a Human Input node: the answer comes once its form is answered.
			st.observePause(data)
			return st.pausedError(op)
		case "error":
			err := streamError(op, ev)
			var re *RunError
			if errors.As(err, &re) {
				re.RunID, re.Node, re.NodeType = st.runID, st.failedNode, st.failedNodeType
			}
			return err
		}
		return nil
	})
	reply.TaskID, reply.WorkflowRunID, reply.Answer, reply.Files = st.taskID, st.runID, string(answer), files.files
	if done {
		return &reply, nil
	}
	return nil, streamFailure(ctx, op, resp.StatusCode, err, "message_end", st.started || st.messageID != "")
}

// StopChatMessage asks Dify to stop a streaming chat task.
func (c *Client) StopChatMessage(ctx context.Context, taskID, user string) error {
	var out struct {
		Result string `json:"result"`
	}
	return c.postJSON(ctx, "stop chat message", "/chat-messages/"+url.PathEscape(taskID)+"/stop", map[string]string{"user": user}, &out)
}

// WaitMessage waits for a chat app's message that started earlier, such as one whose worker crashed, by reading
// the conversation's messages until it has its answer. It never sends anything. Like SendChatMessage it returns
// a *RunError when the message ended in an error.
func (c *Client) WaitMessage(ctx context.Context, conversationID, messageID, user string) (*ChatReply, error) {
	const op = "wait for message"
	run, err := c.pollMessage(ctx, op, conversationID, messageID, user)
	if err != nil {
		return nil, err
	}
	if err := runOutcome(op, run, &runState{}); err != nil {
		return nil, err
	}
	answer, _ := run.Outputs["answer"].(string)
	return &ChatReply{ConversationID: conversationID, MessageID: messageID, Answer: answer, Recovered: true}, nil
}

// messageMissingPolls is how many reads of the conversation may miss the message before it counts as lost:
// Dify stores a message before it streams it, so a miss is a real loss, not a race.
const messageMissingPolls = 3

// pollMessage reads the newest page of a conversation's messages until messageID has an answer or an error,
// and reports it in a Run's terms (the answer as outputs.answer), so that one path serves runs and messages.
// While Dify still generates, the stored answer is empty.
func (c *Client) pollMessage(ctx context.Context, op, conversationID, messageID, user string) (*Run, error) {
	route := "/messages?" + url.Values{"conversation_id": {conversationID}, "user": {user}, "limit": {"20"}}.Encode()
	t := time.NewTimer(0)
	defer t.Stop()
	missing := 0
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("dify: %s: %w", op, ctx.Err())
		case <-t.C:
		}
		var page struct {
			Data []struct {
				ID     string  `json:"id"`
				Answer string  `json:"answer"`
				Status string  `json:"status"`
				Error  *string `json:"error"`
			} `json:"data"`
		}
		err := c.retry.retry(ctx, canRepeat, func() error { return c.getJSON(ctx, op, route, &page) })
		if err != nil {
			return nil, err
		}
		found := false
		for _, m := range page.Data {
			if m.ID != messageID {
				continue
			}
			found = true
			switch {
			case m.Status == "error":
				msg := ""
				if m.Error != nil {
					msg = *m.Error
				}
				return &Run{Status: "failed", Error: msg, Recovered: true}, nil
			case m.Answer != "":
				return &Run{Status: "succeeded", Outputs: map[string]any{"answer": m.Answer}, Recovered: true}, nil
			}
		}
		if !found {
			if missing++; missing >= messageMissingPolls {
				return nil, &BadResponseError{Op: op, Status: http.StatusOK, Reason: fmt.Sprintf("message %s is not in its conversation", messageID)}
			}
		}
		t.Reset(c.pollEvery)
	}
}
