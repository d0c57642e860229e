package loadtest

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/difybot/difybot/dify/difytest"
)

// SoakConfig is one soak run: messages through real difybot processes while the simulator changes failure
// scenario and the process is killed and restarted.
type SoakConfig struct {
	Bin         string
	Dir         string
	DatabaseURL string  // "" is SQLite.
	Messages    int     // Sent in all, alternating Slack and LINE.
	Rate        float64 // Messages per second.
	Kills       int     // SIGKILL and restart this many times, spread over the sending.
	// KillIn names, per kill, the phase to kill in (60 % through its next occurrence); when empty, kills are
	// spread evenly over the sending, each as soon as a run is mid-stream.
	KillIn     []string
	Phase      time.Duration
	Scenarios  []string // The simulator's scenarios, cycled one per Phase; back to "ok" after sending.
	ImageEvery int      // Every nth message carries an image (0: none).
	// RedeliverEvery: every nth acknowledged message is delivered once more later, as platforms sometimes do.
	RedeliverEvery int
	Settle         time.Duration // After every message is answered, how long to keep watching for late duplicates.
	Timeout        time.Duration // For every message to be answered.
	Env            map[string]string
	Log            io.Writer // Progress lines; nil for none.
}

// DefaultScenarios is the soak's cycle: the failures the issue names, with recoveries between them.
// "maintenance" is not a simulator scenario: the breaker is forced open (PUT /admin/breaker, or the store)
// for the phase, with the simulator on "ok", so runs are held and resumed.
var DefaultScenarios = []string{"ok", "gateway_502", "ok", "maintenance", "ok", "rate_limited", "ok", "stream_cut", "plugin_error", "slow"}

// DefaultKillIn is where the full soak's two kills land: during a Dify outage, while runs are being retried,
// and while slow runs are mid-stream.
var DefaultKillIn = []string{"gateway_502", "slow"}

// Maintenance is the pseudo-scenario that forces the breaker open for a phase.
const Maintenance = "maintenance"

// SoakResult is what the platforms and the simulator counted.
type SoakResult struct {
	Config      SoakConfig
	Elapsed     time.Duration
	Deliveries  int // Webhook POSTs, redeliveries included.
	Retried     int // Messages that needed more than one delivery (the bot was down or answered 5xx).
	Duplicates  int // Extra deliveries of messages already acknowledged.
	Unacked     int // Messages never acknowledged.
	Kills       []string
	Phases      []string
	Answered    int // Conversations with exactly one final reply.
	Lost        int // ... with none.
	Doubled     int // ... with more than one.
	FinalWrites int // Slack edits that wrote a final text, LINE deliveries of one.
	Held        int // Conversations that were told their answer is delayed.
	Leftover    int // Slack placeholders still showing "working" at the end.
	Outcomes    map[string]int
	ByPlatform  map[string][3]int // Answered, lost, doubled.
	RunsStarted int               // Workflow runs the simulator began.
	RunPosts    int               // POST /v1/workflows/run requests.
	DoubleRuns  int               // Dify users (messages) with more than one run started.
	Stored      map[string]int    // difybot's runs by status.
	Problems    []string          // Conversations that went wrong, for the report.
}

// OK reports whether every message got exactly one final reply and no workflow ran twice.
func (r SoakResult) OK() bool {
	return r.Lost == 0 && r.Doubled == 0 && r.DoubleRuns == 0 && r.Unacked == 0
}

