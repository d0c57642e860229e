package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/dify"
)

// breakerView is the answer to GET and PUT /admin/breaker.
type breakerView struct {
	Mode        string               `json:"mode"`         // The stored override every replica applies within 5 s.
	AppliedMode dify.Mode            `json:"applied_mode"` // The override this replica applies now.
	State       string               `json:"state"`        // This replica's effective state (closed, open, half-open, forced-open, forced-closed).
	AutoState   string               `json:"auto_state"`   // The automatic breaker's own state, which keeps running under an override.
	Since       time.Time            `json:"since"`        // When the automatic state last changed.
	Counts      breakerCounts        `json:"counts"`
	LastChange  *bot.BreakerSetting  `json:"last_change"` // Null when no operator ever switched it.
	History     []bot.BreakerSetting `json:"history"`     // Newest first.
	// Concurrency is this replica's adaptive cap on runs in flight against Dify and how many are.
	Concurrency *dify.LimitStatus `json:"concurrency,omitempty"`
	// Hosts are each Dify host's breaker, when the apps are on several.
	Hosts []hostBreakerView `json:"hosts,omitempty"`
}

// hostBreakerView is one Dify host's breaker: the override it follows (its own, else the one for all) and its state.
type hostBreakerView struct {
	Host      string `json:"host"`
	Mode      string `json:"mode"`
	State     string `json:"state"`
	AutoState string `json:"auto_state"`
}

// hostSettings is the store's part for the override of single hosts; a store without it has only the one for all.
type hostSettings interface {
	HostBreakerSettings(ctx context.Context) (map[string]bot.BreakerSetting, error)
}

// breakerCounts are the automatic breaker's counts in its current window.
type breakerCounts struct {
	Requests  uint32 `json:"requests"`
	Failures  uint32 `json:"failures"`
	Successes uint32 `json:"successes"`
}

func (a *api) getBreaker(w http.ResponseWriter, r *http.Request) {
	v, err := a.readBreaker(r.Context())
	if err != nil {
		a.internal(w, r, "read the breaker setting", err)
		return
	}
	a.writeJSON(w, http.StatusOK, v)
}

func (a *api) readBreaker(ctx context.Context) (breakerView, error) {
	set, err := a.cfg.Store.BreakerSetting(ctx)
	if err != nil {
		return breakerView{}, err
	}
	hist, err := a.cfg.Store.BreakerHistory(ctx, historyLimit)
	if err != nil {
		return breakerView{}, err
	}
	st := a.cfg.Breaker.Status()
	v := breakerView{Mode: set.Mode, AppliedMode: st.Mode, State: st.State, AutoState: st.Auto, Since: st.Since,
		Counts:  breakerCounts{Requests: st.Requests, Failures: st.Failures, Successes: st.Success},
		History: hist}
	if a.cfg.Limit != nil {
		l := a.cfg.Limit()
		v.Concurrency = &l
	}
	if v.Mode == "" {
		v.Mode = string(dify.ModeAuto)
	}
	if !set.At.IsZero() {
		v.LastChange = &set
	}
	if v.History == nil {
		v.History = []bot.BreakerSetting{}
	}
	if len(a.cfg.Hosts) > 0 {
		own := map[string]bot.BreakerSetting{}
		if hs, ok := a.cfg.Store.(hostSettings); ok {
			if own, err = hs.HostBreakerSettings(ctx); err != nil {
				return breakerView{}, err
			}
		}
		for _, h := range slices.Sorted(maps.Keys(a.cfg.Hosts)) {
			st := a.cfg.Hosts[h].Status()
			mode := v.Mode
			if s, ok := own[h]; ok {
				mode = s.Mode
			}
			v.Hosts = append(v.Hosts, hostBreakerView{Host: h, Mode: mode, State: st.State, AutoState: st.Auto})
		}
	}
	return v, nil
}

// breakerRequest is PUT /admin/breaker's body. Pointers tell a missing field from an empty one.
type breakerRequest struct {
	Mode   *string `json:"mode"`
	Reason *string `json:"reason"`
	Host   *string `json:"host"` // One Dify host, when the apps are on several; absent for all.
}

