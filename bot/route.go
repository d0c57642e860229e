package bot

import (
	"context"
	"fmt"
	"strings"
	"unicode"
)

// DefaultApp names the one app of a bot configured without Apps.
const DefaultApp = "default"

// AppConfig is one Dify app of several behind the bot (DIFY_APPS_FILE) and the routes that lead to it.
type AppConfig struct {
	Name        string
	Workflows   Workflows
	Settings    AppSettings
	ImagePrompt string // IMAGE_PROMPT for this app.
	OutputKey   string // DIFY_OUTPUT_KEY for this app.
	// Keywords send a message to the app when it starts with one ("receipt: …" or "/receipt …"), lower case.
	Keywords []string
	// Chats are the chats whose messages go to the app, as "platform:chat id" (a Slack channel, a LINE group or
	// room).
	Chats []string
}

// Routes name the apps for the messages no keyword and no chat leads to an app.
type Routes struct {
	Default string // Every other message; the first app when empty.
	Direct  string // A direct message before the person chose an app; empty offers the choice.
}

// appRef is one app the bot serves, with what it discovered of it.
type appRef struct {
	AppConfig
	cache appCache
}

// routeAction is what a message does besides (or instead of) running an app.
type routeAction int

const (
	routeRun     routeAction = iota // Run the app with the message.
	routeChosen                     // The message only chose the app (a keyword alone, a tapped choice).
	routeOffer                      // Ask which app: "help", or a direct message no route leads anywhere.
	routeUnknown                    // The route names an app the bot does not have.
)

// setupApps names the bot's apps and their routes; without Apps, the one app of the flat settings.
func (b *Bot) setupApps() error {
	cfg := &b.cfg
	if len(cfg.Apps) == 0 {
		cfg.Apps = []AppConfig{{Name: DefaultApp, Workflows: cfg.Workflows, Settings: cfg.App, ImagePrompt: cfg.ImagePrompt, OutputKey: cfg.OutputKey}}
	}
	b.apps, b.chats, b.keywords = map[string]*appRef{}, map[string]string{}, map[string]string{}
	for _, a := range cfg.Apps {
		switch {
		case a.Name == "" || a.Workflows == nil:
			return fmt.Errorf("bot: app %q needs a name and its Workflows", a.Name)
		case b.apps[a.Name] != nil:
			return fmt.Errorf("bot: two apps are named %q", a.Name)
		}
		b.apps[a.Name] = &appRef{AppConfig: a}
		b.order = append(b.order, a.Name)
		for _, c := range a.Chats {
			b.chats[c] = a.Name
		}
		for _, k := range a.Keywords {
			b.keywords[strings.ToLower(k)] = a.Name
		}
	}
	if cfg.Routes.Default == "" {
		cfg.Routes.Default = b.order[0]
	}
	for _, name := range []string{cfg.Routes.Default, cfg.Routes.Direct} {
		if name != "" && b.apps[name] == nil {
			return fmt.Errorf("bot: the routes name an app %q that is not configured", name)
		}
	}
	if cfg.Workflows == nil {
		cfg.Workflows = b.apps[cfg.Routes.Default].Workflows
	}
	return nil
}

// routed reports whether the bot chooses between apps: with one app and no routes, every message goes to it
// exactly as before apps existed ("help" included).
func (b *Bot) routed() bool { return len(b.apps) > 1 }

// appFor is the app a run uses: the one recorded with it, else the default app. Nil when the recorded app is
// no longer configured.
func (b *Bot) appFor(r *Run) *appRef {
	if r.App == "" {
		return b.apps[b.cfg.Routes.Default]
	}
	return b.apps[r.App]
}

// discover returns what the bot knows of a's Dify app, discovering it when the cached view is older than appTTL.
func (b *Bot) discover(ctx context.Context, a *appRef) (*App, error) {
	return a.cache.get(ctx, b.now, func(ctx context.Context) (*App, error) { return Discover(ctx, a.Workflows, a.Settings) })
}

// runApp is what the bot knows of r's app.
func (b *Bot) runApp(ctx context.Context, r *Run) (*App, error) { return b.discover(ctx, b.appFor(r)) }

// key names r's conversation and person in its app: the default app keeps the keys of a bot with one app, so
// adding an apps file loses nobody's conversation, and every other app has conversations (and waiting photos)
// of its own.
func (b *Bot) key(r *Run) string {
	k := r.Message.ConversationKey()
	if r.App != "" && r.App != b.cfg.Routes.Default {
		k += "@" + r.App
	}
	return k
}

// choiceKey is where a person's chosen app is kept: per platform and person, so it holds in every direct chat.
// It lives among the conversations, which are the store's per-person keys and values.
func choiceKey(m Message) string { return "app-choice:" + m.Platform + ":" + m.UserID }

// keyword finds an app's keyword at the start of text, "receipt: …" or "/receipt …", and returns the app and
// the text after it.
func (b *Bot) keyword(text string) (app, rest string, ok bool) {
	t := strings.TrimLeftFunc(text, unicode.IsSpace)
	slash := strings.HasPrefix(t, "/")
	t = strings.TrimPrefix(t, "/")
	end := strings.IndexFunc(t, func(r rune) bool { return unicode.IsSpace(r) || r == ':' || r == '：' })
	word, after := t, ""
	if end >= 0 {
		word, after = t[:end], t[end:]
	}
	colon := strings.HasPrefix(after, ":") || strings.HasPrefix(after, "：")
	if !slash && !colon {
		return "", text, false // A bare word is the start of a question, not a choice.
	}
	app, ok = b.keywords[strings.ToLower(word)]
	if !ok {
		return "", text, false
	}
	after = strings.TrimPrefix(strings.TrimPrefix(after, ":"), "：")
	return app, strings.TrimSpace(after), true
}

