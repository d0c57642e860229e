package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/store"
	"github.com/difybot/difybot/config"
	"github.com/difybot/difybot/dify"
	"github.com/rs/zerolog"
)

// shutdownGrace is how long in-flight runs get to finish on SIGTERM; the rest stay queued for the next start.
const shutdownGrace = 25 * time.Second

// breakerSyncEvery is how often a replica reads the operator's breaker override; DESIGN promises 5 s.
const breakerSyncEvery = 2 * time.Second

// system is one replica's parts, wired from a Config.
type system struct {
	cfg       config.Config
	log       zerolog.Logger
	dify      *dify.Client // The default app's.
	apps      []difyApp    // Every app, the default one included, in the configuration's order.
	hosts     []*difyHost  // The Dify hosts of the apps, in order of first use.
	store     *store.Store
	bot       *bot.Bot
	inbox     bot.Inbox
	metrics   *bot.Metrics
	infoFresh time.Duration // How old a host's last answer to /v1/info may be for /readyz; infoFresh, or less in tests.
	limits    httpLimits    // The HTTP server's timeouts and cap on bodies; shorter in tests.

	platforms  []platform              // The chat platforms this replica serves.
	adminExtra map[string]http.Handler // Extra admin routes (the demo's simulator switch).
}

// newLogger writes JSON lines, or readable lines for LOG_FORMAT=console.
func newLogger(c config.Log, w io.Writer) zerolog.Logger {
	if c.Format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05"}
	}
	lvl, err := zerolog.ParseLevel(c.Level)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}

// build wires the Dify client, the store, the inbox, the platforms the specs enable, and the bot; extra are
// platforms without routes (the CLI of `difybot run`). The caller closes the system.
func build(ctx context.Context, cfg config.Config, log zerolog.Logger, specs []platformSpec, env platformEnv, extra ...bot.Platform) (*system, error) {
	apps, hosts, err := difyApps(cfg, log)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, store.Config{
		DatabaseURL: cfg.DatabaseURL.Reveal(),
		SQLitePath:  cfg.SQLitePath(),
		Workers:     cfg.Workers,
		// A job may take the whole Dify timeout plus fetching, uploading and replying.
		JobTimeout:     cfg.Dify.Timeout + 2*time.Minute,
		ReplicaTimeout: cfg.ReplicaTimeout,
		Logger:         log.With().Str("component", "store").Logger(),
	})
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	sys, err := wire(cfg, log, apps, hosts, st, specs, env, extra)
	if err != nil {
		st.Close()
		return nil, err
	}
	return sys, nil
}

// difyApp is one Dify app's client, and the host whose breaker and limit it shares.
type difyApp struct {
	cfg    config.App
	client *dify.Client
	host   *difyHost
}

// difyHost is one Dify host: what its apps share, and when it last answered /v1/info (for /readyz).
type difyHost struct {
	*dify.Host
	probe  *dify.Client // The first app's client on the host, which asks /v1/info.
	apps   []string     // The apps on the host.
	infoOK atomic.Int64 // Unix nanoseconds.
}

// difyApps builds one client per app, each with its own key and base URL, and one breaker and limit per Dify
// host, shared by the apps on it: an outage of one host holds only its apps' runs.
func difyApps(cfg config.Config, log zerolog.Logger) ([]difyApp, []*difyHost, error) {
	var apps []difyApp
	var hosts []*difyHost
	for _, a := range cfg.AppList() {
		name := dify.HostOf(a.Dify.BaseURL)
		i := slices.IndexFunc(hosts, func(h *difyHost) bool { return h.Name == name })
		if i < 0 {
			hlog := log.With().Str("component", "dify").Str("host", name).Logger()
			hosts = append(hosts, &difyHost{Host: dify.NewHost(name,
				dify.BreakerConfig{FailureRatio: cfg.Breaker.FailureRatio, MinRequests: cfg.Breaker.MinRequests, OpenFor: cfg.Breaker.OpenFor},
				dify.LimitConfig{Max: cfg.Workers}, hlog)})
			i = len(hosts) - 1
		}
		h := hosts[i]
		dc, err := dify.New(dify.Config{BaseURL: a.Dify.BaseURL, APIKey: a.Dify.APIKey.Reveal(), FilesURL: a.Dify.FilesURL, Host: h.Host,
			Logger: log.With().Str("component", "dify").Str("app", a.Name).Logger()})
		if err != nil {
			return nil, nil, fmt.Errorf("app %s: %w", a.Name, err)
		}
		if h.probe == nil {
			h.probe = dc
		}
		h.apps = append(h.apps, a.Name)
		apps = append(apps, difyApp{cfg: a, client: dc, host: h})
	}
	return apps, hosts, nil
}

