package deploy_test

import (
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// loadCompose loads docker-compose.yml with the Compose specification's own loader, the way `docker compose`
// does in a directory holding it, the Caddyfile and a .env made of .env.example plus the given lines: .env
// is both the interpolation source (COMPOSE_PROFILES, POSTGRES_PASSWORD, …) and the bot's env_file.
func loadCompose(t testing.TB, dotenv ...string) *types.Project {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"docker-compose.yml", "Caddyfile"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(readRepoFile(t, f)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := readRepoFile(t, ".env.example") + "\n" + strings.Join(dotenv, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte(env), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(dir, "docker-compose.yml")},
		cli.WithWorkingDirectory(dir), cli.WithEnvFiles(), cli.WithDotEnv, cli.WithDefaultProfiles())
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(t.Context())
	if err != nil {
		t.Fatalf("docker compose would refuse docker-compose.yml: %v", err)
	}
	return p
}

func service(t testing.TB, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("no service %s; services: %v", name, p.ServiceNames())
	}
	return s
}

func envOf(s types.ServiceConfig, name string) string {
	if v := s.Environment[name]; v != nil {
		return *v
	}
	return ""
}

// upstreams is Caddy's upstream list as docker-compose.yml hands it to the caddy service.
func upstreams(t testing.TB, p *types.Project) []string {
	t.Helper()
	return strings.Fields(envOf(service(t, p, "caddy"), "DIFYBOT_UPSTREAMS"))
}

func TestComposeDefault(t *testing.T) {
	p := loadCompose(t)
	if got := p.ServiceNames(); !slices.Equal(got, []string{"caddy", "difybot"}) {
		t.Fatalf("services without a profile: %v, want caddy and difybot", got)
	}
	checkCommon(t, p)

	bot := service(t, p, "difybot")
	if len(bot.Ports) > 0 {
		t.Errorf("difybot publishes %v on the host: only Caddy may be reachable from outside", bot.Ports)
	}
	if !slices.Contains(bot.Expose, "8080") {
		t.Errorf("difybot exposes %v, want 8080", bot.Expose)
	}
	if envOf(bot, "HTTP_ADDR") != ":8080" || envOf(bot, "DATA_DIR") != "/data" {
		t.Errorf("difybot HTTP_ADDR=%q DATA_DIR=%q; docker-compose.yml must pin :8080 and /data", envOf(bot, "HTTP_ADDR"), envOf(bot, "DATA_DIR"))
	}
	if u := envOf(bot, "DATABASE_URL"); u != "" {
		t.Errorf("without the postgres profile DATABASE_URL=%q, want empty (SQLite in /data)", u)
	}
	if v := volumeAt(bot, "/data"); v == nil || v.Type != types.VolumeTypeVolume || v.Source != "difybot-data" {
		t.Errorf("difybot /data is %+v, want the named volume difybot-data", v)
	}
	if len(bot.EnvFiles) != 1 || filepath.Base(bot.EnvFiles[0].Path) != ".env" {
		t.Errorf("difybot env_file %v, want .env", bot.EnvFiles)
	}
	if bot.Build == nil || bot.Build.Context != p.WorkingDir || bot.Build.Dockerfile != "Dockerfile" {
		t.Errorf("difybot build %+v, want the repository's Dockerfile", bot.Build)
	}
	// difybot gives in-flight runs 25 s after SIGTERM (cmd/difybot shutdownGrace); Docker must wait longer.
	if bot.StopGracePeriod == nil || time.Duration(*bot.StopGracePeriod) <= 25*time.Second {
		t.Errorf("difybot stop_grace_period %v, want more than 25s", bot.StopGracePeriod)
	}
	if !slices.Contains(bot.HealthCheck.Test, "http://127.0.0.1:8080/healthz") {
		t.Errorf("difybot health check %v does not ask /healthz on 8080", bot.HealthCheck.Test)
	}

	caddy := service(t, p, "caddy")
	if !strings.HasPrefix(caddy.Image, "caddy:2") {
		t.Errorf("caddy image %q, want caddy:2", caddy.Image)
	}
	published := map[string]bool{}
	for _, port := range caddy.Ports {
		published[port.Published+"->"+strconv.FormatUint(uint64(port.Target), 10)+"/"+port.Protocol] = true
	}
	for _, want := range []string{"80->80/tcp", "443->443/tcp"} {
		if !published[want] {
			t.Errorf("caddy publishes %v; want %s", slices.Collect(maps.Keys(published)), want)
		}
	}
	// The official image reads /etc/caddy/Caddyfile: mounted anywhere else, Caddy serves its welcome page.
	if v := volumeAt(caddy, "/etc/caddy/Caddyfile"); v == nil || v.Type != types.VolumeTypeBind ||
		v.Source != filepath.Join(p.WorkingDir, "Caddyfile") || !v.ReadOnly {
		t.Errorf("the Caddyfile mount is %+v, want ./Caddyfile read-only at /etc/caddy/Caddyfile", v)
	}
	for _, dir := range []string{"/data", "/config"} {
		if v := volumeAt(caddy, dir); v == nil || v.Type != types.VolumeTypeVolume {
			t.Errorf("caddy %s is %+v, want a named volume (certificates must survive a restart)", dir, v)
		}
	}
	if d, ok := caddy.DependsOn["difybot"]; !ok || d.Condition != types.ServiceConditionHealthy {
		t.Errorf("caddy depends_on %+v, want difybot service_healthy", caddy.DependsOn)
	}
	if got := upstreams(t, p); !slices.Equal(got, []string{"difybot:8080"}) {
		t.Errorf("DIFYBOT_UPSTREAMS=%v, want difybot:8080", got)
	}
	if d := envOf(caddy, "DIFYBOT_DOMAIN"); d != "localhost" {
		t.Errorf("DIFYBOT_DOMAIN defaults to %q, want localhost", d)
	}
	if d := envOf(service(t, loadCompose(t, "DIFYBOT_DOMAIN=bot.example.com"), "caddy"), "DIFYBOT_DOMAIN"); d != "bot.example.com" {
		t.Errorf("DIFYBOT_DOMAIN from .env reaches Caddy as %q", d)
	}
}

