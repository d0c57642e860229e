package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/dify/difytest"
)

func TestDoctor(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "http://" + ln.Addr().String() + "/v1"
	ln.Close()

	tests := []struct {
		name     string
		scenario string
		shape    string
		env      map[string]string
		want     []string // Lines that must appear.
		lack     []string // Text that must not.
		ok       bool
	}{
		{name: "healthy", scenario: "ok", ok: true,
			want: []string{"✅ Dify app:", `✅ DIFY_IMAGE_INPUT: auto: "photo"`, `✅ DIFY_TEXT_INPUT: auto: "query"`, "✅ store:", "✅ web chat: on", "All checks passed."}},
		{name: "base URL without /v1", scenario: "ok", env: map[string]string{"DIFY_BASE_URL": "SIM_ROOT"},
			want: []string{"❌ DIFY_BASE_URL: must end with /v1", "➖ Dify: not checked until DIFY_BASE_URL is fixed", "1 problem(s) found."},
			lack: []string{"Dify app", "✅ configuration"}},
		{name: "host and port without a scheme", env: map[string]string{"DIFY_BASE_URL": "localhost:5001"},
			want: []string{`❌ DIFY_BASE_URL: must be an http:// or https:// URL with a host (got "localhost:5001")`, `fix: did you mean "http://localhost:5001/v1"?`, "1 problem(s) found."},
			lack: []string{"Dify app", "dify_unreachable"}},
		{name: "Slack with only the bot token", scenario: "ok", env: map[string]string{"SLACK_BOT_TOKEN": "xoxb-1-2-3", "WEB_CHAT": "", "ADMIN_TOKEN": ""},
			want: []string{"❌ Slack: half configured: SLACK_SIGNING_SECRET: required because SLACK_BOT_TOKEN is set", "➖ LINE: off", "1 problem(s) found."},
			lack: []string{"not configured", "❌ platforms", "❌ SLACK_SIGNING_SECRET"}},
		{name: "no platform", scenario: "ok", env: map[string]string{"WEB_CHAT": "", "ADMIN_TOKEN": ""},
			want: []string{"❌ platforms: none configured", "fix: Slack: set SLACK_BOT_TOKEN", "fix: LINE: set LINE_CHANNEL_SECRET", "1 problem(s) found."},
			lack: []string{"✅ Slack", "✅ LINE"}},
		{name: "bad key", scenario: "auth_invalid",
			want: []string{"❌ Dify app:", "dify_auth_invalid", "fix:"}, lack: []string{"fix: difybot doctor"}},
		{name: "chat key on a workflow setting", scenario: "chat_ok", env: map[string]string{"DIFY_APP_MODE": "workflow"},
			want: []string{"❌ DIFY_APP_MODE: set to workflow, but the key belongs to a advanced-chat app"}},
		{name: "unpublished workflow", scenario: "not_published",
			want: []string{"❌ Dify workflow:", "Publish"}},
		{name: "input the workflow does not have", scenario: "ok", env: map[string]string{"DIFY_IMAGE_INPUT": "picture"},
			want: []string{`❌ DIFY_IMAGE_INPUT: "picture" is not a variable of the workflow's Start node`}},
		{name: "text variable as image input", scenario: "ok", env: map[string]string{"DIFY_IMAGE_INPUT": "query"},
			want: []string{`❌ DIFY_IMAGE_INPUT: "query" is a paragraph variable that does not accept images`}},
		{name: "unreachable host", env: map[string]string{"DIFY_BASE_URL": closed},
			want: []string{"❌ Dify app:", "dify_unreachable", "connection refused"}},
		{name: "unknown DIFY_INPUTS variable", scenario: "ok", shape: "select_default", env: map[string]string{"DIFY_INPUTS": `{"colour":"red"}`},
			want: []string{`❌ DIFY_INPUTS: "colour" is not a variable of the start form`}},
		{name: "select value not among the options", scenario: "ok", shape: "select_default", env: map[string]string{"DIFY_INPUTS": `{"language":"French"}`},
			want: []string{`❌ DIFY_INPUTS: start variable "language" (select): "French" is not one of the options`, "fix: use one of the options: English, Japanese, German"}},
		{name: "required field without a value", scenario: "ok", shape: "required_select",
			want: []string{`❌ Dify inputs: the start form requires "language" (select) and difybot has no value for it`}},
		{name: "DIFY_INPUTS fills the required field", scenario: "ok", shape: "required_select", env: map[string]string{"DIFY_INPUTS": `{"language":"German"}`}, ok: true,
			want: []string{"All checks passed."}},
		{name: "blocking mode", scenario: "ok", env: map[string]string{"DIFY_RESPONSE_MODE": "blocking"},
			want: []string{"❌ DIFY_RESPONSE_MODE: blocking"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// The web chat is the platform, so the other cases fail only for what they are about.
			vars := map[string]string{"DIFY_API_KEY": "app-test", "DATA_DIR": t.TempDir(), "WEB_CHAT": "on", "ADMIN_TOKEN": "0123456789abcdef0123"}
			if tt.scenario != "" {
				sim := difytest.NewServer(difytest.Options{Scenario: tt.scenario, Shape: tt.shape, PingEvery: time.Second})
				defer sim.Close()
				vars["DIFY_BASE_URL"] = sim.URL()
				if tt.env["DIFY_BASE_URL"] == "SIM_ROOT" {
					tt.env["DIFY_BASE_URL"] = strings.TrimSuffix(sim.URL(), "/v1")
				}
			}
			for k, v := range tt.env {
				vars[k] = v
			}
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), []string{"doctor"}, env(vars), nil, &stdout, &stderr)
			out := stdout.String()
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, l := range tt.lack {
				if strings.Contains(out, l) {
					t.Errorf("output has %q:\n%s", l, out)
				}
			}
			var ex exitError
			switch {
			case tt.ok && err != nil:
				t.Errorf("doctor failed: %v\n%s", err, out)
			case !tt.ok && (!errors.As(err, &ex) || ex != 1):
				t.Errorf("doctor = %v, want exit status 1\n%s", err, out)
			}
			if strings.Contains(out, "app-test") {
				t.Error("doctor printed the API key")
			}
			if left, _ := os.ReadDir(vars["DATA_DIR"]); len(left) > 0 {
				t.Errorf("doctor created %s in DATA_DIR", left[0].Name())
			}
		})
	}
}
