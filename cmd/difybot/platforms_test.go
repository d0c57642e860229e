package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/config"
	"github.com/difybot/difybot/dify/difytest"
)

// fakePlatform is a whole platform as cmd sees it, to prove that one line in the platform list wires it.
type fakePlatform struct{ inbox bot.Inbox }

const fakeSecret = "fake-platform-secret-0123456789"

func (*fakePlatform) Name() string { return "fake" }

func (*fakePlatform) OpenFile(context.Context, bot.Message, bot.File) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader("")), nil
}

func (*fakePlatform) Reply(context.Context, bot.Message, bot.Reply) error { return nil }

func (p *fakePlatform) Routes() []bot.Route {
	return []bot.Route{{Pattern: "POST /fake/hook", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		run, _, err := p.inbox.Accept(r.Context(), bot.Message{Platform: "fake", EventID: "ev1", ChatID: "C", UserID: "U", Text: "hi"})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		io.WriteString(w, run.ID)
	})}}
}

func (*fakePlatform) Checks(context.Context) []bot.Check {
	return []bot.Check{{Name: "Fake", OK: true, Detail: "fake platform answered"}}
}

func (*fakePlatform) Secrets() []string { return []string{fakeSecret} }

var fakeSpec = platformSpec{name: "fake", title: "Fake", build: func(_ config.Config, env platformEnv) (platform, error) {
	return &fakePlatform{inbox: env.inbox}, nil
}}

func TestOneLineAddsAPlatform(t *testing.T) {
	sim := difytest.NewServer(difytest.Options{})
	defer sim.Close()
	vars := map[string]string{"DIFY_BASE_URL": sim.URL(), "DIFY_API_KEY": "app-test", "ADMIN_TOKEN": "admin-token-for-the-test", "DATA_DIR": t.TempDir()}
	cfg, err := config.Load(env(vars))
	if err != nil {
		t.Fatal(err)
	}
	specs := append(platforms(), fakeSpec) // The one line.
	sys, err := build(t.Context(), cfg, zerolog.Nop(), specs, platformEnv{})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	mux, err := sys.routes()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// Its routes are served, with the inbox that stores runs.
	res, err := http.Post(srv.URL+"/fake/hook", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	runID := string(body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("POST /fake/hook: %d %s", res.StatusCode, body)
	}
	r, err := sys.store.Run(t.Context(), runID)
	if err != nil || r.Platform != "fake" {
		t.Fatalf("stored run %q: %+v %v", runID, r, err)
	}

	// Its secrets are redacted from the admin API.
	r.Status, r.Reply = bot.RunFailed, "the token "+fakeSecret+" leaked into a reply"
	if err := sys.store.SaveRun(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/admin/runs/"+runID, nil)
	req.Header.Set("Authorization", "Bearer "+vars["ADMIN_TOKEN"])
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || bytes.Contains(body, []byte(fakeSecret)) || !bytes.Contains(body, []byte("[redacted]")) {
		t.Errorf("admin run detail %d does not redact the platform's secret:\n%s", res.StatusCode, body)
	}

	// Its metrics are labelled from the start.
	res, err = http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if !regexp.MustCompile(`difybot_runs_total\{[^}]*platform="fake"`).Match(body) {
		t.Errorf("/metrics has no platform=\"fake\" series")
	}

	// Its doctor check runs.
	var out, errOut bytes.Buffer
	if err := doctorWith(t.Context(), nil, env(vars), &out, &errOut, specs); err != nil {
		t.Errorf("doctor: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "✅ Fake: fake platform answered") {
		t.Errorf("doctor did not run the platform's check:\n%s", out.String())
	}
}

// TestDoctorAndPipelineDiscoverTheSameApp drives doctor and the pipeline (`run -json`) against every simulator
// scenario: where both learn the app, they must say the same about where a message's parts go.
func TestDoctorAndPipelineDiscoverTheSameApp(t *testing.T) {
	variants := []map[string]string{nil, {"DIFY_IMAGE_INPUT": "files"}, {"DIFY_TEXT_INPUT": "query"}, {"DIFY_APP_MODE": "chat"}}
	var compared atomic.Int64
	t.Cleanup(func() {
		t.Logf("%d scenario runs compared", compared.Load())
		if n := compared.Load(); n < 40 {
			t.Errorf("only %d scenario runs learned the app; the comparison proves little", n)
		}
	})
	for _, sc := range difytest.Scenarios() {
		if slowScenarios[sc.Name] {
			continue
		}
		t.Run(sc.Name, func(t *testing.T) {
			t.Parallel()
			for i, extra := range variants {
				if i > 0 && sc.Code != "" {
					break // The settings' variants matter where the app answers; a failure scenario is tried once.
				}
				sim := difytest.NewServer(difytest.Options{Scenario: sc.Name, PingEvery: 5 * time.Millisecond})
				vars := map[string]string{"DIFY_BASE_URL": sim.URL(), "DIFY_API_KEY": "app-test", "DATA_DIR": t.TempDir(), "DIFY_TIMEOUT": "20s"}
				for k, v := range scenarioEnv[sc.Name] {
					vars[k] = v
				}
				for k, v := range extra {
					vars[k] = v
				}
				var doc, runOut, stderr bytes.Buffer
				run(t.Context(), []string{"doctor"}, env(vars), nil, &doc, &stderr)
				run(t.Context(), []string{"run", "-text", "what is this?", "-json"}, env(vars), nil, &runOut, &stderr)
				sim.Close()

				var res runResult
				if err := json.Unmarshal(runOut.Bytes(), &res); err != nil {
					t.Fatalf("%s/%d: run -json printed no result: %v\n%s", sc.Name, i, err, stderr.String())
				}
				var pipeline string
				for _, s := range res.Steps {
					if a, ok := s.Fields["app"].(string); ok {
						pipeline = a
					}
				}
				doctor := ""
				if m := regexp.MustCompile(`(?m)^✅ Dify run: difybot sends: (.*)$`).FindStringSubmatch(doc.String()); m != nil {
					doctor = m[1]
				}
				if pipeline == "" {
					continue // The pipeline never learned the app (Dify refused /info or /parameters): nothing to compare.
				}
				compared.Add(1)
				if doctor != pipeline {
					t.Errorf("%s %v: doctor says %q, the pipeline used %q\ndoctor:\n%s", sc.Name, extra, doctor, pipeline, doc.String())
				}
			}
		})
	}
}
