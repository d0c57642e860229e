package config_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/config"
)

// env returns a getenv that reads from m.
func env(m map[string]string) func(string) string {
	return func(name string) string { return m[name] }
}

// errLines splits a joined error into its parts.
func errLines(err error) []string {
	if err == nil {
		return nil
	}
	var out []string
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, e.Error())
		}
		return out
	}
	return []string{err.Error()}
}

func TestLoadDefaults(t *testing.T) {
	got, err := config.Load(env(nil))
	if err != nil {
		t.Fatalf("Load(empty) error: %v", err)
	}
	want := config.Config{
		Dify: config.Dify{
			BaseURL:      "https://api.dify.ai/v1",
			AppMode:      "auto",
			ResponseMode: "streaming",
			ImageInput:   "auto",
			TextInput:    "auto",
			OutputKey:    "auto",
			Timeout:      10 * time.Minute,
		},
		Slack:           config.Slack{APIURL: "https://slack.com/api/", Streaming: "auto"},
		LINE:            config.LINE{APIURL: "https://api.line.me", DataAPIURL: "https://api-data.line.me"},
		HTTPAddr:        ":8080",
		DataDir:         "./data",
		PendingTTL:      10 * time.Minute,
		Workers:         64,
		MaxImageBytes:   26214400,
		MaxImagePixels:  40_000_000,
		ImageMaxSide:    2048,
		FetchTimeout:    60 * time.Second,
		ReplicaTimeout:  time.Minute,
		UserConcurrency: 2,
		UserRate:        30,
		// Issue 15: files from Dify's answers.
		MaxOutputFileBytes: 20 << 20,
		OutputFileTTL:      7 * 24 * time.Hour,
		HumanInputBy:       "requester",
		Breaker: config.Breaker{
			FailureRatio: 0.5,
			MinRequests:  5,
			OpenFor:      30 * time.Second,
			HoldMax:      15 * time.Minute,
		},
		Language: "en",
		Log:      config.Log{Level: "info", Format: "json"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load(empty) =\n%+v\nwant\n%+v", got, want)
	}
	if got.Slack.Enabled() || got.LINE.Enabled() {
		t.Errorf("Slack.Enabled() = %v, LINE.Enabled() = %v; want false, false", got.Slack.Enabled(), got.LINE.Enabled())
	}
	if p := got.SQLitePath(); p != "data/difybot.db" {
		t.Errorf("SQLitePath() = %q; want %q", p, "data/difybot.db")
	}
}

func TestLoadEmptyMeansDefault(t *testing.T) {
	// Compose passes unset variables through as empty or blank strings.
	got, err := config.Load(env(map[string]string{"DIFY_TIMEOUT": "", "WORKERS": "  ", "LOG_LEVEL": "\n"}))
	if err != nil {
		t.Fatalf("Load error: %v", err)
	}
	if got.Dify.Timeout != 10*time.Minute || got.Workers != 64 || got.Log.Level != "info" {
		t.Errorf("got Timeout=%v Workers=%d Level=%q; want defaults", got.Dify.Timeout, got.Workers, got.Log.Level)
	}
}

func TestLoadValid(t *testing.T) {
	tests := []struct {
		name, value string
		field       func(config.Config) any
		want        any
	}{
		{"DIFY_BASE_URL", "https://dify.example.com/v1", func(c config.Config) any { return c.Dify.BaseURL }, "https://dify.example.com/v1"},
		{"DIFY_BASE_URL", "http://localhost:5001/v1/", func(c config.Config) any { return c.Dify.BaseURL }, "http://localhost:5001/v1"},
		{"DIFY_BASE_URL", "https://example.com/dify/v1", func(c config.Config) any { return c.Dify.BaseURL }, "https://example.com/dify/v1"},
		{"DIFY_API_KEY", "app-abc123", func(c config.Config) any { return c.Dify.APIKey.Reveal() }, "app-abc123"},
		{"DIFY_API_KEY", " app-abc123\n", func(c config.Config) any { return c.Dify.APIKey.Reveal() }, "app-abc123"},
		{"DIFY_APP_MODE", "workflow", func(c config.Config) any { return c.Dify.AppMode }, "workflow"},
		{"DIFY_APP_MODE", "chat", func(c config.Config) any { return c.Dify.AppMode }, "chat"},
		{"DIFY_APP_MODE", "Chat", func(c config.Config) any { return c.Dify.AppMode }, "chat"},
		{"DIFY_APP_MODE", "auto", func(c config.Config) any { return c.Dify.AppMode }, "auto"},
		{"DIFY_RESPONSE_MODE", "blocking", func(c config.Config) any { return c.Dify.ResponseMode }, "blocking"},
		{"DIFY_RESPONSE_MODE", "streaming", func(c config.Config) any { return c.Dify.ResponseMode }, "streaming"},
		{"DIFY_IMAGE_INPUT", "photo_1", func(c config.Config) any { return c.Dify.ImageInput }, "photo_1"},
		{"DIFY_IMAGE_INPUT", "auto", func(c config.Config) any { return c.Dify.ImageInput }, "auto"},
		{"DIFY_TEXT_INPUT", "_query", func(c config.Config) any { return c.Dify.TextInput }, "_query"},
		{"DIFY_OUTPUT_KEY", "summary", func(c config.Config) any { return c.Dify.OutputKey }, "summary"},
		{"DIFY_OUTPUT_KEY", "summary, details,chart", func(c config.Config) any { return c.Dify.OutputKey }, "summary,details,chart"},
		{"DIFY_FILES_URL", "https://files.example.com/", func(c config.Config) any { return c.Dify.FilesURL }, "https://files.example.com"},
		{"PUBLIC_URL", "https://bot.example.com/", func(c config.Config) any { return c.PublicURL }, "https://bot.example.com"},
		{"MAX_OUTPUT_FILE_BYTES", "5MiB", func(c config.Config) any { return c.MaxOutputFileBytes }, int64(5 << 20)},
		{"OUTPUT_FILE_TTL", "7d", func(c config.Config) any { return c.OutputFileTTL }, 7 * 24 * time.Hour},
		{"OUTPUT_FILE_TTL", "1d12h", func(c config.Config) any { return c.OutputFileTTL }, 36 * time.Hour},
		{"OUTPUT_FILE_TTL", "48h", func(c config.Config) any { return c.OutputFileTTL }, 48 * time.Hour},
		{"DIFY_TIMEOUT", "90s", func(c config.Config) any { return c.Dify.Timeout }, 90 * time.Second},
		{"DIFY_TIMEOUT", "1h30m", func(c config.Config) any { return c.Dify.Timeout }, 90 * time.Minute},
		{"IMAGE_PROMPT", " Describe the damage. ", func(c config.Config) any { return c.Dify.ImagePrompt }, "Describe the damage."},
		{"PENDING_TTL", "30m", func(c config.Config) any { return c.PendingTTL }, 30 * time.Minute},
		{"DIFY_INPUTS", `{"language":"ja","detail":"high","n":3}`, func(c config.Config) any { return c.Dify.Inputs },
			map[string]any{"language": "ja", "detail": "high", "n": 3.0}},
		{"SLACK_API_URL", "http://127.0.0.1:9999/api", func(c config.Config) any { return c.Slack.APIURL }, "http://127.0.0.1:9999/api/"},
		{"SLACK_API_URL", "http://127.0.0.1:9999/api/", func(c config.Config) any { return c.Slack.APIURL }, "http://127.0.0.1:9999/api/"},
		{"LINE_API_URL", "http://127.0.0.1:9998/", func(c config.Config) any { return c.LINE.APIURL }, "http://127.0.0.1:9998"},
		{"LINE_DATA_API_URL", "http://127.0.0.1:9997", func(c config.Config) any { return c.LINE.DataAPIURL }, "http://127.0.0.1:9997"},
		{"HTTP_ADDR", "127.0.0.1:9000", func(c config.Config) any { return c.HTTPAddr }, "127.0.0.1:9000"},
		{"HTTP_ADDR", ":0", func(c config.Config) any { return c.HTTPAddr }, ":0"},
		{"HTTP_ADDR", "[::1]:8080", func(c config.Config) any { return c.HTTPAddr }, "[::1]:8080"},
		{"ADMIN_TOKEN", "0123456789abcdef", func(c config.Config) any { return c.AdminToken.Reveal() }, "0123456789abcdef"},
		{"DATABASE_URL", "postgres://u:p@db:5432/difybot", func(c config.Config) any { return c.DatabaseURL.Reveal() }, "postgres://u:p@db:5432/difybot"},
		{"DATABASE_URL", "postgresql:///difybot?host=/run/postgresql", func(c config.Config) any { return c.SQLitePath() }, ""},
		{"DATA_DIR", "/var/lib/difybot", func(c config.Config) any { return c.SQLitePath() }, "/var/lib/difybot/difybot.db"},
		{"WORKERS", "32", func(c config.Config) any { return c.Workers }, 32},
		{"MAX_IMAGE_BYTES", "5000000", func(c config.Config) any { return c.MaxImageBytes }, int64(5000000)},
		{"MAX_IMAGE_BYTES", "10MiB", func(c config.Config) any { return c.MaxImageBytes }, int64(10 << 20)},
		{"MAX_IMAGE_BYTES", "10MB", func(c config.Config) any { return c.MaxImageBytes }, int64(10_000_000)},
		{"MAX_IMAGE_BYTES", "512 kib", func(c config.Config) any { return c.MaxImageBytes }, int64(512 << 10)},
		{"MAX_IMAGE_PIXELS", "12000000", func(c config.Config) any { return c.MaxImagePixels }, int64(12_000_000)},
		{"IMAGE_MAX_SIDE", "1568", func(c config.Config) any { return c.ImageMaxSide }, 1568},
		{"IMAGE_MAX_SIDE", "0", func(c config.Config) any { return c.ImageMaxSide }, 0},
		{"FETCH_TIMEOUT", "2m", func(c config.Config) any { return c.FetchTimeout }, 2 * time.Minute},
		{"FETCH_TIMEOUT", "500ms", func(c config.Config) any { return c.FetchTimeout }, 500 * time.Millisecond},
		{"REPLICA_TIMEOUT", "5s", func(c config.Config) any { return c.ReplicaTimeout }, 5 * time.Second},
		{"USER_CONCURRENCY", "0", func(c config.Config) any { return c.UserConcurrency }, 0},
		{"USER_CONCURRENCY", "5", func(c config.Config) any { return c.UserConcurrency }, 5},
		{"USER_RATE", "0", func(c config.Config) any { return c.UserRate }, 0},
		{"USER_RATE", "45", func(c config.Config) any { return c.UserRate }, 45},
		{"USER_RATE", "10/min", func(c config.Config) any { return c.UserRate }, 10},
		{"USER_RATE", "2/s", func(c config.Config) any { return c.UserRate }, 120},
		{"USER_RATE", "600/h", func(c config.Config) any { return c.UserRate }, 10},
		{"HUMAN_INPUT_BY", "anyone", func(c config.Config) any { return c.HumanInputBy }, "anyone"},
		{"BREAKER_FAILURE_RATIO", "1", func(c config.Config) any { return c.Breaker.FailureRatio }, 1.0},
		{"BREAKER_FAILURE_RATIO", "0.25", func(c config.Config) any { return c.Breaker.FailureRatio }, 0.25},
		{"BREAKER_MIN_REQUESTS", "20", func(c config.Config) any { return c.Breaker.MinRequests }, uint32(20)},
		{"BREAKER_OPEN_FOR", "1m", func(c config.Config) any { return c.Breaker.OpenFor }, time.Minute},
		{"BREAKER_HOLD_MAX", "2h", func(c config.Config) any { return c.Breaker.HoldMax }, 2 * time.Hour},
		{"BOT_LANGUAGE", "ja", func(c config.Config) any { return c.Language }, "ja"},
		{"LOG_LEVEL", "debug", func(c config.Config) any { return c.Log.Level }, "debug"},
		{"LOG_LEVEL", "WARN", func(c config.Config) any { return c.Log.Level }, "warn"},
		{"LOG_LEVEL", "error", func(c config.Config) any { return c.Log.Level }, "error"},
		{"LOG_FORMAT", "console", func(c config.Config) any { return c.Log.Format }, "console"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			c, err := config.Load(env(map[string]string{tt.name: tt.value}))
			if err != nil {
				t.Fatalf("Load error: %v", err)
			}
			if got := tt.field(c); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v; want %#v", got, tt.want)
			}
		})
	}
}

