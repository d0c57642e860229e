// Package admin is difybot's admin API and page, mounted at /admin/: the run list and each run's steps, nodes
// and diagnosis, and the breaker switch. Everything but the page needs ADMIN_TOKEN, and nothing secret leaves.
package admin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed" // The admin page.
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"maps"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/dify"
	"github.com/rs/zerolog"
)

// Store is what the admin API reads and writes: runs with their steps and node events, and the breaker
// override with its history. *store.Store (bot/store) implements it.
type Store interface {
	// Run returns a run by id, or bot.ErrNotFound.
	Run(ctx context.Context, id string) (bot.Run, error)
	Steps(ctx context.Context, runID string) ([]bot.Step, error)
	NodeEvents(ctx context.Context, runID string) ([]bot.NodeEvent, error)
	// ListRuns returns runs newest first (created_at, then id, descending), filtered by f.
	ListRuns(ctx context.Context, f bot.RunFilter) ([]bot.Run, error)
	// BreakerSetting returns the override in force (mode auto when none was ever set).
	BreakerSetting(ctx context.Context) (bot.BreakerSetting, error)
	// SetBreakerSetting stores the override and an audit row.
	SetBreakerSetting(ctx context.Context, s bot.BreakerSetting) error
	// BreakerHistory returns the latest audit rows, newest first.
	BreakerHistory(ctx context.Context, limit int) ([]bot.BreakerSetting, error)
	// OutputFiles and SigningKey are the files of a run's answers and the key of their links (bot.OutputFileStore).
	OutputFiles(ctx context.Context, runID string) ([]bot.OutputFile, error)
	SigningKey(ctx context.Context) ([]byte, error)
}

// BreakerSwitch is the part of the breaker the admin API reads and switches. *dify.Breaker implements it.
type BreakerSwitch interface {
	Status() dify.BreakerStatus
	SetMode(m dify.Mode, reason string)
}

// Config wires the admin API and page.
type Config struct {
	Token   string // ADMIN_TOKEN; empty turns every /admin/ route into a 404.
	Store   Store
	Breaker BreakerSwitch
	// Hosts are the breakers of several Dify hosts, by host (dify.HostOf), when the bot's apps are on more than
	// one: PUT /admin/breaker then switches one host ("host") or all. Breaker is the default app's host's.
	Hosts map[string]BreakerSwitch
	// Limit, when set, reports the adaptive cap on runs in flight against Dify (dify.Client.Limit).
	Limit  func() dify.LimitStatus
	Logger zerolog.Logger
	Now    func() time.Time
	// Extra are more admin routes, keyed by their path under /admin/ (such as "/admin/sim/scenario"); they sit
	// behind the same token and answer every method on that path themselves.
	Extra map[string]http.Handler
	// Redact lists secret values (API keys, platform tokens) that must never leave in a response, even when a
	// raw error or a reply happens to carry one. The token is always redacted. Values under 8 bytes are ignored:
	// they would match ordinary text.
	Redact []string
	// About fills the replica's sections of a run's debug bundle (GET /admin/runs/{id}/bundle); nil leaves them out.
	About About
	// OpenFile reads a run's attachments again for the page's thumbnails; nil turns them off.
	OpenFile OpenFile
}

// Admin API limits.
const (
	defaultLimit     = 50
	maxLimit         = 200 // The store's ceiling is 500; the cursor's tie-break needs headroom above a page.
	storeListCeiling = 500
	maxReason        = 500
	maxBody          = 16 << 10
	historyLimit     = 50
	excerptRunes     = 140
	minRedact        = 8
)

//go:embed admin.html
var rawPage []byte

// pageHTML is the page with the diagnosis codes filled in, and pageCSP the policy that allows exactly its inline
// script and style: the page needs no other origin, so a strict policy costs nothing.
var pageHTML, pageCSP = preparePage(rawPage)

var inlineBlock = regexp.MustCompile(`(?s)<(script|style)>(.*?)</(?:script|style)>`)