// isHelp reports a direct message that asks what the bot can do.
func isHelp(text string) bool {
	switch strings.ToLower(strings.TrimSpace(text)) {
	case "help", "/help", "?", "ヘルプ", "へるぷ":
		return true
	}
	return false
}

// route picks the app for a message: the platform's own pick (the CLI's -app, the web chat's), a keyword, the
// chat's app, in a direct message the person's choice (else Routes.Direct, else the choice is offered), else the
// default app. It returns the message's text without the keyword. A keyword in a direct message becomes the
// person's choice.
func (b *Bot) route(ctx context.Context, m Message, direct bool) (app, text string, act routeAction, err error) {
	text = m.Text
	known := func(name string) (string, string, routeAction, error) {
		if b.apps[name] == nil {
			return name, text, routeUnknown, nil
		}
		return name, text, routeRun, nil
	}
	if m.App != "" {
		return known(m.App)
	}
	if kw, rest, ok := b.keyword(m.Text); ok {
		text = rest
		if direct {
			if err := b.cfg.Store.SetConversation(ctx, choiceKey(m), kw); err != nil {
				return "", "", 0, fmt.Errorf("keep the app chosen: %w", err)
			}
		}
		if rest == "" && len(m.Files) == 0 {
			return kw, text, routeChosen, nil
		}
		return kw, text, routeRun, nil
	}
	if app, ok := b.chats[m.Platform+":"+m.ChatID]; ok {
		return known(app)
	}
	if !direct {
		return b.cfg.Routes.Default, text, routeRun, nil
	}
	if isHelp(m.Text) && len(m.Files) == 0 {
		return "", text, routeOffer, nil
	}
	chosen, err := b.cfg.Store.Conversation(ctx, choiceKey(m))
	if err != nil {
		return "", "", 0, fmt.Errorf("read the app chosen: %w", err)
	}
	switch {
	case chosen != "":
		return known(chosen)
	case b.cfg.Routes.Direct != "":
		return b.cfg.Routes.Direct, text, routeRun, nil
	}
	return "", text, routeOffer, nil
}

// appChoices are the choices that pick each app: its first keyword as a command, which the router reads back.
func (b *Bot) appChoices() []string {
	out := make([]string, 0, len(b.order))
	for _, name := range b.order {
		k := name
		if kw := b.apps[name].Keywords; len(kw) > 0 {
			k = kw[0]
		}
		out = append(out, "/"+k)
	}
	return out
}

// routeRun settles r's app before anything else runs: once, so that a retry or a resumed run uses the same app
// as its first attempt; and takes the keyword off the message's text (every attempt, as the stored message keeps
// it). When the message only chose an app, asked which there are, or names one the bot does not have, it is
// answered here, and done is true.
func (b *Bot) routeRun(ctx context.Context, r *Run, p Platform, steps *stepLog) (done bool, err error) {
	if !b.routed() && r.Message.App == "" {
		return false, nil
	}
	if r.App != "" {
		if kw, rest, ok := b.keyword(r.Message.Text); ok && kw == r.App {
			r.Message.Text = rest
		}
		if b.apps[r.App] == nil {
			return true, b.answerRoute(ctx, r, p, steps, appUnknownText(b.cfg.Language, r.App, b.appChoices()), b.appChoices())
		}
		return false, nil
	}
	dc, ok := p.(DirectChats)
	app, text, act, err := b.route(ctx, r.Message, ok && dc.Direct(r.Message))
	if err != nil {
		return true, fmt.Errorf("bot: route run %s: %w", r.ID, err)
	}
	r.Message.Text = text
	switch act {
	case routeChosen:
		r.App = app
		return true, b.answerRoute(ctx, r, p, steps, appChosenText(b.cfg.Language, app), nil)
	case routeOffer:
		return true, b.answerRoute(ctx, r, p, steps, appChoiceText(b.cfg.Language, b.appChoices()), b.appChoices())
	case routeUnknown:
		steps.log.Warn().Str("app", app).Msg("the route names an app that is not configured")
		return true, b.answerRoute(ctx, r, p, steps, appUnknownText(b.cfg.Language, app, b.appChoices()), b.appChoices())
	}
	r.App = app // Saved with the run's next save: a crash before it routes the message again, to the same app.
	return false, nil
}

// answerRoute answers a message that runs no app: it is stored as succeeded with text, so a crash only repeats
// the delivery.
func (b *Bot) answerRoute(ctx context.Context, r *Run, p Platform, steps *stepLog, text string, choices []string) error {
	if r.Status == RunQueued {
		b.received(ctx, r, steps)
	}
	r.Choices = choices
	steps.names = routeSteps
	steps.record(ctx, StepRoute, b.now(), 0, "done", nil, map[string]any{"app": r.App, "offered": len(choices)})
	return b.finish(ctx, r, p, steps, text, nil)
}
