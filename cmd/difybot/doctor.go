package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/store"
	"github.com/difybot/difybot/config"
	"github.com/difybot/difybot/dify"
	"github.com/rs/zerolog"
)

// checklist prints one line per check and remembers whether any failed.
type checklist struct {
	w      io.Writer
	failed int
	prefix string // Names the app being checked, when there are several.
}

func (c *checklist) ok(name, detail string) {
	fmt.Fprintf(c.w, "✅ %s%s: %s\n", c.prefix, name, detail)
}

func (c *checklist) report(ch bot.Check) {
	if ch.OK && ch.Warn {
		fmt.Fprintf(c.w, "⚠️ %s: %s\n", ch.Name, ch.Detail)
		for _, f := range ch.Fixes {
			fmt.Fprintf(c.w, "   fix: %s\n", f)
		}
		return
	}
	if ch.OK {
		c.ok(ch.Name, ch.Detail)
		return
	}
	c.fail(ch.Name, ch.Detail, ch.Fixes...)
}

// skip is a check not run, because a problem already reported is its root cause, or a platform left off.
func (c *checklist) skip(name, why string) {
	fmt.Fprintf(c.w, "➖ %s%s: %s\n", c.prefix, name, why)
}

func (c *checklist) fail(name, problem string, fixes ...string) {
	c.failed++
	fmt.Fprintf(c.w, "❌ %s%s: %s\n", c.prefix, name, problem)
	for _, f := range fixes {
		fmt.Fprintf(c.w, "   fix: %s\n", f)
	}
}

// failDiag reports a Dify failure with the diagnosis's summary and checks, less "run difybot doctor": this is it.
func (c *checklist) failDiag(name string, err error) {
	d := bot.Diagnose(err)
	fixes := slices.DeleteFunc(d.Checks, func(s string) bool { return strings.HasPrefix(s, "difybot doctor") })
	c.fail(name, fmt.Sprintf("%s (%s)", d.Summary, d.Code), fixes...)
}

const doctorTimeout = 15 * time.Second

func doctor(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return doctorWith(ctx, args, getenv, stdout, stderr, platforms())
}

func doctorWith(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, specs []platformSpec) error {
	getenv, err := newFlags("doctor").parse(args, getenv, stdout, stderr)
	if err != nil {
		return err
	}
	c := &checklist{w: stdout}
	cfg, err := config.Load(getenv)
	problems := splitJoined(errors.Join(err, cfg.RequireServe()))
	// A platform's variables are reported with the platform; the others here. A problem with the base URL
	// or the key is the root cause of every Dify check, so those are not run.
	byPlatform := map[string][]string{}
	var blocksDify []string
	for _, e := range problems {
		name, msg, _ := strings.Cut(e.Error(), ": ")
		if sp, ok := specOf(specs, name); ok {
			byPlatform[sp.name] = append(byPlatform[sp.name], e.Error())
			continue
		}
		problem, fix, _ := strings.Cut(msg, "; ")
		c.fail(name, problem, nonEmpty(fix)...)
		if name == "DIFY_BASE_URL" || name == "DIFY_API_KEY" {
			blocksDify = append(blocksDify, name)
		}
	}
	if len(problems) == 0 {
		c.ok("configuration", "every variable is valid")
	}
	if len(blocksDify) > 0 {
		verb := " is fixed"
		if len(blocksDify) > 1 {
			verb = " are fixed"
		}
		c.skip("Dify", "not checked until "+strings.Join(blocksDify, " and ")+verb)
	} else {
		checkApps(ctx, c, cfg, problems)
	}
	checkStore(ctx, c, cfg)
	checkPlatforms(ctx, c, cfg, getenv, specs, byPlatform)
	if c.failed > 0 {
		fmt.Fprintf(stdout, "\n%d problem(s) found.\n", c.failed)
		return exitError(1)
	}
	fmt.Fprintln(stdout, "\nAll checks passed.")
	return nil
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// specOf finds the platform a variable belongs to by its prefix: SLACK_, LINE_, WEB_.
func specOf(specs []platformSpec, name string) (platformSpec, bool) {
	for _, sp := range specs {
		if strings.HasPrefix(name, strings.ToUpper(sp.name)+"_") {
			return sp, true
		}
	}
	return platformSpec{}, false
}

func splitJoined(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, splitJoined(e)...)
		}
		return out
	}
	return []error{err}
}