func TestComposePostgresProfile(t *testing.T) {
	p := loadCompose(t, "COMPOSE_PROFILES=postgres", "POSTGRES_PASSWORD=s3cret")
	if got := p.ServiceNames(); !slices.Equal(got, []string{"caddy", "difybot", "difybot-2", "postgres"}) {
		t.Fatalf("services with the postgres profile: %v", got)
	}
	checkCommon(t, p)

	pg := service(t, p, "postgres")
	if !strings.HasPrefix(pg.Image, "postgres:16") || len(pg.Ports) > 0 {
		t.Errorf("postgres: image %q, ports %v; want postgres:16 and no published port", pg.Image, pg.Ports)
	}
	if v := volumeAt(pg, "/var/lib/postgresql/data"); v == nil || v.Type != types.VolumeTypeVolume {
		t.Errorf("postgres data is %+v, want a named volume", v)
	}
	want := &url.URL{Scheme: "postgres", User: url.UserPassword(envOf(pg, "POSTGRES_USER"), envOf(pg, "POSTGRES_PASSWORD")),
		Host: net.JoinHostPort("postgres", "5432"), Path: "/" + envOf(pg, "POSTGRES_DB"), RawQuery: "sslmode=disable"}
	if envOf(pg, "POSTGRES_PASSWORD") != "s3cret" {
		t.Errorf("POSTGRES_PASSWORD=%q, want the one from .env", envOf(pg, "POSTGRES_PASSWORD"))
	}
	sources := map[string]string{}
	for _, name := range []string{"difybot", "difybot-2"} {
		s := service(t, p, name)
		// Both replicas share PostgreSQL, the only store several processes may share; neither may fall back
		// to a SQLite file of its own (messages would split between two queues).
		if got := envOf(s, "DATABASE_URL"); got != want.String() {
			t.Errorf("%s DATABASE_URL=%q, want %q (the postgres service)", name, got, want)
		}
		if d, ok := s.DependsOn["postgres"]; !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("%s depends_on %+v, want postgres service_healthy", name, s.DependsOn)
		}
		if len(s.Ports) > 0 || envOf(s, "HTTP_ADDR") != ":8080" || !slices.Contains(s.Expose, "8080") {
			t.Errorf("%s: ports %v HTTP_ADDR %q expose %v; want no published port, :8080, 8080", name, s.Ports, envOf(s, "HTTP_ADDR"), s.Expose)
		}
		v := volumeAt(s, "/data")
		if v == nil {
			t.Fatalf("%s has no /data volume", name)
		}
		if other, dup := sources[v.Source]; dup {
			t.Errorf("%s and %s share the volume %s: never two replicas on one data directory", name, other, v.Source)
		}
		sources[v.Source] = name
	}
	// Caddy balances over both replicas.
	if got := upstreams(t, p); !slices.Equal(got, []string{"difybot:8080", "difybot-2:8080"}) {
		t.Errorf("DIFYBOT_UPSTREAMS=%v, want both replicas", got)
	}

	// An external PostgreSQL in DATABASE_URL wins for both replicas.
	ext := loadCompose(t, "COMPOSE_PROFILES=postgres", "POSTGRES_PASSWORD=s3cret", "DATABASE_URL=postgres://bot:pw@db.internal:5432/bot")
	for _, name := range []string{"difybot", "difybot-2"} {
		if got := envOf(service(t, ext, name), "DATABASE_URL"); got != "postgres://bot:pw@db.internal:5432/bot" {
			t.Errorf("%s DATABASE_URL=%q with DATABASE_URL set in .env", name, got)
		}
	}
	// The profile without a password: PostgreSQL refuses to start (so difybot-2 never does), and difybot-2
	// still never opens SQLite.
	nopw := loadCompose(t, "COMPOSE_PROFILES=postgres")
	if got := envOf(service(t, nopw, "difybot-2"), "DATABASE_URL"); !strings.HasPrefix(got, "postgres://") {
		t.Errorf("difybot-2 DATABASE_URL=%q without POSTGRES_PASSWORD; it must never be empty", got)
	}
}

