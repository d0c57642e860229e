package line

import (
	"context"
	"time"

	"github.com/line/line-bot-sdk-go/v8/linebot/messaging_api"

	"github.com/difybot/difybot/bot"
)

// The loading animation: LINE shows it for at most 60 seconds, and only in one-on-one chats; it disappears
// when our next message arrives. It is renewed once less than loadingRenew is left, so at most once per
// ~50 s however many workflow nodes report progress.
const (
	loadingSeconds = 60
	loadingRenew   = 10 * time.Second
)

// Direct reports a message in the one-on-one chat with the bot, where the person may choose the app
// (bot.DirectChats); groups and rooms are routed by their id.
func (a *Adapter) Direct(m bot.Message) bool { return m.Extra[extraSource] == sourceUser }

// Progress shows LINE's loading animation while a run works, in one-on-one chats. Groups and rooms have none.
func (a *Adapter) Progress(ctx context.Context, m bot.Message, p bot.Progress) error {
	if !a.Direct(m) || m.ChatID == "" {
		return nil
	}
	now := a.now()
	if p.State != nil {
		until, err := time.Parse(time.RFC3339Nano, p.State.Get(stateLoadingUntil))
		if err == nil && now.Before(until.Add(-loadingRenew)) {
			return nil
		}
	}
	if err := a.showLoading(ctx, m.ChatID); err != nil {
		return err
	}
	if p.State == nil {
		return nil
	}
	return p.State.Set(ctx, stateLoadingUntil, now.Add(loadingSeconds*time.Second).UTC().Format(time.RFC3339Nano))
}

// showLoading calls POST /v2/bot/chat/loading/start.
func (a *Adapter) showLoading(ctx context.Context, userID string) error {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	c, err := a.api(ctx)
	if err != nil {
		return err
	}
	res, _, err := c.ShowLoadingAnimationWithHttpInfo(&messaging_api.ShowLoadingAnimationRequest{ChatId: userID, LoadingSeconds: loadingSeconds})
	return callError("loading animation", res, err)
}
