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
	dify      *dify.Client
	store     *store.Store
	bot       *bot.Bot
	inbox     bot.Inbox
	accepted  chan bot.Run // New runs, for the fast lane (bot.Feedback).
	metrics   *bot.Metrics
	infoOK    atomic.Int64  // When Dify last answered /v1/info, in Unix nanoseconds, for /readyz.
	infoFresh time.Duration // How old that may be; infoFresh, or less in tests.
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
	dc, err := dify.New(dify.Config{
		BaseURL: cfg.Dify.BaseURL,
		APIKey:  cfg.Dify.APIKey.Reveal(),
		Logger:  log.With().Str("component", "dify").Logger(),
		Breaker: dify.BreakerConfig{FailureRatio: cfg.Breaker.FailureRatio, MinRequests: cfg.Breaker.MinRequests, OpenFor: cfg.Breaker.OpenFor},
		Limit:   dify.LimitConfig{Max: cfg.Workers},
	})
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
	sys, err := wire(cfg, log, dc, st, specs, env, extra)
	if err != nil {
		st.Close()
		return nil, err
	}
	return sys, nil
}

func wire(cfg config.Config, log zerolog.Logger, dc *dify.Client, st *store.Store, specs []platformSpec, env platformEnv, extra []bot.Platform) (*system, error) {
	// The fast lane's queue: big enough for a burst, and never waited for (the worker covers what it skips).
	accepted := make(chan bot.Run, 256)
	inbox, err := bot.NewInbox(bot.InboxConfig{Store: st, Logger: log, Accepted: accepted})
	if err != nil {
		return nil, err
	}
	env.inbox, env.log, env.store = inbox, log, st
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
	metrics := bot.NewMetrics(bot.MetricsConfig{Breaker: dc.Breaker(), Limit: dc.Limit, QueueStats: st.QueueStats, Platforms: names, Logger: log})
	b, err := bot.New(bot.Config{
		Metrics: metrics,
		Store:   st, Workflows: dc, Platforms: all, Logger: log,
		App:          appSettings(cfg),
		ResponseMode: dify.ResponseMode(cfg.Dify.ResponseMode), OutputKey: cfg.Dify.OutputKey,
		ImagePrompt: cfg.Dify.ImagePrompt, PendingTTL: cfg.PendingTTL,
		Timeout: cfg.Dify.Timeout, MaxImageBytes: cfg.MaxImageBytes, FetchTimeout: cfg.FetchTimeout, HoldMax: cfg.Breaker.HoldMax,
		Language: bot.Lang(cfg.Language), HumanInputBy: cfg.HumanInputBy,
		Share: bot.Share{Runs: cfg.UserConcurrency, PerMinute: cfg.UserRate},
	})
	if err != nil {
		return nil, err
	}
	return &system{cfg: cfg, log: log, dify: dc, store: st, bot: b, inbox: inbox, accepted: accepted, metrics: metrics, infoFresh: infoFresh,
		limits: defaultLimits(), platforms: plats, adminExtra: map[string]http.Handler{}}, nil
}

func (s *system) Close() error { return s.store.Close() }

// syncBreaker applies the stored override to this replica's breaker until ctx ends.
func (s *system) syncBreaker(ctx context.Context) {
	t := time.NewTicker(breakerSyncEvery)
	defer t.Stop()
	for {
		if set, err := s.store.BreakerSetting(ctx); err == nil {
			if m, err := dify.ParseMode(set.Mode); err == nil {
				s.dify.Breaker().SetMode(m, set.Reason)
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
	loops.Go(func() { s.bot.Feedback(loopCtx, s.accepted) })
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
func appSettings(cfg config.Config) bot.AppSettings {
	return bot.AppSettings{Mode: cfg.Dify.AppMode, ImageInput: cfg.Dify.ImageInput, TextInput: cfg.Dify.TextInput, Inputs: cfg.Dify.Inputs}
}
