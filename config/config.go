// Package config reads difybot's settings from the environment.
//
// It is the only place in the repository where environment variable names
// appear: other packages receive a Config and never call os.Getenv. Load checks
// every variable and reports all problems at once, so one restart is enough to
// see everything that is wrong. Secrets are held in the Secret type, which
// prints as [redacted] wherever a Config ends up in a log or an error.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Auto is the value of DIFY_APP_MODE, DIFY_IMAGE_INPUT, DIFY_TEXT_INPUT and
// DIFY_OUTPUT_KEY that asks difybot to find the setting from the Dify app.
const Auto = "auto"

// Config is difybot's whole configuration, grouped by concern.
type Config struct {
	Dify Dify
	// Apps are DIFY_APPS_FILE's apps and routes; zero without the file (Dify is then the one app).
	Apps  Apps
	Slack Slack
	LINE  LINE

	HTTPAddr    string // The one listener, such as ":8080".
	AdminToken  Secret // Bearer token for /admin/*; empty turns the admin API off.
	WebChat     bool   // Serve the web chat at / (behind AdminToken); demo always does.
	DatabaseURL Secret // A postgres:// URL; empty means SQLite (see SQLitePath).
	DataDir     string // Where the SQLite database and other local files live.

	// PendingTTL is how long a photo (or a text) waits for the rest of its request.
	PendingTTL time.Duration

	Workers       int   // Runs in flight per replica.
	MaxImageBytes int64 // The largest photo downloaded; what is uploaded is shrunk to fit Dify's limit.
	// MaxImagePixels: images with more pixels are refused without being decoded.
	MaxImagePixels int64
	// ImageMaxSide: photos with a longer side are scaled down to it before upload; 0 never resizes.
	ImageMaxSide int
	// FetchTimeout is the limit for downloading one photo from the platform (a download that brings no byte for
	// 15 s is given up sooner).
	FetchTimeout time.Duration
	// ReplicaTimeout is how long a replica sharing PostgreSQL may go silent before the others take over its runs.
	ReplicaTimeout time.Duration
	// UserConcurrency is how many runs one person may have in flight at once; 0 is no limit.
	UserConcurrency int
	// UserRate is how many messages one person may send per minute before the bot asks them to slow down;
	// 0 is no limit.
	UserRate int
	// HumanInputBy is who may answer a workflow's Human Input question: "requester" or "anyone".
	HumanInputBy string

	// PublicURL is the bot's public https base, for links to the files it sends (/files/…); "" when unknown.
	PublicURL string
	// MaxOutputFileBytes is the largest file taken from a Dify answer.
	MaxOutputFileBytes int64
	// OutputFileTTL is how long files sent to people stay in the store and downloadable.
	OutputFileTTL time.Duration

	Breaker  Breaker
	Language string // Language of the messages people see: "en" or "ja".
	Log      Log
}

// Dify configures the Dify app difybot runs.
type Dify struct {
	BaseURL      string        // Service API base ending in /v1, without a trailing slash.
	APIKey       Secret        // The app's API key (app-…); required by serve.
	AppMode      string        // "auto", "workflow" or "chat".
	ResponseMode string        // "streaming" or "blocking".
	ImageInput   string        // Start variable for the image, or "auto".
	TextInput    string        // Start variable for the text, or "auto".
	OutputKey    string        // Outputs to reply with, comma-separated in order, or "auto".
	Timeout      time.Duration // Limit for one run.
	// ImagePrompt is the text sent with a photo that comes alone; empty: the start field's default, else ask.
	ImagePrompt string
	// Inputs are fixed values for other start-form fields (DIFY_INPUTS, a JSON object), checked against the form
	// by the bot and doctor.
	Inputs map[string]any
	// FilesURL is the base of relative file links in Dify's answers (Dify's FILES_URL); "" is the origin of BaseURL.
	FilesURL string
}

// Slack configures the Slack adapter.
type Slack struct {
	BotToken      Secret // xoxb-…
	SigningSecret Secret // Verifies Events API requests over HTTP.
	AppToken      Secret // xapp-…; set to use Socket Mode instead of HTTP.
	APIURL        string // Web API base, always ending in '/'.
	Streaming     string // SLACK_STREAMING: auto, on or off.
}