// Soak runs cfg and returns the counts. An error means the soak could not run, not that the bot failed it.
func Soak(ctx context.Context, cfg SoakConfig) (SoakResult, error) {
	if cfg.Rate <= 0 {
		cfg.Rate = 20
	}
	if cfg.Phase <= 0 {
		cfg.Phase = 4 * time.Second
	}
	if len(cfg.Scenarios) == 0 {
		cfg.Scenarios = DefaultScenarios
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 3 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Minute
	}
	logf := func(format string, args ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, format+"\n", args...)
		}
	}
	res := SoakResult{Config: cfg, Outcomes: map[string]int{}, ByPlatform: map[string][3]int{}}
	env := map[string]string{
		"WORKERS":          "8",
		"DIFY_TIMEOUT":     "60s",
		"BREAKER_OPEN_FOR": "2s", // A tripped breaker tries again soon after a failure phase ends.
		"BREAKER_HOLD_MAX": "2m",
	}
	maps.Copy(env, cfg.Env)
	rig, err := NewRig(ctx, RigConfig{Bin: cfg.Bin, Dir: cfg.Dir, DatabaseURL: cfg.DatabaseURL, Env: env,
		// Latency 0: "ok" runs answer at once, "slow" takes 2 s per node (6 s a run), with pings.
		Sim: difytest.Options{PingEvery: 500 * time.Millisecond}})
	if err != nil {
		return res, err
	}
	defer rig.Close()
	start := time.Now()
	since := func() string { return fmt.Sprintf("%5.1fs", time.Since(start).Seconds()) }

	sendFor := time.Duration(float64(cfg.Messages) / cfg.Rate * float64(time.Second))
	sendCtx, stopSending := context.WithCancel(ctx)
	defer stopSending()

	// The scenario schedule, on its own clock.
	var phaseWG sync.WaitGroup
	var phaseMu sync.Mutex
	breaker := func(mode string) {
		// The process may be down for a kill just now: try for a few seconds.
		for t := time.Now(); time.Since(t) < 5*time.Second; time.Sleep(200 * time.Millisecond) {
			if via, err := rig.Breaker(ctx, mode, "soak: maintenance phase"); err == nil {
				logf("%s breaker %s via %s", since(), mode, via)
				return
			} else {
				logf("%s breaker %s: %v", since(), mode, err)
			}
		}
	}
	var current atomic.Value // The phase now, for the kill lines.
	current.Store("ok")
	phaseWG.Go(func() {
		forced := false
		for i := 0; ; i++ {
			sc := cfg.Scenarios[i%len(cfg.Scenarios)]
			if forced && sc != Maintenance {
				breaker("auto")
				forced = false
			}
			switch {
			case sc == Maintenance:
				rig.Sim.SetScenario("ok")
				breaker("open")
				forced = true
			default:
				if err := rig.Sim.SetScenario(sc); err != nil {
					logf("%s scenario %s: %v", since(), sc, err)
				}
			}
			current.Store(sc)
			phaseMu.Lock()
			res.Phases = append(res.Phases, since()+" "+sc)
			phaseMu.Unlock()
			logf("%s scenario %s", since(), sc)
			select {
			case <-sendCtx.Done():
				if forced {
					breaker("auto")
				}
				rig.Sim.SetScenario("ok")
				phaseMu.Lock()
				res.Phases = append(res.Phases, since()+" ok (sending done)")
				phaseMu.Unlock()
				return
			case <-time.After(cfg.Phase):
			}
		}
	})

	// Kills at even intervals of the sending, each as soon as a run is mid-stream (up to 1 s later), so the
	// crash lands after Dify started work where it can.
	var killWG sync.WaitGroup
	var killErr error
	killWG.Go(func() {
		for k := 1; k <= cfg.Kills; k++ {
			if k <= len(cfg.KillIn) {
				// Wait for the phase to begin (bounded by the sending), then 60 % of it.
				for current.Load().(string) != cfg.KillIn[k-1] && sendCtx.Err() == nil {
					time.Sleep(10 * time.Millisecond)
				}
				select {
				case <-sendCtx.Done():
					return
				case <-time.After(cfg.Phase * 6 / 10):
				}
			} else {
				at := start.Add(sendFor * time.Duration(k) / time.Duration(cfg.Kills+1))
				select {
				case <-sendCtx.Done():
					return
				case <-time.After(time.Until(at)):
				}
				for t := time.Now(); rig.Sim.Streaming() == 0 && time.Since(t) < time.Second; {
					time.Sleep(10 * time.Millisecond)
				}
			}
			streaming := rig.Sim.Streaming()
			sc := current.Load().(string)
			if err := rig.Serve.Kill(); err != nil {
				killErr = err
				return
			}
			down := time.Now()
			time.Sleep(300 * time.Millisecond) // Deliveries meanwhile fail and are redelivered.
			if err := rig.Serve.Restart(ctx); err != nil {
				killErr = err
				return
			}
			line := fmt.Sprintf("%s SIGKILL during %s with %d runs mid-stream; serving again after %s", since(), sc, streaming, time.Since(down).Round(time.Millisecond))
			res.Kills = append(res.Kills, line)
			logf("%s", line)
		}
	})

	// Open-loop sending: message i leaves at i/Rate, each delivered (and redelivered) on its own goroutine.
	client := Client()
	msgs := make([]Msg, cfg.Messages)
	var deliveries, retried, dups, unacked atomic.Int64
	var sendWG sync.WaitGroup
	deadline := start.Add(sendFor + cfg.Timeout)
	for i := range cfg.Messages {
		due := start.Add(time.Duration(float64(i) / cfg.Rate * float64(time.Second)))
		time.Sleep(time.Until(due))
		if ctx.Err() != nil {
			break
		}
		platform := "slack"
		if i%2 == 1 {
			platform = "line"
		}
		var blob *Blob
		if cfg.ImageEvery > 0 && i%cfg.ImageEvery == cfg.ImageEvery-1 {
			blob = &Blob{Kind: "png", Size: 64 << 10, Width: 320, Height: 240}
		}
		m := rig.Message(platform, fmt.Sprintf("soak message %d", i), blob)
		msgs[i] = m
		sendWG.Go(func() {
			n, status, err := rig.Deliver(ctx, client, m, 3*time.Second, deadline)
			deliveries.Add(int64(n))
			if n > 1 {
				retried.Add(1)
			}
			if err != nil || status/100 != 2 {
				unacked.Add(1)
				logf("%s message %d (%s) not acknowledged: status %d, %v", since(), i, m.Conv, status, err)
				return
			}
			if cfg.RedeliverEvery > 0 && i%cfg.RedeliverEvery == 0 {
				time.Sleep(time.Duration(rand.Int64N(int64(2 * time.Second))))
				n, _, _ := rig.Deliver(ctx, client, m, 3*time.Second, deadline)
				deliveries.Add(int64(n))
				dups.Add(1)
			}
		})
	}
	sendWG.Wait()
	stopSending()
	phaseWG.Wait()
	killWG.Wait()
	if killErr != nil {
		return res, fmt.Errorf("restart after SIGKILL: %w", killErr)
	}
	logf("%s all %d messages sent (%d deliveries); waiting for answers", since(), cfg.Messages, deliveries.Load())

	// Wait until every conversation has a final reply, then watch a while longer for late duplicates.
	for {
		convs := rig.Conversations()
		missing := 0
		for _, m := range msgs {
			if convs[m.Conv].FinalWrites == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			logf("%s %d messages still without a final reply; giving up", since(), missing)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(cfg.Settle)
	if err := rig.Serve.Stop(30 * time.Second); err != nil {
		logf("%s graceful stop: %v", since(), err)
	}
	res.Elapsed = time.Since(start)

	convs := rig.Conversations()
	users := rig.Sim.Users()
	for _, m := range msgs {
		c := convs[m.Conv]
		bp := res.ByPlatform[m.Platform]
		switch {
		case c.Finals == 1:
			res.Answered++
			bp[0]++
		case c.Finals == 0:
			res.Lost++
			bp[1]++
			res.Problems = append(res.Problems, fmt.Sprintf("%s %s: no final reply (final writes %d, held %d)", m.Platform, m.Conv, c.FinalWrites, c.Held))
		default:
			res.Doubled++
			bp[2]++
			res.Problems = append(res.Problems, fmt.Sprintf("%s %s: %d final replies", m.Platform, m.Conv, c.Finals))
		}
		res.ByPlatform[m.Platform] = bp
		res.FinalWrites += c.FinalWrites
		if c.Outcome != "" {
			res.Outcomes[c.Outcome]++
		}
		if !c.FirstHeld.IsZero() {
			res.Held++
		}
		if m.Platform == "slack" {
			res.Leftover += c.Working
		}
		u := users[m.DifyUser]
		res.RunPosts += u.Posts
		if u.Started > 1 {
			res.DoubleRuns++
			res.Problems = append(res.Problems, fmt.Sprintf("%s %s: %d workflow runs started", m.Platform, m.Conv, u.Started))
		}
	}
	res.RunsStarted = rig.Sim.Started()

	res.Deliveries, res.Retried, res.Duplicates, res.Unacked = int(deliveries.Load()), int(retried.Load()), int(dups.Load()), int(unacked.Load())
	if res.Stored, err = rig.RunStatuses(ctx); err != nil {
		logf("could not read the stored runs: %v", err)
	}
	if !res.OK() {
		logf("serve logs (tail):\n%s", rig.Serve.Tail(20000))
	}
	return res, nil
}

// Table renders the result as Markdown.
func (r SoakResult) Table() string {
	var b strings.Builder
	row := func(k string, v any) { fmt.Fprintf(&b, "| %s | %v |\n", k, v) }
	b.WriteString("| measure | count |\n|---|---|\n")
	row("messages sent (Slack + LINE)", fmt.Sprintf("%d (%d + %d)", r.Config.Messages, r.ByPlatform["slack"][0]+r.ByPlatform["slack"][1]+r.ByPlatform["slack"][2], r.ByPlatform["line"][0]+r.ByPlatform["line"][1]+r.ByPlatform["line"][2]))
	row("webhook deliveries (with redeliveries)", r.Deliveries)
	row("messages redelivered because the bot was down or answered 5xx", r.Retried)
	row("acknowledged messages delivered again (duplicates)", r.Duplicates)
	row("messages never acknowledged", r.Unacked)
	row("SIGKILL + restart", len(r.Kills))
	row("**exactly one final reply**", fmt.Sprintf("**%d**", r.Answered))
	row("**no final reply (lost)**", fmt.Sprintf("**%d**", r.Lost))
	row("**more than one final reply (doubled)**", fmt.Sprintf("**%d**", r.Doubled))
	row("final-text writes (Slack edits of the same message included)", r.FinalWrites)
	row("told first that the answer is delayed (breaker open or maintenance)", r.Held)
	row("Slack placeholders left showing \"working\"", r.Leftover)
	row("workflow runs started (difysim)", r.RunsStarted)
	row("workflows/run POSTs (refused ones included)", r.RunPosts)
	row("**messages whose workflow ran more than once**", fmt.Sprintf("**%d**", r.DoubleRuns))
	b.WriteString("\n| final reply | messages |\n|---|---|\n")
	keys := slices.Collect(maps.Keys(r.Outcomes))
	sort.Slice(keys, func(i, j int) bool {
		if r.Outcomes[keys[i]] != r.Outcomes[keys[j]] {
			return r.Outcomes[keys[i]] > r.Outcomes[keys[j]]
		}
		return keys[i] < keys[j]
	})
	for _, k := range keys {
		fmt.Fprintf(&b, "| %s | %d |\n", k, r.Outcomes[k])
	}
	return b.String()
}
