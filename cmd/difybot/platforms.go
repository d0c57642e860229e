package main

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"

	"github.com/rs/zerolog"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/store"
	"github.com/difybot/difybot/config"
	"github.com/difybot/difybot/platforms/line"
	"github.com/difybot/difybot/platforms/slack"
	"github.com/difybot/difybot/platforms/web"
)

// platform is what cmd needs from a chat platform: the pipeline's side, and its routes, doctor checks and
// secrets. One that keeps a connection of its own (Slack's Socket Mode) also implements runner.
type platform interface {
	bot.Platform
	Routes() []bot.Route
	Checks(ctx context.Context) []bot.Check
	Secrets() []string
}

// runner is a platform with a background connection, run by serve until it stops.
type runner interface {
	Run(ctx context.Context) error
}

// platformSpec builds one platform from the configuration, or returns nil when the configuration leaves it off.
type platformSpec struct {
	name  string // As in bot.Message.Platform, and the metrics label.
	title string // doctor's name for it.
	hint  string // doctor's advice when it is off; "" says nothing.
	build func(cfg config.Config, env platformEnv) (platform, error)
}

// platformEnv is what every platform is built with besides the configuration.
type platformEnv struct {
	inbox bot.Inbox
	store *store.Store // nil in doctor, which stores nothing.
	log   zerolog.Logger
	demo  bool // `difybot demo`: the web chat is on, without a token.
	check bool // doctor: the platform is built to be checked and must create nothing.
	// greeter is the bot, once built: platforms are built before it.
	greeter *lateGreeter
}

// lateGreeter greets with the bot's app once the bot exists, and with nothing before.
type lateGreeter struct{ b atomic.Pointer[bot.Bot] }

func (g *lateGreeter) Greeting(ctx context.Context) (bot.Greeting, error) {
	if g == nil {
		return bot.Greeting{}, nil
	}
	b := g.b.Load()
	if b == nil {
		return bot.Greeting{}, nil
	}
	return b.Greeting(ctx)
}

// platforms lists every chat platform difybot serves. Adding one is a package under platforms/ and one line here
// (docs/platforms.md).
func platforms() []platformSpec {
	return []platformSpec{
		{"slack", "Slack", "set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET or SLACK_APP_TOKEN to enable", newSlack},
		{"line", "LINE", "set LINE_CHANNEL_SECRET and LINE_CHANNEL_TOKEN to enable", newLINE},
		{"web", "web chat", "", newWeb},
	}
}

// buildPlatforms builds what the specs enable.
func buildPlatforms(cfg config.Config, specs []platformSpec, env platformEnv) ([]platform, error) {
	var out []platform
	var errs []error
	for _, sp := range specs {
		p, err := sp.build(cfg, env)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if p != nil {
			out = append(out, p)
		}
	}
	return out, errors.Join(errs...)
}

func newSlack(cfg config.Config, env platformEnv) (platform, error) {
	if !cfg.Slack.Enabled() {
		return nil, nil
	}
	return slack.New(slack.Config{
		Inbox: env.inbox, Threads: threadsOf(env.store),
		BotToken: cfg.Slack.BotToken.Reveal(), SigningSecret: cfg.Slack.SigningSecret.Reveal(),
		AppToken: cfg.Slack.AppToken.Reveal(), APIURL: cfg.Slack.APIURL, Streaming: cfg.Slack.Streaming, Greeter: env.greeter,
		Logger: env.log.With().Str("component", "slack").Logger(), Language: bot.Lang(cfg.Language),
	})
}

func newLINE(cfg config.Config, env platformEnv) (platform, error) {
	if !cfg.LINE.Enabled() {
		return nil, nil
	}
	return line.New(line.Config{
		Inbox:         env.inbox,
		ChannelSecret: cfg.LINE.ChannelSecret.Reveal(), ChannelToken: cfg.LINE.ChannelToken.Reveal(),
		APIURL: cfg.LINE.APIURL, DataAPIURL: cfg.LINE.DataAPIURL,
		Logger:   env.log.With().Str("component", "line").Logger(),
		Language: bot.Lang(cfg.Language), PublicURL: cfg.PublicURL,
	})
}

// newWeb enables the web chat for WEB_CHAT (behind ADMIN_TOKEN) and in the demo (open, on a local machine).
func newWeb(cfg config.Config, env platformEnv) (platform, error) {
	if !cfg.WebChat && !env.demo {
		return nil, nil
	}
	token := cfg.AdminToken.Reveal()
	if env.demo {
		token = ""
	}
	dir := filepath.Join(cfg.DataDir, "web")
	if env.check {
		dir = "" // The chat's own temporary directory: doctor leaves DATA_DIR as it was.
	}
	var apps []string
	for _, a := range cfg.Apps.List {
		apps = append(apps, a.Name)
	}
	return web.New(web.Config{Inbox: env.inbox, Logger: env.log, UploadDir: dir,
		MaxImageBytes: cfg.MaxImageBytes, Token: token, Language: bot.Lang(cfg.Language), Apps: apps})
}

// threadsOf shares the threads the Slack bot is in between replicas through the store.
func threadsOf(st *store.Store) slack.ThreadMemory {
	if st == nil {
		return nil // Doctor: the adapter remembers them itself.
	}
	return st
}