// Enabled reports whether Slack is configured: a bot token plus either a
// signing secret (HTTP) or an app token (Socket Mode).
func (s Slack) Enabled() bool {
	return s.BotToken != "" && (s.SigningSecret != "" || s.AppToken != "")
}

// SocketMode reports whether Slack events arrive over Socket Mode rather than
// HTTP. An app token wins over a signing secret when both are set.
func (s Slack) SocketMode() bool {
	return s.BotToken != "" && s.AppToken != ""
}

// LINE configures the LINE adapter.
type LINE struct {
	ChannelSecret Secret // Verifies webhook signatures.
	ChannelToken  Secret // Channel access token for the Messaging API.
	APIURL        string // Messaging API base, without a trailing slash.
	DataAPIURL    string // Content (blob) API base, without a trailing slash.
}

// Enabled reports whether LINE is configured.
func (l LINE) Enabled() bool {
	return l.ChannelSecret != "" && l.ChannelToken != ""
}

// Breaker configures the circuit breaker in front of Dify.
type Breaker struct {
	FailureRatio float64       // Trip when failures/requests reaches this (0 < r <= 1).
	MinRequests  uint32        // ... over at least this many requests.
	OpenFor      time.Duration // Stay open this long before a trial request.
	HoldMax      time.Duration // Hold jobs this long while open before giving up.
}

// Log configures the logger.
type Log struct {
	Level  string // "debug", "info", "warn" or "error".
	Format string // "json" or "console".
}

// SQLitePath returns the SQLite database file when DatabaseURL is empty, and
// "" when Postgres is in use.
func (c Config) SQLitePath() string {
	if c.DatabaseURL != "" {
		return ""
	}
	return filepath.Join(c.DataDir, "difybot.db")
}

// RequireServe reports what serve needs that Load allows to be absent. Load
// leaves these optional so that demo and doctor can start without them.
func (c Config) RequireServe() error {
	var errs []error
	if c.Dify.APIKey == "" && len(c.Apps.List) == 0 {
		errs = append(errs, errors.New("DIFY_API_KEY: required for serve; "+whereAPIKey))
	}
	return errors.Join(errs...)
}

const whereAPIKey = "find it in Dify → the app → API Access → API Key (it starts with app-)"

