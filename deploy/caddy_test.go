package deploy_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/dify/difytest"
	"github.com/difybot/difybot/platforms/line/linetest"
)

// caddyBinary is the caddy on PATH; without one the test skips.
func caddyBinary(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("caddy")
	if err != nil {
		t.Skip("caddy is not installed: apt-get install -y caddy (Debian's package; .ci/run installs it for CI)")
	}
	return p
}

// caddyEnv is the environment caddy runs with: nothing from the test's own environment but PATH, a private
// home for its certificates and autosave, and the given variables.
func caddyEnv(t testing.TB, vars map[string]string) []string {
	t.Helper()
	home := t.TempDir()
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home,
		"XDG_DATA_HOME=" + filepath.Join(home, "data"), "XDG_CONFIG_HOME=" + filepath.Join(home, "config")}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

// caddyConfig is the part of Caddy's JSON config these tests read.
type caddyConfig struct {
	Admin struct {
		Disabled bool   `json:"disabled"`
		Listen   string `json:"listen"`
	} `json:"admin"`
	Apps struct {
		HTTP struct {
			Servers map[string]struct {
				Listen []string     `json:"listen"`
				Routes []caddyRoute `json:"routes"`
				Errors struct {
					Routes []caddyRoute `json:"routes"`
				} `json:"errors"`
			} `json:"servers"`
		} `json:"http"`
	} `json:"apps"`
}

type caddyRoute struct {
	Match  []map[string]json.RawMessage `json:"match"`
	Handle []json.RawMessage            `json:"handle"`
}

// caddyHandler is one handler with the path and host matchers of the routes around it.
type caddyHandler struct {
	Paths []string
	Hosts []string
	Kind  string // reverse_proxy, static_response, …
	Raw   json.RawMessage
}

// handlers flattens routes (and their subroutes) into the handlers in the order Caddy runs them.
func handlers(t testing.TB, routes []caddyRoute, paths, hosts []string) []caddyHandler {
	t.Helper()
	var out []caddyHandler
	for _, r := range routes {
		p, h := paths, hosts
		for _, m := range r.Match {
			var v []string
			if raw, ok := m["path"]; ok && json.Unmarshal(raw, &v) == nil {
				p = v
			}
			if raw, ok := m["host"]; ok && json.Unmarshal(raw, &v) == nil {
				h = v
			}
		}
		for _, raw := range r.Handle {
			var hd struct {
				Handler string       `json:"handler"`
				Routes  []caddyRoute `json:"routes"`
			}
			if err := json.Unmarshal(raw, &hd); err != nil {
				t.Fatal(err)
			}
			if hd.Handler == "subroute" {
				out = append(out, handlers(t, hd.Routes, p, h)...)
				continue
			}
			out = append(out, caddyHandler{Paths: p, Hosts: h, Kind: hd.Handler, Raw: raw})
		}
	}
	return out
}

// reverseProxy is the part of the reverse_proxy handler these tests read. Durations are nanoseconds.
type reverseProxy struct {
	Upstreams []struct {
		Dial string `json:"dial"`
	} `json:"upstreams"`
	HealthChecks struct {
		Active struct {
			URI      string `json:"uri"`
			Interval int64  `json:"interval"`
			Timeout  int64  `json:"timeout"`
		} `json:"active"`
	} `json:"health_checks"`
	LoadBalancing struct {
		TryDuration int64 `json:"try_duration"`
	} `json:"load_balancing"`
	Transport struct {
		DialTimeout           int64 `json:"dial_timeout"`
		ResponseHeaderTimeout int64 `json:"response_header_timeout"`
	} `json:"transport"`
}

type staticResponse struct {
	Status json.RawMessage `json:"status_code"` // A number, or a string that may hold a placeholder.
	Body   string          `json:"body"`
}

func (s staticResponse) status() int {
	n, _ := strconv.Atoi(strings.Trim(string(s.Status), `"`))
	return n
}

