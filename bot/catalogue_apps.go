package bot

import (
	"fmt"
	"strings"
)

// The texts of a bot with several apps: which app a person's messages go to, and how to choose another.
// Choices are the apps' commands ("/receipt"), which platforms without buttons show in the text too.

// appChoiceText offers the apps, on "help" or a direct message no route leads to an app.
func appChoiceText(lang Lang, choices []string) string {
	list := strings.Join(choices, "  ")
	if isJapanese(lang) {
		return "どのアシスタントを使いますか？ 下から選ぶか、メッセージの先頭にコマンドを付けて送ってください（例: " + choices[0] + " 質問）。\n" + list
	}
	return "Which assistant would you like? Choose one below, or start your message with its command (for example: " + choices[0] + " your question).\n" + list
}

// appChosenText confirms the app a person chose; their next messages here go to it.
func appChosenText(lang Lang, app string) string {
	if isJapanese(lang) {
		return fmt.Sprintf("「%s」を使います。このまま写真や質問を送ってください。", app)
	}
	return fmt.Sprintf("You're now using “%s”. Send your photo or question.", app)
}

// appUnknownText answers a message whose route names an app the bot does not have: nothing ran, and no other
// app's workflow is used in its place.
func appUnknownText(lang Lang, app string, choices []string) string {
	if isJapanese(lang) {
		return fmt.Sprintf("このメッセージの送り先「%s」はこのボットにありません。何も実行していません。管理者に連絡するか、別のアシスタントを選んでください: %s", app, strings.Join(choices, "  "))
	}
	return fmt.Sprintf("This message is meant for “%s”, which this bot does not have, so nothing was run. Tell your administrator, or choose another assistant: %s", app, strings.Join(choices, "  "))
}
