package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/store"
	"github.com/difybot/difybot/dify"
	"github.com/difybot/difybot/dify/difytest"
	"github.com/difybot/difybot/internal/loadtest"
	"github.com/difybot/difybot/internal/testimage"
	"github.com/difybot/difybot/platforms/line/linetest"
	"github.com/difybot/difybot/platforms/slack/slacktest"
)

// bench makes the measurements of docs/benchmarks.md. Every row gets a fresh simulator, fake platforms,
// database and serve process, so one row's backlog cannot slow the next.
type bench struct {
	o        options
	dir, bin string
	out, log io.Writer
	n        int // Rigs made, for directory names.
}

func buildDifybot(ctx context.Context, dir string) (string, error) { return loadtest.Build(ctx, dir) }

func (b *bench) logf(format string, args ...any) { fmt.Fprintf(b.log, format+"\n", args...) }

func (b *bench) stores() []string {
	if b.o.postgres != "" {
		return []string{"sqlite", "postgres"}
	}
	return []string{"sqlite"}
}

// rig starts a fresh setup on st ("sqlite" or "postgres"); close it with the returned function.
func (b *bench) rig(ctx context.Context, st string, latency time.Duration, env map[string]string) (*loadtest.Rig, func(), error) {
	if b.o.workers > 0 && env == nil {
		env = map[string]string{"WORKERS": strconv.Itoa(b.o.workers)}
	}
	return b.rigWith(ctx, st, difytest.Options{Latency: latency, PingEvery: time.Second}, env)
}

// rigWith is rig with the simulator's options in full.
func (b *bench) rigWith(ctx context.Context, st string, sim difytest.Options, env map[string]string) (*loadtest.Rig, func(), error) {
	b.n++
	dir := filepath.Join(b.dir, fmt.Sprintf("rig-%02d-%s", b.n, st))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	cfg := loadtest.RigConfig{Bin: b.bin, Dir: dir, Env: env, Sim: sim}
	drop := func() {}
	if st == "postgres" {
		u, d, err := loadtest.NewDatabase(ctx, b.o.postgres)
		if err != nil {
			return nil, nil, fmt.Errorf("create a PostgreSQL database on %s: %w", loadtest.RedactURL(b.o.postgres), err)
		}
		cfg.DatabaseURL, drop = u, d
	}
	r, err := loadtest.NewRig(ctx, cfg)
	if err != nil {
		drop()
		return nil, nil, err
	}
	return r, func() {
		r.Close()
		drop()
		os.RemoveAll(filepath.Join(dir, "tmp"))
	}, nil
}

// platformOf returns the platform of message i under -platform.
func (b *bench) platformOf(i int) string {
	switch b.o.platform {
	case "both":
		return []string{"slack", "line"}[i%2]
	}
	return b.o.platform
}

// warm sends a few messages and waits for their answers: auth.test, Dify app discovery and connection
// pools are then ready, as in a bot that has been running for a while.
func (b *bench) warm(ctx context.Context, r *loadtest.Rig) error {
	c := loadtest.Client()
	var msgs []loadtest.Msg
	for i := range 10 {
		m := r.Message(b.platformOf(i), "warm-up", nil)
		if _, st, err := r.Deliver(ctx, c, m, 5*time.Second, time.Now().Add(30*time.Second)); err != nil || st != 200 {
			return fmt.Errorf("warm-up message: status %d, %v", st, err)
		}
		msgs = append(msgs, m)
	}
	if _, missing := waitAnswered(ctx, r, msgs, time.Minute); missing > 0 {
		return fmt.Errorf("warm-up: %d of %d messages not answered in a minute\n%s", missing, len(msgs), r.Serve.Tail(3000))
	}
	return nil
}