// adaptCaddyfile runs `caddy adapt` on the repository's Caddyfile with the given environment.
func adaptCaddyfile(t testing.TB, vars map[string]string) caddyConfig {
	t.Helper()
	cmd := exec.Command(caddyBinary(t), "adapt", "--config", filepath.Join(root, "Caddyfile"), "--adapter", "caddyfile")
	cmd.Env = caddyEnv(t, vars)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("caddy adapt: %v\n%s", err, stderr.String())
	}
	var cfg caddyConfig
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("caddy adapt printed no JSON config: %v\n%s", err, out)
	}
	if len(cfg.Apps.HTTP.Servers) != 1 {
		t.Fatalf("the Caddyfile makes %d servers, want 1", len(cfg.Apps.HTTP.Servers))
	}
	return cfg
}

// site is the adapted config's one server: its listeners, its handlers and its error handlers.
func site(t testing.TB, cfg caddyConfig) (listen []string, hs, errs []caddyHandler) {
	t.Helper()
	for _, s := range cfg.Apps.HTTP.Servers {
		return s.Listen, handlers(t, s.Routes, nil, nil), handlers(t, s.Errors.Routes, nil, nil)
	}
	return nil, nil, nil
}

func theProxy(t testing.TB, hs []caddyHandler) (caddyHandler, reverseProxy) {
	t.Helper()
	var found []caddyHandler
	for _, h := range hs {
		if h.Kind == "reverse_proxy" {
			found = append(found, h)
		}
	}
	if len(found) != 1 {
		t.Fatalf("the Caddyfile has %d reverse_proxy handlers, want 1", len(found))
	}
	var rp reverseProxy
	if err := json.Unmarshal(found[0].Raw, &rp); err != nil {
		t.Fatal(err)
	}
	return found[0], rp
}

// errorAnswer is the Caddyfile's answer, status and body, to an upstream error with the given status.
func errorAnswer(t testing.TB, errs []caddyHandler, status int) staticResponse {
	t.Helper()
	for _, h := range errs {
		var sr staticResponse
		if h.Kind == "static_response" && json.Unmarshal(h.Raw, &sr) == nil && sr.status() == status && sr.Body != "" {
			return sr
		}
	}
	t.Fatalf("the Caddyfile's handle_errors has no %d answer with a body", status)
	return staticResponse{}
}

// TestCaddyfileUpstreamIsTheBotService checks, on the config Caddy itself makes of the Caddyfile, that Caddy
// dials the bot where docker-compose.yml and the Dockerfile put it: the compose service name and the port of
// HTTP_ADDR. A mismatch there is the 502 nobody can explain.
func TestCaddyfileUpstreamIsTheBotService(t *testing.T) {
	caddyBinary(t)
	for _, tc := range []struct {
		name   string
		dotenv []string
		want   []string
	}{
		{"sqlite", nil, []string{"difybot:8080"}},
		{"postgres", []string{"COMPOSE_PROFILES=postgres", "POSTGRES_PASSWORD=s3cret"}, []string{"difybot:8080", "difybot-2:8080"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := loadCompose(t, tc.dotenv...)
			caddyService := service(t, p, "caddy")
			vars := map[string]string{}
			for k, v := range caddyService.Environment {
				if v != nil {
					vars[k] = *v
				}
			}
			cfg := adaptCaddyfile(t, vars) // Exactly the environment the caddy container gets.
			if tc.name == "sqlite" {
				// The Caddyfile's own default, for a Caddy started without docker-compose.yml's environment.
				_, defaults, _ := site(t, adaptCaddyfile(t, nil))
				if _, rp := theProxy(t, defaults); len(rp.Upstreams) != 1 || rp.Upstreams[0].Dial != tc.want[0] {
					t.Errorf("the Caddyfile's default upstreams are %+v, want %s", rp.Upstreams, tc.want[0])
				}
			}
			if cfg.Admin.Disabled || cfg.Admin.Listen != "localhost:2019" {
				t.Errorf("admin %+v: want Caddy's admin API on localhost:2019 inside the container (caddy reload, the health check)", cfg.Admin)
			}
			listen, hs, _ := site(t, cfg)
			if !slices.Equal(listen, []string{":443"}) {
				t.Errorf("Caddy listens on %v, want :443", listen)
			}
			h, rp := theProxy(t, hs)
			var dials []string
			for _, u := range rp.Upstreams {
				dials = append(dials, u.Dial)
			}
			if !slices.Equal(dials, tc.want) {
				t.Fatalf("Caddy dials %v, want %v", dials, tc.want)
			}
			for _, d := range dials {
				host, port, _ := net.SplitHostPort(d)
				s := service(t, p, host)
				if _, addrPort, _ := net.SplitHostPort(envOf(s, "HTTP_ADDR")); addrPort != port {
					t.Errorf("Caddy dials %s, but the %s service listens on HTTP_ADDR=%q", d, host, envOf(s, "HTTP_ADDR"))
				}
				shared := false
				for n := range caddyService.Networks {
					_, on := s.Networks[n]
					shared = shared || on
				}
				if !shared {
					t.Errorf("%s is on %v, Caddy on %v: they share no network, so Caddy cannot resolve %s",
						host, slices.Collect(maps.Keys(s.Networks)), slices.Collect(maps.Keys(caddyService.Networks)), host)
				}
			}
			if env := finalStage(t).env(t); env["HTTP_ADDR"] != ":8080" {
				t.Errorf("the image listens on HTTP_ADDR=%q, Caddy dials port 8080", env["HTTP_ADDR"])
			}
			if h.Hosts == nil || !slices.Equal(h.Hosts, []string{envOf(caddyService, "DIFYBOT_DOMAIN")}) {
				t.Errorf("the proxy serves hosts %v, want DIFYBOT_DOMAIN %q", h.Hosts, envOf(caddyService, "DIFYBOT_DOMAIN"))
			}
		})
	}
}