// Load reads the configuration through getenv (os.Getenv in production, a map
// in tests). An empty variable means "unset" and takes its default, because
// compose files pass unset variables through as empty strings.
//
// When anything is wrong, Load returns every problem joined with errors.Join,
// one line per problem, and a Config holding defaults in place of the values
// it could not use, so that doctor can go on checking the rest. Secrets that
// fail a check are kept, because the checks only catch likely mistakes.
// Secret values never appear in the errors.
func Load(getenv func(string) string) (Config, error) {
	l := &loader{getenv: getenv}
	var c Config

	c.Dify = Dify{
		BaseURL:      l.difyBaseURL("DIFY_BASE_URL", "https://api.dify.ai/v1"),
		APIKey:       l.difyAPIKey("DIFY_API_KEY"),
		AppMode:      l.enum("DIFY_APP_MODE", Auto, Auto, "workflow", "chat"),
		ResponseMode: l.enum("DIFY_RESPONSE_MODE", "streaming", "streaming", "blocking"),
		ImageInput:   l.variable("DIFY_IMAGE_INPUT"),
		TextInput:    l.variable("DIFY_TEXT_INPUT"),
		OutputKey:    l.variables("DIFY_OUTPUT_KEY"),
		Timeout:      l.duration("DIFY_TIMEOUT", 10*time.Minute),
		ImagePrompt:  strings.TrimSpace(l.str("IMAGE_PROMPT", "")),
		Inputs:       l.jsonObject("DIFY_INPUTS"),
		FilesURL:     l.httpURL("DIFY_FILES_URL", "", false),
	}
	c.Apps = l.appsFile("DIFY_APPS_FILE", c.Dify)
	c.PendingTTL = l.duration("PENDING_TTL", 10*time.Minute)
	c.Slack = Slack{
		BotToken:      l.slackToken("SLACK_BOT_TOKEN"),
		SigningSecret: l.slackSigningSecret("SLACK_SIGNING_SECRET"),
		AppToken:      l.slackToken("SLACK_APP_TOKEN"),
		APIURL:        l.httpURL("SLACK_API_URL", "https://slack.com/api/", true),
		Streaming:     l.enum("SLACK_STREAMING", "auto", "auto", "on", "off"),
	}
	c.LINE = LINE{
		ChannelSecret: l.lineSecret("LINE_CHANNEL_SECRET"),
		ChannelToken:  l.lineToken("LINE_CHANNEL_TOKEN"),
		APIURL:        l.httpURL("LINE_API_URL", "https://api.line.me", false),
		DataAPIURL:    l.httpURL("LINE_DATA_API_URL", "https://api-data.line.me", false),
	}
	c.HTTPAddr = l.addr("HTTP_ADDR", ":8080")
	c.AdminToken = l.adminToken("ADMIN_TOKEN")
	c.WebChat = l.enum("WEB_CHAT", "off", "off", "on") == "on"
	if c.WebChat && c.AdminToken == "" {
		c.WebChat = false // An open chat on a public listener would let anyone run the workflow.
		l.bad("WEB_CHAT", "on", "needs ADMIN_TOKEN", "in serve the web chat is behind the admin token")
	}
	c.DatabaseURL = l.databaseURL("DATABASE_URL")
	c.DataDir = l.str("DATA_DIR", "./data")
	c.Workers = int(l.positive("WORKERS", 64, math.MaxInt32))
	c.MaxImageBytes = l.size("MAX_IMAGE_BYTES", 25<<20)
	c.MaxImagePixels = int64(l.positive("MAX_IMAGE_PIXELS", 40_000_000, math.MaxInt64))
	c.ImageMaxSide = int(l.whole("IMAGE_MAX_SIDE", 2048, math.MaxInt32))
	c.FetchTimeout = l.duration("FETCH_TIMEOUT", 60*time.Second)
	c.ReplicaTimeout = l.duration("REPLICA_TIMEOUT", time.Minute)
	if c.ReplicaTimeout < 3*time.Second {
		l.bad("REPLICA_TIMEOUT", c.ReplicaTimeout.String(), "must be at least 3s", "a replica says it is alive every sixth of it")
		c.ReplicaTimeout = time.Minute
	}
	c.UserConcurrency = int(l.whole("USER_CONCURRENCY", 2, 1000))
	c.UserRate = l.perMinute("USER_RATE", 30)
	c.PublicURL = l.publicURL("PUBLIC_URL")
	c.MaxOutputFileBytes = l.size("MAX_OUTPUT_FILE_BYTES", 20<<20)
	c.OutputFileTTL = l.duration("OUTPUT_FILE_TTL", 7*24*time.Hour)
	c.HumanInputBy = l.enum("HUMAN_INPUT_BY", "requester", "requester", "anyone")
	c.Breaker = Breaker{
		FailureRatio: l.ratio("BREAKER_FAILURE_RATIO", 0.5),
		MinRequests:  uint32(l.positive("BREAKER_MIN_REQUESTS", 5, math.MaxUint32)),
		OpenFor:      l.duration("BREAKER_OPEN_FOR", 30*time.Second),
		HoldMax:      l.duration("BREAKER_HOLD_MAX", 15*time.Minute),
	}
	c.Language = l.enum("BOT_LANGUAGE", "en", "en", "ja")
	c.Log = Log{
		Level:  l.enum("LOG_LEVEL", "info", "debug", "info", "warn", "error"),
		Format: l.enum("LOG_FORMAT", "json", "json", "console"),
	}

	// Pairs are checked after every variable is read, so each half's own
	// problems are reported too.
	l.pairs(c)
	return c, errors.Join(l.errs...)
}

