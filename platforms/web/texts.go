package web

import "github.com/difybot/difybot/bot"

// texts are the web chat's own words to the person, in BOT_LANGUAGE; the pipeline's are bot's catalogue.
type texts struct {
	empty, unreadable, notStored, notQueued string
}

var (
	textsEN = texts{
		empty:      "Type a message or attach a photo.",
		unreadable: "The message could not be read. Please send it again.",
		notStored:  "The photo could not be stored. Please send it again.",
		notQueued:  "The message could not be queued. Please try again in a moment.",
	}
	textsJA = texts{
		empty:      "メッセージを入力するか、写真を添付してください。",
		unreadable: "メッセージを読み取れませんでした。もう一度送ってください。",
		notStored:  "写真を保存できませんでした。もう一度送ってください。",
		notQueued:  "メッセージを受け付けられませんでした。少し待ってからもう一度お試しください。",
	}
)

func textsFor(l bot.Lang) texts {
	if l.Japanese() {
		return textsJA
	}
	return textsEN
}
