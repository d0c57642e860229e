package slack

import (
	"context"

	"github.com/slack-go/slack/socketmode"
)

// Internals the external tests drive directly.
var (
	ToMrkdwn    = toMrkdwn
	SplitMrkdwn = splitMrkdwn
	PlainText   = plainText
)

// HandleSocketEvent handles one Socket Mode event without a websocket; ack receives the envelope ids.
func (a *Adapter) HandleSocketEvent(ctx context.Context, evt socketmode.Event, ack func(envelopeID string) error) {
	a.handleSocketEvent(ctx, evt, ackFunc(ack))
}

type ackFunc func(string) error

func (f ackFunc) AckCtx(_ context.Context, envelopeID string, _ any) error { return f(envelopeID) }
