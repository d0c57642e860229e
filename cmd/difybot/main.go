// Command difybot puts Dify workflows into Slack and LINE.
//
//	difybot serve                    run the bot (default)
//	difybot doctor                   check the configuration, Dify and the platforms
//	difybot run -image F -text T     one message through the pipeline, steps printed
//	difybot demo                     the bot with a simulated Dify, web chat and admin page
//	difybot version                  the version, commit and Go version
//
// Configuration comes from the environment and ./.env (or -env-file F); `difybot COMMAND --help` lists it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	var ex exitError
	switch {
	case errors.As(err, &ex):
		os.Exit(int(ex))
	case err != nil:
		fmt.Fprintln(os.Stderr, "difybot:", err)
		os.Exit(1)
	}
}

// exitError ends the process with a status after the command has already explained itself.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// run is the whole program, with the operating system passed in so tests can drive it.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd := "serve"
	switch {
	case len(args) > 0 && isHelp(args[0]):
		printUsage(stdout)
		return nil
	case len(args) > 0 && args[0] != "" && args[0][0] != '-':
		cmd, args = args[0], args[1:]
	}
	if cmd == "help" { // difybot help [command]
		if len(args) == 0 {
			printUsage(stdout)
			return nil
		}
		cmd, args = args[0], []string{"-h"}
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, args, getenv, stdout, stderr)
	case "doctor":
		err = doctor(ctx, args, getenv, stdout, stderr)
	case "run":
		err = runOnce(ctx, args, getenv, stdout, stderr)
	case "demo":
		err = demo(ctx, args, getenv, stdout, stderr)
	case "version":
		err = version(args, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "difybot: unknown command %q\n\n", cmd)
		printUsage(stderr)
		return exitError(2)
	}
	if errors.Is(err, errHelpShown) {
		return nil
	}
	return err
}

func isHelp(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }
