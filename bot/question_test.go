package bot

import (
	"slices"
	"testing"
	"time"

	"github.com/difybot/difybot/dify"
)

// Each input of a form is asked in the person's language, with its choices; the actions come last.
func TestQuestionPrompts(t *testing.T) {
	q := Question{Form: dify.Form{Content: "**Check** it.", Expires: time.Date(2026, 12, 2, 9, 30, 0, 0, time.UTC),
		Inputs: []dify.FormInput{{Type: "select", Name: "product", Options: []string{"A", "B"}}, {Type: "paragraph", Name: "short_note"},
			{Type: "paragraph", Name: "note"}, {Type: "file", Name: "label"}, {Type: "file-list", Name: "photos", Limit: 3}},
		Actions:  []dify.FormAction{{ID: "approve", Title: "Approve"}, {ID: "reject", Title: "Reject"}},
		Defaults: map[string]string{"note": "Looks fine"}}}
	tests := []struct {
		asked   int
		first   bool
		lang    Lang
		text    string
		choices []string
	}{
		{0, true, "en", "**Check** it.\n\nPlease choose product: A / B.\n(Open until 2026-12-02 09:30 UTC.)", []string{"A", "B"}},
		{0, true, "ja", "**Check** it.\n\nproductを選んでください：A / B\n（回答期限: 2026-12-02 09:30 UTC）", []string{"A", "B"}},
		{1, false, "en", "Please type short note and send it.", nil},
		{2, false, "en", "Please type note and send it. Or tap the suggestion.", []string{"Looks fine"}},
		{2, false, "ja", "noteを入力して送ってください。候補をタップすることもできます。", []string{"Looks fine"}},
		{3, false, "en", "Please send a photo for label.", nil},
		{4, false, "en", "Please send photos for photos (all in one message).", nil},
		{5, false, "en", "What should happen next? Approve / Reject.", []string{"Approve", "Reject"}},
		{5, false, "ja", "次にどうしますか？ Approve / Reject", []string{"Approve", "Reject"}},
	}
	for _, tt := range tests {
		q.Asked = tt.asked
		text, choices := q.prompt(tt.lang, tt.first)
		if text != tt.text || !slices.Equal(choices, tt.choices) {
			t.Errorf("input %d (%s): %q %q\nwant %q %q", tt.asked, tt.lang, text, choices, tt.text, tt.choices)
		}
	}
}
