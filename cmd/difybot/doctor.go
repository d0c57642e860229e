package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/store"
	"github.com/difybot/difybot/config"
	"github.com/difybot/difybot/dify"
	"github.com/line/line-bot-sdk-go/v8/linebot/messaging_api"
	"github.com/rs/zerolog"
	"github.com/slack-go/slack"
)

// checklist prints one line per check and remembers whether any failed.
type checklist struct {
	w      io.Writer
	failed int
}

func (c *checklist) ok(name, detail string) {
	fmt.Fprintf(c.w, "✅ %s: %s\n", name, detail)
}

func (c *checklist) fail(name, problem string, fixes ...string) {
	c.failed++
	fmt.Fprintf(c.w, "❌ %s: %s\n", name, problem)
	for _, f := range fixes {
		fmt.Fprintf(c.w, "   fix: %s\n", f)
	}
}

// failDiag reports a Dify failure with the diagnosis's summary and checks.
func (c *checklist) failDiag(name string, err error) {
	d := bot.Diagnose(err)
	c.fail(name, fmt.Sprintf("%s (%s)", d.Summary, d.Code), d.Checks...)
}

const doctorTimeout = 15 * time.Second

func doctor(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	c := &checklist{w: stdout}
	cfg, err := config.Load(getenv)
	if err != nil {
		for _, e := range splitJoined(err) {
			name, msg, _ := strings.Cut(e.Error(), ": ")
			c.fail(name, msg)
		}
	} else {
		c.ok("configuration", "every variable is valid")
	}
	if err := cfg.RequireServe(); err != nil {
		c.fail("DIFY_API_KEY", err.Error())
	} else {
		checkDify(ctx, c, cfg)
	}
	checkStore(ctx, c, cfg)
	checkSlack(ctx, c, cfg)
	checkLINE(ctx, c, cfg)
	if c.failed > 0 {
		fmt.Fprintf(stdout, "\n%d problem(s) found.\n", c.failed)
		return exitError(1)
	}
	fmt.Fprintln(stdout, "\nAll checks passed.")
	return nil
}