// jsonObject reads a JSON object of fixed values, such as {"language":"ja","detail":"high"}.
func (l *loader) jsonObject(name string) map[string]any {
	raw := strings.TrimSpace(l.get(name, false))
	if raw == "" {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil || m == nil {
		l.bad(name, raw, "is not a JSON object", `write the start-form values as {"variable":"value",…}`)
		return nil
	}
	return m
}

// loader reads variables and collects every problem instead of stopping at
// the first one.
type loader struct {
	getenv func(string) string
	errs   []error
}

// bad records a problem with a variable whose value may be shown.
// hint, when not empty, says how to fix it.
func (l *loader) bad(name, value, problem, hint string) {
	msg := fmt.Sprintf("%s: %s (got %q)", name, problem, value)
	if hint != "" {
		msg += "; " + hint
	}
	l.errs = append(l.errs, errors.New(msg))
}

// badSecret records a problem with a secret; its value is never shown.
func (l *loader) badSecret(name, problem string) {
	l.errs = append(l.errs, errors.New(name+": "+problem))
}

// get returns the trimmed value of name. Surrounding whitespace is dropped
// because a trailing newline in a mounted secret is a common, invisible
// mistake. Surrounding quotes are an error: `docker run --env-file` keeps
// them, so a quoted value works in one tool and breaks in the next.
func (l *loader) get(name string, secret bool) string {
	v := strings.TrimSpace(l.getenv(name))
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		const problem = "is wrapped in quotes"
		const hint = "remove them: docker --env-file keeps quotes as part of the value"
		if secret {
			l.badSecret(name, problem+"; "+hint)
		} else {
			l.bad(name, v, problem, hint)
		}
		v = strings.TrimSpace(v[1 : len(v)-1])
	}
	return v
}

func (l *loader) str(name, def string) string {
	if v := l.get(name, false); v != "" {
		return v
	}
	return def
}

func (l *loader) enum(name, def string, allowed ...string) string {
	v := l.get(name, false)
	if v == "" {
		return def
	}
	// Case does not carry meaning here, and LOG_LEVEL=INFO is common.
	lv := strings.ToLower(v)
	for _, a := range allowed {
		if lv == a {
			return a
		}
	}
	hint := ""
	switch lv {
	case "chatflow", "advanced-chat", "agent-chat", "agent":
		hint = "chatflow, agent and chat apps all use chat"
	case "completion":
		hint = "completion (text generator) apps are not supported; use a workflow or chatflow app"
	}
	l.bad(name, v, "must be one of "+strings.Join(allowed, ", "), hint)
	return def
}

// variable reads the name of a Dify start or output variable, or "auto".
func (l *loader) variable(name string) string {
	v := l.get(name, false)
	if v == "" || v == Auto {
		return Auto
	}
	if !isIdent(v) {
		hint := ""
		if strings.Contains(v, "{{") || strings.Contains(v, ".") {
			hint = "give the bare variable name as shown in the Start or End node, not a reference"
		}
		l.bad(name, v, "must be auto or a Dify variable name (letters, digits, _; not starting with a digit)", hint)
		return Auto
	}
	return v
}

// variables reads a comma-separated list of Dify variable names, or "auto"; it returns them joined by commas.
func (l *loader) variables(name string) string {
	v := l.get(name, false)
	if v == "" || v == Auto {
		return Auto
	}
	var names []string
	for _, n := range strings.Split(v, ",") {
		n = strings.TrimSpace(n)
		if !isIdent(n) {
			l.bad(name, v, "must be auto, or Dify variable names (letters, digits, _; not starting with a digit) separated by commas", "")
			return Auto
		}
		names = append(names, n)
	}
	return strings.Join(names, ",")
}

// publicURL reads the bot's public base: https (LINE fetches images only over https; http is allowed for a
// local test), without a query, kept without a trailing slash.
func (l *loader) publicURL(name string) string {
	v := l.get(name, false)
	if v == "" {
		return ""
	}
	if _, problem := parseHTTPURL(v); problem != "" {
		l.bad(name, shown(v), problem, "e.g. https://bot.example.com")
		return ""
	}
	return strings.TrimRight(v, "/")
}