func TestLoadInvalid(t *testing.T) {
	tests := []struct {
		name, value string
		want        string // A part of the one error expected.
	}{
		{"DIFY_BASE_URL", "dify.example.com/v1", "must be an http:// or https:// URL"},
		{"DIFY_BASE_URL", "ftp://dify.example.com/v1", "must be an http:// or https:// URL"},
		{"DIFY_BASE_URL", "https:///v1", "with a host"},
		{"DIFY_BASE_URL", "https://dify.example.com/console/api", `must end with /v1 (got "https://dify.example.com/console/api")`},
		{"DIFY_BASE_URL", "https://dify.example.com/v1/workflows/run", "not an endpoint"},
		{"DIFY_BASE_URL", "https://dify.example.com/v1?x=1", "query"},
		{"DIFY_API_KEY", "dataset-abc", "Knowledge"},
		{"DIFY_API_KEY", "Bearer app-abc", `remove the "Bearer " prefix`},
		{"DIFY_API_KEY", "sk-abc", "should start with app-; find it in Dify → the app → API Access → API Key"},
		{"DIFY_APP_MODE", "chatflow", `must be one of auto, workflow, chat (got "chatflow"); chatflow, agent and chat apps all use chat`},
		{"DIFY_APP_MODE", "completion", "not supported"},
		{"DIFY_RESPONSE_MODE", "stream", `must be one of streaming, blocking (got "stream")`},
		{"DIFY_IMAGE_INPUT", "{{#start.image#}}", "bare variable name"},
		{"DIFY_TEXT_INPUT", "my query", "Dify variable name"},
		{"DIFY_OUTPUT_KEY", "1st", "Dify variable names"},
		{"DIFY_OUTPUT_KEY", "a,,b", "Dify variable names"},
		{"OUTPUT_FILE_TTL", "7days", "positive duration"},
		{"OUTPUT_FILE_TTL", "0d", "positive duration"},
		{"PUBLIC_URL", "bot.example.com", "http:// or https://"},
		{"DIFY_FILES_URL", "files.example.com", "http:// or https://"},
		{"DIFY_TIMEOUT", "600", `(got "600"); add a unit, e.g. 600s`},
		{"DIFY_TIMEOUT", "-1m", "positive duration"},
		{"DIFY_TIMEOUT", "0s", "positive duration"},
		{"DIFY_TIMEOUT", "ten minutes", "positive duration"},
		{"PENDING_TTL", "0s", "positive duration"},
		{"FETCH_TIMEOUT", "60", `(got "60"); add a unit, e.g. 60s`},
		{"FETCH_TIMEOUT", "0s", "positive duration"},
		{"REPLICA_TIMEOUT", "1s", "at least 3s"},
		{"USER_CONCURRENCY", "-1", "whole number from 0 to"},
		{"USER_CONCURRENCY", "two", "whole number from 0 to"},
		{"USER_RATE", "30/day", "rate such as 30/min"},
		{"USER_RATE", "fast", "rate such as 30/min"},
		{"USER_RATE", "90/h", "multiple of 60"},
		{"DIFY_INPUTS", `["ja"]`, "is not a JSON object"},
		{"DIFY_INPUTS", `{"language":`, "is not a JSON object"},
		{"SLACK_API_URL", "slack.com/api", "http:// or https://"},
		{"LINE_API_URL", "api.line.me", "http:// or https://"},
		{"LINE_DATA_API_URL", "https://", "with a host"},
		{"HTTP_ADDR", "8080", `(got "8080"); did you mean ":8080"?`},
		{"HTTP_ADDR", "localhost", "host:port"},
		{"ADMIN_TOKEN", "admin", "shorter than 16 characters"},
		{"WEB_CHAT", "yes", `must be one of off, on (got "yes")`},
		{"WEB_CHAT", "on", "needs ADMIN_TOKEN"},
		{"DATABASE_URL", "mysql://u:p@db/x", "must be a postgres:// or postgresql:// URL"},
		{"DATABASE_URL", "host=db user=u", "must be a postgres:// or postgresql:// URL"},
		{"WORKERS", "0", "whole number from 1"},
		{"WORKERS", "-3", "whole number from 1"},
		{"WORKERS", "eight", "whole number from 1"},
		{"WORKERS", "99999999999", "whole number from 1"},
		{"MAX_IMAGE_BYTES", "0", "positive number of bytes"},
		{"MAX_IMAGE_BYTES", "10 megs", "positive number of bytes"},
		{"MAX_IMAGE_BYTES", "1.5MB", "positive number of bytes"},
		{"MAX_IMAGE_BYTES", "99999999999GiB", "positive number of bytes"},
		{"MAX_IMAGE_PIXELS", "0", "whole number from 1"},
		{"MAX_IMAGE_PIXELS", "40MP", "whole number from 1"},
		{"IMAGE_MAX_SIDE", "-1", "whole number from 0"},
		{"IMAGE_MAX_SIDE", "big", "whole number from 0"},
		{"BREAKER_FAILURE_RATIO", "0", "greater than 0 and at most 1"},
		{"BREAKER_FAILURE_RATIO", "1.5", "greater than 0 and at most 1"},
		{"BREAKER_FAILURE_RATIO", "50", "did you mean 0.5?"},
		{"BREAKER_FAILURE_RATIO", "NaN", "greater than 0 and at most 1"},
		{"BREAKER_MIN_REQUESTS", "0", "whole number from 1 to 4294967295"},
		{"BREAKER_MIN_REQUESTS", "4294967296", "whole number from 1 to 4294967295"},
		{"BREAKER_OPEN_FOR", "30", "add a unit"},
		{"BREAKER_HOLD_MAX", "forever", "positive duration"},
		{"BOT_LANGUAGE", "fr", `must be one of en, ja (got "fr")`},
		{"HUMAN_INPUT_BY", "admins", `must be one of requester, anyone (got "admins")`},
		{"LOG_LEVEL", "warning", "must be one of debug, info, warn, error"},
		{"LOG_FORMAT", "text", "must be one of json, console"},
	}
	defaults, err := config.Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			c, err := config.Load(env(map[string]string{tt.name: tt.value}))
			lines := errLines(err)
			if len(lines) != 1 {
				t.Fatalf("Load gave %d errors; want 1:\n%v", len(lines), err)
			}
			if !strings.HasPrefix(lines[0], tt.name+": ") {
				t.Errorf("error %q does not start with %q", lines[0], tt.name+": ")
			}
			if !strings.Contains(lines[0], tt.want) {
				t.Errorf("error %q does not contain %q", lines[0], tt.want)
			}
			// A bad non-secret value falls back to the default, so doctor
			// can carry on with the rest.
			c.Dify.APIKey, c.AdminToken, c.DatabaseURL = "", "", ""
			if !reflect.DeepEqual(c, defaults) {
				t.Errorf("Load with a bad value =\n%+v\nwant defaults\n%+v", c, defaults)
			}
		})
	}
}

