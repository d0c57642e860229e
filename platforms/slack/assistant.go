package slack

import (
	"context"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"

	"github.com/difybot/difybot/bot"
)

// Assistant threads (Slack's Agents & AI Apps): a thread in the app's assistant pane is answered like a DM. When
// one starts, the app greets with Dify's opening statement and offers its suggested questions as prompts; while a
// run works the thread's status line names the node running; the thread is titled with its first question.

// Greeter gives what a new assistant thread opens with. *bot.Bot implements it.
type Greeter interface {
	Greeting(ctx context.Context) (bot.Greeting, error)
}

// ThreadContexts keeps a value per key for every replica; the store implements it with its conversations.
type ThreadContexts interface {
	Conversation(ctx context.Context, key string) (string, error)
	SetConversation(ctx context.Context, key, value string) error
}

// Limits of the assistant methods.
const (
	maxPrompts     = 4               // Suggested prompts shown at once.
	maxPromptTitle = 75              // A prompt's label.
	maxTitle       = 100             // A thread's title, as the pane shows it.
	greetTimeout   = 2 * time.Second // The greeting is sent before the event is acknowledged, within Slack's 3 s.
)

// Extra keys of a message in an assistant thread.
const (
	extraAssistant = "assistant"       // "1".
	extraContext   = "context_channel" // The channel the person was looking at, when Slack said.
)

func assistantKey(channel, threadTS string) string {
	return "slack-assistant:" + channel + "/" + threadTS
}

// assistantEvent handles the assistant pane's own events; it reports false for every other event.
func (a *Adapter) assistantEvent(ctx context.Context, inner any) bool {
	switch ev := inner.(type) {
	case *slackevents.AssistantThreadStartedEvent:
		a.assistantStarted(ctx, ev.AssistantThread)
	case *slackevents.AssistantThreadContextChangedEvent:
		a.keepContext(ctx, ev.AssistantThread)
	default:
		return false
	}
	return true
}

// assistantStarted remembers the thread as an assistant thread and greets in it. Failures are logged: a thread
// without a greeting still works.
func (a *Adapter) assistantStarted(ctx context.Context, t slackevents.AssistantThread) {
	if t.ChannelID == "" || t.ThreadTimeStamp == "" {
		return
	}
	log := a.log.With().Str("channel", t.ChannelID).Logger()
	key := assistantKey(t.ChannelID, t.ThreadTimeStamp)
	if in, err := a.threads.InThread(ctx, key); err == nil && in {
		return // Slack delivered the event again: the thread was greeted.
	}
	if err := a.threads.JoinThread(ctx, key); err != nil {
		log.Warn().Err(err).Msg("could not remember the assistant thread")
	}
	a.keepContext(ctx, t)
	if a.cfg.Greeter == nil {
		return
	}
	gctx, cancel := context.WithTimeout(ctx, greetTimeout)
	defer cancel()
	g, err := a.cfg.Greeter.Greeting(gctx)
	if err != nil {
		log.Warn().Err(err).Msg("assistant thread greeted without Dify's opening statement: the app could not be read")
		return
	}
	if g.Text != "" {
		if _, err := a.post(ctx, bot.Message{ChatID: t.ChannelID, ThreadID: t.ThreadTimeStamp}, toMrkdwn(g.Text), nil); err != nil {
			log.Warn().Err(err).Msg("could not greet in the assistant thread")
		}
	}
	if len(g.Prompts) == 0 {
		return
	}
	params := slack.AssistantThreadsSetSuggestedPromptsParameters{ChannelID: t.ChannelID, ThreadTS: t.ThreadTimeStamp}
	for _, q := range g.Prompts[:min(len(g.Prompts), maxPrompts)] {
		params.AddPrompt(clip(q, maxPromptTitle), q)
	}
	if err := a.api.SetAssistantThreadsSuggestedPromptsContext(ctx, params); err != nil {
		log.Warn().Err(err).Msg("could not offer suggested prompts in the assistant thread")
	}
}

// keepContext stores the channel the person has open next to the assistant thread, for the thread's messages.
func (a *Adapter) keepContext(ctx context.Context, t slackevents.AssistantThread) {
	tc, ok := a.threads.(ThreadContexts)
	if !ok || t.Context.ChannelID == "" {
		return
	}
	if err := tc.SetConversation(ctx, assistantKey(t.ChannelID, t.ThreadTimeStamp)+"#context", t.Context.ChannelID); err != nil {
		a.log.Warn().Err(err).Msg("could not keep the assistant thread's context")
	}
}

// markAssistant marks a DM message that belongs to an assistant thread, with the thread's context.
func (a *Adapter) markAssistant(ctx context.Context, m *bot.Message) {
	if !isDM(m.ChatID) || m.ThreadID == m.Extra["ts"] {
		return
	}
	key := assistantKey(m.ChatID, m.ThreadID)
	in, err := a.threads.InThread(ctx, key)
	if err != nil || !in {
		return
	}
	m.Extra[extraAssistant] = "1"
	if tc, ok := a.threads.(ThreadContexts); ok {
		if c, err := tc.Conversation(ctx, key+"#context"); err == nil && c != "" {
			m.Extra[extraContext] = c
		}
	}
}

// assistantWorking shows in an assistant thread's status line that a run works, naming its node once known; the
// first time for a thread it also titles the thread with the question.
func (a *Adapter) assistantWorking(ctx context.Context, m bot.Message, runID, node string) {
	if m.Extra[extraAssistant] != "1" {
		return
	}
	loading := a.text.working
	if node != "" {
		loading = node
	}
	err := a.api.SetAssistantThreadsStatusContext(ctx, slack.AssistantThreadsSetStatusParameters{ChannelID: m.ChatID,
		ThreadTS: m.ThreadID, Status: a.text.thinking, LoadingMessages: []string{clip(loading, maxPromptTitle)}})
	if err != nil {
		a.log.Debug().Str("run_id", runID).Err(err).Msg("could not set the assistant thread's status")
	}
	if node != "" || m.Text == "" {
		return
	}
	key := assistantKey(m.ChatID, m.ThreadID) + "#titled"
	if in, err := a.threads.InThread(ctx, key); err != nil || in {
		return
	}
	if err := a.api.SetAssistantThreadsTitleContext(ctx, slack.AssistantThreadsSetTitleParameters{ChannelID: m.ChatID,
		ThreadTS: m.ThreadID, Title: clip(m.Text, maxTitle)}); err != nil {
		a.log.Debug().Str("run_id", runID).Err(err).Msg("could not title the assistant thread")
		return
	}
	if err := a.threads.JoinThread(ctx, key); err != nil {
		a.log.Debug().Err(err).Msg("could not remember that the assistant thread has its title")
	}
}
