package bot

import (
	"fmt"
	"strings"
	"time"

	"github.com/difybot/difybot/dify"
)

// The person-facing words of a Human Input question, in English and Japanese.
type questionText struct{ en, ja string }

var (
	askChoose    = questionText{"Please choose %s: %s.", "%sを選んでください：%s"}
	askType      = questionText{"Please type %s and send it.", "%sを入力して送ってください。"}
	askDefault   = questionText{" Or tap the suggestion.", "候補をタップすることもできます。"}
	askFormPhoto = questionText{"Please send a photo for %s.", "%sの写真を送ってください。"}
	askPhotos    = questionText{"Please send photos for %s (all in one message).", "%sの写真を送ってください（1つのメッセージにまとめて）。"}
	askAction    = questionText{"What should happen next? %s.", "次にどうしますか？ %s"}
	askUntil     = questionText{"(Open until %s UTC.)", "（回答期限: %s UTC）"}
	notAChoice   = questionText{"That is not one of the choices.", "選択肢にない回答です。"}
	notYours     = questionText{"Thanks, but this question is for the person who asked the workflow. Please let them answer it.", "ありがとうございます。ただ、この質問はワークフローを依頼した方への質問です。その方の回答をお待ちください。"}
	alreadyIn    = questionText{"Your answer is already in.", "回答はすでに受け付けています。"}
	formExpired  = questionText{"This question has expired, so your answer was not sent.", "この質問は回答期限が過ぎたため、回答は送信されませんでした。"}
	expiredRunOn = questionText{"No answer came in time; the workflow went on without one.", "期限内に回答がなかったため、ワークフローは回答なしで進みました。"}
)

func (t questionText) in(lang Lang, args ...any) string {
	s := t.en
	if isJapanese(lang) {
		s = t.ja
	}
	if len(args) > 0 {
		s = fmt.Sprintf(s, args...)
	}
	return s
}

// fieldName is how an input is named to the person: its output variable, in words.
func fieldName(in dify.FormInput) string { return strings.ReplaceAll(in.Name, "_", " ") }

// prompt is the text and the choices that ask for q's current input, or for its action.
func (q Question) prompt(lang Lang, first bool) (string, []string) {
	var b strings.Builder
	if first && strings.TrimSpace(q.Form.Content) != "" {
		b.WriteString(strings.TrimSpace(q.Form.Content))
		b.WriteString("\n\n")
	}
	var choices []string
	if q.Asked < len(q.Form.Inputs) {
		in := q.Form.Inputs[q.Asked]
		def := q.Form.Defaults[in.Name]
		switch in.Type {
		case "select":
			b.WriteString(askChoose.in(lang, fieldName(in), strings.Join(in.Options, " / ")))
			choices = in.Options
		case "file":
			b.WriteString(askFormPhoto.in(lang, fieldName(in)))
		case "file-list":
			b.WriteString(askPhotos.in(lang, fieldName(in)))
		default:
			b.WriteString(askType.in(lang, fieldName(in)))
			if def != "" {
				b.WriteString(askDefault.in(lang))
				choices = []string{def}
			}
		}
	} else {
		for _, a := range q.Form.Actions {
			choices = append(choices, a.Title)
		}
		b.WriteString(askAction.in(lang, strings.Join(choices, " / ")))
	}
	if first && !q.Form.Expires.IsZero() {
		b.WriteString("\n")
		b.WriteString(askUntil.in(lang, q.Form.Expires.UTC().Format(time.DateTime[:16])))
	}
	return b.String(), choices
}
