package slack

import (
	"github.com/difybot/difybot/bot"
)

// texts are the adapter's own words; the answers and diagnoses come from the pipeline in its language.
type texts struct {
	working     string // The placeholder.
	thinking    string // An assistant thread's status while a run works.
	running     string // Progress: %s is the node's title, already escaped.
	done        string // Appended to progress: %d nodes finished.
	retrying    string
	retryLabel  string
	retryGone   string
	retryFailed string
	truncated   string
	noFileScope string // %s names the files.
}

var (
	textsEN = texts{
		working:     "⏳ Working on it…",
		thinking:    "is thinking…",
		running:     "⏳ Working on it… running *%s*",
		done:        " (%d done)",
		retrying:    "🔁 Retrying…",
		retryLabel:  "Retry",
		retryGone:   "This request can no longer be retried.",
		retryFailed: "Sorry, the retry could not be started. Please try again in a moment.",
		truncated:   "… (the answer was too long for Slack and was cut here)",
		noFileScope: "📎 The answer includes %s, but this bot cannot upload files here (its token lacks the files:write scope); please tell an administrator.",
	}
	textsJA = texts{
		working:     "⏳ 処理しています…",
		thinking:    "考えています…",
		running:     "⏳ 処理しています… *%s* を実行中",
		done:        "（%d 件完了）",
		retrying:    "🔁 再試行しています…",
		retryLabel:  "再試行",
		retryGone:   "このリクエストはもう再試行できません。",
		retryFailed: "再試行を開始できませんでした。しばらくしてからもう一度お試しください。",
		truncated:   "…（回答が長すぎるため、ここで省略しました）",
		noFileScope: "📎 回答にはファイル（%s）がありますが、このボットはファイルをアップロードできません（トークンに files:write スコープがありません）。管理者に連絡してください。",
	}
)

// textsFor gives the adapter's texts in l, read as bot.Diagnosis.UserText reads it.
func textsFor(l bot.Lang) texts {
	if l.Japanese() {
		return textsJA
	}
	return textsEN
}
