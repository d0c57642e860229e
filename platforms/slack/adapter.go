// Package slack connects difybot to Slack: the Events API over HTTP or Socket Mode in, thread replies with live
// progress out, and a Retry button on failures.
//
// Inbound, an adapter verifies the request, turns a message addressed to the bot into a bot.Message and hands it
// to Acceptor.Accept, which stores it durably; only then is the delivery acknowledged. Deduplication of Slack's
// retries happens there, by event_id. Outbound, the pipeline calls OpenFile, Progress and Reply. Every message the
// adapter posts has its ts stored in the run's RunState, so a repeated call after a crash edits what was posted
// instead of posting it again.
//
// What runs the workflow (see docs/slack.md):
//   - an app_mention in a channel (the mention is removed from the text);
//   - any message in a direct message with the bot;
//   - a reply in a thread the bot is in: the bot posted there (remembered in Config.Threads, the store, so every
//     replica agrees; without it, by this process for the last threadMemory threads) or started the thread.
//
// Edits, deletions, other subtypes and messages from bots, the bot itself included, never run it.
package slack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/slack-go/slack"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/internal/recent"
	"github.com/difybot/difybot/internal/redirect"
)

// platformName is the adapter's name in bot.Message.Platform.
const platformName = "slack"

// Defaults for Config.
const (
	DefaultAPIURL        = "https://slack.com/api/"
	DefaultMaxBodyBytes  = 1 << 20
	DefaultProgressEvery = 3 * time.Second // chat.update is Tier 3: about 50 a minute for the whole app.
)

// threadMemory bounds the set of threads the bot remembers taking part in.
const threadMemory = 10000

// Config configures an Adapter. BotToken is required, and SigningSecret unless AppToken selects Socket Mode.
type Config struct {
	Inbox         bot.Inbox // Where accepted messages go; required.
	BotToken      string    // xoxb-…
	SigningSecret string    // Verifies HTTP requests from Slack.
	AppToken      string    // xapp-…; enables RunSocketMode.
	APIURL        string    // Default https://slack.com/api/.
	HTTPClient    *http.Client
	Logger        zerolog.Logger
	MaxBodyBytes  int64         // The cap on a request body; default 1 MiB.
	ProgressEvery time.Duration // The least time between two progress edits of one run; default 3s.
	Language      bot.Lang      // The language of the adapter's own texts (placeholder, Retry button); default en.
	// Threads remembers the threads the bot takes part in for every replica (bot/store implements it); nil keeps
	// the last threadMemory threads in this process only.
	Threads ThreadMemory
	// Streaming is SLACK_STREAMING: StreamingAuto (default), StreamingOn or StreamingOff.
	Streaming string
	// Greeter gives the greeting and suggested prompts of a new assistant thread; nil greets with nothing.
	Greeter Greeter
	Now     func() time.Time
}

// Adapter is the Slack platform. It is safe for concurrent use.
type Adapter struct {
	cfg    Config
	api    *slack.Client
	apiURL *url.URL
	hc     *http.Client
	inbox  bot.Inbox
	log    zerolog.Logger
	text   texts

	idMu      sync.Mutex
	botUserID string // Learned with auth.test on first need.
	teamID    string

	streams streams

	threads ThreadMemory

	progMu   sync.Mutex
	progress map[string]shown // What each run's message last showed, and when.
}

var (
	_ bot.Platform         = (*Adapter)(nil)
	_ bot.ProgressReporter = (*Adapter)(nil)
	_ bot.Streamer         = (*Adapter)(nil)
)

// New returns an Adapter that hands accepted messages to cfg.Inbox. It makes no network calls.
func New(cfg Config) (*Adapter, error) {
	if cfg.Inbox == nil {
		return nil, errors.New("slack: an Inbox is required")
	}
	if cfg.BotToken == "" {
		return nil, errors.New("slack: BotToken is required")
	}
	if cfg.SigningSecret == "" && cfg.AppToken == "" {
		return nil, errors.New("slack: SigningSecret (HTTP mode) or AppToken (Socket Mode) is required")
	}
	if cfg.APIURL == "" {
		cfg.APIURL = DefaultAPIURL
	}
	if !strings.HasSuffix(cfg.APIURL, "/") {
		cfg.APIURL += "/" // slack-go appends method names to it.
	}
	u, err := url.Parse(cfg.APIURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("slack: APIURL %q is not an http(s) URL", cfg.APIURL)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = defaultHTTPClient()
	}
	// The bot token rides in Authorization on API calls and downloads: it never follows a redirect off the
	// origin it was sent to (another port or scheme of a Slack host included).
	cfg.HTTPClient = redirect.Guard(cfg.HTTPClient)
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = DefaultProgressEvery
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch cfg.Streaming {
	case "":
		cfg.Streaming = StreamingAuto
	case StreamingAuto, StreamingOn, StreamingOff:
	default:
		return nil, fmt.Errorf("slack: Streaming %q is not auto, on or off", cfg.Streaming)
	}
	ad := &Adapter{
		cfg:      cfg,
		apiURL:   u,
		hc:       cfg.HTTPClient,
		inbox:    cfg.Inbox,
		log:      cfg.Logger.With().Str("platform", platformName).Logger(),
		text:     textsFor(cfg.Language),
		threads:  cfg.Threads,
		progress: map[string]shown{},
		streams:  streams{live: map[string]*live{}, logged: map[string]bool{}},
	}
	if ad.threads == nil {
		ad.threads = &recentThreads{recent.Set{Max: 2 * threadMemory}}
	}
	ad.api = ad.client()
	return ad, nil
}

