package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/admin"
	"github.com/difybot/difybot/config"
)

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	getenv, err := newFlags("serve").parse(args, getenv, stdout, stderr)
	if err != nil {
		return err
	}
	sys, err := boot(ctx, getenv, stderr, platformEnv{})
	if err != nil {
		return err
	}
	defer sys.Close()
	if len(sys.platforms) == 0 {
		sys.log.Warn().Msg(noPlatform + "; /readyz answers 503 until one is")
	}
	mux, err := sys.routes()
	if err != nil {
		return err
	}
	return sys.serve(ctx, mux, nil)
}

// boot loads the configuration (printing every problem) and wires a system with every platform it enables,
// logging to stderr.
func boot(ctx context.Context, getenv func(string) string, stderr io.Writer, env platformEnv) (*system, error) {
	cfg, err := loadConfig(getenv, stderr, true)
	if err != nil {
		return nil, err
	}
	return build(ctx, cfg, newLogger(cfg.Log, stderr), platforms(), env)
}

// loadConfig reads the environment and prints every problem at once; forDify adds what talking to Dify needs.
func loadConfig(getenv func(string) string, stderr io.Writer, forDify bool) (config.Config, error) {
	cfg, err := config.Load(getenv)
	if err == nil && forDify {
		err = cfg.RequireServe()
	}
	if err != nil {
		fmt.Fprintf(stderr, "difybot: configuration:\n%v\n", err)
		return cfg, exitError(2)
	}
	return cfg, nil
}

// routes is every HTTP endpoint of one replica, behind the guard on request bodies (their deadline and how many
// are read at once; see httpLimits). It fails only on a wiring bug in the admin API's parts.
func (s *system) routes() (http.Handler, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", s.metrics.Handler())
	// With no ADMIN_TOKEN, admin.New answers 404 everywhere: the admin API is off.
	var hosts map[string]admin.BreakerSwitch
	if len(s.hosts) > 1 {
		hosts = map[string]admin.BreakerSwitch{}
		for _, h := range s.hosts {
			hosts[h.Name] = h.Breaker
		}
	}
	adm, err := admin.New(admin.Config{
		Token: s.cfg.AdminToken.Reveal(), Store: s.store, Breaker: s.dify.Breaker(), Hosts: hosts, Limit: s.dify.Limit, Extra: s.adminExtra,
		Logger: s.log.With().Str("component", "admin").Logger(), Redact: s.secrets(), About: s.about,
		OpenFile: s.openFile,
	})
	if err != nil {
		return nil, err
	}
	mux.Handle("/admin/", adm)
	// The files of answers, to whoever has a link the bot signed (LINE fetches images from here).
	mux.Handle("GET /files/{id}", bot.FilesHandler(bot.FilesConfig{Store: s.store}))
	for _, p := range s.platforms {
		for _, r := range p.Routes() {
			mux.Handle(r.Pattern, withBodyTimeout(s.limits, r.BodyTimeout, r.Handler))
		}
	}
	return newBodyGuard(s.limits).wrap(mux), nil
}

// noPlatform is serve's warning, and /readyz's reason, when no chat platform is configured.
const noPlatform = "no chat platform is configured, so no message can arrive: set SLACK_BOT_TOKEN with SLACK_SIGNING_SECRET or SLACK_APP_TOKEN, or LINE_CHANNEL_SECRET with LINE_CHANNEL_TOKEN (difybot doctor checks them)"

// infoFresh is how recently Dify must have answered /v1/info for the replica to count as ready.
const infoFresh = time.Minute

// readyz reports whether this replica can do its work: a chat platform is configured, the store answers, Dify
// answered /v1/info within the last minute (asked again only when that is stale, so probes cost Dify one call a
// minute), and the breaker lets calls through. A replica with no platform is not ready, though nothing in it is
// broken: it can never receive a message, and a rollout of such a configuration should stop at its first replica
// and say why, not go on looking healthy. Liveness (/healthz) is unaffected, so nothing restarts it in a loop.
func (s *system) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	var reasons []string
	if len(s.platforms) == 0 {
		reasons = append(reasons, noPlatform)
	}
	if err := s.store.Ping(ctx); err != nil {
		reasons = append(reasons, "store unreachable: "+err.Error())
	}
	// Each Dify host is asked once, through its first app; with several, each reason names its host.
	hosts := []map[string]any{}
	for _, h := range s.hosts {
		var own []string
		if last := time.Unix(0, h.infoOK.Load()); time.Since(last) > s.infoFresh {
			if _, err := h.probe.Info(ctx); err != nil {
				d := bot.Diagnose(err)
				own = append(own, fmt.Sprintf("Dify did not answer /v1/info: %s (%s)", d.Summary, d.Code))
			} else {
				h.infoOK.Store(time.Now().UnixNano())
			}
		}
		st := h.Breaker.Status()
		if err := h.Breaker.Ready(); err != nil {
			own = append(own, "breaker "+st.State)
		}
		for _, r := range own {
			if len(s.hosts) > 1 {
				r = h.Name + ": " + r
			}
			reasons = append(reasons, r)
		}
		hosts = append(hosts, map[string]any{"host": h.Name, "apps": h.apps, "ready": len(own) == 0, "breaker": st})
	}
	status := http.StatusOK
	if len(reasons) > 0 {
		status = http.StatusServiceUnavailable
	}
	body := map[string]any{"ready": status == http.StatusOK, "reasons": reasons, "breaker": s.dify.Breaker().Status()}
	if len(s.hosts) > 1 {
		body["hosts"] = hosts
	}
	writeJSON(w, status, body)
}

// about is this replica's part of a run's debug bundle: what it is, what it found of the Dify app, and its
// configuration with every secret as [redacted] (config.Secret marshals so; the admin API's redactor is the
// second line for anything else).
func (s *system) about(ctx context.Context) map[string]any {
	names := []string{}
	for _, p := range s.platforms {
		names = append(names, p.Name())
	}
	out := map[string]any{
		"versions":  map[string]string{"difybot": versionLine(), "go": runtime.Version(), "os_arch": runtime.GOOS + "/" + runtime.GOARCH},
		"platforms": names,
		"config":    s.cfg,
		"breaker":   s.dify.Breaker().Status(),
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if app, err := s.bot.App(ctx); err != nil {
		out["app"] = map[string]string{"error": bot.Diagnose(err).Summary}
	} else {
		out["app"] = app
	}
	return out
}

// openFile reads a run's attachment again through the platform it came from, for the admin page.
func (s *system) openFile(ctx context.Context, r bot.Run, f bot.File) (io.ReadCloser, error) {
	for _, p := range s.platforms {
		if p.Name() == r.Platform {
			return p.OpenFile(ctx, r.Message, f)
		}
	}
	return nil, fmt.Errorf("no platform %q on this replica", r.Platform)
}

// secrets are the configured secret values, which the admin API removes from anything it returns.
func (s *system) secrets() []string {
	all := []string{s.cfg.Dify.APIKey.Reveal(), s.cfg.DatabaseURL.Reveal()}
	for _, a := range s.apps {
		all = append(all, a.cfg.Dify.APIKey.Reveal())
	}
	for _, p := range s.platforms {
		all = append(all, p.Secrets()...)
	}
	return slices.DeleteFunc(all, func(v string) bool { return v == "" })
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (HTTP_ADDR): %w", addr, err)
	}
	return ln, nil
}
