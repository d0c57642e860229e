package dify

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// maxEventBytes bounds one SSE event. Node outputs of several MB are normal; a runaway stream is not.
const maxEventBytes = 64 << 20

// errEventTooLarge reports an event over maxEventBytes.
var errEventTooLarge = fmt.Errorf("dify: stream event larger than %d bytes", maxEventBytes)

// Event is one streamed event from a workflow run or a chat message. Only the fields difybot uses are decoded;
// unknown events arrive with just Event set.
type Event struct {
	Event          string    `json:"event"`
	TaskID         string    `json:"task_id"`
	WorkflowRunID  string    `json:"workflow_run_id"`
	ConversationID string    `json:"conversation_id"`
	MessageID      string    `json:"message_id"`
	Data           EventData `json:"data"`
	Answer         string    `json:"answer"` // message, agent_message, message_replace.
	// Files are message_end's file objects.
	Files json.RawMessage `json:"files"`
	// Set on message_file events: the file's id, type, who it belongs to (user or assistant) and its URL.
	ID        string `json:"id"`
	Type      string `json:"type"`
	BelongsTo string `json:"belongs_to"`
	URL       string `json:"url"`
	// Set on "error" events.
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Status  flexInt `json:"status"`
}

// EventData is the union of the data fields of workflow and node events that difybot reads.
type EventData struct {
	ID          string          `json:"id"`
	WorkflowID  string          `json:"workflow_id"`
	NodeID      string          `json:"node_id"`
	NodeType    string          `json:"node_type"`
	Title       string          `json:"title"`
	Index       flexInt         `json:"index"`
	Status      string          `json:"status"`
	Error       string          `json:"error"`
	ElapsedTime float64         `json:"elapsed_time"`
	Text        string          `json:"text"`
	Outputs     json.RawMessage `json:"outputs"`
	Files       json.RawMessage `json:"files"` // workflow_finished's and node_finished's file objects.
	TotalTokens flexInt         `json:"total_tokens"`
	TotalSteps  flexInt         `json:"total_steps"`
}

// flexInt accepts a JSON number, a numeric string or null, because Dify's versions disagree.
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	b = bytes.Trim(b, `"`)
	if len(b) == 0 || string(b) == "null" {
		*f = 0
		return nil
	}
	n, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return err
	}
	*f = flexInt(n)
	return nil
}

// pingEvent stands for Dify's keep-alive ("event: ping", no data), so callers can tell a slow run from a dead one.
var pingEvent = []byte(`{"event":"ping"}`)

// readEvents reads a Dify event stream and calls fn with each event's data payload, and with pingEvent for each
// keep-alive. It skips comments, SSE fields Dify does not use and blank payloads. It returns nil at a clean EOF, the read error otherwise, or
// fn's error. A payload still pending at EOF is delivered, because a cut stream may end without the blank line.
func readEvents(r io.Reader, fn func(data []byte) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var data []byte
	var name string
	dispatch := func() error {
		d, n := data, name
		data, name = data[:0], ""
		if n == "ping" {
			return fn(pingEvent)
		}
		if len(bytes.TrimSpace(d)) == 0 {
			return nil
		}
		return fn(d)
	}
	for {
		line, err := readLine(br)
		if len(line) > 0 || err == nil {
			if len(line) == 0 {
				if derr := dispatch(); derr != nil {
					return derr
				}
			} else {
				field, value := line, []byte(nil)
				if i := bytes.IndexByte(line, ':'); i >= 0 {
					field, value = line[:i], line[i+1:]
					value = bytes.TrimPrefix(value, []byte(" "))
				}
				switch string(field) {
				case "data":
					if len(data) > 0 {
						data = append(data, '\n')
					}
					if len(data)+len(value) > maxEventBytes {
						return errEventTooLarge
					}
					data = append(data, value...)
				case "event":
					name = string(value)
				}
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return dispatch()
			}
			return err
		}
	}
}

// readLine returns one line without its terminator (\n, \r\n), of any length up to maxEventBytes.
// bufio.Scanner's 64 KB token limit would break on large node outputs.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		long := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = br.ReadSlice('\n')
			if len(long)+len(line) > maxEventBytes {
				return nil, errEventTooLarge
			}
			long = append(long, line...)
		}
		line = long
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	return line, err
}
