package main

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/difybot/difybot/internal/loadtest"
)

// TestSoak sends messages through real serve processes while the simulator cycles through failure scenarios
// and the process is killed with SIGKILL and restarted: every message must get exactly one final reply
// (answer or diagnosis), counted by the fake Slack and LINE, and no workflow may run twice, counted by the
// simulator per Dify user.
//
// CI runs a short soak (60 messages, one kill, about 15 s). The full soak of docs/reliability.md:
//
//	DIFYBOT_SOAK=full go test -run TestSoak -v -timeout 15m ./cmd/difybot
//
// DIFYBOT_SOAK_MESSAGES and DIFYBOT_SOAK_KILLS override the counts.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills real processes")
	}
	cfg := loadtest.SoakConfig{
		Bin: binary(t), Dir: t.TempDir(),
		Messages: 60, Rate: 20, Kills: 1, Phase: 500 * time.Millisecond,
		// Every failure once. The slow runs (6 s each) are mid-stream when the kill comes at half time; 16
		// workers leave room beside them for the other phases.
		Scenarios:  []string{"slow", loadtest.Maintenance, "plugin_error", "stream_cut", "gateway_502", "rate_limited", "ok"},
		Env:        map[string]string{"WORKERS": "16"},
		ImageEvery: 5, RedeliverEvery: 10, Settle: time.Second, Timeout: 45 * time.Second,
		Log: testLog{t},
	}
	if os.Getenv("DIFYBOT_SOAK") == "full" {
		cfg.Messages, cfg.Kills, cfg.Phase, cfg.Scenarios = 1000, 2, 4*time.Second, loadtest.DefaultScenarios
		cfg.KillIn = loadtest.DefaultKillIn
		cfg.Settle, cfg.Timeout, cfg.Env = 5*time.Second, 5*time.Minute, nil
	}
	if n, err := strconv.Atoi(os.Getenv("DIFYBOT_SOAK_MESSAGES")); err == nil && n > 0 {
		cfg.Messages = n
	}
	if n, err := strconv.Atoi(os.Getenv("DIFYBOT_SOAK_KILLS")); err == nil && n >= 0 {
		cfg.Kills = n
	}
	res, err := loadtest.Soak(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("soak: %d messages, %d kills, %s\n%s\nphases: %s\nkills: %s", cfg.Messages, len(res.Kills),
		res.Elapsed.Round(time.Second), res.Table(), strings.Join(res.Phases, "; "), strings.Join(res.Kills, "; "))
	if len(res.Kills) != cfg.Kills {
		t.Errorf("%d kills happened, want %d", len(res.Kills), cfg.Kills)
	}
	if !res.OK() {
		t.Errorf("lost %d, doubled %d, ran twice %d, never acknowledged %d:\n%s", res.Lost, res.Doubled, res.DoubleRuns,
			res.Unacked, strings.Join(res.Problems, "\n"))
	}
	if res.Stored["succeeded"]+res.Stored["failed"] != cfg.Messages {
		t.Errorf("stored runs by status %v, want all %d finished", res.Stored, cfg.Messages)
	}
}

// testLog writes the soak's progress lines to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