func TestLoadQuoted(t *testing.T) {
	// The quotes are an error, but the value inside is what was meant, so
	// doctor goes on with it.
	c, err := config.Load(env(map[string]string{"DIFY_BASE_URL": `"https://dify.example.com/v1"`}))
	const want = `DIFY_BASE_URL: is wrapped in quotes (got "\"https://dify.example.com/v1\""); remove them`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error = %v; want %s…", err, want)
	}
	if c.Dify.BaseURL != "https://dify.example.com/v1" {
		t.Errorf("BaseURL = %q; want the value inside the quotes", c.Dify.BaseURL)
	}
}

func TestLoadDifyBaseURLWithoutV1(t *testing.T) {
	for _, v := range []string{"https://dify.example.com", "https://dify.example.com/"} {
		_, err := config.Load(env(map[string]string{"DIFY_BASE_URL": v}))
		const want = `DIFY_BASE_URL: must end with /v1 (got "https://dify.example.com"); Dify's service API lives under /v1: did you mean "https://dify.example.com/v1"?`
		if err == nil || err.Error() != want {
			t.Errorf("DIFY_BASE_URL=%q: error = %v; want %s", v, err, want)
		}
	}
}

func TestLoadReportsAllErrorsAtOnce(t *testing.T) {
	bad := map[string]string{
		"DIFY_BASE_URL":         "https://dify.example.com",
		"DIFY_API_KEY":          "dataset-xyz",
		"DIFY_APP_MODE":         "agent",
		"DIFY_TIMEOUT":          "10",
		"SLACK_BOT_TOKEN":       "xoxp-user",
		"HTTP_ADDR":             "80",
		"WORKERS":               "0",
		"MAX_IMAGE_BYTES":       "big",
		"BREAKER_FAILURE_RATIO": "2",
		"BREAKER_HOLD_MAX":      "soon",
		"BOT_LANGUAGE":          "de",
		"LOG_FORMAT":            "pretty",
	}
	e := map[string]string{"LINE_CHANNEL_TOKEN": "tok"}
	maps.Copy(e, bad)
	_, err := config.Load(env(e))
	if err == nil {
		t.Fatal("Load succeeded; want errors")
	}
	msg := err.Error()
	for name := range bad {
		if !strings.Contains(msg, name+": ") {
			t.Errorf("error does not mention %s:\n%s", name, msg)
		}
	}
	// Half pairs are reported under the missing name.
	for _, name := range []string{"SLACK_SIGNING_SECRET", "LINE_CHANNEL_SECRET"} {
		if !strings.Contains(msg, name+": required") {
			t.Errorf("error does not say %s is required:\n%s", name, msg)
		}
	}
	if n := len(errLines(err)); n != len(bad)+2 {
		t.Errorf("got %d errors; want %d:\n%s", n, len(bad)+2, msg)
	}
}

