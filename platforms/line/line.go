// Package line connects difybot to the LINE Messaging API: it verifies and accepts webhook events, streams
// image content, shows the loading animation in one-on-one chats, and answers with the reply token while it is
// fresh, else by push with an X-Line-Retry-Key so a retried push is not delivered twice.
//
// Every call to LINE builds its own SDK client: the SDK's WithContext stores the context on the client it is
// called on, so one client shared by goroutines lets one request's cancellation end another's.
package line

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/line/line-bot-sdk-go/v8/linebot/messaging_api"
	"github.com/rs/zerolog"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/internal/redirect"
)

// platformName is the adapter's name in bot.Message.Platform.
const platformName = "line"

// Defaults for Config.
const (
	DefaultAPIURL        = "https://api.line.me"
	DefaultDataAPIURL    = "https://api-data.line.me"
	DefaultMaxBodyBytes  = 1 << 20
	DefaultReplyTokenTTL = 50 * time.Second
)

// apiTimeout bounds one call to the Messaging API (reply, push, loading); content downloads are bounded by
// the caller's context instead, because a large image may legitimately take longer.
const apiTimeout = 30 * time.Second

// Config wires an Adapter. ChannelSecret and ChannelToken are required.
type Config struct {
	Inbox         bot.Inbox // Where accepted messages go; required.
	ChannelSecret string    // Verifies webhook signatures.
	ChannelToken  string    // The channel access token, sent only in Authorization headers to LINE.
	APIURL        string    // Default https://api.line.me.
	DataAPIURL    string    // Default https://api-data.line.me (message content).
	HTTPClient    *http.Client
	Logger        zerolog.Logger
	MaxBodyBytes  int64 // Webhook body cap; default 1 MiB.
	// ReplyTokenTTL is the age under which the reply token is used; default 50s (LINE guarantees one minute).
	ReplyTokenTTL time.Duration
	Language      bot.Lang // The language of the adapter's own texts; default en.
	// PublicURL is the bot's public base (PUBLIC_URL); without it LINE cannot show the answer's images, and
	// Checks says so.
	PublicURL string
	Now       func() time.Time
}

// Adapter is the LINE platform. It is safe for concurrent use.
type Adapter struct {
	cfg      Config
	inbox    bot.Inbox
	log      zerolog.Logger
	text     texts
	hc       *http.Client
	external *http.Client // For external image URLs: public addresses only, never our token.
	// allowPrivate lets tests fetch external images from httptest servers on loopback.
	allowPrivate bool
}

var (
	_ bot.Platform         = (*Adapter)(nil)
	_ bot.ProgressReporter = (*Adapter)(nil)
)

// New returns an Adapter for cfg that hands accepted messages to cfg.Inbox.
func New(cfg Config) (*Adapter, error) {
	var errs []error
	if cfg.ChannelSecret == "" {
		errs = append(errs, errors.New("ChannelSecret is empty"))
	}
	if cfg.ChannelToken == "" {
		errs = append(errs, errors.New("ChannelToken is empty"))
	}
	if cfg.Inbox == nil {
		errs = append(errs, errors.New("an Inbox is required"))
	}
	var err error
	if cfg.APIURL, err = baseURL(cfg.APIURL, DefaultAPIURL); err != nil {
		errs = append(errs, fmt.Errorf("APIURL: %w", err))
	}
	if cfg.DataAPIURL, err = baseURL(cfg.DataAPIURL, DefaultDataAPIURL); err != nil {
		errs = append(errs, fmt.Errorf("DataAPIURL: %w", err))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("line: %w", errors.Join(errs...))
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.ReplyTokenTTL <= 0 {
		cfg.ReplyTokenTTL = DefaultReplyTokenTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ad := &Adapter{cfg: cfg, inbox: cfg.Inbox, log: cfg.Logger.With().Str("platform", platformName).Logger(), hc: cfg.HTTPClient,
		text: textsFor(cfg.Language)}
	if ad.hc == nil || ad.hc == http.DefaultClient {
		ad.hc = defaultClient() // http.DefaultClient has no timeouts at all.
	}
	// The channel token rides in Authorization (the SDK sets it): it never follows a redirect off the origin it
	// was sent to, another port or scheme of LINE's hosts included.
	ad.hc = redirect.Guard(ad.hc)
	ad.external = ad.externalClient()
	return ad, nil
}

// Name returns "line".
func (a *Adapter) Name() string { return platformName }

func (a *Adapter) now() time.Time { return a.cfg.Now() }

// baseURL checks an http(s) base URL and drops its trailing slash.
func baseURL(s, def string) (string, error) {
	if s == "" {
		return def, nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%q is not an http(s) URL", s)
	}
	return strings.TrimRight(s, "/"), nil
}

// defaultClient has no overall timeout, because content downloads stream for as long as the image takes;
// every Messaging API call carries apiTimeout in its context instead.
func defaultClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
	}}
}

