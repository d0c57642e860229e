// Command difybot puts Dify workflows into Slack and LINE.
//
//	difybot serve                    run the bot (default)
//	difybot doctor                   check the configuration, Dify and the platforms
//	difybot run -image F -text T     one message through the pipeline, steps printed
//	difybot demo                     the bot with a simulated Dify, web chat and admin page
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
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stdout, stderr)
	case "doctor":
		return doctor(ctx, args, getenv, stdout, stderr)
	case "run":
		return runOnce(ctx, args, getenv, stdout, stderr)
	case "demo":
		return demo(ctx, args, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "difybot: unknown command %q\n\n%s", cmd, usage)
	return exitError(2)
}

const usage = `usage: difybot [command] [flags]

commands:
  serve                         run the bot (default); configured by environment variables (see .env.example)
  doctor                        check the configuration, Dify and the platforms; exit 1 on any problem
  run -image F -text T [-json]  send one message through the pipeline and print its steps and reply
  demo                          run the bot with a simulated Dify, the web chat and the admin page
`
