package bot

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"
)

// Step names, in pipeline order. Text-only messages skip fetch, check and upload.
const (
	StepReceive = "receive"
	StepEnqueue = "enqueue"
	StepFetch   = "fetch"
	StepCheck   = "check"
	StepUpload  = "upload"
	StepRun     = "run"
	StepFormat  = "format"
	StepReply   = "reply"
	// StepPending is a message that waits for the rest of its request instead of running.
	StepPending = "pending"
	// StepRoute is a message that runs no app: it chose one, asked which there are, or named one the bot lacks.
	StepRoute = "route"
)

var (
	imageSteps = []string{StepReceive, StepEnqueue, StepFetch, StepCheck, StepUpload, StepRun, StepFormat, StepReply}
	textSteps  = []string{StepReceive, StepEnqueue, StepRun, StepFormat, StepReply}
	waitSteps  = []string{StepReceive, StepEnqueue, StepPending, StepReply}
	routeSteps = []string{StepReceive, StepEnqueue, StepRoute, StepReply}
)

// stepsFor is the numbered step list of a run with files photos, or of one that waits.
func stepsFor(files int, waits bool) []string {
	switch {
	case waits:
		return waitSteps
	case files > 0:
		return imageSteps
	}
	return textSteps
}

// stepLog numbers, logs and stores the steps of one run attempt: one zerolog line and one stored record each.
type stepLog struct {
	store   Store
	metrics *Metrics // May be nil.
	log     zerolog.Logger
	run     *Run
	names   []string
	now     func() time.Time
	att     *attempt // Optional: told the step in flight.
}

func (l *stepLog) number(name string) int {
	for i, n := range l.names {
		if n == name {
			return i + 1
		}
	}
	return 0
}

// record writes a finished step. A failure carries the diagnosis code and the raw error.
func (l *stepLog) record(ctx context.Context, name string, start time.Time, dur time.Duration, status string, err error, fields map[string]any) {
	s := Step{RunID: l.run.ID, Attempt: l.run.Attempt, N: l.number(name), Of: len(l.names), Name: name,
		Status: status, Start: start, Duration: dur, Fields: fields}
	ev := l.log.Info()
	if err != nil {
		d := Diagnose(err)
		s.Code, s.Error = d.Code, err.Error()
		ev = l.log.Error().Str("code", string(d.Code)).Str("error", s.Error)
	}
	ev = ev.Str("step", name).Int("n", s.N).Int("of", s.Of).Str("status", status).Int64("duration_ms", dur.Milliseconds())
	for k, v := range fields {
		ev = ev.Interface(k, v)
	}
	ev.Msg(fmt.Sprintf("[STEP %d/%d] %s: %s", s.N, s.Of, name, status))
	l.metrics.ObserveStep(s)
	if serr := l.store.AddStep(ctx, s); serr != nil {
		l.log.Error().Err(serr).Str("step", name).Msg("could not store step")
	}
}

// do runs fn as a step and records its outcome. fn may add fields for the record.
func (l *stepLog) do(ctx context.Context, name string, fn func(fields map[string]any) error) error {
	start := l.now()
	fields := map[string]any{}
	if l.att != nil {
		l.att.step = name
	}
	err := fn(fields)
	if l.att != nil && err == nil {
		l.att.step = "" // A failed step stays named: it is where the attempt stopped.
	}
	status, recorded := "done", err
	if err != nil {
		status = "failed"
	}
	if pe := askable(err); pe != nil {
		status, recorded = "paused", nil // A workflow asking back has not failed.
		fields["dify_run_id"] = pe.RunID
	}
	if len(fields) == 0 {
		fields = nil
	}
	l.record(ctx, name, start, l.now().Sub(start), status, recorded, fields)
	return err
}