// api returns a Messaging API client for one call.
func (a *Adapter) api(ctx context.Context) (*messaging_api.MessagingApiAPI, error) {
	c, err := messaging_api.NewMessagingApiAPI(a.cfg.ChannelToken,
		messaging_api.WithHTTPClient(a.hc), messaging_api.WithEndpoint(a.cfg.APIURL))
	if err != nil {
		return nil, err
	}
	return c.WithContext(ctx), nil
}

// blob returns a content API client for one call.
func (a *Adapter) blob(ctx context.Context) (*messaging_api.MessagingApiBlobAPI, error) {
	c, err := messaging_api.NewMessagingApiBlobAPI(a.cfg.ChannelToken,
		messaging_api.WithBlobHTTPClient(a.hc), messaging_api.WithBlobEndpoint(a.cfg.DataAPIURL))
	if err != nil {
		return nil, err
	}
	return c.WithContext(ctx), nil
}

// Routes is the webhook endpoint.
func (a *Adapter) Routes() []bot.Route {
	return []bot.Route{{Pattern: "POST /line/webhook", Handler: http.HandlerFunc(a.serveWebhook)}}
}

// Secrets are the credentials the adapter was given, for redaction.
func (a *Adapter) Secrets() []string { return []string{a.cfg.ChannelSecret, a.cfg.ChannelToken} }

// Checks reads the bot's info with the channel token, as doctor's LINE check.
func (a *Adapter) Checks(ctx context.Context) []bot.Check {
	fail := func(detail string) []bot.Check {
		return []bot.Check{{Name: "LINE", Detail: detail,
			Fixes: []string{"check LINE_CHANNEL_TOKEN is the channel access token (long-lived) of the Messaging API channel"}}}
	}
	api, err := a.api(ctx)
	if err != nil {
		return fail(err.Error())
	}
	info, err := api.GetBotInfo()
	if err != nil {
		return fail("bot info failed: " + err.Error())
	}
	checks := []bot.Check{{Name: "LINE", OK: true, Detail: fmt.Sprintf("bot %s (%s)", info.DisplayName, info.BasicId)}}
	switch {
	case a.cfg.PublicURL == "":
		checks = append(checks, bot.Check{Name: "LINE images", OK: true, Warn: true,
			Detail: "PUBLIC_URL is not set: images and files the workflow returns cannot be sent to LINE (the answer says a file was made)",
			Fixes:  []string{"set PUBLIC_URL to the bot's public https address, e.g. https://$DIFYBOT_DOMAIN (docker compose sets it)"}})
	case !strings.HasPrefix(a.cfg.PublicURL, "https://"):
		checks = append(checks, bot.Check{Name: "LINE images", OK: true, Warn: true,
			Detail: "PUBLIC_URL is not https: LINE fetches images only over https, so they are sent as links",
			Fixes:  []string{"set PUBLIC_URL to the bot's https address"}})
	default:
		checks = append(checks, bot.Check{Name: "LINE images", OK: true, Detail: "sent from " + a.cfg.PublicURL + "/files/…"})
	}
	return checks
}
