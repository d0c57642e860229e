package web_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/difybot/difybot/bot"
	"github.com/difybot/difybot/bot/bottest"
	"github.com/difybot/difybot/dify/difytest"
	"github.com/difybot/difybot/platforms/web"
)

// A workflow that asks back, through the web chat: each prompt arrives as the final reply of the message that
// led to it, with its choices as chips; the select, the paragraph, a photo and the action are answered from the
// chat; the form is submitted once with every input, and the run's answer arrives once.
func TestHumanInputThroughTheWebChat(t *testing.T) {
	srv, sim := newChat(t, "", func(o *difytest.Options, _ *bot.Config) { o.Scenario = "human_input" })
	send := func(text string, img []byte) web.Event {
		t.Helper()
		status, out := post(t, srv, "", map[string]string{"id": web.NewID(), "session": "session-hi", "text": text}, img)
		if status != http.StatusAccepted {
			t.Fatalf("post %q: %d %v", text, status, out)
		}
		evs := follow(t, srv, "", out["run_id"].(string))
		last := evs[len(evs)-1]
		if last.Type != "reply" || !last.Final {
			t.Fatalf("%q: last event %+v", text, last)
		}
		return last
	}
	if ev := send("what tea is this?", nil); !strings.Contains(ev.Text, "Please check the product.") || !slices.Equal(ev.Choices, []string{"Green tea", "Barley tea", "Oolong tea"}) {
		t.Fatalf("first prompt %+v", ev)
	}
	if ev := send("Oolong tea", nil); !slices.Equal(ev.Choices, []string{"Looks fine"}) {
		t.Fatalf("paragraph prompt %+v", ev)
	}
	if ev := send("Looks fine", nil); !strings.Contains(ev.Text, "photo for label") {
		t.Fatalf("photo prompt %+v", ev)
	}
	if ev := send("", bottest.PNG(t, 40, 30)); !slices.Equal(ev.Choices, []string{"Approve", "Send back"}) {
		t.Fatalf("action prompt %+v", ev)
	}
	ev := send("Send back", nil)
	for _, want := range []string{"Check the product: Send back", "product=Oolong tea", "note=Looks fine", "label=photo.png (image/png)"} {
		if !strings.Contains(ev.Text, want) {
			t.Errorf("answer %q lacks %q", ev.Text, want)
		}
	}
	if subs := sim.Submissions(); len(subs) != 1 || subs[0].Action != "send_back" || len(subs[0].Inputs) != 3 {
		t.Errorf("submissions %+v", subs)
	}
	if n := sim.Started(); n != 1 {
		t.Errorf("%d workflow runs, want 1", n)
	}
}
