package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