// defaultApp is the app of messages no route leads elsewhere.
func (s *system) defaultApp() difyApp { return defaultOf(s.cfg, s.apps) }

func defaultOf(cfg config.Config, apps []difyApp) difyApp {
	if i := slices.IndexFunc(apps, func(a difyApp) bool { return a.cfg.Name == cfg.Apps.Default }); i >= 0 {
		return apps[i]
	}
	return apps[0]
}

// botApps are the bot's apps and routes; a bot without an apps file has none (its one app is the flat settings).
func botApps(cfg config.Config, apps []difyApp) ([]bot.AppConfig, bot.Routes) {
	if len(cfg.Apps.List) == 0 {
		return nil, bot.Routes{}
	}
	var out []bot.AppConfig
	for _, a := range apps {
		var chats []string
		for _, c := range a.cfg.SlackChannels {
			chats = append(chats, "slack:"+c)
		}
		for _, c := range a.cfg.LINEChats {
			chats = append(chats, "line:"+c)
		}
		out = append(out, bot.AppConfig{Name: a.cfg.Name, Workflows: a.client, Settings: settingsOf(a.cfg.Dify),
			ImagePrompt: a.cfg.Dify.ImagePrompt, OutputKey: a.cfg.Dify.OutputKey, Keywords: a.cfg.Keywords, Chats: chats})
	}
	return out, bot.Routes{Default: cfg.Apps.Default, Direct: cfg.Apps.Direct}
}

func wire(cfg config.Config, log zerolog.Logger, apps []difyApp, hosts []*difyHost, st *store.Store, specs []platformSpec, env platformEnv, extra []bot.Platform) (*system, error) {
	dc := defaultOf(cfg, apps).client
	// The fast lane's queue: big enough for a burst, and never waited for (the worker covers what it skips).
	lane := bot.NewLane(2048)
	inbox, err := bot.NewInbox(bot.InboxConfig{Store: st, Logger: log, Lane: lane})
	if err != nil {
		return nil, err
	}
	env.inbox, env.log, env.store, env.greeter = inbox, log, st, &lateGreeter{}
	plats, err := buildPlatforms(cfg, specs, env)
	if err != nil {
		return nil, err
	}
	names := []string{}
	all := slices.Clone(extra)
	for _, sp := range specs {
		names = append(names, sp.name)
	}
	for _, p := range plats {
		all = append(all, p)
	}
	for _, p := range extra {
		names = append(names, p.Name())
	}
	mc := bot.MetricsConfig{Breaker: dc.Breaker(), Limit: dc.Limit, QueueStats: st.QueueStats, Platforms: names, Logger: log}
	botApps, routes := botApps(cfg, apps)
	if len(botApps) > 0 {
		mc.Hosts = map[string]func() dify.BreakerStatus{}
		for _, a := range botApps {
			mc.Apps = append(mc.Apps, a.Name)
		}
		for _, h := range hosts {
			mc.Hosts[h.Name] = h.Breaker.Status
		}
	}
	metrics := bot.NewMetrics(mc)
	b, err := bot.New(bot.Config{
		Metrics: metrics, Apps: botApps, Routes: routes, Lane: lane,
		Store: st, Workflows: dc, Platforms: all, Logger: log,
		App:          appSettings(cfg),
		ResponseMode: dify.ResponseMode(cfg.Dify.ResponseMode), OutputKey: cfg.Dify.OutputKey,
		ImagePrompt: cfg.Dify.ImagePrompt, PendingTTL: cfg.PendingTTL,
		Timeout: cfg.Dify.Timeout, MaxImageBytes: cfg.MaxImageBytes, MaxImagePixels: cfg.MaxImagePixels, ImageMaxSide: imageMaxSide(cfg.ImageMaxSide),
		FetchTimeout: cfg.FetchTimeout, HoldMax: cfg.Breaker.HoldMax,
		PublicURL: cfg.PublicURL, MaxOutputFileBytes: cfg.MaxOutputFileBytes, OutputFileTTL: cfg.OutputFileTTL,
		Language: bot.Lang(cfg.Language), HumanInputBy: cfg.HumanInputBy,
		Share: bot.Share{Runs: cfg.UserConcurrency, PerMinute: cfg.UserRate},
	})
	if err != nil {
		return nil, err
	}
	env.greeter.b.Store(b)
	return &system{cfg: cfg, log: log, dify: dc, apps: apps, hosts: hosts, store: st, bot: b, inbox: inbox, metrics: metrics, infoFresh: infoFresh,
		limits: defaultLimits(), platforms: plats, adminExtra: map[string]http.Handler{}}, nil
}