// client builds a Web API client; RunSocketMode adds the app-level token to its own.
func (a *Adapter) client(opts ...slack.Option) *slack.Client {
	// No OptionRetry: a rate-limited call returns at once, and the queue or the next progress edit tries later.
	opts = append([]slack.Option{slack.OptionAPIURL(a.cfg.APIURL), slack.OptionHTTPClient(a.hc)}, opts...)
	return slack.New(a.cfg.BotToken, opts...)
}

// defaultHTTPClient bounds every phase of a call, so a hung Slack cannot hold a worker forever.
func defaultHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ResponseHeaderTimeout = 30 * time.Second
	// The overall limit must leave room to download a 10 MB image on a slow link.
	return &http.Client{Transport: t, Timeout: 2 * time.Minute}
}

// Name is "slack", the platform name in bot.Message.
func (a *Adapter) Name() string { return platformName }

func (a *Adapter) now() time.Time { return a.cfg.Now() }

// botUser returns the bot's own user id, asking auth.test once. A failure is not cached, so the next event asks again.
func (a *Adapter) botUser(ctx context.Context) (string, error) {
	a.idMu.Lock()
	defer a.idMu.Unlock()
	if a.botUserID != "" {
		return a.botUserID, nil
	}
	res, err := a.api.AuthTestContext(ctx)
	if err != nil {
		return "", fmt.Errorf("slack: auth.test: %w", err)
	}
	if res.UserID == "" {
		return "", errors.New("slack: auth.test named no user: is BotToken a bot token (xoxb-)?")
	}
	a.botUserID, a.teamID = res.UserID, res.TeamID
	a.log.Info().Str("bot_user_id", res.UserID).Str("team_id", res.TeamID).Msg("slack identity learned")
	return a.botUserID, nil
}

// team returns the workspace's id, as auth.test named it; "" when it cannot be learned now.
func (a *Adapter) team(ctx context.Context) string {
	if _, err := a.botUser(ctx); err != nil {
		return ""
	}
	a.idMu.Lock()
	defer a.idMu.Unlock()
	return a.teamID
}

// ThreadMemory remembers the threads the bot takes part in, so replies there run the workflow without a mention.
type ThreadMemory interface {
	JoinThread(ctx context.Context, key string) error
	InThread(ctx context.Context, key string) (bool, error)
}

// recentThreads is the ThreadMemory of a single replica: the threads joined lately.
type recentThreads struct{ recent.Set }

// JoinThread remembers key.
func (s *recentThreads) JoinThread(_ context.Context, key string) error {
	s.Add(key)
	return nil
}

// InThread reports whether key is remembered.
func (s *recentThreads) InThread(_ context.Context, key string) (bool, error) { return s.Has(key), nil }

func threadKey(channel, threadTS string) string { return platformName + ":" + channel + "/" + threadTS }

// joinThread records that the bot takes part in a thread, so the thread's replies run the workflow.
func (a *Adapter) joinThread(ctx context.Context, channel, threadTS string) {
	if channel == "" || threadTS == "" {
		return
	}
	if err := a.threads.JoinThread(ctx, threadKey(channel, threadTS)); err != nil {
		a.log.Warn().Err(err).Str("channel", channel).Msg("could not remember the thread; its replies need a mention")
	}
}

// inThread reports whether the bot takes part in a thread; when that cannot be read, it says no (a mention
// still works).
func (a *Adapter) inThread(ctx context.Context, channel, threadTS string) bool {
	in, err := a.threads.InThread(ctx, threadKey(channel, threadTS))
	if err != nil {
		a.log.Warn().Err(err).Str("channel", channel).Msg("could not read the threads the bot is in")
	}
	return in
}

// Routes are the Events API and interactivity endpoints (Socket Mode delivers the same over its WebSocket).
func (a *Adapter) Routes() []bot.Route {
	return []bot.Route{
		{Pattern: "POST /slack/events", Handler: a.EventsHandler()},
		{Pattern: "POST /slack/interactions", Handler: a.InteractionsHandler()},
	}
}

// Secrets are the credentials the adapter was given, for redaction.
func (a *Adapter) Secrets() []string {
	return []string{a.cfg.BotToken, a.cfg.SigningSecret, a.cfg.AppToken}
}

// Run holds the Socket Mode connection open until ctx ends; without an AppToken it returns at once.
func (a *Adapter) Run(ctx context.Context) error {
	if a.cfg.AppToken == "" {
		return nil
	}
	return a.RunSocketMode(ctx)
}

// Checks signs in with the bot token (auth.test), as doctor's Slack check, and says which reply mode the
// workspace allows.
func (a *Adapter) Checks(ctx context.Context) []bot.Check {
	res, err := a.api.AuthTestContext(ctx)
	if err != nil {
		return []bot.Check{{Name: "Slack", Detail: "auth.test failed: " + err.Error(),
			Fixes: []string{"check SLACK_BOT_TOKEN is the Bot User OAuth Token (xoxb-) of an installed app"}}}
	}
	checks := []bot.Check{{Name: "Slack", OK: true, Detail: fmt.Sprintf("signed in as %s in %s", res.User, res.Team)}}
	have, err := a.scopes(ctx)
	if err != nil {
		have = nil
	}
	if c, ok := a.scopeCheck(have); ok {
		checks = append(checks, c)
	}
	return append(checks, a.streamingCheck(have))
}
