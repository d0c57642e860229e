package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/dify"
	"github.com/difybot/difybot/dify/difytest"
)

// appsFile writes an apps file for two apps on two simulated Dify hosts and returns its path.
func appsFile(t testing.TB, receipts, damage string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "apps.yaml")
	body := "default: receipts\napps:\n" +
		"  receipts:\n    base_url: " + receipts + "\n    api_key_env: RECEIPTS_KEY\n    keywords: [receipt]\n    slack_channels: [C0EXPENSES]\n    line_chats: [Cexpenses]\n" +
		"  damage:\n    base_url: " + damage + "\n    api_key_env: DAMAGE_KEY\n    slack_channels: [C0FIELD]\n    line_chats: [Cfield]\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Doctor checks every app and names the one that fails; a broken file is reported line by line.
func TestDoctorApps(t *testing.T) {
	// Each simulated host takes only its own app's key, so a key sent to the other host fails too.
	good := difytest.NewServer(difytest.Options{Scenario: "ok", APIKey: "app-receipts", PingEvery: time.Second})
	defer good.Close()
	bad := difytest.NewServer(difytest.Options{Scenario: "auth_invalid", APIKey: "app-damage", PingEvery: time.Second})
	defer bad.Close()
	broken := filepath.Join(t.TempDir(), "broken.yaml")
	os.WriteFile(broken, []byte("apps:\n  receipts:\n    api_key: app-in-the-file\n    base_url: "+good.URL()+"\n  damage:\n    api_key_env: DAMAGE_KEY\n    base_url: "+good.URL()+"\n    app_mode: chatflow\n"), 0o600)

	tests := []struct {
		name string
		file string
		want []string
		lack []string
	}{
		{"one app fails", appsFile(t, good.URL(), bad.URL()),
			[]string{"✅ app receipts · Dify app:", "✅ app receipts · Dify run:", "❌ app damage · Dify app:", "dify_auth_invalid", "1 problem(s) found."},
			[]string{"❌ app receipts"}},
		{"broken file", broken,
			[]string{"❌ DIFY_APPS_FILE: line 3: apps.receipts.api_key: an API key must not be written in the file",
				"❌ DIFY_APPS_FILE: line 2: apps.receipts: api_key_env is missing",
				"❌ DIFY_APPS_FILE: line 8: apps.damage.app_mode: must be one of auto, workflow, chat",
				"➖ app receipts · Dify: not checked until its lines of", "➖ app damage · Dify: not checked", "3 problem(s) found."},
			[]string{"app-in-the-file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := map[string]string{"DIFY_APPS_FILE": tt.file, "RECEIPTS_KEY": "app-receipts", "DAMAGE_KEY": "app-damage",
				"DATA_DIR": t.TempDir(), "WEB_CHAT": "on", "ADMIN_TOKEN": "0123456789abcdef0123"}
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), []string{"doctor"}, env(vars), nil, &stdout, &stderr)
			out := stdout.String()
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, l := range append(tt.lack, "app-receipts", "app-damage") {
				if strings.Contains(out, l) {
					t.Errorf("output has %q:\n%s", l, out)
				}
			}
			var ex exitError
			if !errors.As(err, &ex) || ex != 1 {
				t.Errorf("doctor = %v, want exit status 1", err)
			}
		})
	}
}

