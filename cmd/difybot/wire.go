package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/store"
	"github.com/difybot/difybot/config"
	"github.com/difybot/difybot/dify"
	"github.com/difybot/difybot/platforms/line"
	"github.com/difybot/difybot/platforms/slack"
	"github.com/difybot/difybot/platforms/web"
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
	metrics   *bot.Metrics
	infoOK    atomic.Int64  // When Dify last answered /v1/info, in Unix nanoseconds, for /readyz.
	infoFresh time.Duration // How old that may be; infoFresh, or less in tests.

	web        *web.Chat
	slack      *slack.Adapter
	line       *line.Adapter
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

// build wires the Dify client, the store and the bot. The caller closes the system.
func build(ctx context.Context, cfg config.Config, log zerolog.Logger, platforms ...bot.Platform) (*system, error) {
	dc, err := dify.New(dify.Config{
		BaseURL: cfg.Dify.BaseURL,
		APIKey:  cfg.Dify.APIKey.Reveal(),
		Logger:  log.With().Str("component", "dify").Logger(),
		Breaker: dify.BreakerConfig{FailureRatio: cfg.Breaker.FailureRatio, MinRequests: cfg.Breaker.MinRequests, OpenFor: cfg.Breaker.OpenFor},
	})
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, store.Config{
		DatabaseURL: cfg.DatabaseURL.Reveal(),
		SQLitePath:  cfg.SQLitePath(),
		Workers:     cfg.Workers,
		// A job may take the whole Dify timeout plus fetching, uploading and replying.
		JobTimeout: cfg.Dify.Timeout + 2*time.Minute,
		Logger:     log.With().Str("component", "store").Logger(),
	})
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	metrics := bot.NewMetrics(bot.MetricsConfig{Breaker: dc.Breaker(), QueueStats: st.QueueStats,
		Platforms: []string{"slack", "line", "web", "cli"}, Logger: log})
	b, err := bot.New(bot.Config{
		Metrics: metrics,
		Store:   st, Workflows: dc, Platforms: platforms, Logger: log,
		AppMode: cfg.Dify.AppMode, ResponseMode: dify.ResponseMode(cfg.Dify.ResponseMode),
		ImageInput: cfg.Dify.ImageInput, TextInput: cfg.Dify.TextInput, OutputKey: cfg.Dify.OutputKey,
		Timeout: cfg.Dify.Timeout, MaxImageBytes: cfg.MaxImageBytes, HoldMax: cfg.Breaker.HoldMax,
		Language: bot.Lang(cfg.Language),
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	return &system{cfg: cfg, log: log, dify: dc, store: st, bot: b, metrics: metrics, infoFresh: infoFresh, adminExtra: map[string]http.Handler{}}, nil
}

// addPlatforms builds the Slack and LINE adapters the configuration enables. They need the bot to accept
// messages, and the bot needs them to reply, so they are added after it.
func (s *system) addPlatforms() error {
	if s.cfg.Slack.Enabled() {
		a, err := slack.New(slack.Config{
			BotToken: s.cfg.Slack.BotToken.Reveal(), SigningSecret: s.cfg.Slack.SigningSecret.Reveal(),
			AppToken: s.cfg.Slack.AppToken.Reveal(), APIURL: s.cfg.Slack.APIURL,
			Logger: s.log.With().Str("component", "slack").Logger(), Language: bot.Lang(s.cfg.Language),
		}, s.bot)
		if err != nil {
			return err
		}
		s.slack = a
		s.bot.AddPlatform(a)
	}
	if s.cfg.LINE.Enabled() {
		a, err := line.New(line.Config{
			ChannelSecret: s.cfg.LINE.ChannelSecret.Reveal(), ChannelToken: s.cfg.LINE.ChannelToken.Reveal(),
			APIURL: s.cfg.LINE.APIURL, DataAPIURL: s.cfg.LINE.DataAPIURL,
			Logger: s.log.With().Str("component", "line").Logger(),
		}, s.bot)
		if err != nil {
			return err
		}
		s.line = a
		s.bot.AddPlatform(a)
	}
	return nil
}

// addWeb enables the web chat; token, when set, guards its API.
func (s *system) addWeb(token, dir string) error {
	w, err := web.New(web.Config{Logger: s.log, UploadDir: dir, MaxImageBytes: s.cfg.MaxImageBytes, Token: token}, s.bot)
	if err != nil {
		return err
	}
	s.web = w
	s.bot.AddPlatform(w)
	return nil
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

// serve listens on HTTP_ADDR, works the queue and keeps the breaker in sync until ctx ends, then shuts down
// gracefully: stop accepting, give in-flight runs shutdownGrace, leave the rest queued.
func (s *system) serve(ctx context.Context, handler http.Handler, ready func(addr string)) error {
	srv := &http.Server{Addr: s.cfg.HTTPAddr, Handler: handler, ReadHeaderTimeout: 10 * time.Second}
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
	if s.slack != nil && s.cfg.Slack.SocketMode() {
		loops.Go(func() {
			if err := s.slack.RunSocketMode(loopCtx); err != nil {
				s.log.Error().Err(err).Msg("slack socket mode stopped")
			}
		})
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
