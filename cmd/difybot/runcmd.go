package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/config"
)

// cliPlatform is the platform of `difybot run`: files come from disk and the reply is kept for printing.
type cliPlatform struct{ replies []bot.Reply }

func (*cliPlatform) Name() string { return "cli" }

func (*cliPlatform) OpenFile(_ context.Context, _ bot.Message, f bot.File) (io.ReadCloser, error) {
	file, err := os.Open(f.URL)
	if err != nil {
		return nil, bot.Classified(bot.CodePlatformDownloadFailed, "open image", err)
	}
	return file, nil
}

func (c *cliPlatform) Reply(_ context.Context, _ bot.Message, r bot.Reply) error {
	c.replies = append(c.replies, r)
	return nil
}

// runResult is what `difybot run -json` prints.
type runResult struct {
	RunID     string          `json:"run_id"`
	Status    bot.RunStatus   `json:"status"`
	Reply     string          `json:"reply"`
	Diagnosis *bot.Diagnosis  `json:"diagnosis,omitempty"`
	Steps     []bot.Step      `json:"steps"`
	Nodes     []bot.NodeEvent `json:"nodes,omitempty"`
	// Files are the files of the answer (the run's store is temporary: they are listed, not kept).
	Files []runFile `json:"files,omitempty"`
}

// runFile is a file of the answer as `difybot run -json` lists it.
type runFile struct {
	Name     string `json:"name"`
	MIMEType string `json:"mime_type"`
	Size     int64  `json:"size"`
}

func runOnce(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("run")
	image := fs.String("image", "", "path of an image to send")
	text := fs.String("text", "", "text to send")
	asJSON := fs.Bool("json", false, "print the outcome as JSON on stdout")
	app := fs.String("app", "", "the app of DIFY_APPS_FILE to run (default: the file's default app)")
	getenv, err := fs.parse(args, getenv, stdout, stderr)
	if err != nil {
		return err
	}
	if *image == "" && *text == "" {
		fmt.Fprintln(stderr, "difybot run: give -image, -text or both")
		return exitError(2)
	}
	if *image != "" {
		// A local file that cannot be read is the command line's mistake, not a chat platform's download
		// failure: say which file and why, before anything runs.
		f, err := os.Open(*image)
		if err == nil {
			var st os.FileInfo
			if st, err = f.Stat(); err == nil && st.IsDir() {
				err = errors.New("is a directory")
			}
			f.Close()
		}
		if err != nil {
			fmt.Fprintf(stderr, "difybot run: -image %s: %v\n", *image, unwrapPath(err))
			return exitError(2)
		}
	}
	cfg, err := loadConfig(getenv, stderr, true)
	if err != nil {
		return err
	}
	// One run needs no shared queue: a private SQLite store keeps it apart from a running bot.
	tmp, err := os.MkdirTemp("", "difybot-run-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	cfg.DatabaseURL, cfg.DataDir = "", tmp
	cfg.Log.Format = "console" // Steps are printed live for a person.
	// One run has no queue to wait in: what serve would hold (an open breaker, Dify's concurrency cap) ends
	// it with the diagnosis at once.
	cfg.Breaker.HoldMax = time.Nanosecond
	log := newLogger(cfg.Log, stderr)

	cli := &cliPlatform{}
	sys, err := build(ctx, cfg, log, nil, platformEnv{}, cli)
	if err != nil {
		return err
	}
	defer sys.Close()

	if *app != "" && !slices.ContainsFunc(cfg.AppList(), func(a config.App) bool { return a.Name == *app }) {
		var names []string
		for _, a := range cfg.AppList() {
			names = append(names, a.Name)
		}
		fmt.Fprintf(stderr, "difybot run: -app %s: no such app (the apps are: %s)\n", *app, strings.Join(names, ", "))
		return exitError(2)
	}
	m := bot.Message{Platform: cli.Name(), EventID: rand.Text(), ChatID: "cli", UserID: "cli", Text: *text, App: *app}
	if *image != "" {
		abs, err := filepath.Abs(*image)
		if err != nil {
			return err
		}
		m.Files = []bot.File{{ID: filepath.Base(abs), Name: filepath.Base(abs), URL: abs}}
	}
	r, _, err := sys.inbox.Accept(ctx, m)
	if err != nil {
		return err
	}
	if err := sys.bot.Process(ctx, r.ID); err != nil {
		return err
	}
	if r, err = sys.store.Run(ctx, r.ID); err != nil {
		return err
	}
	res := runResult{RunID: r.ID, Status: r.Status, Reply: r.Reply, Diagnosis: r.Diagnosis}
	if n := len(cli.replies); n > 0 {
		for _, f := range cli.replies[n-1].Files {
			res.Files = append(res.Files, runFile{Name: f.Name, MIMEType: f.MIMEType, Size: f.Size})
		}
	}
	if res.Steps, err = sys.store.Steps(ctx, r.ID); err != nil {
		return err
	}
	if res.Nodes, err = sys.store.NodeEvents(ctx, r.ID); err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(stdout, r.Reply)
		if r.Diagnosis != nil {
			fmt.Fprintf(stdout, "\ndiagnosis: %s — %s\n", r.Diagnosis.Code, r.Diagnosis.Summary)
		}
	}
	if r.Status != bot.RunSucceeded {
		return exitError(1)
	}
	return nil
}

// unwrapPath drops the *fs.PathError's repetition of the path the message already names.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