func isIdent(s string) bool {
	for i, r := range s {
		switch {
		case r == '_', 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z':
		case '0' <= r && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return s != ""
}

func (l *loader) duration(name string, def time.Duration) time.Duration {
	v := l.get(name, false)
	if v == "" {
		return def
	}
	d, err := parseDuration(v)
	if err != nil || d <= 0 {
		hint := ""
		if _, err := strconv.Atoi(v); err == nil {
			hint = "add a unit, e.g. " + v + "s"
		}
		l.bad(name, v, "must be a positive duration such as 30s, 10m, 1h30m or 7d", hint)
		return def
	}
	return d
}

// parseDuration is time.ParseDuration that also takes whole days in front ("7d", "1d12h"): TTLs of files are
// said in days.
func parseDuration(v string) (time.Duration, error) {
	days, rest, ok := strings.Cut(v, "d")
	if !ok {
		return time.ParseDuration(v)
	}
	n, err := strconv.ParseUint(days, 10, 16)
	if err != nil {
		return 0, err
	}
	d := time.Duration(n) * 24 * time.Hour
	if rest == "" {
		return d, nil
	}
	r, err := time.ParseDuration(rest)
	if err != nil || r < 0 {
		return 0, errors.New("bad duration")
	}
	return d + r, nil
}

// positive reads a whole number in [1, max].
func (l *loader) positive(name string, def, max uint64) uint64 {
	v := l.get(name, false)
	if v == "" {
		return def
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 || n > max {
		l.bad(name, v, fmt.Sprintf("must be a whole number from 1 to %d", max), "")
		return def
	}
	return n
}

// whole reads a whole number in [0, max].
func (l *loader) whole(name string, def, max uint64) uint64 {
	v := l.get(name, false)
	if v == "" {
		return def
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n > max {
		l.bad(name, v, fmt.Sprintf("must be a whole number from 0 to %d", max), "")
		return def
	}
	return n
}

// perMinute reads a rate such as 30, 30/min, 2/s or 600/h as a whole number per minute; 0 means no limit.
func (l *loader) perMinute(name string, def int) int {
	v := l.get(name, false)
	if v == "" {
		return def
	}
	num, unit, _ := strings.Cut(strings.ReplaceAll(v, " ", ""), "/")
	n, err := strconv.ParseUint(num, 10, 32)
	per := map[string]uint64{"": 1, "m": 1, "min": 1, "minute": 1, "s": 60, "sec": 60, "second": 60, "h": 0, "hour": 0}
	mul, ok := per[strings.ToLower(unit)]
	switch {
	case err != nil || !ok:
	case mul == 0 && n%60 == 0:
		return int(n / 60)
	case mul == 0:
		l.bad(name, v, "an hourly rate must be a multiple of 60", fmt.Sprintf("e.g. %d/h", (n/60+1)*60))
		return def
	case n*mul <= 1e6:
		return int(n * mul)
	}
	l.bad(name, v, "must be a rate such as 30/min, 2/s or 600/h (0 for no limit)", "")
	return def
}

func (l *loader) ratio(name string, def float64) float64 {
	v := l.get(name, false)
	if v == "" {
		return def
	}
	r, err := strconv.ParseFloat(v, 64)
	// NaN fails both comparisons, so it is rejected too.
	if err != nil || !(r > 0 && r <= 1) {
		hint := ""
		if err == nil && r >= 10 && r <= 100 {
			hint = fmt.Sprintf("it is a ratio, not a percentage: did you mean %g?", r/100)
		}
		l.bad(name, v, "must be a number greater than 0 and at most 1, such as 0.5", hint)
		return def
	}
	return r
}

// sizeUnits are the suffixes size accepts. KB/MB/GB are decimal and
// KiB/MiB/GiB binary, as everywhere else; Dify's own 10 MB image limit is
// 10485760 bytes, that is 10MiB.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30,
}

func (l *loader) size(name string, def int64) int64 {
	v := l.get(name, false)
	if v == "" {
		return def
	}
	n, ok := parseSize(v)
	if !ok {
		l.bad(name, v, "must be a positive number of bytes, such as 10485760 or 10MiB", "")
		return def
	}
	return n
}

func parseSize(s string) (int64, bool) {
	i := 0
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	unit, ok := sizeUnits[strings.ToLower(strings.TrimSpace(s[i:]))]
	if err != nil || !ok || n <= 0 || n > math.MaxInt64/unit {
		return 0, false
	}
	return n * unit, true
}

func (l *loader) addr(name, def string) string {
	v := l.get(name, false)
	if v == "" {
		return def
	}
	if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
		hint := ""
		if _, err := strconv.Atoi(v); err == nil {
			hint = fmt.Sprintf("did you mean %q?", ":"+v)
		}
		l.bad(name, v, "must be host:port or :port, such as :8080", hint)
		return def
	}
	return v
}

// parseHTTPURL parses an absolute http(s) URL with a host. It returns a
// problem description instead of url.Parse's error, whose wording is less
// helpful than saying what a good value looks like.
func parseHTTPURL(v string) (*url.URL, string) {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, "must be an http:// or https:// URL with a host"
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return nil, "must not have a query or fragment"
	}
	return u, ""
}

// shown is a URL as it may appear in an error: without a password, should
// someone have put credentials in it.
func shown(v string) string {
	if u, err := url.Parse(v); err == nil && u.User != nil {
		return u.Redacted()
	}
	return v
}

// httpURL reads an http(s) base URL. Slack's client joins method names onto
// its base, so it needs the trailing slash; LINE's takes it without.
func (l *loader) httpURL(name, def string, slash bool) string {
	v := l.get(name, false)
	if v == "" {
		return def
	}
	if _, problem := parseHTTPURL(v); problem != "" {
		l.bad(name, shown(v), problem, "")
		return def
	}
	v = strings.TrimRight(v, "/")
	if slash {
		v += "/"
	}
	return v
}

// difyBaseURL reads Dify's service API base. A base without /v1 is the most
// common Dify misconfiguration: every call then hits the web app or the
// console and fails with a confusing 404 or HTML page.
func (l *loader) difyBaseURL(name, def string) string {
	v := l.get(name, false)
	if v == "" {
		return def
	}
	u, problem := parseHTTPURL(v)
	if problem != "" {
		hint := "e.g. https://dify.example.com/v1"
		if !strings.Contains(v, "://") {
			// localhost:5001 parses as the scheme "localhost".
			hint = fmt.Sprintf("did you mean %q?", "http://"+strings.TrimRight(shown(v), "/")+"/v1")
		}
		l.bad(name, shown(v), problem, hint)
		return def
	}
	v = strings.TrimRight(v, "/")
	if path := strings.TrimRight(u.Path, "/"); !strings.HasSuffix(path, "/v1") {
		hint := fmt.Sprintf("Dify's service API lives under /v1: did you mean %q?", shown(v)+"/v1")
		if i := strings.Index(path, "/v1/"); i >= 0 {
			hint = fmt.Sprintf("give the base up to /v1, not an endpoint: %q", shown(v)[:len(shown(v))-len(path)+i+3])
		}
		l.bad(name, shown(v), "must end with /v1", hint)
		return def
	}
	return v
}

func (l *loader) difyAPIKey(name string) Secret {
	v := l.get(name, true)
	switch {
	case v == "":
	case hasPrefixFold(v, "Bearer "):
		l.badSecret(name, `must be the key alone; remove the "Bearer " prefix, difybot adds it`)
	case strings.HasPrefix(v, "dataset-"):
		l.badSecret(name, "is a Knowledge (dataset-) API key, which cannot run apps; "+whereAPIKey)
	case !strings.HasPrefix(v, "app-"):
		l.badSecret(name, "should start with app-; "+whereAPIKey)
	}
	return Secret(v)
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// slackToken checks SLACK_BOT_TOKEN (xoxb-) and SLACK_APP_TOKEN (xapp-),
// which are easily swapped or confused with a user token.
func (l *loader) slackToken(name string) Secret {
	v := l.get(name, true)
	if v == "" {
		return ""
	}
	const (
		botHelp = "use the Bot User OAuth Token (xoxb-) from OAuth & Permissions"
		appHelp = "create an app-level token (xapp-) with connections:write under Basic Information → App-Level Tokens"
	)
	bot := name == "SLACK_BOT_TOKEN"
	switch {
	case bot && strings.HasPrefix(v, "xoxb-"), !bot && strings.HasPrefix(v, "xapp-"):
	case bot && strings.HasPrefix(v, "xapp-"):
		l.badSecret(name, "is an app-level token (xapp-), which belongs in SLACK_APP_TOKEN; "+botHelp)
	case bot && strings.HasPrefix(v, "xoxp-"):
		l.badSecret(name, "is a user token (xoxp-); "+botHelp)
	case bot:
		l.badSecret(name, "should start with xoxb-; "+botHelp)
	case strings.HasPrefix(v, "xoxb-"):
		l.badSecret(name, "is a bot token (xoxb-), which belongs in SLACK_BOT_TOKEN; "+appHelp)
	default:
		l.badSecret(name, "should start with xapp-; "+appHelp)
	}
	return Secret(v)
}

func (l *loader) slackSigningSecret(name string) Secret {
	v := l.get(name, true)
	if strings.HasPrefix(v, "xox") || strings.HasPrefix(v, "xapp-") {
		l.badSecret(name, "looks like a token, not the signing secret; find it under Basic Information → App Credentials → Signing Secret")
	}
	return Secret(v)
}

// LINE channel secrets are 32 hex characters and access tokens are about 170
// characters; these checks catch the two being swapped.
func (l *loader) lineSecret(name string) Secret {
	v := l.get(name, true)
	if len(v) > 64 {
		l.badSecret(name, "is far longer than a channel secret (32 characters) and looks like the channel access token; find the secret on the channel's Basic settings tab")
	}
	return Secret(v)
}

func (l *loader) lineToken(name string) Secret {
	v := l.get(name, true)
	if len(v) == 32 && isHex(v) {
		l.badSecret(name, "looks like the channel secret; issue a channel access token on the channel's Messaging API tab")
	}
	return Secret(v)
}

func isHex(s string) bool {
	for _, r := range s {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f' || 'A' <= r && r <= 'F') {
			return false
		}
	}
	return true
}

// adminToken requires some length because the token guards the breaker
// override, and the admin API may face the internet.
func (l *loader) adminToken(name string) Secret {
	v := l.get(name, true)
	if v != "" && len(v) < 16 {
		l.badSecret(name, "is shorter than 16 characters, which is too easy to guess; generate one with: openssl rand -hex 32")
	}
	return Secret(v)
}

// databaseURL checks only the scheme. Nothing of the value is shown in the
// error, not even the scheme: in a malformed URL, part of the password can end
// up where the scheme or host should be.
func (l *loader) databaseURL(name string) Secret {
	v := l.get(name, true)
	if v == "" {
		return ""
	}
	if u, err := url.Parse(v); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		l.badSecret(name, "must be a postgres:// or postgresql:// URL (value not shown); leave it unset to use SQLite in DATA_DIR")
	}
	return Secret(v)
}

