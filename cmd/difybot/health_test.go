package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/config"
	"github.com/difybot/difybot/dify"
	"github.com/difybot/difybot/dify/difytest"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"
)

func newSystem(t testing.TB, vars map[string]string) *system {
	t.Helper()
	vars["DATA_DIR"] = t.TempDir()
	cfg, err := config.Load(env(vars))
	if err != nil {
		t.Fatal(err)
	}
	sys, err := build(context.Background(), cfg, zerolog.Nop(), platforms(), platformEnv{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Close() })
	return sys
}

// readyz asks sys's /readyz.
func readyz(t testing.TB, sys *system) (int, map[string]any) {
	t.Helper()
	mux, err := sys.routes()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	res, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body map[string]any
	json.NewDecoder(res.Body).Decode(&body)
	return res.StatusCode, body
}

func TestReadyzFollowsDify(t *testing.T) {
	sim := difytest.NewServer(difytest.Options{})
	// The web chat is a platform: the replica can receive messages.
	sys := newSystem(t, map[string]string{"DIFY_BASE_URL": sim.URL(), "DIFY_API_KEY": "app-test", "WEB_CHAT": "on", "ADMIN_TOKEN": "0123456789abcdef0123"})
	sys.infoFresh = 0 // Ask Dify on every probe, so the test sees the change at once.
	get := func() (int, map[string]any) { return readyz(t, sys) }
	if status, body := get(); status != 200 || body["ready"] != true {
		t.Fatalf("with Dify up: %d %v", status, body)
	}
	sim.Close()
	status, body := get()
	reasons, _ := json.Marshal(body["reasons"])
	if status != http.StatusServiceUnavailable || !strings.Contains(string(reasons), "dify_unreachable") {
		t.Errorf("with Dify down: %d %s", status, reasons)
	}
	if strings.Contains(string(reasons), "app-test") {
		t.Error("readyz shows the API key")
	}
}

// TestReadyzWithoutPlatform: a replica no message can reach is not ready, and says why.
func TestReadyzWithoutPlatform(t *testing.T) {
	sim := difytest.NewServer(difytest.Options{})
	defer sim.Close()
	sys := newSystem(t, map[string]string{"DIFY_BASE_URL": sim.URL(), "DIFY_API_KEY": "app-test"})
	status, body := readyz(t, sys)
	reasons, _ := json.Marshal(body["reasons"])
	if status != http.StatusServiceUnavailable || !strings.Contains(string(reasons), "no chat platform is configured") {
		t.Errorf("with no platform: %d %s", status, reasons)
	}
}

func TestMetricsParse(t *testing.T) {
	sim := difytest.NewServer(difytest.Options{})
	defer sim.Close()
	sys := newSystem(t, map[string]string{"DIFY_BASE_URL": sim.URL(), "DIFY_API_KEY": "app-test"})
	mux, err := sys.routes()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	res, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	for _, name := range []string{"difybot_runs_total", "difybot_diagnoses_total", "difybot_step_duration_seconds",
		"difybot_breaker_state", "difybot_queue_depth", "difybot_queue_oldest_age_seconds"} {
		if families[name] == nil {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

// TestBreakerOverrideReachesReplicas: a mode stored by any replica's admin API is applied here within 5 s.
func TestBreakerOverrideReachesReplicas(t *testing.T) {
	sim := difytest.NewServer(difytest.Options{})
	defer sim.Close()
	sys := newSystem(t, map[string]string{"DIFY_BASE_URL": sim.URL(), "DIFY_API_KEY": "app-test"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); sys.syncBreaker(ctx) }() // Ends at cancel.
	defer func() { cancel(); <-done }()

	if err := sys.store.SetBreakerSetting(ctx, bot.BreakerSetting{Mode: "open", Reason: "set by another replica", Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for sys.dify.Breaker().Mode() != dify.ModeOpen {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the stored override was not applied within 5 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
