package bot

import "testing"

func TestKeyword(t *testing.T) {
	b := &Bot{keywords: map[string]string{"receipt": "receipts", "領収書": "receipts", "damage": "damage"}}
	tests := []struct {
		text, app, rest string
		ok              bool
	}{
		{"receipt: how much?", "receipts", "how much?", true},
		{"Receipt:how much?", "receipts", "how much?", true},
		{"/receipt how much?", "receipts", "how much?", true},
		{"  /damage", "damage", "", true},
		{"damage:", "damage", "", true},
		{"領収書：合計は？", "receipts", "合計は？", true},
		{"receipt how much?", "", "receipt how much?", false}, // A bare word starts a question.
		{"/unknown thing", "", "/unknown thing", false},
		{"what about receipt: x", "", "what about receipt: x", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		app, rest, ok := b.keyword(tt.text)
		if app != tt.app || rest != tt.rest || ok != tt.ok {
			t.Errorf("keyword(%q) = %q, %q, %v; want %q, %q, %v", tt.text, app, rest, ok, tt.app, tt.rest, tt.ok)
		}
	}
}
