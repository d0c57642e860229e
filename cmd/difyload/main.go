// Command difyload measures difybot under load and faults, against 127.0.0.1 only.
//
//	difyload                          start everything and print every table of docs/benchmarks.md
//	difyload -run ack -rates 50,200   only some measurements
//	difyload -postgres URL            PostgreSQL rows too (a database is created and dropped on that server)
//	difyload -mode soak               the soak of docs/reliability.md (1,000 messages, 2 kills)
//	difyload -mode send -target URL   signed webhooks at a fixed rate to a difybot you started yourself
//
// "Everything" is difysim in-process (difytest, with -latency per workflow node), fake Slack and LINE APIs that
// count the replies each conversation got, and `difybot serve` as a child process built from this checkout.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "difyload:", err)
		}
		os.Exit(1)
	}
}

// options are the flags of every mode.
type options struct {
	mode, run, bin, postgres, platform, dir string
	rates                                   []float64
	duration, latency, drain                time.Duration
	e2eMessages, images, breakerMessages    int
	e2eRate                                 float64
	imageBytes                              int64
	photoWidth, workers                     int
	rssWorkers                              []int

	target, slackSecret, lineSecret string
	rate                            float64

	messages, kills int
	phase           time.Duration
}

func parse(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	var rates, workers string
	fs := flag.NewFlagSet("difyload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.mode, "mode", "bench", "bench: start everything, measure, print Markdown tables; soak: the fault soak; send: load a running difybot")
	fs.StringVar(&o.run, "run", "ack,e2e,rss,breaker,stream", "bench: the measurements to make")
	fs.StringVar(&o.bin, "bin", "", "the difybot binary; default: go build ./cmd/difybot into a temporary directory")
	fs.StringVar(&o.postgres, "postgres", "", "a PostgreSQL server URL: adds PostgreSQL rows (each on a database created and dropped there)")
	fs.StringVar(&o.platform, "platform", "slack", "webhooks to send: slack, line or both (alternating)")
	fs.StringVar(&o.dir, "dir", "", "work directory for data and serve logs; default: a temporary one, removed at the end")
	fs.StringVar(&rates, "rates", "50,200,500", "ack: webhooks per second, one load step each")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "ack: how long each step sends")
	fs.DurationVar(&o.drain, "drain", 3*time.Minute, "ack: how long to wait for every message of a step to be answered")
	fs.DurationVar(&o.latency, "latency", 20*time.Millisecond, "difysim: time per workflow node (a run has 3)")
	fs.IntVar(&o.e2eMessages, "e2e-messages", 200, "e2e: messages per row")
	fs.Float64Var(&o.e2eRate, "e2e-rate", 5, "e2e: messages per second (low, so nothing queues)")
	fs.IntVar(&o.images, "images", 100, "rss: concurrent image messages (LINE)")
	fs.Int64Var(&o.imageBytes, "image-bytes", 9_500_000, "rss: bytes per large PNG (under Dify's 10 MB, so it goes as it is)")
	fs.IntVar(&o.photoWidth, "photo-width", 4032, "rss: width of the phone photos (4:3; 4032 is a 12 MP camera's, about 4 MB)")
	fs.StringVar(&workers, "rss-workers", "8,100", "rss: WORKERS values, one row each")
	fs.IntVar(&o.workers, "workers", 0, "ack, e2e: serve's WORKERS; 0 leaves serve's default")
	fs.IntVar(&o.breakerMessages, "breaker-messages", 200, "breaker: messages while the breaker is forced open")
	fs.StringVar(&o.target, "target", "http://127.0.0.1:8080", "send: the difybot base URL (127.0.0.1 only)")
	fs.Float64Var(&o.rate, "rate", 50, "send: webhooks per second")
	fs.StringVar(&o.slackSecret, "slack-secret", getenv("SLACK_SIGNING_SECRET"), "send: Slack signing secret (default $SLACK_SIGNING_SECRET)")
	fs.StringVar(&o.lineSecret, "line-secret", getenv("LINE_CHANNEL_SECRET"), "send: LINE channel secret (default $LINE_CHANNEL_SECRET)")
	fs.IntVar(&o.messages, "messages", 1000, "soak: messages")
	fs.IntVar(&o.kills, "kills", 2, "soak: SIGKILL and restarts")
	fs.DurationVar(&o.phase, "phase", 4*time.Second, "soak: how long each failure scenario lasts")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, s := range strings.Split(rates, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || r <= 0 {
			return o, fmt.Errorf("-rates: %q is not a positive number", s)
		}
		o.rates = append(o.rates, r)
	}
	for _, s := range strings.Split(workers, ",") {
		w, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || w <= 0 {
			return o, fmt.Errorf("-rss-workers: %q is not a positive number", s)
		}
		o.rssWorkers = append(o.rssWorkers, w)
	}
	switch o.platform {
	case "slack", "line", "both":
	default:
		return o, fmt.Errorf("-platform must be slack, line or both, not %q", o.platform)
	}
	return o, nil
}

// run is the whole program, testable: it never exits.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parse(args, getenv, stderr)
	if err != nil {
		return err
	}
	switch o.mode {
	case "send":
		return send(ctx, o, stdout)
	case "bench", "soak":
	default:
		return fmt.Errorf("-mode must be bench, soak or send, not %q", o.mode)
	}
	dir := o.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "difyload-*"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	b := &bench{o: o, dir: dir, out: stdout, log: stderr}
	if b.bin = o.bin; b.bin == "" {
		fmt.Fprintln(stderr, "building difybot…")
		if b.bin, err = buildDifybot(ctx, dir); err != nil {
			return err
		}
	}
	if o.mode == "soak" {
		return b.soak(ctx)
	}
	return b.all(ctx)
}