// TestCaddyfileRoutes checks what Caddy passes to the bot, how it watches it, and what it answers itself.
func TestCaddyfileRoutes(t *testing.T) {
	cfg := adaptCaddyfile(t, nil)
	_, hs, errs := site(t, cfg)
	h, rp := theProxy(t, hs)
	for _, want := range []string{"/slack/*", "/line/*", "/admin/*", "/files/*", "/healthz", "/readyz"} {
		if !slices.Contains(h.Paths, want) {
			t.Errorf("Caddy does not pass %s to the bot (paths %v)", want, h.Paths)
		}
	}
	for _, p := range h.Paths {
		if p == "/*" || p == "/" || strings.HasPrefix(p, "/metrics") || strings.HasPrefix(p, "/api") {
			t.Errorf("Caddy passes %s to the bot: the web chat and /metrics stay off the internet", p)
		}
	}
	if rp.HealthChecks.Active.URI != "/healthz" {
		t.Errorf("active health check on %q, want /healthz (/readyz turns 503 when Dify is down, and the webhooks must still be acknowledged)", rp.HealthChecks.Active.URI)
	}
	// Slack wants an answer in 3 s, LINE in about 2 s: a dead bot must give a quick 502, not a hang.
	if d := time.Duration(rp.Transport.DialTimeout); d <= 0 || d > 2*time.Second {
		t.Errorf("dial_timeout %s, want at most 2s", d)
	}
	if d := time.Duration(rp.LoadBalancing.TryDuration); d > 2*time.Second {
		t.Errorf("lb_try_duration %s, want at most 2s", d)
	}
	if d := time.Duration(rp.Transport.ResponseHeaderTimeout); d <= 0 || d > 10*time.Second {
		t.Errorf("response_header_timeout %s, want a few seconds", d)
	}
	var metrics404 bool
	for _, x := range hs {
		if x.Kind == "reverse_proxy" {
			break
		}
		var sr staticResponse
		if x.Kind == "static_response" && slices.Contains(x.Paths, "/metrics*") && json.Unmarshal(x.Raw, &sr) == nil && sr.status() == 404 {
			metrics404 = true
		}
	}
	if !metrics404 {
		t.Error("Caddy does not answer /metrics with 404 before any route to the bot")
	}

	// The answers to a bot Caddy cannot reach are what docs/operations.md says they are.
	guide := readRepoFile(t, "docs/operations.md")
	for _, status := range []int{502, 504} {
		if a := errorAnswer(t, errs, status); !strings.Contains(guide, a.Body) {
			t.Errorf("docs/operations.md does not quote Caddy's %d answer %q", status, a.Body)
		}
	}

	fmtCmd := exec.Command(caddyBinary(t), "fmt", filepath.Join(root, "Caddyfile"))
	fmtCmd.Env = caddyEnv(t, nil)
	if out, err := fmtCmd.Output(); err != nil || string(out) != readRepoFile(t, "Caddyfile") {
		t.Errorf("the Caddyfile is not as caddy fmt writes it (%v): run caddy fmt --overwrite Caddyfile", err)
	}
}

// startCaddy runs the repository's Caddyfile on a loopback port in front of upstreams, the way tests can:
// plain HTTP on 127.0.0.1 (DIFYBOT_DOMAIN=http://127.0.0.1:PORT), no admin endpoint. Everything else is the
// production file.
func startCaddy(t testing.TB, upstreams string) (string, *process) {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(caddyBinary(t), "run", "--config", filepath.Join(root, "Caddyfile"), "--adapter", "caddyfile")
	cmd.Env = caddyEnv(t, map[string]string{
		"DIFYBOT_DOMAIN":     "http://" + addr,
		"DIFYBOT_UPSTREAMS":  upstreams,
		"CADDY_ADMIN":        "off",
		"CADDY_DEFAULT_BIND": "127.0.0.1",
	})
	p := start(t, cmd, "caddy")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return "http://" + addr, p
		}
		select {
		case <-p.done:
			t.Fatalf("caddy exited: %v\n%s", p.err, p.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("caddy did not listen on %s within 20s\n%s", addr, p.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

const (
	lineSecret = "0123456789abcdef0123456789abcdef"
	adminToken = "deploy-test-admin-token-0123456789"
)

// TestCaddyInFrontOfBot runs the real caddy with the repository's Caddyfile in front of a real difybot serve
// (the image's binary) with LINE on: webhooks pass through with their signature intact, what must stay private
// does, and with the bot stopped Caddy answers the 502 docs/operations.md describes, at once.
func TestCaddyInFrontOfBot(t *testing.T) {
	caddyBinary(t)
	if testing.Short() {
		t.Skip("builds and runs difybot and caddy")
	}
	t.Parallel()
	bin := imageBinaries(t)
	_, _, errs := site(t, adaptCaddyfile(t, nil))
	down := errorAnswer(t, errs, 502)

	sim := difytest.NewServer(difytest.Options{})
	t.Cleanup(sim.Close)
	lineAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("{}"))
	}))
	t.Cleanup(lineAPI.Close)

	botAddr := freeAddr(t)
	cmd := exec.Command(filepath.Join(bin, "difybot"), "serve")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HTTP_ADDR=" + botAddr, "DATA_DIR=" + t.TempDir(),
		"DIFY_BASE_URL=" + sim.URL(), "DIFY_API_KEY=app-test", "ADMIN_TOKEN=" + adminToken,
		"LINE_CHANNEL_SECRET=" + lineSecret, "LINE_CHANNEL_TOKEN=line-token",
		"LINE_API_URL=" + lineAPI.URL, "LINE_DATA_API_URL=" + lineAPI.URL}
	bot := start(t, cmd, "difybot serve")
	waitHTTP(t, bot, "http://"+botAddr+"/healthz", 200, 60*time.Second)

	base, _ := startCaddy(t, botAddr)
	waitHTTP(t, bot, base+"/healthz", 200, 20*time.Second)

	verify := []byte(`{"destination":"U1","events":[]}`)
	if a := do(t, "POST", base+"/line/webhook", verify, map[string]string{"x-line-signature": linetest.Signature(lineSecret, verify), "Content-Type": "application/json"}); a.status != 200 {
		t.Errorf("a signed LINE webhook through Caddy: %d %q, want 200", a.status, a.body)
	}
	if !bot.waitOutput("webhook verification request", 5*time.Second) {
		t.Errorf("the signed webhook did not reach the bot's LINE handler")
	}
	if a := do(t, "POST", base+"/line/webhook", verify, map[string]string{"x-line-signature": linetest.Signature(lineSecret, []byte("forged")), "Content-Type": "application/json"}); a.status != 401 || !strings.Contains(a.body, "invalid signature") {
		t.Errorf("a forged LINE webhook through Caddy: %d %q, want the bot's 401 invalid signature", a.status, a.body)
	}
	if a := do(t, "GET", "http://"+botAddr+"/metrics", nil, nil); a.status != 200 {
		t.Errorf("the bot's own /metrics: %d, want 200 (on the compose network)", a.status)
	}
	for _, path := range []string{"/metrics", "/", "/api/messages"} {
		if a := do(t, "GET", base+path, nil, nil); a.status != 404 {
			t.Errorf("GET %s through Caddy: %d, want 404", path, a.status)
		}
	}
	if a := do(t, "GET", base+"/admin/runs", nil, nil); a.status != 401 {
		t.Errorf("GET /admin/runs without the token through Caddy: %d %q, want 401", a.status, a.body)
	}
	if a := do(t, "GET", base+"/admin/runs", nil, map[string]string{"Authorization": "Bearer " + adminToken}); a.status != 200 {
		t.Errorf("GET /admin/runs with the token through Caddy: %d %q, want 200", a.status, a.body)
	}
	// Expect: 100-continue lets the client read Caddy's early answer instead of writing 2 MiB into a closed
	// connection.
	big := bytes.Repeat([]byte("x"), 2<<20)
	if a := do(t, "POST", base+"/line/webhook", big, map[string]string{"x-line-signature": linetest.Signature(lineSecret, big), "Expect": "100-continue"}); a.status != 413 {
		t.Errorf("a 2 MiB webhook through Caddy: %d %q, want 413", a.status, a.body)
	}

	// The bot stops (docker compose stop difybot, a crash, an upgrade): Caddy answers 502 with its text, fast
	// enough for Slack (3 s) and LINE, every time.
	if err := bot.stop(t, 40*time.Second); err != nil {
		t.Fatalf("difybot after SIGTERM: %v", err)
	}
	for i := range 3 {
		a := do(t, "POST", base+"/line/webhook", verify, map[string]string{"x-line-signature": linetest.Signature(lineSecret, verify), "Content-Type": "application/json"})
		if a.status != 502 || a.body != down.Body {
			t.Errorf("webhook %d with the bot stopped: %d %q, want 502 %q", i+1, a.status, a.body, down.Body)
		}
		if a.took > 2500*time.Millisecond {
			t.Errorf("webhook %d with the bot stopped took %s: Slack and LINE give up after 2–3 s", i+1, a.took)
		}
	}
	if a := do(t, "GET", base+"/healthz", nil, nil); a.status != 502 || a.body != down.Body {
		t.Errorf("GET /healthz with the bot stopped: %d %q, want 502", a.status, a.body)
	}
}

// TestCaddyHungBotIs504 puts Caddy in front of a bot that is alive (/healthz answers) but does not answer a
// webhook: Caddy gives up after its response header timeout with the 504 docs/operations.md describes.
func TestCaddyHungBotIs504(t *testing.T) {
	caddyBinary(t)
	if testing.Short() {
		t.Skip("runs caddy for several seconds")
	}
	t.Parallel()
	_, hs, errs := site(t, adaptCaddyfile(t, nil))
	_, rp := theProxy(t, hs)
	hung := errorAnswer(t, errs, 504)

	release := make(chan struct{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.Write([]byte(`{"status":"ok"}`))
			return
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() {
		close(release)
		srv.Close()
	})

	base, _ := startCaddy(t, ln.Addr().String())
	waitHTTP(t, nil, base+"/healthz", 200, 20*time.Second)
	a := do(t, "POST", base+"/line/webhook", []byte("{}"), nil)
	if a.status != 504 || a.body != hung.Body {
		t.Errorf("webhook to a hung bot: %d %q, want 504 %q", a.status, a.body, hung.Body)
	}
	if limit := time.Duration(rp.Transport.ResponseHeaderTimeout) + 3*time.Second; a.took > limit {
		t.Errorf("the 504 took %s, want about the response header timeout", a.took)
	}
}
