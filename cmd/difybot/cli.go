package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"slices"
	"text/tabwriter"

	"github.com/difybot/difybot/config"
)

// command is one subcommand as its help describes it.
type command struct {
	name     string
	synopsis string   // The flags after the name, in usage form.
	short    string   // What it does, in the command list.
	about    string   // What it does, in a few lines.
	groups   []string // The environment variables that matter to it, by config group; none for demo.
}

var allGroups = []string{config.GroupDify, config.GroupSlack, config.GroupLINE, config.GroupServer, config.GroupBreaker, config.GroupLogs}

// commands are difybot's subcommands, in the order the usage lists them.
var commands = []command{
	{"serve", "[-env-file F]", "run the bot (default)", "Run the bot (the default command): the webhooks of every configured platform, the\nadmin API, /healthz, /readyz and /metrics on HTTP_ADDR. Needs DIFY_API_KEY and Slack or LINE.", allGroups},
	{"doctor", "[-env-file F]", "check the configuration, Dify and the platforms; exit 1 on a problem", "Check the configuration, the Dify URL, key, app and start form, the store, and each chat\nplatform; print ✅/❌ with the fix for each problem. Exit status 1 on any problem.", allGroups},
	{"run", "-image F -text T [-json] [-app NAME] [-env-file F]", "one message through the pipeline, steps printed", "Send one message through the same pipeline as serve, with a private store, and print\nits steps and reply (-json: status, reply, diagnosis and steps as JSON). Exit status 1\nwhen the run fails.", []string{config.GroupDify, config.GroupServer, config.GroupLogs}},
	{"demo", "[-addr A] [-scenario S] [-shape S]", "the bot with a simulated Dify, the web chat and the admin page", "Run the bot with a simulated Dify, the web chat and the admin page; print their URLs\nand a fresh admin token. Needs no configuration and does not read .env.", nil},
	{"version", "", "the version, commit and Go version", "Print difybot's version, commit and Go version.", nil},
}

func commandNamed(name string) (command, bool) {
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == name })
	if i < 0 {
		return command{}, false
	}
	return commands[i], true
}

// printUsage is `difybot --help`.
func printUsage(w io.Writer) {
	fmt.Fprint(w, "difybot puts Dify workflows into Slack and LINE.\n\nusage: difybot [command] [flags]\n\ncommands:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s %s\t%s\n", c.name, c.synopsis, c.short)
	}
	tw.Flush()
	fmt.Fprint(w, `
difybot COMMAND --help says more about one command. Configuration comes from environment variables, and
from ./.env (or -env-file F) under them: copy .env.example to .env, fill in DIFY_BASE_URL and DIFY_API_KEY,
and run difybot doctor. Every variable is explained in .env.example.
`)
}

// errHelpShown ends a command that printed its help: run returns nil for it.
var errHelpShown = errors.New("help shown")

// cmdFlags is a command's flag set; commands that read the configuration also take -env-file.
type cmdFlags struct {
	*flag.FlagSet
	envFile *string
}

func newFlags(name string) *cmdFlags {
	f := &cmdFlags{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError)}
	if c, ok := commandNamed(name); ok && c.groups != nil {
		f.envFile = f.String("env-file", "", "read `F` as the .env file instead of ./.env (variables set in the environment win)")
	}
	f.Usage = func() {} // parse prints the help itself, to stdout when asked for and to stderr after a mistake.
	return f
}

// parse parses args and, for commands that read the configuration, returns getenv with the .env file under it.
// After -h or --help it prints the command's help and returns errHelpShown; after a mistake, the mistake and
// the help, and exit status 2.
func (f *cmdFlags) parse(args []string, getenv func(string) string, stdout, stderr io.Writer) (func(string) string, error) {
	f.SetOutput(stderr)
	err := f.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		f.help(stdout)
		return nil, errHelpShown
	case err != nil:
		fmt.Fprintln(stderr)
		f.help(stderr)
		return nil, exitError(2)
	case f.NArg() > 0:
		fmt.Fprintf(stderr, "difybot %s: unexpected arguments %q\n\n", f.Name(), f.Args())
		f.help(stderr)
		return nil, exitError(2)
	case f.envFile == nil:
		return getenv, nil
	}
	getenv, err = withEnvFile(getenv, *f.envFile, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "difybot %s: %v\n", f.Name(), err)
		return nil, exitError(2)
	}
	return getenv, nil
}

// help prints what the command does, its flags, and the environment variables that matter to it.
func (f *cmdFlags) help(w io.Writer) {
	c, _ := commandNamed(f.Name())
	fmt.Fprintf(w, "usage: difybot %s %s\n\n%s\n", c.name, c.synopsis, c.about)
	n := 0
	f.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprint(w, "\nflags:\n")
		f.SetOutput(w)
		f.PrintDefaults()
	}
	if len(c.groups) == 0 {
		return
	}
	fmt.Fprint(w, "\nenvironment (and ./.env; every variable is explained in .env.example):\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, g := range config.Groups() {
		if !slices.Contains(c.groups, g.Title) {
			continue
		}
		fmt.Fprintf(tw, "  %s\n", g.Title)
		for _, v := range g.Vars {
			fmt.Fprintf(tw, "    %s\t%s\n", v.Name, v.Meaning)
		}
	}
	tw.Flush()
}

// version prints the module version, the commit and the Go version the binary was built with. `go install
// …@v1.2.3` stamps the version; a `go build` in a git checkout stamps the commit (", modified" with local changes).
func version(args []string, stdout, stderr io.Writer) error {
	f := newFlags("version")
	if _, err := f.parse(args, nil, stdout, stderr); err != nil {
		return err
	}
	fmt.Fprintln(stdout, versionLine())
	return nil
}

// releaseVersion is set by a release build: go build -ldflags "-X main.releaseVersion=v1.2.3" ./cmd/difybot.
var releaseVersion string

func versionLine() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "difybot " + cmp.Or(releaseVersion, "(devel)") + " (no build information)"
	}
	v := cmp.Or(releaseVersion, bi.Main.Version, "(devel)")
	var rev, at, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = ", modified"
			}
		}
	}
	// GOFLAGS=-buildvcs=false, go run and builds outside a checkout stamp no commit; say how to get one.
	commit := "commit unknown: build in a git checkout with -buildvcs=true"
	if rev != "" {
		commit = "commit " + rev[:min(len(rev), 12)]
		if at != "" {
			commit += " of " + at
		}
	}
	return fmt.Sprintf("difybot %s (%s%s) built with %s", v, commit, modified, bi.GoVersion)
}
