package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/dify/difytest"
)

// TestFirstHour follows the README as a new user does, with real binaries: install difybot (go install, and the
// release-style go build), then in a directory that holds nothing but a .env, run doctor for the mistakes people
// make first and compare its whole output, line by line. Nothing may appear in the directory but the .env.
func TestFirstHour(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()

	// "go install github.com/difybot/difybot/cmd/difybot@latest", from this checkout instead of the proxy.
	if !bytes.Contains(readme, []byte("go install github.com/difybot/difybot/cmd/difybot@latest")) {
		t.Fatal("the README's install section lost its go install line")
	}
	install := exec.Command("go", "install", "./cmd/difybot")
	install.Dir, install.Env = root, append(os.Environ(), "GOBIN="+bin)
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("go install: %v\n%s", err, out)
	}
	difybot := filepath.Join(bin, "difybot")

	// The release-style build, exactly as the README writes it, but into the temporary directory. It compiles
	// everything again (CGO_ENABLED=0 and -trimpath), which the deploy tests' build shares in CI.
	if !testing.Short() {
		line := regexp.MustCompile(`(?m)^CGO_ENABLED=0 go build .*$`).Find(readme)
		if line == nil {
			t.Fatal("the README's install section lost its release-style go build line")
		}
		release := filepath.Join(bin, "difybot-release")
		cmd := strings.Replace(string(line), "-o difybot ", "-o "+release+" ", 1)
		build := exec.Command("sh", "-c", cmd)
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, out)
		}
		out, err := exec.Command(release, "version").Output()
		if err != nil || !regexp.MustCompile(`^difybot \S+ \(.*\) built with go1\.\d+`).Match(out) || strings.HasPrefix(string(out), "difybot (devel)") {
			t.Errorf("release build's version = %q, %v", out, err)
		}
	}

	sim := difytest.NewServer(difytest.Options{PingEvery: time.Second})
	defer sim.Close()
	root5001 := strings.TrimSuffix(sim.URL(), "/v1")
	// The lines several cases share.
	const (
		store       = "✅ store: data/difybot.db does not exist yet; serve creates it\n"
		noPlatforms = "❌ platforms: none configured: serve would start and never receive a message\n" +
			"   fix: Slack: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET or SLACK_APP_TOKEN to enable\n" +
			"   fix: LINE: set LINE_CHANNEL_SECRET and LINE_CHANNEL_TOKEN to enable\n"
		webOnly = "✅ web chat: on\n" +
			"➖ Slack: off (set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET or SLACK_APP_TOKEN to enable)\n" +
			"➖ LINE: off (set LINE_CHANNEL_SECRET and LINE_CHANNEL_TOKEN to enable)\n"
	)
	appOK := "✅ Dify app: \"Photo Describer\" answered at " + sim.URL() + ", mode workflow\n" +
		"✅ Dify inputs: start form: query (paragraph), photo (file)\n" +
		"✅ DIFY_IMAGE_INPUT: auto: \"photo\"\n" +
		"✅ DIFY_TEXT_INPUT: auto: \"query\"\n" +
		"✅ Dify run: difybot sends: workflow app; images → photo; text → query\n"
	tests := []struct {
		name    string
		dotenv  string
		environ []string // Set in the environment, over the .env.
		want    string   // doctor's whole standard output.
		stderr  string   // Part of its standard error.
		ok      bool
	}{
		{name: "the copied .env.example, untouched", dotenv: readFile(t, "../../.env.example"), want: `
❌ DIFY_API_KEY: required for serve
   fix: find it in Dify → the app → API Access → API Key (it starts with app-)
➖ Dify: not checked until DIFY_API_KEY is fixed
` + store + noPlatforms + `
2 problem(s) found.
`},
		{name: "the base URL without /v1", dotenv: "DIFY_BASE_URL=" + root5001 + "\nDIFY_API_KEY=app-test\n", want: `
❌ DIFY_BASE_URL: must end with /v1 (got "` + root5001 + `")
   fix: Dify's service API lives under /v1: did you mean "` + sim.URL() + `"?
➖ Dify: not checked until DIFY_BASE_URL is fixed
` + store + noPlatforms + `
2 problem(s) found.
`},
		{name: "host and port without a scheme", dotenv: "DIFY_BASE_URL=localhost:5001\nDIFY_API_KEY=app-test\nWEB_CHAT=on\nADMIN_TOKEN=0123456789abcdef0123\n", want: `
❌ DIFY_BASE_URL: must be an http:// or https:// URL with a host (got "localhost:5001")
   fix: did you mean "http://localhost:5001/v1"?
➖ Dify: not checked until DIFY_BASE_URL is fixed
` + store + webOnly + `
1 problem(s) found.
`},
		{name: "Slack with only its bot token", dotenv: "DIFY_BASE_URL=" + sim.URL() + "\nDIFY_API_KEY=app-test\nSLACK_BOT_TOKEN=xoxb-1-2-3\n", want: `
` + appOK + store + `❌ Slack: half configured: SLACK_SIGNING_SECRET: required because SLACK_BOT_TOKEN is set (or set SLACK_APP_TOKEN to use Socket Mode)
   fix: find it under Basic Information → App Credentials
➖ LINE: off (set LINE_CHANNEL_SECRET and LINE_CHANNEL_TOKEN to enable)

1 problem(s) found.
`},
		{name: "a wrong key in .env, the right one in the environment, a quoted value",
			dotenv:  "DIFY_BASE_URL=" + sim.URL() + "\nDIFY_API_KEY=app-stale-from-dotenv\nWEB_CHAT=on\nADMIN_TOKEN=\"0123456789abcdef0123\"\n",
			environ: []string{"DIFY_API_KEY=app-test"}, ok: true,
			stderr: ".env:4: ADMIN_TOKEN is wrapped in quotes; difybot and docker compose remove them, but docker run --env-file keeps them as part of the value",
			want: `
✅ configuration: every variable is valid
` + appOK + store + webOnly + `
All checks passed.
`},
		{name: "the key the app does not have", dotenv: "DIFY_BASE_URL=" + sim.URL() + "\nDIFY_API_KEY=app-stale-from-dotenv\nWEB_CHAT=on\nADMIN_TOKEN=0123456789abcdef0123\n", want: `
✅ configuration: every variable is valid
❌ Dify app: Dify answered 401 unauthorized "Access token is invalid" (GET /v1/info) (dify_auth_invalid)
   fix: In Dify, open the app → "API Access" → "API Key", create a key, set it as DIFY_API_KEY and restart difybot.
   fix: curl -sS -H "Authorization: Bearer $DIFY_API_KEY" "$DIFY_BASE_URL/info" must answer 200 with the app's name as JSON.
` + store + webOnly + `
1 problem(s) found.
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, ".env"), []byte(tt.dotenv), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(difybot, "doctor")
			// Only what the test sets: the machine's own DIFY_*, SLACK_* and so on must not count.
			cmd.Dir, cmd.Env = dir, append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}, tt.environ...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if (err == nil) != tt.ok {
				t.Errorf("doctor: %v, want ok=%v", err, tt.ok)
			}
			got, want := strings.Split(stdout.String(), "\n"), strings.Split(strings.TrimPrefix(tt.want, "\n"), "\n")
			for i := range max(len(got), len(want)) {
				g, w := at(got, i), at(want, i)
				if g != w {
					t.Errorf("line %d:\n got %q\nwant %q\nwhole output:\n%s", i+1, g, w, stdout.String())
					break
				}
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tt.stderr)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("doctor left %v in its directory", entries)
			}
		})
	}

	// --help, from the installed binary, points at .env.example and lists the variables.
	out, err := exec.Command(difybot, "serve", "--help").Output()
	if err != nil || !bytes.Contains(out, []byte(".env.example")) || !bytes.Contains(out, []byte("DIFY_API_KEY")) {
		t.Errorf("serve --help: %v\n%s", err, out)
	}
}

func at(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return "(no line)"
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
