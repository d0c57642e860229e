package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/dify/difytest"
)

// env is a getenv backed by a map.
func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func writePNG(t testing.TB, w, h int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "photo.png")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return p
}

// slowScenarios take seconds by design; the table covers them elsewhere.
var slowScenarios = map[string]bool{"slow": true}

// scenarioEnv is the configuration a scenario needs to show its failure: DIFY_APP_MODE=auto would
// (rightly) pick the route that works, so the wrong-app-type scenarios pin the wrong mode.
var scenarioEnv = map[string]map[string]string{
	"not_workflow_app": {"DIFY_APP_MODE": "workflow"},
	"not_chat_app":     {"DIFY_APP_MODE": "chat"},
}

// scenarioFiles are the files a succeeding scenario's answer has (file_expired's cannot be fetched: a note).
var scenarioFiles = map[string]int{"image_output": 1, "csv_output": 1, "file_list_output": 2, "chat_files": 1}

func TestRunJSONAgainstEveryScenario(t *testing.T) {
	img := writePNG(t, 32, 24)
	for _, sc := range difytest.Scenarios() {
		if slowScenarios[sc.Name] {
			continue
		}
		t.Run(sc.Name, func(t *testing.T) {
			t.Parallel()
			sim := difytest.NewServer(difytest.Options{Scenario: sc.Name, PingEvery: 5 * time.Millisecond})
			defer sim.Close()
			var stdout, stderr bytes.Buffer
			vars := map[string]string{"DIFY_BASE_URL": sim.URL(), "DIFY_API_KEY": "app-test"}
			for k, v := range scenarioEnv[sc.Name] {
				vars[k] = v
			}
			err := run(context.Background(), []string{"run", "-image", img, "-text", "what is this?", "-json"}, env(vars), nil, &stdout, &stderr)
			var res runResult
			if jerr := json.Unmarshal(stdout.Bytes(), &res); jerr != nil {
				t.Fatalf("stdout is not the JSON result: %v\n%s\nstderr:\n%s", jerr, stdout.String(), stderr.String())
			}
			var ex exitError
			if strings.HasPrefix(sc.Name, "human_input") {
				// The workflow asks back, which a one-shot run cannot answer: it ends waiting, with the question
				// (or, when the question cannot be shown, the diagnosis), and exit status 1.
				want := sc.Code != "" && res.Diagnosis != nil && string(res.Diagnosis.Code) == sc.Code || sc.Code == "" && strings.Contains(res.Reply, "Please choose")
				if !errors.As(err, &ex) || res.Status != "waiting" || !want {
					t.Errorf("err %v status %s reply %q diagnosis %+v", err, res.Status, res.Reply, res.Diagnosis)
				}
				return
			}
			if sc.Code == "" {
				if err != nil || res.Status != "succeeded" || !strings.Contains(res.Reply, "32×24") {
					t.Fatalf("err %v status %s reply %q", err, res.Status, res.Reply)
				}
				if n := sim.Started(); n != 1 {
					t.Errorf("%d workflow runs started, want 1", n)
				}
				if want := scenarioFiles[sc.Name]; len(res.Files) != want {
					t.Errorf("files %+v, want %d", res.Files, want)
				}
				return
			}
			if !errors.As(err, &ex) || ex != 1 {
				t.Errorf("err = %v, want exit status 1", err)
			}
			if res.Diagnosis == nil || string(res.Diagnosis.Code) != sc.Code {
				got := "none"
				if res.Diagnosis != nil {
					got = string(res.Diagnosis.Code) + ": " + res.Diagnosis.Summary
				}
				t.Errorf("diagnosis %s, want %s", got, sc.Code)
			}
			if len(res.Steps) == 0 || res.Status != "failed" || !strings.Contains(res.Reply, res.RunID) {
				t.Errorf("status %s, %d steps, reply %q", res.Status, len(res.Steps), res.Reply)
			}
			if n := sim.Started(); n > 1 {
				t.Errorf("%d workflow runs started for one message", n)
			}
		})
	}
}

func TestRunUsageErrors(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"run"}, env(nil), nil, &stdout, &stderr)
	if ex := exitError(0); !errors.As(err, &ex) || ex != 2 || !strings.Contains(stderr.String(), "-image") {
		t.Errorf("run without flags: %v %q", err, stderr.String())
	}
	stderr.Reset()
	err = run(context.Background(), []string{"run", "-text", "x"}, env(map[string]string{"DIFY_BASE_URL": "http://x.example"}), nil, &stdout, &stderr)
	if !strings.Contains(stderr.String(), "DIFY_BASE_URL") || !strings.Contains(stderr.String(), "/v1") {
		t.Errorf("bad config: %v %q", err, stderr.String())
	}
	stderr.Reset()
	if err := run(context.Background(), []string{"bogus"}, env(nil), nil, &stdout, &stderr); err == nil || !strings.Contains(stderr.String(), "unknown command") {
		t.Errorf("unknown command: %v %q", err, stderr.String())
	}
}
