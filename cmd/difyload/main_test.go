package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/difybot/difybot/dify/difytest"
	"github.com/difybot/difybot/internal/loadtest"
)

// difybot returns difybot's binary, built once for all the tests of this package.
func difybot(t testing.TB) string {
	t.Helper()
	bin, err := loadtest.BuildOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-rates", "50,x"},
		{"-rates", "-1"},
		{"-platform", "teams"},
		{"-rss-workers", "0"},
		{"-mode", "fast"},
		{"stray"},
		{"-mode", "send", "-target", "http://example.com:8080", "-slack-secret", "s"},
		{"-mode", "send", "-target", "http://127.0.0.1:1"}, // No secret.
	} {
		var out, errs bytes.Buffer
		if err := run(t.Context(), args, func(string) string { return "" }, &out, &errs); err == nil {
			t.Errorf("run %q: no error", args)
		}
	}
}

// TestBenchShort is CI's version of the benchmark run: every measurement, tiny, on SQLite (and PostgreSQL
// when reachable). The full run is in docs/benchmarks.md.
func TestBenchShort(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real processes")
	}
	args := []string{"-bin", difybot(t), "-rates", "50", "-duration", "1s", "-drain", "30s", "-e2e-messages", "10",
		"-e2e-rate", "20", "-images", "4", "-image-bytes", "1000000", "-rss-workers", "4", "-breaker-messages", "10",
		"-photo-width", "2400", "-platform", "both"}
	if u := os.Getenv("DIFYBOT_TEST_POSTGRES"); u != "" {
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		c, err := pgx.Connect(ctx, u)
		cancel()
		if err != nil {
			t.Logf("PostgreSQL at %s unreachable (%v): SQLite rows only", u, err)
		} else {
			c.Close(context.Background())
			args = append(args, "-postgres", u)
		}
	}
	var out, errs bytes.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := run(ctx, args, func(string) string { return "" }, &out, &errs); err != nil {
		t.Fatalf("run: %v\n%s\n%s", err, out.String(), errs.String())
	}
	t.Logf("\n%s", out.String())
	for _, want := range []string{"| sqlite | 50/s | 50 |", "| sqlite | text |", "| sqlite | image |", "| 4 | 4 | PNG 640×480, as is | 1.0 MB |",
		"| 4 | 4 | JPEG photo 2400×1800, shrunk |",
		"PUT /admin/breaker", "Breaker open: bot.Process"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(strings.Join(args, " "), "-postgres") && !strings.Contains(out.String(), "| postgres | 50/s | 50 |") {
		t.Error("output lacks the PostgreSQL ack row")
	}
	if strings.Contains(out.String(), "unanswered") {
		t.Error("some messages were not answered")
	}
}

// TestSend loads a serve process the test started, as a person would with -mode send.
func TestSend(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a real process")
	}
	rig, err := loadtest.NewRig(t.Context(), loadtest.RigConfig{Bin: difybot(t), Dir: t.TempDir(), Sim: difytest.Options{PingEvery: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer rig.Close()
	var out, errs bytes.Buffer
	err = run(t.Context(), []string{"-mode", "send", "-target", rig.Serve.URL(), "-platform", "both", "-rate", "40",
		"-duration", "500ms", "-slack-secret", loadtest.SlackSigningSecret, "-line-secret", loadtest.LINEChannelSecret},
		func(string) string { return "" }, &out, &errs)
	if err != nil {
		t.Fatalf("send: %v\n%s", err, errs.String())
	}
	if !strings.Contains(out.String(), "| 40/s | 20 | 20 |  | 0 |") {
		t.Errorf("send table:\n%s", out.String())
	}
	// Every webhook was a message of its own; each is answered once.
	deadline := time.Now().Add(30 * time.Second)
	for {
		finals := 0
		for _, c := range rig.Conversations() {
			finals += c.Finals
		}
		if finals == 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 20 messages answered", finals)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
