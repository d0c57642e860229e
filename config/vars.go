package config

// Var is one environment variable as `difybot --help` lists it; .env.example has the full comment.
type Var struct {
	Name    string
	Meaning string // A few words; "required" where serve needs it.
}

// Group is a set of variables about one thing, in .env.example's order.
type Group struct {
	Title string
	Vars  []Var
}

// Group titles, for commands that show only some groups.
const (
	GroupDify    = "Dify"
	GroupSlack   = "Slack"
	GroupLINE    = "LINE"
	GroupServer  = "Server and storage"
	GroupBreaker = "Circuit breaker"
	GroupLogs    = "Messages and logs"
)

// Groups lists every variable Load reads, grouped as in .env.example (a test keeps the three in step).
func Groups() []Group {
	return []Group{
		{GroupDify, []Var{
			{"DIFY_BASE_URL", "service API base ending in /v1 (default https://api.dify.ai/v1)"},
			{"DIFY_API_KEY", "the app's API key, app-… (required)"},
			{"DIFY_APP_MODE", "auto, workflow or chat"},
			{"DIFY_RESPONSE_MODE", "streaming or blocking"},
			{"DIFY_IMAGE_INPUT", "start variable for the photo (auto)"},
			{"DIFY_TEXT_INPUT", "start variable for the text (auto)"},
			{"DIFY_OUTPUT_KEY", "output to reply with (auto)"},
			{"DIFY_TIMEOUT", "limit for one run (10m)"},
			{"IMAGE_PROMPT", "text sent with a photo that comes alone"},
			{"DIFY_INPUTS", "JSON object of fixed start-form values"},
			{"DIFY_FILES_URL", "where Dify's file links point, when its FILES_URL differs"},
			{"DIFY_APPS_FILE", "YAML of several apps and their routes (unset: the one app above)"},
			{"PENDING_TTL", "how long a photo waits for its question (10m)"},
		}},
		{GroupSlack, []Var{
			{"SLACK_BOT_TOKEN", "xoxb-…; with the signing secret or the app token"},
			{"SLACK_SIGNING_SECRET", "Events API over HTTP"},
			{"SLACK_APP_TOKEN", "xapp-…: Socket Mode instead of HTTP"},
			{"SLACK_API_URL", "override for tests"},
			{"SLACK_STREAMING", "auto, on or off: stream answers with chat.startStream (auto)"},
		}},
		{GroupLINE, []Var{
			{"LINE_CHANNEL_SECRET", "the channel secret"},
			{"LINE_CHANNEL_TOKEN", "the long-lived channel access token"},
			{"LINE_API_URL", "override for tests"},
			{"LINE_DATA_API_URL", "override for tests"},
		}},
		{GroupServer, []Var{
			{"HTTP_ADDR", "the one listener (:8080)"},
			{"ADMIN_TOKEN", "bearer token for /admin/ (unset: admin off)"},
			{"WEB_CHAT", "on: the web chat at /, behind ADMIN_TOKEN"},
			{"DATABASE_URL", "postgres://… for several replicas (unset: SQLite)"},
			{"DATA_DIR", "where the SQLite database lives (./data)"},
			{"WORKERS", "most runs in flight per replica; the live limit follows Dify's 429s (64)"},
			{"MAX_IMAGE_BYTES", "largest photo downloaded (25MiB)"},
			{"MAX_IMAGE_PIXELS", "larger photos are refused before decoding (40000000)"},
			{"IMAGE_MAX_SIDE", "photos are shrunk to this long side (2048; 0: never)"},
			{"FETCH_TIMEOUT", "limit for downloading one photo (60s)"},
			{"REPLICA_TIMEOUT", "silence after which other replicas take a replica's runs (1m)"},
			{"USER_CONCURRENCY", "runs one person may have in flight (2; 0: no limit)"},
			{"USER_RATE", "messages one person may send per minute (30/min; 0: no limit)"},
			{"PUBLIC_URL", "https://… where LINE fetches the answers' images (/files/)"},
			{"MAX_OUTPUT_FILE_BYTES", "largest file of an answer kept (20MiB)"},
			{"OUTPUT_FILE_TTL", "how long answers' files are kept (7d)"},
			{"HUMAN_INPUT_BY", "who answers a workflow's question: requester or anyone"},
		}},
		{GroupBreaker, []Var{
			{"BREAKER_FAILURE_RATIO", "trip at this share of failures (0.5)"},
			{"BREAKER_MIN_REQUESTS", "… over at least this many requests (5)"},
			{"BREAKER_OPEN_FOR", "open this long before a trial (30s)"},
			{"BREAKER_HOLD_MAX", "hold messages this long while open (15m)"},
		}},
		{GroupLogs, []Var{
			{"BOT_LANGUAGE", "en or ja"},
			{"LOG_LEVEL", "debug, info, warn or error"},
			{"LOG_FORMAT", "json or console"},
		}},
	}
}