func preparePage(page []byte) ([]byte, string) {
	var opts strings.Builder
	for _, c := range bot.Codes() {
		fmt.Fprintf(&opts, `<option value="%[1]s">%[1]s</option>`, html.EscapeString(string(c)))
	}
	page = bytes.Replace(page, []byte("<!--codes-->"), []byte(opts.String()), 1)
	hashes := map[string][]string{}
	for _, m := range inlineBlock.FindAllSubmatch(page, -1) {
		sum := sha256.Sum256(m[2])
		tag := string(m[1])
		hashes[tag] = append(hashes[tag], "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
	}
	csp := fmt.Sprintf("default-src 'none'; script-src %s; style-src %s; connect-src 'self'; img-src 'self' data: blob:; "+
		"base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
		strings.Join(append(hashes["script"], "'self'"), " "), strings.Join(append(hashes["style"], "'self'"), " "))
	return page, csp
}

// api is the handler New returns.
type api struct {
	cfg      Config
	log      zerolog.Logger
	tokenSum [sha256.Size]byte
	mux      *http.ServeMux
	redact   *strings.Replacer
}

// New returns the admin API and page, to be mounted at "/admin/". With an empty Token every route answers
// 404, so an unconfigured deployment does not even reveal that the admin API exists; nothing else is needed
// then. With a Token, it returns an error when Store or Breaker is missing or an Extra path is not a plain
// path under /admin/: those are wiring bugs.
func New(cfg Config) (http.Handler, error) {
	if cfg.Token == "" {
		return http.NotFoundHandler(), nil
	}
	if cfg.Store == nil || cfg.Breaker == nil {
		return nil, errors.New("admin: New needs a Store and a Breaker")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &api{cfg: cfg, log: cfg.Logger.With().Str("component", "admin").Logger(), tokenSum: sha256.Sum256([]byte(cfg.Token))}
	a.redact = newRedactor(append(slices.Clone(cfg.Redact), cfg.Token))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/runs", a.listRuns)
	mux.HandleFunc("GET /admin/runs/{id}", a.getRun)
	mux.HandleFunc("GET /admin/runs/{id}/bundle", a.getBundle)
	mux.HandleFunc("GET /admin/runs/{id}/files/{n}", a.getFile)
	mux.HandleFunc("GET /admin/breaker", a.getBreaker)
	mux.HandleFunc("PUT /admin/breaker", a.putBreaker)
	// Method-less fallbacks turn the mux's plain-text 405 and 404 into JSON the page can show.
	mux.HandleFunc("/admin/runs", methodNotAllowed("GET"))
	mux.HandleFunc("/admin/runs/{id}", methodNotAllowed("GET"))
	mux.HandleFunc("/admin/runs/{id}/bundle", methodNotAllowed("GET"))
	mux.HandleFunc("/admin/breaker", methodNotAllowed("GET, PUT"))
	mux.HandleFunc("/admin/", func(w http.ResponseWriter, r *http.Request) {
		a.writeError(w, http.StatusNotFound, "no admin route "+r.Method+" "+r.URL.Path)
	})
	for _, path := range slices.Sorted(maps.Keys(cfg.Extra)) {
		if !strings.HasPrefix(path, "/admin/") || strings.ContainsAny(path, " {}") {
			return nil, fmt.Errorf("admin: Extra route %q must be a plain path under /admin/", path)
		}
		mux.Handle(path, cfg.Extra[path])
	}
	a.mux = mux
	return a, nil
}

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		sendJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": r.Method + " is not allowed here; use " + allow})
	}
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store") // Runs and breaker state are live data, and nothing here should be cached.
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	if r.URL.Path == "/admin/" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		// The page holds no data, so it is served without the token; it asks for the token itself.
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", pageCSP)
		http.ServeContent(w, r, "admin.html", time.Time{}, bytes.NewReader(pageHTML))
		return
	}
	if msg, ok := a.authorized(r); !ok {
		challenge := `Bearer realm="difybot admin"`
		if msg == errTokenWrong {
			challenge += `, error="invalid_token"`
		}
		h.Set("WWW-Authenticate", challenge)
		a.log.Info().Str("remote", remoteIP(r)).Str("path", r.URL.Path).Str("problem", msg).Msg("admin request refused")
		a.writeError(w, http.StatusUnauthorized, msg)
		return
	}
	a.mux.ServeHTTP(&redactingWriter{ResponseWriter: w, redact: a.redact}, r)
}

const (
	errTokenMissing = "missing admin token: send Authorization: Bearer <ADMIN_TOKEN>"
	errTokenWrong   = "wrong admin token"
)

// authorized compares SHA-256 sums of the tokens in constant time: equal lengths mean neither the compare
// nor its early exit on a length mismatch can tell an attacker how long the token is.
func (a *api) authorized(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return errTokenMissing, false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	if subtle.ConstantTimeCompare(sum[:], a.tokenSum[:]) != 1 {
		return errTokenWrong, false
	}
	return "", true
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (a *api) internal(w http.ResponseWriter, r *http.Request, what string, err error) {
	a.log.Error().Err(err).Str("path", r.URL.Path).Msg("admin: could not " + what)
	// Store errors can name hosts and tables; the log has them, the response only says where to look.
	a.writeError(w, http.StatusInternalServerError, "could not "+what+"; the server log has the details")
}

func (a *api) writeError(w http.ResponseWriter, status int, msg string) {
	a.writeJSON(w, status, map[string]string{"error": msg})
}

func (a *api) writeJSON(w http.ResponseWriter, status int, v any) {
	if a.redact != nil {
		if _, ok := w.(*redactingWriter); !ok {
			w = &redactingWriter{ResponseWriter: w, redact: a.redact}
		}
	}
	sendJSON(w, status, v)
}

func sendJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"could not encode the response"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