func TestComposeLocalProfile(t *testing.T) {
	p := loadCompose(t, "COMPOSE_PROFILES=local")
	if got := p.ServiceNames(); !slices.Equal(got, []string{"caddy", "difybot", "difysim"}) {
		t.Fatalf("services with the local profile: %v", got)
	}
	checkCommon(t, p)
	sim := service(t, p, "difysim")
	if sim.Build == nil || sim.Build.Context != p.WorkingDir || !slices.Equal(sim.Entrypoint, []string{"difysim"}) {
		t.Errorf("difysim: build %+v entrypoint %v; want the same image with entrypoint difysim", sim.Build, sim.Entrypoint)
	}
	// docs/operations.md tells operators DIFY_BASE_URL=http://difysim:5001/v1: the service name and its port.
	if i := slices.Index(sim.Command, "-addr"); i < 0 || i+1 >= len(sim.Command) || sim.Command[i+1] != ":5001" {
		t.Errorf("difysim command %v, want -addr :5001", sim.Command)
	}
	if !slices.Contains(sim.Expose, "5001") || len(sim.Ports) > 0 {
		t.Errorf("difysim expose %v ports %v; want 5001 on the compose network only", sim.Expose, sim.Ports)
	}
	if d, ok := service(t, p, "difybot").DependsOn["difysim"]; !ok || d.Condition != types.ServiceConditionHealthy {
		t.Errorf("difybot does not wait for difysim: %+v", service(t, p, "difybot").DependsOn)
	}
	guide := readRepoFile(t, "docs/operations.md")
	for _, want := range []string{"DIFY_BASE_URL=http://difysim:5001/v1", "DIFY_API_KEY=app-test"} {
		if !strings.Contains(guide, want) {
			t.Errorf("docs/operations.md does not say %s", want)
		}
	}
}