func TestLoadPlatformPairs(t *testing.T) {
	const (
		bot  = "xoxb-1-2-abc"
		sign = "8f742231b10e8888abcd99yyyzzz85a5"
		app  = "xapp-1-A1-2-abc"
		lsec = "0123456789abcdef0123456789abcdef"
		ltok = "dG9rZW4tdGhhdC1pcy1sb25nZXItdGhhbi1hLXNlY3JldC1hbmQtbm90LWhleA=="
	)
	tests := []struct {
		name        string
		env         map[string]string
		wantErr     string // The variable reported missing; "" for no error.
		slack, sock bool
		line        bool
	}{
		{"slack http", map[string]string{"SLACK_BOT_TOKEN": bot, "SLACK_SIGNING_SECRET": sign}, "", true, false, false},
		{"slack socket", map[string]string{"SLACK_BOT_TOKEN": bot, "SLACK_APP_TOKEN": app}, "", true, true, false},
		{"slack all three", map[string]string{"SLACK_BOT_TOKEN": bot, "SLACK_SIGNING_SECRET": sign, "SLACK_APP_TOKEN": app}, "", true, true, false},
		{"slack bot only", map[string]string{"SLACK_BOT_TOKEN": bot}, "SLACK_SIGNING_SECRET", false, false, false},
		{"slack signing only", map[string]string{"SLACK_SIGNING_SECRET": sign}, "SLACK_BOT_TOKEN", false, false, false},
		{"slack app only", map[string]string{"SLACK_APP_TOKEN": app}, "SLACK_BOT_TOKEN", false, false, false},
		{"line both", map[string]string{"LINE_CHANNEL_SECRET": lsec, "LINE_CHANNEL_TOKEN": ltok}, "", false, false, true},
		{"line secret only", map[string]string{"LINE_CHANNEL_SECRET": lsec}, "LINE_CHANNEL_TOKEN", false, false, false},
		{"line token only", map[string]string{"LINE_CHANNEL_TOKEN": ltok}, "LINE_CHANNEL_SECRET", false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Load(env(tt.env))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Load error: %v", err)
			case tt.wantErr != "":
				lines := errLines(err)
				if len(lines) != 1 || !strings.HasPrefix(lines[0], tt.wantErr+": required because ") {
					t.Fatalf("Load error = %v; want one %q required error", err, tt.wantErr)
				}
			}
			if c.Slack.Enabled() != tt.slack || c.Slack.SocketMode() != tt.sock || c.LINE.Enabled() != tt.line {
				t.Errorf("Slack.Enabled()=%v SocketMode()=%v LINE.Enabled()=%v; want %v %v %v",
					c.Slack.Enabled(), c.Slack.SocketMode(), c.LINE.Enabled(), tt.slack, tt.sock, tt.line)
			}
		})
	}
}