// waitAnswered waits until every message has a final reply or timeout passes; it returns when the last
// final reply came and how many are missing.
func waitAnswered(ctx context.Context, r *loadtest.Rig, msgs []loadtest.Msg, timeout time.Duration) (time.Time, int) {
	deadline := time.Now().Add(timeout)
	for {
		convs := r.Conversations()
		var last time.Time
		missing := 0
		for _, m := range msgs {
			c := convs[m.Conv]
			if c.FirstFinal.IsZero() {
				missing++
			} else if c.FirstFinal.After(last) {
				last = c.FirstFinal
			}
		}
		if missing == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return last, missing
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *bench) all(ctx context.Context) error {
	b.machine()
	for _, exp := range strings.Split(b.o.run, ",") {
		var err error
		switch strings.TrimSpace(exp) {
		case "ack":
			err = b.ack(ctx)
		case "e2e":
			err = b.e2e(ctx)
		case "rss":
			err = b.rss(ctx)
		case "breaker":
			err = b.breaker(ctx)
		case "limit":
			err = b.limit(ctx)
		case "stream":
			err = b.stream(ctx)
		default:
			err = fmt.Errorf("-run: unknown measurement %q (ack, e2e, rss, breaker, limit, stream)", exp)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// machine prints what the numbers were measured on.
func (b *bench) machine() {
	cpu := "unknown"
	if f, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(f), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := "unknown"
	if f, err := os.ReadFile("/proc/meminfo"); err == nil {
		if _, v, ok := strings.Cut(strings.Split(string(f), "\n")[0], ":"); ok {
			mem = strings.TrimSpace(v)
		}
	}
	fmt.Fprintf(b.out, "machine: %d CPUs (%s), memory %s, %s %s/%s; difybot, difysim, the fakes and the sender share it\n\n",
		runtime.NumCPU(), cpu, mem, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// ack measures how fast difybot acknowledges webhooks arriving at a fixed rate, and how long it then takes
// to answer them all.
func (b *bench) ack(ctx context.Context) error {
	fmt.Fprintf(b.out, "### Ack latency (%s webhooks, open loop, %s per step; difysim %s per node, 3 nodes; default WORKERS)\n\n",
		b.o.platform, b.o.duration, b.o.latency)
	fmt.Fprintln(b.out, "| store | rate | webhooks | ack p50 | ack p90 | ack p99 | ack max | errors | sender lag max | first feedback p50 | p99 | all answered after | answered/s | serve CPU per message | serve peak RSS |")
	fmt.Fprintln(b.out, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, st := range b.stores() {
		for _, rate := range b.o.rates {
			b.logf("ack: %s at %g/s", st, rate)
			if err := b.ackRow(ctx, st, rate); err != nil {
				return err
			}
		}
	}
	fmt.Fprintln(b.out)
	return nil
}

func (b *bench) ackRow(ctx context.Context, st string, rate float64) error {
	r, done, err := b.rig(ctx, st, b.o.latency, nil)
	if err != nil {
		return err
	}
	defer done()
	if err := b.warm(ctx, r); err != nil {
		return err
	}
	n := int(rate * b.o.duration.Seconds())
	msgs := make([]loadtest.Msg, n)
	for i := range msgs {
		msgs[i] = r.Message(b.platformOf(i), fmt.Sprintf("load %d", i), nil)
	}
	base := r.Serve.URL()
	cpu0, _ := loadtest.ReadCPU(r.Serve.PID())
	shots := loadtest.Fire(ctx, loadtest.Client(), rate, n, 4096, func(i int) (*http.Request, error) { return msgs[i].Request(base, 0) })
	var lat []time.Duration
	var errs int
	var lag time.Duration
	first := shots[0].Sent
	for _, s := range shots {
		lag = max(lag, s.Lag)
		if s.Status/100 == 2 {
			lat = append(lat, s.Latency)
		} else {
			errs++
		}
	}
	sent := time.Now()
	last, missing := waitAnswered(ctx, r, msgs, b.o.drain)
	mem, _ := loadtest.ReadMem(r.Serve.PID())
	cpu1, _ := loadtest.ReadCPU(r.Serve.PID())
	convs := r.Conversations()
	var fb []time.Duration
	for i, m := range msgs {
		if c := convs[m.Conv]; shots[i].Status/100 == 2 && !c.FirstFeedback.IsZero() {
			fb = append(fb, c.FirstFeedback.Sub(shots[i].Sent))
		}
	}
	f := loadtest.Summarize(fb)
	d := loadtest.Summarize(lat)
	answered := fmt.Sprintf("%.1f s", last.Sub(sent).Seconds())
	perSec := fmt.Sprintf("%.0f", float64(n-missing)/last.Sub(first).Seconds())
	if missing > 0 {
		answered = fmt.Sprintf("%d unanswered after %s", missing, b.o.drain)
	}
	if last.Before(sent) {
		answered = "0 s (while sending)"
	}
	perMsg := fmt.Sprintf("%.1f ms", float64(cpu1-cpu0)/float64(time.Millisecond)/float64(max(n-missing, 1)))
	fmt.Fprintf(b.out, "| %s | %g/s | %d | %s | %s | %s | %s | %d | %s | %s | %s | %s | %s | %s | %s |\n", st, rate, n,
		loadtest.Ms(d.P50), loadtest.Ms(d.P90), loadtest.Ms(d.P99), loadtest.Ms(d.Max), errs, loadtest.Ms(lag),
		loadtest.Ms(f.P50), loadtest.Ms(f.P99), answered, perSec, perMsg, loadtest.MB(mem.HWM))
	return nil
}

// e2e measures each message's time from webhook to final reply against the time difysim spent on it and
// the time the fake platform spent answering the bot's calls: the rest is the bot's own time.
func (b *bench) e2e(ctx context.Context) error {
	fmt.Fprintf(b.out, "### End to end (%d messages per row at %g/s, %s; difysim %s per node, 3 nodes)\n\n", b.o.e2eMessages, b.o.e2eRate, b.o.platform, b.o.latency)
	fmt.Fprintln(b.out, "| store | message | webhook → final reply p50 | p90 | difysim's time p50 | platform APIs p50 | bot overhead p50 | p90 | of it: queue pickup p50 | e2e ÷ difysim p50 |")
	fmt.Fprintln(b.out, "|---|---|---|---|---|---|---|---|---|---|")
	for _, st := range b.stores() {
		for _, kind := range []string{"text", "image"} {
			b.logf("e2e: %s %s", st, kind)
			if err := b.e2eRow(ctx, st, kind); err != nil {
				return err
			}
		}
	}
	fmt.Fprintln(b.out)
	return nil
}

func (b *bench) e2eRow(ctx context.Context, st, kind string) error {
	r, done, err := b.rig(ctx, st, b.o.latency, nil)
	if err != nil {
		return err
	}
	defer done()
	if err := b.warm(ctx, r); err != nil {
		return err
	}
	n := b.o.e2eMessages
	msgs := make([]loadtest.Msg, n)
	for i := range msgs {
		var blob *loadtest.Blob
		if kind == "image" {
			blob = &loadtest.Blob{Kind: "png", Size: 200_000, Width: 1280, Height: 960}
		}
		msgs[i] = r.Message(b.platformOf(i), fmt.Sprintf("what is this? %d", i), blob)
	}
	base := r.Serve.URL()
	shots := loadtest.Fire(ctx, loadtest.Client(), b.o.e2eRate, n, 1024, func(i int) (*http.Request, error) { return msgs[i].Request(base, 0) })
	if _, missing := waitAnswered(ctx, r, msgs, 2*time.Minute); missing > 0 {
		return fmt.Errorf("e2e: %d messages not answered in 2 minutes\n%s", missing, r.Serve.Tail(3000))
	}
	convs, users := r.Conversations(), r.Sim.Users()
	pickups, err := r.PickupDelays(ctx)
	if err != nil {
		return err
	}
	var e2e, sim, plat, over, pick []time.Duration
	var ratio []float64
	for i, m := range msgs {
		c, u := convs[m.Conv], users[m.DifyUser]
		if shots[i].Status != 200 || c.FirstFinal.IsZero() {
			continue
		}
		total := c.FirstFinal.Sub(shots[i].Sent)
		e2e, sim, plat = append(e2e, total), append(sim, u.Busy), append(plat, c.Busy)
		over = append(over, total-u.Busy-c.Busy)
		pick = append(pick, time.Duration(pickups[m.EventID]))
		if u.Busy > 0 {
			ratio = append(ratio, float64(total)/float64(u.Busy))
		}
	}
	slices.Sort(ratio)
	dE, dS, dP, dO, dK := loadtest.Summarize(e2e), loadtest.Summarize(sim), loadtest.Summarize(plat), loadtest.Summarize(over), loadtest.Summarize(pick)
	rat := "n/a"
	if len(ratio) > 0 {
		rat = fmt.Sprintf("%.2f", ratio[len(ratio)/2])
	}
	fmt.Fprintf(b.out, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", st, kind, loadtest.Ms(dE.P50), loadtest.Ms(dE.P90),
		loadtest.Ms(dS.P50), loadtest.Ms(dP.P50), loadtest.Ms(dO.P50), loadtest.Ms(dO.P90), loadtest.Ms(dK.P50), rat)
	return nil
}

// rss measures serve's memory while many large images are worked at once: first small ones, then large,
// so the peak of each is known (VmHWM only grows).
func (b *bench) rss(ctx context.Context) error {
	fmt.Fprintf(b.out, "### Memory with %d concurrent LINE images (SQLite; difysim %s per node)\n\n", b.o.images, b.o.latency)
	fmt.Fprintln(b.out, "| WORKERS | images | image | bytes each | serve RSS before | serve peak RSS (VmHWM) | all answered in | replies |")
	fmt.Fprintln(b.out, "|---|---|---|---|---|---|---|---|")
	for _, w := range b.o.rssWorkers {
		b.logf("rss: WORKERS=%d", w)
		if err := b.rssRows(ctx, w); err != nil {
			return err
		}
	}
	fmt.Fprintln(b.out)
	return nil
}

// rssRows sends three rounds: small PNGs and large PNGs, which go to Dify as they came (memory must not follow
// their size), then phone photos, which are decoded and shrunk (two at a time, so memory stays bounded).
func (b *bench) rssRows(ctx context.Context, workers int) error {
	r, done, err := b.rig(ctx, "sqlite", b.o.latency, map[string]string{"WORKERS": fmt.Sprint(workers)})
	if err != nil {
		return err
	}
	defer done()
	if err := b.warm(ctx, r); err != nil {
		return err
	}
	photo := testimage.PhotoJPEG(b.o.photoWidth, b.o.photoWidth*3/4, 1)
	rounds := []struct {
		what string
		blob loadtest.Blob
	}{
		{"PNG 640×480, as is", loadtest.Blob{Kind: "png", Size: 100_000, Width: 640, Height: 480}},
		{"PNG 640×480, as is", loadtest.Blob{Kind: "png", Size: b.o.imageBytes, Width: 640, Height: 480}},
		{fmt.Sprintf("JPEG photo %d×%d, shrunk", b.o.photoWidth, b.o.photoWidth*3/4), loadtest.Blob{Kind: "jpeg", Size: int64(len(photo)), Data: photo}},
	}
	for _, round := range rounds {
		before, err := loadtest.ReadMem(r.Serve.PID())
		if err != nil {
			return err
		}
		msgs := make([]loadtest.Msg, b.o.images)
		for i := range msgs {
			msgs[i] = r.Message("line", "", &round.blob)
		}
		base := r.Serve.URL()
		start := time.Now()
		loadtest.Fire(ctx, loadtest.Client(), 1000, len(msgs), len(msgs), func(i int) (*http.Request, error) { return msgs[i].Request(base, 0) })
		last, missing := waitAnswered(ctx, r, msgs, 5*time.Minute)
		after, err := loadtest.ReadMem(r.Serve.PID())
		if err != nil {
			return err
		}
		outcomes := map[string]int{}
		convs := r.Conversations()
		for _, m := range msgs {
			outcomes[convs[m.Conv].Outcome]++
		}
		took := fmt.Sprintf("%.1f s", last.Sub(start).Seconds())
		if missing > 0 {
			took = fmt.Sprintf("%d unanswered after 5 min", missing)
		}
		fmt.Fprintf(b.out, "| %d | %d | %s | %s | %s | %s | %s | %s |\n", workers, len(msgs), round.what, loadtest.MB(round.blob.Size), loadtest.MB(before.RSS),
			loadtest.MB(after.HWM), took, outcomeList(outcomes))
	}
	return nil
}

func outcomeList(m map[string]int) string {
	var parts []string
	for k, v := range m {
		if k == "" {
			k = "none"
		}
		parts = append(parts, fmt.Sprintf("%d %s", v, k))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// breaker measures the answer while the breaker is forced open: through serve (webhook to the "delayed"
// notice at the fake platform), and in-process (bot.Process deciding to hold).
func (b *bench) breaker(ctx context.Context) error {
	fmt.Fprintf(b.out, "### Breaker forced open (maintenance): %d messages at 20/s through serve\n\n", b.o.breakerMessages)
	fmt.Fprintln(b.out, "| store | webhook → \"under maintenance\" notice p50 | p99 | max | final replies while open | after mode auto: all answered in | forced via |")
	fmt.Fprintln(b.out, "|---|---|---|---|---|---|---|")
	for _, st := range b.stores() {
		b.logf("breaker: %s through serve", st)
		if err := b.breakerServe(ctx, st); err != nil {
			return err
		}
	}
	fmt.Fprintf(b.out, "\n### Breaker open: bot.Process in-process (%d runs; store, bot and dify.Client as serve wires them)\n\n", b.o.breakerMessages)
	fmt.Fprintln(b.out, "| store | first look: hold, tell the person, save p50 | p99 | later looks (already told) p50 | p99 |")
	fmt.Fprintln(b.out, "|---|---|---|---|---|")
	for _, st := range b.stores() {
		b.logf("breaker: %s in-process", st)
		if err := b.breakerInProcess(ctx, st); err != nil {
			return err
		}
	}
	fmt.Fprintln(b.out)
	return nil
}

func (b *bench) breakerServe(ctx context.Context, st string) error {
	r, done, err := b.rig(ctx, st, b.o.latency, nil)
	if err != nil {
		return err
	}
	defer done()
	if err := b.warm(ctx, r); err != nil {
		return err
	}
	via, err := r.Breaker(ctx, "open", "difyload: breaker measurement")
	if err != nil {
		return err
	}
	msgs := make([]loadtest.Msg, b.o.breakerMessages)
	for i := range msgs {
		msgs[i] = r.Message(b.platformOf(i), fmt.Sprintf("during maintenance %d", i), nil)
	}
	base := r.Serve.URL()
	shots := loadtest.Fire(ctx, loadtest.Client(), 20, len(msgs), 1024, func(i int) (*http.Request, error) { return msgs[i].Request(base, 0) })
	var held []time.Duration
	deadline := time.Now().Add(time.Minute)
	for {
		convs := r.Conversations()
		held = held[:0]
		for i, m := range msgs {
			if c := convs[m.Conv]; !c.FirstHeld.IsZero() {
				held = append(held, c.FirstHeld.Sub(shots[i].Sent))
			}
		}
		if len(held) == len(msgs) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	finals := 0
	for _, c := range r.Conversations() {
		finals += c.FinalWrites
	}
	finals -= 10 // The warm-up's.
	if _, err := r.Breaker(ctx, "auto", "difyload: breaker measurement done"); err != nil {
		return err
	}
	t0 := time.Now()
	last, missing := waitAnswered(ctx, r, msgs, 2*time.Minute)
	after := fmt.Sprintf("%.1f s", last.Sub(t0).Seconds())
	if missing > 0 {
		after = fmt.Sprintf("%d unanswered", missing)
	}
	d := loadtest.Summarize(held)
	if len(held) < len(msgs) {
		return fmt.Errorf("breaker: only %d of %d messages were told the answer is delayed", len(held), len(msgs))
	}
	fmt.Fprintf(b.out, "| %s | %s | %s | %s | %d | %s | %s |\n", st, loadtest.Ms(d.P50), loadtest.Ms(d.P99), loadtest.Ms(d.Max), finals, after, via)
	return nil
}

// discard is a platform that accepts every reply.
type discard struct{}

func (discard) Name() string { return "bench" }
func (discard) OpenFile(context.Context, bot.Message, bot.File) (io.ReadCloser, error) {
	return nil, errors.New("no files")
}
func (discard) Reply(context.Context, bot.Message, bot.Reply) error { return nil }

func (b *bench) breakerInProcess(ctx context.Context, st string) error {
	b.n++
	dir := filepath.Join(b.dir, fmt.Sprintf("inproc-%02d-%s", b.n, st))
	cfg := store.Config{SQLitePath: filepath.Join(dir, "difybot.db"), Logger: zerolog.Nop()}
	if st == "postgres" {
		u, drop, err := loadtest.NewDatabase(ctx, b.o.postgres)
		if err != nil {
			return err
		}
		defer drop()
		cfg = store.Config{DatabaseURL: u, Logger: zerolog.Nop()}
	}
	s, err := store.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	sim := loadtest.NewSim(difytest.Options{})
	defer sim.Close()
	dc, err := dify.New(dify.Config{BaseURL: sim.URL(), APIKey: "app-test", Logger: zerolog.Nop()})
	if err != nil {
		return err
	}
	dc.Breaker().SetMode(dify.ModeOpen, "difyload")
	bt, err := bot.New(bot.Config{Store: s, Workflows: dc, Platforms: []bot.Platform{discard{}}, Logger: zerolog.New(io.Discard), TempDir: dir})
	if err != nil {
		return err
	}
	inbox, err := bot.NewInbox(bot.InboxConfig{Store: s, Logger: zerolog.New(io.Discard)})
	if err != nil {
		return err
	}
	var first, later []time.Duration
	for i := range b.o.breakerMessages {
		run, _, err := inbox.Accept(ctx, bot.Message{Platform: "bench", EventID: fmt.Sprintf("held-%d", i), ChatID: "C", UserID: "U", Text: "hi"})
		if err != nil {
			return err
		}
		for pass := range 2 {
			t := time.Now()
			err := bt.Process(ctx, run.ID)
			d := time.Since(t)
			var hold *bot.HoldError
			if !errors.As(err, &hold) {
				return fmt.Errorf("breaker in-process: Process returned %v, want a HoldError", err)
			}
			if pass == 0 {
				first = append(first, d)
			} else {
				later = append(later, d)
			}
		}
	}
	f, l := loadtest.Summarize(first), loadtest.Summarize(later)
	fmt.Fprintf(b.out, "| %s | %s | %s | %s | %s |\n", st, loadtest.Ms(f.P50), loadtest.Ms(f.P99), loadtest.Ms(l.P50), loadtest.Ms(l.P99))
	return nil
}

// soak runs the fault soak and prints its table.
func (b *bench) soak(ctx context.Context) error {
	b.machine()
	dir := filepath.Join(b.dir, "soak")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	res, err := loadtest.Soak(ctx, loadtest.SoakConfig{Bin: b.bin, Dir: dir, Messages: b.o.messages, Kills: b.o.kills,
		KillIn: loadtest.DefaultKillIn, Phase: b.o.phase, Rate: 20, ImageEvery: 5, RedeliverEvery: 10, Log: b.log})
	if err != nil {
		return err
	}
	fmt.Fprintf(b.out, "### Soak: %d messages, %d kills, %s\n\n%s\nphases: %s\n\nkills: %s\n", b.o.messages, len(res.Kills),
		res.Elapsed.Round(time.Second), res.Table(), strings.Join(res.Phases, "; "), strings.Join(res.Kills, "; "))
	if !res.OK() {
		return fmt.Errorf("soak failed: lost %d, doubled %d, ran twice %d, unacknowledged %d:\n%s", res.Lost, res.Doubled,
			res.DoubleRuns, res.Unacked, strings.Join(res.Problems, "\n"))
	}
	return nil
}

// send loads a difybot the caller started, with webhooks signed by the given secrets.
func send(ctx context.Context, o options, out io.Writer) error {
	u, err := url.Parse(o.target)
	if err != nil || (u.Hostname() != "127.0.0.1" && u.Hostname() != "localhost" && u.Hostname() != "::1") {
		return fmt.Errorf("-target must be a difybot on this machine (127.0.0.1), not %q", o.target)
	}
	base := strings.TrimRight(o.target, "/")
	if (o.platform != "line" && o.slackSecret == "") || (o.platform != "slack" && o.lineSecret == "") {
		return errors.New("send: the signing secrets of the platforms to send (-slack-secret, -line-secret) are required")
	}
	n := int(o.rate * o.duration.Seconds())
	tag := fmt.Sprintf("%X", time.Now().UnixNano())
	mk := func(i int) (*http.Request, error) {
		p := o.platform
		if p == "both" {
			p = []string{"slack", "line"}[i%2]
		}
		id := fmt.Sprintf("%s%07d", tag, i)
		if p == "slack" {
			body := slacktest.DM{EventID: "Ev" + id, Channel: "D" + id, User: "U" + id, Text: "load " + id,
				TS: fmt.Sprintf("%d.%06d", time.Now().Unix(), i%1000000)}.Body()
			return slacktest.EventsRequest(base, o.slackSecret, body, 0)
		}
		body := linetest.Message{EventID: "01" + id, UserID: "U" + strings.ToLower(id), ReplyToken: "rt" + id, Text: "load " + id}.Body()
		return linetest.WebhookRequest(base, o.lineSecret, body)
	}
	shots := loadtest.Fire(ctx, loadtest.Client(), o.rate, n, 4096, mk)
	var lat []time.Duration
	status := map[int]int{}
	var failed int
	for _, s := range shots {
		switch {
		case s.Err != nil || s.Skipped:
			failed++
		default:
			status[s.Status]++
			if s.Status/100 == 2 {
				lat = append(lat, s.Latency)
			}
		}
	}
	d := loadtest.Summarize(lat)
	fmt.Fprintln(out, "| target | rate | webhooks | 2xx | other statuses | failed | ack p50 | p90 | p99 | max |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|---|---|")
	var other []string
	for s, c := range status {
		if s/100 != 2 {
			other = append(other, fmt.Sprintf("%d×%d", c, s))
		}
	}
	fmt.Fprintf(out, "| %s | %g/s | %d | %d | %s | %d | %s | %s | %s | %s |\n", base, o.rate, n, len(lat), strings.Join(other, " "),
		failed, loadtest.Ms(d.P50), loadtest.Ms(d.P90), loadtest.Ms(d.P99), loadtest.Ms(d.Max))
	return nil
}

// limit measures how throughput follows Dify's own concurrency cap: difysim takes limitCap runs at once and
// answers 429 too_many_requests beyond, each run takes 2 s, and messages arrive faster than that allows. The
// ideal is limitCap / 2 s answered per second, nothing failed, and the bot's adaptive limit near limitCap.
func (b *bench) limit(ctx context.Context) error {
	const limitCap, rate, seconds = 40, 25.0, 30
	fmt.Fprintf(b.out, "### Following Dify's limit (difysim takes %d runs at once, 429 beyond; 2 s runs; %g msg/s for %d s; WORKERS=64)\n\n", limitCap, rate, seconds)
	fmt.Fprintln(b.out, "| store | messages | answered | failed | answered/s (first to last answer) | ideal | limit after 10 s: min / median / max | Dify's peak runs at once | 429s |")
	fmt.Fprintln(b.out, "|---|---|---|---|---|---|---|---|---|")
	for _, st := range b.stores() {
		b.logf("limit: %s", st)
		if err := b.limitRow(ctx, st, limitCap, rate, seconds); err != nil {
			return err
		}
	}
	fmt.Fprintln(b.out)
	return nil
}

func (b *bench) limitRow(ctx context.Context, st string, limitCap int, rate float64, seconds int) error {
	r, done, err := b.rigWith(ctx, st, difytest.Options{Latency: 2 * time.Second / 3, PingEvery: time.Second, MaxActive: limitCap}, nil)
	if err != nil {
		return err
	}
	defer done()
	if err := b.warm(ctx, r); err != nil {
		return err
	}
	n := int(rate * float64(seconds))
	msgs := make([]loadtest.Msg, n)
	for i := range msgs {
		msgs[i] = r.Message(b.platformOf(i), fmt.Sprintf("limit %d", i), nil)
	}
	base := r.Serve.URL()
	// Sample the bot's limit while it works.
	var samples []int
	sampleCtx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(sampled)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-sampleCtx.Done():
				return
			case <-t.C:
			}
			if v, ok := loadtest.Gauge(base+"/metrics", "difybot_dify_concurrency_limit"); ok && time.Since(start) > 10*time.Second {
				samples = append(samples, int(v))
			}
		}
	}()
	posts0, started0 := r.Sim.Calls(difytest.RouteRun), r.Sim.Started()
	shots := loadtest.Fire(ctx, loadtest.Client(), rate, n, 4096, func(i int) (*http.Request, error) { return msgs[i].Request(base, 0) })
	_, missing := waitAnswered(ctx, r, msgs, 5*time.Minute)
	stopSampling()
	<-sampled
	convs := r.Conversations()
	var first, last time.Time
	answered, failed := 0, 0
	for i, m := range msgs {
		c := convs[m.Conv]
		if shots[i].Status/100 != 2 || c.FirstFinal.IsZero() {
			continue
		}
		if c.Outcome != "answer" {
			failed++
			continue
		}
		answered++
		if first.IsZero() || c.FirstFinal.Before(first) {
			first = c.FirstFinal
		}
		if c.FirstFinal.After(last) {
			last = c.FirstFinal
		}
	}
	slices.Sort(samples)
	lim := "n/a"
	if len(samples) > 0 {
		lim = fmt.Sprintf("%d / %d / %d", samples[0], samples[len(samples)/2], samples[len(samples)-1])
	}
	perSec := float64(answered) / max(last.Sub(first).Seconds(), 1)
	refused := (r.Sim.Calls(difytest.RouteRun) - posts0) - (r.Sim.Started() - started0)
	fmt.Fprintf(b.out, "| %s | %d | %d | %d (+%d unanswered) | %.1f | %.1f | %s | %d | %d |\n", st, n, answered, failed, missing, perSec,
		float64(limitCap)/2, lim, r.Sim.PeakActive(), refused)
	return nil
}
