package bot

import (
	"context"
	"net/http"
	"time"

	"github.com/difybot/difybot/dify"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

// MetricsConfig wires a Metrics. Every field is optional.
type MetricsConfig struct {
	// Breaker is read at scrape time for difybot_breaker_state.
	Breaker interface{ Status() dify.BreakerStatus }
	// QueueStats reports the jobs waiting and the age of the oldest, at scrape time. When it is nil or fails,
	// the queue gauges are left out of that scrape rather than reported as a misleading zero.
	QueueStats func(ctx context.Context) (depth int, oldest time.Duration, err error)
	// Limit is read at scrape time for difybot_dify_concurrency_limit and difybot_dify_in_flight.
	Limit func() dify.LimitStatus
	// Platforms are the configured platform names; their run counters start at zero so rate() works at once.
	Platforms []string
	// Apps are the Dify apps of a bot with several: runs are counted by app too (difybot_app_runs_total).
	Apps []string
	// Hosts are the breakers of several Dify hosts, by host, read at scrape time for difybot_host_breaker_state.
	Hosts  map[string]func() dify.BreakerStatus
	Logger zerolog.Logger
}

// Metrics is difybot's Prometheus instrumentation on a registry of its own, so tests and several instances
// never collide in the global default registry. A nil *Metrics is valid and records nothing, so the pipeline
// can call its hooks unconditionally.
type Metrics struct {
	reg         *prometheus.Registry
	runs        *prometheus.CounterVec
	appRuns     *prometheus.CounterVec // Nil for a bot with one app.
	diagnoses   *prometheus.CounterVec
	steps       *prometheus.HistogramVec
	difyCalls   *prometheus.HistogramVec
	queueErrors prometheus.Counter
}

// Run outcomes as counted by difybot_runs_total.
const (
	OutcomeSucceeded = "succeeded"
	OutcomeFailed    = "failed"
	OutcomeHeld      = "held"
)

// durationBuckets spans a sub-millisecond step to a run at DIFY_TIMEOUT's default of ten minutes.
var durationBuckets = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// difyOps maps the steps that are one Dify call to the op label of difybot_dify_call_duration_seconds.
var difyOps = map[string]string{StepUpload: "upload", StepRun: "run"}

// breakerStates are the effective states dify.BreakerStatus reports; each is exported so a dashboard can
// plot the one at 1 without guessing the set.
var breakerStates = []string{"closed", "half-open", "open", "forced-open", "forced-closed"}

// NewMetrics returns metrics registered on a fresh registry, with the Go runtime and process collectors.
func NewMetrics(cfg MetricsConfig) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "difybot_runs_total",
			Help: "Runs by platform and outcome (succeeded, failed, held). A held run is counted again when it ends.",
		}, []string{"platform", "outcome"}),
		diagnoses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "difybot_diagnoses_total",
			Help: "Failed runs by diagnosis code.",
		}, []string{"code"}),
		steps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "difybot_step_duration_seconds",
			Help:    "Duration of pipeline steps that ran (done or failed), by step name.",
			Buckets: durationBuckets,
		}, []string{"step"}),
		difyCalls: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "difybot_dify_call_duration_seconds",
			Help:    "Duration of calls to Dify by operation (upload, run), taken from the upload and run steps.",
			Buckets: durationBuckets,
		}, []string{"op"}),
		queueErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "difybot_queue_stats_errors_total",
			Help: "Scrapes whose queue statistics could not be read; the queue gauges were left out of them.",
		}),
	}
	// Series that exist from the start read as zero instead of absent, which keeps alerts and rate() simple.
	for _, c := range Codes() {
		m.diagnoses.WithLabelValues(string(c))
	}
	for _, s := range imageSteps {
		m.steps.WithLabelValues(s)
	}
	for _, op := range difyOps {
		m.difyCalls.WithLabelValues(op)
	}
	for _, p := range cfg.Platforms {
		for _, o := range []string{OutcomeSucceeded, OutcomeFailed, OutcomeHeld} {
			m.runs.WithLabelValues(p, o)
		}
	}
	m.reg.MustRegister(m.runs, m.diagnoses, m.steps, m.difyCalls,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if cfg.Breaker != nil {
		m.reg.MustRegister(breakerCollector{status: cfg.Breaker.Status})
	}
	if len(cfg.Apps) > 0 {
		m.appRuns = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "difybot_app_runs_total",
			Help: "Runs by Dify app and outcome (succeeded, failed, held), for a bot with several apps.",
		}, []string{"app", "outcome"})
		for _, a := range cfg.Apps {
			for _, o := range []string{OutcomeSucceeded, OutcomeFailed, OutcomeHeld} {
				m.appRuns.WithLabelValues(a, o)
			}
		}
		m.reg.MustRegister(m.appRuns)
	}
	if len(cfg.Hosts) > 0 {
		m.reg.MustRegister(hostBreakers(cfg.Hosts))
	}
	if cfg.Limit != nil {
		limit := cfg.Limit
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "difybot_dify_concurrency_limit",
			Help: "The adaptive cap on runs this replica has in flight against Dify: it shrinks at Dify's 429 too_many_requests and grows while runs succeed, up to WORKERS."},
			func() float64 { return float64(limit().Limit) }))
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "difybot_dify_in_flight",
			Help: "Runs this replica has in flight against Dify now."},
			func() float64 { return float64(limit().InFlight) }))
	}
	if cfg.QueueStats != nil {
		m.reg.MustRegister(&queueCollector{stats: cfg.QueueStats, errors: m.queueErrors, log: cfg.Logger})
	}
	return m
}

