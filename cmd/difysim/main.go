// Command difysim serves a fake Dify Service API with a catalogue of scenarios (errors, proxy pages, stream
// cuts, version drift), for the demo, the compose "local" profile and benchmarks.
//
//	difysim -addr :5001 -scenario ok -shape default
//	difysim -list
//
// The scenario is how Dify fails; the shape is what the app is like when it works (its mode and start form).
// Switch either while it runs: curl -X PUT localhost:5001/_sim/scenario -d '{"scenario":"gateway_502"}',
// curl -X PUT localhost:5001/_sim/shape -d '{"shape":"agent"}'.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/difybot/difybot/dify/difytest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "difysim:", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError is a mistake on the command line, which exits 2 as flag parsing does.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// shutdownTimeout bounds how long open streams may take to end after a signal.
const shutdownTimeout = 5 * time.Second

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return serve(ctx, args, stdout, stderr, nil)
}

// serve is run with a hook that learns the base URL once the listener is up, so tests can use port 0.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer, ready func(baseURL string)) error {
	fs := flag.NewFlagSet("difysim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", ":5001", "listen address")
	scenario := fs.String("scenario", "ok", "starting scenario (see -list)")
	shape := fs.String("shape", difytest.DefaultShape, "the app's shape: mode and start form (see -list)")
	latency := fs.Duration("latency", 0, "how long each workflow node takes (0: the scenario's default)")
	key := fs.String("key", "", "the one API key to accept (default: any key that starts with app-)")
	list := fs.Bool("list", false, "print the scenario and shape catalogues and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	scenarios, shapes := difytest.Scenarios(), difytest.Shapes()
	if *list {
		return printCatalogue(stdout, scenarios, shapes)
	}
	if !slices.ContainsFunc(scenarios, func(s difytest.Scenario) bool { return s.Name == *scenario }) {
		return usageError{fmt.Errorf("unknown scenario %q (difysim -list shows them)", *scenario)}
	}
	if !slices.ContainsFunc(shapes, func(s difytest.Shape) bool { return s.Name == *shape }) {
		return usageError{fmt.Errorf("unknown shape %q (difysim -list shows them)", *shape)}
	}

	sim := difytest.NewHandler(difytest.Options{APIKey: *key, AnyAppKey: *key == "", Scenario: *scenario, Shape: *shape, Latency: *latency})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	base := baseURL(ln.Addr())
	keyNote, keyShown := "any key that starts with app-", "app-test"
	if *key != "" {
		keyNote, keyShown = "only the key given with -key", *key
	}
	fmt.Fprintf(stderr, `difysim: serving the Dify Service API at %s (scenario %s, shape %s), accepting %s.
Point difybot at it with:
  DIFY_BASE_URL=%s
  DIFY_API_KEY=%s
`, base, *scenario, *shape, keyNote, base, keyShown)
	if ready != nil {
		ready(base)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }() // Ends at Shutdown with ErrServerClosed.

	select {
	case err = <-errc:
		sim.Close()
		return err
	case <-ctx.Done():
	}
	// Stop the runs first, so that open streams end and Shutdown finds the connections idle.
	sim.Close()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	<-errc
	fmt.Fprintln(stderr, "difysim: stopped")
	return nil
}

// baseURL is the URL clients use: an unspecified listen address is reachable on loopback.
func baseURL(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return "http://" + a.String() + "/v1"
	}
	host := tcp.IP.String()
	if tcp.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, fmt.Sprint(tcp.Port)) + "/v1"
}

// printCatalogue prints the scenarios as a table, then, after a blank line, the shapes as another.
func printCatalogue(w io.Writer, scenarios []difytest.Scenario, shapes []difytest.Shape) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCODE\tDESCRIPTION")
	for _, s := range scenarios {
		code := s.Code
		if code == "" {
			code = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, code, s.Description)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSHAPE\tDESCRIPTION")
	for _, s := range shapes {
		fmt.Fprintf(tw, "%s\t%s\n", s.Name, s.Description)
	}
	return tw.Flush()
}