// checkApps checks every Dify app, each under its name when the apps file lists several; an app whose lines of
// the file have problems is not checked (they are its root cause), and its name says which one fails.
func checkApps(ctx context.Context, c *checklist, cfg config.Config, problems []error) {
	if len(cfg.Apps.List) == 0 {
		checkDify(ctx, c, cfg.Dify)
		return
	}
	for _, a := range cfg.Apps.List {
		c.prefix = "app " + a.Name + " · "
		bad := slices.ContainsFunc(problems, func(e error) bool {
			s := e.Error()
			return strings.Contains(s, " apps."+a.Name+".") || strings.Contains(s, " apps."+a.Name+":")
		})
		if bad {
			c.skip("Dify", "not checked until its lines of "+cfg.Apps.File+" are fixed")
			continue
		}
		checkDify(ctx, c, a.Dify)
	}
	c.prefix = ""
}

func checkDify(ctx context.Context, c *checklist, d config.Dify) {
	dc, err := dify.New(dify.Config{BaseURL: d.BaseURL, APIKey: d.APIKey.Reveal(), Logger: zerolog.Nop(),
		Retry: dify.RetryPolicy{MaxAttempts: 1}})
	if err != nil {
		c.fail("DIFY_BASE_URL", err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	defer cancel()
	info, err := dc.Info(ctx)
	if err != nil {
		c.failDiag("Dify app", err)
		return
	}
	mode := info.Mode
	if mode == "" {
		mode = "unknown (Dify before 1.0 does not say)"
	}
	c.ok("Dify app", fmt.Sprintf("%q answered at %s, mode %s", info.Name, d.BaseURL, mode))

	isChat := bot.ChatMode(info.Mode)
	switch {
	case d.AppMode == "workflow" && isChat:
		c.fail("DIFY_APP_MODE", fmt.Sprintf("set to workflow, but the key belongs to a %s app", info.Mode),
			"set DIFY_APP_MODE=chat (or auto), or use the API key of a workflow app")
	case d.AppMode == "chat" && info.Mode == "workflow":
		c.fail("DIFY_APP_MODE", "set to chat, but the key belongs to a workflow app",
			"set DIFY_APP_MODE=workflow (or auto), or use the API key of a chat app")
	case info.Mode == "completion":
		c.fail("DIFY_APP_MODE", "the key belongs to a completion app, which difybot does not run",
			"use the API key of a workflow or chatflow app")
	}

	app, err := bot.Discover(ctx, knownInfo{dc, info}, settingsOf(d))
	if err != nil {
		c.failDiag("Dify parameters", err)
		return
	}
	if app.Form == nil {
		c.ok("Dify run", "difybot sends: "+app.Summary())
		c.fail("Dify workflow", "Dify says the app is unavailable: a workflow app answers this until its workflow is published",
			"open the app in Dify and click Publish", "check the app's API access is enabled")
		return
	}
	c.ok("Dify inputs", "start form: "+app.FormSummary())
	reportInput(c, app, "DIFY_IMAGE_INPUT", d.ImageInput, app.ImageInput, true)
	if !app.Chat {
		reportInput(c, app, "DIFY_TEXT_INPUT", d.TextInput, app.TextInput, false)
	}
	for _, p := range app.Problems { // The start form's other fields: DIFY_INPUTS and required fields.
		if p.Name != "DIFY_IMAGE_INPUT" && p.Name != "DIFY_TEXT_INPUT" {
			c.report(p)
		}
	}
	c.ok("Dify run", "difybot sends: "+app.Summary())
	if d.ResponseMode == string(dify.Blocking) {
		c.fail("DIFY_RESPONSE_MODE", "blocking: runs over about 60–100 s are cut by proxies and Cloudflare (504/524), and progress cannot be shown",
			"set DIFY_RESPONSE_MODE=streaming")
	}
}

// knownInfo answers /v1/info from the call doctor already made, so discovery asks Dify only for the form.
type knownInfo struct {
	*dify.Client
	info *dify.Info
}

func (k knownInfo) Info(context.Context) (*dify.Info, error) { return k.info, nil }

// reportInput prints where one part of a message goes, as discovered, or the problem with the setting.
func reportInput(c *checklist, app *bot.App, env, setting, used string, image bool) {
	if i := slices.IndexFunc(app.Problems, func(p bot.Check) bool { return p.Name == env }); i >= 0 {
		c.report(app.Problems[i])
		return
	}
	field := func(v string) (dify.InputField, bool) {
		i := slices.IndexFunc(app.Form, func(f dify.InputField) bool { return f.Variable == v })
		if i < 0 {
			return dify.InputField{}, false
		}
		return app.Form[i], true
	}
	f, inForm := field(used)
	switch {
	case setting == config.Auto && inForm:
		c.ok(env, fmt.Sprintf("auto: %q", used))
	case setting == config.Auto && image:
		c.ok(env, "auto: no file variable takes images; images go to sys.files (enable file upload in the Start node's features)")
	case setting == config.Auto:
		c.ok(env, fmt.Sprintf("auto: no text variable; text goes to %q", used))
	case image && used == "":
		c.ok(env, "images go to sys.files")
	default:
		c.ok(env, fmt.Sprintf("%q (%s)", used, f.Type))
	}
}

// checkStore looks at the store without creating or migrating anything: doctor may run in any directory.
func checkStore(ctx context.Context, c *checklist, cfg config.Config) {
	ctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	defer cancel()
	found, err := store.Check(ctx, store.Config{DatabaseURL: cfg.DatabaseURL.Reveal(), SQLitePath: cfg.SQLitePath()})
	if err != nil {
		where := cfg.SQLitePath()
		fix := "check DATA_DIR, or set DATABASE_URL to use PostgreSQL"
		if cfg.DatabaseURL != "" {
			where, fix = "PostgreSQL (DATABASE_URL)", "check DATABASE_URL: host, port, user, password and database, and that PostgreSQL accepts connections from here"
		}
		c.fail("store", fmt.Sprintf("%s: %v", where, err), fix)
		return
	}
	c.ok("store", found)
}

// checkPlatforms runs each platform's own checks, through the same adapter serve builds. A platform whose
// variables have problems is reported once, with them (and as half configured when it is not on); serve with
// no platform on would never receive a message, which is a problem of its own.
func checkPlatforms(ctx context.Context, c *checklist, cfg config.Config, getenv func(string) string, specs []platformSpec, problems map[string][]string) {
	env := platformEnv{inbox: doctorInbox{}, log: zerolog.Nop(), check: true}
	on := 0
	var off []platformSpec
	for _, sp := range specs {
		p, err := sp.build(cfg, env)
		switch {
		case len(problems[sp.name]) > 0:
			label := sp.title
			if p == nil && err == nil && anySet(getenv, sp) {
				label += ": half configured"
			}
			for _, pr := range problems[sp.name] {
				problem, fix, _ := strings.Cut(pr, "; ")
				c.fail(label, problem, nonEmpty(fix)...)
			}
		case err != nil:
			c.fail(sp.title, err.Error())
		case p == nil:
			if sp.hint != "" {
				off = append(off, sp)
			}
		default:
			on++
			ctx, cancel := context.WithTimeout(ctx, doctorTimeout)
			checks := p.Checks(ctx)
			cancel()
			if len(checks) == 0 { // The web chat talks to no outside service.
				c.ok(sp.title, "on")
			}
			for _, ch := range checks {
				c.report(ch)
			}
		}
	}
	if on == 0 && len(problems) == 0 {
		var fixes []string
		for _, sp := range off {
			fixes = append(fixes, sp.title+": "+sp.hint)
		}
		c.fail("platforms", "none configured: serve would start and never receive a message", fixes...)
		return
	}
	for _, sp := range off {
		c.skip(sp.title, "off ("+sp.hint+")")
	}
}

// anySet reports whether any of a platform's variables is set.
func anySet(getenv func(string) string, sp platformSpec) bool {
	for _, g := range config.Groups() {
		for _, v := range g.Vars {
			if s, ok := specOf([]platformSpec{sp}, v.Name); ok && s.name == sp.name && strings.TrimSpace(getenv(v.Name)) != "" {
				return true
			}
		}
	}
	return false
}

// doctorInbox stands in for the queue while doctor builds adapters: doctor never accepts a message.
type doctorInbox struct{}

var errDoctorInbox = errors.New("doctor accepts no messages")

func (doctorInbox) Accept(context.Context, bot.Message) (bot.Run, bool, error) {
	return bot.Run{}, false, errDoctorInbox
}

func (doctorInbox) Retry(context.Context, bot.RetryRequest) error { return errDoctorInbox }
