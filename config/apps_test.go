package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/config"
)

func TestAppsFileExample(t *testing.T) {
	c, err := config.Load(env(map[string]string{"DIFY_APPS_FILE": "../deploy/apps.example.yaml",
		"RECEIPTS_DIFY_KEY": "app-r", "DAMAGE_DIFY_KEY": "app-d", "SHOP_DIFY_KEY": "app-s", "DIFY_TIMEOUT": "3m"}))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if err := c.RequireServe(); err != nil {
		t.Errorf("RequireServe with an apps file and no DIFY_API_KEY: %v", err)
	}
	apps := c.AppList()
	if len(apps) != 3 || c.Apps.Default != "receipts" || c.Apps.Direct != "receipts" {
		t.Fatalf("apps %+v, default %q, direct %q", apps, c.Apps.Default, c.Apps.Direct)
	}
	r, d, s := apps[0], apps[1], apps[2]
	if r.Name != "receipts" || r.Dify.APIKey.Reveal() != "app-r" || r.Dify.Inputs["currency"] != "EUR" ||
		r.Dify.ImagePrompt == "" || strings.Join(r.Keywords, ",") != "receipt,receipts" || r.SlackChannels[0] != "C0EXPENSES" {
		t.Errorf("receipts = %+v", r)
	}
	if d.Dify.AppMode != "workflow" || d.Dify.APIKey.Reveal() != "app-d" || d.Dify.Timeout != 3*time.Minute {
		t.Errorf("damage = %+v; want workflow mode, its key, DIFY_TIMEOUT", d)
	}
	if s.Name != "shop-photos" || s.Dify.BaseURL != "https://dify-shop.example.org/v1" || s.LINEChats[0] == "" || s.Dify.AppMode != "chat" {
		t.Errorf("shop-photos = %+v", s)
	}
}

func TestAppsFileWithoutIt(t *testing.T) {
	c, err := config.Load(env(map[string]string{"DIFY_API_KEY": "app-one", "DIFY_BASE_URL": "http://dify.local/v1"}))
	if err != nil {
		t.Fatal(err)
	}
	apps := c.AppList()
	if len(apps) != 1 || apps[0].Name != config.DefaultApp || apps[0].Dify.APIKey.Reveal() != "app-one" || apps[0].Dify.BaseURL != "http://dify.local/v1" {
		t.Errorf("AppList() = %+v; want the one app of the DIFY_ variables", apps)
	}
}

// Every problem of the file comes at once, each with its line, and a key in the file is never shown.
func TestAppsFileProblems(t *testing.T) {
	cases := []struct {
		file string
		env  map[string]string
		want []string
	}{
		{"testdata/apps_broken.yaml", nil, []string{
			"DIFY_APPS_FILE: line 1: default: names no app of the file",
			"DIFY_APPS_FILE: line 4: apps.receipts.base_url: must end with /v1",
			"DIFY_APPS_FILE: line 5: apps.receipts.api_key: an API key must not be written in the file",
			"DIFY_APPS_FILE: line 6: apps.receipts.app_mode: must be one of auto, workflow, chat",
			"DIFY_APPS_FILE: line 3: apps.receipts: api_key_env is missing",
			"DIFY_APPS_FILE: line 9: apps.damage.api_key_env: DAMAGE_KEY is not set",
			"DIFY_APPS_FILE: line 10: apps.damage.keywords: \"receipt\" is given to another app too (line 7)",
			"DIFY_APPS_FILE: line 11: apps.damage: unknown key \"slack_channel\"",
		}},
		{"testdata/apps_bad_yaml.yaml", nil, []string{"DIFY_APPS_FILE: testdata/apps_bad_yaml.yaml: line 3: found a tab character"}},
		{"testdata/missing.yaml", nil, []string{"DIFY_APPS_FILE: cannot be read"}},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			m := map[string]string{"DIFY_APPS_FILE": tc.file}
			for k, v := range tc.env {
				m[k] = v
			}
			_, err := config.Load(env(m))
			lines := errLines(err)
			for _, want := range tc.want {
				found := false
				for _, l := range lines {
					found = found || strings.HasPrefix(l, want)
				}
				if !found {
					t.Errorf("no problem starts %q; got:\n%s", want, strings.Join(lines, "\n"))
				}
			}
			if len(lines) != len(tc.want) {
				t.Errorf("%d problems, want %d:\n%s", len(lines), len(tc.want), strings.Join(lines, "\n"))
			}
			if strings.Contains(strings.Join(lines, "\n"), "app-literal-key-in-file") {
				t.Error("a problem shows the key written in the file")
			}
		})
	}
}