func TestLoadSecretChecks(t *testing.T) {
	tests := []struct {
		name, value, want string
	}{
		{"SLACK_BOT_TOKEN", "xapp-1-abc", "belongs in SLACK_APP_TOKEN"},
		{"SLACK_BOT_TOKEN", "xoxp-1-abc", "user token"},
		{"SLACK_BOT_TOKEN", "abc", "should start with xoxb-"},
		{"SLACK_APP_TOKEN", "xoxb-1-abc", "belongs in SLACK_BOT_TOKEN"},
		{"SLACK_APP_TOKEN", "abc", "should start with xapp-"},
		{"SLACK_SIGNING_SECRET", "xoxb-1-abc", "looks like a token"},
		{"LINE_CHANNEL_SECRET", strings.Repeat("t", 172), "looks like the channel access token"},
		{"LINE_CHANNEL_TOKEN", "0123456789abcdef0123456789ABCDEF", "looks like the channel secret"},
		{"DIFY_API_KEY", "'app-abc'", "wrapped in quotes"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			_, err := config.Load(env(map[string]string{tt.name: tt.value}))
			var found bool
			for _, line := range errLines(err) {
				if strings.HasPrefix(line, tt.name+": ") && strings.Contains(line, tt.want) {
					found = true
				}
			}
			if !found {
				t.Errorf("Load error = %v; want a %s error containing %q", err, tt.name, tt.want)
			}
		})
	}
}

