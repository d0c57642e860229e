package slack

import (
	"context"
	"errors"
	"fmt"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"
)

// acker acknowledges a Socket Mode envelope. *socketmode.Client implements it.
type acker interface {
	AckCtx(ctx context.Context, envelopeID string, payload any) error
}

// RunSocketMode receives events over Socket Mode until ctx ends, then returns nil. It returns early with an
// error only when Slack refuses the app token (the client reconnects by itself otherwise). Events are handled
// one at a time, in order; each is acknowledged only after Accept stored it.
func (a *Adapter) RunSocketMode(ctx context.Context) error {
	if a.cfg.AppToken == "" {
		return errors.New("slack: Socket Mode needs AppToken (xapp-…)")
	}
	sm := socketmode.New(a.client(slack.OptionAppLevelToken(a.cfg.AppToken)))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- sm.RunContext(ctx) }() // Ends when ctx ends, which the deferred cancel guarantees.
	for {
		select {
		case <-ctx.Done():
			<-done
			return nil
		case err := <-done:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("slack: socket mode: %w", err)
		case evt := <-sm.Events:
			a.handleSocketEvent(ctx, evt, sm)
		}
	}
}

// handleSocketEvent handles one Socket Mode event. An Events API event is acknowledged only when it was
// accepted or deliberately ignored; otherwise Slack delivers it again.
func (a *Adapter) handleSocketEvent(ctx context.Context, evt socketmode.Event, ack acker) {
	switch evt.Type {
	case socketmode.EventTypeEventsAPI:
		ev, ok := evt.Data.(slackevents.EventsAPIEvent)
		if ok && ev.Type == slackevents.CallbackEvent {
			outer, _ := ev.Data.(*slackevents.EventsAPICallbackEvent)
			if outer != nil {
				redelivery := evt.Request != nil && evt.Request.RetryAttempt > 0
				if a.handleCallback(ctx, outer, ev.InnerEvent.Data, redelivery) != nil {
					return // Not acknowledged: Slack delivers it again.
				}
			}
		}
		a.ack(ctx, evt, ack)
	case socketmode.EventTypeInteractive:
		if ic, ok := evt.Data.(slack.InteractionCallback); ok {
			a.interact(ctx, ic)
		}
		a.ack(ctx, evt, ack)
	case socketmode.EventTypeSlashCommand:
		a.ack(ctx, evt, ack)
	case socketmode.EventTypeConnected:
		a.log.Info().Msg("slack socket mode connected")
	case socketmode.EventTypeConnectionError:
		a.log.Warn().Msg("slack socket mode could not connect; retrying")
	case socketmode.EventTypeInvalidAuth:
		a.log.Error().Msg("slack socket mode: the app token was refused")
	case socketmode.EventTypeDisconnect:
		a.log.Info().Msg("slack socket mode disconnected; reconnecting")
	}
}

func (a *Adapter) ack(ctx context.Context, evt socketmode.Event, ack acker) {
	if evt.Request == nil || evt.Request.EnvelopeID == "" {
		return
	}
	if err := ack.AckCtx(ctx, evt.Request.EnvelopeID, nil); err != nil {
		a.log.Warn().Err(err).Msg("slack socket mode: could not acknowledge an envelope")
	}
}
