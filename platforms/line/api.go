package line

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 64 << 10

// apiError is a non-2xx answer from LINE. It carries LINE's message, never a token or request body.
type apiError struct {
	Op      string // What was called: "reply", "push", "loading animation", "content".
	Status  int
	Message string
	Details []string
}

func (e *apiError) Error() string {
	s := fmt.Sprintf("LINE %s: HTTP %d", e.Op, e.Status)
	if e.Message != "" {
		s += ": " + e.Message
	}
	if len(e.Details) > 0 {
		s += " (" + strings.Join(e.Details, "; ") + ")"
	}
	return s
}

// invalidReplyToken reports LINE's 400 for a reply token that expired or was used.
func (e *apiError) invalidReplyToken() bool {
	return e.Status == http.StatusBadRequest && strings.Contains(strings.ToLower(e.Message), "reply token")
}

// monthlyLimit reports the 429 LINE answers when the channel's monthly message quota is used up, as opposed
// to the per-second rate limit, which passes.
func (e *apiError) monthlyLimit() bool {
	return e.Status == http.StatusTooManyRequests && strings.Contains(strings.ToLower(e.Message), "monthly limit")
}

// quoteRejected reports a 400 about a quote token (expired, or from another chat).
func (e *apiError) quoteRejected() bool {
	if e.Status != http.StatusBadRequest {
		return false
	}
	return strings.Contains(strings.ToLower(e.Message+" "+strings.Join(e.Details, " ")), "quote")
}

// callError turns an SDK call's outcome into nil or an error. Any 2xx is success, even when the SDK could
// not decode the body: LINE has accepted the request by then. It closes the body of a failed response.
func callError(op string, res *http.Response, err error) error {
	if res != nil && res.StatusCode/100 == 2 {
		return nil
	}
	if res == nil {
		if err == nil {
			err = fmt.Errorf("no response")
		}
		return fmt.Errorf("LINE %s: %w", op, err)
	}
	return readAPIError(op, res)
}

// readAPIError reads LINE's error JSON ({"message": …, "details": [{"message", "property"}]}) from res.
func readAPIError(op string, res *http.Response) *apiError {
	e := &apiError{Op: op, Status: res.StatusCode}
	if res.Body == nil {
		return e
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, maxErrorBody))
	var v struct {
		Message string `json:"message"`
		Details []struct {
			Message  string `json:"message"`
			Property string `json:"property"`
		} `json:"details"`
	}
	if json.Unmarshal(body, &v) != nil {
		return e // Not LINE's JSON (a proxy page, say): the status says enough.
	}
	e.Message = v.Message
	for _, d := range v.Details {
		s := d.Message
		if d.Property != "" {
			s = d.Property + ": " + s
		}
		e.Details = append(e.Details, s)
	}
	return e
}