// secretEnv sets every secret to a distinctive value, so a leak can be found
// by searching the output.
var secretEnv = map[string]string{
	"DIFY_API_KEY":         "app-LEAK1dify",
	"SLACK_BOT_TOKEN":      "xoxb-LEAK2slack",
	"SLACK_SIGNING_SECRET": "LEAK3signing",
	"SLACK_APP_TOKEN":      "xapp-LEAK4app",
	"LINE_CHANNEL_SECRET":  "LEAK5linesecret",
	"LINE_CHANNEL_TOKEN":   "LEAK6linetoken",
	"ADMIN_TOKEN":          "LEAK7admintoken-long-enough",
	"DATABASE_URL":         "postgres://user:LEAK8password@db:5432/difybot",
}

// badSecretEnv has the same secrets in forms that fail their checks.
var badSecretEnv = map[string]string{
	"DIFY_API_KEY":         "dataset-LEAK1dify",
	"SLACK_BOT_TOKEN":      "xoxp-LEAK2slack",
	"SLACK_SIGNING_SECRET": "xoxb-LEAK3signing",
	"SLACK_APP_TOKEN":      "LEAK4app",
	"LINE_CHANNEL_SECRET":  "LEAK5linesecret" + strings.Repeat("x", 80),
	"LINE_CHANNEL_TOKEN":   `"LEAK6linetoken"`,
	"ADMIN_TOKEN":          "LEAK7",
	"DATABASE_URL":         "mysql://user:LEAK8password@db:5432/difybot",
}

