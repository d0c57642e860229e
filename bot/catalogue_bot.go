package bot

// botCatalogue holds the codes of the bot's own side (the breaker, images, the chat platforms, internal), in
// DESIGN.md's order; they follow difyCatalogue.
var botCatalogue = []entry{
	{
		code:      CodeBreakerOpen,
		title:     "the circuit breaker is open",
		en:        "The AI workflow service is having trouble right now, so the bot could not get an answer for you. Please try again later.",
		ja:        "AIワークフローサービスで問題が発生しているため、回答を取得できませんでした。しばらくしてからもう一度お試しください。",
		retryable: true,
		causes: []string{
			"Recent calls to Dify failed often enough (BREAKER_FAILURE_RATIO of at least BREAKER_MIN_REQUESTS) to trip the breaker, and it did not close again within BREAKER_HOLD_MAX.",
			"The failures that tripped it are the real cause: see the diagnoses of the runs that failed just before (gateway, unreachable, server errors, rate limits).",
		},
		checks: []string{
			"GET /admin/breaker shows the state and mode; GET /admin/runs?status=failed lists the failures that tripped it.",
			"difybot doctor",
			`Once Dify is healthy the breaker closes by itself (a trial call after BREAKER_OPEN_FOR). If the mode was forced, PUT /admin/breaker {"mode":"auto"}.`,
		},
	},
	{
		code:  CodeBreakerMaintenance,
		title: "maintenance: the breaker is forced open",
		// The final reply after BREAKER_HOLD_MAX: the held notice (HeldText) promised an answer when maintenance ends.
		en:        "The bot has been under maintenance for longer than expected, so your request could not be answered. Please send it again after the maintenance is over.",
		ja:        "ボットのメンテナンスが長引いているため、リクエストにお答えできませんでした。メンテナンス終了後に、もう一度送ってください。",
		retryable: true,
		causes: []string{
			`An operator forced the breaker open (PUT /admin/breaker {"mode":"open"}), usually for Dify maintenance or an upgrade; the reason is stored with the mode.`,
			"Held requests run once the mode is back to auto or closed; a request held longer than BREAKER_HOLD_MAX ends with this diagnosis.",
		},
		checks: []string{
			"GET /admin/breaker shows the mode, the reason and since when.",
			`End the maintenance: PUT /admin/breaker {"mode":"auto","reason":"maintenance done"}; every replica applies it within 5 s.`,
		},
	},
	{
		code:  CodeImageTooLarge,
		title: "the image is too large",
		en:    "Your image is too large for the bot: too many megabytes or too many pixels. Please send a smaller image, such as a screenshot or a photo at a lower resolution.",
		ja:    "画像が大きすぎる（ファイルサイズまたは画素数）ため、ボットで処理できませんでした。スクリーンショットや解像度を下げた写真など、より小さい画像を送ってください。",
		causes: []string{
			"The download is over MAX_IMAGE_BYTES (default 26214400, 25 MiB): it is refused before it is read whole, so it is not shrunk either.",
			"The image has more pixels than MAX_IMAGE_PIXELS (default 40000000): it is refused from its header without being decoded (a small file can claim enormous dimensions); the detail gives the dimensions.",
			"A GIF or SVG over Dify's image limit: animations and drawings are sent as they are, never shrunk.",
			"A photo still over Dify's image limit after being scaled down and re-encoded several times (only with a very low image_file_size_limit).",
		},
		checks: []string{
			"The check step of the run records the original (format, pixels, bytes) and what was sent.",
			`Dify's limit is image_file_size_limit (MB) in curl -sS -H "Authorization: Bearer $DIFY_API_KEY" "$DIFY_BASE_URL/parameters" (system_parameters); photos are made to fit it.`,
			"If ordinary photos are refused, raise MAX_IMAGE_BYTES or MAX_IMAGE_PIXELS; decoding takes about 1.5 to 4 bytes of memory per pixel, two photos at a time.",
		},
	},
	{
		code:  CodeImageUnsupported,
		title: "the image type is not supported",
		// Also the reply to an SVG with active content (a script, event handlers, embedded HTML): the text must
		// read right for that file as well as for a PDF or a HEIC photo.
		en: "The bot cannot use this file. It takes JPEG, PNG, WebP, GIF and HEIC (iPhone) pictures, and SVG drawings without scripts or embedded content. Please send the picture as a JPEG or PNG.",
		ja: "このファイルはボットで使えません。使えるのはJPEG、PNG、WebP、GIF、HEIC（iPhone）形式の画像と、スクリプトや埋め込みコンテンツを含まないSVG形式の図です。JPEGかPNG形式で画像を送ってください。",
		causes: []string{
			"The file is neither an image Dify accepts (jpg, jpeg, png, webp, gif, svg) nor HEIC, which difybot converts to JPEG: TIFF, BMP, PDF, AVIF.",
			"The file is sniffed as JPEG, PNG, WebP or HEIC but does not decode (damaged, or cut short); the detail has the decoder's error.",
			"The platform sent an HTML page instead of the file, so the sniffed type was text/html: Slack does this when the bot token lacks files:read.",
			"An SVG with active content: a <script>, an event attribute (onload=…), a <foreignObject>, a javascript: link, an embedded document or declared XML entities. difybot refuses it rather than pass code to Dify; the detail says what was found.",
		},
		checks: []string{
			"The check step of the run shows the sniffed type (http.DetectContentType), or for an SVG what it contains.",
			"If it is text/html for a Slack file: add the files:read scope under OAuth & Permissions and reinstall the Slack app.",
			"An SVG refused for its content: export the drawing as PNG, or save it as a plain SVG without scripts or embedded HTML.",
			`A HEIC photo that did not convert: on the iPhone, Settings → Camera → Formats → "Most Compatible" takes JPEGs.`,
		},
	},
	{
		code:  CodePlatformDownloadFailed,
		title: "the file could not be downloaded from the chat platform",
		en:    "The bot could not download your file from the chat service. Please send it again. If it still fails, let an administrator know.",
		ja:    "チャットサービスからファイルをダウンロードできませんでした。もう一度送ってください。それでも失敗する場合は管理者にお知らせください。",
		causes: []string{
			"Slack: the bot token lacks the files:read scope (Slack then answers with an HTML sign-in page), or the app was not reinstalled after the scope was added.",
			"Slack: the file was deleted, or it is in a channel or Slack Connect workspace the bot cannot see.",
			"LINE: message content is kept only for a limited time; a job that waited (breaker hold, backlog) can find it gone (404).",
			"LINE: LINE_CHANNEL_TOKEN is wrong or was reissued (401).",
			"Network errors between difybot and files.slack.com or api-data.line.me.",
		},
		checks: []string{
			"Slack: api.slack.com/apps → the app → OAuth & Permissions: files:read under Bot Token Scopes; reinstall to the workspace and update SLACK_BOT_TOKEN if it changed.",
			"LINE: difybot doctor checks the channel token; the run's steps show how long the job waited before the fetch.",
			"Check outbound HTTPS from difybot to files.slack.com and api-data.line.me.",
		},
	},
	{
		code:      CodePlatformReplyFailed,
		title:     "the reply could not be posted",
		en:        "The bot finished your request but could not post the answer here. Please try again later. If it keeps happening, let an administrator know.",
		ja:        "リクエストの処理は完了しましたが、回答をここに投稿できませんでした。しばらくしてからもう一度お試しください。繰り返し発生する場合は管理者にお知らせください。",
		retryable: true,
		causes: []string{
			"Slack: chat.postMessage or chat.update failed: no chat:write scope, the bot is not in the channel (not_in_channel), the channel is archived, or Slack rate-limited the bot (429).",
			"LINE: the reply token expired and the push failed: the monthly message limit is used up (429), LINE_CHANNEL_TOKEN is invalid (401), or the person blocked the bot.",
			"Network errors between difybot and slack.com or api.line.me.",
		},
		checks: []string{
			"The reply step of the run holds the platform's error.",
			"Slack: OAuth & Permissions lists chat:write; invite the bot to the channel (/invite @your-bot).",
			"LINE: LINE Official Account Manager → check the monthly message limit; difybot doctor checks the channel token.",
		},
	},
	{
		code:  CodeInternal,
		title: "unrecognised error (a bug in difybot)",
		en:    "Something went wrong inside the bot, so your request could not be completed. Please let an administrator know and include the reference number.",
		ja:    "ボットの内部で問題が発生したため、リクエストを完了できませんでした。参照番号を添えて管理者にお知らせください。",
		causes: []string{
			"This is a bug in difybot: it met an error it does not recognise or should have handled. The raw error is in the detail.",
			"Or Dify answered with an error difybot does not know yet; the summary names Dify's error code.",
		},
		checks: []string{
			"Please file an issue in difybot's repository with the reference id, the summary and the raw error (remove anything private first).",
			"GET /admin/runs/{id} shows the run's step log.",
			"difybot doctor rules out configuration problems.",
		},
	},
}