const breakerUsage = `send {"mode":"open|closed|auto","reason":"why"} (and "host" for one Dify host of several)`

func (a *api) putBreaker(w http.ResponseWriter, r *http.Request) {
	mode, reason, host, msg := readBreakerRequest(w, r)
	if msg == "" && host != "" && a.cfg.Hosts[host] == nil {
		msg = fmt.Sprintf("unknown host %q: want one of %s, or no host for all", clipRunes(host, 80), strings.Join(slices.Sorted(maps.Keys(a.cfg.Hosts)), ", "))
	}
	if msg != "" {
		a.writeError(w, http.StatusBadRequest, msg)
		return
	}
	set := bot.BreakerSetting{Mode: string(mode), Host: host, Reason: reason, Actor: breakerActor(r), At: a.cfg.Now().UTC()}
	// The store first: it is what every replica follows, so a change it did not keep must not take effect here.
	if err := a.cfg.Store.SetBreakerSetting(r.Context(), set); err != nil {
		a.internal(w, r, "store the breaker setting", err)
		return
	}
	if host != "" {
		a.cfg.Hosts[host].SetMode(mode, reason)
	} else {
		a.cfg.Breaker.SetMode(mode, reason)
		for _, b := range a.cfg.Hosts {
			b.SetMode(mode, reason)
		}
	}
	a.log.Warn().Str("mode", set.Mode).Str("host", host).Str("reason", reason).Str("actor", set.Actor).Msg("breaker mode set by an operator")
	v, err := a.readBreaker(r.Context())
	if err != nil {
		a.internal(w, r, "read the breaker setting", err)
		return
	}
	a.writeJSON(w, http.StatusOK, v)
}

// readBreakerRequest validates the body and says exactly what is wrong with it.
func readBreakerRequest(w http.ResponseWriter, r *http.Request) (mode dify.Mode, reason, host, problem string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return "", "", "", fmt.Sprintf("body is larger than %d bytes; %s", maxBody, breakerUsage)
	case err != nil:
		return "", "", "", "could not read the body: " + err.Error()
	case len(bytes.TrimSpace(body)) == 0:
		return "", "", "", "body is empty; " + breakerUsage
	}
	var req breakerRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return "", "", "", "body is not valid: " + jsonProblem(err) + "; " + breakerUsage
	}
	if dec.More() {
		return "", "", "", "body has data after the JSON object; " + breakerUsage
	}
	if req.Mode == nil || strings.TrimSpace(*req.Mode) == "" {
		return "", "", "", `mode is required: "open" (maintenance), "closed" (let every call through) or "auto"`
	}
	mode, err = dify.ParseMode(strings.ToLower(strings.TrimSpace(*req.Mode)))
	if err != nil {
		return "", "", "", fmt.Sprintf(`unknown mode %q: want "open", "closed" or "auto"`, clipRunes(*req.Mode, 40))
	}
	if req.Reason == nil || strings.TrimSpace(*req.Reason) == "" {
		return "", "", "", "reason is required: say why, for the audit history (for example \"Dify upgrade until 14:00\")"
	}
	reason = strings.TrimSpace(*req.Reason)
	if n := utf8.RuneCountInString(reason); n > maxReason {
		return "", "", "", fmt.Sprintf("reason is %d characters long; at most %d", n, maxReason)
	}
	if strings.ContainsFunc(reason, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }) {
		return "", "", "", "reason contains control characters"
	}
	if req.Host != nil {
		host = strings.TrimSpace(*req.Host)
	}
	return mode, reason, host, ""
}

// jsonProblem describes a decoding error without Go type names.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("not JSON (%s at byte %d)", strings.TrimPrefix(syn.Error(), "json: "), syn.Offset)
	case errors.As(err, &typ) && typ.Field != "":
		return fmt.Sprintf("%s must be a string", typ.Field)
	case errors.As(err, &typ):
		return "want a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON ends early"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// breakerActor labels who switched the breaker: the caller's address, not the token, which is shared and secret.
// Behind a proxy this is the proxy's address; forwarded headers are not trusted because anyone can send them.
func breakerActor(r *http.Request) string {
	if ip := remoteIP(r); ip != "" {
		return "admin@" + ip
	}
	return "admin"
}