// Two apps on two hosts: /readyz reports each host, and the ops override applies to one host or to all, on this
// replica at once and on the others through the store.
func TestHostsReadyAndOverride(t *testing.T) {
	receipts := difytest.NewServer(difytest.Options{APIKey: "app-receipts"})
	defer receipts.Close()
	damage := difytest.NewServer(difytest.Options{APIKey: "app-damage"})
	defer damage.Close()
	const token = "0123456789abcdef0123"
	sys := newSystem(t, map[string]string{"DIFY_APPS_FILE": appsFile(t, receipts.URL(), damage.URL()), "RECEIPTS_KEY": "app-receipts",
		"DAMAGE_KEY": "app-damage", "WEB_CHAT": "on", "ADMIN_TOKEN": token})
	sys.infoFresh = 0
	if len(sys.hosts) != 2 || sys.defaultApp().cfg.Name != "receipts" {
		t.Fatalf("hosts %d, default %q", len(sys.hosts), sys.defaultApp().cfg.Name)
	}
	receiptsHost, damageHost := sys.hosts[0], sys.hosts[1]

	if err := damage.SetScenario("gateway_502"); err != nil {
		t.Fatal(err)
	}
	status, body := readyz(t, sys)
	reasons, _ := json.Marshal(body["reasons"])
	if status != http.StatusServiceUnavailable || !strings.Contains(string(reasons), damageHost.Name+": Dify did not answer") || strings.Contains(string(reasons), receiptsHost.Name) {
		t.Errorf("readyz with the damage host down: %d %s", status, reasons)
	}
	if hosts, _ := body["hosts"].([]any); len(hosts) != 2 {
		t.Errorf("readyz hosts: %v", body["hosts"])
	}
	damage.SetScenario("ok")

	mux, err := sys.routes()
	if err != nil {
		t.Fatal(err)
	}
	put := func(body string) int {
		req := httptest.NewRequest(http.MethodPut, "/admin/breaker", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		return rec.Code
	}
	if code := put(`{"mode":"open","reason":"damage host upgrade","host":"` + damageHost.Name + `"}`); code != http.StatusOK {
		t.Fatalf("PUT for one host: %d", code)
	}
	if damageHost.Breaker.Mode() != dify.ModeOpen || receiptsHost.Breaker.Mode() != dify.ModeAuto {
		t.Errorf("after the override of one host: damage %s, receipts %s", damageHost.Breaker.Mode(), receiptsHost.Breaker.Mode())
	}
	if code := put(`{"mode":"open","reason":"x","host":"https://nowhere.example"}`); code != http.StatusBadRequest {
		t.Errorf("PUT for an unknown host: %d, want 400", code)
	}

	// Another replica follows the stored overrides: the host's own, then the one for all, which replaces it.
	damageHost.Breaker.SetMode(dify.ModeAuto, "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); sys.syncBreaker(ctx) }()
	defer func() { cancel(); <-done }()
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for start := time.Now(); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Since(start) > 5*time.Second {
				t.Fatal(what)
			}
		}
	}
	eventually("the host's stored override was not applied", func() bool {
		return damageHost.Breaker.Mode() == dify.ModeOpen && receiptsHost.Breaker.Mode() == dify.ModeAuto
	})
	if err := sys.store.SetBreakerSetting(ctx, bot.BreakerSetting{Mode: "closed", Reason: "all", Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	eventually("the override for all was not applied to every host", func() bool {
		return damageHost.Breaker.Mode() == dify.ModeClosed && receiptsHost.Breaker.Mode() == dify.ModeClosed
	})
}

// `difybot run -app NAME` runs that app of the file, with its own key at its own host; an unknown name is refused.
func TestRunApp(t *testing.T) {
	receipts := difytest.NewServer(difytest.Options{APIKey: "app-receipts"})
	defer receipts.Close()
	damage := difytest.NewServer(difytest.Options{APIKey: "app-damage"})
	defer damage.Close()
	vars := map[string]string{"DIFY_APPS_FILE": appsFile(t, receipts.URL(), damage.URL()), "RECEIPTS_KEY": "app-receipts", "DAMAGE_KEY": "app-damage"}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"run", "-app", "damage", "-text", "a dent", "-json"}, env(vars), nil, &stdout, &stderr); err != nil {
		t.Fatalf("run -app damage: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "You said: a dent.") || damage.Started() != 1 || receipts.Started() != 0 {
		t.Errorf("damage ran %d, receipts %d; output %s", damage.Started(), receipts.Started(), stdout.String())
	}
	stdout.Reset()
	stderr.Reset()
	err := run(context.Background(), []string{"run", "-app", "ghost", "-text", "x"}, env(vars), nil, &stdout, &stderr)
	var ex exitError
	if !errors.As(err, &ex) || ex != 2 || !strings.Contains(stderr.String(), "-app ghost: no such app (the apps are: receipts, damage)") {
		t.Errorf("run -app ghost: %v %q", err, stderr.String())
	}
}

// The demo serves two simulated apps: the web chat lists them, a message picked for "chat" (or sent as
// "/chat …") reaches the Chatbot, and one without goes to the default app.
func TestDemoTwoApps(t *testing.T) {
	base, token := startDemo(t)
	res, err := http.Get(base + "/api/apps")
	if err != nil {
		t.Fatal(err)
	}
	var apps struct{ Apps []string }
	json.NewDecoder(res.Body).Decode(&apps)
	res.Body.Close()
	if strings.Join(apps.Apps, ",") != "photos,chat" {
		t.Fatalf("/api/apps = %v; want photos, chat", apps.Apps)
	}
	runApp := func(id string) (app, status string) {
		req, _ := http.NewRequest(http.MethodGet, base+"/admin/runs/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var d struct {
			Run struct{ App, Status string }
		}
		json.NewDecoder(res.Body).Decode(&d)
		return d.Run.App, d.Run.Status
	}
	for _, tc := range []struct{ text, pick, want string }{{"hi", "chat", "chat"}, {"/chat hi", "", "chat"}, {"hi", "", "photos"}} {
		id := sendWebTo(t, base, tc.text, tc.pick)
		for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
			app, status := runApp(id)
			if status == "succeeded" {
				if app != tc.want {
					t.Errorf("%q picked %q ran at %q, want %q", tc.text, tc.pick, app, tc.want)
				}
				break
			}
			if time.Since(start) > 20*time.Second {
				t.Fatalf("%q picked %q: run %s is %s", tc.text, tc.pick, id, status)
			}
		}
	}
}