func (s *system) Close() error { return s.store.Close() }

// syncBreaker applies the stored overrides to this replica's breakers, one per Dify host (a host's own override
// wins over the one for all), until ctx ends.
func (s *system) syncBreaker(ctx context.Context) {
	t := time.NewTicker(breakerSyncEvery)
	defer t.Stop()
	for {
		set, err := s.store.BreakerSetting(ctx)
		var own map[string]bot.BreakerSetting
		if err == nil {
			own, err = s.store.HostBreakerSettings(ctx)
		}
		if err == nil {
			for _, h := range s.hosts {
				apply := set
				if o, ok := own[h.Name]; ok {
					apply = o
				}
				if m, err := dify.ParseMode(apply.Mode); err == nil {
					h.Breaker.SetMode(m, apply.Reason)
				}
			}
		} else if ctx.Err() == nil {
			s.log.Warn().Err(err).Msg("could not read the breaker setting")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// expireEvery is how often waiting messages past PENDING_TTL are dropped (and their step recorded), and how
// often Human Input questions past their form's expiry are followed to the run's end.
const expireEvery = 30 * time.Second

// expirePending drops expired pending messages until ctx ends.
func (s *system) expirePending(ctx context.Context) {
	t := time.NewTicker(expireEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.bot.ExpirePending(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn().Err(err).Msg("could not expire pending messages")
		}
		if err := s.bot.ExpireQuestions(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn().Err(err).Msg("could not follow expired Human Input questions")
		}
	}
}

// expireFilesEvery is how often files past OUTPUT_FILE_TTL are deleted from the store.
const expireFilesEvery = 10 * time.Minute

// expireFiles deletes expired output files, at start and then every expireFilesEvery, until ctx ends.
func (s *system) expireFiles(ctx context.Context) {
	t := time.NewTicker(expireFilesEvery)
	defer t.Stop()
	for {
		if err := s.bot.ExpireOutputFiles(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn().Err(err).Msg("could not delete expired output files")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// serve listens on HTTP_ADDR, works the queue and keeps the breaker in sync until ctx ends, then shuts down
// gracefully: stop accepting, give in-flight runs shutdownGrace, leave the rest queued.
func (s *system) serve(ctx context.Context, handler http.Handler, ready func(addr string)) error {
	srv := s.limits.server(handler)
	ln, err := listen(s.cfg.HTTPAddr)
	if err != nil {
		return err
	}
	if err := s.store.Start(ctx, s.bot); err != nil {
		ln.Close()
		return fmt.Errorf("start queue: %w", err)
	}
	// Background loops end when serve returns (stopLoops); serve waits for them.
	loopCtx, stopLoops := context.WithCancel(ctx)
	var loops sync.WaitGroup
	loops.Go(func() { s.syncBreaker(loopCtx) })
	loops.Go(func() { s.expirePending(loopCtx) })
	loops.Go(func() { s.bot.Feedback(loopCtx) })
	loops.Go(func() { s.expireFiles(loopCtx) })
	for _, p := range s.platforms {
		if r, ok := p.(runner); ok {
			loops.Go(func() {
				if err := r.Run(loopCtx); err != nil {
					s.log.Error().Err(err).Str("platform", p.Name()).Msg("platform connection stopped")
				}
			})
		}
	}
	errc := make(chan error, 1)
	go func() { // Ends at srv.Shutdown.
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
		close(errc)
	}()
	s.log.Info().Str("addr", ln.Addr().String()).Msg("difybot is listening")
	if ready != nil {
		ready(ln.Addr().String())
	}
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	s.log.Info().Msg("shutting down: no new requests; in-flight runs get " + shutdownGrace.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	err = errors.Join(err, srv.Shutdown(sctx), s.store.Stop(sctx))
	stopLoops()
	loops.Wait()
	return err
}

// appSettings are the operator's choices about the Dify app, as the pipeline and doctor both apply them.
// imageMaxSide is IMAGE_MAX_SIDE as bot.Config takes it: there 0 is the default, and "never resize" is negative.
func imageMaxSide(side int) int {
	if side == 0 {
		return -1
	}
	return side
}

func appSettings(cfg config.Config) bot.AppSettings { return settingsOf(cfg.Dify) }

func settingsOf(d config.Dify) bot.AppSettings {
	return bot.AppSettings{Mode: d.AppMode, ImageInput: d.ImageInput, TextInput: d.TextInput, Inputs: d.Inputs}
}
