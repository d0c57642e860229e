package bot_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/dify"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"
)

// scrapeMetrics fetches the handler's text exposition and parses it as Prometheus would, with the strict
// legacy name rules; promlint then applies `promtool check metrics`.
func scrapeMetrics(t testing.TB, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d: %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q, want the text format", ct)
	}
	body := rec.Body.Bytes()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil {
		t.Fatalf("lint /metrics: %v", err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "difybot_") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
	return mfs
}

// metricValue returns the value of the series of name with exactly labels, and whether it exists.
func metricValue(mfs map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
	for _, m := range mf.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		match := true
		for _, lp := range m.GetLabel() {
			if v, ok := labels[lp.GetName()]; !ok || v != lp.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), true
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue(), true
		case dto.MetricType_HISTOGRAM:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

func TestMetricsFamiliesAndHooks(t *testing.T) {
	br := dify.NewBreaker(dify.BreakerConfig{}, zerolog.Nop())
	var depth atomic.Int64
	depth.Store(3)
	m := bot.NewMetrics(bot.MetricsConfig{
		Breaker:   br,
		Platforms: []string{"slack", "line"},
		QueueStats: func(ctx context.Context) (int, time.Duration, error) {
			if _, ok := ctx.Deadline(); !ok {
				t.Error("QueueStats got a context without a deadline; a slow store would hang the scrape")
			}
			return int(depth.Load()), 90 * time.Second, nil
		},
	})
	h := m.Handler()

	before := scrapeMetrics(t, h)
	want := []struct {
		name string
		typ  dto.MetricType
	}{
		{"difybot_runs_total", dto.MetricType_COUNTER},
		{"difybot_diagnoses_total", dto.MetricType_COUNTER},
		{"difybot_step_duration_seconds", dto.MetricType_HISTOGRAM},
		{"difybot_dify_call_duration_seconds", dto.MetricType_HISTOGRAM},
		{"difybot_breaker_state", dto.MetricType_GAUGE},
		{"difybot_queue_depth", dto.MetricType_GAUGE},
		{"difybot_queue_oldest_age_seconds", dto.MetricType_GAUGE},
		{"go_goroutines", dto.MetricType_GAUGE},
	}
	for _, w := range want {
		mf := before[w.name]
		if mf == nil {
			t.Errorf("family %s is missing", w.name)
			continue
		}
		if mf.GetType() != w.typ {
			t.Errorf("%s is a %s, want %s", w.name, mf.GetType(), w.typ)
		}
		if mf.GetHelp() == "" {
			t.Errorf("%s has no help text", w.name)
		}
	}
	// Series exist at zero before anything happens, so rate() and alerts work from the first scrape.
	for _, c := range bot.Codes() {
		if v, ok := metricValue(before, "difybot_diagnoses_total", map[string]string{"code": string(c)}); !ok || v != 0 {
			t.Errorf("diagnoses_total{code=%q} = %v, %v; want 0, present", c, v, ok)
		}
	}
	for _, o := range []string{"succeeded", "failed", "held"} {
		if _, ok := metricValue(before, "difybot_runs_total", map[string]string{"platform": "line", "outcome": o}); !ok {
			t.Errorf("runs_total{platform=line,outcome=%s} is missing", o)
		}
	}
	for _, s := range []string{"receive", "enqueue", "fetch", "check", "upload", "run", "format", "reply"} {
		if _, ok := metricValue(before, "difybot_step_duration_seconds", map[string]string{"step": s}); !ok {
			t.Errorf("step_duration_seconds{step=%s} is missing", s)
		}
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"difybot_breaker_state", map[string]string{"state": "closed"}, 1},
		{"difybot_breaker_state", map[string]string{"state": "open"}, 0},
		{"difybot_breaker_state", map[string]string{"state": "forced-open"}, 0},
		{"difybot_queue_depth", nil, 3},
		{"difybot_queue_oldest_age_seconds", nil, 90},
	} {
		if v, ok := metricValue(before, c.name, c.labels); !ok || v != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, v, ok, c.want)
		}
	}

	m.ObserveRun(bot.Run{Platform: "slack", Status: bot.RunSucceeded})
	m.ObserveRun(bot.Run{Platform: "slack", Status: bot.RunFailed, Code: bot.CodeDifyRateLimited})
	m.ObserveRun(bot.Run{Platform: "web", Status: bot.RunHeld})
	m.ObserveRun(bot.Run{Platform: "web", Status: bot.RunRunning}) // Not an outcome: ignored.
	m.ObserveStep(bot.Step{Name: bot.StepUpload, Status: "done", Duration: 140 * time.Millisecond})
	m.ObserveStep(bot.Step{Name: bot.StepRun, Status: "failed", Duration: 2 * time.Second})
	m.ObserveStep(bot.Step{Name: bot.StepRun, Status: "held"}) // Did not run: ignored.
	m.ObserveStep(bot.Step{Name: bot.StepFormat, Status: "done", Duration: 300 * time.Microsecond})
	br.SetMode(dify.ModeOpen, "test")
	depth.Store(0)

	after := scrapeMetrics(t, h)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"difybot_runs_total", map[string]string{"platform": "slack", "outcome": "succeeded"}, 1},
		{"difybot_runs_total", map[string]string{"platform": "slack", "outcome": "failed"}, 1},
		{"difybot_runs_total", map[string]string{"platform": "web", "outcome": "held"}, 1},
		{"difybot_runs_total", map[string]string{"platform": "line", "outcome": "succeeded"}, 0},
		{"difybot_diagnoses_total", map[string]string{"code": "dify_rate_limited"}, 1},
		{"difybot_diagnoses_total", map[string]string{"code": "internal"}, 0},
		{"difybot_step_duration_seconds", map[string]string{"step": "upload"}, 1},
		{"difybot_step_duration_seconds", map[string]string{"step": "run"}, 1},
		{"difybot_step_duration_seconds", map[string]string{"step": "format"}, 1},
		{"difybot_dify_call_duration_seconds", map[string]string{"op": "upload"}, 1},
		{"difybot_dify_call_duration_seconds", map[string]string{"op": "run"}, 1},
		{"difybot_breaker_state", map[string]string{"state": "forced-open"}, 1},
		{"difybot_breaker_state", map[string]string{"state": "closed"}, 0},
		{"difybot_queue_depth", nil, 0},
	} {
		if v, ok := metricValue(after, c.name, c.labels); !ok || v != c.want {
			t.Errorf("after: %s%v = %v (present %v), want %v", c.name, c.labels, v, ok, c.want)
		}
	}
	if _, ok := metricValue(after, "difybot_runs_total", map[string]string{"platform": "web", "outcome": "succeeded"}); ok {
		t.Error("a running run was counted as an outcome")
	}

	// The histogram's sum is in seconds: 2 s of run plus nothing else.
	for _, mt := range after["difybot_dify_call_duration_seconds"].GetMetric() {
		if mt.GetLabel()[0].GetValue() == "run" && mt.GetHistogram().GetSampleSum() != 2 {
			t.Errorf("dify_call_duration_seconds{op=run} sum = %v, want 2", mt.GetHistogram().GetSampleSum())
		}
	}

	// The exposition of the counters, exactly as Prometheus reads it.
	const runsText = `
# HELP difybot_runs_total Runs by platform and outcome (succeeded, failed, held). A held run is counted again when it ends.
# TYPE difybot_runs_total counter
difybot_runs_total{outcome="failed",platform="line"} 0
difybot_runs_total{outcome="failed",platform="slack"} 1
difybot_runs_total{outcome="held",platform="line"} 0
difybot_runs_total{outcome="held",platform="slack"} 0
difybot_runs_total{outcome="held",platform="web"} 1
difybot_runs_total{outcome="succeeded",platform="line"} 0
difybot_runs_total{outcome="succeeded",platform="slack"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(runsText), "difybot_runs_total"); err != nil {
		t.Error(err)
	}
}

func TestMetricsOptionalSources(t *testing.T) {
	// Without a breaker or queue, the families that need them are simply absent.
	m := bot.NewMetrics(bot.MetricsConfig{})
	mfs := scrapeMetrics(t, m.Handler())
	for _, name := range []string{"difybot_breaker_state", "difybot_queue_depth", "difybot_queue_oldest_age_seconds"} {
		if mfs[name] != nil {
			t.Errorf("%s is exported without its source", name)
		}
	}
	if mfs["difybot_runs_total"] != nil && len(mfs["difybot_runs_total"].GetMetric()) != 0 {
		t.Error("runs_total has series although no platform was named")
	}

	// A failing queue costs its own gauges, not the scrape.
	m = bot.NewMetrics(bot.MetricsConfig{QueueStats: func(context.Context) (int, time.Duration, error) {
		return 0, 0, errors.New("database is locked")
	}})
	mfs = scrapeMetrics(t, m.Handler())
	if mfs["difybot_queue_depth"] != nil {
		t.Error("queue_depth is exported although the queue could not be read")
	}
	if v, ok := metricValue(mfs, "difybot_queue_stats_errors_total", nil); !ok || v != 1 {
		t.Errorf("queue_stats_errors_total = %v (present %v), want 1", v, ok)
	}

	// A nil *Metrics is a valid no-op, so the pipeline can call its hooks without checking.
	var none *bot.Metrics
	none.ObserveRun(bot.Run{Platform: "slack", Status: bot.RunFailed})
	none.ObserveStep(bot.Step{Name: bot.StepRun, Status: "done"})
}

func TestMetricsOpenMetrics(t *testing.T) {
	m := bot.NewMetrics(bot.MetricsConfig{})
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Body)
	if !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/openmetrics-text") || !bytes.HasSuffix(body, []byte("# EOF\n")) {
		t.Errorf("OpenMetrics was not negotiated: %q", rec.Header().Get("Content-Type"))
	}
}

// A bot with several apps counts runs by app too.
func TestMetricsByApp(t *testing.T) {
	m := bot.NewMetrics(bot.MetricsConfig{Apps: []string{"receipts", "damage"}})
	m.ObserveRun(bot.Run{Platform: "slack", App: "damage", Status: bot.RunSucceeded})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{`difybot_app_runs_total{app="damage",outcome="succeeded"} 1`, `difybot_app_runs_total{app="receipts",outcome="succeeded"} 0`} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
