package main

import (
	"bytes"
	"context"
	"errors"
	"net"
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
		ok       bool
	}{
		{name: "healthy", scenario: "ok", ok: true,
			want: []string{"✅ Dify app:", `✅ DIFY_IMAGE_INPUT: auto: "photo"`, `✅ DIFY_TEXT_INPUT: auto: "query"`, "✅ store:", "All checks passed."}},
		{name: "base URL without /v1", scenario: "ok", env: map[string]string{"DIFY_BASE_URL": "SIM_ROOT"},
			want: []string{"❌ DIFY_BASE_URL: must end with /v1"}},
		{name: "bad key", scenario: "auth_invalid",
			want: []string{"❌ Dify app:", "dify_auth_invalid", "fix:"}},
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
			vars := map[string]string{"DIFY_API_KEY": "app-test", "DATA_DIR": t.TempDir()}
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
		})
	}
}