func splitJoined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func checkDify(ctx context.Context, c *checklist, cfg config.Config) {
	dc, err := dify.New(dify.Config{BaseURL: cfg.Dify.BaseURL, APIKey: cfg.Dify.APIKey.Reveal(), Logger: zerolog.Nop(),
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
	c.ok("Dify app", fmt.Sprintf("%q answered at %s, mode %s", info.Name, cfg.Dify.BaseURL, mode))

	isChat := info.Mode == "chat" || info.Mode == "agent-chat" || info.Mode == "advanced-chat"
	switch {
	case cfg.Dify.AppMode == "workflow" && isChat:
		c.fail("DIFY_APP_MODE", fmt.Sprintf("set to workflow, but the key belongs to a %s app", info.Mode),
			"set DIFY_APP_MODE=chat (or auto), or use the API key of a workflow app")
	case cfg.Dify.AppMode == "chat" && info.Mode == "workflow":
		c.fail("DIFY_APP_MODE", "set to chat, but the key belongs to a workflow app",
			"set DIFY_APP_MODE=workflow (or auto), or use the API key of a chat app")
	case info.Mode == "completion":
		c.fail("DIFY_APP_MODE", "the key belongs to a completion app, which difybot does not run",
			"use the API key of a workflow or chatflow app")
	}

	params, err := dc.Parameters(ctx)
	if err != nil {
		var ae *dify.APIError
		if errors.As(err, &ae) && ae.Code == "app_unavailable" {
			c.fail("Dify workflow", "Dify says the app is unavailable: a workflow app answers this until its workflow is published",
				"open the app in Dify and click Publish", "check the app's API access is enabled")
			return
		}
		c.failDiag("Dify parameters", err)
		return
	}
	var names []string
	imageVar, textVar := "", ""
	for _, f := range params.UserInputForm {
		names = append(names, fmt.Sprintf("%s (%s)", f.Variable, f.Type))
		if imageVar == "" && f.AcceptsImages() {
			imageVar = f.Variable
		}
		if textVar == "" && (f.Type == "text-input" || f.Type == "paragraph") {
			textVar = f.Variable
		}
	}
	c.ok("Dify inputs", "start form: "+orNone(strings.Join(names, ", ")))
	checkInput(c, "DIFY_IMAGE_INPUT", cfg.Dify.ImageInput, params.UserInputForm, true, imageVar)
	if !isChat {
		checkInput(c, "DIFY_TEXT_INPUT", cfg.Dify.TextInput, params.UserInputForm, false, textVar)
	}
	if cfg.Dify.ResponseMode == string(dify.Blocking) {
		c.fail("DIFY_RESPONSE_MODE", "blocking: runs over about 60–100 s are cut by proxies and Cloudflare (504/524), and progress cannot be shown",
			"set DIFY_RESPONSE_MODE=streaming")
	}
}

func checkInput(c *checklist, env, value string, form []dify.InputField, image bool, found string) {
	if value == config.Auto {
		switch {
		case found != "":
			c.ok(env, fmt.Sprintf("auto: %q", found))
		case image:
			c.ok(env, "auto: no file variable takes images; images go to sys.files (enable file upload in the Start node's features)")
		default:
			c.ok(env, `auto: no text variable; text goes to "query"`)
		}
		return
	}
	if image && value == "files" {
		c.ok(env, "images go to sys.files")
		return
	}
	i := slices.IndexFunc(form, func(f dify.InputField) bool { return f.Variable == value })
	switch {
	case i < 0:
		c.fail(env, fmt.Sprintf("%q is not a variable of the workflow's Start node", value),
			fmt.Sprintf("use one of the variables listed above, or set %s=auto", env))
	case image && !form[i].AcceptsImages():
		c.fail(env, fmt.Sprintf("%q is a %s variable that does not accept images", value, form[i].Type),
			"in the Start node, make it a file variable that allows images, or choose another variable")
	default:
		c.ok(env, fmt.Sprintf("%q (%s)", value, form[i].Type))
	}
}

func orNone(s string) string {
	if s == "" {
		return "no variables"
	}
	return s
}

func checkStore(ctx context.Context, c *checklist, cfg config.Config) {
	ctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	defer cancel()
	where := cfg.SQLitePath()
	if cfg.DatabaseURL != "" {
		where = "PostgreSQL (DATABASE_URL)"
	}
	st, err := store.Open(ctx, store.Config{DatabaseURL: cfg.DatabaseURL.Reveal(), SQLitePath: cfg.SQLitePath(), Workers: 1, Logger: zerolog.Nop()})
	if err != nil {
		c.fail("store", fmt.Sprintf("%s: %v", where, err), "check DATABASE_URL, or that DATA_DIR is writable")
		return
	}
	defer st.Close()
	c.ok("store", where+" opened and migrated")
}

func checkSlack(ctx context.Context, c *checklist, cfg config.Config) {
	if !cfg.Slack.Enabled() {
		c.ok("Slack", "not configured (set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET or SLACK_APP_TOKEN to enable)")
		return
	}
	ctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	defer cancel()
	api := slack.New(cfg.Slack.BotToken.Reveal(), slack.OptionAPIURL(cfg.Slack.APIURL), slack.OptionHTTPClient(&http.Client{Timeout: doctorTimeout}))
	res, err := api.AuthTestContext(ctx)
	if err != nil {
		c.fail("Slack", "auth.test failed: "+err.Error(), "check SLACK_BOT_TOKEN is the Bot User OAuth Token (xoxb-) of an installed app")
		return
	}
	c.ok("Slack", fmt.Sprintf("signed in as %s in %s", res.User, res.Team))
}

func checkLINE(ctx context.Context, c *checklist, cfg config.Config) {
	if !cfg.LINE.Enabled() {
		c.ok("LINE", "not configured (set LINE_CHANNEL_SECRET and LINE_CHANNEL_TOKEN to enable)")
		return
	}
	api, err := messaging_api.NewMessagingApiAPI(cfg.LINE.ChannelToken.Reveal(), messaging_api.WithEndpoint(cfg.LINE.APIURL),
		messaging_api.WithHTTPClient(&http.Client{Timeout: doctorTimeout}))
	if err != nil {
		c.fail("LINE", err.Error())
		return
	}
	info, err := api.WithContext(ctx).GetBotInfo()
	if err != nil {
		c.fail("LINE", "bot info failed: "+err.Error(), "check LINE_CHANNEL_TOKEN is the channel access token (long-lived) of the Messaging API channel")
		return
	}
	c.ok("LINE", fmt.Sprintf("bot %s (%s)", info.DisplayName, info.BasicId))
}