func assertNoLeak(t testing.TB, where, s string) {
	t.Helper()
	for i := 1; i <= 8; i++ {
		if mark := fmt.Sprintf("LEAK%d", i); strings.Contains(s, mark) {
			t.Errorf("%s reveals a secret (%s):\n%s", where, mark, s)
		}
	}
}

func TestSecretsNeverLeak(t *testing.T) {
	cfg, err := config.Load(env(secretEnv))
	if err != nil {
		t.Fatalf("Load error: %v", err)
	}
	if cfg.Slack.BotToken.Reveal() != secretEnv["SLACK_BOT_TOKEN"] {
		t.Fatal("Reveal does not return the value")
	}
	printed := fmt.Sprintf("%v %+v %#v %s %q", cfg, cfg, cfg, cfg.Dify.APIKey, cfg.Dify.APIKey)
	assertNoLeak(t, "fmt", printed)
	if !strings.Contains(printed, "[redacted]") {
		t.Errorf("fmt output does not say [redacted]:\n%s", printed)
	}
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	assertNoLeak(t, "json.Marshal", string(js))

	// Bad secrets must not show up in errors, neither alone nor as the
	// half of a pair.
	_, err = config.Load(env(badSecretEnv))
	if n := len(errLines(err)); n != len(badSecretEnv) {
		t.Errorf("got %d errors; want one per secret (%d):\n%v", n, len(badSecretEnv), err)
	}
	assertNoLeak(t, "Load error", fmt.Sprint(err))
	for name, v := range badSecretEnv {
		_, err := config.Load(env(map[string]string{name: v}))
		if err == nil {
			t.Errorf("%s=%q: no error", name, v)
		}
		assertNoLeak(t, name+" error", fmt.Sprint(err))
	}
	err = config.Config{}.RequireServe()
	assertNoLeak(t, "RequireServe", fmt.Sprint(err))
}

func TestSecretFormatting(t *testing.T) {
	s := config.Secret("hunter2-secret")
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10s", "%-12v|"} {
		got := fmt.Sprintf(format, s)
		if strings.Contains(got, "hunter2") || !strings.Contains(got, "[redacted]") {
			t.Errorf("Sprintf(%q, secret) = %q; want it redacted", format, got)
		}
	}
	if got := fmt.Sprintf("%q", s); got != `"[redacted]"` {
		t.Errorf("%%q = %s; want %q", got, "[redacted]")
	}
	if got := fmt.Sprintf("%-12v|", s); got != "[redacted]  |" {
		t.Errorf("%%-12v = %q; want padding kept", got)
	}
	if s.String() != "[redacted]" || s.GoString() != "[redacted]" {
		t.Errorf("String() = %q, GoString() = %q; want [redacted]", s.String(), s.GoString())
	}
	if js, _ := json.Marshal(struct{ S config.Secret }{s}); string(js) != `{"S":"[redacted]"}` {
		t.Errorf("json.Marshal = %s", js)
	}
	if txt, _ := s.MarshalText(); string(txt) != "[redacted]" {
		t.Errorf("MarshalText = %q", txt)
	}

	var empty config.Secret
	for _, format := range []string{"%v", "%s", "%#v"} {
		if got := fmt.Sprintf(format, empty); got != "" {
			t.Errorf("Sprintf(%q, empty secret) = %q; want \"\"", format, got)
		}
	}
	if js, _ := json.Marshal(empty); string(js) != `""` {
		t.Errorf("json.Marshal(empty secret) = %s; want \"\"", js)
	}
}