// pairs reports a platform that is half configured. Half a pair is always a
// mistake, and silently leaving the platform off would hide it until someone
// wonders why the bot does not answer.
func (l *loader) pairs(c Config) {
	s := c.Slack
	switch {
	case s.BotToken == "" && s.SigningSecret != "":
		l.badSecret("SLACK_BOT_TOKEN", "required because SLACK_SIGNING_SECRET is set; use the Bot User OAuth Token (xoxb-) from OAuth & Permissions")
	case s.BotToken == "" && s.AppToken != "":
		l.badSecret("SLACK_BOT_TOKEN", "required because SLACK_APP_TOKEN is set; use the Bot User OAuth Token (xoxb-) from OAuth & Permissions")
	case s.BotToken != "" && s.SigningSecret == "" && s.AppToken == "":
		l.badSecret("SLACK_SIGNING_SECRET", "required because SLACK_BOT_TOKEN is set (or set SLACK_APP_TOKEN to use Socket Mode); find it under Basic Information → App Credentials")
	}
	n := c.LINE
	switch {
	case n.ChannelSecret == "" && n.ChannelToken != "":
		l.badSecret("LINE_CHANNEL_SECRET", "required because LINE_CHANNEL_TOKEN is set; find it on the channel's Basic settings tab")
	case n.ChannelSecret != "" && n.ChannelToken == "":
		l.badSecret("LINE_CHANNEL_TOKEN", "required because LINE_CHANNEL_SECRET is set; issue a channel access token on the channel's Messaging API tab")
	}
}

// Secret is a string that must not leak into logs, errors or API responses.
// Every way of printing or marshalling it gives "[redacted]" (or "" when it
// is empty, so that an unset secret is still visible as unset). Only Reveal
// gives the value. Do not use it as a map key: encoding/json writes string
// keys as they are, without calling MarshalText.
type Secret string

const redacted = "[redacted]"

// Reveal returns the secret's value. Call it only where the value is sent
// to the service it is for.
func (s Secret) Reveal() string { return string(s) }

// String returns "[redacted]", or "" for an empty secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString returns the same as String, so %#v does not reveal the value.
func (s Secret) GoString() string { return s.String() }

// Format implements fmt.Formatter so that every verb, including %x and %d
// which would otherwise bypass String, prints the redacted form. %q quotes
// it; width and flags are honoured.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb != 'q' {
		verb = 's'
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), s.String())
}

// MarshalJSON encodes the redacted form.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalText encodes the redacted form, for map keys and text encoders.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