// checkCommon is what holds whatever the profile: one explicitly named network shared by every service, a
// health check and a restart policy on every service, and no service but Caddy on a host port.
func checkCommon(t testing.TB, p *types.Project) {
	t.Helper()
	if len(p.Networks) != 1 {
		t.Errorf("networks %v, want exactly one: a second network is how Caddy loses the bot", slices.Collect(maps.Keys(p.Networks)))
	}
	for key, n := range p.Networks {
		if n.Name != "difybot" || key != "difybot" {
			t.Errorf("network %s is named %q, want difybot (docs/operations.md uses that name)", key, n.Name)
		}
	}
	for name, s := range p.Services {
		if !slices.Equal(slices.Collect(maps.Keys(s.Networks)), []string{"difybot"}) {
			t.Errorf("%s is on networks %v, want exactly difybot", name, slices.Collect(maps.Keys(s.Networks)))
		}
		if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) < 2 || s.HealthCheck.Test[0] == "NONE" {
			t.Errorf("%s has no health check", name)
		}
		if s.Restart != types.RestartPolicyUnlessStopped {
			t.Errorf("%s restart %q, want unless-stopped", name, s.Restart)
		}
		if len(s.Ports) > 0 && name != "caddy" {
			t.Errorf("%s publishes %v: only caddy may", name, s.Ports)
		}
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeVolume {
				if _, ok := p.Volumes[v.Source]; !ok {
					t.Errorf("%s uses the undeclared volume %s", name, v.Source)
				}
			}
		}
	}
	// Every upstream Caddy is given is a service on its network, listening where Caddy dials.
	for _, up := range upstreams(t, p) {
		host, port, err := net.SplitHostPort(up)
		if err != nil {
			t.Errorf("upstream %q: %v", up, err)
			continue
		}
		s, ok := p.Services[host]
		if !ok {
			t.Errorf("Caddy's upstream %s is not a service of this profile (%v): a 502 for every request", up, p.ServiceNames())
			continue
		}
		if _, addrPort, _ := net.SplitHostPort(envOf(s, "HTTP_ADDR")); addrPort != port || !slices.Contains(s.Expose, port) {
			t.Errorf("Caddy dials %s, but %s listens on HTTP_ADDR=%q and exposes %v", up, host, envOf(s, "HTTP_ADDR"), s.Expose)
		}
	}
}

func volumeAt(s types.ServiceConfig, target string) *types.ServiceVolumeConfig {
	for i := range s.Volumes {
		if s.Volumes[i].Target == target {
			return &s.Volumes[i]
		}
	}
	return nil
}

// PUBLIC_URL, where LINE fetches the answers' images, follows DIFYBOT_DOMAIN unless .env sets it.
func TestComposePublicURL(t *testing.T) {
	for _, tt := range []struct {
		dotenv []string
		want   string
	}{
		{nil, "https://localhost"},
		{[]string{"DIFYBOT_DOMAIN=bot.example.com"}, "https://bot.example.com"},
		{[]string{"DIFYBOT_DOMAIN=bot.example.com", "PUBLIC_URL=https://files.example.com"}, "https://files.example.com"},
	} {
		if got := envOf(service(t, loadCompose(t, tt.dotenv...), "difybot"), "PUBLIC_URL"); got != tt.want {
			t.Errorf("%v: PUBLIC_URL=%q, want %q", tt.dotenv, got, tt.want)
		}
	}
}