func TestRequireServe(t *testing.T) {
	c, err := config.Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	err = c.RequireServe()
	if err == nil || !strings.HasPrefix(err.Error(), "DIFY_API_KEY: required") ||
		!strings.Contains(err.Error(), "Dify → the app → API Access → API Key") {
		t.Errorf("RequireServe() = %v; want DIFY_API_KEY required, with where to find it", err)
	}
	c, err = config.Load(env(map[string]string{"DIFY_API_KEY": "app-x"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RequireServe(); err != nil {
		t.Errorf("RequireServe() with a key = %v; want nil", err)
	}
}

// readNames returns the names Load asks getenv for.
func readNames(t testing.TB) []string {
	t.Helper()
	var names []string
	_, _ = config.Load(func(name string) string {
		names = append(names, name)
		return ""
	})
	return names
}

func TestLoadReadsEachNameOnce(t *testing.T) {
	names := readNames(t)
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			t.Errorf("Load reads %s more than once", n)
		}
		seen[n] = true
	}
	// DESIGN's table, in its order, plus WEB_CHAT (issue 4: the web chat is off
	// in serve unless enabled); a change here is a change to the product's public face.
	design := []string{
		"DIFY_BASE_URL", "DIFY_API_KEY", "DIFY_APP_MODE", "DIFY_RESPONSE_MODE",
		"DIFY_IMAGE_INPUT", "DIFY_TEXT_INPUT", "DIFY_OUTPUT_KEY", "DIFY_TIMEOUT",
		"IMAGE_PROMPT", "DIFY_INPUTS", // Issue 12: requests over several messages, fixed inputs.
		"DIFY_FILES_URL", // Issue 15: relative file links in Dify's answers.
		"DIFY_APPS_FILE", // Issue 20: several apps behind one bot.
		"PENDING_TTL",
		"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "SLACK_API_URL",
		"SLACK_STREAMING", // Issue 18: answers streamed natively.
		"LINE_CHANNEL_SECRET", "LINE_CHANNEL_TOKEN", "LINE_API_URL", "LINE_DATA_API_URL",
		"HTTP_ADDR", "ADMIN_TOKEN", "WEB_CHAT", "DATABASE_URL", "DATA_DIR", "WORKERS", "MAX_IMAGE_BYTES",
		"MAX_IMAGE_PIXELS", "IMAGE_MAX_SIDE", // Issue 16: photos are shrunk to what the model sees.
		"FETCH_TIMEOUT",                                    // Issue 13: a stalled download is given up and answered.
		"REPLICA_TIMEOUT", "USER_CONCURRENCY", "USER_RATE", // Issue 13: takeover, and one person's fair share.
		"PUBLIC_URL", "MAX_OUTPUT_FILE_BYTES", "OUTPUT_FILE_TTL", // Issue 15: files from Dify's answers.
		"HUMAN_INPUT_BY", // Issue 19: a workflow that asks back.
		"BREAKER_FAILURE_RATIO", "BREAKER_MIN_REQUESTS", "BREAKER_OPEN_FOR", "BREAKER_HOLD_MAX",
		"BOT_LANGUAGE", "LOG_LEVEL", "LOG_FORMAT",
	}
	if !slices.Equal(names, design) {
		t.Errorf("Load reads\n%v\nwant DESIGN's names\n%v", names, design)
	}
}

// TestEnvExample keeps .env.example and Load in step: every name Load reads
// is documented there, and nothing there is something Load ignores.
func TestEnvExample(t *testing.T) {
	f, err := os.Open("../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	// Assignments, live or commented out ("#NAME=default"); prose comments
	// are "# …" and do not match.
	assign := regexp.MustCompile(`^#?([A-Z][A-Z0-9_]*)=`)
	var documented []string
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		m := assign.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		if slices.Contains(documented, m[1]) {
			t.Errorf(".env.example:%d: %s appears twice", line, m[1])
		}
		documented = append(documented, m[1])
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}

	read := readNames(t)
	for _, n := range read {
		if !slices.Contains(documented, n) {
			t.Errorf("Load reads %s but .env.example does not list it", n)
		}
	}
	// Read by docker-compose.yml and the Caddyfile, not by difybot (deploy/ tests their use).
	composeOnly := []string{"DIFYBOT_DOMAIN", "COMPOSE_PROFILES", "POSTGRES_PASSWORD", "DIFYSIM_SCENARIO"}
	for _, n := range documented {
		if !slices.Contains(read, n) && !slices.Contains(composeOnly, n) {
			t.Errorf(".env.example lists %s but Load does not read it", n)
		}
	}

	// With every line uncommented, .env.example must load, and the defaults
	// it shows must be the real ones.
	f.Seek(0, 0)
	all := map[string]string{}
	sc = bufio.NewScanner(f)
	for sc.Scan() {
		if assign.MatchString(sc.Text()) {
			name, value, _ := strings.Cut(strings.TrimPrefix(sc.Text(), "#"), "=")
			if !slices.Contains(composeOnly, name) {
				all[name] = value
			}
		}
	}
	got, err := config.Load(env(all))
	if err != nil {
		t.Fatalf(".env.example does not load: %v", err)
	}
	want, _ := config.Load(env(nil))
	if !reflect.DeepEqual(got, want) {
		t.Errorf(".env.example's defaults load as\n%+v\nwant\n%+v", got, want)
	}
}

func TestLoadErrorIsJoined(t *testing.T) {
	_, err := config.Load(env(map[string]string{"WORKERS": "0", "LOG_LEVEL": "loud"}))
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != 2 {
		t.Errorf("Load error = %v; want two joined errors", err)
	}
}

// TestGroupsListWhatLoadReads keeps --help's variable list in step with Load: the same names, in the same order.
func TestGroupsListWhatLoadReads(t *testing.T) {
	var listed []string
	for _, g := range config.Groups() {
		for _, v := range g.Vars {
			listed = append(listed, v.Name)
		}
	}
	if read := readNames(t); !slices.Equal(listed, read) {
		t.Errorf("Groups lists\n%v\nbut Load reads\n%v", listed, read)
	}
}