// Registry returns the registry, for adding collectors of other packages and for tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text (or OpenMetrics, when asked) format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		EnableOpenMetrics: true,
		// A failing collector should cost its own series, not the whole scrape.
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      m.reg,
	})
}

// ObserveStep records a finished pipeline step. Steps that did not run (skipped, held) have no duration to
// record and are ignored.
func (m *Metrics) ObserveStep(s Step) {
	if m == nil || (s.Status != "done" && s.Status != "failed") {
		return
	}
	secs := max(s.Duration, 0).Seconds()
	m.steps.WithLabelValues(s.Name).Observe(secs)
	if op, ok := difyOps[s.Name]; ok {
		m.difyCalls.WithLabelValues(op).Observe(secs)
	}
}

// ObserveRun counts a run that ended (succeeded or failed) or was first held. Other statuses are ignored,
// so calling it on every save would not double count in-flight runs.
func (m *Metrics) ObserveRun(r Run) {
	if m == nil {
		return
	}
	var outcome string
	switch r.Status {
	case RunSucceeded:
		outcome = OutcomeSucceeded
	case RunFailed:
		outcome = OutcomeFailed
	case RunHeld:
		outcome = OutcomeHeld
	default:
		return
	}
	m.runs.WithLabelValues(r.Platform, outcome).Inc()
	if m.appRuns != nil && r.App != "" {
		m.appRuns.WithLabelValues(r.App, outcome).Inc()
	}
	if r.Status == RunFailed {
		code := r.Code
		if code == "" && r.Diagnosis != nil {
			code = r.Diagnosis.Code
		}
		if code == "" {
			code = CodeInternal // A failed run without a code is a bug; count it where bugs go.
		}
		m.diagnoses.WithLabelValues(string(code)).Inc()
	}
}

// breakerCollector reads the breaker at scrape time: the state is live, so a stored copy would be stale.
type breakerCollector struct {
	status func() dify.BreakerStatus
}

var breakerStateDesc = prometheus.NewDesc("difybot_breaker_state",
	"The breaker's effective state on this replica: 1 for the current state, 0 for the others.", []string{"state"}, nil)

func (c breakerCollector) Describe(ch chan<- *prometheus.Desc) { ch <- breakerStateDesc }

func (c breakerCollector) Collect(ch chan<- prometheus.Metric) {
	cur := c.status().State
	known := false
	for _, s := range breakerStates {
		v := 0.0
		if s == cur {
			v, known = 1, true
		}
		ch <- prometheus.MustNewConstMetric(breakerStateDesc, prometheus.GaugeValue, v, s)
	}
	if !known && cur != "" {
		ch <- prometheus.MustNewConstMetric(breakerStateDesc, prometheus.GaugeValue, 1, cur)
	}
}

// hostBreakers reads each Dify host's breaker at scrape time, for a bot whose apps are on several hosts.
type hostBreakers map[string]func() dify.BreakerStatus

var hostBreakerDesc = prometheus.NewDesc("difybot_host_breaker_state",
	"Each Dify host's breaker on this replica: 1 for its current state, 0 for the others.", []string{"host", "state"}, nil)

func (h hostBreakers) Describe(ch chan<- *prometheus.Desc) { ch <- hostBreakerDesc }

func (h hostBreakers) Collect(ch chan<- prometheus.Metric) {
	for host, status := range h {
		cur := status().State
		for _, s := range breakerStates {
			v := 0.0
			if s == cur {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(hostBreakerDesc, prometheus.GaugeValue, v, host, s)
		}
	}
}

// queueStatsTimeout bounds the store query made during a scrape, which must not hang Prometheus.
const queueStatsTimeout = 2 * time.Second

// queueCollector asks the queue for its depth and oldest job at scrape time.
type queueCollector struct {
	stats  func(ctx context.Context) (int, time.Duration, error)
	errors prometheus.Counter
	log    zerolog.Logger
}

var (
	queueDepthDesc = prometheus.NewDesc("difybot_queue_depth",
		"Runs waiting in the queue (available, scheduled or being retried).", nil, nil)
	queueAgeDesc = prometheus.NewDesc("difybot_queue_oldest_age_seconds",
		"Age of the oldest waiting run; 0 when the queue is empty.", nil, nil)
)

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDepthDesc
	ch <- queueAgeDesc
	c.errors.Describe(ch)
}

// Collect reports the error counter itself, after the attempt, so a scrape's own failure shows in that scrape.
func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), queueStatsTimeout)
	defer cancel()
	depth, oldest, err := c.stats(ctx)
	defer c.errors.Collect(ch)
	if err != nil {
		c.errors.Inc()
		c.log.Warn().Err(err).Msg("metrics: could not read queue statistics")
		return
	}
	ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(depth))
	ch <- prometheus.MustNewConstMetric(queueAgeDesc, prometheus.GaugeValue, max(oldest, 0).Seconds())
}
